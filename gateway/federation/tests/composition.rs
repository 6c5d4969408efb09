//! Composition tests.
//!
//! 1. Interoperability: every planner fixture under `tests/fixtures/<case>/subgraphs/` (and
//!    every case of the gateway's execution corpus, `/tests/fixtures/` at the workspace
//!    root) was composed by `@theguild/federation-composition` into its `supergraph.graphql`,
//!    and every composition fixture that library composes has its output in
//!    `reference.graphql` (`tests/composition-reference.mjs`; except a case with a
//!    `notes.md`, where Portico deliberately differs and says why); Portico must compose the
//!    same subgraphs into a supergraph with the same API schema and the same join
//!    metadata (after `normalize_supergraph`).
//! 2. Composition fixtures: `tests/composition/<case>/subgraphs/*.graphql` (subgraph name
//!    = file name, url = `http://<name>`) → `supergraph.graphql` + `api.graphql` when the
//!    composition succeeds (plus `hints.txt` when it has hints), `diagnostics.txt` when it
//!    fails. `PORTICO_BLESS=1 cargo test -p portico-federation --test composition`
//!    rewrites the expectations.

use portico_federation::Supergraph;
use portico_federation::compose::{SubgraphInput, compose, normalize_supergraph, render_text};
use std::fs;
use std::path::{Path, PathBuf};

fn subgraphs_in(dir: &Path) -> Vec<SubgraphInput> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("subgraphs folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().to_string();
            SubgraphInput {
                url: format!("http://{name}"),
                sdl: fs::read_to_string(p).expect("subgraph SDL"),
                name,
            }
        })
        .collect()
}

fn cases(root: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mut out: Vec<PathBuf> = fs::read_dir(&root)
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("subgraphs").is_dir())
        .collect();
    out.sort();
    out
}

#[test]
fn composes_planner_fixtures_like_the_guild_composition() {
    let mut failures = Vec::new();
    let mut all: Vec<(PathBuf, &str)> = cases("tests/fixtures")
        .into_iter()
        .map(|c| (c, "supergraph.graphql"))
        .collect();
    // The gateway's execution corpus (`tests/fixtures/` at the workspace root): 93 more
    // subgraph sets The Guild composed.
    all.extend(
        cases("../../tests/fixtures")
            .into_iter()
            .filter(|c| c.join("supergraph.graphql").exists())
            .map(|c| (c, "supergraph.graphql")),
    );
    all.extend(
        cases("tests/composition")
            .into_iter()
            .filter(|c| c.join("reference.graphql").exists())
            .map(|c| (c, "reference.graphql")),
    );
    assert!(
        all.len() > 200,
        "only {} reference supergraphs found",
        all.len()
    );
    for (case, reference) in &all {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let reference = fs::read_to_string(case.join(reference)).expect("supergraph");
        let expected = normalize_supergraph(&reference).expect("reference supergraph loads");
        // Routing URLs are not in the subgraph files: take the reference's.
        let urls = Supergraph::parse(&reference).expect("reference loads");
        let mut inputs = subgraphs_in(&case.join("subgraphs"));
        for input in &mut inputs {
            if let Some(s) = urls.subgraphs().iter().find(|s| s.name == input.name) {
                input.url = s.url.clone();
            }
        }
        match compose(&inputs) {
            Err(e) => failures.push(format!(
                "{name}: composition failed:\n{}",
                render_text(&e.errors)
            )),
            Ok(composed) => {
                let actual = normalize_supergraph(&composed.supergraph_sdl)
                    .unwrap_or_else(|e| panic!("{name}: own supergraph does not load: {e}"));
                if actual != expected {
                    failures.push(format!(
                        "{name}: differs\n{}",
                        line_diff(&expected, &actual)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ from @theguild/federation-composition:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for l in &e {
        if !a.contains(l) {
            out.push_str(&format!("  - {l}\n"));
        }
    }
    for l in &a {
        if !e.contains(l) {
            out.push_str(&format!("  + {l}\n"));
        }
    }
    out
}

#[test]
fn composition_fixtures() {
    let bless = std::env::var_os("PORTICO_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases("tests/composition") {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let mut actual: Vec<(&str, String)> = Vec::new();
        match compose(&subgraphs_in(&case.join("subgraphs"))) {
            Ok(c) => {
                Supergraph::parse(&c.supergraph_sdl)
                    .unwrap_or_else(|e| panic!("{name}: supergraph does not load: {e}"));
                actual.push(("supergraph.graphql", c.supergraph_sdl.clone() + "\n"));
                actual.push(("api.graphql", c.api_sdl.clone()));
                if !c.hints.is_empty() {
                    actual.push(("hints.txt", render_text(&c.hints)));
                }
            }
            Err(e) => {
                let mut all = e.errors.clone();
                all.extend(e.hints.clone());
                actual.push(("diagnostics.txt", render_text(&all)));
            }
        }
        for file in [
            "supergraph.graphql",
            "api.graphql",
            "hints.txt",
            "diagnostics.txt",
        ] {
            let path = case.join(file);
            let want = actual.iter().find(|(f, _)| *f == file).map(|(_, t)| t);
            if bless {
                match want {
                    Some(t) => fs::write(&path, t).expect("write expectation"),
                    None => {
                        let _ = fs::remove_file(&path);
                    }
                }
                continue;
            }
            let have = fs::read_to_string(&path).ok();
            if have.as_ref() != want {
                failures.push(format!(
                    "{name}/{file}:\n--- expected\n{}\n--- actual\n{}",
                    have.unwrap_or_else(|| "(no file)".into()),
                    want.cloned().unwrap_or_else(|| "(no file)".into())
                ));
            }
        }
        // A case named `*_fails_*` or with an `expect-codes` file must fail with those codes.
        if let Ok(codes) = fs::read_to_string(case.join("expect-codes")) {
            let got = fs::read_to_string(case.join("diagnostics.txt")).unwrap_or_default();
            let text = if bless {
                actual.iter().map(|(_, t)| t.clone()).collect::<String>()
            } else {
                got
            };
            for code in codes.split_whitespace() {
                if !text.contains(&format!("error[{code}]")) {
                    failures.push(format!("{name}: expected an error with code {code}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn diagnostics_render_as_text_json_and_github_annotations() {
    let sdl = |fields: &str| {
        format!(
            "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.7\", import: [\"@key\"])\ntype Query {{ {fields} }}\ntype User @key(fields: \"id\") {{ id: ID! name: String }}\n"
        )
    };
    let inputs = vec![
        SubgraphInput {
            name: "a".into(),
            url: "http://a".into(),
            sdl: sdl("me: User"),
        },
        SubgraphInput {
            name: "b".into(),
            url: "http://b".into(),
            sdl: sdl("you: User"),
        },
    ];
    let errors = compose(&inputs)
        .expect_err("User.name is not shareable")
        .errors;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "INVALID_FIELD_SHARING");
    assert_eq!(errors[0].coordinate.as_deref(), Some("User.name"));
    assert_eq!(errors[0].subgraphs, ["a", "b"]);
    assert!(render_text(&errors).starts_with(
        "error[INVALID_FIELD_SHARING] User.name (subgraphs: a, b): Non-shareable field"
    ));
    let json: serde_json::Value =
        serde_json::from_str(&portico_federation::compose::render_json(&errors)).expect("json");
    assert_eq!(json[0]["severity"], "error");
    assert_eq!(json[0]["subgraphs"][1], "b");
    let github = portico_federation::compose::render_github(&errors);
    assert!(
        github.starts_with("::error title=INVALID_FIELD_SHARING User.name::Non-shareable"),
        "{github}"
    );
}
