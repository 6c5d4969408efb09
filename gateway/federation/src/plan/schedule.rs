//! Stage 4, scheduling: the fetch-group DAG → plan nodes (entity fetches wrapped in
//! `Flatten`). The DAG becomes a series-parallel tree: independent branches are a
//! `Parallel` of `Sequence`s, so a fetch waits only for what it depends on (and, where
//! the DAG is not series-parallel, for the other ready fetches of its branch). Mutation
//! segments (runs of root fields of one subgraph) are scheduled one after the other,
//! keeping root fields in order.

use super::graph::Graph;
use super::operation::Operation;
use super::render::{render_batch, render_parts};
use super::walk::{DEFER_SEGMENTS, Groups, Item};
use super::{
    BatchFetchNode, Budget, ContextFetch, DeferredNode, EntityBatch, FetchNode, OperationKind,
    PlanError, PlanNode, Rewrite, Selection,
};
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

/// Names a rendered operation after the client's (see [`fetch_name`]).
fn named(op: &Operation, subgraph: &str, n: usize, operation: String) -> (String, Option<String>) {
    let Some(name) = fetch_name(op, subgraph, n) else {
        return (operation, None);
    };
    let operation = match operation.strip_prefix('{') {
        // Shorthand `{...}`: a name needs the keyword.
        Some(_) => format!("query {name}{operation}"),
        None => match operation.find(['(', '{']) {
            Some(at) => format!("{} {name}{}", &operation[..at], &operation[at..]),
            None => operation,
        },
    };
    (operation, Some(name))
}

/// The representation projection of an entity group: one `... on T` per concrete type.
fn requires_of(entity: &super::walk::Entity) -> Vec<Selection> {
    entity
        .requires
        .iter()
        .map(|(ty, sels)| Selection::InlineFragment {
            type_condition: Some(ty.to_string()),
            selections: sels.clone(),
        })
        .collect()
}

/// `__typename` rewritten to the `@interfaceObject` interface before sending: for the
/// concrete types in `rewrite_types`, or for every representation (`rewrite_all`).
fn input_rewrites_of(entity: &super::walk::Entity) -> Vec<Rewrite> {
    if !entity.rewrite_all && entity.rewrite_types.is_empty() {
        return Vec::new();
    }
    let if_typename = if entity.rewrite_all {
        Vec::new()
    } else {
        entity.rewrite_types.iter().map(|t| t.to_string()).collect()
    };
    vec![Rewrite::ValueSetter {
        path: vec!["__typename".into()],
        if_typename,
        value: serde_json::Value::String(entity.view_type.to_string()),
    }]
}

/// Entity groups `gs` (same subgraph, ready together) as one request.
fn batch_node(
    graph: &Graph<'_>,
    groups: &Groups,
    gs: &[usize],
    op: &Operation,
    n: usize,
) -> Result<PlanNode, PlanError> {
    let subgraph = graph.subgraph_name(groups.groups[gs[0]].subgraph);
    let (operation, variable_usages) = render_batch(groups, gs, op);
    let (operation, operation_name) = named(op, subgraph, n, operation);
    let mut entity_batches = Vec::with_capacity(gs.len());
    for (i, &g) in gs.iter().enumerate() {
        let entity = groups.groups[g]
            .entity
            .as_ref()
            .ok_or_else(|| PlanError::Internal("batched a root fetch".into()))?;
        entity_batches.push(EntityBatch {
            alias: format!("_e{i}"),
            variable: format!("r{i}"),
            path: entity.path.clone(),
            requires: requires_of(entity),
            input_rewrites: input_rewrites_of(entity),
            output_rewrites: groups.groups[g].renames.clone(),
        });
    }
    Ok(PlanNode::BatchFetch(BatchFetchNode {
        service_name: subgraph.to_string(),
        variable_usages,
        operation,
        operation_name,
        entity_batches,
    }))
}

fn fetch_node(graph: &Graph<'_>, groups: &Groups, g: usize, op: &Operation, n: usize) -> PlanNode {
    let group = &groups.groups[g];
    let (operation, selection, variable_definitions, variable_usages) = render_parts(groups, g, op);
    let (operation, operation_name) = named(op, graph.subgraph_name(group.subgraph), n, operation);
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
        output_rewrites: group.renames.clone(),
        context: (!group.context_args.is_empty()).then(|| ContextFetch {
            arguments: group.context_args.clone(),
            selection,
            variable_definitions,
        }),
    };
    let Some(entity) = &group.entity else {
        return PlanNode::Fetch(fetch);
    };
    fetch.requires = Some(requires_of(entity));
    fetch.input_rewrites = input_rewrites_of(entity);
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

/// Joins the sets of `a` and `b` (the smaller root wins, so roots are deterministic).
fn union(parent: &mut [usize], a: usize, b: usize) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        parent[a.max(b)] = a.min(b);
    }
}

