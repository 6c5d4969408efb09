//! Stage 4, scheduling: the fetch-group DAG → plan nodes (entity fetches wrapped in
//! `Flatten`). The DAG becomes a series-parallel tree: independent branches are a
//! `Parallel` of `Sequence`s, so a fetch waits only for what it depends on (and, where
//! the DAG is not series-parallel, for the other ready fetches of its branch). Mutation
//! segments (runs of root fields of one subgraph) are scheduled one after the other,
//! keeping root fields in order.

use super::graph::Graph;
use super::operation::Operation;
use super::render::render;
use super::walk::{Groups, Item};
use super::{Budget, FetchNode, OperationKind, PlanError, PlanNode, Rewrite, Selection};
use apollo_compiler::ast::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `<Operation>__<subgraph>__<n>` (as Apollo's plans name fetches), so a subgraph's
/// logs show which client operation a request serves; characters a GraphQL name cannot
/// hold become `_`. `None` for anonymous operations.
fn fetch_name(op: &Operation, subgraph: &str, n: usize) -> Option<String> {
    let name = op.name.as_ref()?;
    let subgraph: String = subgraph
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(format!("{name}__{subgraph}__{n}"))
}

fn fetch_node(graph: &Graph<'_>, groups: &Groups, g: usize, op: &Operation, n: usize) -> PlanNode {
    let group = &groups.groups[g];
    let (mut operation, variable_usages) = render(groups, g, op);
    let operation_name = fetch_name(op, graph.subgraph_name(group.subgraph), n);
    if let Some(name) = &operation_name {
        operation = match operation.strip_prefix('{') {
            // Shorthand `{...}`: a name needs the keyword.
            Some(_) => format!("query {name}{operation}"),
            None => match operation.find(['(', '{']) {
                Some(at) => format!("{} {name}{}", &operation[..at], &operation[at..]),
                None => operation,
            },
        };
    }
    let mut fetch = FetchNode {
        service_name: graph.subgraph_name(group.subgraph).to_string(),
        requires: None,
        variable_usages,
        operation,
        operation_kind: if group.entity.is_some() {
            OperationKind::Query
        } else {
            op.kind
        },
        operation_name,
        input_rewrites: Vec::new(),
        output_rewrites: Vec::new(),
    };
    let Some(entity) = &group.entity else {
        return PlanNode::Fetch(fetch);
    };
    fetch.requires = Some(
        entity
            .requires
            .iter()
            .map(|(ty, sels)| Selection::InlineFragment {
                type_condition: Some(ty.to_string()),
                selections: sels.clone(),
            })
            .collect(),
    );
    if !entity.rewrite_types.is_empty() {
        fetch.input_rewrites.push(Rewrite::ValueSetter {
            path: vec!["__typename".into()],
            if_typename: entity.rewrite_types.iter().map(|t| t.to_string()).collect(),
            value: serde_json::Value::String(entity.view_type.to_string()),
        });
    }
    PlanNode::Flatten {
        path: entity.path.clone(),
        node: Box::new(PlanNode::Fetch(fetch)),
    }
}

/// When everything an entity group selects sits under one `@include(if: $v)` or
/// `@skip(if: $v)`, the whole fetch is wrapped in a `Condition` so it is not sent at all
/// when the condition excludes it.
fn condition_of(groups: &Groups, g: usize) -> Option<(String, bool)> {
    groups.groups[g].entity.as_ref()?;
    let children = &groups.nodes[groups.entity_node(g)].children;
    let mut found: Option<(String, bool)> = None;
    for &child in children.values() {
        let dirs = match &groups.nodes[child].item {
            Item::Field { directives, .. } => directives,
            Item::Fragment {
                type_condition: None,
                directives,
            } => directives,
            _ => return None,
        };
        let [d] = dirs.as_slice() else {
            return None;
        };
        let include = match d.name.as_str() {
            "include" => true,
            "skip" => false,
            _ => return None,
        };
        let Some(Value::Variable(v)) = d.specified_argument_by_name("if").map(|v| v.as_ref())
        else {
            return None;
        };
        let this = (v.to_string(), include);
        if found.as_ref().is_some_and(|f| *f != this) {
            return None;
        }
        found = Some(this);
    }
    found
}

fn wrap_condition(groups: &Groups, g: usize, node: PlanNode) -> PlanNode {
    match condition_of(groups, g) {
        Some((condition, true)) => PlanNode::Condition {
            condition,
            if_clause: Some(Box::new(node)),
            else_clause: None,
        },
        Some((condition, false)) => PlanNode::Condition {
            condition,
            if_clause: None,
            else_clause: Some(Box::new(node)),
        },
        None => node,
    }
}

/// `Sequence`/`Parallel` with one child is the child; nested nodes of the same kind are
/// flattened into their parent.
fn combine(sequence: bool, parts: Vec<PlanNode>) -> Option<PlanNode> {
    let mut nodes = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            PlanNode::Sequence { nodes: inner } if sequence => nodes.extend(inner),
            PlanNode::Parallel { nodes: inner } if !sequence => nodes.extend(inner),
            other => nodes.push(other),
        }
    }
    match nodes.len() {
        0 => None,
        1 => nodes.pop(),
        _ if sequence => Some(PlanNode::Sequence { nodes }),
        _ => Some(PlanNode::Parallel { nodes }),
    }
}

