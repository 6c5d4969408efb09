//! Stage 3, merging: every type of every subgraph into one supergraph type, with the join
//! metadata that records which subgraph resolves what, printed as SDL.
//!
//! Rules (Apollo's): objects and interfaces merge field by field (output types to the most
//! general, input positions to the most specific); a field resolved by several subgraphs
//! must be `@shareable` (or a key field) everywhere; arguments and input fields merge by
//! intersection (a missing *required* one is an error); output enums and unions by union,
//! input enums by intersection, enums used both ways must be identical (input fields and
//! enum values `@inaccessible` somewhere are exempt from these presence rules and kept);
//! `@override` moves a field (no chains; the from subgraph keeps it as `usedOverridden`
//! when its keys, `@requires`, `@provides` or interfaces still use it); client-facing directives (`@tag`, `@inaccessible`,
//! `@authenticated`, `@requiresScopes`, `@policy`, `@cost`, `@listSize`, composed
//! directives, `@deprecated`) are carried.

use super::subgraph::Dirs;
use super::subgraph::Subgraph;
use super::validate::{field_set_fields, fields_of, is_external, used_by_field_sets};
use super::{Diagnostic, Diagnostics};
use apollo_compiler::ast::{Directive, InputValueDefinition, Type};
use apollo_compiler::schema::{Component, ExtendedType, FieldDefinition};
use apollo_compiler::{Name, Node};
use indexmap::{IndexMap, IndexSet};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// `join__Graph` enum value for a subgraph name.
pub(crate) fn graph_enum_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

/// Client-facing directives carried into the supergraph (canonical names).
const CARRIED: &[&str] = &[
    "tag",
    "inaccessible",
    "authenticated",
    "requiresScopes",
    "policy",
    "cost",
    "listSize",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    Input,
}

fn kind_of(ty: &ExtendedType) -> Kind {
    match ty {
        ExtendedType::Scalar(_) => Kind::Scalar,
        ExtendedType::Object(_) => Kind::Object,
        ExtendedType::Interface(_) => Kind::Interface,
        ExtendedType::Union(_) => Kind::Union,
        ExtendedType::Enum(_) => Kind::Enum,
        ExtendedType::InputObject(_) => Kind::Input,
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Scalar => "ScalarType",
        Kind::Object => "ObjectType",
        Kind::Interface => "InterfaceType",
        Kind::Union => "UnionType",
        Kind::Enum => "EnumType",
        Kind::Input => "InputObjectType",
    }
}

/// Renames named types of a subgraph type reference to their merged names.
fn rename_type(sg: &Subgraph, ty: &Type) -> Type {
    match ty {
        Type::Named(n) => Type::Named(sg.merged_name(n)),
        Type::NonNullNamed(n) => Type::NonNullNamed(sg.merged_name(n)),
        Type::List(inner) => Type::List(Box::new(rename_type(sg, inner))),
        Type::NonNullList(inner) => Type::NonNullList(Box::new(rename_type(sg, inner))),
    }
}

/// Named-type subtyping across the subgraphs: (object or interface, interface it
/// implements) and (member, union) pairs, in merged names.
type Subtypes = HashSet<(Name, Name)>;

/// `a` is a subtype of (at least as specific as) `b`: nullability-wise, and for output
/// types also an implementation or union member of `b` (`named`).
fn is_subtype(a: &Type, b: &Type, named: &Subtypes) -> bool {
    let same = |x: &Name, y: &Name| x == y || named.contains(&(x.clone(), y.clone()));
    match (a, b) {
        (Type::Named(x), Type::Named(y)) => same(x, y),
        (Type::NonNullNamed(x), Type::NonNullNamed(y) | Type::Named(y)) => same(x, y),
        (Type::List(x), Type::List(y)) => is_subtype(x, y, named),
        (Type::NonNullList(x), Type::NonNullList(y) | Type::List(y)) => is_subtype(x, y, named),
        _ => false,
    }
}

/// Output position: the most general of the types; input: the most specific (and no
/// named-type subtyping: input types must match).
fn merge_types(types: &[Type], output: bool, named: &Subtypes) -> Option<Type> {
    let none = Subtypes::new();
    types
        .iter()
        .find(|candidate| {
            types.iter().all(|t| {
                if output {
                    is_subtype(t, candidate, named)
                } else {
                    is_subtype(candidate, t, &none)
                }
            })
        })
        .cloned()
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn print_description(out: &mut String, indent: &str, d: Option<&str>) {
    if let Some(d) = d {
        let _ = writeln!(out, "{indent}{}", quote(d));
    }
}

/// The descriptions one merged element has across subgraphs. The supergraph takes the
/// first in subgraph order (as the Guild's composition does; Apollo takes the most
/// common one); differing descriptions give an `INCONSISTENT_DESCRIPTION` hint.
#[derive(Debug, Default)]
struct Described(Vec<(usize, String)>);

impl Described {
    fn add(&mut self, idx: usize, d: Option<&str>) {
        if let Some(d) = d {
            self.0.push((idx, d.to_string()));
        }
    }

    fn pick(&self, subgraphs: &[Subgraph], coord: &str, diags: &mut Diagnostics) -> Option<String> {
        let (first_idx, first) = self.0.first()?;
        let differing: Vec<&(usize, String)> = self
            .0
            .iter()
            .filter(|(_, d)| d.trim() != first.trim())
            .collect();
        if !differing.is_empty() {
            let mut message = format!(
                "Element \"{coord}\" has inconsistent descriptions across subgraphs. The supergraph will use description (from subgraph \"{}\"): {}.",
                subgraphs[*first_idx].name,
                quote(first.trim())
            );
            for (i, d) in &differing {
                let _ = write!(
                    message,
                    " In subgraph \"{}\", the description is: {}.",
                    subgraphs[*i].name,
                    quote(d.trim())
                );
            }
            let mut hint = Diagnostic::hint("INCONSISTENT_DESCRIPTION", message)
                .at(coord.to_string())
                .subgraph(subgraphs[*first_idx].name.clone());
            for (i, _) in differing {
                hint = hint.subgraph(subgraphs[*i].name.clone());
            }
            diags.push(hint);
        }
        Some(first.clone())
    }
}

fn print_directive(name: &str, d: &Directive) -> String {
    if d.arguments.is_empty() {
        format!("@{name}")
    } else {
        let args: Vec<String> = d
            .arguments
            .iter()
            .map(|a| format!("{}: {}", a.name, a.value))
            .collect();
        format!("@{name}({})", args.join(", "))
    }
}

/// Directives carried from one subgraph element into the supergraph.
struct Carry<'a> {
    subgraphs: &'a [Subgraph],
    /// Per subgraph: local composed directive name → supergraph name.
    composed: Vec<HashMap<String, String>>,
    used_features: HashSet<&'static str>,
    used_composed: HashSet<String>,
    subtypes: Subtypes,
    /// Per subgraph: `@external` key fields of type extensions, which Apollo does not
    /// consider external ("fake" externals).
    fake_externals: Vec<super::validate::FieldRefs>,
    /// Per interface (type level: field `None`), the access-control requirements of its
    /// implementations, which the interface inherits (as Apollo's and the Guild's
    /// compositions do), so a query through the interface cannot read around them.
    interface_auth: HashMap<(Name, Option<Name>), Carried>,
}

/// `@listSize` arguments, merged across subgraphs.
#[derive(Debug, Clone, Default)]
struct ListSize {
    assumed_size: Option<i32>,
    slicing_arguments: Option<Vec<String>>,
    sized_fields: Option<Vec<String>>,
    require_one: bool,
}

/// The client-facing directives of one supergraph element, gathered from every subgraph
/// that defines it. Repeated `@requiresScopes`/`@policy` merge as Apollo does (the
/// conjunction of the requirements, kept in disjunctive normal form: each subgraph's
/// requirement must hold), `@cost` takes the largest weight, `@listSize` the largest
/// assumed size, the union of slicing arguments and sized fields, and requires one
/// slicing argument only if every subgraph does. Other directives: first one wins
/// (`@tag` and composed directives: every distinct application).
#[derive(Debug, Default)]
struct Carried {
    /// Printed directives in order of first appearance; merged ones as `MERGED` + name.
    list: Vec<String>,
    scopes: Option<Vec<Vec<String>>>,
    policies: Option<Vec<Vec<String>>>,
    cost: Option<i32>,
    list_size: Option<ListSize>,
}

const MERGED: &str = "\u{0}";

impl Carried {
    fn push(&mut self, printed: String) {
        self.list.push(printed);
    }

    fn mark(&mut self, canonical: &str) {
        let slot = format!("{MERGED}{canonical}");
        if !self.list.contains(&slot) {
            self.list.push(slot);
        }
    }

    /// Adds the access-control requirements of `other` (an implementation's) to these:
    /// `@authenticated` if either has it, scopes and policies as a conjunction.
    fn merge_auth(&mut self, other: &Carried) {
        if other.list.iter().any(|d| d == "@authenticated")
            && !self.list.iter().any(|d| d == "@authenticated")
        {
            self.list.push("@authenticated".into());
        }
        if let Some(theirs) = &other.scopes {
            self.scopes = Some(dnf_and(self.scopes.as_deref().unwrap_or_default(), theirs));
            self.mark("requiresScopes");
        }
        if let Some(theirs) = &other.policies {
            self.policies = Some(dnf_and(
                self.policies.as_deref().unwrap_or_default(),
                theirs,
            ));
            self.mark("policy");
        }
    }

