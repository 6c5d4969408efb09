//! Schema diff tests: one file per case in `tests/diff/`, with sections
//! `# --- old`, `# --- new`, optionally `# --- operations` (operations separated by
//! `# operation NAME` lines) and `# --- expected` (one line per change:
//! `kind CODE coordinate [operations]`, then `broken NAME` per operation that stops
//! validating and `skipped NAME` per operation already invalid against the old schema). `PORTICO_BLESS=1` rewrites the expected sections.

use portico_federation::diff::{
    ChangeKind, Report, diff, diff_with_operations, render_github, render_json, render_text,
};
use std::fs;
use std::path::Path;

struct Case {
    old: String,
    new: String,
    operations: Option<Vec<(String, String)>>,
    expected: String,
}

fn section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("# --- {name}\n");
    let start = text.find(&marker)? + marker.len();
    let rest = &text[start..];
    let end = rest.find("# --- ").unwrap_or(rest.len());
    Some(&rest[..end])
}

fn parse_case(text: &str) -> Case {
    let operations = section(text, "operations").map(|ops| {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in ops.lines() {
            if let Some(name) = line.strip_prefix("# operation ") {
                out.push((name.trim().to_string(), String::new()));
            } else if let Some(last) = out.last_mut() {
                last.1.push_str(line);
                last.1.push('\n');
            }
        }
        out
    });
    Case {
        old: section(text, "old").expect("old section").to_string(),
        new: section(text, "new").expect("new section").to_string(),
        operations,
        expected: section(text, "expected").unwrap_or_default().to_string(),
    }
}

fn summarize(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.changes {
        let kind = match c.kind {
            ChangeKind::Breaking => "breaking",
            ChangeKind::Dangerous => "dangerous",
            ChangeKind::Safe => "safe",
        };
        out.push_str(&format!("{kind} {} {}", c.code, c.coordinate));
        if report.operation_aware && !c.operations.is_empty() {
            out.push_str(&format!(" [{}]", c.operations.join(", ")));
        }
        out.push('\n');
    }
    for b in &report.broken_operations {
        out.push_str(&format!("broken {}\n", b.name));
    }
    for b in &report.skipped_operations {
        out.push_str(&format!("skipped {}\n", b.name));
    }
    out
}

fn run(case: &Case) -> Report {
    match &case.operations {
        Some(ops) => diff_with_operations(&case.old, &case.new, ops).expect("diff"),
        None => Report::from_changes(diff(&case.old, &case.new).expect("diff")),
    }
}

#[test]
fn diff_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff");
    let bless = std::env::var_os("PORTICO_BLESS").is_some();
    let mut files: Vec<_> = fs::read_dir(&root)
        .expect("tests/diff")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut kinds = [0usize; 3];
    let mut unexplained = Vec::new();
    let mut total = 0;
    for path in files {
        let text = fs::read_to_string(&path).expect("case");
        let case = parse_case(&text);
        let report = run(&case);
        for c in &report.changes {
            kinds[c.kind as usize] += 1;
        }
        total += report.changes.len();
        // Labels agree with the verdict: an operation that stops validating is named by
        // at least one breaking change.
        for b in &report.broken_operations {
            let named = report
                .changes
                .iter()
                .any(|c| c.kind == ChangeKind::Breaking && c.operations.contains(&b.name));
            if !named {
                unexplained.push(format!("{}: {}", path.display(), b.name));
            }
        }
        let actual = summarize(&report);
        if bless {
            let head = match text.find("# --- expected\n") {
                Some(i) => &text[..i],
                None => &text,
            };
            fs::write(&path, format!("{head}# --- expected\n{actual}")).expect("bless");
        } else if actual != case.expected {
            failures.push(format!(
                "{}:\n--- expected\n{}--- actual\n{actual}",
                path.display(),
                case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        unexplained.is_empty(),
        "broken operations no breaking change names: {unexplained:?}"
    );
    assert!(total >= 80, "the fixtures cover {total} changes");
    assert!(
        kinds.iter().all(|k| *k > 0),
        "every classification is covered: {kinds:?}"
    );
}

const OLD: &str =
    "type Query { user(id: ID!): User posts: [String] }\ntype User { id: ID! name: String }\n";
const NEW: &str =
    "type Query { user(id: ID!): User }\ntype User { id: ID! name: String email: String }\n";

#[test]
fn breaking_change_no_operation_uses_does_not_block() {
    let ops = vec![(
        "GetUser".to_string(),
        "query GetUser { user(id: 1) { name } }".to_string(),
    )];
    let report = diff_with_operations(OLD, NEW, &ops).expect("diff");
    let removed = report
        .changes
        .iter()
        .find(|c| c.code == "FIELD_REMOVED")
        .expect("removed");
    assert!(removed.operations.is_empty());
    assert!(
        !report.is_breaking(),
        "unused breaking change must not block"
    );
    assert!(render_text(&report).contains("(no operation uses it)"));

    let ops = vec![("Feed".to_string(), "query Feed { posts }".to_string())];
    let report = diff_with_operations(OLD, NEW, &ops).expect("diff");
    assert!(report.is_breaking());
    assert_eq!(report.broken_operations[0].name, "Feed");
    assert!(render_text(&report).contains("Operations that stop validating (1):\n  Feed:"));
}

fn change<'a>(changes: &'a [portico_federation::diff::Change], coordinate: &str) -> &'a str {
    &changes
        .iter()
        .find(|c| c.coordinate == coordinate)
        .unwrap_or_else(|| panic!("no change at {coordinate}: {changes:#?}"))
        .message
}