struct Scheduler<'s, 'g, 'a> {
    graph: &'s Graph<'a>,
    op: &'s Operation,
    groups: &'s Groups,
    budget: &'g mut Budget,
    /// Fetches numbered so far (for their names).
    fetches: usize,
}

impl Scheduler<'_, '_, '_> {
    /// Deps of `g` inside `set` (deps outside it have run already).
    fn deps_in<'x>(
        &self,
        g: usize,
        set: &'x BTreeSet<usize>,
    ) -> impl Iterator<Item = usize> + use<'x, '_> {
        self.groups.groups[g]
            .deps
            .iter()
            .copied()
            .filter(move |d| set.contains(d))
    }

    /// Schedules `set` (closed under "depends on", within the set) as a series-parallel
    /// tree: independent parts (weakly connected components) run in `Parallel`, so a
    /// branch never waits for an unrelated slower one; inside a part, its ready groups
    /// run first, then the rest is scheduled the same way.
    fn node(&mut self, set: &BTreeSet<usize>, depth: usize) -> Result<Option<PlanNode>, PlanError> {
        if set.is_empty() {
            return Ok(None);
        }
        if depth > self.groups.groups.len() + 1 {
            return Err(PlanError::Internal("fetch dependency cycle".into()));
        }
        // Weakly connected components, by union-find over the set.
        let ids: Vec<usize> = set.iter().copied().collect();
        let pos: BTreeMap<usize, usize> = ids.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut parent: Vec<usize> = (0..ids.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (i, &g) in ids.iter().enumerate() {
            self.budget.tick()?;
            for d in self.deps_in(g, set).collect::<Vec<_>>() {
                let (a, b) = (find(&mut parent, i), find(&mut parent, pos[&d]));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        let mut components: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, &g) in ids.iter().enumerate() {
            let root = find(&mut parent, i);
            components.entry(root).or_default().insert(g);
        }
        if components.len() > 1 {
            let mut parts = Vec::with_capacity(components.len());
            for component in components.values() {
                parts.extend(self.node(component, depth + 1)?);
            }
            return Ok(combine(false, parts));
        }
        let ready: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&g| self.deps_in(g, set).next().is_none())
            .collect();
        if ready.is_empty() {
            return Err(PlanError::Internal("fetch dependency cycle".into()));
        }
        let mut first: Vec<PlanNode> = Vec::with_capacity(ready.len());
        for &g in &ready {
            let node = fetch_node(self.graph, self.groups, g, self.op, self.fetches);
            self.fetches += 1;
            first.push(wrap_condition(self.groups, g, node));
        }
        let rest: BTreeSet<usize> = set.iter().copied().filter(|g| !ready.contains(g)).collect();
        let mut steps: Vec<PlanNode> = combine(false, first).into_iter().collect();
        steps.extend(self.node(&rest, depth + 1)?);
        Ok(combine(true, steps))
    }
}

pub(crate) fn schedule(
    graph: &Graph<'_>,
    op: &Operation,
    groups: &Groups,
    budget: &mut Budget,
) -> Result<Option<PlanNode>, PlanError> {
    // Mutation segments (root fields in order) run one after the other.
    let mut segments: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (g, group) in groups.groups.iter().enumerate() {
        budget.tick()?;
        if !group.merged {
            segments.entry(group.segment).or_default().insert(g);
        }
    }
    let mut s = Scheduler {
        graph,
        op,
        groups,
        budget,
        fetches: 0,
    };
    let mut steps = Vec::new();
    for set in segments.values() {
        steps.extend(s.node(set, 0)?);
    }
    Ok(combine(true, steps))
}