    /// The printed directives, merged values in place.
    fn printed(&self) -> Vec<String> {
        let groups = |g: &[Vec<String>]| {
            let inner: Vec<String> = g
                .iter()
                .map(|c| {
                    let q: Vec<String> = c.iter().map(|s| quote(s)).collect();
                    format!("[{}]", q.join(", "))
                })
                .collect();
            format!("[{}]", inner.join(", "))
        };
        let strings = |v: &[String]| {
            let q: Vec<String> = v.iter().map(|s| quote(s)).collect();
            format!("[{}]", q.join(", "))
        };
        self.list
            .iter()
            .filter_map(|p| {
                let Some(name) = p.strip_prefix(MERGED) else {
                    return Some(p.clone());
                };
                match name {
                    "requiresScopes" => self
                        .scopes
                        .as_ref()
                        .map(|g| format!("@requiresScopes(scopes: {})", groups(g))),
                    "policy" => self
                        .policies
                        .as_ref()
                        .map(|g| format!("@policy(policies: {})", groups(g))),
                    "cost" => self.cost.map(|w| format!("@cost(weight: {w})")),
                    "listSize" => self.list_size.as_ref().map(|l| {
                        let mut args = Vec::new();
                        if let Some(a) = l.assumed_size {
                            args.push(format!("assumedSize: {a}"));
                        }
                        if let Some(s) = &l.slicing_arguments {
                            args.push(format!("slicingArguments: {}", strings(s)));
                        }
                        if let Some(s) = &l.sized_fields {
                            args.push(format!("sizedFields: {}", strings(s)));
                        }
                        args.push(format!("requireOneSlicingArgument: {}", l.require_one));
                        format!("@listSize({})", args.join(", "))
                    }),
                    _ => None,
                }
            })
            .collect()
    }
}

