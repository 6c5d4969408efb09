//! What both targets share: the embedded supergraphs and the checks on a plan.

use apollo_compiler::ExecutableDocument;
use apollo_compiler::validation::Valid;
use portico_federation::{PlanOptions, QueryPlan, Supergraph, plan};
use std::sync::LazyLock;

/// Satisfiable supergraphs (composed by The Guild's composition) with entities across
/// subgraphs, `@requires`, `@provides`, interfaces, unions, `@interfaceObject`.
#[allow(dead_code)] // not every target plans on the embedded supergraphs
pub static SUPERGRAPHS: LazyLock<Vec<Supergraph>> = LazyLock::new(|| {
    [
        include_str!("../../supergraph/supergraph.graphql"),
        include_str!("../../tests/fixtures/alias-shadows-key-field/supergraph.graphql"),
        include_str!("../../tests/fixtures/union-nested-fragments/supergraph.graphql"),
        include_str!("../../tests/fixtures/interface-object-to-concrete-types/supergraph.graphql"),
        include_str!("../../tests/fixtures/requires-nested-fields/supergraph.graphql"),
        include_str!("../../tests/fixtures/provides-on-interface-field/supergraph.graphql"),
        include_str!("../../tests/fixtures/override-label-active/supergraph.graphql"),
    ]
    .iter()
    .map(|sdl| Supergraph::parse(sdl).expect("embedded supergraph parses"))
    .collect()
});

/// The stack of a tokio blocking-pool thread, where the gateway plans.
const STACK: usize = 2 * 1024 * 1024;

/// Plans `operation_name` of `doc` on a 2 MiB thread. Panics (a finding) on a panic,
/// an untyped failure, a plan whose JSON does not round-trip and, when `strict`, a
/// planner failure (`QUERY_PLANNING_FAILED`: a valid operation on a composed supergraph
/// must plan or be refused as the client's error).
pub fn check_plan(
    supergraph: &Supergraph,
    doc: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    options: &PlanOptions,
    strict: bool,
) {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(scope, || {
                match plan(supergraph, doc, operation_name, options) {
                    Ok(p) => {
                        let _text = p.to_string();
                        let json = serde_json_roundtrip(&p);
                        assert!(json, "the plan's JSON round-trips");
                    }
                    Err(e) => {
                        assert!(
                            [
                                "GRAPHQL_UNKNOWN_OPERATION_NAME",
                                "QUERY_PLAN_TOO_COMPLEX",
                                "QUERY_PLAN_UNSUPPORTED",
                                "QUERY_PLANNING_FAILED",
                            ]
                            .contains(&e.code()),
                            "untyped failure {e:?}"
                        );
                        assert!(
                            !strict || e.is_client_error(),
                            "a valid operation failed to plan: {e}"
                        );
                    }
                }
            })
            .expect("thread spawns")
            .join()
            .expect("planning does not panic");
    });
}

fn serde_json_roundtrip(p: &QueryPlan) -> bool {
    let json = serde_json::to_string(p).expect("plan serialises");
    serde_json::from_str::<QueryPlan>(&json).is_ok_and(|back| back == *p)
}
