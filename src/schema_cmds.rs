//! `portico compose` and `portico check`: thin I/O around
//! `portico_federation::{compose, diff}`.
//!
//! Both read a subgraph list (`supergraph/subgraphs.toml` by default): name, routing URL
//! and SDL file per subgraph, or fetch each SDL live from `_service { sdl }` with a trust
//! token minted by the gateway key. `compose` writes the supergraph and the API schema
//! (or, with `--check`, fails when the committed files are stale); `check` composes and
//! compares the result with the committed API schema (or any two schemas).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use portico_federation::compose::{self, SubgraphInput};
use portico_federation::diff;
use serde::Deserialize;

/// The subgraph list file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubgraphList {
    #[serde(rename = "subgraph")]
    pub subgraphs: Vec<SubgraphEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubgraphEntry {
    /// Subgraph name (becomes the `join__Graph` name).
    pub name: String,
    /// Routing URL written into the supergraph.
    pub url: String,
    /// SDL file, relative to the list file.
    pub sdl: PathBuf,
}

pub fn load_list(path: &Path) -> Result<SubgraphList> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Read each subgraph's SDL, from its file or live.
pub async fn inputs(
    list_path: &Path,
    live_key: Option<&portico_trust::TrustSigner>,
) -> Result<Vec<SubgraphInput>> {
    let list = load_list(list_path)?;
    let base = list_path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for s in list.subgraphs {
        let sdl = match live_key {
            Some(signer) => fetch_sdl(&s.name, &s.url, signer)
                .await
                .with_context(|| format!("fetching the SDL of {} from {}", s.name, s.url))?,
            None => {
                let p = base.join(&s.sdl);
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?
            }
        };
        out.push(SubgraphInput {
            name: s.name,
            url: s.url,
            sdl,
        });
    }
    Ok(out)
}

async fn fetch_sdl(name: &str, url: &str, signer: &portico_trust::TrustSigner) -> Result<String> {
    let identity = portico_trust::Identity::anonymous();
    let body = br#"{"query":"{ _service { sdl } }"}"#;
    let token = signer.mint(name, &identity, body, Duration::from_secs(30));
    let resp: serde_json::Value = reqwest::Client::new()
        .post(url)
        .header(portico_trust::HEADER_TRUST, token)
        .header(portico_trust::HEADER_USER_SCOPES, "")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    resp.pointer("/data/_service/sdl")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("the response has no data._service.sdl")
}

/// A schema read from a running server's introspection.
#[derive(Debug)]
pub struct Introspected {
    /// The schema printed as SDL.
    pub sdl: String,
    /// Whether the server answered `isOneOf`: when it did not, its input types carry no
    /// `@oneOf` whether they are or not, and `@oneOf` changes cannot be compared.
    pub knows_one_of: bool,
}

/// The API schema of a running gateway, read through introspection and printed as SDL.
///
/// The query asks for `isOneOf`; a server that predates it (graphql-js before 16.9,
/// apollo-compiler and so Portico's own gateway) refuses the whole query, naming the
/// field, and is asked again without it.
pub async fn introspect(url: &str, headers: &[String]) -> Result<Introspected> {
    use diff::introspection::{
        INTROSPECTION_QUERY, INTROSPECTION_QUERY_WITHOUT_ONE_OF, mentions_is_one_of,
    };
    let first = introspection_request(url, headers, INTROSPECTION_QUERY).await?;
    let (resp, knows_one_of) = if mentions_is_one_of(&first) {
        let again = introspection_request(url, headers, INTROSPECTION_QUERY_WITHOUT_ONE_OF).await?;
        (again, false)
    } else {
        (first, true)
    };
    if let Some(errors) = resp.get("errors").filter(|e| !e.is_null()) {
        bail!("{url} refused introspection: {errors}");
    }
    let sdl = diff::introspection::sdl_from_introspection(&resp)
        .with_context(|| format!("reading the introspection result of {url}"))?;
    Ok(Introspected { sdl, knows_one_of })
}

