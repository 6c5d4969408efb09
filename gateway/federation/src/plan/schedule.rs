//! Stage 4, scheduling: the fetch-group DAG → plan nodes. Each group runs at the level
//! after its deepest dependency; a level is a `Parallel` of fetches (entity fetches
//! wrapped in `Flatten`), levels form a `Sequence`. Mutation segments (runs of root fields
//! of one subgraph) are scheduled one after the other, keeping root fields in order.

use super::graph::Graph;
use super::operation::Operation;
use super::render::render;
use super::walk::{Groups, Item};
use super::{Budget, FetchNode, OperationKind, PlanError, PlanNode, Rewrite, Selection};
use apollo_compiler::ast::Value;
use std::collections::BTreeMap;

fn fetch_node(graph: &Graph<'_>, groups: &Groups, g: usize, op: &Operation) -> PlanNode {
    let group = &groups.groups[g];
    let (operation, variable_usages) = render(groups, g, op);
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
        operation_name: None,
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

fn level(
    groups: &Groups,
    g: usize,
    memo: &mut BTreeMap<usize, usize>,
    depth: usize,
) -> Result<usize, PlanError> {
    if let Some(l) = memo.get(&g) {
        return Ok(*l);
    }
    if depth > groups.groups.len() {
        return Err(PlanError::Internal("fetch dependency cycle".into()));
    }
    let mut l = 0;
    for &d in &groups.groups[g].deps {
        l = l.max(level(groups, d, memo, depth + 1)? + 1);
    }
    memo.insert(g, l);
    Ok(l)
}

pub(crate) fn schedule(
    graph: &Graph<'_>,
    op: &Operation,
    groups: &Groups,
    budget: &mut Budget,
) -> Result<Option<PlanNode>, PlanError> {
    let mut memo = BTreeMap::new();
    // segment → level → groups
    let mut layout: BTreeMap<usize, BTreeMap<usize, Vec<usize>>> = BTreeMap::new();
    for (g, group) in groups.groups.iter().enumerate() {
        budget.tick()?;
        if group.merged {
            continue;
        }
        let l = level(groups, g, &mut memo, 0)?;
        layout
            .entry(group.segment)
            .or_default()
            .entry(l)
            .or_default()
            .push(g);
    }
    let mut steps = Vec::new();
    for levels in layout.values() {
        for ids in levels.values() {
            let mut nodes: Vec<PlanNode> = ids
                .iter()
                .map(|&g| wrap_condition(groups, g, fetch_node(graph, groups, g, op)))
                .collect();
            steps.push(if nodes.len() == 1 {
                nodes.remove(0)
            } else {
                PlanNode::Parallel { nodes }
            });
        }
    }
    Ok(match steps.len() {
        0 => None,
        1 => steps.pop(),
        _ => Some(PlanNode::Sequence { nodes: steps }),
    })
}
