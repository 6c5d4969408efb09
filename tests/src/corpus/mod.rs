//! The federation corpus: `tests/fixtures/<case>/` folders, each a set of subgraph SDLs
//! with their data, an operation (+ `variables.json`, optional `config.json`), the
//! composed `supergraph.graphql`, the expected response (`expected.json`, produced by a
//! reference gateway through `tests/fixtures/reference.mjs` and reviewed by hand; see a
//! case's `notes.md` where it was corrected), the plan snapshot (`plan.txt`) and, for
//! batching proofs, the number of requests each subgraph must receive (`requests.json`;
//! a subgraph it does not list must receive none).
//!
//! One test runs every case: it starts the case's data-driven subgraphs
//! ([`subgraph::TestSubgraph`]), a real `portico_gateway::Gateway` on a real socket with
//! the subgraph URLs overridden, sends the operation over HTTP and compares:
//! - `data`: exact, field order included;
//! - `errors`: as a set ordered by path; `message` and `path` exact (an expected message
//!   `"<any>"` matches any message), expected `extensions` entries must be present and
//!   equal (the gateway may add more), `locations` compared only when expected;
//! - the plan text (`extensions.queryPlan`, dev mode) with `plan.txt`; `UPDATE_PLANS=1`
//!   rewrites it, and a missing `plan.txt` is written (not for a case listed in
//!   `KNOWN_FAILURES`: a failing plan is not recorded as expected);
//! - request counts with `requests.json`.
//!
//! Every failing case is reported, with diffs. Cases listed in
//! `tests/fixtures/KNOWN_FAILURES` (`case-name  reason`, one per line) are expected to
//! fail; the test fails when an unlisted case fails *or a listed case passes*, so the
//! list stays honest. `CORPUS_CASE=substring` runs only matching cases.
//!
//! Plan quality is reported, not tested: each plan's fetch count and sequential depth
//! ([`plan_shape`]) are compared with Hive Router's planner on the same case
//! (`tests/fixtures/reference-plans.json`, from `plan-quality.mjs`); the cases where
//! Portico is worse are printed and kept in `tests/fixtures/PLAN_QUALITY_GAPS`
//! (`UPDATE_PLAN_QUALITY=1` rewrites it).

#[cfg(test)]
mod coverage;
pub mod subgraph;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portico_gateway::config::SubgraphConfig;
use portico_gateway::{Gateway, GatewayConfig};
use portico_trust::TrustSigner;
use serde_json::Value;

use subgraph::{Shared, TestSubgraph};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read_json(path: &Path) -> Result<Option<Value>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join("KNOWN_FAILURES")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