/// POST one introspection query; the JSON answer, whatever its HTTP status (GraphQL over
/// HTTP answers a refused query with 400 and a JSON body).
async fn introspection_request(
    url: &str,
    headers: &[String],
    query: &str,
) -> Result<serde_json::Value> {
    let mut req = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(30))
        .header(
            reqwest::header::ACCEPT,
            "application/graphql-response+json, application/json",
        )
        .json(&serde_json::json!({ "query": query }));
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header `{h}` is not `Name: value`"))?;
        req = req.header(name.trim(), value.trim());
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("introspecting {url}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not answer JSON (HTTP {status})"))
}

/// Output format of diagnostics and reports.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Github,
}

fn render_diagnostics(format: Format, d: &[compose::Diagnostic]) -> String {
    match format {
        Format::Text => compose::render_text(d),
        Format::Json => compose::render_json(d),
        Format::Github => compose::render_github(d),
    }
}

/// Compose; print diagnostics; return the composed result or exit code 1 on errors.
pub fn compose_or_report(
    inputs: &[SubgraphInput],
    format: Format,
) -> std::result::Result<compose::Composed, i32> {
    match compose::compose(inputs) {
        Ok(c) => {
            if !c.hints.is_empty() {
                eprint!("{}", render_diagnostics(format, &c.hints));
            }
            Ok(c)
        }
        Err(e) => {
            let mut all = e.errors.clone();
            all.extend(e.hints.iter().cloned());
            print!("{}", render_diagnostics(format, &all));
            eprintln!("composition failed with {} error(s)", e.errors.len());
            Err(1)
        }
    }
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// `portico compose`: returns the process exit code.
pub fn compose_cmd(
    inputs: &[SubgraphInput],
    supergraph_out: &Path,
    api_out: &Path,
    check: bool,
    format: Format,
) -> Result<i32> {
    let composed = match compose_or_report(inputs, format) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let files = [
        (supergraph_out, with_newline(&composed.supergraph_sdl)),
        (api_out, with_newline(&composed.api_sdl)),
    ];
    if check {
        let mut stale = false;
        for (path, fresh) in &files {
            let current = std::fs::read_to_string(path).unwrap_or_default();
            if &current != fresh {
                eprintln!(
                    "{} is stale: run `portico compose` and commit the result",
                    path.display()
                );
                stale = true;
            }
        }
        return Ok(if stale { 1 } else { 0 });
    }
    for (path, content) in &files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// Read client operations from a folder of `.graphql` files or a persisted-operations
/// JSON file (`{ "id": "query …" }` or `[{ "id"|"name": …, "body"|"query": … }]`).
pub fn load_operations(path: &Path) -> Result<Vec<(String, String)>> {
    let mut ops = Vec::new();
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "graphql" || x == "gql"))
            .collect();
        entries.sort();
        for p in entries {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            ops.push((name, std::fs::read_to_string(&p)?));
        }
    } else {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if let Some(s) = v.as_str() {
                        ops.push((k, s.to_string()));
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let name = item
                        .get("id")
                        .or_else(|| item.get("name"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("operation-{i}"));
                    let body = item
                        .get("body")
                        .or_else(|| item.get("query"))
                        .and_then(|v| v.as_str())
                        .with_context(|| format!("operation {name} has no body/query"))?;
                    ops.push((name, body.to_string()));
                }
            }
            _ => bail!("{}: expected an object or an array", path.display()),
        }
    }
    Ok(ops)
}

/// The operations a gateway recorded (`[usage] file`) and last saw within `window_days`
/// of `now` (unix seconds), as `(name, document)`: the name is the operation's SHA-256
/// prefix and the clients that sent it, so a check names them.
pub fn load_usage(path: &Path, window_days: u64, now: u64) -> Result<Vec<(String, String)>> {
    load_usage_from(&path.to_string_lossy(), "", window_days, now)
}

