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
        .header(reqwest::header::ACCEPT, "application/graphql-response+json, application/json")
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
    if !path.exists() {
        bail!("no usage file at {}", path.display());
    }
    let since = now.saturating_sub(window_days.saturating_mul(86_400));
    Ok(portico_gateway::usage::read(path)
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

/// `portico check`: compare two API schemas; returns the exit code
/// (0 safe, 1 breaking unless allowed, 2 errors).
pub fn check_cmd(
    old_sdl: &str,
    new_sdl: &str,
    operations: Option<&[(String, String)]>,
    allow_breaking: bool,
    format: Format,
) -> i32 {
    let report = match operations {
        Some(ops) => diff::diff_with_operations(old_sdl, new_sdl, ops),
        None => diff::diff(old_sdl, new_sdl).map(diff::Report::from_changes),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let out = match format {
        Format::Text => diff::render_text(&report),
        Format::Json => diff::render_json(&report),
        Format::Github => diff::render_github(&report),
    };
    print!("{out}");
    if report.is_breaking() && !allow_breaking {
        1
    } else {
        0
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
}
