//! Planner fixtures: each `tests/fixtures/<case>/` holds `supergraph.graphql` (composed
//! from `subgraphs/*.graphql` by `compose-fixtures.mjs`), `operation.graphql`, optional
//! `options.json` (`{"override_labels": [..], "max_steps": n}`) and `plan.txt`, the
//! expected plan text (or `error: <message>` when planning must fail).
//! A case may plan more operations on its supergraph: `operations/<name>.graphql`, each
//! with its `operations/<name>.plan.txt`.
//! `UPDATE_PLANS=1 cargo test -p portico-federation --test fixtures` rewrites the plans.

use apollo_compiler::ExecutableDocument;
use portico_federation::plan::PlanNode;
use portico_federation::{PlanOptions, Supergraph, plan};
use std::path::Path;

fn run_case(dir: &Path) -> Result<(), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"));
    let supergraph = Supergraph::parse(&read("supergraph.graphql")?).map_err(|e| e.to_string())?;
    let mut options = PlanOptions::default();
    if let Ok(json) = read("options.json") {
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        if let Some(labels) = v["override_labels"].as_array() {
            options.override_labels = labels
                .iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect();
        }
        if let Some(max) = v["max_steps"].as_u64() {
            options.max_steps = max as usize;
        }
    }
    // `operation.graphql` → `plan.txt`, and `operations/<name>.graphql` →
    // `operations/<name>.plan.txt` (more operations on the same supergraph).
    let mut cases = vec![(dir.join("operation.graphql"), dir.join("plan.txt"))];
    if let Ok(entries) = std::fs::read_dir(dir.join("operations")) {
        let mut more: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
            .map(|p| (p.clone(), p.with_extension("plan.txt")))
            .collect();
        more.sort();
        cases.extend(more);
    }
    for (operation, expected_path) in cases {
        plan_case(&supergraph, &options, &operation, &expected_path)?;
    }
    Ok(())
}

fn plan_case(
    supergraph: &Supergraph,
    options: &PlanOptions,
    operation: &Path,
    expected_path: &Path,
) -> Result<(), String> {
    let name = operation.display();
    let op_text = std::fs::read_to_string(operation).map_err(|e| format!("{name}: {e}"))?;
    let doc = ExecutableDocument::parse_and_validate(
        supergraph.api_schema(),
        op_text,
        "operation.graphql",
    )
    .map_err(|e| format!("{name}: {}", e.errors))?;
    let actual = match plan(supergraph, &doc, None, options) {
        Ok(p) => p.to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    if std::env::var_os("UPDATE_PLANS").is_some() {
        std::fs::write(expected_path, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if expected != actual {
        return Err(format!(
            "{name}: plan differs.\n--- expected\n{expected}\n--- actual\n{actual}"
        ));
    }
    Ok(())
}

#[test]
fn every_fixture_plans_as_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("operation.graphql").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures found");
    let mut failures = Vec::new();
    for dir in &dirs {
        if let Err(e) = run_case(dir) {
            failures.push(format!(
                "{}: {e}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

// ---- "it composes" implies "every query on it plans" ---------------------------------

/// A coverage query (`{ a { b { leaf } } }`) with its innermost selection deferred
/// (`{ a { b { ... @defer { leaf } } } }`).
fn defer_innermost(query: &str) -> String {
    let end = query
        .find(" }")
        .expect("a coverage query closes a selection set");
    let start = query[..end].rfind("{ ").expect("and opens one") + 2;
    format!(
        "{}... @defer {{ {} }}{}",
        &query[..start],
        &query[start..end],
        &query[end..]
    )
}

/// Every supergraph of the test suites (planner fixtures, composition fixtures, the
/// gateway's execution corpus): every field reachable in its API schema plans.
#[test]
fn every_reachable_field_of_every_fixture_supergraph_plans() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = [
        manifest.join("tests/fixtures"),
        manifest.join("tests/composition"),
        manifest.join("../../tests/fixtures"),
    ];
    let mut supergraphs = Vec::new();
    for root in &roots {
        for entry in std::fs::read_dir(root).expect("fixtures folder").flatten() {
            let file = entry.path().join("supergraph.graphql");
            if file.exists() {
                supergraphs.push(file);
            }
        }
    }
    supergraphs.sort();
    assert!(
        supergraphs.len() > 200,
        "found {} supergraphs",
        supergraphs.len()
    );
    let mut failures = Vec::new();
    let (mut planned, mut deferred_planned) = (0, 0);
    for file in &supergraphs {
        let sdl = std::fs::read_to_string(file).expect("supergraph");
        let supergraph = Supergraph::parse(&sdl).expect("fixture supergraph parses");
        for query in portico_federation::plan::coverage::queries(supergraph.api_schema()) {
            let doc = match ExecutableDocument::parse_and_validate(
                supergraph.api_schema(),
                &query,
                "q.graphql",
            ) {
                Ok(doc) => doc,
                Err(e) => {
                    failures.push(format!(
                        "{}: generated an invalid query {query}: {}",
                        file.display(),
                        e.errors
                    ));
                    continue;
                }
            };
            planned += 1;
            let plain = match plan(&supergraph, &doc, None, &PlanOptions::default()) {
                Ok(p) => p,
                // Features the planner refuses on purpose, with a client error.
                Err(e) if e.code() == "QUERY_PLAN_UNSUPPORTED" => continue,
                Err(e) => {
                    failures.push(format!("{}: {query}\n  {e}", file.display()));
                    continue;
                }
            };
            // The same query with its innermost selection deferred plans too, into a
            // `Defer` node whose deferred part is that selection's (or, where no
            // subgraph can return an object the fragment applies to, as without it).
            let deferred = defer_innermost(&query);
            let doc = ExecutableDocument::parse_and_validate(
                supergraph.api_schema(),
                &deferred,
                "q.graphql",
            )
            .expect("a deferred coverage query validates");
            deferred_planned += 1;
            match plan(&supergraph, &doc, None, &PlanOptions::default()) {
                Ok(p) => match p.node {
                    Some(PlanNode::Defer { deferred: d, .. }) if d.len() == 1 => {}
                    _ if p == plain => {}
                    other => failures.push(format!(
                        "{}: {deferred}\n  planned without a Defer node: {other:?}",
                        file.display()
                    )),
                },
                Err(e) => failures.push(format!("{}: {deferred}\n  {e}", file.display())),
            }
        }
    }
    assert!(
        deferred_planned > 1000,
        "{deferred_planned} deferred queries"
    );
    assert!(
        failures.is_empty(),
        "{} of {planned} generated queries failed to plan:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