/// [`load_usage`] from a file or, for a `redis://`/`rediss://` URL, from what gateways
/// recorded in Redis (`[usage] redis_url`) under `prefix`.
pub fn load_usage_from(
    source: &str,
    prefix: &str,
    window_days: u64,
    now: u64,
) -> Result<Vec<(String, String)>> {
    let since = now.saturating_sub(window_days.saturating_mul(86_400));
    let recorded = if source.starts_with("redis://") || source.starts_with("rediss://") {
        portico_gateway::usage::read_redis(source, prefix, since, std::time::Duration::from_secs(5))
            .with_context(|| format!("reading recorded usage from Redis under `{prefix}`"))?
    } else {
        let path = Path::new(source);
        if !path.exists() {
            bail!("no usage file at {}", path.display());
        }
        portico_gateway::usage::read(path)
    };
    Ok(recorded
        .into_iter()
        .filter(|op| op.last_seen >= since)
        .map(|op| {
            let clients: Vec<String> = op.clients.into_iter().collect();
            let short = op.id.get(..12).unwrap_or(&op.id).to_string();
            (
                format!(
                    "{short} (clients: {}, {} requests)",
                    clients.join(", "),
                    op.count
                ),
                op.body,
            )
        })
        .collect())
}

/// `portico check` arguments.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Subgraph list used to compose the proposed schema.
    #[arg(long, default_value = "supergraph/subgraphs.toml")]
    pub subgraphs: PathBuf,
    /// The current API schema (default: the committed API schema, `--api-schema`).
    #[arg(long)]
    pub old: Option<PathBuf>,
    /// The proposed API schema (default: freshly composed from the subgraph list).
    #[arg(long)]
    pub new: Option<PathBuf>,
    /// Read the current schema from a running gateway's introspection (its GraphQL URL;
    /// introspection must be enabled there).
    #[arg(long, conflicts_with = "old")]
    pub old_url: Option<String>,
    /// Read the proposed schema from a running gateway's introspection.
    #[arg(long, conflicts_with = "new")]
    pub new_url: Option<String>,
    /// Extra request header for `--old-url`/`--new-url`, `Name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Client operations: a folder of .graphql files or a persisted-operations JSON file.
    #[arg(long)]
    pub operations: Option<PathBuf>,
    /// Operations gateways recorded: their `[usage] file`, or the Redis URL of their
    /// `[usage] redis_url`. A breaking change none of them uses is safe; those used name
    /// their clients. Combines with `--operations`.
    #[arg(long)]
    pub usage: Option<String>,
    /// Key prefix of the recorded usage in Redis (`[usage] redis_key_prefix`).
    #[arg(long, default_value = "portico:usage:")]
    pub usage_prefix: String,
    /// Only operations recorded as seen in the last N days count (`--usage`).
    #[arg(long, default_value_t = 30)]
    pub usage_window_days: u64,
    /// The committed API schema, what `portico compose --api-output` writes: the default
    /// of `--old`, and the file `--format github` annotations point at when the proposed
    /// schema is composed (and that file holds it, as in a pull request that regenerated
    /// it).
    #[arg(long, default_value = "schema.graphql")]
    pub api_schema: PathBuf,
    /// Exit 0 even when there are breaking changes.
    #[arg(long)]
    pub allow_breaking: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// What `portico check` prints, and its exit code.
#[derive(Debug)]
pub struct CheckOutcome {
    /// 0 safe, 1 breaking (unless allowed), 2 errors.
    pub code: i32,
    /// The rendered report (standard output).
    pub report: String,
    /// Notes, and the error when `code` is 2 (standard error).
    pub messages: String,
}

/// The two schemas and the operations of a check.
struct CheckInputs {
    old: String,
    new: String,
    operations: Option<Vec<(String, String)>>,
    /// The file the new schema's text is (annotations point at its lines), as given.
    new_file: Option<PathBuf>,
    /// Both schemas could carry `@oneOf` (false when one came from a server that does
    /// not answer `isOneOf`: its inputs never show `@oneOf`).
    compare_one_of: bool,
}

