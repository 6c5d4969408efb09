//! Operation limits: cheap rejections before authentication and planning.
//!
//! Query length is checked on the raw text; depth, aliases and root fields on the
//! validated operation with fragments expanded. Fragment results are memoised, so a
//! "fragment bomb" (fragments spreading each other many times) costs linear time.
//! Cost analysis and rate limiting (issue 6) will sit beside these as their own stage.

use std::collections::HashMap;

use apollo_compiler::executable::{ExecutableDocument, Operation, Selection, SelectionSet};

use crate::config::LimitsConfig;
use crate::error::{ErrorCode, RequestFailure};

/// Depth, alias and root-field counts of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperationShape {
    pub depth: usize,
    pub aliases: u64,
    pub root_fields: u64,
}

/// Why an operation was refused by a limit (HTTP 400, before planning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("query is {len} bytes long, the limit is {max}")]
    QueryLength { len: usize, max: usize },
    #[error("operation depth {depth} exceeds the limit of {max}")]
    Depth { depth: usize, max: usize },
    #[error("operation uses {aliases} aliases, the limit is {max}")]
    Aliases { aliases: u64, max: usize },
    #[error("operation selects {fields} root fields, the limit is {max}")]
    RootFields { fields: u64, max: usize },
    #[error("a selection carries {count} directives, the limit is {max}")]
    Directives { count: usize, max: usize },
}

impl LimitError {
    pub fn code(&self) -> ErrorCode {
        match self {
            LimitError::QueryLength { .. } => ErrorCode::MaxQueryLengthExceeded,
            LimitError::Depth { .. } => ErrorCode::MaxDepthExceeded,
            LimitError::Aliases { .. } => ErrorCode::MaxAliasesExceeded,
            LimitError::RootFields { .. } => ErrorCode::MaxRootFieldsExceeded,
            LimitError::Directives { .. } => ErrorCode::MaxDirectivesExceeded,
        }
    }
}

impl From<LimitError> for RequestFailure {
    fn from(e: LimitError) -> Self {
        RequestFailure::new(e.code(), e.to_string())
    }
}

/// Refuse a query text longer than the limit.
pub fn check_query_length(query: &str, limits: &LimitsConfig) -> Result<(), LimitError> {
    if query.len() > limits.max_query_length {
        return Err(LimitError::QueryLength {
            len: query.len(),
            max: limits.max_query_length,
        });
    }
    Ok(())
}

/// Refuse an operation over the depth, alias or root-field limit.
pub fn check_operation(
    document: &ExecutableDocument,
    operation: &Operation,
    limits: &LimitsConfig,
) -> Result<OperationShape, LimitError> {
    let shape = measure(document, operation);
    if shape.depth > limits.max_depth {
        return Err(LimitError::Depth {
            depth: shape.depth,
            max: limits.max_depth,
        });
    }
    if shape.aliases > limits.max_aliases as u64 {
        return Err(LimitError::Aliases {
            aliases: shape.aliases,
            max: limits.max_aliases,
        });
    }
    if shape.root_fields > limits.max_root_fields as u64 {
        return Err(LimitError::RootFields {
            fields: shape.root_fields,
            max: limits.max_root_fields,
        });
    }
    Ok(shape)
}

/// Refuse a document where one field, fragment spread or inline fragment carries more
/// than `max_directives_per_field` directives (every operation and fragment, linear).
pub fn check_directives(
    document: &ExecutableDocument,
    limits: &LimitsConfig,
) -> Result<(), LimitError> {
    fn most(set: &SelectionSet) -> usize {
        set.selections
            .iter()
            .map(|s| match s {
                Selection::Field(f) => f.directives.len().max(most(&f.selection_set)),
                Selection::FragmentSpread(s) => s.directives.len(),
                Selection::InlineFragment(i) => i.directives.len().max(most(&i.selection_set)),
            })
            .max()
            .unwrap_or(0)
    }
    let count = document
        .operations
        .iter()
        .map(|o| most(&o.selection_set))
        .chain(document.fragments.values().map(|f| most(&f.selection_set)))
        .max()
        .unwrap_or(0);
    if count > limits.max_directives_per_field {
        return Err(LimitError::Directives {
            count,
            max: limits.max_directives_per_field,
        });
    }
    Ok(())
}