/// Messages say why a change got its classification.
#[test]
fn messages_explain_the_classification() {
    let old = "type Query { a: Int }\ninput I { x: Int }\ndirective @d(x: Int = 1) on FIELD\n";
    let new = "type Query { a(b: Int = 5, c: Int, i: I): Int }\ninput I { x: Int y: Int = 3 z: Int }\ndirective @d(x: Int = 2) on FIELD\n";
    let changes = diff(old, new).expect("diff");
    let with_default = change(&changes, "Query.a(b:)");
    assert!(
        with_default.contains("with default value 5")
            && with_default.contains("may differ from what \"Query.a\" did before"),
        "{with_default}"
    );
    assert!(change(&changes, "Query.a(c:)").contains("get null, the old behaviour"));
    assert!(change(&changes, "I.y").contains("with default value 3"));
    assert!(change(&changes, "I.z").contains("without a default value"));
    assert!(change(&changes, "@d(x:)").contains("from 1 to 2"));
    let kinds: Vec<_> = changes
        .iter()
        .map(|c| (c.coordinate.as_str(), c.kind))
        .collect();
    assert!(
        kinds.contains(&("Query.a(b:)", ChangeKind::Dangerous)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("Query.a(c:)", ChangeKind::Safe)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("@d(x:)", ChangeKind::Dangerous)),
        "{kinds:?}"
    );
}

#[test]
fn renderers_cover_every_change() {
    let report = Report::from_changes(diff(OLD, NEW).expect("diff"));
    let text = render_text(&report);
    assert!(text.contains("Breaking changes (1):\n  [FIELD_REMOVED] Query.posts: Field \"Query.posts\" was removed\n"), "{text}");
    assert!(
        text.ends_with("1 breaking, 0 dangerous, 1 safe\n"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&report)).expect("json");
    assert_eq!(json["changes"][0]["kind"], "breaking");
    assert_eq!(json["changes"][0]["coordinate"], "Query.posts");
    let github = render_github(&report, None);
    assert!(
        github.contains(
            "::error title=FIELD_REMOVED Query.posts::Field \"Query.posts\" was removed\n"
        ),
        "{github}"
    );
    assert!(
        github.contains("::notice title=FIELD_ADDED User.email::"),
        "{github}"
    );
}

#[test]
fn invalid_schemas_are_errors() {
    assert!(diff("type Query { a: Nope }", NEW).is_err());
    assert!(diff(OLD, "type Query {").is_err());
}