/// Where one schema of a check comes from.
enum SchemaFrom<'a> {
    File(&'a Path),
    Url(&'a str),
}

/// One schema of a check, and whether it can carry `@oneOf`.
async fn read_schema(
    from: SchemaFrom<'_>,
    headers: &[String],
    messages: &mut String,
) -> Result<(String, bool)> {
    match from {
        SchemaFrom::Url(url) => {
            let got = introspect(url, headers).await?;
            if !got.knows_one_of {
                messages.push_str(&format!(
                    "note: {url} does not answer isOneOf (introspection before the 2025 spec): \
                     @oneOf changes are not compared\n"
                ));
            }
            Ok((got.sdl, got.knows_one_of))
        }
        SchemaFrom::File(file) => Ok((
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
            true,
        )),
    }
}

async fn check_inputs(args: &CheckArgs, messages: &mut String) -> Result<CheckInputs> {
    let (new, new_one_of, new_file) = match (&args.new, &args.new_url) {
        (Some(file), _) => {
            let (sdl, one_of) =
                read_schema(SchemaFrom::File(file), &args.headers, messages).await?;
            (sdl, one_of, Some(file.clone()))
        }
        (None, Some(url)) => {
            let (sdl, one_of) = read_schema(SchemaFrom::Url(url), &args.headers, messages).await?;
            (sdl, one_of, None)
        }
        (None, None) => {
            let inputs = inputs(&args.subgraphs, None).await?;
            let sdl = match compose_or_report(&inputs, args.format) {
                Ok(c) => with_newline(&c.api_sdl),
                Err(_) => bail!("composition failed"),
            };
            // In a pull request that regenerated it, the committed API schema is the
            // composed one, line for line: annotations point at that file. When it is
            // stale, its lines are not the composed schema's, and annotations name no
            // file.
            let committed = std::fs::read_to_string(&args.api_schema).unwrap_or_default();
            let file = if committed == sdl {
                Some(args.api_schema.clone())
            } else {
                if matches!(args.format, Format::Github) {
                    messages.push_str(&format!(
                        "note: {} is not the composed schema (run `portico compose`): \
                         annotations name no file\n",
                        args.api_schema.display()
                    ));
                }
                None
            };
            (sdl, true, file)
        }
    };
    let old_from = match (&args.old, &args.old_url) {
        (Some(file), _) => SchemaFrom::File(file),
        (None, Some(url)) => SchemaFrom::Url(url),
        (None, None) => SchemaFrom::File(&args.api_schema),
    };
    let (old, old_one_of) = read_schema(old_from, &args.headers, messages).await?;
    let mut operations = match &args.operations {
        Some(p) => Some(load_operations(p)?),
        None => None,
    };
    if let Some(source) = &args.usage {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let used = load_usage_from(source, &args.usage_prefix, args.usage_window_days, now)?;
        operations.get_or_insert_with(Vec::new).extend(used);
    }
    Ok(CheckInputs {
        old,
        new,
        operations,
        new_file,
        compare_one_of: old_one_of && new_one_of,
    })
}

/// A path as GitHub names a repository's file: relative, `/`-separated, no leading `./`
/// (`portico check` runs at the repository's root in CI).
fn annotation_path(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut rest = text.as_str();
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    rest.to_string()
}

/// `portico check`: read both schemas (files, `--old-url`/`--new-url` introspection, or
/// the new one composed from the subgraph list), compare them and render the report.
/// Exit code 0 safe, 1 breaking unless allowed, 2 when a schema or the operations cannot
/// be read (an unreachable URL, a refused introspection, an invalid schema, …).
pub async fn run_check(args: &CheckArgs) -> CheckOutcome {
    let mut messages = String::new();
    let inputs = match check_inputs(args, &mut messages).await {
        Ok(inputs) => inputs,
        Err(e) => {
            messages.push_str(&format!("error: {e:#}\n"));
            return CheckOutcome {
                code: 2,
                report: String::new(),
                messages,
            };
        }
    };
    let report = match &inputs.operations {
        Some(ops) => diff::diff_with_operations(&inputs.old, &inputs.new, ops),
        None => diff::diff(&inputs.old, &inputs.new).map(diff::Report::from_changes),
    };
    let mut report = match report {
        Ok(r) => r,
        Err(e) => {
            messages.push_str(&format!("error: {e}\n"));
            return CheckOutcome {
                code: 2,
                report: String::new(),
                messages,
            };
        }
    };
    if !inputs.compare_one_of {
        // One side cannot show `@oneOf`: its absence there is no change.
        report
            .changes
            .retain(|c| !matches!(c.code, "INPUT_ONE_OF_ADDED" | "INPUT_ONE_OF_REMOVED"));
    }
    let rendered = match args.format {
        Format::Text => diff::render_text(&report),
        Format::Json => with_newline(&diff::render_json(&report)),
        Format::Github => {
            let file = inputs.new_file.as_deref().map(annotation_path);
            diff::render_github(&report, file.as_deref())
        }
    };
    let code = if report.is_breaking() && !args.allow_breaking {
        1
    } else {
        0
    };
    CheckOutcome {
        code,
        report: rendered,
        messages,
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn a_change_no_recorded_operation_uses_is_safe_and_used_ones_name_their_clients() {
        let dir = std::env::temp_dir().join(format!("portico-check-usage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("usage.json");
        let day = 86_400;
        let now = 100 * day;
        let op = |id: &str, body: &str, clients: &[&str], last_seen: u64| {
            serde_json::json!({
                "id": id, "body": body, "clients": clients, "count": 3,
                "firstSeen": last_seen, "lastSeen": last_seen
            })
        };
        std::fs::write(
            &path,
            serde_json::json!([
                op("aaaaaaaaaaaaaaaa", "{ a }", &["ios@1.2", "web"], now - day),
                // Seen only 40 days ago: outside a 30-day window.
                op("bbbbbbbbbbbbbbbb", "{ b }", &["old-app"], now - 40 * day),
            ])
            .to_string(),
        )
        .expect("write");
        let ops = load_usage(&path, 30, now).expect("usage");
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].0, "aaaaaaaaaaaa (clients: ios@1.2, web, 3 requests)");
        let old = "type Query { a: Int b: Int c: Int }";
        // Removing `b` (not used in the window) and `c` (never used): not blocking.
        let report = diff::diff_with_operations(old, "type Query { a: Int }", &ops).expect("diff");
        assert!(!report.is_breaking(), "{report:?}");
        // Removing `a`: blocking, and the clients are named.
        let report =
            diff::diff_with_operations(old, "type Query { b: Int c: Int }", &ops).expect("diff");
        assert!(report.is_breaking());
        let text = diff::render_text(&report);
        assert!(text.contains("ios@1.2"), "{text}");
        // A 60-day window sees `b` too.
        let ops = load_usage(&path, 60, now).expect("usage");
        let report = diff::diff_with_operations(old, "type Query { a: Int }", &ops).expect("diff");
        assert!(report.is_breaking());
        assert!(load_usage(&dir.join("missing.json"), 30, now).is_err());
    }

    /// What replicas recorded in Redis decides the same way, clients named.
    #[test]
    fn usage_recorded_in_redis_is_read_by_the_check() {
        let url = "redis://127.0.0.1:6379";
        let up = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(std::time::Duration::from_secs(1)))
            .is_ok();
        if !up {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis is required in CI (127.0.0.1:6379)"
            );
            eprintln!(
                "\n!!!!! SKIPPED usage_recorded_in_redis_is_read_by_the_check: no Redis !!!!!\n"
            );
            return;
        }
        let prefix = format!("portico-test:check-usage:{}:", std::process::id());
        let sink =
            portico_gateway::usage::RedisSink::new(url, &prefix, std::time::Duration::from_secs(2))
                .expect("sink");
        let recorder = portico_gateway::usage::UsageRecorder::with_sinks(None, Some(sink), 100);
        recorder.record("aaaaaaaaaaaaaaaa", "{ a }", "ios", "1.2");
        recorder.flush().expect("flush");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .expect("clock");
        let ops = load_usage_from(url, &prefix, 30, now).expect("usage");
        assert_eq!(
            ops,
            vec![(
                "aaaaaaaaaaaa (clients: ios@1.2, 1 requests)".to_string(),
                "{ a }".to_string()
            )]
        );
        let report = diff::diff_with_operations(
            "type Query { a: Int b: Int }",
            "type Query { b: Int }",
            &ops,
        )
        .expect("diff");
        assert!(report.is_breaking());
        assert!(load_usage_from("redis://127.0.0.1:1", &prefix, 30, now).is_err());
        let mut c = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut c)
            .expect("keys");
        let _: () = redis::cmd("DEL").arg(keys).query(&mut c).expect("clean up");
    }
}

