//! Query plans are data: serde types close to Apollo's JSON shape, with a deterministic
//! indented text form (the `Display` impl) used in snapshots, `portico plan`, and the
//! opt-in debugging extension.
//!
//! CONTRACT with the executor (`portico-gateway::execute`):
//! - Fetch operations are sent verbatim to `service_name` with the client's variables
//!   restricted to `variable_usages`. Fields in fetch operations use the client's
//!   response keys (aliases), so the subgraph's `data` merges into the response tree
//!   by response key. Fields the planner adds for its own needs (key fields, `__typename`,
//!   `@requires` inputs) are ordinary fields; the executor shapes the final response from
//!   the client's operation, so extra fields never leak.
//! - An entity fetch (`requires` is `Some`) sits inside a `Flatten { path }`. The executor
//!   collects every object at `path` (where `@` walks into list items), projects each one
//!   through `requires` into a representation (always including `__typename`), removes
//!   duplicates, sends them as the `$representations` variable of `operation`
//!   (`query($representations:[_Any!]!, ...){ _entities(representations:$representations){ ... } }`)
//!   and merges result `i` into every object that produced representation `i`.
//! - A `BatchFetch` is several such entity fetches to one subgraph in one request:
//!   batch `i` collects and projects the objects at its own `path` like a `Flatten`, sends
//!   them as `$<variable>`, and reads its results from the response key `alias`
//!   (`query($r0:[_Any!]!,$r1:[_Any!]!){_e0:_entities(representations:$r0){..} _e1:..}`);
//!   subgraph errors under `alias.i` map to the producers of representation `i`.
//! - `Condition` nodes branch on a boolean variable (`@skip`/`@include`).
//! - A `Defer` node (only ever the plan's top node) is `@defer`: its `primary` runs
//!   first, and is all the initial payload needs; each [`DeferredNode`] then runs on the
//!   data the primary fetched (its entity fetches read their keys there), all of them in
//!   parallel. The response of each part is shaped from the client's operation, as for
//!   any plan; what the plan says is only which fetches each part waits for.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A plan for one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueryPlan {
    /// `None` when nothing needs fetching (e.g. only `__typename` or introspection).
    pub node: Option<PlanNode>,
}

