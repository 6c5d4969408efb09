//! Planner fixtures: each `tests/fixtures/<case>/` holds `supergraph.graphql` (composed
//! from `subgraphs/*.graphql` by `compose-fixtures.mjs`), `operation.graphql`, optional
//! `options.json` (`{"override_labels": [..], "max_steps": n}`) and `plan.txt`, the
//! expected plan text (or `error: <message>` when planning must fail).
//! `UPDATE_PLANS=1 cargo test -p portico-federation --test fixtures` rewrites `plan.txt`.

use apollo_compiler::ExecutableDocument;
use portico_federation::{PlanOptions, Supergraph, plan};
use std::path::Path;

fn run_case(dir: &Path) -> Result<(), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"));
    let supergraph = Supergraph::parse(&read("supergraph.graphql")?).map_err(|e| e.to_string())?;
    let op_text = read("operation.graphql")?;
    let doc = ExecutableDocument::parse_and_validate(
        supergraph.api_schema(),
        op_text,
        "operation.graphql",
    )
    .map_err(|e| e.errors.to_string())?;
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
    let actual = match plan(&supergraph, &doc, None, &options) {
        Ok(p) => p.to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    let expected_path = dir.join("plan.txt");
    if std::env::var_os("UPDATE_PLANS").is_some() {
        std::fs::write(&expected_path, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        return Err(format!(
            "plan differs.\n--- expected\n{expected}\n--- actual\n{actual}"
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
    let mut planned = 0;
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
            match plan(&supergraph, &doc, None, &PlanOptions::default()) {
                Ok(_) => {}
                // Features the planner refuses on purpose, with a client error.
                Err(e) if e.code() == "QUERY_PLAN_UNSUPPORTED" => {}
                Err(e) => failures.push(format!("{}: {query}\n  {e}", file.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {planned} generated queries failed to plan:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