/// `portico check` over real HTTP: `--old-url`/`--new-url` introspect a server on
/// 127.0.0.1 (one that answers like Portico's gateway, through apollo-compiler, which
/// refuses `isOneOf`; one built with async-graphql, which answers it), and a URL nothing
/// listens on is exit code 2.
#[cfg(test)]
mod check_tests {
    use super::*;
    use apollo_compiler::{ExecutableDocument, Schema};
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::post;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    async fn check(args: &[&str]) -> CheckOutcome {
        let mut argv = vec!["check"];
        argv.extend_from_slice(args);
        let cli = <Cli as clap::Parser>::try_parse_from(argv).expect("arguments");
        run_check(&cli.check).await
    }

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/graphql")
    }

    /// Answers GraphQL requests the way Portico's gateway answers introspection: the
    /// query validated and executed by apollo-compiler against `sdl`, refused with 400
    /// and its validation errors. Records each query it receives.
    async fn apollo_compiler_server(sdl: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/graphql",
            post(move |Json(body): Json<Value>| {
                let log = log.clone();
                async move {
                    let query = body["query"].as_str().unwrap_or_default().to_string();
                    log.lock().expect("log").push(query.clone());
                    let schema = Schema::parse_and_validate(sdl, "s.graphql").expect("schema");
                    let doc = match ExecutableDocument::parse_and_validate(&schema, query, "q") {
                        Ok(doc) => doc,
                        Err(e) => {
                            let errors: Vec<Value> = e
                                .errors
                                .iter()
                                .map(|d| json!({"message": d.error.to_string()}))
                                .collect();
                            return (StatusCode::BAD_REQUEST, Json(json!({"errors": errors})));
                        }
                    };
                    let op = doc.operations.get(None).expect("one operation");
                    let vars = apollo_compiler::request::coerce_variable_values(
                        &schema,
                        op,
                        &Default::default(),
                    )
                    .expect("no variables");
                    let response = apollo_compiler::introspection::partial_execute(
                        &schema,
                        &schema.implementers_map(),
                        &doc,
                        op,
                        &vars,
                    )
                    .expect("introspection");
                    (
                        StatusCode::OK,
                        Json(serde_json::to_value(response).expect("json")),
                    )
                }
            }),
        );
        (serve(app).await, seen)
    }

    fn write(name: &str, sdl: &str) -> String {
        let dir = std::env::temp_dir().join(format!("portico-check-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(name);
        std::fs::write(&path, sdl).expect("write");
        path.to_string_lossy().into_owned()
    }

    const SERVED: &str = "type Query { a: Int b: Int find(by: Lookup): Int }\n\
                          input Lookup { id: ID email: String }\n";

    /// `--old-url` is what the proposed schema is compared with: the field the new file
    /// drops is reported. A server without `isOneOf` is asked twice, and `@oneOf` (which
    /// it cannot show) is not reported as added.
    #[tokio::test]
    async fn old_url_is_introspected_and_compared() {
        let (url, seen) = apollo_compiler_server(SERVED).await;
        let new = write(
            "old-url-new.graphql",
            "type Query { a: Int find(by: Lookup): Int }\ninput Lookup @oneOf { id: ID email: String }\n",
        );
        let out = check(&["--old-url", &url, "--new", &new]).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.report
                .contains("[FIELD_REMOVED] Query.b: Field \"Query.b\" was removed"),
            "{out:?}"
        );
        assert!(
            out.report.ends_with("1 breaking, 0 dangerous, 0 safe\n"),
            "{out:?}"
        );
        assert!(
            out.messages
                .contains("does not answer isOneOf (introspection before the 2025 spec)"),
            "{out:?}"
        );
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 2, "asked with isOneOf, then without");
        assert!(seen[0].contains("isOneOf") && !seen[1].contains("isOneOf"));

        // The same schema on both sides: nothing to report.
        let same = write("old-url-same.graphql", SERVED);
        let out = check(&["--old-url", &url, "--new", &same]).await;
        assert_eq!(
            (out.code, out.report.as_str()),
            (0, "0 breaking, 0 dangerous, 0 safe\n")
        );
    }

    #[derive(async_graphql::OneofObject)]
    enum Lookup {
        Id(async_graphql::ID),
        Email(String),
    }

    struct Query;

    #[async_graphql::Object]
    impl Query {
        async fn find(&self, by: Lookup) -> i32 {
            match by {
                Lookup::Id(_) => 1,
                Lookup::Email(_) => 2,
            }
        }
    }

    /// `--new-url` against a server that answers `isOneOf` (async-graphql): asked once,
    /// and the input that became `@oneOf` is a breaking change.
    #[tokio::test]
    async fn new_url_sees_one_of() {
        let schema = async_graphql::Schema::new(
            Query,
            async_graphql::EmptyMutation,
            async_graphql::EmptySubscription,
        );
        let count = Arc::new(Mutex::new(0));
        let counter = count.clone();
        let app = axum::Router::new().route(
            "/graphql",
            post(move |Json(req): Json<async_graphql::Request>| {
                let schema = schema.clone();
                let counter = counter.clone();
                async move {
                    *counter.lock().expect("count") += 1;
                    Json(schema.execute(req).await)
                }
            }),
        );
        let url = serve(app).await;
        let old = write(
            "new-url-old.graphql",
            "type Query { find(by: Lookup!): Int! }\ninput Lookup { id: ID email: String }\n",
        );
        let out = check(&["--old", &old, "--new-url", &url]).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.report.contains("[INPUT_ONE_OF_ADDED] Lookup:"),
            "{out:?}"
        );
        assert!(!out.messages.contains("isOneOf"), "{out:?}");
        assert_eq!(*count.lock().expect("count"), 1);
        // A schema read from a server is in no file: annotations name none.
        let out = check(&["--old", &old, "--new-url", &url, "--format", "github"]).await;
        assert!(
            out.report.contains(
                "::error title=INPUT_ONE_OF_ADDED Lookup::Input object \"Lookup\" became @oneOf"
            ),
            "{out:?}"
        );
        assert!(!out.report.contains("file="), "{out:?}");
    }

    /// A URL nothing listens on, or a server that refuses introspection, is an error:
    /// exit code 2 and a message naming the URL.
    #[tokio::test]
    async fn unreachable_or_refusing_urls_are_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}/graphql", listener.local_addr().expect("address"));
        drop(listener);
        let file = write("dead.graphql", SERVED);
        for args in [
            ["--old-url", &dead, "--new", &file],
            ["--old", &file, "--new-url", &dead],
        ] {
            let out = check(&args).await;
            assert_eq!(out.code, 2, "{out:?}");
            assert!(
                out.messages
                    .starts_with(&format!("error: introspecting {dead}")),
                "{out:?}"
            );
            assert!(out.report.is_empty());
        }

        let app = axum::Router::new().route(
            "/graphql",
            post(|| async { Json(json!({"errors": [{"message": "introspection is disabled"}]})) }),
        );
        let refusing = serve(app).await;
        let out = check(&["--old-url", &refusing, "--new", &file]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.messages
                .contains(&format!("error: {refusing} refused introspection"))
                && out.messages.contains("introspection is disabled"),
            "{out:?}"
        );

        let app =
            axum::Router::new().route("/graphql", post(|| async { "<html>not found</html>" }));
        let not_graphql = serve(app).await;
        let out = check(&["--old-url", &not_graphql, "--new", &file]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.messages.contains("did not answer JSON (HTTP 200 OK)"),
            "{out:?}"
        );
    }
}