impl QueryPlan {
    /// Whether `f` holds for the subgraph of some fetch of the plan (walked with an
    /// explicit stack: a plan's depth never becomes this thread's stack depth).
    pub fn any_fetch(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        let mut stack: Vec<&PlanNode> = self.node.iter().collect();
        while let Some(node) = stack.pop() {
            match node {
                PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => stack.extend(nodes),
                PlanNode::Fetch(fetch) if f(&fetch.service_name) => return true,
                PlanNode::BatchFetch(batch) if f(&batch.service_name) => return true,
                PlanNode::Fetch(_) | PlanNode::BatchFetch(_) => {}
                PlanNode::Flatten { node, .. } => stack.push(node),
                PlanNode::Defer { primary, deferred } => {
                    stack.extend(primary.as_deref());
                    stack.extend(deferred.iter().filter_map(|d| d.node.as_deref()));
                }
                PlanNode::Condition {
                    if_clause,
                    else_clause,
                    ..
                } => {
                    stack.extend(if_clause.as_deref());
                    stack.extend(else_clause.as_deref());
                }
            }
        }
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum PlanNode {
    Sequence {
        nodes: Vec<PlanNode>,
    },
    Parallel {
        nodes: Vec<PlanNode>,
    },
    Fetch(FetchNode),
    /// Entity fetches to one subgraph for objects at several paths, ready at the same
    /// step, sent as ONE request: each batch is an aliased `_entities` field with its own
    /// representations variable (`_e0: _entities(representations: $r0) {...}`).
    BatchFetch(BatchFetchNode),
    Flatten {
        path: Vec<PathSegment>,
        node: Box<PlanNode>,
    },
    Condition {
        /// Variable name without `$`.
        condition: String,
        #[serde(rename = "ifClause", skip_serializing_if = "Option::is_none")]
        if_clause: Option<Box<PlanNode>>,
        #[serde(rename = "elseClause", skip_serializing_if = "Option::is_none")]
        else_clause: Option<Box<PlanNode>>,
    },
    /// `@defer`: `primary` (what the initial payload needs), then every deferred
    /// fragment's fetches, in parallel. Only ever the top node of a plan.
    Defer {
        #[serde(skip_serializing_if = "Option::is_none")]
        primary: Option<Box<PlanNode>>,
        deferred: Vec<DeferredNode>,
    },
}

/// One deferred fragment (the outermost `@defer` of its branch; nested ones arrive with
/// it): the fetches its fields need beyond what the primary fetched, `None` when there
/// are none (everything it selects came with the primary's fetches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredNode {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Where the fragment applies (response keys, `@` for list items).
    pub path: Vec<PathSegment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Box<PlanNode>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchNode {
    /// Subgraph name as in `join__Graph` (`@join__graph(name:)`).
    pub service_name: String,
    /// For entity fetches: the selection that builds a representation from an object
    /// already in the response (key fields + `@requires` fields + `__typename`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires: Option<Vec<Selection>>,
    /// Client variables this fetch uses (names without `$`).
    pub variable_usages: Vec<String>,
    /// The GraphQL document sent to the subgraph.
    pub operation: String,
    pub operation_kind: OperationKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// Rewrites applied to each representation before sending (e.g. `@interfaceObject`:
    /// set `__typename` to the interface name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_rewrites: Vec<Rewrite>,
    /// Rewrites applied to each fetched entity (or, for a root fetch, to its `data`)
    /// before merging.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_rewrites: Vec<Rewrite>,
    /// Arguments filled from an ancestor's `@context` (`@fromContext`): see
    /// [`ContextFetch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextFetch>,
}

/// An entity fetch whose operation uses variables filled per representation from an
/// ancestor object (`@fromContext`). The executor reads each argument for each object
/// at the fetch's path, keeps representations with different values apart, and sends
/// ONE request: `operation` as is when every object has the same values, otherwise one
/// aliased `_entities` per distinct set of values
/// (`query($r0:[_Any!]!,$__portico_ctx_0_0:String,...){_e0:_entities(representations:$r0)<selection with $__portico_ctx_0 renamed $__portico_ctx_0_0> _e1:...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextFetch {
    pub arguments: Vec<ContextArgument>,
    /// The `_entities` selection set of `operation`, and its client variable
    /// definitions (`$first:Int=5`), to build the aliased form.
    pub selection: String,
    pub variable_definitions: Vec<String>,
}

/// One `@fromContext` argument: variable `$<variable>` of GraphQL type `type_name`.
/// Its value, for an object at concrete path P, is read at `path` (response keys) in
/// the ancestor object found by removing the last `levels_up` elements of P.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextArgument {
    pub variable: String,
    pub type_name: String,
    pub levels_up: usize,
    pub path: Vec<String>,
}

/// One request, several entity batches (see [`PlanNode::BatchFetch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFetchNode {
    pub service_name: String,
    /// Client variables the operation uses (names without `$`).
    pub variable_usages: Vec<String>,
    /// The GraphQL document sent to the subgraph: one aliased `_entities` per batch.
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    pub entity_batches: Vec<EntityBatch>,
}

/// The objects at `path`, projected through `requires`, are the representations sent
/// as `$<variable>`; the results come back under the response key `alias`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityBatch {
    pub alias: String,
    /// Variable name without `$`.
    pub variable: String,
    pub path: Vec<PathSegment>,
    pub requires: Vec<Selection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_rewrites: Vec<Rewrite>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_rewrites: Vec<Rewrite>,
}

/// A selection used to build representations (a tiny, resolved subset of GraphQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Selection {
    Field {
        /// Response key in the already-fetched data (alias or name).
        name: String,
        /// Key in the representation, when different from `name` (rare).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alias: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        selections: Vec<Selection>,
    },
    InlineFragment {
        #[serde(rename = "typeCondition", skip_serializing_if = "Option::is_none")]
        type_condition: Option<String>,
        selections: Vec<Selection>,
    },
}

