//! Cost fixtures: each `tests/cost/<schema>/` holds a supergraph (`supergraph.graphql`,
//! composed from `subgraphs/` by `cost/compose.mjs`; the `demo` schema uses the repository's
//! `supergraph/supergraph.graphql`), optional `settings.json` ([`CostSettings`]) and
//! `cases/*.graphql`. A case is an operation preceded by header comments:
//!
//! ```text
//! # cost: 42                      expected estimate (or `# error: <message>`)
//! # variables: {"n": 3}           optional request variables
//! # response: {"data": {...}}     optional response, with
//! # actual: 17                    its expected actual cost
//! # breakdown                     compare render_breakdown with <case>.breakdown.txt
//! ```
//!
//! `PORTICO_BLESS=1 cargo test -p portico-federation --test cost` rewrites the
//! `.breakdown.txt` files.

use apollo_compiler::ExecutableDocument;
use apollo_compiler::validation::Valid;
use portico_federation::Supergraph;
use portico_federation::cost::{
    CostError, CostModel, CostSettings, FieldCost, actual_cost, render_breakdown,
};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cost")
}

fn supergraph_of(schema_dir: &Path) -> Supergraph {
    let own = schema_dir.join("supergraph.graphql");
    let path = if own.exists() {
        own
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../supergraph/supergraph.graphql")
    };
    let sdl = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Supergraph::parse(&sdl).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn settings_of(schema_dir: &Path) -> CostSettings {
    match std::fs::read_to_string(schema_dir.join("settings.json")) {
        Ok(json) => serde_json::from_str(&json).expect("settings.json is CostSettings"),
        Err(_) => CostSettings::default(),
    }
}

fn model_of(schema: &str) -> (Supergraph, CostModel) {
    let dir = fixtures().join(schema);
    let supergraph = supergraph_of(&dir);
    let model = CostModel::new(&supergraph, &settings_of(&dir)).expect("cost model");
    (supergraph, model)
}

fn parse(supergraph: &Supergraph, operation: &str) -> Valid<ExecutableDocument> {
    ExecutableDocument::parse_and_validate(supergraph.api_schema(), operation, "op.graphql")
        .unwrap_or_else(|e| panic!("invalid operation: {}", e.errors))
}

fn vars(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            let rest = l.trim_start_matches('#').trim_start();
            let rest = rest.strip_prefix(key)?;
            if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix(':').map(str::trim)
            }
        })
}

fn run_case(supergraph: &Supergraph, model: &CostModel, case: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(case).map_err(|e| e.to_string())?;
    let doc = ExecutableDocument::parse_and_validate(supergraph.api_schema(), &text, "case")
        .map_err(|e| format!("invalid operation: {}", e.errors))?;
    let variables = match header(&text, "variables") {
        Some(v) => vars(serde_json::from_str(v).map_err(|e| format!("variables: {e}"))?),
        None => Map::new(),
    };
    let estimate = model.estimate(&doc, None, &variables);
    match (header(&text, "cost"), header(&text, "error"), &estimate) {
        (Some(expected), None, Ok(estimate)) => {
            let expected: f64 = expected.parse().map_err(|e| format!("cost: {e}"))?;
            if estimate.total != expected {
                return Err(format!(
                    "expected cost {expected}, estimated {}\n{}",
                    estimate.total,
                    render_breakdown(estimate)
                ));
            }
            let total = model
                .estimate_total(&doc, None, &variables)
                .map_err(|e| e.to_string())?;
            if total != estimate.total {
                return Err(format!(
                    "estimate_total {total} != estimate {}",
                    estimate.total
                ));
            }
        }
        (None, Some(expected), Err(e)) => {
            if e.to_string() != expected {
                return Err(format!("expected error `{expected}`, got `{e}`"));
            }
            return Ok(());
        }
        (_, _, Err(e)) => return Err(format!("unexpected error: {e}")),
        (_, _, Ok(estimate)) => {
            return Err(format!(
                "needs exactly one of `# cost:` and `# error:` (estimated {})",
                estimate.total
            ));
        }
    }
    let estimate = estimate.expect("checked above");
    if header(&text, "breakdown").is_some() {
        let path = case.with_extension("breakdown.txt");
        let rendered = render_breakdown(&estimate);
        if std::env::var_os("PORTICO_BLESS").is_some() {
            std::fs::write(&path, &rendered).map_err(|e| e.to_string())?;
        } else {
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != rendered {
                return Err(format!(
                    "breakdown differs.\n--- expected\n{expected}--- actual\n{rendered}"
                ));
            }
        }
    }
    if let Some(response) = header(&text, "response") {
        let response: Value =
            serde_json::from_str(response).map_err(|e| format!("response: {e}"))?;
        let expected: f64 = header(&text, "actual")
            .ok_or("a response needs `# actual:`")?
            .parse()
            .map_err(|e| format!("actual: {e}"))?;
        let actual = actual_cost(model, &doc, None, &variables, &response["data"])
            .map_err(|e| e.to_string())?;
        if actual != expected {
            return Err(format!("expected actual cost {expected}, got {actual}"));
        }
    }
    Ok(())
}

