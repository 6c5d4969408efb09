//! Stage 5, satisfiability: every field of the API schema must be resolvable by some plan
//! from the root types. A breadth-first walk over `(type, subgraph)` states, using the
//! planner's own view of the join metadata ([`crate::plan::graph::Graph`]): a field moves
//! to its type in the same subgraph, an abstract type to its possible types there, and a
//! key whose fields the current subgraph can provide jumps to another subgraph. A field of
//! a reachable type that no reachable state resolves is reported as `SATISFIABILITY_ERROR`
//! with the shortest query reaching it. Override labels are taken as inactive.

use super::{Diagnostic, Diagnostics};
use crate::plan::graph::Graph;
use crate::supergraph::Supergraph;
use apollo_compiler::Name;
use apollo_compiler::schema::ExtendedType;
use std::collections::{BTreeSet, HashMap, VecDeque};

#[derive(Clone)]
enum Step {
    Root(&'static str),
    Field(Name),
    Condition(Name),
    Jump,
}

type State = (Name, usize);

pub(crate) fn check(supergraph: &Supergraph, diags: &mut Diagnostics) {
    let labels = BTreeSet::new();
    let g = Graph::new(supergraph, &labels);
    let api = supergraph.api_schema();
    let n = supergraph.subgraphs().len();
    let mut parent: HashMap<State, (Option<State>, Step)> = HashMap::new();
    let mut queue: VecDeque<State> = VecDeque::new();
    for (kind, root) in [
        ("query", &api.schema_definition.query),
        ("mutation", &api.schema_definition.mutation),
        ("subscription", &api.schema_definition.subscription),
    ] {
        let Some(root) = root else { continue };
        for s in g.type_graphs(&root.name) {
            let state = (root.name.clone(), s);
            if parent
                .insert(state.clone(), (None, Step::Root(kind)))
                .is_none()
            {
                queue.push_back(state);
            }
        }
    }
    let visit = |parent: &mut HashMap<State, (Option<State>, Step)>,
                 queue: &mut VecDeque<State>,
                 from: &State,
                 to: State,
                 step: Step| {
        if !parent.contains_key(&to) {
            parent.insert(to.clone(), (Some(from.clone()), step));
            queue.push_back(to);
        }
    };
    while let Some(state) = queue.pop_front() {
        let (ty, s) = &state;
        let Some(def) = api.types.get(ty) else {
            continue;
        };
        // Fields resolvable here.
        let fields = match def {
            ExtendedType::Object(o) => Some(&o.fields),
            ExtendedType::Interface(i) => Some(&i.fields),
            _ => None,
        };
        if let Some(fields) = fields {
            for (f, fdef) in fields {
                if g.field_local(*s, ty, f).is_none() {
                    continue;
                }
                let target = fdef.ty.inner_named_type();
                if matches!(
                    api.types.get(target),
                    Some(
                        ExtendedType::Object(_)
                            | ExtendedType::Interface(_)
                            | ExtendedType::Union(_)
                    )
                ) && g.type_graphs(target).contains(s)
                {
                    visit(
                        &mut parent,
                        &mut queue,
                        &state,
                        (target.clone(), *s),
                        Step::Field(f.clone()),
                    );
                }
            }
        }
        // Abstract types: their possible types in this subgraph.
        if g.is_abstract(ty) && !g.is_interface_object(*s, ty) {
            for o in g.possible_types(*s, ty) {
                if api.types.contains_key(&o) {
                    visit(
                        &mut parent,
                        &mut queue,
                        &state,
                        (o.clone(), *s),
                        Step::Condition(o),
                    );
                }
            }
        }
        // Key jumps to other subgraphs.
        for other in 0..n {
            if other == *s {
                continue;
            }
            let reachable = g.resolvable_keys(other, ty).any(|k| {
                k.fields
                    .selections()
                    .is_ok_and(|sels| g.obtainable(*s, ty, sels))
            });
            if reachable {
                visit(
                    &mut parent,
                    &mut queue,
                    &state,
                    (ty.clone(), other),
                    Step::Jump,
                );
            }
        }
        // An object reaches the @interfaceObject copies of its interfaces.
        if let Some(o) = api.get_object(ty) {
            for i in &o.implements_interfaces {
                for other in g.type_graphs(&i.name) {
                    if g.is_interface_object(other, &i.name)
                        && g.resolvable_keys(other, &i.name).any(|k| {
                            k.fields
                                .selections()
                                .is_ok_and(|sels| g.obtainable(*s, ty, sels))
                        })
                    {
                        visit(
                            &mut parent,
                            &mut queue,
                            &state,
                            (i.name.clone(), other),
                            Step::Jump,
                        );
                    }
                }
            }
        }
    }

    // Every field of every reached object type must be resolved by some reached state.
    let mut reached: HashMap<&Name, Vec<usize>> = HashMap::new();
    for (t, s) in parent.keys() {
        reached.entry(t).or_default().push(*s);
    }
    let mut types: Vec<_> = reached.into_iter().collect();
    types.sort_by(|a, b| a.0.cmp(b.0));
    for (ty, mut graphs) in types {
        graphs.sort();
        let Some(object) = api.get_object(ty) else {
            continue;
        };
        for f in object.fields.keys() {
            if graphs.iter().any(|s| g.field_local(*s, ty, f).is_some()) {
                continue;
            }
            // Through an @interfaceObject copy of one of its interfaces.
            let via_interface_object = object.implements_interfaces.iter().any(|i| {
                parent
                    .keys()
                    .any(|(t, s)| *t == i.name && g.field_local(*s, &i.name, f).is_some())
            });
            if via_interface_object {
                continue;
            }
            let from = graphs[0];
            let query = query_to(&parent, &(ty.clone(), from), f);
            let names: Vec<String> = graphs
                .iter()
                .map(|s| supergraph.subgraphs()[*s].name.clone())
                .collect();
            let reasons: Vec<String> = names
                .iter()
                .map(|n| format!("- from subgraph \"{n}\": cannot find field \"{ty}.{f}\"."))
                .collect();
            diags.push(
                Diagnostic::error(
                    "SATISFIABILITY_ERROR",
                    format!(
                        "The following supergraph API query:\n{query}\ncannot be satisfied by the subgraphs because:\n{}",
                        reasons.join("\n")
                    ),
                )
                .subgraphs(names)
                .at(format!("{ty}.{f}")),
            );
        }
    }
}

/// The shortest query from a root to `field` on `state`'s type.
fn query_to(parent: &HashMap<State, (Option<State>, Step)>, state: &State, field: &str) -> String {
    let mut steps = Vec::new();
    let mut cur = Some(state.clone());
    let mut root = "query";
    while let Some(s) = cur {
        let Some((p, step)) = parent.get(&s) else {
            break;
        };
        match step {
            Step::Root(kind) => root = kind,
            Step::Jump => {}
            other => steps.push(other.clone()),
        }
        cur = p.clone();
    }
    steps.reverse();
    let mut out = format!("{root} {{\n");
    let mut indent = 1;
    for step in &steps {
        let pad = "  ".repeat(indent);
        match step {
            Step::Field(f) => out.push_str(&format!("{pad}{f} {{\n")),
            Step::Condition(t) => out.push_str(&format!("{pad}... on {t} {{\n")),
            _ => continue,
        }
        indent += 1;
    }
    out.push_str(&format!("{}{field}\n", "  ".repeat(indent)));
    for i in (0..indent).rev() {
        out.push_str(&format!("{}}}\n", "  ".repeat(i)));
    }
    out.pop();
    out
}
