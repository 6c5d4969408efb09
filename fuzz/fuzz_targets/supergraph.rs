//! Arbitrary bytes as a supergraph SDL, loaded as the gateway loads one at start-up and
//! on reload: it must load or be refused with an error, never panic; a loaded one must
//! plan `{ __typename }` and every root field's first level the same way (plan or error).

#![no_main]

mod common;

use apollo_compiler::ExecutableDocument;
use libfuzzer_sys::fuzz_target;
use portico_federation::{PlanOptions, Supergraph};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 64 * 1024 {
        return;
    }
    let Ok(supergraph) = Supergraph::parse(text) else {
        return;
    };
    let schema = supergraph.api_schema();
    let mut queries = vec!["{ __typename }".to_string()];
    if let Some(query) = schema.schema_definition.query.as_ref()
        && let Some(apollo_compiler::schema::ExtendedType::Object(root)) =
            schema.types.get(query.name.as_str())
    {
        for (name, field) in root.fields.iter().take(8) {
            if field.arguments.iter().any(|a| a.is_required()) {
                continue;
            }
            let leaf = schema
                .types
                .get(field.ty.inner_named_type().as_str())
                .is_none_or(|t| t.is_leaf());
            queries.push(if leaf {
                format!("{{ {name} }}")
            } else {
                format!("{{ {name} {{ __typename }} }}")
            });
        }
    }
    for query in queries {
        if let Ok(doc) = ExecutableDocument::parse_and_validate(schema, query, "q.graphql") {
            common::check_plan(&supergraph, &doc, None, &PlanOptions::default(), false);
        }
    }
});