/// `--format github` annotations name the file the new schema was read from, and the
/// line of each change in it.
#[cfg(test)]
mod annotation_tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    async fn check(args: &[&str]) -> CheckOutcome {
        let mut argv = vec!["check", "--format", "github"];
        argv.extend_from_slice(args);
        let cli = <Cli as clap::Parser>::try_parse_from(argv).expect("arguments");
        run_check(&cli.check).await
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "portico-check-annotations-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// The line (from 1) of the first line of `text` that is `line`.
    fn line_of(text: &str, line: &str) -> usize {
        text.lines()
            .position(|l| l == line)
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("no line {line:?} in\n{text}"))
    }

    #[tokio::test]
    async fn a_new_schema_file_is_annotated_at_its_lines() {
        let dir = dir("files");
        let old = dir.join("old.graphql");
        let new = dir.join("new.graphql");
        std::fs::write(&old, "type Query {\n  a: Int\n  b: Int\n  c: Int\n}\n").expect("old");
        std::fs::write(&new, "type Query {\n  a: Int\n  c: Int\n  d: Int\n}\n").expect("new");
        let (old, new) = (old.to_string_lossy(), new.to_string_lossy());
        let out = check(&["--old", &old, "--new", &new]).await;
        assert_eq!(out.code, 1, "{out:?}");
        let file = annotation_path(Path::new(new.as_ref()));
        assert_eq!(
            out.report,
            format!(
                "::error file={file},line=3,title=FIELD_REMOVED Query.b::Field \"Query.b\" was removed\n\
                 ::notice file={file},line=4,title=FIELD_ADDED Query.d::Field \"Query.d\" was added\n"
            )
        );
        assert_eq!(
            annotation_path(Path::new("./././schema.graphql")),
            "schema.graphql"
        );
        assert_eq!(annotation_path(Path::new("a/b.graphql")), "a/b.graphql");
    }

    /// Composed from subgraphs, the new schema is annotated in the committed API schema
    /// (`--api-schema`) when that file holds it, and in no file when it is stale.
    #[tokio::test]
    async fn a_composed_schema_is_annotated_in_the_committed_api_schema() {
        let dir = dir("composed");
        let sdl = "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.5\", import: [\"@key\"])\n\
                   type Query { a: Int b: String }\n";
        std::fs::write(dir.join("a.graphql"), sdl).expect("sdl");
        let list = dir.join("subgraphs.toml");
        std::fs::write(
            &list,
            "[[subgraph]]\nname = \"a\"\nurl = \"http://a\"\nsdl = \"a.graphql\"\n",
        )
        .expect("list");
        let composed = compose::compose(&inputs(&list, None).await.expect("inputs"))
            .expect("composes")
            .api_sdl;
        let composed = with_newline(&composed);
        let api = dir.join("schema.graphql");
        std::fs::write(&api, &composed).expect("api");
        let base = dir.join("base.graphql");
        std::fs::write(&base, "type Query { a: Int }\n").expect("base");
        let (list, api, base) = (
            list.to_string_lossy(),
            api.to_string_lossy(),
            base.to_string_lossy(),
        );
        let args = ["--subgraphs", &list, "--api-schema", &api, "--old", &base];
        let out = check(&args).await;
        assert_eq!(out.code, 0, "{out:?}");
        let line = line_of(&composed, "  b: String");
        assert_eq!(
            out.report,
            format!(
                "::notice file={},line={line},title=FIELD_ADDED Query.b::Field \"Query.b\" was added\n",
                annotation_path(Path::new(api.as_ref()))
            )
        );
        assert_eq!(out.messages, "");

        std::fs::write(api.as_ref(), "type Query { a: Int }\n").expect("stale");
        let out = check(&args).await;
        assert_eq!(
            out.report,
            "::notice title=FIELD_ADDED Query.b::Field \"Query.b\" was added\n"
        );
        assert!(
            out.messages.contains("is not the composed schema"),
            "{out:?}"
        );
    }
}