/// Rewrite of a value at a path inside a representation or entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Rewrite {
    /// Set the value at `path` (e.g. `["__typename"]`) to `value`, for objects whose
    /// `__typename` is one of `if_typename` (empty = always).
    ValueSetter {
        path: Vec<String>,
        #[serde(rename = "ifTypename", default)]
        if_typename: Vec<String>,
        value: serde_json::Value,
    },
    /// Rename the key at the end of `path` to `rename_key_to` (a field the planner
    /// aliased in the subgraph request because GraphQL's "fields can merge" rule forbids
    /// the client's name there). Path elements are response keys and `... on T` (only
    /// objects whose `__typename` is T, or a subtype); lists are walked into.
    KeyRenamer {
        path: Vec<String>,
        #[serde(rename = "renameKeyTo")]
        rename_key_to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathSegment {
    /// A response key.
    Key(String),
    /// `@`: every item of the list at this point.
    List,
    /// `|[A,B]`: keep only objects whose `__typename` is one of these.
    TypeCondition(Vec<String>),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Key(k) => f.write_str(k),
            PathSegment::List => f.write_str("@"),
            PathSegment::TypeCondition(t) => write!(f, "|[{}]", t.join(",")),
        }
    }
}

fn write_selections(f: &mut fmt::Formatter<'_>, sels: &[Selection]) -> fmt::Result {
    f.write_str("{ ")?;
    for (i, s) in sels.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        match s {
            Selection::Field {
                name,
                alias,
                selections,
            } => {
                if let Some(a) = alias {
                    write!(f, "{a}: ")?;
                }
                f.write_str(name)?;
                if !selections.is_empty() {
                    f.write_str(" ")?;
                    write_selections(f, selections)?;
                }
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                f.write_str("...")?;
                if let Some(t) = type_condition {
                    write!(f, " on {t}")?;
                }
                f.write_str(" ")?;
                write_selections(f, selections)?;
            }
        }
    }
    f.write_str(" }")
}

/// `inputRewrites: __typename = "Media" if __typename in [Book,Movie]` (one line per
/// rewrite; nothing when there are none).
fn write_rewrites(
    f: &mut fmt::Formatter<'_>,
    pad: &str,
    label: &str,
    rewrites: &[Rewrite],
) -> fmt::Result {
    for r in rewrites {
        match r {
            Rewrite::KeyRenamer {
                path,
                rename_key_to,
            } => {
                writeln!(f, "{pad}  {label}: {} -> {rename_key_to}", path.join("/"))?;
            }
            Rewrite::ValueSetter {
                path,
                if_typename,
                value,
            } => {
                write!(f, "{pad}  {label}: {} = {value}", path.join("."))?;
                if !if_typename.is_empty() {
                    write!(f, " if __typename in [{}]", if_typename.join(","))?;
                }
                writeln!(f)?;
            }
        }
    }
    Ok(())
}