#[test]
fn every_cost_fixture_prices_as_recorded() {
    let mut schemas: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/cost")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cases").is_dir())
        .collect();
    schemas.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for schema in &schemas {
        let supergraph = supergraph_of(schema);
        let model = CostModel::new(&supergraph, &settings_of(schema))
            .unwrap_or_else(|e| panic!("{}: {e}", schema.display()));
        let mut cases: Vec<PathBuf> = std::fs::read_dir(schema.join("cases"))
            .expect("cases")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
            .collect();
        cases.sort();
        for case in cases {
            count += 1;
            if let Err(e) = run_case(&supergraph, &model, &case) {
                failures.push(format!("{}: {e}", case.display()));
            }
        }
    }
    assert!(
        count >= 30,
        "expected at least 30 cost fixtures, found {count}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_hundred_posts_with_fifty_comments_cost_far_more_than_me_id() {
    let (supergraph, model) = model_of("demo");
    let cheap = parse(&supergraph, "{ me { id } }");
    let expensive = parse(
        &supergraph,
        "{ me { posts(first: 100) { edges { node { id comments(first: 50) { nodes { body } } } } } } }",
    );
    let cheap = model
        .estimate_total(&cheap, None, &Map::new())
        .expect("cheap");
    let expensive = model
        .estimate_total(&expensive, None, &Map::new())
        .expect("expensive");
    assert_eq!(cheap, 1.0);
    assert!(expensive >= 1000.0 * cheap, "{expensive} vs {cheap}");
}

#[test]
fn settings_naming_unknown_coordinates_are_refused() {
    let (supergraph, _) = model_of("demo");
    let refused = |settings: CostSettings| {
        CostModel::new(&supergraph, &settings).expect_err("settings must be refused")
    };
    let field = |key: &str, cost: FieldCost| CostSettings {
        fields: [(key.to_string(), cost)].into(),
        ..CostSettings::default()
    };
    let weight = FieldCost {
        weight: Some(2.0),
        ..FieldCost::default()
    };
    assert_eq!(
        refused(field("User.nope", weight.clone())),
        CostError::Settings {
            key: "User.nope".into(),
            message: "no field User.nope in the API schema".into()
        }
    );
    assert_eq!(
        refused(field("Nope.id", weight.clone())).to_string(),
        "cost settings `Nope.id`: no type Nope in the API schema"
    );
    assert_eq!(
        refused(field("User.posts(last:)", weight.clone())).to_string(),
        "cost settings `User.posts(last:)`: User.posts has no argument last"
    );
    assert_eq!(
        refused(field(
            "User.posts",
            FieldCost {
                slicing_arguments: vec!["last".into()],
                ..FieldCost::default()
            }
        ))
        .to_string(),
        "cost settings `User.posts`: slicing argument last is not an argument of the field"
    );
    assert_eq!(
        refused(field(
            "User.posts",
            FieldCost {
                sized_fields: vec!["items".into()],
                ..FieldCost::default()
            }
        ))
        .to_string(),
        "cost settings `User.posts`: sized field items is not a field of PostConnection"
    );
    let types = CostSettings {
        types: [("Nope".to_string(), 1.0)].into(),
        ..CostSettings::default()
    };
    assert_eq!(
        refused(types).to_string(),
        "cost settings `Nope`: no such type in the API schema"
    );
}

#[test]
fn settings_deserialize_strictly_with_defaults() {
    let settings: CostSettings = serde_json::from_value(json!({
        "fields": {"User.posts": {"slicing_arguments": ["first"], "sized_fields": ["edges"]}}
    }))
    .expect("valid settings");
    assert_eq!(settings.default_list_size, 10);
    assert_eq!(settings.mutation_base, 10);
    assert_eq!(settings.fields["User.posts"].weight, None);
    let unknown = serde_json::from_value::<CostSettings>(json!({"max_cost": 5}));
    assert!(unknown.is_err());
    let unknown_field =
        serde_json::from_value::<CostSettings>(json!({"fields": {"User.posts": {"size": 5}}}));
    assert!(unknown_field.is_err());
}

#[test]
fn named_operations_are_priced_by_name() {
    let (supergraph, model) = model_of("library");
    let doc = parse(
        &supergraph,
        "query Cheap { book(id: 1) { id } } query Dear { topBooks { id } }",
    );
    let price = |name| model.estimate_total(&doc, Some(name), &Map::new());
    assert_eq!(price("Cheap"), Ok(1.0));
    assert_eq!(price("Dear"), Ok(3.0));
    assert!(matches!(
        model.estimate_total(&doc, None, &Map::new()),
        Err(CostError::Operation(_))
    ));
}