/// Union-find root of `x`.
fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// The subgraph of an entity group that may share a request with others (not wrapped in
/// a `Condition`).
fn batchable(groups: &Groups, g: usize) -> Option<usize> {
    let group = &groups.groups[g];
    (group.entity.is_some() && group.context_args.is_empty() && condition_of(groups, g).is_none())
        .then_some(group.subgraph)
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
        if depth > 2 * self.groups.groups.len() + 2 {
            return Err(PlanError::Internal("fetch dependency cycle".into()));
        }
        // Weakly connected components, by union-find over the set.
        let ids: Vec<usize> = set.iter().copied().collect();
        let pos: BTreeMap<usize, usize> = ids.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut parent: Vec<usize> = (0..ids.len()).collect();
        for (i, &g) in ids.iter().enumerate() {
            self.budget.tick()?;
            for d in self.deps_in(g, set).collect::<Vec<_>>() {
                union(&mut parent, i, pos[&d]);
            }
        }
        let mut components: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, &g) in ids.iter().enumerate() {
            let root = find(&mut parent, i);
            components.entry(root).or_default().insert(g);
        }
        if components.len() > 1 {
            // Components whose ready fetches go to one subgraph are scheduled together,
            // so those fetches become one request (DESIGN: one request per subgraph per
            // plan step); the others stay independent branches.
            let comps: Vec<BTreeSet<usize>> = components.into_values().collect();
            let mut owner: Vec<usize> = (0..comps.len()).collect();
            // Keyed by (subgraph, level): a fetch's level is the length of the longest
            // dependency chain before it in its component, so fetches at the same
            // level of different branches are one plan step.
            let mut first_with: BTreeMap<(usize, usize), usize> = BTreeMap::new();
            for (c, comp) in comps.iter().enumerate() {
                let levels = self.levels(comp)?;
                for (&g, &level) in &levels {
                    let Some(s) = batchable(self.groups, g) else {
                        continue;
                    };
                    match first_with.get(&(s, level)) {
                        Some(&other) => union(&mut owner, c, other),
                        None => {
                            first_with.insert((s, level), c);
                        }
                    }
                }
            }
            let mut merged: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
            for (c, comp) in comps.into_iter().enumerate() {
                let root = find(&mut owner, c);
                merged.entry(root).or_default().extend(comp);
            }
            let single = merged.len() == 1;
            let mut parts = Vec::with_capacity(merged.len());
            for part in merged.values() {
                if single {
                    // Everything merged: no further split, layer it.
                    parts.extend(self.layered(part, depth + 1)?);
                } else {
                    parts.extend(self.node(part, depth + 1)?);
                }
            }
            return Ok(combine(false, parts));
        }
        self.layered(set, depth + 1)
    }

    /// Level of each group of `set`: 0 when it depends on nothing in `set`, else one more
    /// than its deepest dependency (iterated to a fixed point, no recursion).
    fn levels(&mut self, set: &BTreeSet<usize>) -> Result<BTreeMap<usize, usize>, PlanError> {
        let mut levels: BTreeMap<usize, usize> = set.iter().map(|&g| (g, 0)).collect();
        for _ in 0..=set.len() {
            let mut changed = false;
            for &g in set {
                self.budget.tick()?;
                let level = self
                    .deps_in(g, set)
                    .map(|d| levels.get(&d).copied().unwrap_or(0) + 1)
                    .max()
                    .unwrap_or(0);
                if levels.get(&g) != Some(&level) {
                    levels.insert(g, level);
                    changed = true;
                }
            }
            if !changed {
                return Ok(levels);
            }
        }
        Err(PlanError::Internal("fetch dependency cycle".into()))
    }

    /// Ready groups first (same-subgraph entity groups batched into one request), then
    /// the rest of `set`.
    fn layered(
        &mut self,
        set: &BTreeSet<usize>,
        depth: usize,
    ) -> Result<Option<PlanNode>, PlanError> {
        if set.is_empty() {
            return Ok(None);
        }
        if depth > 2 * self.groups.groups.len() + 2 {
            return Err(PlanError::Internal("fetch dependency cycle".into()));
        }
        let ids: Vec<usize> = set.iter().copied().collect();
        let ready: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&g| self.deps_in(g, set).next().is_none())
            .collect();
        if ready.is_empty() {
            return Err(PlanError::Internal("fetch dependency cycle".into()));
        }
        let subgraphs: Vec<Option<usize>> =
            ready.iter().map(|&g| batchable(self.groups, g)).collect();
        let mut by_subgraph: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (&g, s) in ready.iter().zip(&subgraphs) {
            if let Some(s) = s {
                by_subgraph.entry(*s).or_default().push(g);
            }
        }
        let mut first: Vec<PlanNode> = Vec::with_capacity(ready.len());
        for (&g, s) in ready.iter().zip(&subgraphs) {
            self.budget.tick()?;
            let batch = s
                .and_then(|s| by_subgraph.get(&s))
                .filter(|gs| gs.len() > 1);
            let node = match batch {
                Some(gs) if gs[0] == g => {
                    batch_node(self.graph, self.groups, gs, self.op, self.fetches)?
                }
                Some(_) => continue,
                None => wrap_condition(
                    self.groups,
                    g,
                    fetch_node(self.graph, self.groups, g, self.op, self.fetches),
                ),
            };
            self.fetches += 1;
            first.push(node);
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
    for (_, set) in segments.range(..DEFER_SEGMENTS) {
        steps.extend(s.node(set, 0)?);
    }
    let primary = combine(true, steps);
    if groups.defers.is_empty() {
        return Ok(primary);
    }
    // Each deferred fragment's groups (their dependencies on primary groups have run).
    let mut deferred = Vec::with_capacity(groups.defers.len());
    for (i, d) in groups.defers.iter().enumerate() {
        s.budget.tick()?;
        let node = match segments.get(&(DEFER_SEGMENTS + i)) {
            Some(set) => s.node(set, 0)?,
            None => None,
        };
        deferred.push(DeferredNode {
            label: d.label.clone(),
            path: d.path.clone(),
            node: node.map(Box::new),
        });
    }
    Ok(Some(PlanNode::Defer {
        primary: primary.map(Box::new),
        deferred,
    }))
}
