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

mod reachable {
    //! For a supergraph, one query per reachable (type, field) of the API schema: the
    //! shortest path from the query root, every abstract position narrowed to the object
    //! type it goes through, required arguments filled with values of their type. Built
    //! breadth-first (no recursion on schema depth).

    use apollo_compiler::Schema;
    use apollo_compiler::ast::Type;
    use apollo_compiler::schema::{ExtendedType, InputValueDefinition};
    use std::collections::{BTreeSet, VecDeque};

    /// A value literal for an input type (bounded depth: a deeper required input object
    /// gives `None` and the field is skipped).
    fn literal(schema: &Schema, ty: &Type, depth: usize) -> Option<String> {
        if depth > 8 {
            return None;
        }
        if let Type::List(inner) | Type::NonNullList(inner) = ty {
            return Some(format!("[{}]", literal(schema, inner, depth + 1)?));
        }
        let name = ty.inner_named_type();
        Some(match schema.types.get(name)? {
            ExtendedType::Scalar(_) => match name.as_str() {
                "Int" => "1".into(),
                "Float" => "1.5".into(),
                "Boolean" => "true".into(),
                _ => "\"1\"".into(),
            },
            ExtendedType::Enum(e) => e.values.keys().next()?.to_string(),
            ExtendedType::InputObject(io) => {
                let mut fields = Vec::new();
                for (n, f) in &io.fields {
                    if f.ty.is_non_null() && f.default_value.is_none() {
                        fields.push(format!("{n}: {}", literal(schema, &f.ty, depth + 1)?));
                    }
                }
                format!("{{{}}}", fields.join(", "))
            }
            _ => return None,
        })
    }

    fn arguments(
        schema: &Schema,
        args: &[apollo_compiler::Node<InputValueDefinition>],
    ) -> Option<String> {
        let mut out = Vec::new();
        for a in args {
            if a.ty.is_non_null() && a.default_value.is_none() {
                out.push(format!("{}: {}", a.name, literal(schema, &a.ty, 0)?));
            }
        }
        Some(if out.is_empty() {
            String::new()
        } else {
            format!("({})", out.join(", "))
        })
    }

    /// A step down from a type: a field (with its arguments) or a narrowing fragment.
    #[derive(Clone)]
    enum Step {
        Field(String),
        Narrow(String),
    }

    fn render(path: &[Step], leaf: &str) -> String {
        let mut open = String::new();
        let mut close = String::new();
        for step in path {
            match step {
                Step::Field(f) => open.push_str(&format!("{f} {{ ")),
                Step::Narrow(t) => open.push_str(&format!("... on {t} {{ ")),
            }
            close.push_str(" }");
        }
        format!("{{ {open}{leaf}{close} }}")
    }

    /// Queries reaching every field of every type reachable from `Query`.
    pub fn queries(schema: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        let Some(root) = schema.schema_definition.query.as_ref() else {
            return out;
        };
        let mut seen: BTreeSet<String> = BTreeSet::from([root.name.to_string()]);
        let mut queue: VecDeque<(String, Vec<Step>)> =
            VecDeque::from([(root.name.to_string(), Vec::new())]);
        while let Some((ty, path)) = queue.pop_front() {
            let fields = match schema.types.get(ty.as_str()) {
                Some(ExtendedType::Object(o)) => &o.fields,
                Some(ExtendedType::Interface(i)) => &i.fields,
                Some(ExtendedType::Union(u)) => {
                    for member in &u.members {
                        let mut p = path.clone();
                        p.push(Step::Narrow(member.to_string()));
                        out.push(render(&p, "__typename"));
                        if seen.insert(member.to_string()) {
                            queue.push_back((member.to_string(), p));
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            for (name, def) in fields {
                if name.starts_with("__") {
                    continue;
                }
                let Some(args) = arguments(schema, &def.arguments) else {
                    continue;
                };
                let field = format!("{name}{args}");
                let inner = def.ty.inner_named_type().to_string();
                let composite = matches!(
                    schema.types.get(inner.as_str()),
                    Some(
                        ExtendedType::Object(_)
                            | ExtendedType::Interface(_)
                            | ExtendedType::Union(_)
                    )
                );
                if composite {
                    let mut p = path.clone();
                    p.push(Step::Field(field.clone()));
                    out.push(render(&p, "__typename"));
                    if seen.insert(inner.clone()) {
                        queue.push_back((inner.clone(), p.clone()));
                    }
                    // Abstract: also go through each possible object type.
                    if let Some(ExtendedType::Interface(_)) = schema.types.get(inner.as_str()) {
                        for (tn, t) in &schema.types {
                            if let ExtendedType::Object(o) = t
                                && o.implements_interfaces.contains(inner.as_str())
                            {
                                let mut q = p.clone();
                                q.push(Step::Narrow(tn.to_string()));
                                out.push(render(&q, "__typename"));
                                if seen.insert(tn.to_string()) {
                                    queue.push_back((tn.to_string(), q));
                                }
                            }
                        }
                    }
                } else {
                    out.push(render(&path, &field));
                }
            }
        }
        out
    }
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
    let mut planned = 0;
    for file in &supergraphs {
        let sdl = std::fs::read_to_string(file).expect("supergraph");
        let supergraph = Supergraph::parse(&sdl).expect("fixture supergraph parses");
        for query in reachable::queries(supergraph.api_schema()) {
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
