//! Arbitrary bytes as an operation text, parsed and validated as the gateway does
//! (token limit 15,000, the parser's default recursion limit), then planned over each
//! embedded supergraph the document is valid for, every operation of it.

#![no_main]

mod common;

use apollo_compiler::parser::Parser;
use libfuzzer_sys::fuzz_target;
use portico_federation::PlanOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ast) = Parser::new()
        .token_limit(15_000)
        .parse_ast(text, "fuzz.graphql")
    else {
        return;
    };
    for supergraph in common::SUPERGRAPHS.iter() {
        let Ok(doc) = ast.to_executable_validate(supergraph.api_schema()) else {
            continue;
        };
        let mut names: Vec<Option<&str>> = vec![None];
        names.extend(doc.operations.named.keys().map(|n| Some(n.as_str())));
        let mut options = PlanOptions::default();
        options.override_labels = supergraph.override_labels().map(String::from).collect();
        for name in names {
            common::check_plan(supergraph, &doc, name, &PlanOptions::default(), false);
            common::check_plan(supergraph, &doc, name, &options, false);
        }
    }
});
