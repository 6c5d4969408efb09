//! Load and planning timings on a generated 10,000-type supergraph.
//!
//! `cargo run --release -p portico-federation --example scale [types]`
//!
//! The supergraph has `types` entity types spread over 10 subgraphs: `T{i}` is owned by
//! subgraph `s{i%10}` and extended by `s{(i+1)%10}`; `T{i}.next` points to `T{i+1}`, so a
//! deep query walks through many subgraphs.

use apollo_compiler::ExecutableDocument;
use portico_federation::{PlanOptions, Supergraph, plan};
use std::fmt::Write;
use std::time::Instant;

fn supergraph(types: usize, graphs: usize) -> String {
    let mut s = String::from(
        r#"schema @link(url: "https://specs.apollo.dev/link/v1.0") @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION) { query: Query }
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
input join__ContextArgument { name: String! type: String! context: String! selection: join__FieldValue! }
scalar join__FieldSet
scalar join__FieldValue
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
"#,
    );
    for g in 0..graphs {
        writeln!(
            s,
            "  S{g} @join__graph(name: \"s{g}\", url: \"http://s{g}\")"
        )
        .expect("write");
    }
    s.push_str("}\ntype Query @join__type(graph: S0) {\n  root: T0 @join__field(graph: S0)\n}\n");
    for i in 0..types {
        let (a, b) = (i % graphs, (i + 1) % graphs);
        let next = (i + 1) % types;
        writeln!(
            s,
            "type T{i} @join__type(graph: S{a}, key: \"id\") @join__type(graph: S{b}, key: \"id\") {{\n  id: ID!\n  name: String @join__field(graph: S{a})\n  score(factor: Int = 1): Int @join__field(graph: S{b})\n  next: T{next} @join__field(graph: S{b})\n  tags: [String] @join__field(graph: S{a})\n}}"
        )
        .expect("write");
    }
    s
}

fn main() {
    let types: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let sdl = supergraph(types, 10);
    println!("supergraph: {types} types, {} KiB of SDL", sdl.len() / 1024);
    let start = Instant::now();
    let sg = Supergraph::parse(&sdl).expect("generated supergraph loads");
    println!("load: {:?}", start.elapsed());

    // A deep query: 40 levels of `next`, each level crossing subgraphs.
    let depth = 40;
    let mut q = String::from("{ root { ");
    for _ in 0..depth {
        q.push_str("id name score(factor: 2) next { ");
    }
    q.push_str("id name");
    for _ in 0..depth {
        q.push_str(" }");
    }
    q.push_str(" } }");
    let doc = ExecutableDocument::parse_and_validate(sg.api_schema(), &q, "q.graphql")
        .expect("valid query");
    let options = PlanOptions::default();
    let start = Instant::now();
    let p = plan(&sg, &doc, None, &options).expect("plans");
    let first = start.elapsed();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        plan(&sg, &doc, None, &options).expect("plans");
    }
    println!(
        "plan (depth {depth}): first {:?}, then {:?} per plan; {} fetch nodes",
        first,
        start.elapsed() / runs,
        p.to_string().matches("Fetch(").count()
    );
}
