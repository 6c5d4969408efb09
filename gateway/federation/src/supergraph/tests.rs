//! Supergraph loading: join versions, `@link` renames, API schema derivation,
//! refusals with line numbers, and a generated 10,000-type supergraph.

use super::*;

const JOIN_DEFS_V03: &str = r#"
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar join__FieldSet
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
  A @join__graph(name: "a", url: "http://a:4001")
  B @join__graph(name: "b", url: "http://b:4002")
}
"#;

fn v03(body: &str) -> String {
    format!(
        "schema @link(url: \"https://specs.apollo.dev/link/v1.0\") @link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION) \
         @link(url: \"https://specs.apollo.dev/inaccessible/v0.2\", for: SECURITY) {{ query: Query }}\n\
         directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION\n{JOIN_DEFS_V03}{body}"
    )
}

#[test]
fn join_v03_supergraph_loads_with_subgraphs_in_enum_order() {
    let sg = Supergraph::parse(&v03(
        r#"type Query @join__type(graph: A) @join__type(graph: B) { me: User @join__field(graph: A) }
           type User @join__type(graph: A, key: "id") @join__type(graph: B, key: "id") {
             id: ID! name: String @join__field(graph: A) age: Int @join__field(graph: B) }"#,
    ))
    .expect("loads");
    let names: Vec<_> = sg
        .subgraphs()
        .iter()
        .map(|s| (s.name.as_str(), s.url.as_str()))
        .collect();
    assert_eq!(names, [("a", "http://a:4001"), ("b", "http://b:4002")]);
    let api = sg.api_schema_sdl();
    assert!(api.contains("type User"), "{api}");
    assert!(!api.contains("join__"), "{api}");
    assert!(!api.contains("@link"), "{api}");
    assert!(sg.supergraph_schema().types.contains_key("join__Graph"));
}

