//! Structure-aware: the bytes are the choice sequence of the property test's operation
//! generator (`gateway/federation/tests/random_operations.rs`, included as a module), so
//! nearly every input is a valid operation and reaches the planner. The first byte picks
//! the embedded supergraph. Stricter than `plan`: a planner failure is a finding too.

#![no_main]

mod common;

#[allow(dead_code)]
#[path = "../../gateway/federation/tests/random_operations.rs"]
mod random_operations;

use apollo_compiler::ExecutableDocument;
use libfuzzer_sys::fuzz_target;
use portico_federation::PlanOptions;

fuzz_target!(|data: &[u8]| {
    let Some((&which, choices)) = data.split_first() else {
        return;
    };
    let supergraphs = &*common::SUPERGRAPHS;
    let supergraph = &supergraphs[usize::from(which) % supergraphs.len()];
    let labels: Vec<String> = supergraph.override_labels().map(String::from).collect();
    let request = random_operations::generate(supergraph.api_schema(), &labels, choices);
    let Ok(doc) = ExecutableDocument::parse_and_validate(
        supergraph.api_schema(),
        &request.text,
        "op.graphql",
    ) else {
        return;
    };
    let options = PlanOptions {
        override_labels: request.override_labels.clone(),
        ..PlanOptions::default()
    };
    common::check_plan(
        supergraph,
        &doc,
        request.operation_name.as_deref(),
        &options,
        !request.unknown_operation,
    );
});