/// Measure an operation (fragments expanded, memoised).
pub fn measure(document: &ExecutableDocument, operation: &Operation) -> OperationShape {
    let mut memo = HashMap::new();
    let (depth, aliases) = walk(document, &operation.selection_set, &mut memo, 0);
    let root_fields = count_root(document, &operation.selection_set, &mut HashMap::new(), 0);
    OperationShape {
        depth,
        aliases,
        root_fields,
    }
}

/// (depth, aliases) of a selection set. Validation has ruled out fragment cycles; the
/// `guard` only protects against pathological nesting of the recursion itself.
fn walk<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    memo: &mut HashMap<&'d str, (usize, u64)>,
    guard: usize,
) -> (usize, u64) {
    if guard > 512 {
        return (usize::MAX / 2, 0);
    }
    let mut depth = 0;
    let mut aliases: u64 = 0;
    for selection in &set.selections {
        let (d, a) = match selection {
            Selection::Field(f) => {
                let (d, a) = if f.selection_set.selections.is_empty() {
                    (0, 0)
                } else {
                    walk(document, &f.selection_set, memo, guard + 1)
                };
                (d + 1, a + u64::from(f.alias.is_some()))
            }
            Selection::InlineFragment(i) => walk(document, &i.selection_set, memo, guard + 1),
            Selection::FragmentSpread(s) => {
                let name = s.fragment_name.as_str();
                if let Some(v) = memo.get(name) {
                    *v
                } else if let Some(fragment) = document.fragments.get(name) {
                    let v = walk(document, &fragment.selection_set, memo, guard + 1);
                    memo.insert(name, v);
                    v
                } else {
                    (0, 0)
                }
            }
        };
        depth = depth.max(d);
        aliases = aliases.saturating_add(a);
    }
    (depth, aliases)
}

fn count_root<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    memo: &mut HashMap<&'d str, u64>,
    guard: usize,
) -> u64 {
    if guard > 512 {
        return 0;
    }
    let mut total: u64 = 0;
    for selection in &set.selections {
        let n = match selection {
            Selection::Field(_) => 1,
            Selection::InlineFragment(i) => count_root(document, &i.selection_set, memo, guard + 1),
            Selection::FragmentSpread(s) => {
                let name = s.fragment_name.as_str();
                if let Some(n) = memo.get(name) {
                    *n
                } else if let Some(fragment) = document.fragments.get(name) {
                    let n = count_root(document, &fragment.selection_set, memo, guard + 1);
                    memo.insert(name, n);
                    n
                } else {
                    0
                }
            }
        };
        total = total.saturating_add(n);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::Schema;

    fn shape(query: &str) -> OperationShape {
        let schema = Schema::parse_and_validate(
            "type Query { a: A, n: Int } type A { b: A, n: Int }",
            "s.graphql",
        )
        .expect("schema");
        let doc =
            apollo_compiler::ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
                .expect("valid");
        let op = doc.operations.get(None).expect("one operation");
        measure(&doc, op)
    }

    #[test]
    fn depth_aliases_and_root_fields_count_through_fragments() {
        let s = shape("{ x: a { b { n } } n ...F } fragment F on Query { y: n z: a { n } }");
        assert_eq!(s.depth, 3);
        assert_eq!(s.aliases, 3);
        assert_eq!(s.root_fields, 4);
    }

    #[test]
    fn fragment_bombs_are_measured_in_linear_time() {
        let mut q = String::from("{ ...F0 }\n");
        for i in 0..40 {
            q.push_str(&format!(
                "fragment F{i} on Query {{ a1: n a2: n ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        q.push_str("fragment F40 on Query { n }\n");
        let s = shape(&q);
        assert!(s.aliases > 1_000_000, "{s:?}");
    }
}
