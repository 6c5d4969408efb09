//! `Cache-Control` for cacheable responses (`[cache_control]`): hints by type and by
//! field (`@cacheControl`-style, kept in config because subgraphs cannot compose the
//! directive), combined Apollo's way. The response's max-age is the smallest over every
//! selected field: the field's hint, else its return type's hint (composite types),
//! else, for a leaf, its parent's max-age, and for a root or composite field
//! `default_max_age_secs`. Only successful (no error) GET queries are cacheable; a
//! request that carries an identity (`Authorization`) gets `private`, others `public`.

use std::collections::BTreeMap;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::{Operation, Selection, SelectionSet};

use crate::config::CacheControlConfig;

/// The max-age in seconds of `operation` by `config` (0: not cacheable).
pub fn max_age(
    config: &CacheControlConfig,
    document: &ExecutableDocument,
    operation: &Operation,
) -> u64 {
    let types: &BTreeMap<String, u64> = &config.types;
    let fields: &BTreeMap<String, u64> = &config.fields;
    let mut result = u64::MAX;
    // (selection set, max-age of its parent object, fragment nesting).
    let mut work: Vec<(&SelectionSet, u64, usize)> =
        vec![(&operation.selection_set, config.default_max_age_secs, 0)];
    while let Some((set, parent, depth)) = work.pop() {
        // Validated documents have no fragment cycles; the bound only keeps the walk
        // finite whatever happens upstream.
        if depth > 256 {
            return 0;
        }
        for selection in &set.selections {
            match selection {
                Selection::Field(f) => {
                    if f.name.starts_with("__") {
                        continue;
                    }
                    let coordinate = format!("{}.{}", set.ty, f.name);
                    let inner = f.definition.ty.inner_named_type().as_str();
                    let composite = !f.selection_set.selections.is_empty();
                    let age = fields
                        .get(&coordinate)
                        .copied()
                        .or_else(|| composite.then(|| types.get(inner).copied()).flatten())
                        .unwrap_or(if composite {
                            config.default_max_age_secs
                        } else {
                            parent
                        });
                    result = result.min(age);
                    if composite {
                        work.push((&f.selection_set, age, depth + 1));
                    }
                }
                Selection::InlineFragment(inline) => {
                    work.push((&inline.selection_set, parent, depth + 1));
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                        work.push((&fragment.selection_set, parent, depth + 1));
                    }
                }
            }
        }
    }
    // Only meta fields (`__typename`): the default, as for any root field.
    if result == u64::MAX {
        config.default_max_age_secs
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::Schema;

    const SCHEMA: &str = "type Query { post(id: ID!): Post me: User posts: [Post] }
        type Post { id: ID! title: String author: User views: Int }
        type User { id: ID! name: String }";

    fn age(config: &CacheControlConfig, query: &str) -> u64 {
        let schema = Schema::parse_and_validate(SCHEMA, "s.graphql").expect("schema");
        let doc =
            ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").expect("query");
        let op = doc.operations.get(None).expect("one operation");
        max_age(config, &doc, op)
    }

    #[test]
    fn the_smallest_hint_of_the_selection_wins_apollo_style() {
        let mut config = CacheControlConfig::default();
        config.types.insert("Post".into(), 60);
        config.types.insert("User".into(), 30);
        config.fields.insert("Query.post".into(), 120);
        config.fields.insert("Post.views".into(), 5);
        // Root field hint 120, Post fields inherit: 120.
        assert_eq!(age(&config, "{ post(id: 1) { id title } }"), 120);
        // `views` is 5 seconds.
        assert_eq!(age(&config, "{ post(id: 1) { title views } }"), 5);
        // The author is a User: 30.
        assert_eq!(
            age(&config, "{ post(id: 1) { title author { name } } }"),
            30
        );
        // Fragments count too.
        assert_eq!(
            age(
                &config,
                "{ post(id: 1) { ...F } } fragment F on Post { views }"
            ),
            5
        );
        // A root field without a hint returning a hinted type: the type's.
        assert_eq!(age(&config, "{ posts { title } }"), 60);
        // Nothing hinted: the default, 0 (not cacheable).
        config.types.clear();
        assert_eq!(age(&config, "{ me { name } }"), 0);
        config.default_max_age_secs = 10;
        assert_eq!(age(&config, "{ me { name } }"), 10);
        assert_eq!(age(&config, "{ __typename }"), 10);
    }
}