#[test]
fn join_v05_supergraph_with_renamed_and_imported_specs_loads() {
    let sdl = r#"
schema
  @mylink(url: "https://specs.apollo.dev/link/v1.0", as: "mylink")
  @mylink(url: "https://specs.apollo.dev/join/v0.5", as: "j", for: EXECUTION)
  @mylink(url: "https://specs.apollo.dev/inaccessible/v0.2", import: [{name: "@inaccessible", as: "@hidden"}], for: SECURITY)
  @mylink(url: "https://specs.apollo.dev/tag/v0.3", import: ["@tag"])
  @mylink(url: "https://specs.apollo.dev/requiresScopes/v0.1", import: ["@requiresScopes"], for: SECURITY)
  @mylink(url: "https://specs.apollo.dev/cost/v0.1", import: ["@cost", "@listSize"])
{ query: Query }
directive @mylink(url: String, as: String, for: mylink__Purpose, import: [mylink__Import]) repeatable on SCHEMA
directive @j__graph(name: String!, url: String!) on ENUM_VALUE
directive @j__type(graph: j__Graph!, key: j__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @j__field(graph: j__Graph, requires: j__FieldSet, provides: j__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [j__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @j__directive(graphs: [j__Graph!], name: String!, args: j__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION
directive @hidden on FIELD_DEFINITION | OBJECT | ENUM_VALUE | ARGUMENT_DEFINITION
directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT
directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT
directive @cost(weight: Int!) on FIELD_DEFINITION | OBJECT
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION
input j__ContextArgument { name: String! type: String! context: String! selection: j__FieldValue! }
scalar j__FieldSet
scalar j__FieldValue
scalar j__DirectiveArguments
scalar mylink__Import
scalar requiresScopes__Scope
enum mylink__Purpose { SECURITY EXECUTION }
enum j__Graph { USERS @j__graph(name: "users", url: "http://users") }
type Query @j__type(graph: USERS) {
  users(first: Int): [User] @listSize(slicingArguments: ["first"]) @cost(weight: 2) @tag(name: "public")
  secret: String @hidden @requiresScopes(scopes: [["admin"]])
}
type User @j__type(graph: USERS, key: "id") { id: ID! role: Role }
enum Role { ADMIN @hidden USER }
"#;
    let sg = Supergraph::parse(sdl).expect("loads");
    assert_eq!(sg.subgraphs()[0].name, "users");
    let api = sg.api_schema_sdl();
    for absent in [
        "secret",
        "ADMIN",
        "@tag",
        "@cost",
        "@listSize",
        "@requiresScopes",
        "j__",
        "mylink",
        "@hidden",
    ] {
        assert!(!api.contains(absent), "{absent} in API schema:\n{api}");
    }
    assert!(api.contains("users(first: Int): [User]"), "{api}");
    assert!(api.contains("USER"), "{api}");
}

#[test]
fn inaccessible_elements_are_removed_from_the_api_schema() {
    let sg = Supergraph::parse(&v03(
        r#"type Query @join__type(graph: A) {
             node(id: ID!, debug: Boolean @inaccessible): Node
             search(filter: Filter): [Result]
             internal: Internal @inaccessible
           }
           interface Node @join__type(graph: A) { id: ID! }
           interface Hidden @join__type(graph: A) @inaccessible { id: ID! }
           type Post implements Node & Hidden @join__type(graph: A) @join__implements(graph: A, interface: "Node") @join__implements(graph: A, interface: "Hidden") {
             id: ID! draft: Boolean @inaccessible status: Status }
           type Internal @join__type(graph: A) @inaccessible { id: ID! }
           union Result @join__type(graph: A) @join__unionMember(graph: A, member: "Post") @join__unionMember(graph: A, member: "Internal") = Post | Internal
           enum Status @join__type(graph: A) { DRAFT @inaccessible PUBLISHED }
           input Filter @join__type(graph: A) { text: String secretFlag: Boolean @inaccessible }"#,
    ))
    .expect("loads");
    let api = sg.api_schema_sdl();
    for absent in [
        "debug",
        "internal",
        "Internal",
        "Hidden",
        "draft",
        "DRAFT",
        "secretFlag",
        "@inaccessible",
    ] {
        assert!(!api.contains(absent), "{absent} in API schema:\n{api}");
    }
    assert!(api.contains("type Post implements Node"), "{api}");
    assert!(api.contains("union Result = Post"), "{api}");
    assert!(api.contains("PUBLISHED"), "{api}");
}

fn error_of(sdl: &str) -> String {
    Supergraph::parse(sdl)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn malformed_supergraphs_are_refused_with_line_and_problem() {
    let e = error_of("\n\ntype Query {\n  a: Int\n  b: Strin\n}\n");
    assert!(e.contains("line 5"), "{e}");
    assert!(e.contains("Strin"), "{e}");

    let e = error_of("type Query { a: Int }");
    assert!(e.contains("not a supergraph"), "{e}");

    let e = error_of(
        &v03("type Query @join__type(graph: A) { a: Int }").replace("join/v0.3", "join/v0.9"),
    );
    assert!(e.contains("unsupported join spec version v0.9"), "{e}");

    let sdl = v03("type Query @join__type(graph: C) { a: Int }");
    let e = error_of(&sdl.replace(
        "@join__type(graph: C)",
        "@join__type(graph: B) @join__type(graph: A, key: 1)",
    ));
    assert!(e.contains("must be a field set string"), "{e}");

    let e = error_of(&v03("type Query @join__type(graph: A) { a: Int }").replace(
        "{ query: Query }",
        "@link(url: \"https://example.com/secret/v1.0\", for: SECURITY) { query: Query }",
    ));
    assert!(
        e.contains("unsupported feature https://example.com/secret/v1.0"),
        "{e}"
    );
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn unknown_graph_in_join_type_names_the_line() {
    let mut sdl = v03("");
    sdl.push_str("type Query @join__type(graph: A) { a: Int }\n");
    // `C` is not in join__Graph: GraphQL validation already rejects the enum value.
    sdl.push_str("type X @join__type(graph: C) { a: Int }\n");
    let e = error_of(&sdl);
    let line = sdl.lines().count();
    assert!(e.contains(&format!("line {line}")), "{e}");
}

#[test]
fn federation_1_supergraphs_are_refused() {
    let e = error_of(
        "schema @core(feature: \"https://specs.apollo.dev/core/v0.2\") { query: Query }\n\
         directive @core(feature: String!) repeatable on SCHEMA\ntype Query { a: Int }",
    );
    assert!(e.contains("Federation 1"), "{e}");
}

pub(crate) fn generated(types: usize) -> String {
    let mut s = v03("type Query @join__type(graph: A) { root: T0 }\n");
    for i in 0..types {
        let next = (i + 1) % types;
        s.push_str(&format!(
            "type T{i} @join__type(graph: A, key: \"id\") @join__type(graph: B, key: \"id\") {{ id: ID! name: String @join__field(graph: A) next: T{next} @join__field(graph: B) }}\n"
        ));
    }
    s
}

#[test]
fn a_generated_10000_type_supergraph_loads() {
    let sg = Supergraph::parse(&generated(10_000)).expect("loads");
    assert_eq!(sg.types.len(), 10_001);
    assert!(sg.api_schema().types.contains_key("T9999"));
}

#[test]
fn override_labels_are_listed_and_percent_labels_parsed() {
    let sg = Supergraph::parse(&v03(
        r#"type Query @join__type(graph: A) @join__type(graph: B) { a: A @join__field(graph: A) }
           type A @join__type(graph: A, key: "id") @join__type(graph: B, key: "id") {
             id: ID!
             x: Int @join__field(graph: B, override: "a", overrideLabel: "percent(25)") @join__field(graph: A, overrideLabel: "percent(25)")
             y: Int @join__field(graph: B, override: "a", overrideLabel: "beta") @join__field(graph: A, overrideLabel: "beta")
             z: Int @join__field(graph: B, override: "a") }"#,
    ).replace(
        "override: String, usedOverridden: Boolean)",
        "override: String, usedOverridden: Boolean, overrideLabel: String)",
    ))
    .expect("loads");
    assert_eq!(
        sg.override_labels().collect::<Vec<_>>(),
        ["beta", "percent(25)"]
    );
    let p = Supergraph::override_label_percent;
    assert_eq!(p("percent(25)"), Some(25.0));
    assert_eq!(p("percent(0)"), Some(0.0));
    assert_eq!(p("percent(100)"), Some(100.0));
    assert_eq!(p("percent(0.12345678)"), Some(0.12345678));
    for not_percent in [
        "beta",
        "percent(101)",
        "percent()",
        "percent(-1)",
        "percent(1.)",
        "percent(0.123456789)",
        "percent(1e2)",
        "percent (5)",
    ] {
        assert_eq!(p(not_percent), None, "{not_percent}");
    }
}

#[test]
fn connectors_are_refused_and_other_join_directives_are_metadata() {
    let with = |schema_directives: &str| {
        v03("type Query @join__type(graph: A) { a: Int }")
            .replace("join/v0.3", "join/v0.5")
            .replace(
                "{ query: Query }",
                &format!("{schema_directives} {{ query: Query }}"),
            )
            + "directive @join__directive(graphs: [join__Graph!], name: String!, args: join__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION\nscalar join__DirectiveArguments\n"
    };
    // Only the per-subgraph link (no top-level `for: EXECUTION` link): still refused.
    let e = error_of(&with(
        "@join__directive(graphs: [B], name: \"link\", args: {url: \"https://specs.apollo.dev/connect/v0.2\", import: [\"@connect\", \"@source\"]})",
    ));
    assert!(e.contains("subgraph B uses Apollo Connectors"), "{e}");
    assert!(e.contains("line 1"), "{e}");
    // With the top-level link too, the feature itself is refused.
    let e = error_of(&with(
        "@link(url: \"https://specs.apollo.dev/connect/v0.2\", for: EXECUTION)",
    ));
    assert!(
        e.contains("unsupported feature https://specs.apollo.dev/connect/v0.2"),
        "{e}"
    );
    // A per-subgraph link of another feature, and its directives, are metadata.
    let sdl = with(
        "@join__directive(graphs: [A], name: \"link\", args: {url: \"https://example.com/mine/v1.0\", import: [\"@mine\"]}) @join__directive(graphs: [A], name: \"mine\", args: {x: 1})",
    );
    Supergraph::parse(&sdl).expect("metadata join directives load");
}
