//! Stage 5, satisfiability: every field of the API schema must be resolvable by some plan,
//! along every path from the root types. A breadth-first walk over
//! `(type, subgraph, provided)` states, using the planner's own view of the join metadata
//! ([`crate::plan::graph::Graph`]):
//!
//! - a field moves to its type in the same subgraph, an abstract type to its possible
//!   types there, and a key whose fields the current subgraph can provide jumps to another
//!   subgraph;
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

struct Walk<'a, 'g> {
    supergraph: &'a Supergraph,
    g: &'g Graph<'a>,
    api: &'a Schema,
    /// Provided selections, interned by their printed form.
    provided: Vec<Vec<Sel>>,
    provided_ids: HashMap<String, usize>,
    parent: HashMap<Node, (Option<Node>, Step)>,
    closures: HashMap<(Name, usize), Vec<usize>>,
    requires: HashMap<(State, Name), Result<(), String>>,
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
            requires: HashMap::new(),
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
            for s2 in self.closure(&t, s) {
                let p2 = if s2 == s { p } else { None };
                out.insert((t.clone(), s2, p2));
                for (i, other) in self.interface_object_jumps(&t, s2) {
                    out.insert((i, other, None));
                }
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
                        Ok(ways) => {
                            if composite && g.type_graphs(target).contains(s) {
                                children.extend(ways.into_iter().map(|p| (target.clone(), *s, p)));
                            } else if !composite {
                                children.push((target.clone(), *s, None));
                            }
                        }
                        Err(miss) => misses.push((*s, miss)),
                    }
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
        let query = query_to(&self.parent, node, f);
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

    /// Subgraphs (other than `s`) a key of `ty` obtainable in `s` jumps to.
    fn direct_jumps(&self, ty: &str, s: usize) -> Vec<usize> {
        let g = self.g;
        (0..self.supergraph.subgraphs().len())
            .filter(|other| {
                *other != s
                    && g.resolvable_keys(*other, ty).any(|k| {
                        k.fields
                            .selections()
                            .is_ok_and(|sels| g.obtainable(s, ty, sels))
                    })
            })
            .collect()
    }

    fn interface_object_jumps(&self, ty: &str, s: usize) -> Vec<(Name, usize)> {
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
                            .is_ok_and(|sels| g.obtainable(s, ty, sels))
                    })
                {
                    out.push((i.name.clone(), other));
                }
            }
        }
        out
    }

    /// `s` and every subgraph key jumps on `ty` reach from it, transitively, sorted (for a
    /// root type: every subgraph defining it).
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
        let mut queue: VecDeque<usize> = seen.iter().copied().collect();
        while let Some(x) = queue.pop_front() {
            for y in self.direct_jumps(ty, x) {
                if !seen.contains(&y) {
                    seen.push(y);
                    queue.push_back(y);
                }
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
fn query_to(parent: &HashMap<Node, (Option<Node>, Step)>, state: &Node, field: &str) -> String {
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
    out.push_str(&format!("{}{field}\n", "  ".repeat(indent)));
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
