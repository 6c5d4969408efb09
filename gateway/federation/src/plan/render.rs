//! Fetch rendering: a group's selection tree → the compact GraphQL document sent to the
//! subgraph (`query($representations:[_Any!]!,$v:Int){_entities(...){...on T{...}}}`),
//! declaring exactly the client variables it uses, in the operation's order.

use super::OperationKind;
use super::operation::Operation;
use super::walk::{Groups, Item};
use apollo_compiler::ast::{Directive, Value};
use apollo_compiler::{Name, Node};
use std::collections::BTreeSet;

fn collect_value_vars(v: &Value, out: &mut BTreeSet<Name>) {
    match v {
        Value::Variable(n) => {
            out.insert(n.clone());
        }
        Value::List(items) => items.iter().for_each(|i| collect_value_vars(i, out)),
        Value::Object(fields) => fields.iter().for_each(|(_, i)| collect_value_vars(i, out)),
        _ => {}
    }
}

fn directives(dirs: &[Node<Directive>], out: &mut String, vars: &mut BTreeSet<Name>) {
    for d in dirs {
        out.push('@');
        out.push_str(&d.name);
        if !d.arguments.is_empty() {
            out.push('(');
            for (i, a) in d.arguments.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                collect_value_vars(&a.value, vars);
                out.push_str(&format!("{}:{}", a.name, a.value));
            }
            out.push(')');
        }
    }
}

/// Renders node `id`; `None` when it selects nothing (empty fragment).
fn node(groups: &Groups, id: usize, vars: &mut BTreeSet<Name>) -> Option<String> {
    let n = &groups.nodes[id];
    let children: Vec<String> = n
        .children
        .values()
        .filter_map(|c| node(groups, *c, vars))
        .collect();
    let mut out = String::new();
    match &n.item {
        Item::Root => {
            out.push('{');
            out.push_str(&children.join(" "));
            out.push('}');
            return Some(out);
        }
        Item::Field {
            alias,
            name,
            arguments,
            directives: dirs,
        } => {
            if let Some(a) = alias {
                out.push_str(a);
                out.push(':');
            }
            out.push_str(name);
            if !arguments.is_empty() {
                out.push('(');
                for (i, a) in arguments.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    collect_value_vars(&a.value, vars);
                    out.push_str(&format!("{}:{}", a.name, a.value));
                }
                out.push(')');
            }
            if !dirs.is_empty() {
                out.push(' ');
                directives(dirs, &mut out, vars);
            }
            if !n.children.is_empty() {
                out.push('{');
                if children.is_empty() {
                    out.push_str("__typename");
                } else {
                    out.push_str(&children.join(" "));
                }
                out.push('}');
            }
        }
        Item::Fragment {
            type_condition,
            directives: dirs,
        } => {
            if children.is_empty() {
                return None;
            }
            out.push_str("...");
            if let Some(t) = type_condition {
                out.push_str("on ");
                out.push_str(t);
                if !dirs.is_empty() {
                    out.push(' ');
                }
            }
            directives(dirs, &mut out, vars);
            out.push('{');
            out.push_str(&children.join(" "));
            out.push('}');
        }
    }
    Some(out)
}

/// Variable definitions (`$v:Int=5`) of the client variables in `vars`, in the
/// operation's order, and their names.
fn variable_definitions(op: &Operation, vars: &BTreeSet<Name>) -> (Vec<String>, Vec<String>) {
    let used: Vec<_> = op
        .variables
        .iter()
        .filter(|v| vars.contains(&v.name))
        .collect();
    let defs = used
        .iter()
        .map(|v| match &v.default_value {
            Some(default) => format!("${}:{}={default}", v.name, v.ty),
            None => format!("${}:{}", v.name, v.ty),
        })
        .collect();
    (defs, used.iter().map(|v| v.name.to_string()).collect())
}

/// The operation of a batch of entity groups to one subgraph: batch `i` is
/// `_e<i>:_entities(representations:$r<i>){...}`.
pub(crate) fn render_batch(groups: &Groups, gs: &[usize], op: &Operation) -> (String, Vec<String>) {
    let mut vars = BTreeSet::new();
    let mut fields = Vec::with_capacity(gs.len());
    for (i, &g) in gs.iter().enumerate() {
        let body = node(groups, groups.groups[g].root, &mut vars).unwrap_or_else(|| "{}".into());
        fields.push(format!("_e{i}:_entities(representations:$r{i}){body}"));
    }
    let (client_defs, used) = variable_definitions(op, &vars);
    let mut defs: Vec<String> = (0..gs.len()).map(|i| format!("$r{i}:[_Any!]!")).collect();
    defs.extend(client_defs);
    (
        format!("query({}){{{}}}", defs.join(","), fields.join(" ")),
        used,
    )
}

/// The operation text of group `g`, its selection (the `_entities` selection for an
/// entity fetch), its client variable definitions and the client variables it uses.
pub(crate) fn render_parts(
    groups: &Groups,
    g: usize,
    op: &Operation,
) -> (String, String, Vec<String>, Vec<String>) {
    let group = &groups.groups[g];
    let mut vars = BTreeSet::new();
    let body = node(groups, group.root, &mut vars).unwrap_or_else(|| "{}".into());
    let selection = body.clone();
    let (client_defs, used) = variable_definitions(op, &vars);
    let mut defs: Vec<String> = Vec::new();
    if group.entity.is_some() {
        defs.push("$representations:[_Any!]!".into());
    }
    for a in &group.context_args {
        defs.push(format!("${}:{}", a.variable, a.type_name));
    }
    defs.extend(client_defs.iter().cloned());
    let keyword = match (group.entity.is_some(), op.kind) {
        (true, _) | (false, OperationKind::Query) => "query",
        (false, OperationKind::Mutation) => "mutation",
        (false, OperationKind::Subscription) => "subscription",
    };
    let body = if group.entity.is_some() {
        format!("{{_entities(representations:$representations){body}}}")
    } else {
        body
    };
    let text = if defs.is_empty() && keyword == "query" {
        body
    } else if defs.is_empty() {
        format!("{keyword}{body}")
    } else {
        format!("{keyword}({}){body}", defs.join(","))
    };
    (text, selection, client_defs, used)
}