impl PlanNode {
    fn write(&self, f: &mut fmt::Formatter<'_>, indent: usize) -> fmt::Result {
        let pad = "  ".repeat(indent);
        match self {
            PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
                let name = if matches!(self, PlanNode::Sequence { .. }) {
                    "Sequence"
                } else {
                    "Parallel"
                };
                writeln!(f, "{pad}{name} {{")?;
                for n in nodes {
                    n.write(f, indent + 1)?;
                }
                writeln!(f, "{pad}}},")
            }
            PlanNode::Fetch(fetch) => {
                writeln!(f, "{pad}Fetch(service: \"{}\") {{", fetch.service_name)?;
                if let Some(req) = &fetch.requires {
                    write!(f, "{pad}  requires: ")?;
                    write_selections(f, req)?;
                    writeln!(f)?;
                    write_rewrites(f, &pad, "inputRewrites", &fetch.input_rewrites)?;
                    write_rewrites(f, &pad, "outputRewrites", &fetch.output_rewrites)?;
                    if let Some(c) = &fetch.context {
                        for a in &c.arguments {
                            writeln!(
                                f,
                                "{pad}  context: ${}: {} = {} levels up: {}",
                                a.variable,
                                a.type_name,
                                a.levels_up,
                                a.path.join(".")
                            )?;
                        }
                    }
                    writeln!(f, "{pad}  =>")?;
                } else if !fetch.output_rewrites.is_empty() {
                    write_rewrites(f, &pad, "outputRewrites", &fetch.output_rewrites)?;
                    writeln!(f, "{pad}  =>")?;
                }
                for line in fetch.operation.lines() {
                    writeln!(f, "{pad}  {line}")?;
                }
                writeln!(f, "{pad}}},")
            }
            PlanNode::BatchFetch(batch) => {
                writeln!(f, "{pad}BatchFetch(service: \"{}\") {{", batch.service_name)?;
                for b in &batch.entity_batches {
                    let p: Vec<String> = b.path.iter().map(|s| s.to_string()).collect();
                    write!(
                        f,
                        "{pad}  {}: ${} at \"{}\" requires: ",
                        b.alias,
                        b.variable,
                        p.join(".")
                    )?;
                    write_selections(f, &b.requires)?;
                    writeln!(f)?;
                    write_rewrites(f, &pad, "inputRewrites", &b.input_rewrites)?;
                    write_rewrites(f, &pad, "outputRewrites", &b.output_rewrites)?;
                }
                writeln!(f, "{pad}  =>")?;
                for line in batch.operation.lines() {
                    writeln!(f, "{pad}  {line}")?;
                }
                writeln!(f, "{pad}}},")
            }
            PlanNode::Flatten { path, node } => {
                let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                writeln!(f, "{pad}Flatten(path: \"{}\") {{", p.join("."))?;
                node.write(f, indent + 1)?;
                writeln!(f, "{pad}}},")
            }
            PlanNode::Condition {
                condition,
                if_clause,
                else_clause,
            } => {
                writeln!(f, "{pad}Condition(if: ${condition}) {{")?;
                if let Some(n) = if_clause {
                    writeln!(f, "{pad}  Then:")?;
                    n.write(f, indent + 2)?;
                }
                if let Some(n) = else_clause {
                    writeln!(f, "{pad}  Else:")?;
                    n.write(f, indent + 2)?;
                }
                writeln!(f, "{pad}}},")
            }
            PlanNode::Defer { primary, deferred } => {
                writeln!(f, "{pad}Defer {{")?;
                writeln!(f, "{pad}  Primary {{")?;
                if let Some(n) = primary {
                    n.write(f, indent + 2)?;
                }
                writeln!(f, "{pad}  }},")?;
                for d in deferred {
                    let p: Vec<String> = d.path.iter().map(|s| s.to_string()).collect();
                    write!(f, "{pad}  Deferred(path: \"{}\"", p.join("."))?;
                    if let Some(label) = &d.label {
                        write!(f, ", label: {label:?}")?;
                    }
                    writeln!(f, ") {{")?;
                    if let Some(n) = &d.node {
                        n.write(f, indent + 2)?;
                    }
                    writeln!(f, "{pad}  }},")?;
                }
                writeln!(f, "{pad}}},")
            }
        }
    }
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "QueryPlan {{")?;
        if let Some(n) = &self.node {
            n.write(f, 1)?;
        }
        writeln!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(service: &str) -> PlanNode {
        PlanNode::Fetch(FetchNode {
            service_name: service.into(),
            requires: None,
            variable_usages: vec![],
            operation: "{ __typename }".into(),
            operation_kind: OperationKind::Query,
            operation_name: None,
            input_rewrites: vec![],
            output_rewrites: vec![],
            context: None,
        })
    }

    #[test]
    fn any_fetch_sees_every_fetch_of_every_branch() {
        let batch = PlanNode::BatchFetch(BatchFetchNode {
            service_name: "reviews".into(),
            variable_usages: vec![],
            operation: "{ __typename }".into(),
            operation_name: None,
            entity_batches: vec![],
        });
        let plan = QueryPlan {
            node: Some(PlanNode::Sequence {
                nodes: vec![
                    fetch("users"),
                    PlanNode::Parallel {
                        nodes: vec![
                            PlanNode::Flatten {
                                path: vec![],
                                node: Box::new(fetch("posts")),
                            },
                            batch,
                        ],
                    },
                    PlanNode::Condition {
                        condition: "x".into(),
                        if_clause: None,
                        else_clause: Some(Box::new(fetch("auth"))),
                    },
                ],
            }),
        };
        for service in ["users", "posts", "reviews", "auth"] {
            assert!(plan.any_fetch(|s| s == service), "{service}");
        }
        assert!(!plan.any_fetch(|s| s == "likes"));
        assert!(!QueryPlan::default().any_fetch(|_| true));
    }
}
