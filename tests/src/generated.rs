//! Generated files are committed and checked (STYLE 11): the demo supergraph and the
//! public API schema must be exactly what `portico compose` produces from the subgraph
//! SDLs under `supergraph/` (each of which is itself checked against its subgraph's code
//! by that subgraph's tests). Fix a failure with `cargo run -- generate`.

use std::path::Path;

use portico::schema_cmds;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test]
async fn supergraph_and_api_schema_are_fresh() {
    let inputs = schema_cmds::inputs(&root().join("supergraph/subgraphs.toml"), None)
        .await
        .expect("subgraph list");
    let composed = portico_federation::compose::compose(&inputs).expect("the demo composes");
    let supergraph = std::fs::read_to_string(root().join("supergraph/supergraph.graphql"))
        .expect("supergraph/supergraph.graphql");
    let api = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    assert_eq!(
        supergraph.trim_end(),
        composed.supergraph_sdl.trim_end(),
        "supergraph/supergraph.graphql is stale: run `cargo run -- generate`"
    );
    assert_eq!(
        api.trim_end(),
        composed.api_sdl.trim_end(),
        "schema.graphql is stale: run `cargo run -- generate`"
    );
    assert_eq!(
        portico::platform::DEMO_SUPERGRAPH.trim_end(),
        supergraph.trim_end(),
        "the binary embeds the committed supergraph"
    );
}

#[test]
fn committed_api_schema_has_no_breaking_change_against_itself_recomposed() {
    let api = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let changes = portico_federation::diff::diff(&api, &api).expect("diff");
    assert!(changes.is_empty(), "{changes:?}");
}

/// The demo client's operations (`client-operations/`, which `.ci/run` hands to
/// `portico check --operations`) are valid against the committed API schema, so the
/// operation-aware check starts from operations that work today.
#[test]
fn client_operations_validate_against_the_api_schema() {
    let api = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let schema = apollo_compiler::Schema::parse_and_validate(api, "schema.graphql")
        .expect("schema.graphql is valid");
    let ops = schema_cmds::load_operations(&root().join("client-operations"))
        .expect("client-operations/");
    assert!(ops.len() >= 4, "{ops:?}");
    for (name, text) in ops {
        if let Err(e) =
            apollo_compiler::ExecutableDocument::parse_and_validate(&schema, text, &name)
        {
            panic!("client-operations/{name}.graphql: {}", e.errors);
        }
    }
}