fn case_names() -> Vec<String> {
    let filter = std::env::var("CORPUS_CASE").ok();
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("operation.graphql").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_cases_match_expected_responses_plans_and_request_counts() {
    let known = known_failures();
    let names = case_names();
    assert!(!names.is_empty(), "no corpus case found");
    let mut passed = 0usize;
    let mut known_failed = Vec::new();
    let mut unexpected_failures = Vec::new();
    let mut unexpected_passes = Vec::new();
    let mut shapes: BTreeMap<String, Option<PlanShape>> = BTreeMap::new();
    for name in &names {
        let (problems, shape) = match tokio::time::timeout(
            Duration::from_secs(30),
            run_case(name, known.contains_key(name)),
        )
        .await
        {
            Ok(p) => p,
            Err(_) => (vec!["timed out after 30 s".to_string()], None),
        };
        shapes.insert(name.clone(), shape);
        match (problems.is_empty(), known.get(name)) {
            (true, None) => passed += 1,
            (true, Some(_)) => unexpected_passes.push(name.clone()),
            (false, Some(reason)) => known_failed.push(format!("{name}: {reason}")),
            (false, None) => {
                unexpected_failures.push(format!("=== {name}\n{}", problems.join("\n")))
            }
        }
    }
    let mut report = format!(
        "corpus: {} cases, {passed} passed, {} known failures, {} unexpected failures, {} unexpected passes\n",
        names.len(),
        known_failed.len(),
        unexpected_failures.len(),
        unexpected_passes.len()
    );
    for f in &unexpected_failures {
        report.push_str(f);
        report.push('\n');
    }
    for p in &unexpected_passes {
        report.push_str(&format!(
            "=== {p}\npasses but is listed in tests/fixtures/KNOWN_FAILURES: remove it\n"
        ));
    }
    eprintln!("{report}");
    if !known_failed.is_empty() {
        eprintln!("known failures:\n  {}", known_failed.join("\n  "));
    }
    plan_quality_report(&shapes);
    assert!(
        unexpected_failures.is_empty() && unexpected_passes.is_empty(),
        "{report}"
    );
}

/// Runs one case; returns what differs (empty = pass) and the shape of Portico's plan
/// (`None` when the gateway returned no plan).
async fn run_case(name: &str, known_failure: bool) -> (Vec<String>, Option<PlanShape>) {
    match run_case_inner(name, known_failure).await {
        Ok(result) => result,
        Err(e) => (vec![e], None),
    }
}

/// A case's data-driven subgraphs and a gateway in front of them, on real sockets.
struct Served {
    subgraphs: Vec<TestSubgraph>,
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts case `name`'s subgraphs (with their data) and a dev-mode gateway on its
/// supergraph, with cost limits and rate limiting off.
async fn serve_case(name: &str) -> Result<Served, String> {
    let dir = fixtures().join(name);
    let supergraph = std::fs::read_to_string(dir.join("supergraph.graphql"))
        .map_err(|e| format!("{name}/supergraph.graphql: {e}"))?;
    let config = read_json(&dir.join("config.json"))?.unwrap_or(Value::Null);

    // Subgraphs.
    let shared = Arc::new(Shared::default());
    let mut subgraphs: Vec<TestSubgraph> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("subgraphs"))
        .map_err(|e| format!("{name}/subgraphs: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .collect();
    files.sort();
    for file in files {
        let sg_name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let sdl = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let data = read_json(&dir.join("data").join(format!("{sg_name}.json")))?
            .unwrap_or_else(|| serde_json::json!({}));
        subgraphs.push(TestSubgraph::start(&sg_name, &sdl, data, shared.clone()).await?);
    }

    // Gateway.
    let mut gw_config = GatewayConfig {
        dev: true,
        include_plan: true,
        subgraph_timeout_ms: 5_000,
        ..GatewayConfig::default()
    };
    for sg in &subgraphs {
        gw_config.subgraphs.insert(
            sg.name.clone(),
            SubgraphConfig {
                url: Some(sg.url.clone()),
                ..SubgraphConfig::default()
            },
        );
    }
    // The corpus tests federation planning and execution, not demand control.
    gw_config.rate_limit.enabled = false;
    gw_config.cost.max_cost = f64::MAX;
    if let Some(labels) = config.get("overrideLabels").and_then(|l| l.as_array()) {
        gw_config.override_labels = labels
            .iter()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect();
    }
    let gateway = Gateway::new(gw_config, &supergraph, TrustSigner::generate())
        .map_err(|e| format!("gateway refused the supergraph: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let router = gateway.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Served {
        subgraphs,
        addr,
        server,
    })
}

async fn run_case_inner(
    name: &str,
    known_failure: bool,
) -> Result<(Vec<String>, Option<PlanShape>), String> {
    let dir = fixtures().join(name);
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{name}/{f}: {e}"));
    let operation = read("operation.graphql")?;
    let variables = read_json(&dir.join("variables.json"))?.unwrap_or(Value::Null);
    let expected = read_json(&dir.join("expected.json"))?
        .ok_or_else(|| format!("{name}: no expected.json (run tests/fixtures/reference.mjs)"))?;
    let requests = read_json(&dir.join("requests.json"))?;
    let served = serve_case(name).await?;
    let (addr, subgraphs) = (served.addr, &served.subgraphs);

    // Request.
    let mut body = serde_json::json!({ "query": operation });
    if !variables.is_null() {
        body["variables"] = variables;
    }
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("portico-include-plan", "true")
        .header("portico-csrf", "1")
        .json(&body)
        .send()
        .await;
    let response = response.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let mut actual: Value = serde_json::from_str(&text)
        .map_err(|e| format!("HTTP {status}, body is not JSON ({e}): {text}"))?;

    let mut problems = Vec::new();
    let plan = actual
        .get_mut("extensions")
        .and_then(|x| x.as_object_mut())
        .and_then(|x| x.remove("queryPlan"));
    if actual
        .get("extensions")
        .and_then(|x| x.as_object())
        .is_some_and(|x| x.is_empty())
    {
        actual.as_object_mut().map(|o| o.remove("extensions"));
    }
    compare_response(&expected, &actual, &mut problems);
    let shape = plan.as_ref().and_then(|p| p.as_str()).map(plan_shape);
    match plan.as_ref().and_then(|p| p.as_str()) {
        Some(plan) => compare_plan(&dir.join("plan.txt"), plan, known_failure, &mut problems),
        None => {
            if status.is_success() && actual.get("data").is_some() {
                problems.push("response has no extensions.queryPlan".into());
            }
        }
    }
    if let Some(Value::Object(wanted)) = requests {
        for sg in subgraphs {
            let want = wanted.get(&sg.name).and_then(|v| v.as_u64()).unwrap_or(0);
            let got = sg.request_count() as u64;
            if want != got {
                let queries: Vec<String> = sg
                    .requests()
                    .iter()
                    .map(|r| format!("      {} {}", r.query, r.variables))
                    .collect();
                problems.push(format!(
                    "requests to {}: expected {want}, got {got}\n{}",
                    sg.name,
                    queries.join("\n")
                ));
            }
        }
    }
    // `@defer` cases: the same operation asked with incremental delivery must give the
    // payload sequence of `expected-incremental.json` (incremental items compared in
    // path order), planned as `plan-incremental.txt` (a `Defer` node), with the
    // subgraph request counts of `requests-incremental.json`.
    if let Some(wanted) = read_json(&dir.join("expected-incremental.json"))? {
        let counts_before: Vec<usize> = subgraphs.iter().map(|sg| sg.requests().len()).collect();
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .header("content-type", "application/json")
            .header(
                "accept",
                "multipart/mixed;deferSpec=20220824, application/json",
            )
            .header("portico-csrf", "1")
            .header("portico-include-plan", "true")
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("incremental request failed: {e}"))?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        let parts: Vec<Value> = text
            .trim_end_matches("\r\n-----\r\n")
            .split("\r\n---\r\ncontent-type: application/json; charset=utf-8\r\n\r\n")
            .filter(|p| !p.is_empty())
            .map(|p| serde_json::from_str::<Value>(p).map_err(|e| format!("part {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let mut parts = parts;
        let plan = parts
            .last_mut()
            .and_then(|last| last.as_object_mut()?.remove("extensions"))
            .and_then(|mut e| e.as_object_mut()?.remove("queryPlan"));
        match plan.as_ref().and_then(Value::as_str) {
            Some(plan) => compare_plan(
                &dir.join("plan-incremental.txt"),
                plan,
                known_failure,
                &mut problems,
            ),
            None => problems.push("the incremental response carries no queryPlan".into()),
        }
        if let Some(Value::Object(wanted)) = read_json(&dir.join("requests-incremental.json"))? {
            for (sg, before) in subgraphs.iter().zip(counts_before) {
                let want = wanted.get(&sg.name).and_then(Value::as_u64).unwrap_or(0) as usize;
                let got = sg.requests().len() - before;
                if got != want {
                    problems.push(format!(
                        "incremental requests to {}: expected {want}, got {got}",
                        sg.name
                    ));
                }
            }
        }
        let sorted = |mut parts: Vec<Value>| {
            for part in &mut parts {
                if let Some(Value::Array(items)) = part.get_mut("incremental") {
                    items.sort_by_key(|i| i["path"].to_string());
                }
            }
            parts
        };
        let (actual, wanted) = (
            sorted(parts),
            sorted(serde_json::from_value(wanted).map_err(|e| e.to_string())?),
        );
        if actual != wanted {
            problems.push(format!(
                "incremental payloads differ:\n  expected {}\n  actual   {}",
                Value::Array(wanted),
                Value::Array(actual)
            ));
        }
    }
    if !problems.is_empty() {
        let sent: Vec<String> = subgraphs
            .iter()
            .flat_map(|sg| sg.requests())
            .map(|r| format!("  -> {}: {} {}", r.subgraph, r.query, r.variables))
            .collect();
        problems.push(format!("subgraph requests:\n{}", sent.join("\n")));
    }
    Ok((problems, shape))
}

/// Fetch count and sequential depth of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanShape {
    /// Fetch nodes in the plan.
    pub fetches: usize,
    /// Fetches in the longest chain that must run one after the other (Sequence adds,
    /// Parallel and the branches of a Condition take the maximum).
    pub depth: usize,
}

/// The shape of a plan in Portico's text form (`plan.txt`): nodes are the lines
/// starting with `Sequence {`, `Parallel {`, `Flatten(`, `Fetch(`, `BatchFetch(`, `Condition(`, nested
/// by indentation; everything else (operations, requires, Then/Else) is skipped.
pub fn plan_shape(text: &str) -> PlanShape {
    #[derive(Debug)]
    enum Kind {
        Sequence,
        Parallel,
        Fetch,
    }
    // (indent, kind, children) on a stack; a node closes when a line with an indent not
    // deeper than its own starts another node, or at the end.
    struct Node {
        indent: usize,
        kind: Kind,
        children: Vec<PlanShape>,
    }
    fn close(node: Node) -> PlanShape {
        match node.kind {
            Kind::Fetch => PlanShape {
                fetches: 1,
                depth: 1,
            },
            Kind::Sequence => PlanShape {
                fetches: node.children.iter().map(|c| c.fetches).sum(),
                depth: node.children.iter().map(|c| c.depth).sum(),
            },
            Kind::Parallel => PlanShape {
                fetches: node.children.iter().map(|c| c.fetches).sum(),
                depth: node.children.iter().map(|c| c.depth).max().unwrap_or(0),
            },
        }
    }
    let mut stack: Vec<Node> = vec![Node {
        indent: 0,
        kind: Kind::Sequence,
        children: Vec::new(),
    }];
    for line in text.lines() {
        let trimmed = line.trim_start();
        let kind = if trimmed.starts_with("Sequence {") {
            Kind::Sequence
        } else if trimmed.starts_with("Parallel {") || trimmed.starts_with("Condition(") {
            Kind::Parallel
        } else if trimmed.starts_with("Flatten(") {
            // Transparent: a sequence of its one child.
            Kind::Sequence
        } else if trimmed.starts_with("Fetch(") || trimmed.starts_with("BatchFetch(") {
            // A batch is one request (Hive's BatchFetch counts as one fetch too).
            Kind::Fetch
        } else {
            continue;
        };
        let indent = line.len() - trimmed.len() + 1;
        while stack.len() > 1 && stack.last().is_some_and(|n| n.indent >= indent) {
            let done = stack.pop().map(close);
            if let (Some(done), Some(parent)) = (done, stack.last_mut()) {
                parent.children.push(done);
            }
        }
        stack.push(Node {
            indent,
            kind,
            children: Vec::new(),
        });
    }
    while stack.len() > 1 {
        let done = stack.pop().map(close);
        if let (Some(done), Some(parent)) = (done, stack.last_mut()) {
            parent.children.push(done);
        }
    }
    stack.pop().map(close).unwrap_or(PlanShape {
        fetches: 0,
        depth: 0,
    })
}

/// Compares Portico's plan shapes with Hive Router's planner on the same cases
/// (`tests/fixtures/reference-plans.json`, written by `plan-quality.mjs`) and reports
/// the cases where Portico needs more fetches or a deeper sequence. A report, never a
/// failure: the list is printed, and on a full run (no `CORPUS_CASE`) it is compared
/// with `tests/fixtures/PLAN_QUALITY_GAPS`, which `UPDATE_PLAN_QUALITY=1` rewrites.
fn plan_quality_report(shapes: &BTreeMap<String, Option<PlanShape>>) {
    let Ok(Some(reference)) = read_json(&fixtures().join("reference-plans.json")) else {
        eprintln!("plan quality: no tests/fixtures/reference-plans.json");
        return;
    };
    let mut lines = Vec::new();
    let mut unreferenced = Vec::new();
    for (name, shape) in shapes {
        let Some(want) = reference.get(name) else {
            unreferenced.push(name.as_str());
            continue;
        };
        let num = |k: &str| want.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        let (ref_fetches, ref_depth) = (num("fetches"), num("depth"));
        match shape {
            None => lines.push(format!(
                "{name}  no plan (reference: fetches {ref_fetches}, depth {ref_depth})"
            )),
            Some(s) if s.fetches > ref_fetches || s.depth > ref_depth => lines.push(format!(
                "{name}  fetches {} vs {ref_fetches}, depth {} vs {ref_depth}",
                s.fetches, s.depth
            )),
            Some(_) => {}
        }
    }
    let body = format!(
        "# Corpus cases where Portico's plan needs more fetches or a deeper sequence than Hive\n\
         # Router's query planner (tests/fixtures/reference-plans.json, from plan-quality.mjs),\n\
         # or where Portico returned no plan: `case  fetches portico vs reference, depth portico\n\
         # vs reference`. A report, not a test: the corpus test prints it and rewrites this file\n\
         # with UPDATE_PLAN_QUALITY=1 (full runs only). A BatchFetch (entity fetches to one\n\
         # subgraph at several paths, one request) counts as one fetch, as Hive's does.\n{}",
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
    if !unreferenced.is_empty() {
        eprintln!(
            "plan quality: no reference plan for {} (run tests/fixtures/plan-quality.mjs)",
            unreferenced.join(", ")
        );
    }
    eprintln!(
        "plan quality: {} case(s) worse than the reference planner\n  {}",
        lines.len(),
        lines.join("\n  ")
    );
    if std::env::var("CORPUS_CASE").is_ok() {
        return;
    }
    let path = fixtures().join("PLAN_QUALITY_GAPS");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old != body {
        if std::env::var("UPDATE_PLAN_QUALITY").is_ok_and(|v| v == "1") {
            if let Err(e) = std::fs::write(&path, &body) {
                eprintln!("plan quality: cannot write {}: {e}", path.display());
            }
        } else {
            eprintln!(
                "plan quality: tests/fixtures/PLAN_QUALITY_GAPS is stale (UPDATE_PLAN_QUALITY=1 to rewrite)"
            );
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A short line diff: the lines of `expected` and `actual` around the first difference.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    let from = first.saturating_sub(3);
    for line in &e[from..e.len().min(first + 12)] {
        out.push_str(&format!("    - {line}\n"));
    }
    for line in &a[from..a.len().min(first + 12)] {
        out.push_str(&format!("    + {line}\n"));
    }
    format!("  (first difference at line {})\n{out}", first + 1)
}

fn compare_response(expected: &Value, actual: &Value, problems: &mut Vec<String>) {
    let exp_data = expected.get("data").cloned();
    let act_data = actual.get("data").cloned();
    let (e, a) = (
        exp_data
            .as_ref()
            .map(pretty)
            .unwrap_or_else(|| "<absent>".into()),
        act_data
            .as_ref()
            .map(pretty)
            .unwrap_or_else(|| "<absent>".into()),
    );
    if e != a {
        problems.push(format!("data differs:\n{}", diff(&e, &a)));
    }
    let empty = Vec::new();
    let exp_errors = expected
        .get("errors")
        .and_then(|e| e.as_array())
        .unwrap_or(&empty);
    let act_errors = actual
        .get("errors")
        .and_then(|e| e.as_array())
        .unwrap_or(&empty);
    let sort = |errs: &[Value]| {
        let mut v: Vec<Value> = errs.to_vec();
        v.sort_by_key(|e| {
            (
                e.get("path").map(|p| p.to_string()).unwrap_or_default(),
                e.get("message").map(|m| m.to_string()).unwrap_or_default(),
            )
        });
        v
    };
    let (exp_errors, act_errors) = (sort(exp_errors), sort(act_errors));
    let errors_match = exp_errors.len() == act_errors.len()
        && exp_errors
            .iter()
            .zip(&act_errors)
            .all(|(e, a)| error_matches(e, a));
    if !errors_match {
        problems.push(format!(
            "errors differ:\n  expected {}\n  actual   {}",
            Value::Array(exp_errors),
            Value::Array(act_errors)
        ));
    }
}

fn error_matches(expected: &Value, actual: &Value) -> bool {
    let any = |v: Option<&Value>| v.and_then(|v| v.as_str()) == Some("<any>");
    let message_ok =
        any(expected.get("message")) || expected.get("message") == actual.get("message");
    let path_ok = expected.get("path") == actual.get("path");
    let locations_ok =
        expected.get("locations").is_none() || expected.get("locations") == actual.get("locations");
    let extensions_ok = match expected.get("extensions").and_then(|x| x.as_object()) {
        None => true,
        Some(wanted) => wanted.iter().all(|(k, v)| {
            let got = actual.get("extensions").and_then(|x| x.get(k));
            if v.as_str() == Some("<any>") {
                got.is_some()
            } else {
                got == Some(v)
            }
        }),
    };
    message_ok && path_ok && locations_ok && extensions_ok
}

/// A missing `plan.txt` is written, except for a case listed in `KNOWN_FAILURES`: a plan
/// that produces a wrong answer is not recorded as the expected one (such cases carry no
/// `plan.txt` until they pass).
fn compare_plan(path: &Path, plan: &str, known_failure: bool, problems: &mut Vec<String>) {
    let update = std::env::var("UPDATE_PLANS").is_ok_and(|v| v == "1");
    if known_failure && !path.exists() {
        return;
    }
    if update || !path.exists() {
        if let Err(e) = std::fs::write(path, plan) {
            problems.push(format!("cannot write {}: {e}", path.display()));
        }
        return;
    }
    let old = std::fs::read_to_string(path).unwrap_or_default();
    if old != plan {
        problems.push(format!(
            "plan differs from plan.txt (UPDATE_PLANS=1 to accept):\n{}",
            diff(&old, plan)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_shape_counts_fetches_and_sequential_depth() {
        let text = r#"QueryPlan {
  Sequence {
    Fetch(service: "products") {
      {topProducts{name upc __typename}}
    },
    Parallel {
      Flatten(path: "topProducts.@") {
        Fetch(service: "inventory") {
          requires: { ... on Product { __typename upc } }
          =>
          query($representations:[_Any!]!){_entities(representations:$representations){...on Product{inStock}}}
        },
      },
      Sequence {
        Flatten(path: "topProducts.@") {
          Fetch(service: "reviews") {
            {x}
          },
        },
        Condition(if: $v) {
          Then:
            Fetch(service: "a") {
              {x}
            },
          Else:
            Sequence {
              Fetch(service: "b") {
                {x}
              },
              Fetch(service: "c") {
                {x}
              },
            },
        },
      },
    },
  },
}
"#;
        assert_eq!(
            plan_shape(text),
            PlanShape {
                fetches: 6,
                depth: 4
            }
        );
        assert_eq!(
            plan_shape("QueryPlan {\n}\n"),
            PlanShape {
                fetches: 0,
                depth: 0
            }
        );
    }
}
