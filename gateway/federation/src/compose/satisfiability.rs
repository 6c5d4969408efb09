//! Stage 5, satisfiability: every field of the API schema must be resolvable by some plan,
//! along every path from the root types. A breadth-first walk over
//! `(type, subgraph, provided)` states, using the planner's own view of the join metadata
//! ([`crate::plan::graph::Graph`]):
//!
//! - a field moves to its type in the same subgraph, an abstract type to its possible
//!   types there, and a key jumps to another subgraph when its fields can be fetched from
//!   the subgraphs reached so far (jumps chain: A → B by `id` fetches `sku`, then
//!   → C by `id sku`);
//! - an interface field a subgraph's interface lacks is reached through the interface's
//!   implementations there (Apollo's type explosion), when every one of them resolves it;
//! - a field with `@provides` carries the provided selection into its child state, where
//!   the provided (otherwise `@external`) fields resolve in that subgraph, on that path
//!   only;
//! - a field with `@requires` resolves only when its required field set can be fetched:
//!   each required field resolvable in the current subgraph or in one reached from it by
//!   key jumps, and, when some come from elsewhere, a resolvable key of the type in the
//!   current subgraph whose fields can be fetched (to come back with the values).
//!
//! Every field of the type of every reached object state must be resolvable from that
//! state or from a state its key jumps reach; otherwise `SATISFIABILITY_ERROR`, once per
//! field, with the shortest query reaching it.
//!
//! A shared field (resolved by several subgraphs) returning an abstract type must have
//! possible runtime types in common across the subgraphs resolving it at a position
//! (`SHAREABLE_HAS_MISMATCHED_RUNTIME_TYPES`); differing sets give an
//! `INCONSISTENT_RUNTIME_TYPES_FOR_SHAREABLE_RETURN` hint, once per field.
//!
//! Progressive override: the walk runs once per override-label setting. Up to
//! [`EXHAUSTIVE_LABELS`] distinct labels, every combination is checked; beyond that,
//! every label inactive, each label alone active, each label alone inactive, and every
//! label active (`2n + 2` settings). A field failing under several settings is reported
//! once, for the first setting in that order.
//!
//! The walk stops after [`MAX_NODES`] option sets per setting and then says so with a
//! `SATISFIABILITY_CHECK_INCOMPLETE` hint.

use super::{Diagnostic, Diagnostics};
use crate::plan::graph::Graph;
use crate::plan::operation::Sel;
use crate::plan::walk::find_provided;
use crate::supergraph::Supergraph;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Schema};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Up to this many distinct override labels, every combination of them is checked.
const EXHAUSTIVE_LABELS: usize = 4;

/// How deep `@requires` conditions (and their nested selections) are followed.
const MAX_DEPTH: usize = 16;