/// `portico check --old-url` reads a running gateway's schema through introspection: the
/// demo API schema, introspected and printed back, must be the same schema (no change of
/// any kind, descriptions and deprecations included).
#[test]
fn an_introspected_schema_round_trips_without_changes() {
    use apollo_compiler::{ExecutableDocument, Schema};
    use portico_federation::diff::introspection::{
        INTROSPECTION_QUERY, INTROSPECTION_QUERY_WITHOUT_ONE_OF, sdl_from_introspection,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql");
    let sdl = fs::read_to_string(path).expect("schema.graphql");
    let schema = Schema::parse_and_validate(&sdl, "schema.graphql").expect("valid");
    // apollo-compiler (and so Portico's gateway) does not know `isOneOf` yet: the query
    // asking for it is refused, naming it, and `portico check` falls back to the other.
    let refused = ExecutableDocument::parse_and_validate(&schema, INTROSPECTION_QUERY, "q.graphql")
        .expect_err("apollo-compiler 1.33 has no __Type.isOneOf");
    assert!(
        refused.errors.to_string().contains("isOneOf"),
        "{}",
        refused.errors
    );
    let doc = ExecutableDocument::parse_and_validate(
        &schema,
        INTROSPECTION_QUERY_WITHOUT_ONE_OF,
        "q.graphql",
    )
    .expect("the introspection query validates");
    let operation = doc.operations.get(None).expect("one operation");
    let variables =
        apollo_compiler::request::coerce_variable_values(&schema, operation, &Default::default())
            .expect("no variables");
    let response = apollo_compiler::introspection::partial_execute(
        &schema,
        &schema.implementers_map(),
        &doc,
        operation,
        &variables,
    )
    .expect("introspection executes");
    let json = serde_json::to_value(&response).expect("json");
    let printed = sdl_from_introspection(&json).expect("SDL from introspection");
    let changes = portico_federation::diff::diff(&sdl, &printed).expect("both schemas valid");
    assert!(changes.is_empty(), "{changes:#?}\n{printed}");
    assert!(sdl_from_introspection(&serde_json::json!({"data": {}})).is_err());
}

/// In operation-aware mode the text names the operations of dangerous and safe changes
/// too, and the JSON carries the totals the summary line shows.
#[test]
fn text_names_operations_for_every_kind_and_json_carries_totals() {
    let old = "type Query { users(order: String = \"asc\"): [String] color: Color a: Int }\n\
               enum Color { RED }\n";
    let new = "type Query { users(order: String = \"desc\"): [String] \"doc\" color: Color }\n\
               enum Color { RED GREEN }\n";
    let ops = vec![
        ("Users".to_string(), "query Users { users }".to_string()),
        ("Colors".to_string(), "query Colors { color }".to_string()),
    ];
    let report = diff_with_operations(old, new, &ops).expect("diff");
    let text = render_text(&report);
    for line in [
        "  [FIELD_REMOVED] Query.a: Field \"Query.a\" was removed (no operation uses it)\n",
        "  [ARG_DEFAULT_VALUE_CHANGED] Query.users(order:): Default value of \"Query.users(order:)\" changed from \"asc\" to \"desc\": operations that omit it get a different value, which may change what the server does (used by: Users)\n",
        "  [ENUM_VALUE_ADDED] Color.GREEN: Enum value \"Color.GREEN\" was added: clients may not handle it (used by: Colors)\n",
        "  [FIELD_DESCRIPTION_CHANGED] Query.color: Description of field \"Query.color\" changed (used by: Colors)\n",
        "1 breaking (0 used by operations), 2 dangerous, 1 safe, 0 operation(s) broken\n",
    ] {
        assert!(text.contains(line), "{line}\n---\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&render_json(&report)).expect("json");
    assert_eq!(
        json["totals"],
        serde_json::json!({"breaking": 1, "blocking": 0, "dangerous": 2, "safe": 1,
                           "broken_operations": 0, "skipped_operations": 0})
    );
    assert_eq!(json["changes"][0]["code"], "FIELD_REMOVED");
}

/// `::error file=PATH,line=N,…`: the line of the changed definition's name in the new
/// schema's file; for a removal, the line right after where it was (the next surviving
/// sibling or definition, else the closing brace or parenthesis of its parent), which
/// GitHub shows beside the deleted lines of the pull request's diff.
#[test]
fn github_annotations_point_at_lines_of_the_new_schema_file() {
    let old = "\
type Query {
  user(id: ID!, lang: String): User
  posts: [String]
  feed: [String]
}

type User {
  id: ID!
  name: String
}

type Gone {
  x: Int
}

enum Color {
  RED
  GREEN
}
";
    let new = "\
type Query {
  user(id: ID!): User
  feed: [String]
}

type User {
  id: ID!
  name: String!
  \"The address\"
  email: String
}

enum Color {
  RED
}
";
    let report = Report::from_changes(diff(old, new).expect("diff"));
    let lines: Vec<(&str, Option<usize>)> = report
        .changes
        .iter()
        .map(|c| (c.coordinate.as_str(), c.line))
        .collect();
    assert_eq!(
        lines,
        [
            ("Color.GREEN", Some(15)),
            ("Gone", Some(13)),
            ("Query.posts", Some(3)),
            ("Query.user(lang:)", Some(2)),
            ("User.email", Some(10)),
            ("User.name", Some(8)),
        ]
    );
    let github = render_github(&report, Some("schema.graphql"));
    assert!(
        github.contains(
            "::error file=schema.graphql,line=3,title=FIELD_REMOVED Query.posts::Field \"Query.posts\" was removed\n"
        ),
        "{github}"
    );
    assert!(
        github.contains("::notice file=schema.graphql,line=10,title=FIELD_ADDED User.email::"),
        "{github}"
    );
    assert!(
        github.contains("::error file=schema.graphql,line=13,title=TYPE_REMOVED Gone::"),
        "{github}"
    );
    // A schema read from a server has no file: no `file=`/`line=`.
    let github = render_github(&report, None);
    assert!(
        github.contains("::error title=FIELD_REMOVED Query.posts::"),
        "{github}"
    );
    assert!(!github.contains("file="), "{github}");
    // File names are escaped as properties.
    let github = render_github(&report, Some("a,b:c.graphql"));
    assert!(
        github.contains("file=a%2Cb%3Ac.graphql,line=3,"),
        "{github}"
    );
}

/// A removed type or directive with nothing after it points at the last line; a removed
/// last argument at its field's closing parenthesis line.
#[test]
fn removals_at_the_end_point_at_the_end() {
    let old = "type Query {\n  a(\n    x: Int\n    y: Int\n  ): Int\n}\n\ntype Last { x: Int }\n\ndirective @gone on FIELD\n";
    let new = "type Query {\n  a(\n    x: Int\n  ): Int\n}\n\n\n";
    let changes = diff(old, new).expect("diff");
    let lines: Vec<(&str, Option<usize>)> = changes
        .iter()
        .map(|c| (c.coordinate.as_str(), c.line))
        .collect();
    assert_eq!(
        lines,
        [
            ("@gone", Some(5)),
            ("Last", Some(5)),
            ("Query.a(y:)", Some(4))
        ]
    );
}