/// `[[String!]!]!` argument value of `@requiresScopes`/`@policy`.
fn dnf_argument(d: &Directive, arg: &str) -> Vec<Vec<String>> {
    d.specified_argument_by_name(arg)
        .and_then(|v| v.as_list())
        .map(|outer| {
            outer
                .iter()
                .filter_map(|inner| inner.as_list())
                .map(|inner| {
                    inner
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Conjunction of two requirements in disjunctive normal form: every pair of
/// alternatives combined, duplicates and alternatives implied by smaller ones dropped,
/// in a stable order (fewest elements first, then by text).
pub(crate) fn dnf_and(a: &[Vec<String>], b: &[Vec<String>]) -> Vec<Vec<String>> {
    if a.is_empty() || b.is_empty() {
        return if a.is_empty() { b.to_vec() } else { a.to_vec() };
    }
    let mut candidates: Vec<Vec<String>> = Vec::new();
    for x in a {
        for y in b {
            let mut c: Vec<String> = x.iter().chain(y).cloned().collect();
            c.sort();
            c.dedup();
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
    }
    candidates.sort_by_key(|c| c.len());
    let mut out: Vec<Vec<String>> = Vec::new();
    for c in candidates {
        if !out.iter().any(|kept| kept.iter().all(|e| c.contains(e))) {
            out.push(c);
        }
    }
    out.sort_by(|x, y| {
        x.len()
            .cmp(&y.len())
            .then_with(|| x.join(",").cmp(&y.join(",")))
    });
    out
}

fn union_strings(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(b)) => {
            for s in b {
                if !a.contains(&s) {
                    a.push(s);
                }
            }
            Some(a)
        }
    }
}

/// The access-control directives (what an interface inherits from its implementations).
const AUTH: &[&str] = &["authenticated", "requiresScopes", "policy"];

impl Carry<'_> {
    fn collect(&mut self, idx: usize, list: &impl Dirs, out: &mut Carried) {
        self.collect_only(idx, list, out, CARRIED);
        self.collect_other(idx, list, out);
    }

    /// The carried directives among `canonicals`.
    fn collect_only(
        &mut self,
        idx: usize,
        list: &impl Dirs,
        out: &mut Carried,
        canonicals: &[&'static str],
    ) {
        let sg = &self.subgraphs[idx];
        for canonical in canonicals {
            for d in sg.all(list, canonical) {
                self.used_features.insert(canonical);
                match *canonical {
                    "requiresScopes" | "policy" => {
                        let arg = if *canonical == "policy" {
                            "policies"
                        } else {
                            "scopes"
                        };
                        let value = dnf_argument(d, arg);
                        let slot = if *canonical == "policy" {
                            &mut out.policies
                        } else {
                            &mut out.scopes
                        };
                        *slot = Some(match slot.take() {
                            None => dnf_and(&value, &[]),
                            Some(prev) => dnf_and(&prev, &value),
                        });
                        out.mark(canonical);
                    }
                    "cost" => {
                        if let Some(w) = d
                            .specified_argument_by_name("weight")
                            .and_then(|v| v.to_i32())
                        {
                            out.cost = Some(out.cost.map_or(w, |c| c.max(w)));
                            out.mark(canonical);
                        }
                    }
                    "listSize" => {
                        let strings = |a: &str| {
                            d.specified_argument_by_name(a)
                                .and_then(|v| v.as_list())
                                .map(|l| {
                                    l.iter()
                                        .filter_map(|s| s.as_str().map(str::to_string))
                                        .collect::<Vec<_>>()
                                })
                        };
                        let this = ListSize {
                            assumed_size: d
                                .specified_argument_by_name("assumedSize")
                                .and_then(|v| v.to_i32()),
                            slicing_arguments: strings("slicingArguments"),
                            sized_fields: strings("sizedFields"),
                            require_one: d
                                .specified_argument_by_name("requireOneSlicingArgument")
                                .and_then(|v| v.to_bool())
                                .unwrap_or(true),
                        };
                        out.list_size = Some(match out.list_size.take() {
                            None => this,
                            Some(prev) => ListSize {
                                assumed_size: match (prev.assumed_size, this.assumed_size) {
                                    (Some(a), Some(b)) => Some(a.max(b)),
                                    (a, b) => a.or(b),
                                },
                                slicing_arguments: union_strings(
                                    prev.slicing_arguments,
                                    this.slicing_arguments,
                                ),
                                sized_fields: union_strings(prev.sized_fields, this.sized_fields),
                                require_one: prev.require_one && this.require_one,
                            },
                        });
                        out.mark(canonical);
                    }
                    _ => {
                        let printed = print_directive(canonical, d);
                        if !out.list.contains(&printed)
                            && (*canonical == "tag"
                                || !out.list.iter().any(|o| {
                                    o.starts_with(&format!("@{canonical}("))
                                        || *o == format!("@{canonical}")
                                }))
                        {
                            out.push(printed);
                        }
                    }
                }
            }
        }
    }

    /// `@deprecated`, `@specifiedBy` and composed directives.
    fn collect_other(&mut self, idx: usize, list: &impl Dirs, out: &mut Carried) {
        for d in list.every() {
            if d.name == "deprecated" && !out.list.iter().any(|o| o.starts_with("@deprecated")) {
                out.push(print_directive("deprecated", d));
            }
            if d.name == "specifiedBy" && !out.list.iter().any(|o| o.starts_with("@specifiedBy")) {
                out.push(print_directive("specifiedBy", d));
            }
            if let Some(merged) = self.composed[idx].get(d.name.as_str()) {
                self.used_composed.insert(merged.clone());
                let printed = print_directive(merged, d);
                if !out.list.contains(&printed) {
                    out.push(printed);
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Overridden {
    No,
    /// Overridden without label and not used by this subgraph's field sets.
    Unused,
    /// Overridden without label but used by this subgraph's keys/requires/provides.
    Used,
    /// Progressive override: label of the overriding field, and whether this subgraph
    /// still uses the field (then also `usedOverridden`, as Apollo's composition does;
    /// the planner keeps such a field active while the label is off).
    Label(String, bool),
}

struct FieldSource<'a> {
    idx: usize,
    def: &'a Component<FieldDefinition>,
    ty: Type,
    external: bool,
    override_from: Option<String>,
    override_label: Option<String>,
    overridden: Overridden,
    /// Defined on an `@interfaceObject` type.
    interface_object: bool,
    requires: Option<String>,
    provides: Option<String>,
    shareable: bool,
    /// `@fromContext` arguments, printed as `join__ContextArgument` objects.
    context_arguments: Vec<String>,
}

struct TypeSource<'a> {
    idx: usize,
    ty: &'a ExtendedType,
    interface_object: bool,
}

/// Merges all subgraphs; returns the printed supergraph (meaningful only without errors).
pub(crate) fn merge(subgraphs: &[Subgraph], diags: &mut Diagnostics) -> String {
    let graph_names: Vec<String> = subgraphs.iter().map(|s| graph_enum_name(&s.name)).collect();
    // Types, by merged name, in order of first appearance.
    let mut types: IndexMap<Name, Vec<TypeSource>> = IndexMap::new();
    for (idx, sg) in subgraphs.iter().enumerate() {
        for (name, ty) in &sg.schema.types {
            if !sg.is_user_type(name, ty) {
                continue;
            }
            types
                .entry(sg.merged_name(name))
                .or_default()
                .push(TypeSource {
                    idx,
                    ty,
                    interface_object: sg.has(ty.directives(), "interfaceObject"),
                });
        }
    }
    match types.get_mut("Query") {
        None => diags.push(Diagnostic::error(
            "NO_QUERIES",
            "No queries found in any subgraph: a supergraph must have a query root type.",
        )),
        Some(query) => {
            for (idx, sg) in subgraphs.iter().enumerate() {
                if !query.iter().any(|s| s.idx == idx) {
                    query.push(TypeSource {
                        idx,
                        ty: &sg.empty_query,
                        interface_object: false,
                    });
                }
            }
            query.sort_by_key(|s| s.idx);
        }
    }
    // Fields usable with @external, keys per subgraph.
    let used: Vec<_> = subgraphs.iter().map(used_fields).collect();
    let key_fields: Vec<HashSet<(Name, Name)>> = subgraphs.iter().map(key_fields).collect();

    // Enum usage: (input, output).
    let mut enum_usage: HashMap<Name, (bool, bool)> = HashMap::new();
    for sg in subgraphs {
        for (name, ty) in &sg.schema.types {
            if !sg.is_user_type(name, ty) {
                continue;
            }
            let mut mark = |t: &Type, input: bool| {
                let e = enum_usage
                    .entry(sg.merged_name(t.inner_named_type()))
                    .or_default();
                if input { e.0 = true } else { e.1 = true }
            };
            match ty {
                ExtendedType::Object(_) | ExtendedType::Interface(_) => {
                    let fields = match ty {
                        ExtendedType::Object(o) => &o.fields,
                        ExtendedType::Interface(i) => &i.fields,
                        _ => unreachable!(),
                    };
                    for f in fields.values() {
                        mark(&f.ty, false);
                        for a in &f.arguments {
                            mark(&a.ty, true);
                        }
                    }
                }
                ExtendedType::InputObject(io) => {
                    for f in io.fields.values() {
                        mark(&f.ty, true);
                    }
                }
                _ => {}
            }
        }
    }

    // Composed directives.
    let mut carry = Carry {
        subgraphs,
        composed: vec![HashMap::new(); subgraphs.len()],
        used_features: HashSet::new(),
        used_composed: HashSet::new(),
        subtypes: subtypes(subgraphs),
        fake_externals: subgraphs
            .iter()
            .map(super::validate::fake_externals)
            .collect(),
        interface_auth: HashMap::new(),
    };
    carry.interface_auth = interface_auth(&types, &mut carry);
    let mut composed_defs: IndexMap<String, (String, String)> = IndexMap::new(); // name → (definition, link url)
    for (idx, sg) in subgraphs.iter().enumerate() {
        let Some(local) = sg.local("composeDirective") else {
            continue;
        };
        for d in sg.schema.schema_definition.directives.get_all(local) {
            let Some(raw) = d
                .specified_argument_by_name("name")
                .and_then(|v| v.as_str())
            else {
                continue;
            };
            let name = raw.trim_start_matches('@').to_string();
            let link = sg
                .other_links
                .iter()
                .find(|l| l.directives.iter().any(|(l, _)| *l == name));
            let def = sg.schema.directive_definitions.get(name.as_str());
            match (link, def) {
                (Some(link), Some(def)) => {
                    let printed = def.to_string();
                    if let Some((existing, _)) = composed_defs.get(&name)
                        && *existing != printed
                    {
                        diags.push(Diagnostic::error("DIRECTIVE_COMPOSITION_ERROR", format!("Composed directive \"@{name}\" has incompatible definitions across subgraphs")).subgraph(sg.name.clone()));
                    }
                    composed_defs.insert(name.clone(), (printed, link.url.clone()));
                    carry.composed[idx].insert(name.clone(), name.clone());
                }
                _ => diags.push(
                    Diagnostic::error(
                        "DIRECTIVE_COMPOSITION_ERROR",
                        format!(
                            "[{}] Could not find matching @link for directive \"@{name}\"",
                            sg.name
                        ),
                    )
                    .subgraph(sg.name.clone()),
                ),
            }
        }
    }

    let mut body = String::new();
    for (type_name, sources) in &types {
        // Kind agreement (an @interfaceObject counts as its interface).
        let kinds: Vec<Kind> = sources
            .iter()
            .map(|s| {
                if s.interface_object {
                    Kind::Interface
                } else {
                    kind_of(s.ty)
                }
            })
            .collect();
        let kind = kinds[0];
        if kinds.iter().any(|k| *k != kind) {
            let detail: Vec<String> = sources
                .iter()
                .zip(&kinds)
                .map(|(s, k)| {
                    format!(
                        "{} in subgraph \"{}\"",
                        kind_word(*k),
                        subgraphs[s.idx].name
                    )
                })
                .collect();
            diags.push(
                Diagnostic::error(
                    "TYPE_KIND_MISMATCH",
                    format!(
                        "Type \"{type_name}\" has mismatched kind: it is defined as {}",
                        detail.join(" but ")
                    ),
                )
                .subgraphs(sources.iter().map(|s| subgraphs[s.idx].name.clone()))
                .at(type_name.to_string()),
            );
            continue;
        }
        let mut type_dirs = Carried::default();
        let mut described = Described::default();
        for s in sources {
            carry.collect(s.idx, s.ty.directives(), &mut type_dirs);
            if kind == Kind::Interface
                && let Some(inherited) = carry.interface_auth.get(&(type_name.clone(), None))
            {
                type_dirs.merge_auth(inherited);
            }
            for c in subgraphs[s.idx].all(s.ty.directives(), "context") {
                if let Some(name) = c
                    .specified_argument_by_name("name")
                    .and_then(|v| v.as_str())
                {
                    carry.used_features.insert("context");
                    type_dirs.push(format!(
                        "@context(name: {})",
                        quote(&format!("{}__{name}", subgraphs[s.idx].name))
                    ));
                }
            }
            described.add(s.idx, s.ty.description().map(|d| d.as_str()));
        }
        let mut joins = Vec::new();
        for s in sources {
            let sg = &subgraphs[s.idx];
            let g = &graph_names[s.idx];
            // `extension: true` is not emitted: it has no routing meaning and the Guild's
            // composition (the interop reference) leaves it out.
            let mut extra = String::new();
            if s.interface_object {
                extra.push_str(", isInterfaceObject: true");
            }
            let keys = sg.all(s.ty.directives(), "key");
            if keys.is_empty() || !matches!(kind, Kind::Object | Kind::Interface) {
                joins.push(format!("@join__type(graph: {g}{extra})"));
            }
            if matches!(kind, Kind::Object | Kind::Interface) {
                for k in keys {
                    let fields = k
                        .specified_argument_by_name("fields")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    let resolvable = k
                        .specified_argument_by_name("resolvable")
                        .and_then(|v| v.to_bool())
                        .unwrap_or(true);
                    joins.push(format!(
                        "@join__type(graph: {g}, key: {}{extra}{})",
                        quote(fields),
                        if resolvable {
                            ""
                        } else {
                            ", resolvable: false"
                        }
                    ));
                }
            }
        }
        let description = described.pick(subgraphs, type_name, diags);
        let mut out = String::new();
        print_description(&mut out, "", description.as_deref());
        match kind {
            Kind::Scalar => {
                let _ = writeln!(
                    out,
                    "scalar {type_name}{}{}\n",
                    sp(&joins),
                    sp(&type_dirs.printed())
                );
            }
            Kind::Union => {
                let mut members: IndexSet<Name> = IndexSet::new();
                for s in sources {
                    if let ExtendedType::Union(u) = s.ty {
                        for m in &u.members {
                            let m = subgraphs[s.idx].merged_name(&m.name);
                            joins.push(format!(
                                "@join__unionMember(graph: {}, member: {})",
                                graph_names[s.idx],
                                quote(&m)
                            ));
                            members.insert(m);
                        }
                    }
                }
                for m in &members {
                    let (has, lacks): (Vec<&TypeSource>, Vec<&TypeSource>) =
                        sources.iter().partition(|s| match s.ty {
                            ExtendedType::Union(u) => u
                                .members
                                .iter()
                                .any(|x| subgraphs[s.idx].merged_name(&x.name) == *m),
                            _ => false,
                        });
                    if !lacks.is_empty() {
                        let name = |v: Vec<&TypeSource>| -> Vec<String> {
                            v.iter().map(|s| subgraphs[s.idx].name.clone()).collect()
                        };
                        let (has, lacks) = (name(has), name(lacks));
                        diags.push(Diagnostic::hint("INCONSISTENT_UNION_MEMBER", format!("Union type \"{type_name}\" includes member type \"{m}\" in some but not all defining subgraphs: \"{m}\" is defined in subgraph(s) {} but not in subgraph(s) {}.", list(&has), list(&lacks))).subgraphs(lacks).at(type_name.to_string()));
                    }
                }
                let members: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
                let _ = writeln!(
                    out,
                    "union {type_name}{}{} = {}\n",
                    sp(&joins),
                    sp(&type_dirs.printed()),
                    members.join(" | ")
                );
            }
            Kind::Enum => {
                let (input, output) = enum_usage.get(type_name).copied().unwrap_or_default();
                let mut values: IndexMap<Name, Vec<usize>> = IndexMap::new();
                let mut value_defs: IndexMap<Name, (Described, Carried)> = IndexMap::new();
                // Values `@inaccessible` in some subgraph: kept whatever the usage, as
                // Apollo does (they are not in the API schema).
                let mut inaccessible: HashSet<Name> = HashSet::new();
                for s in sources {
                    if let ExtendedType::Enum(e) = s.ty {
                        for (v, def) in &e.values {
                            if subgraphs[s.idx].has(&def.directives, "inaccessible") {
                                inaccessible.insert(v.clone());
                            }
                            values.entry(v.clone()).or_default().push(s.idx);
                            let entry = value_defs.entry(v.clone()).or_default();
                            entry
                                .0
                                .add(s.idx, def.description.as_ref().map(|d| d.as_str()));
                            carry.collect(s.idx, &def.directives, &mut entry.1);
                        }
                    }
                }
                let all: Vec<usize> = sources.iter().map(|s| s.idx).collect();
                // Names of the subgraphs that define a value, and of those that do not.
                let has_and_lacks = |defining: &[usize]| -> (Vec<String>, Vec<String>) {
                    let names = |keep: bool| -> Vec<String> {
                        all.iter()
                            .filter(|i| defining.contains(i) == keep)
                            .map(|i| subgraphs[*i].name.clone())
                            .collect()
                    };
                    (names(true), names(false))
                };
                let partial: Vec<&Name> = values
                    .iter()
                    .filter(|(v, g)| g.len() != all.len() && !(input && inaccessible.contains(*v)))
                    .map(|(v, _)| v)
                    .collect();
                if input && output && !partial.is_empty() {
                    for v in &partial {
                        let (has, lacks) = has_and_lacks(&values[*v]);
                        diags.push(Diagnostic::error("ENUM_VALUE_MISMATCH", format!("Enum type \"{type_name}\" is used as both input type (for example, as an argument or input field) and output type (as a field type), but value \"{v}\" is not defined in all the subgraphs defining \"{type_name}\": \"{v}\" is defined in subgraph(s) {} but not in subgraph(s) {}", list(&has), list(&lacks))).subgraphs(lacks.clone()).at(format!("{type_name}.{v}")));
                    }
                }
                let keep: Vec<&Name> = if input && !output {
                    for v in &partial {
                        diags.push(Diagnostic::hint("INCONSISTENT_ENUM_VALUE_FOR_INPUT_ENUM", format!("Value \"{v}\" of enum type \"{type_name}\" will not be part of the supergraph as it is not defined in all the subgraphs defining \"{type_name}\"")).at(format!("{type_name}.{v}")));
                    }
                    values
                        .iter()
                        .filter(|(v, g)| g.len() == all.len() || inaccessible.contains(*v))
                        .map(|(v, _)| v)
                        .collect()
                } else {
                    if !input && !output {
                        diags.push(Diagnostic::hint("UNUSED_ENUM_TYPE", format!("Enum type \"{type_name}\" is defined but unused. It will be included in the supergraph with all the values appearing in any subgraph (\"as if\" it was only used as an output type).")).at(type_name.to_string()));
                    }
                    for v in partial.iter().filter(|_| output && !input) {
                        let (has, lacks) = has_and_lacks(&values[*v]);
                        diags.push(Diagnostic::hint("INCONSISTENT_ENUM_VALUE_FOR_OUTPUT_ENUM", format!("Value \"{v}\" of enum type \"{type_name}\" has been added to the supergraph but is only defined in a subset of the subgraphs defining \"{type_name}\": \"{v}\" is defined in subgraph(s) {} but not in subgraph(s) {}.", list(&has), list(&lacks))).subgraphs(lacks).at(format!("{type_name}.{v}")));
                    }
                    values.keys().collect()
                };
                if keep.is_empty() {
                    diags.push(Diagnostic::error("EMPTY_MERGED_ENUM_TYPE", format!("None of the values of enum type \"{type_name}\" are defined consistently in all the subgraphs defining that type. As only values common to all subgraphs are merged, this would result in an empty type.")).at(type_name.to_string()));
                }
                let _ = writeln!(
                    out,
                    "enum {type_name}{}{} {{",
                    sp(&joins),
                    sp(&type_dirs.printed())
                );
                for v in keep {
                    let (described, dirs) = &value_defs[v];
                    let desc = described.pick(subgraphs, &format!("{type_name}.{v}"), diags);
                    print_description(&mut out, "  ", desc.as_deref());
                    let vj: Vec<String> = values[v]
                        .iter()
                        .map(|i| format!("@join__enumValue(graph: {})", graph_names[*i]))
                        .collect();
                    let _ = writeln!(out, "  {v}{}{}", sp(&vj), sp(&dirs.printed()));
                }
                out.push_str("}\n\n");
            }
            Kind::Input => {
                let mut names: IndexSet<Name> = IndexSet::new();
                for s in sources {
                    if let ExtendedType::InputObject(io) = s.ty {
                        names.extend(io.fields.keys().cloned());
                    }
                }
                let mut printed_fields = Vec::new();
                for f in &names {
                    let defs: Vec<(usize, &Node<InputValueDefinition>)> = sources
                        .iter()
                        .filter_map(|s| match s.ty {
                            ExtendedType::InputObject(io) => {
                                io.fields.get(f).map(|d| (s.idx, &d.node))
                            }
                            _ => None,
                        })
                        .collect();
                    let coord = format!("{type_name}.{f}");
                    // An input field `@inaccessible` in some subgraph is kept even where
                    // other subgraphs lack it, without a hint (Apollo's rule: it is not in
                    // the API schema, so no client can send it).
                    let inaccessible = defs
                        .iter()
                        .any(|(i, d)| subgraphs[*i].has(&d.directives, "inaccessible"));
                    let partial = defs.len() != sources.len();
                    if partial && !inaccessible {
                        let lacks: Vec<String> = sources
                            .iter()
                            .filter(|s| !defs.iter().any(|(i, _)| *i == s.idx))
                            .map(|s| subgraphs[s.idx].name.clone())
                            .collect();
                        if defs.iter().any(|(_, d)| d.is_required()) {
                            let has: Vec<String> = defs
                                .iter()
                                .filter(|(_, d)| d.is_required())
                                .map(|(i, _)| subgraphs[*i].name.clone())
                                .collect();
                            diags.push(Diagnostic::error("REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH", format!("Input object field \"{coord}\" is required in some subgraphs but does not appear in all subgraphs: it is required in subgraph(s) {} but does not appear in subgraph(s) {}", list(&has), list(&lacks))).subgraphs(lacks).at(coord));
                        } else {
                            diags.push(Diagnostic::hint("INCONSISTENT_INPUT_OBJECT_FIELD", format!("Input object field \"{f}\" will not be added to \"{type_name}\" in the supergraph as it does not appear in all subgraphs: it is defined in subgraph(s) {} but not in subgraph(s) {}", list(&defs.iter().map(|(i, _)| subgraphs[*i].name.clone()).collect::<Vec<_>>()), list(&lacks))).subgraphs(lacks).at(coord));
                        }
                        continue;
                    }
                    match merge_input_value(
                        subgraphs,
                        &defs,
                        &coord,
                        "FIELD_TYPE_MISMATCH",
                        "INPUT_FIELD_DEFAULT_MISMATCH",
                        "Input field",
                        diags,
                        &mut carry,
                    ) {
                        Some(p) => {
                            let equal = defs.iter().all(|(i, d)| {
                                rename_type(&subgraphs[*i], &d.ty)
                                    == rename_type(&subgraphs[defs[0].0], &defs[0].1.ty)
                            });
                            let mut line = p;
                            if !equal {
                                for (i, d) in &defs {
                                    let _ = write!(
                                        line,
                                        " @join__field(graph: {}, type: {})",
                                        graph_names[*i],
                                        quote(&rename_type(&subgraphs[*i], &d.ty).to_string())
                                    );
                                }
                            } else if partial {
                                for (i, _) in &defs {
                                    let _ =
                                        write!(line, " @join__field(graph: {})", graph_names[*i]);
                                }
                            }
                            printed_fields.push(line);
                        }
                        None => continue,
                    }
                }
                if printed_fields.is_empty() {
                    diags.push(Diagnostic::error("EMPTY_MERGED_INPUT_TYPE", format!("None of the fields of input object type \"{type_name}\" are consistently defined in all the subgraphs defining that type. As only fields common to all subgraphs are merged, this would result in an empty type.")).at(type_name.to_string()));
                }
                let _ = writeln!(
                    out,
                    "input {type_name}{}{} {{",
                    sp(&joins),
                    sp(&type_dirs.printed())
                );
                for f in printed_fields {
                    let _ = writeln!(out, "  {f}");
                }
                out.push_str("}\n\n");
            }
            Kind::Object | Kind::Interface => {
                let mut implements: IndexSet<Name> = IndexSet::new();
                for s in sources {
                    let itfs = match s.ty {
                        ExtendedType::Object(o) => &o.implements_interfaces,
                        ExtendedType::Interface(i) => &i.implements_interfaces,
                        _ => continue,
                    };
                    for i in itfs {
                        let n = subgraphs[s.idx].merged_name(&i.name);
                        joins.push(format!(
                            "@join__implements(graph: {}, interface: {})",
                            graph_names[s.idx],
                            quote(&n)
                        ));
                        implements.insert(n);
                    }
                }
                let mut fields_text = String::new();
                merge_fields(
                    subgraphs,
                    &graph_names,
                    type_name,
                    kind,
                    sources,
                    &used,
                    &key_fields,
                    &types,
                    &mut carry,
                    diags,
                    &mut fields_text,
                );
                let word = if kind == Kind::Object {
                    "type"
                } else {
                    "interface"
                };
                let imp = if implements.is_empty() {
                    String::new()
                } else {
                    format!(
                        " implements {}",
                        implements
                            .iter()
                            .map(|n| n.as_str())
                            .collect::<Vec<_>>()
                            .join(" & ")
                    )
                };
                let _ = writeln!(
                    out,
                    "{word} {type_name}{imp}{}{} {{",
                    sp(&joins),
                    sp(&type_dirs.printed())
                );
                out.push_str(&fields_text);
                out.push_str("}\n\n");
            }
        }
        body.push_str(&out);
    }

    // Header.
    let mut out = String::new();
    let mut links = vec![
        "@link(url: \"https://specs.apollo.dev/link/v1.0\")".to_string(),
        "@link(url: \"https://specs.apollo.dev/join/v0.5\", for: EXECUTION)".to_string(),
    ];
    let mut defs = String::new();
    let f = &carry.used_features;
    if f.contains("tag") {
        links.push("@link(url: \"https://specs.apollo.dev/tag/v0.3\")".into());
        defs.push_str("directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA\n\n");
    }
    if f.contains("cost") || f.contains("listSize") {
        links.push(format!(
            "@link(url: \"https://specs.apollo.dev/cost/v0.1\"{})",
            if f.contains("listSize") {
                ", import: [\"@listSize\"]"
            } else {
                ""
            }
        ));
        defs.push_str("directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR\n\n");
        defs.push_str("directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION\n\n");
    }
    if f.contains("inaccessible") {
        links.push(
            "@link(url: \"https://specs.apollo.dev/inaccessible/v0.2\", for: SECURITY)".into(),
        );
        defs.push_str("directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ENUM | ENUM_VALUE | SCALAR | INPUT_OBJECT | INPUT_FIELD_DEFINITION | ARGUMENT_DEFINITION\n\n");
    }
    if f.contains("authenticated") {
        links.push(
            "@link(url: \"https://specs.apollo.dev/authenticated/v0.1\", for: SECURITY)".into(),
        );
        defs.push_str(
            "directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\n",
        );
    }
    if f.contains("requiresScopes") {
        links.push(
            "@link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\", for: SECURITY)".into(),
        );
        defs.push_str("directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\nscalar requiresScopes__Scope\n\n");
    }
    if f.contains("policy") {
        links.push("@link(url: \"https://specs.apollo.dev/policy/v0.1\", for: SECURITY)".into());
        defs.push_str("directive @policy(policies: [[policy__Policy!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\nscalar policy__Policy\n\n");
    }
    if f.contains("context") {
        links.push("@link(url: \"https://specs.apollo.dev/context/v0.1\", for: SECURITY)".into());
        defs.push_str("directive @context(name: String!) repeatable on OBJECT | INTERFACE | UNION\n\ndirective @context__fromContext(field: context__ContextFieldValue) on ARGUMENT_DEFINITION\n\nscalar context__ContextFieldValue\n\n");
    }
    let composed = carry.composed.clone();
    defs.push_str(&executable_directives(
        subgraphs, &composed, diags, &mut carry,
    ));
    for (name, (def, url)) in &composed_defs {
        links.push(format!(
            "@link(url: {}, import: [{}])",
            quote(url),
            quote(&format!("@{name}"))
        ));
        defs.push_str(def);
        defs.push_str("\n\n");
    }
    let _ = writeln!(out, "schema {} {{", links.join(" "));
    for root in ["query", "mutation", "subscription"] {
        let t = format!("{}{}", root[..1].to_uppercase(), &root[1..]);
        if types.contains_key(t.as_str()) {
            let _ = writeln!(out, "  {root}: {t}");
        }
    }
    out.push_str("}\n\n");
    out.push_str(JOIN_DEFINITIONS);
    out.push_str(&defs);
    out.push_str("enum join__Graph {\n");
    for (sg, g) in subgraphs.iter().zip(&graph_names) {
        let _ = writeln!(
            out,
            "  {g} @join__graph(name: {}, url: {})",
            quote(&sg.name),
            quote(&sg.url)
        );
    }
    out.push_str("}\n\n");
    out.push_str(&body);
    let _ = out.pop();
    out
}

/// Locations where a directive applies to an operation rather than to the schema.
const EXECUTABLE_LOCATIONS: &[&str] = &[
    "QUERY",
    "MUTATION",
    "SUBSCRIPTION",
    "FIELD",
    "FRAGMENT_DEFINITION",
    "FRAGMENT_SPREAD",
    "INLINE_FRAGMENT",
    "VARIABLE_DEFINITION",
];

/// Executable directives the subgraphs define (Apollo's rules): one that any operation
/// may carry to any subgraph is kept only when every subgraph defines it
/// (`INCONSISTENT_EXECUTABLE_DIRECTIVE_PRESENCE` otherwise), with the executable
/// locations all of them accept (`NO_EXECUTABLE_DIRECTIVE_LOCATIONS_INTERSECTION` when
/// none), `repeatable` only if everywhere repeatable, and its arguments merged like
/// field arguments. Returns the printed definitions.
fn executable_directives(
    subgraphs: &[Subgraph],
    composed: &[HashMap<String, String>],
    diags: &mut Diagnostics,
    carry: &mut Carry,
) -> String {
    const BUILT_IN: &[&str] = &[
        "skip",
        "include",
        "deprecated",
        "specifiedBy",
        "oneOf",
        "defer",
        "stream",
        "link",
    ];
    // name → per subgraph (index, definition), in order of first appearance.
    let mut found: IndexMap<Name, Vec<(usize, &Node<apollo_compiler::ast::DirectiveDefinition>)>> =
        IndexMap::new();
    for (idx, sg) in subgraphs.iter().enumerate() {
        for (name, def) in &sg.schema.directive_definitions {
            let executable = def
                .locations
                .iter()
                .any(|l| EXECUTABLE_LOCATIONS.contains(&l.name()));
            if !executable
                || BUILT_IN.contains(&name.as_str())
                || sg.is_spec_directive(name)
                || composed[idx].contains_key(name.as_str())
                || name.contains("__")
            {
                continue;
            }
            found.entry(name.clone()).or_default().push((idx, def));
        }
    }
    let mut out = String::new();
    for (name, defs) in &found {
        if defs.len() != subgraphs.len() {
            let has: Vec<String> = defs
                .iter()
                .map(|(i, _)| subgraphs[*i].name.clone())
                .collect();
            let lacks: Vec<String> = subgraphs
                .iter()
                .enumerate()
                .filter(|(i, _)| !defs.iter().any(|(d, _)| d == i))
                .map(|(_, s)| s.name.clone())
                .collect();
            diags.push(
                Diagnostic::hint(
                    "INCONSISTENT_EXECUTABLE_DIRECTIVE_PRESENCE",
                    format!(
                        "Executable directive \"@{name}\" will not be part of the supergraph as it does not appear in all subgraphs: it is defined in subgraph(s) {} but not in subgraph(s) {}.",
                        list(&has),
                        list(&lacks)
                    ),
                )
                .subgraphs(lacks)
                .at(format!("@{name}")),
            );
            continue;
        }
        let locations_of = |d: &apollo_compiler::ast::DirectiveDefinition| -> Vec<&'static str> {
            EXECUTABLE_LOCATIONS
                .iter()
                .copied()
                .filter(|l| d.locations.iter().any(|x| x.name() == *l))
                .collect()
        };
        let mut locations = locations_of(defs[0].1);
        let mut inconsistent_locations = false;
        for (_, d) in &defs[1..] {
            let these = locations_of(d);
            if these != locations {
                inconsistent_locations = true;
            }
            locations.retain(|l| these.contains(l));
        }
        if locations.is_empty() {
            diags.push(
                Diagnostic::hint(
                    "NO_EXECUTABLE_DIRECTIVE_LOCATIONS_INTERSECTION",
                    format!(
                        "Executable directive \"@{name}\" has no location that it is marked as valid on in all subgraphs: it will not be included in the supergraph."
                    ),
                )
                .at(format!("@{name}")),
            );
            continue;
        }
        if inconsistent_locations {
            diags.push(
                Diagnostic::hint(
                    "INCONSISTENT_EXECUTABLE_DIRECTIVE_LOCATIONS",
                    format!(
                        "Executable directive \"@{name}\" has inconsistent locations across subgraphs: it will only include the locations common to all subgraphs ({}).",
                        locations.join(", ")
                    ),
                )
                .at(format!("@{name}")),
            );
        }
        let repeatable = defs.iter().all(|(_, d)| d.repeatable);
        if !repeatable && defs.iter().any(|(_, d)| d.repeatable) {
            diags.push(
                Diagnostic::hint(
                    "INCONSISTENT_EXECUTABLE_DIRECTIVE_REPEATABLE",
                    format!(
                        "Executable directive \"@{name}\" will not be marked repeatable in the supergraph as it is inconsistently marked repeatable in subgraphs."
                    ),
                )
                .at(format!("@{name}")),
            );
        }
        // Arguments: intersection, like field arguments.
        let per_source: Vec<(usize, Vec<&Node<InputValueDefinition>>)> = defs
            .iter()
            .map(|(i, d)| (*i, d.arguments.iter().collect()))
            .collect();
        let args: Vec<String> =
            merge_arguments(subgraphs, &format!("@{name}"), &per_source, diags, carry)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let _ = writeln!(
            out,
            "directive @{name}{args}{} on {}\n",
            if repeatable { " repeatable" } else { "" },
            locations.join(" | ")
        );
    }
    out
}

/// The named-type subtyping every subgraph declares (see [`Subtypes`]).
fn subtypes(subgraphs: &[Subgraph]) -> Subtypes {
    let mut out = Subtypes::new();
    for sg in subgraphs {
        for (name, ty) in &sg.schema.types {
            if !sg.is_user_type(name, ty) {
                continue;
            }
            let me = sg.merged_name(name);
            match ty {
                ExtendedType::Object(o) => {
                    for i in &o.implements_interfaces {
                        out.insert((me.clone(), sg.merged_name(&i.name)));
                    }
                }
                ExtendedType::Interface(i) => {
                    for x in &i.implements_interfaces {
                        out.insert((me.clone(), sg.merged_name(&x.name)));
                    }
                }
                ExtendedType::Union(u) => {
                    for m in &u.members {
                        out.insert((sg.merged_name(&m.name), me.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Hint for a field or argument whose types differ across subgraphs but merge (output:
/// the most general one, input: the most specific one).
#[allow(clippy::too_many_arguments)]
fn compatible_hint(
    subgraphs: &[Subgraph],
    types: &[(usize, &Type)],
    merged: &Type,
    coord: &str,
    code: &'static str,
    what: &str,
    relation: &str,
    diags: &mut Diagnostics,
) {
    let from: Vec<String> = types
        .iter()
        .filter(|(_, t)| *t == merged)
        .map(|(i, _)| subgraphs[*i].name.clone())
        .collect();
    let others: Vec<String> = types
        .iter()
        .filter(|(_, t)| *t != merged)
        .map(|(i, t)| format!("\"{t}\" in subgraph \"{}\"", subgraphs[*i].name))
        .collect();
    diags.push(
        Diagnostic::hint(
            code,
            format!(
                "Type of {what} \"{coord}\" is inconsistent but compatible across subgraphs: will use type \"{merged}\" (from {}) in supergraph but \"{coord}\" has {relation} {}.",
                quoted_and(&from, "subgraph"),
                others.join(" and ")
            ),
        )
        .subgraphs(types.iter().filter(|(_, t)| *t != merged).map(|(i, _)| subgraphs[*i].name.clone()))
        .at(coord.to_string()),
    );
}

/// What each interface inherits from its implementations (see `Carry::interface_auth`).
fn interface_auth(
    types: &IndexMap<Name, Vec<TypeSource>>,
    carry: &mut Carry,
) -> HashMap<(Name, Option<Name>), Carried> {
    let is_interface = |name: &Name| {
        types.get(name).is_some_and(|ss| {
            ss.iter()
                .any(|s| matches!(s.ty, ExtendedType::Interface(_)))
        })
    };
    let pairs: Vec<(Name, Name)> = carry
        .subtypes
        .iter()
        .filter(|(_, i)| is_interface(i))
        .cloned()
        .collect();
    let mut out: HashMap<(Name, Option<Name>), Carried> = HashMap::new();
    for (implementor, interface) in pairs {
        let Some(sources) = types.get(&implementor) else {
            continue;
        };
        for s in sources {
            let ExtendedType::Object(o) = s.ty else {
                continue;
            };
            let mut here = Carried::default();
            carry.collect_only(s.idx, &o.directives, &mut here, AUTH);
            out.entry((interface.clone(), None))
                .or_default()
                .merge_auth(&here);
            for (field, def) in &o.fields {
                if is_external(&carry.subgraphs[s.idx], s.ty, def) {
                    continue;
                }
                let mut here = Carried::default();
                carry.collect_only(s.idx, &def.directives, &mut here, AUTH);
                out.entry((interface.clone(), Some(field.clone())))
                    .or_default()
                    .merge_auth(&here);
            }
        }
    }
    out
}

/// Arguments of one field or directive across the subgraphs defining it (`per_source`:
/// subgraph index and its arguments): kept when every source has them (a required one
/// missing somewhere is an error, an optional one a hint), merged by
/// [`merge_input_value`]. Returns each kept argument's name and printed form.
fn merge_arguments(
    subgraphs: &[Subgraph],
    coord: &str,
    per_source: &[(usize, Vec<&Node<InputValueDefinition>>)],
    diags: &mut Diagnostics,
    carry: &mut Carry,
) -> Vec<(Name, String)> {
    let mut names: IndexSet<Name> = IndexSet::new();
    for (_, args) in per_source {
        names.extend(args.iter().map(|a| a.name.clone()));
    }
    let mut out = Vec::new();
    for a in &names {
        let acoord = format!("{coord}({a}:)");
        let defs: Vec<(usize, &Node<InputValueDefinition>)> = per_source
            .iter()
            .filter_map(|(i, args)| args.iter().find(|x| x.name == *a).map(|d| (*i, *d)))
            .collect();
        if defs.len() != per_source.len() {
            let lacks: Vec<String> = per_source
                .iter()
                .filter(|(i, _)| !defs.iter().any(|(d, _)| d == i))
                .map(|(i, _)| subgraphs[*i].name.clone())
                .collect();
            if defs.iter().any(|(_, d)| d.is_required()) {
                let has: Vec<String> = defs
                    .iter()
                    .filter(|(_, d)| d.is_required())
                    .map(|(i, _)| subgraphs[*i].name.clone())
                    .collect();
                diags.push(Diagnostic::error("REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH", format!("Argument \"{acoord}\" is required in some subgraphs but does not appear in all subgraphs: it is required in subgraph(s) {} but does not appear in subgraph(s) {}", list(&has), list(&lacks))).subgraphs(lacks).at(acoord));
            } else {
                let present: Vec<String> = defs
                    .iter()
                    .map(|(i, _)| subgraphs[*i].name.clone())
                    .collect();
                diags.push(Diagnostic::hint("INCONSISTENT_ARGUMENT_PRESENCE", format!("Optional argument \"{acoord}\" will not be included in the supergraph as it does not appear in all subgraphs: it is defined in subgraph(s) {} but not in subgraph(s) {}", list(&present), list(&lacks))).subgraphs(lacks).at(acoord));
            }
            continue;
        }
        if let Some(p) = merge_input_value(
            subgraphs,
            &defs,
            &acoord,
            "FIELD_ARGUMENT_TYPE_MISMATCH",
            "FIELD_ARGUMENT_DEFAULT_MISMATCH",
            "Argument",
            diags,
            carry,
        ) {
            out.push((a.clone(), p));
        }
    }
    out
}

fn sp(items: &[String]) -> String {
    items.iter().map(|i| format!(" {i}")).collect()
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fields selected by the keys of each type of a subgraph (shareable by definition).
/// Fields subgraph `sg` uses itself (Apollo's `collectUsedFields`): those its keys,
/// `@requires` and `@provides` select, and those implementing one of its interfaces' fields.
/// Overriding such a field leaves it `usedOverridden` in the from subgraph.
fn used_fields(sg: &Subgraph) -> super::validate::FieldRefs {
    let mut used = used_by_field_sets(sg);
    for (name, ty) in &sg.schema.types {
        let ExtendedType::Object(o) = ty else {
            continue;
        };
        if !sg.is_user_type(name, ty) {
            continue;
        }
        for i in &o.implements_interfaces {
            let Some(itf) = sg.schema.get_interface(&i.name) else {
                continue;
            };
            for f in itf.fields.keys() {
                if o.fields.contains_key(f) {
                    used.insert((name.clone(), f.clone()));
                }
            }
        }
    }
    used
}

fn key_fields(sg: &Subgraph) -> HashSet<(Name, Name)> {
    let mut out = HashSet::new();
    for (name, ty) in &sg.schema.types {
        if !sg.is_user_type(name, ty) {
            continue;
        }
        for k in sg.all(ty.directives(), "key") {
            if let Some(src) = k
                .specified_argument_by_name("fields")
                .and_then(|v| v.as_str())
                && let Ok(fields) = field_set_fields(sg, name, src)
            {
                out.extend(fields.into_iter().map(|(p, f, _, _)| (p, f)));
            }
        }
    }
    out
}

/// Merges an argument or input field present in every source. Returns its printed form
/// (without join directives) or `None` after reporting an error.
#[allow(clippy::too_many_arguments)]
fn merge_input_value(
    subgraphs: &[Subgraph],
    defs: &[(usize, &Node<InputValueDefinition>)],
    coord: &str,
    type_code: &'static str,
    default_code: &'static str,
    what: &str,
    diags: &mut Diagnostics,
    carry: &mut Carry,
) -> Option<String> {
    let types: Vec<Type> = defs
        .iter()
        .map(|(i, d)| rename_type(&subgraphs[*i], &d.ty))
        .collect();
    let Some(ty) = merge_types(&types, false, &carry.subtypes) else {
        let detail: Vec<String> = defs
            .iter()
            .zip(&types)
            .map(|((i, _), t)| format!("type \"{t}\" in subgraph \"{}\"", subgraphs[*i].name))
            .collect();
        diags.push(
            Diagnostic::error(
                type_code,
                format!(
                    "Type of {} \"{coord}\" is incompatible across subgraphs: it has {}",
                    what.to_lowercase(),
                    detail.join(" but ")
                ),
            )
            .subgraphs(defs.iter().map(|(i, _)| subgraphs[*i].name.clone()))
            .at(coord),
        );
        return None;
    };
    if types.iter().any(|t| *t != ty) {
        let pairs: Vec<(usize, &Type)> = defs.iter().map(|(i, _)| *i).zip(&types).collect();
        let (code, word) = if what == "Argument" {
            ("INCONSISTENT_BUT_COMPATIBLE_ARGUMENT_TYPE", "argument")
        } else {
            ("INCONSISTENT_BUT_COMPATIBLE_FIELD_TYPE", "input field")
        };
        compatible_hint(
            subgraphs,
            &pairs,
            &ty,
            coord,
            code,
            word,
            "supertype",
            diags,
        );
    }
    let defaults: Vec<(usize, String)> = defs
        .iter()
        .filter_map(|(i, d)| d.default_value.as_ref().map(|v| (*i, v.to_string())))
        .collect();
    if defaults.iter().any(|(_, v)| *v != defaults[0].1) {
        let detail: Vec<String> = defs
            .iter()
            .map(|(i, d)| match &d.default_value {
                Some(v) => format!("default value {v} in subgraph \"{}\"", subgraphs[*i].name),
                None => format!("no default value in subgraph \"{}\"", subgraphs[*i].name),
            })
            .collect();
        diags.push(Diagnostic::error(default_code, format!("{what} \"{coord}\" has incompatible default values across subgraphs: it has {}", detail.join(" and "))).subgraphs(defs.iter().map(|(i, _)| subgraphs[*i].name.clone())).at(coord));
        return None;
    } else if !defaults.is_empty() && defaults.len() != defs.len() {
        diags.push(
            Diagnostic::hint(
                "INCONSISTENT_DEFAULT_VALUE_PRESENCE",
                format!("{what} \"{coord}\" has a default value in only some subgraphs"),
            )
            .at(coord),
        );
    }
    let mut dirs = Carried::default();
    let mut described = Described::default();
    for (i, d) in defs {
        carry.collect(*i, &d.directives, &mut dirs);
        described.add(*i, d.description.as_ref().map(|d| d.as_str()));
    }
    let description = described.pick(subgraphs, coord, diags);
    let name = &defs[0].1.name;
    let default = defaults
        .first()
        .map(|(_, v)| format!(" = {v}"))
        .unwrap_or_default();
    let desc = description
        .map(|d| format!("{} ", quote(&d)))
        .unwrap_or_default();
    Some(format!(
        "{desc}{name}: {ty}{default}{}",
        sp(&dirs.printed())
    ))
}

#[allow(clippy::too_many_arguments)]
fn merge_fields(
    subgraphs: &[Subgraph],
    graph_names: &[String],
    type_name: &Name,
    kind: Kind,
    sources: &[TypeSource],
    used: &[super::validate::FieldRefs],
    key_fields: &[HashSet<(Name, Name)>],
    types: &IndexMap<Name, Vec<TypeSource>>,
    carry: &mut Carry,
    diags: &mut Diagnostics,
    out: &mut String,
) {
    let mut names: IndexSet<Name> = IndexSet::new();
    for s in sources {
        if let Some(fs) = fields_of(s.ty) {
            names.extend(fs.keys().cloned());
        }
    }
    // Fields an @interfaceObject elsewhere adds to this object's interfaces.
    let mut from_interface_objects: IndexSet<Name> = IndexSet::new();
    if kind == Kind::Object {
        let interfaces: IndexSet<Name> = sources
            .iter()
            .filter_map(|s| match s.ty {
                ExtendedType::Object(o) => Some(
                    o.implements_interfaces
                        .iter()
                        .map(|i| subgraphs[s.idx].merged_name(&i.name))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        for itf in &interfaces {
            for s in types
                .get(itf)
                .into_iter()
                .flatten()
                .filter(|s| s.interface_object)
            {
                if let Some(fs) = fields_of(s.ty) {
                    for f in fs.keys() {
                        if !names.contains(f) {
                            from_interface_objects.insert(f.clone());
                        }
                    }
                }
            }
        }
    }

    // Value types (no key anywhere, not a root) should look the same everywhere; an entity
    // should be one in every subgraph that defines it.
    let is_root = matches!(type_name.as_str(), "Query" | "Mutation" | "Subscription");
    let keyed: Vec<bool> = sources
        .iter()
        .map(|s| subgraphs[s.idx].has(s.ty.directives(), "key"))
        .collect();
    let names_of = |pick: &dyn Fn(usize) -> bool| -> Vec<String> {
        sources
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .map(|(_, s)| subgraphs[s.idx].name.clone())
            .collect()
    };
    if !is_root && keyed.iter().any(|k| *k) && keyed.iter().any(|k| !k) {
        let with = names_of(&|i| keyed[i]);
        let without = names_of(&|i| !keyed[i] && !sources[i].interface_object);
        if !without.is_empty() {
            diags.push(Diagnostic::hint("INCONSISTENT_ENTITY", format!("Entity type \"{type_name}\" is declared with a @key in only some of the subgraphs in which it is defined: it has a @key in subgraph(s) {} but not in subgraph(s) {}.", list(&with), list(&without))).subgraphs(without).at(type_name.to_string()));
        }
    }
    if !is_root && !keyed.iter().any(|k| *k) && sources.len() > 1 {
        let (code, word) = if kind == Kind::Interface {
            ("INCONSISTENT_INTERFACE_VALUE_TYPE_FIELD", "interface")
        } else {
            ("INCONSISTENT_OBJECT_VALUE_TYPE_FIELD", "non-entity object")
        };
        for field_name in &names {
            let defines = |s: &TypeSource| match s.ty {
                ExtendedType::Object(o) => o.fields.contains_key(field_name),
                ExtendedType::Interface(i) => i.fields.contains_key(field_name),
                _ => false,
            };
            if sources.iter().all(defines) || sources.iter().any(|s| s.interface_object) {
                continue;
            }
            let has = names_of(&|i| defines(&sources[i]));
            let lacks = names_of(&|i| !defines(&sources[i]));
            diags.push(Diagnostic::hint(code, format!("Field \"{type_name}.{field_name}\" of {word} type \"{type_name}\" is defined in some but not all subgraphs that define \"{type_name}\": \"{type_name}.{field_name}\" is defined in subgraph(s) {} but not in subgraph(s) {}.", list(&has), list(&lacks))).subgraphs(lacks).at(format!("{type_name}.{field_name}")));
        }
    }
    for field_name in &names {
        let coord = format!("{type_name}.{field_name}");
        let mut fsources: Vec<FieldSource> = Vec::new();
        for s in sources {
            let sg = &subgraphs[s.idx];
            let def = match s.ty {
                ExtendedType::Object(o) => o.fields.get(field_name),
                ExtendedType::Interface(i) => i.fields.get(field_name),
                _ => None,
            };
            let Some(def) = def else { continue };
            let local_type = match s.ty {
                ExtendedType::Object(o) => &o.name,
                ExtendedType::Interface(i) => &i.name,
                _ => unreachable!(),
            };
            let in_key = key_fields[s.idx].contains(&(local_type.clone(), field_name.clone()));
            // Key fields of extensions are not external (Fed1: the upgrade removed the
            // `@external`; Fed2: Apollo's "fake" externals).
            let external = is_external(sg, s.ty, def)
                && !carry.fake_externals[s.idx].contains(&(local_type.clone(), field_name.clone()));
            let ovr = sg.all(&def.directives, "override").into_iter().next();
            let str_of = |d: &Node<Directive>, a: &str| {
                d.specified_argument_by_name(a)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let fs_arg = |canonical: &str| {
                sg.all(&def.directives, canonical)
                    .into_iter()
                    .next()
                    .and_then(|d| str_of(d, "fields"))
            };
            let mut context_arguments = Vec::new();
            for a in def.arguments.iter() {
                let Some(fc) = sg.all(&a.directives, "fromContext").into_iter().next() else {
                    continue;
                };
                let field = str_of(fc, "field").unwrap_or_default();
                let rest = field.trim_start().trim_start_matches('$');
                let split = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let (context, selection) = rest.split_at(split);
                context_arguments.push(format!(
                    "{{context: {}, name: {}, type: {}, selection: {}}}",
                    quote(&format!("{}__{context}", sg.name)),
                    quote(&a.name),
                    quote(&a.ty.to_string()),
                    quote(selection)
                ));
            }
            fsources.push(FieldSource {
                context_arguments,
                idx: s.idx,
                def,
                ty: rename_type(sg, &def.ty),
                external,
                override_from: ovr.and_then(|d| str_of(d, "from")),
                override_label: ovr.and_then(|d| str_of(d, "label")),
                overridden: Overridden::No,
                interface_object: s.interface_object,
                requires: fs_arg("requires"),
                provides: fs_arg("provides"),
                shareable: sg.fed1
                    || in_key
                    || sg.has(&def.directives, "shareable")
                    || sg.has(s.ty.directives(), "shareable"),
            });
        }
        // @override.
        let overriders: Vec<(usize, String, Option<String>)> = fsources
            .iter()
            .filter_map(|f| {
                f.override_from
                    .clone()
                    .map(|from| (f.idx, from, f.override_label.clone()))
            })
            .collect();
        let mut override_chain = false;
        for (idx, from, label) in overriders {
            let me = &subgraphs[idx].name;
            let Some(src_idx) = subgraphs.iter().position(|s| s.name == from) else {
                diags.push(Diagnostic::hint("FROM_SUBGRAPH_DOES_NOT_EXIST", format!("Source subgraph \"{from}\" for field \"{coord}\" on subgraph \"{me}\" does not exist. Did you mean one of the composed subgraphs?")).subgraph(me.clone()).at(coord.clone()));
                continue;
            };
            let Some(src) = fsources.iter_mut().find(|f| f.idx == src_idx) else {
                diags.push(Diagnostic::hint("OVERRIDE_DIRECTIVE_CAN_BE_REMOVED", format!("Field \"{coord}\" on subgraph \"{me}\" no longer exists in the from subgraph. The @override directive can be removed.")).subgraph(me.clone()).at(coord.clone()));
                continue;
            };
            if src.override_from.is_some() {
                override_chain = true;
                diags.push(Diagnostic::error("OVERRIDE_SOURCE_HAS_OVERRIDE", format!("Field \"{coord}\" on subgraph \"{me}\" is also marked with directive @override in subgraph \"{from}\". Only one @override directive is allowed per field.")).subgraphs([me.clone(), from.clone()]).at(coord.clone()));
                continue;
            }
            if src.external {
                // The from subgraph no longer resolves the field: nothing to override.
                diags.push(Diagnostic::hint("OVERRIDE_DIRECTIVE_CAN_BE_REMOVED", format!("Field \"{coord}\" on subgraph \"{me}\" is not resolved anymore by the from subgraph (it is marked \"@external\" in \"{from}\"). The @override directive can be removed.")).subgraph(me.clone()).at(coord.clone()));
                continue;
            }
            // Still used by the from subgraph (its keys, `@requires`, `@provides`, or to
            // implement an interface field there): the supergraph keeps it as
            // `usedOverridden`, so the subgraph can be extracted again.
            let still_used = used[src_idx].contains(&(type_name.clone(), field_name.clone()));
            src.overridden = match label {
                Some(l) => Overridden::Label(l, still_used),
                None if still_used => {
                    diags.push(Diagnostic::hint("OVERRIDDEN_FIELD_CAN_BE_REMOVED", format!("Field \"{coord}\" on subgraph \"{from}\" is overridden. It is still used in some federation directive(s) (@key, @requires, and/or @provides) and/or to satisfy interface constraint(s), but consider marking it @external explicitly or removing it along with its references.")).subgraph(from.clone()).at(coord.clone()));
                    Overridden::Used
                }
                None => {
                    diags.push(Diagnostic::hint("OVERRIDDEN_FIELD_CAN_BE_REMOVED", format!("Field \"{coord}\" on subgraph \"{from}\" is overridden. Consider removing it.")).subgraph(from.clone()).at(coord.clone()));
                    Overridden::Unused
                }
            };
        }
        // Resolving sources: not external, not overridden away.
        let resolving: Vec<&FieldSource> = fsources
            .iter()
            .filter(|f| {
                !f.external && !matches!(f.overridden, Overridden::Unused | Overridden::Used)
            })
            .collect();
        if resolving.is_empty() && !fsources.is_empty() && kind == Kind::Object {
            let names: Vec<String> = fsources
                .iter()
                .map(|f| subgraphs[f.idx].name.clone())
                .collect();
            diags.push(Diagnostic::error("EXTERNAL_MISSING_ON_BASE", format!("Field \"{coord}\" is marked @external on all the subgraphs in which it is listed ({}).", names.iter().map(|n| format!("subgraph \"{n}\"")).collect::<Vec<_>>().join(", "))).subgraphs(names).at(coord.clone()));
            continue;
        }
        // Sharing.
        let plain: Vec<&&FieldSource> = resolving
            .iter()
            .filter(|f| {
                !matches!(f.overridden, Overridden::Label(..)) && f.override_label.is_none()
            })
            .collect();
        if kind == Kind::Object
            && !override_chain
            && plain.len() > 1
            && plain.iter().any(|f| !f.shareable)
            && !fsources.iter().any(|f| f.interface_object)
        {
            let all: Vec<String> = plain
                .iter()
                .map(|f| subgraphs[f.idx].name.clone())
                .collect();
            let non: Vec<String> = plain
                .iter()
                .filter(|f| !f.shareable)
                .map(|f| subgraphs[f.idx].name.clone())
                .collect();
            let tail = if non.len() == all.len() {
                "defined as non-shareable in all of them".to_string()
            } else {
                format!(
                    "defined as non-shareable in {}",
                    quoted_and(&non, "subgraph")
                )
            };
            diags.push(Diagnostic::error("INVALID_FIELD_SHARING", format!("Non-shareable field \"{coord}\" is resolved from multiple subgraphs: it is resolved from {} and {tail}", quoted_and(&all, "subgraph"))).subgraphs(non).at(coord.clone()));
        }
        // External types must be compatible with the resolving ones.
        let all_types: Vec<Type> = fsources.iter().map(|f| f.ty.clone()).collect();
        let Some(ty) = merge_types(&all_types, true, &carry.subtypes) else {
            let detail: Vec<String> = fsources
                .iter()
                .map(|f| {
                    format!(
                        "type \"{}\" in subgraph \"{}\"",
                        f.ty, subgraphs[f.idx].name
                    )
                })
                .collect();
            diags.push(
                Diagnostic::error(
                    "FIELD_TYPE_MISMATCH",
                    format!(
                        "Type of field \"{coord}\" is incompatible across subgraphs: it has {}",
                        detail.join(" but ")
                    ),
                )
                .subgraphs(fsources.iter().map(|f| subgraphs[f.idx].name.clone()))
                .at(coord.clone()),
            );
            continue;
        };
        let all_types_equal = all_types.iter().all(|t| *t == all_types[0]);
        if !all_types_equal {
            let pairs: Vec<(usize, &Type)> = fsources.iter().map(|f| (f.idx, &f.ty)).collect();
            compatible_hint(
                subgraphs,
                &pairs,
                &ty,
                &coord,
                "INCONSISTENT_BUT_COMPATIBLE_FIELD_TYPE",
                "field",
                "subtype",
                diags,
            );
        }
        // Arguments: intersection over the resolving sources.
        let arg_sources: Vec<&FieldSource> = if resolving.is_empty() {
            fsources.iter().collect()
        } else {
            resolving.clone()
        };
        let from_context = |f: &FieldSource, a: &Node<InputValueDefinition>| {
            subgraphs[f.idx].has(&a.directives, "fromContext")
        };
        let per_source: Vec<(usize, Vec<&Node<InputValueDefinition>>)> = arg_sources
            .iter()
            .map(|f| {
                (
                    f.idx,
                    f.def
                        .arguments
                        .iter()
                        .filter(|a| !from_context(f, a))
                        .collect(),
                )
            })
            .collect();
        let merged = merge_arguments(subgraphs, &coord, &per_source, diags, carry);
        let merged_args: Vec<String> = merged.iter().map(|(n, _)| n.to_string()).collect();
        let args: Vec<String> = merged.into_iter().map(|(_, p)| p).collect();
        // Directives and description.
        let mut dirs = Carried::default();
        let mut described = Described::default();
        for f in &fsources {
            // The first description in subgraph order, external declarations included
            // (as the Guild's composition does); directives only from resolving ones.
            described.add(f.idx, f.def.description.as_ref().map(|d| d.as_str()));
            if !f.external {
                carry.collect(f.idx, &f.def.directives, &mut dirs);
            }
        }
        if kind == Kind::Interface
            && let Some(inherited) = carry
                .interface_auth
                .get(&(type_name.clone(), Some(field_name.clone())))
        {
            dirs.merge_auth(inherited);
        }
        // Join metadata (Apollo's `needsJoinField`).
        let any_override = fsources.iter().any(|f| {
            f.override_label.is_some()
                || matches!(f.overridden, Overridden::Used | Overridden::Label(..))
        });
        let needs_join = !all_types_equal
            || any_override
            || fsources.iter().any(|f| !f.context_arguments.is_empty())
            || fsources.iter().any(|f| {
                f.overridden != Overridden::Unused
                    && (f.external || f.requires.is_some() || f.provides.is_some())
            })
            || sources.iter().any(|s| {
                !fsources
                    .iter()
                    .any(|f| f.idx == s.idx && f.overridden != Overridden::Unused)
            });
        let mut joins = Vec::new();
        if needs_join {
            for f in &fsources {
                if f.overridden == Overridden::Unused {
                    continue;
                }
                let mut a = vec![format!("graph: {}", graph_names[f.idx])];
                if let Some(r) = &f.requires {
                    a.push(format!("requires: {}", quote(r)));
                }
                if let Some(p) = &f.provides {
                    a.push(format!("provides: {}", quote(p)));
                }
                if !all_types_equal {
                    a.push(format!("type: {}", quote(&f.ty.to_string())));
                }
                if f.external {
                    a.push("external: true".into());
                }
                if let Some(from) = &f.override_from {
                    a.push(format!("override: {}", quote(from)));
                }
                if matches!(f.overridden, Overridden::Used | Overridden::Label(_, true)) {
                    a.push("usedOverridden: true".into());
                }
                let label = match &f.overridden {
                    Overridden::Label(l, _) => Some(l.clone()),
                    _ => f.override_label.clone(),
                };
                if let Some(l) = label {
                    a.push(format!("overrideLabel: {}", quote(&l)));
                }
                if !f.context_arguments.is_empty() {
                    a.push(format!(
                        "contextArguments: [{}]",
                        f.context_arguments.join(", ")
                    ));
                }
                joins.push(format!("@join__field({})", a.join(", ")));
            }
        }
        // Slicing arguments name arguments of the merged field only.
        if let Some(l) = &mut dirs.list_size
            && let Some(s) = &mut l.slicing_arguments
        {
            s.retain(|a| merged_args.contains(a));
        }
        let description = described.pick(subgraphs, &coord, diags);
        print_description(out, "  ", description.as_deref());
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let _ = writeln!(
            out,
            "  {field_name}{args}: {ty}{}{}",
            sp(&joins),
            sp(&dirs.printed())
        );
    }
    for field_name in &from_interface_objects {
        // Defined by an @interfaceObject for one of this type's interfaces: resolved there.
        for itf_sources in types.values() {
            let _ = itf_sources;
        }
        let def = sources.iter().find_map(|s| match s.ty {
            ExtendedType::Object(o) => o.implements_interfaces.iter().find_map(|i| {
                types
                    .get(&subgraphs[s.idx].merged_name(&i.name))
                    .and_then(|ss| {
                        ss.iter()
                            .filter(|t| t.interface_object)
                            .find_map(|t| match t.ty {
                                ExtendedType::Object(io) => {
                                    io.fields.get(field_name).map(|f| (t.idx, f.clone()))
                                }
                                _ => None,
                            })
                    })
            }),
            _ => None,
        });
        if let Some((idx, f)) = def {
            let ty = rename_type(&subgraphs[idx], &f.ty);
            let args: Vec<String> = f
                .arguments
                .iter()
                .map(|a| {
                    let default = a
                        .default_value
                        .as_ref()
                        .map(|v| format!(" = {v}"))
                        .unwrap_or_default();
                    format!(
                        "{}: {}{default}",
                        a.name,
                        rename_type(&subgraphs[idx], &a.ty)
                    )
                })
                .collect();
            let args = if args.is_empty() {
                String::new()
            } else {
                format!("({})", args.join(", "))
            };
            let _ = writeln!(out, "  {field_name}{args}: {ty} @join__field");
        }
    }
}

fn quoted_and(names: &[String], word: &str) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match q.len() {
        0 => String::new(),
        1 => format!("{word} {}", q[0]),
        _ => format!(
            "{word}s {} and {}",
            q[..q.len() - 1].join(", "),
            q[q.len() - 1]
        ),
    }
}

const JOIN_DEFINITIONS: &str = r#"directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE

directive @join__graph(name: String!, url: String!) on ENUM_VALUE

directive @join__field(
  graph: join__Graph
  requires: join__FieldSet
  provides: join__FieldSet
  type: String
  external: Boolean
  override: String
  usedOverridden: Boolean
  overrideLabel: String
  contextArguments: [join__ContextArgument!]
) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION

input join__ContextArgument {
  name: String!
  type: String!
  context: String!
  selection: join__FieldValue!
}

directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE

directive @join__type(
  graph: join__Graph!
  key: join__FieldSet
  extension: Boolean! = false
  resolvable: Boolean! = true
  isInterfaceObject: Boolean! = false
) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR

directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION

scalar join__FieldSet

scalar join__FieldValue

directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA

scalar link__Import

enum link__Purpose {
  """
  `SECURITY` features provide metadata necessary to securely resolve fields.
  """
  SECURITY
  """
  `EXECUTION` features provide metadata necessary for operation execution.
  """
  EXECUTION
}

"#;

#[cfg(test)]
mod tests {
    use super::dnf_and;

    fn v(groups: &[&[&str]]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn requirements_merge_by_conjunction_in_normal_form() {
        // Either side empty: the other one.
        assert_eq!(dnf_and(&v(&[&["a"]]), &[]), v(&[&["a"]]));
        // (a ∨ b) ∧ c = (a ∧ c) ∨ (b ∧ c)
        assert_eq!(
            dnf_and(&v(&[&["a"], &["b"]]), &v(&[&["c"]])),
            v(&[&["a", "c"], &["b", "c"]])
        );
        // (a ∨ b) ∧ a = a: the alternative implied by a smaller one is dropped.
        assert_eq!(dnf_and(&v(&[&["a"], &["b"]]), &v(&[&["a"]])), v(&[&["a"]]));
        // Duplicates inside an alternative collapse; order is stable.
        assert_eq!(
            dnf_and(&v(&[&["b", "a"]]), &v(&[&["a", "b"]])),
            v(&[&["a", "b"]])
        );
    }
}