#[test]
fn fragment_bombs_are_priced_in_linear_time() {
    let (supergraph, model) = model_of("library");
    // Each fragment spreads the previous one twice: 2^25 field occurrences if expanded.
    let mut op = String::from("{ book(id: 1) { ...F25 } }\nfragment F0 on Book { price }\n");
    for i in 1..=25 {
        op.push_str(&format!(
            "fragment F{i} on Book {{ ...F{} ...F{} }}\n",
            i - 1,
            i - 1
        ));
    }
    let doc = parse(&supergraph, &op);
    let started = std::time::Instant::now();
    let estimate = model.estimate(&doc, None, &Map::new()).expect("estimate");
    assert_eq!(estimate.total, 1.0 + 7.0 * f64::from(1u32 << 25));
    assert!(estimate.breakdown_truncated);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn the_breakdown_lists_fields_in_document_order() {
    let (supergraph, model) = model_of("library");
    let doc = parse(&supergraph, "{ topBooks { title price authors { name } } }");
    let estimate = model.estimate(&doc, None, &Map::new()).expect("estimate");
    let lines: Vec<(&str, &str, f64, f64)> = estimate
        .breakdown
        .iter()
        .map(|l| (l.path.as_str(), l.coordinate.as_str(), l.multiplier, l.cost))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("topBooks", "Query.topBooks", 3.0, 54.0),
            ("topBooks.title", "Book.title", 1.0, 0.0),
            ("topBooks.price", "Book.price", 1.0, 7.0),
            ("topBooks.authors", "Book.authors", 2.0, 10.0),
            ("topBooks.authors.name", "Author.name", 1.0, 0.0),
        ]
    );
    assert_eq!(estimate.total, 54.0);
}

#[test]
fn settings_win_over_directives_and_interface_fields_pass_to_implementations() {
    let dir = fixtures().join("library");
    let supergraph = supergraph_of(&dir);
    let settings: CostSettings = serde_json::from_value(json!({
        "fields": {
            "Query.topBooks": {"assumed_size": 5},
            "Media.title": {"weight": 3},
            "Book.title": {"weight": 0.5},
            "Query.search(term:)": {"weight": 0}
        },
        "types": {"Author": 1}
    }))
    .expect("settings");
    let model = CostModel::new(&supergraph, &settings).expect("model");
    let price = |op: &str| {
        model
            .estimate_total(&parse(&supergraph, op), None, &Map::new())
            .expect("estimate")
    };
    // assumedSize 5 from settings replaces the directive's 3.
    assert_eq!(price("{ topBooks { id } }"), 5.0);
    // Magazine inherits Media.title's 3; Book keeps its own 0.5: 2 × max(1 + 0.5, 4 + 3).
    assert_eq!(price("{ media { title } }"), 14.0);
    // Author now weighs 1, the argument 0: 4 × max(Book 1, Author 1, Magazine 4).
    assert_eq!(
        price(r#"{ search(term: "x") { ... on Author { name } } }"#),
        16.0
    );
}

#[test]
fn mutation_base_and_introspection_weight_are_configurable() {
    let (supergraph, _) = model_of("demo");
    let settings = CostSettings {
        mutation_base: 3,
        introspection_weight: 5.0,
        ..CostSettings::default()
    };
    let model = CostModel::new(&supergraph, &settings).expect("model");
    let price = |op: &str| {
        model
            .estimate_total(&parse(&supergraph, op), None, &Map::new())
            .expect("estimate")
    };
    assert_eq!(price(r#"mutation { logout(refreshToken: "t") }"#), 3.0);
    assert_eq!(
        price(r#"{ __schema { types { name } } __type(name: "User") { name } __typename }"#),
        10.0
    );
}

#[test]
fn the_model_can_be_shared_between_request_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<CostModel>();
}

/// A field with `@requires` costs what the gateway fetches for it, once per object it
/// is resolved on: here `royalty` requires `authors { name } isbn` = 2 authors
/// (`assumedSize`) × `Author @cost(weight: 5)` + `Isbn @cost(weight: 3)` = 13.
#[test]
fn requires_selections_are_priced_per_object() {
    let dir = fixtures().join("library");
    let sdl = std::fs::read_to_string(dir.join("supergraph.graphql")).expect("fixture");
    let price = "  price: Float @join__field(graph: PRICES) @cost(weight: 7)\n";
    assert!(sdl.contains(price));
    let sdl = sdl.replace(
        price,
        &format!(
            "{price}  royalty: Float @join__field(graph: PRICES, requires: \"authors {{ name }} isbn\")\n"
        ),
    );
    let supergraph = Supergraph::parse(&sdl).expect("supergraph");
    let model = CostModel::new(&supergraph, &settings_of(&dir)).expect("cost model");
    let cost = |operation: &str| {
        let doc = parse(&supergraph, operation);
        model
            .estimate(&doc, None, &Map::new())
            .expect("priced")
            .total
    };
    // One book: the object (1), `royalty` (a scalar, 0) and its requirements (13).
    assert_eq!(cost("{ book(id: \"1\") { royalty } }"), 14.0);
    // Three books (`assumedSize: 3`), each with its requirements.
    assert_eq!(cost("{ topBooks { royalty } }"), 3.0 * 14.0);
    // Without `royalty`, nothing is required.
    assert_eq!(cost("{ topBooks { title } }"), 3.0);
}