#[derive(Clone)]
enum Step {
    Root(&'static str),
    Field(Name),
    Condition(Name),
}

/// An index into [`Walk::provided`]: the selection a parent's `@provides` makes
/// resolvable in this state's subgraph.
type Prov = Option<usize>;

type State = (Name, usize, Prov);

/// A position in a query: its type and the states a plan may be in there (closed under
/// key jumps), sorted.
type Node = (Name, Vec<State>);

/// Bound on the option sets explored per label setting.
const MAX_NODES: usize = 100_000;

/// Why a state does not resolve a field.
enum Miss {
    NotFound,
    External,
    Requires(String),
}

pub(crate) fn check(supergraph: &Supergraph, diags: &mut Diagnostics) {
    let labels = override_labels(supergraph);
    let mut reported = HashSet::new();
    let mut reported_runtime = HashSet::new();
    let mut truncated = false;
    for active in label_sets(&labels) {
        let setting = (!labels.is_empty()).then(|| describe_setting(&active, &labels));
        let g = Graph::new(supergraph, &active);
        let mut walk = Walk::new(supergraph, &g);
        for (coordinate, d) in walk.run(setting.as_deref()) {
            if reported.insert(coordinate) {
                diags.push(d);
            }
        }
        for (coordinate, d) in std::mem::take(&mut walk.runtime_types) {
            if reported_runtime.insert(coordinate) {
                diags.push(d);
            }
        }
        truncated |= walk.truncated;
    }
    if truncated {
        diags.push(Diagnostic::hint(
            "SATISFIABILITY_CHECK_INCOMPLETE",
            format!(
                "The satisfiability check stopped after {MAX_NODES} query positions: some fields were not checked"
            ),
        ));
    }
}

/// Every override label of the supergraph (`@join__field(overrideLabel:)`), sorted.
fn override_labels(supergraph: &Supergraph) -> Vec<String> {
    let mut labels = BTreeSet::new();
    for name in supergraph.supergraph_schema().types.keys() {
        let Some(meta) = supergraph.type_meta(name) else {
            continue;
        };
        for joins in meta.fields.values() {
            for j in joins {
                if let Some(l) = &j.override_label {
                    labels.insert(l.clone());
                }
            }
        }
    }
    labels.into_iter().collect()
}

/// The active-label sets to check, in reporting order (see the module docs).
fn label_sets(labels: &[String]) -> Vec<BTreeSet<String>> {
    let n = labels.len();
    let set = |pick: &dyn Fn(usize) -> bool| -> BTreeSet<String> {
        (0..n)
            .filter(|i| pick(*i))
            .map(|i| labels[i].clone())
            .collect()
    };
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    if n <= EXHAUSTIVE_LABELS {
        let mut masks: Vec<u32> = (0..(1u32 << n)).collect();
        masks.sort_by_key(|m| m.count_ones());
        for m in masks {
            out.push(set(&|i| m & (1 << i) != 0));
        }
    } else {
        out.push(BTreeSet::new());
        for l in 0..n {
            out.push(set(&|i| i == l));
        }
        for l in 0..n {
            out.push(set(&|i| i != l));
        }
        out.push(set(&|_| true));
    }
    out
}

fn describe_setting(active: &BTreeSet<String>, labels: &[String]) -> String {
    let quoted = |it: &mut dyn Iterator<Item = &String>| -> String {
        it.map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if active.is_empty() {
        if labels.len() == 1 {
            format!(
                "with override label {} inactive",
                quoted(&mut labels.iter())
            )
        } else {
            "with every override label inactive".to_string()
        }
    } else if active.len() == labels.len() {
        if labels.len() == 1 {
            format!("with override label {} active", quoted(&mut labels.iter()))
        } else {
            "with every override label active".to_string()
        }
    } else {
        format!(
            "with override label(s) {} active and {} inactive",
            quoted(&mut active.iter()),
            quoted(&mut labels.iter().filter(|l| !active.contains(*l)))
        )
    }
}

/// How deep nested key fields are followed into their own key jumps.
const MAX_KEY_NESTING: usize = 4;

struct Walk<'a, 'g> {
    supergraph: &'a Supergraph,
    g: &'g Graph<'a>,
    api: &'a Schema,
    /// Provided selections, interned by their printed form.
    provided: Vec<Vec<Sel>>,
    provided_ids: HashMap<String, usize>,
    parent: HashMap<Node, (Option<Node>, Step)>,
    closures: HashMap<(Name, usize), Vec<usize>>,
    /// Depth of nested key checks in progress (see `key_obtainable_nested`).
    key_nesting: usize,
    requires: HashMap<(State, Name), Result<(), String>>,
    /// Shared abstract-typed fields whose subgraphs disagree on the runtime types, by
    /// coordinate (first position found).
    runtime_types: BTreeMap<String, Diagnostic>,
    /// [`MAX_NODES`] was hit: part of the schema went unchecked.
    truncated: bool,
}

impl<'a, 'g> Walk<'a, 'g> {
    fn new(supergraph: &'a Supergraph, g: &'g Graph<'a>) -> Self {
        Walk {
            supergraph,
            g,
            api: supergraph.api_schema(),
            provided: Vec::new(),
            provided_ids: HashMap::new(),
            parent: HashMap::new(),
            closures: HashMap::new(),
            key_nesting: 0,
            requires: HashMap::new(),
            runtime_types: BTreeMap::new(),
            truncated: false,
        }
    }

    fn intern(&mut self, sels: Vec<Sel>) -> Prov {
        if sels.is_empty() {
            return None;
        }
        let key = print_sels(&sels);
        if let Some(id) = self.provided_ids.get(&key) {
            return Some(*id);
        }
        let id = self.provided.len();
        self.provided.push(sels);
        self.provided_ids.insert(key, id);
        Some(id)
    }

    fn visit(&mut self, queue: &mut VecDeque<Node>, from: Option<&Node>, to: Node, step: Step) {
        if self.parent.contains_key(&to) {
            return;
        }
        if self.parent.len() >= MAX_NODES {
            self.truncated = true;
            return;
        }
        self.parent.insert(to.clone(), (from.cloned(), step));
        queue.push_back(to);
    }

    /// `members` and every state key jumps (and `@interfaceObject` jumps) reach from them.
    fn close(&mut self, ty: &Name, members: Vec<State>) -> Node {
        let mut out: BTreeSet<State> = BTreeSet::new();
        for (t, s, p) in members {
            let reached = self.closure(&t, s);
            for s2 in &reached {
                let p2 = if *s2 == s { p } else { None };
                out.insert((t.clone(), *s2, p2));
            }
            for (i, other) in self.interface_object_jumps(&t, &reached) {
                out.insert((i, other, None));
            }
        }
        (ty.clone(), out.into_iter().collect())
    }

    /// Breadth-first over option sets: the states a plan may be in at one position of a
    /// query. Returns the unsatisfiable fields, `(coordinate, diagnostic)`, one per field
    /// (for the shortest query), sorted by type name and then field order.
    fn run(&mut self, setting: Option<&str>) -> Vec<(String, Diagnostic)> {
        let g = self.g;
        let api = self.api;
        let mut queue = VecDeque::new();
        for (kind, root) in [
            ("query", &api.schema_definition.query),
            ("mutation", &api.schema_definition.mutation),
            ("subscription", &api.schema_definition.subscription),
        ] {
            let Some(root) = root else { continue };
            let members = g
                .type_graphs(&root.name)
                .into_iter()
                .map(|s| (root.name.clone(), s, None))
                .collect();
            let node = self.close(&root.name, members);
            self.visit(&mut queue, None, node, Step::Root(kind));
        }
        let mut found: HashMap<(Name, usize), Diagnostic> = HashMap::new();
        while let Some(node) = queue.pop_front() {
            let (ty, members) = &node;
            let Some(def) = api.types.get(ty) else {
                continue;
            };
            let fields = super::validate::fields_of(def);
            for (index, (f, fdef)) in fields.into_iter().flatten().enumerate() {
                let target = fdef.ty.inner_named_type();
                let composite = matches!(
                    api.types.get(target),
                    Some(
                        ExtendedType::Object(_)
                            | ExtendedType::Interface(_)
                            | ExtendedType::Union(_)
                    )
                );
                let mut children = Vec::new();
                let mut misses: Vec<(usize, Miss)> = Vec::new();
                for member in members {
                    let (mt, s, _) = member;
                    // A member of another type (an @interfaceObject copy) answers only
                    // the fields that type has.
                    if mt != ty && g.field_type(mt, f).is_none() {
                        continue;
                    }
                    match self.resolve(member, f, 0) {
                        Ok(ways) => children.extend(child_states(g, target, composite, *s, ways)),
                        Err(miss) => match self.explode(member, ty, f, target, composite) {
                            Some(more) => children.extend(more),
                            None => misses.push((*s, miss)),
                        },
                    }
                }
                if !children.is_empty() && composite && g.is_abstract(target) {
                    self.shareable_runtime_types(&node, f, &fdef.ty, &children);
                }
                if children.is_empty() {
                    if api.get_object(ty).is_some() && !found.contains_key(&(ty.clone(), index)) {
                        let d = self.diagnostic(&node, f, misses, setting);
                        found.insert((ty.clone(), index), d);
                    }
                    continue;
                }
                if composite {
                    let child = self.close(target, children);
                    self.visit(&mut queue, Some(&node), child, Step::Field(f.clone()));
                }
            }
            // Abstract types: each possible type, in the members that can return it (what
            // is provided stays provided: `... on T` fragments of it apply there).
            if g.is_abstract(ty) {
                let mut possible: BTreeMap<Name, Vec<State>> = BTreeMap::new();
                for (mt, s, p) in members {
                    if mt != ty || g.is_interface_object(*s, mt) {
                        continue;
                    }
                    for o in g.possible_types(*s, mt) {
                        if api.types.contains_key(&o) {
                            possible.entry(o.clone()).or_default().push((o, *s, *p));
                        }
                    }
                }
                for (o, narrowed) in possible {
                    let child = self.close(&o, narrowed);
                    self.visit(&mut queue, Some(&node), child, Step::Condition(o));
                }
            }
        }
        let mut out: Vec<((Name, usize), Diagnostic)> = found.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter()
            .map(|(_, d)| (d.coordinate.clone().unwrap_or_default(), d))
            .collect()
    }

    /// Apollo's type explosion: an interface member whose subgraph does not resolve
    /// `field` on the interface still gets there when every implementation of the
    /// interface in that subgraph resolves it (there or through key jumps). Returns the
    /// states below the field, `None` when some implementation does not resolve it.
    fn explode(
        &mut self,
        member: &State,
        ty: &Name,
        field: &Name,
        target: &Name,
        composite: bool,
    ) -> Option<Vec<State>> {
        let g = self.g;
        let (mt, s, p) = member;
        if mt != ty || self.api.get_interface(ty).is_none() || g.is_interface_object(*s, mt) {
            return None;
        }
        let implementations: Vec<Name> = g
            .possible_types(*s, mt)
            .into_iter()
            .filter(|o| self.api.types.contains_key(o))
            .collect();
        if implementations.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for o in implementations {
            let (_, states) = self.close(&o, vec![(o.clone(), *s, *p)]);
            let mut resolved = false;
            for state in &states {
                let (st, s2, _) = state;
                if *st != o && g.field_type(st, field).is_none() {
                    continue;
                }
                if let Ok(ways) = self.resolve(state, field, 0) {
                    resolved = true;
                    out.extend(child_states(g, target, composite, *s2, ways));
                }
            }
            if !resolved {
                return None;
            }
        }
        Some(out)
    }

    /// Is `ty.field` resolved by several subgraphs (Apollo's `isShareable` on the
    /// supergraph: more than one `@join__field` neither external nor `usedOverridden`, or
    /// none and several `@join__type`)?
    fn shared(&self, ty: &str, field: &str) -> bool {
        if self.api.get_object(ty).is_none() {
            return false;
        }
        let Some(meta) = self.supergraph.type_meta(ty) else {
            return false;
        };
        match meta.fields.get(field) {
            None => meta.in_graphs.len() > 1,
            Some(joins) => {
                joins
                    .iter()
                    .filter(|j| !j.external && !j.used_overridden)
                    .count()
                    > 1
            }
        }
    }

    /// A shared field returning an abstract type should have the same possible runtime
    /// types in every subgraph resolving it at this position: none in common is
    /// `SHAREABLE_HAS_MISMATCHED_RUNTIME_TYPES`, different sets an
    /// `INCONSISTENT_RUNTIME_TYPES_FOR_SHAREABLE_RETURN` hint (Apollo's rules).
    fn shareable_runtime_types(
        &mut self,
        node: &Node,
        field: &Name,
        field_type: &apollo_compiler::ast::Type,
        children: &[State],
    ) {
        let g = self.g;
        let ty = &node.0;
        let coordinate = format!("{ty}.{field}");
        if self.runtime_types.contains_key(&coordinate) || !self.shared(ty, field) {
            return;
        }
        // Per subgraph (in graph order), the object types it may return there. An
        // @interfaceObject stands for every implementation: not a restriction.
        let mut per: BTreeMap<usize, Vec<Name>> = BTreeMap::new();
        for (target, s, _) in children {
            if per.contains_key(s) {
                continue;
            }
            let own = g
                .subgraph_field_type(*s, ty, field)
                .unwrap_or_else(|| target.clone());
            if !g.is_abstract(&own) || g.is_interface_object(*s, &own) {
                continue;
            }
            per.insert(*s, g.possible_types(*s, &own));
        }
        if per.len() < 2 || per.values().all(Vec::is_empty) {
            return;
        }
        let mut common: Vec<Name> = per
            .values()
            .next()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| self.api.types.contains_key(o))
            .collect();
        for types in per.values() {
            common.retain(|o| types.contains(o));
        }
        // Subgraphs grouped by the same set, in order of first appearance.
        let mut groups: Vec<(&Vec<Name>, Vec<usize>)> = Vec::new();
        for (s, types) in &per {
            match groups.iter_mut().find(|(t, _)| *t == types) {
                Some((_, subgraphs)) => subgraphs.push(*s),
                None => groups.push((types, vec![*s])),
            }
        }
        if !common.is_empty() && groups.len() < 2 {
            return;
        }
        let name = |s: usize| self.supergraph.subgraphs()[s].name.clone();
        let quoted = |names: &[String]| -> Vec<String> {
            names.iter().map(|n| format!("\"{n}\"")).collect()
        };
        let types_of = |types: &[Name]| -> Vec<String> {
            quoted(&types.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        };
        let query = query_to(&self.parent, node, field, true);
        let all: Vec<String> = per.keys().map(|s| name(*s)).collect();
        let d = if common.is_empty() {
            let lines: Vec<String> = groups
                .iter()
                .map(|(types, subgraphs)| {
                    let names: Vec<String> = subgraphs.iter().map(|s| name(*s)).collect();
                    let types = if types.is_empty() {
                        "no runtime type is defined".to_string()
                    } else {
                        human_list(&types_of(types), "type", "types")
                    };
                    format!(
                        " - in {}, {types}",
                        human_list(&quoted(&names), "subgraph", "subgraphs")
                    )
                })
                .collect();
            Diagnostic::error(
                "SHAREABLE_HAS_MISMATCHED_RUNTIME_TYPES",
                format!(
                    "For the following supergraph API query:\n{query}\nShared field \"{coordinate}\" return type \"{field_type}\" has a non-intersecting set of possible runtime types across subgraphs. Runtime types in subgraphs are:\n{}.\nThis is not allowed as shared fields must resolve the same way in all subgraphs, and that imply at least some common runtime types between the subgraphs.",
                    lines.join(";\n")
                ),
            )
        } else {
            let lines: Vec<String> = per
                .iter()
                .filter_map(|(s, types)| {
                    let extra: Vec<Name> = types
                        .iter()
                        .filter(|t| !common.contains(t))
                        .cloned()
                        .collect();
                    (!extra.is_empty()).then(|| {
                        format!(
                            " - subgraph \"{}\" should never resolve \"{coordinate}\" to an object of {}",
                            name(*s),
                            human_list(&types_of(&extra), "type", "types")
                        )
                    })
                })
                .collect();
            Diagnostic::hint(
                "INCONSISTENT_RUNTIME_TYPES_FOR_SHAREABLE_RETURN",
                format!(
                    "For the following supergraph API query:\n{query}\nShared field \"{coordinate}\" return type \"{field_type}\" has different sets of possible runtime types across subgraphs.\nSince a shared field must be resolved the same way in all subgraphs, make sure that {} only resolve \"{coordinate}\" to objects of {}. In particular:\n{}.\nOtherwise the @shareable contract will be broken.",
                    human_list(&quoted(&all), "subgraph", "subgraphs"),
                    human_list(&types_of(&common), "type", "types"),
                    lines.join(";\n")
                ),
            )
        };
        self.runtime_types
            .insert(coordinate.clone(), d.subgraphs(all).at(coordinate));
    }

    fn diagnostic(
        &self,
        node: &Node,
        f: &Name,
        mut misses: Vec<(usize, Miss)>,
        setting: Option<&str>,
    ) -> Diagnostic {
        let ty = &node.0;
        misses.sort_by_key(|(s, _)| *s);
        misses.dedup_by_key(|(s, _)| *s);
        let query = query_to(&self.parent, node, f, false);
        let names: Vec<String> = misses
            .iter()
            .map(|(s, _)| self.supergraph.subgraphs()[*s].name.clone())
            .collect();
        let reasons: Vec<String> = misses
            .iter()
            .zip(&names)
            .map(|((_, miss), subgraph)| match miss {
                Miss::NotFound => {
                    format!("- from subgraph \"{subgraph}\": cannot find field \"{ty}.{f}\".")
                }
                Miss::External => format!(
                    "- from subgraph \"{subgraph}\": field \"{ty}.{f}\" is not resolvable because marked @external."
                ),
                Miss::Requires(why) => format!("- from subgraph \"{subgraph}\": {why}."),
            })
            .collect();
        let header = match setting {
            Some(setting) => format!("cannot be satisfied by the subgraphs {setting} because:"),
            None => "cannot be satisfied by the subgraphs because:".to_string(),
        };
        Diagnostic::error(
            "SATISFIABILITY_ERROR",
            format!(
                "The following supergraph API query:\n{query}\n{header}\n{}",
                reasons.join("\n")
            ),
        )
        .subgraphs(names)
        .at(format!("{ty}.{f}"))
    }

    /// Can every field of the key `sels` of `ty` be fetched from one of the subgraphs
    /// `from` (each field from any of them)?
    fn key_obtainable(&self, from: &[usize], ty: &str, sels: &[Sel]) -> bool {
        sels.iter().all(|sel| {
            from.iter()
                .any(|x| self.g.obtainable(*x, ty, std::slice::from_ref(sel)))
        })
    }

    /// [`key_obtainable`](Self::key_obtainable), and also a nested key field whose own
    /// sub-selection is fetched by key jumps of its type from where the field resolves
    /// (`category { id tag }` with `tag` only in another subgraph of `Category`), as the
    /// planner does. Nesting is bounded by [`MAX_KEY_NESTING`].
    fn key_obtainable_nested(&mut self, from: &[usize], ty: &str, sels: &[Sel]) -> bool {
        if self.key_nesting >= MAX_KEY_NESTING {
            return self.key_obtainable(from, ty, sels);
        }
        self.key_nesting += 1;
        let ok = sels.iter().all(|sel| {
            if from
                .iter()
                .any(|x| self.g.obtainable(*x, ty, std::slice::from_ref(sel)))
            {
                return true;
            }
            let Sel::Field(f) = sel else {
                return false;
            };
            if f.selections.is_empty() {
                return false;
            }
            let Some((inner, _)) = self.g.field_type(ty, &f.name) else {
                return false;
            };
            from.iter().any(|&x| {
                self.g.field_local(x, ty, &f.name).is_some() && {
                    let reached = self.closure(&inner, x);
                    self.key_obtainable_nested(&reached, &inner, &f.selections)
                }
            })
        });
        self.key_nesting -= 1;
        ok
    }

    /// `@interfaceObject` copies of the interfaces of `ty` whose key can be fetched from
    /// the subgraphs `from`.
    fn interface_object_jumps(&self, ty: &str, from: &[usize]) -> Vec<(Name, usize)> {
        let g = self.g;
        let mut out = Vec::new();
        let Some(o) = self.api.get_object(ty) else {
            return out;
        };
        for i in &o.implements_interfaces {
            for other in g.type_graphs(&i.name) {
                if g.is_interface_object(other, &i.name)
                    && g.resolvable_keys(other, &i.name).any(|k| {
                        k.fields
                            .selections()
                            .is_ok_and(|sels| self.key_obtainable(from, ty, sels))
                    })
                {
                    out.push((i.name.clone(), other));
                }
            }
        }
        out
    }

    /// `s` and every subgraph key jumps on `ty` reach from it, sorted (for a root type:
    /// every subgraph defining it). Jumps chain through any number of subgraphs, and a
    /// key's fields may come from any subgraph reached so far: C's key `id sku` is usable
    /// from A (which has `id`) once B (reached from A by `id`) provides `sku`.
    fn closure(&mut self, ty: &Name, s: usize) -> Vec<usize> {
        if let Some(c) = self.closures.get(&(ty.clone(), s)) {
            return c.clone();
        }
        // Root types are one federated root: every subgraph's root fields answer there.
        let sd = &self.api.schema_definition;
        let is_root = [&sd.query, &sd.mutation, &sd.subscription]
            .into_iter()
            .flatten()
            .any(|r| r.name == *ty);
        let mut seen = vec![s];
        if is_root {
            seen = self.g.type_graphs(ty);
        }
        // Only subgraphs with a resolvable key of `ty` can be jumped to.
        let mut candidates: Vec<usize> = self
            .g
            .type_graphs(ty)
            .into_iter()
            .filter(|c| !seen.contains(c) && self.g.resolvable_keys(*c, ty).next().is_some())
            .collect();
        // A fixpoint: each round adds every subgraph whose key the reached ones can fetch.
        loop {
            let before = candidates.len();
            let mut i = 0;
            while i < candidates.len() {
                let c = candidates[i];
                let keys: Vec<&[Sel]> = self
                    .g
                    .resolvable_keys(c, ty)
                    .filter_map(|k| k.fields.selections().ok())
                    .collect();
                let reachable = keys
                    .into_iter()
                    .any(|sels| self.key_obtainable_nested(&seen, ty, sels));
                if reachable {
                    seen.push(c);
                    candidates.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            if candidates.len() == before {
                break;
            }
        }
        seen.sort();
        self.closures.insert((ty.clone(), s), seen.clone());
        seen
    }

    /// The ways `state` resolves `field`: for each, what stays provided below it.
    fn resolve(&mut self, state: &State, field: &Name, depth: usize) -> Result<Vec<Prov>, Miss> {
        let g = self.g;
        let (ty, s, prov) = state;
        let mut ways = Vec::new();
        if let Some(sub) = prov.and_then(|p| find_provided(g, &self.provided[p], ty, field)) {
            let child = self.intern(sub);
            ways.push(child);
        }
        let mut miss = Miss::NotFound;
        if let Some(local) = g.field_local(*s, ty, field) {
            let ok = match local.requires.map(|r| r.selections()) {
                Some(Ok(required)) => self.requires_ok(state, field, required, depth),
                // An unparsable field set is reported by the validation stage.
                Some(Err(_)) | None => Ok(()),
            };
            match ok {
                Ok(()) => {
                    let child = match local.provides.map(|p| p.selections()) {
                        Some(Ok(sels)) => self.intern(sels.to_vec()),
                        _ => None,
                    };
                    if !ways.contains(&child) {
                        ways.push(child);
                    }
                }
                Err(reason) => miss = Miss::Requires(reason),
            }
        }
        if ways.is_empty() {
            if matches!(miss, Miss::NotFound) && self.external(ty, *s, field) {
                miss = Miss::External;
            }
            Err(miss)
        } else {
            Ok(ways)
        }
    }

    /// Is `ty.field` `@external` in subgraph `s`?
    fn external(&self, ty: &str, s: usize, field: &str) -> bool {
        self.supergraph
            .type_meta(ty)
            .and_then(|m| m.fields.get(field))
            .is_some_and(|joins| joins.iter().any(|j| j.graph == Some(s) && j.external))
    }

    /// Can the `@requires` field set `required` of `field` be fetched for `state`?
    fn requires_ok(
        &mut self,
        state: &State,
        field: &Name,
        required: &[Sel],
        depth: usize,
    ) -> Result<(), String> {
        let key = (state.clone(), field.clone());
        if let Some(r) = self.requires.get(&key) {
            return r.clone();
        }
        // A cycle (or a very deep chain) does not resolve.
        self.requires.insert(
            key.clone(),
            Err(format!(
                "cannot satisfy @requires conditions on field \"{}.{field}\": its requirements depend on themselves",
                state.0
            )),
        );
        let result = self.requires_uncached(state, field, required, depth);
        self.requires.insert(key, result.clone());
        result
    }

    fn requires_uncached(
        &mut self,
        state: &State,
        field: &Name,
        required: &[Sel],
        depth: usize,
    ) -> Result<(), String> {
        let (ty, s, prov) = state;
        let name = |w: &Self, s: usize| w.supergraph.subgraphs()[s].name.clone();
        if self
            .missing(ty, *s, *prov, required, false, depth)
            .is_none()
        {
            return Ok(());
        }
        if let Some(coordinate) = self.missing(ty, *s, *prov, required, true, depth) {
            return Err(format!(
                "cannot satisfy @requires conditions on field \"{ty}.{field}\": required field \"{coordinate}\" cannot be resolved from subgraph \"{}\" or from any subgraph reachable from it by a @key",
                name(self, *s)
            ));
        }
        // The requirements come from elsewhere: a key of this subgraph must bring them back.
        let keys: Vec<Vec<Sel>> = self
            .g
            .resolvable_keys(*s, ty)
            .filter_map(|k| k.fields.selections().ok().map(<[Sel]>::to_vec))
            .collect();
        for k in keys {
            if self.missing(ty, *s, *prov, &k, true, depth).is_none() {
                return Ok(());
            }
        }
        Err(format!(
            "cannot satisfy @requires conditions on field \"{ty}.{field}\": the required fields come from other subgraphs, and no resolvable @key of \"{ty}\" in subgraph \"{}\" can be fetched to come back with them",
            name(self, *s)
        ))
    }

    /// The first field of `sels` on `ty` that cannot be fetched from subgraph `s` (or,
    /// with `jumps`, from a subgraph key jumps reach), as a coordinate; `None` when all can.
    fn missing(
        &mut self,
        ty: &Name,
        s: usize,
        prov: Prov,
        sels: &[Sel],
        jumps: bool,
        depth: usize,
    ) -> Option<String> {
        if depth > MAX_DEPTH {
            return Some(ty.to_string());
        }
        let graphs = if jumps { self.closure(ty, s) } else { vec![s] };
        for sel in sels {
            match sel {
                Sel::Field(f) => {
                    if f.name == "__typename" {
                        continue;
                    }
                    let mut found = false;
                    let mut deeper = None;
                    'graphs: for &s2 in &graphs {
                        let p2 = if s2 == s { prov } else { None };
                        let Ok(ways) = self.resolve(&(ty.clone(), s2, p2), &f.name, depth + 1)
                        else {
                            continue;
                        };
                        for child in ways {
                            if f.selections.is_empty() {
                                found = true;
                                break 'graphs;
                            }
                            let Some((inner, _)) = self.g.field_type(ty, &f.name) else {
                                continue;
                            };
                            match self.missing(&inner, s2, child, &f.selections, jumps, depth + 1) {
                                None => {
                                    found = true;
                                    break 'graphs;
                                }
                                Some(m) => {
                                    deeper.get_or_insert(m);
                                }
                            }
                        }
                    }
                    if !found {
                        return Some(deeper.unwrap_or_else(|| format!("{ty}.{}", f.name)));
                    }
                }
                Sel::Fragment(fr) => {
                    let condition = fr.type_condition.clone().unwrap_or_else(|| ty.clone());
                    // A type condition the subgraph never returns selects nothing there.
                    if condition != *ty && !self.g.type_graphs(&condition).contains(&s) {
                        continue;
                    }
                    if let Some(m) = self.missing(&condition, s, prov, &fr.selections, jumps, depth)
                    {
                        return Some(m);
                    }
                }
            }
        }
        None
    }
}

/// The states below a field that state `(_, s, _)` resolves, one per way (`ways`: what
/// stays provided below it); a leaf field needs no state of its own type.
fn child_states(
    g: &Graph,
    target: &Name,
    composite: bool,
    s: usize,
    ways: Vec<Prov>,
) -> Vec<State> {
    if !composite {
        return vec![(target.clone(), s, None)];
    }
    if !g.type_graphs(target).contains(&s) {
        return Vec::new();
    }
    ways.into_iter().map(|p| (target.clone(), s, p)).collect()
}

/// Apollo's human-readable list: `type "A"`, `types "A" and "B"`, `types "A", "B" and "C"`.
fn human_list(items: &[String], singular: &str, plural: &str) -> String {
    match items {
        [] => String::new(),
        [one] => format!("{singular} {one}"),
        [init @ .., last] => format!("{plural} {} and {last}", init.join(", ")),
    }
}

/// A field set printed canonically, to intern provided selections.
fn print_sels(sels: &[Sel]) -> String {
    let mut out = String::new();
    for sel in sels {
        match sel {
            Sel::Field(f) => {
                out.push_str(&f.name);
                if !f.selections.is_empty() {
                    out.push_str(&format!("{{{}}}", print_sels(&f.selections)));
                }
            }
            Sel::Fragment(fr) => {
                out.push_str("...");
                if let Some(t) = &fr.type_condition {
                    out.push_str(&format!("on {t}"));
                }
                out.push_str(&format!("{{{}}}", print_sels(&fr.selections)));
            }
        }
        out.push(' ');
    }
    out
}

/// The shortest query from a root to `field` on `state`'s type.
fn query_to(
    parent: &HashMap<Node, (Option<Node>, Step)>,
    state: &Node,
    field: &str,
    open: bool,
) -> String {
    let mut steps = Vec::new();
    let mut cur = Some(state.clone());
    let mut root = "query";
    while let Some(s) = cur {
        let Some((p, step)) = parent.get(&s) else {
            break;
        };
        match step {
            Step::Root(kind) => root = kind,
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
    if open {
        // The field's own selection is left out (Apollo prints `...`).
        let pad = "  ".repeat(indent);
        out.push_str(&format!("{pad}{field} {{\n{pad}  ...\n{pad}}}\n"));
    } else {
        out.push_str(&format!("{}{field}\n", "  ".repeat(indent)));
    }
    for i in (0..indent).rev() {
        out.push_str(&format!("{}}}\n", "  ".repeat(i)));
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("l{i}")).collect()
    }

    #[test]
    fn label_sets_are_exhaustive_up_to_the_bound_then_linear() {
        assert_eq!(label_sets(&[]), vec![BTreeSet::new()]);
        let two = label_sets(&labels(2));
        assert_eq!(two.len(), 4);
        assert!(two[0].is_empty());
        assert_eq!(two[3].len(), 2);
        assert_eq!(label_sets(&labels(EXHAUSTIVE_LABELS)).len(), 16);
        let many = label_sets(&labels(6));
        assert_eq!(many.len(), 2 * 6 + 2);
        assert!(many[0].is_empty());
        assert!(many[1..7].iter().all(|s| s.len() == 1));
        assert!(many[7..13].iter().all(|s| s.len() == 5));
        assert_eq!(many[13].len(), 6);
    }

    #[test]
    fn lists_read_like_apollos() {
        let q = |v: &[&str]| -> Vec<String> { v.iter().map(|s| format!("\"{s}\"")).collect() };
        assert_eq!(human_list(&q(&["A"]), "type", "types"), "type \"A\"");
        assert_eq!(
            human_list(&q(&["A", "B"]), "type", "types"),
            "types \"A\" and \"B\""
        );
        assert_eq!(
            human_list(&q(&["a", "b", "c"]), "subgraph", "subgraphs"),
            "subgraphs \"a\", \"b\" and \"c\""
        );
    }

    #[test]
    fn settings_are_described() {
        let one = labels(1);
        assert_eq!(
            describe_setting(&BTreeSet::new(), &one),
            "with override label \"l0\" inactive"
        );
        let two = labels(2);
        let active: BTreeSet<String> = ["l1".to_string()].into();
        assert_eq!(
            describe_setting(&active, &two),
            "with override label(s) \"l1\" active and \"l0\" inactive"
        );
    }
}
