//! Stage 2b, rules that need every subgraph but not the merged schema (Apollo checks
//! them while merging; they run before [`super::merge`] so its errors do not hide
//! them):
//! - `@interfaceObject`: some subgraph must define the type as an interface; a subgraph
//!   using `@interfaceObject I` defines none of `I`'s implementations
//!   (INTERFACE_OBJECT_USAGE_ERROR).
//! - An interface with a resolvable `@key` in a subgraph must have, in that subgraph,
//!   every implementation it has in the supergraph
//!   (INTERFACE_KEY_MISSING_IMPLEMENTATION_TYPE).
//! - `@external` declarations against the resolving definitions (Apollo's
//!   `validateExternalFields`): same type, or a subtype when the definitions differ
//!   (EXTERNAL_TYPE_MISMATCH); every argument of the merged field, with a supertype
//!   (EXTERNAL_ARGUMENT_MISSING, EXTERNAL_ARGUMENT_TYPE_MISMATCH) and the same default
//!   (EXTERNAL_ARGUMENT_DEFAULT_MISMATCH).
//! - Per-subgraph cost spec, `@shareable`, `@external` collision and
//!   access-control-on-interface rules, from [`super::validate`].
//!
//! Federation 1 subgraphs take part as resolving definitions only.

use super::subgraph::Subgraph;
use super::validate;
use super::{Diagnostic, Diagnostics};
use apollo_compiler::ast::Type;
use apollo_compiler::schema::{ExtendedType, FieldDefinition};
use apollo_compiler::{Name, Node};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn check(loaded: &[Subgraph], diags: &mut Diagnostics) {
    for sg in loaded {
        validate::cost_spec(sg, diags);
        validate::shareable_and_external(sg, diags);
        validate::access_control_on_interfaces(sg, diags);
    }
    interface_objects(loaded, diags);
    interface_keys(loaded, diags);
    external_fields(loaded, diags);
}

/// `subgraph "a"` / `subgraphs "a" and "b"` / `subgraphs "a", "b" and "c"`.
pub(super) fn subgraph_names(names: &[String]) -> String {
    human_list(names, "subgraph", "subgraphs")
}

pub(super) fn human_list(items: &[String], singular: &str, plural: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => format!("{singular} {one}"),
        [init @ .., last] => format!("{plural} {} and {last}", init.join(", ")),
    }
}

/// Implementations (object types) of each interface, by merged name, over all subgraphs.
fn implementations(loaded: &[Subgraph]) -> BTreeMap<Name, BTreeSet<Name>> {
    let mut out: BTreeMap<Name, BTreeSet<Name>> = BTreeMap::new();
    for sg in loaded {
        for (name, ty) in &sg.schema.types {
            if let ExtendedType::Object(o) = ty
                && sg.is_user_type(name, ty)
            {
                for i in &o.implements_interfaces {
                    out.entry(sg.merged_name(&i.name))
                        .or_default()
                        .insert(sg.merged_name(name));
                }
            }
        }
    }
    out
}

fn interface_objects(loaded: &[Subgraph], diags: &mut Diagnostics) {
    let implems = implementations(loaded);
    // Merged name → subgraphs with it as @interfaceObject, and whether any has an interface.
    let mut objects: BTreeMap<Name, Vec<String>> = BTreeMap::new();
    let mut interfaces: BTreeSet<Name> = BTreeSet::new();
    for sg in loaded {
        for (name, ty) in &sg.schema.types {
            if !sg.is_user_type(name, ty) {
                continue;
            }
            if ty.is_interface() {
                interfaces.insert(sg.merged_name(name));
            } else if ty.is_object() && sg.has(ty.directives(), "interfaceObject") {
                let merged = sg.merged_name(name);
                objects
                    .entry(merged.clone())
                    .or_default()
                    .push(sg.name.clone());
                let defined: Vec<String> = implems
                    .get(&merged)
                    .into_iter()
                    .flatten()
                    .filter(|t| sg.schema.types.contains_key(*t))
                    .map(|t| t.to_string())
                    .collect();
                if !defined.is_empty() {
                    diags.push(
                        Diagnostic::error(
                            "INTERFACE_OBJECT_USAGE_ERROR",
                            format!(
                                "[{}] Interface type \"{merged}\" is defined as an @interfaceObject in subgraph \"{}\" so that subgraph should not define any of the implementation types of \"{merged}\", but it defines {}",
                                sg.name,
                                sg.name,
                                human_list(&defined, "type", "types")
                            ),
                        )
                        .subgraph(sg.name.clone())
                        .at(merged.to_string()),
                    );
                }
            }
        }
    }
    for (name, subgraphs) in objects {
        if interfaces.contains(&name) {
            continue;
        }
        // Every subgraph defining the type, in composition order.
        let with_type: Vec<String> = loaded
            .iter()
            .filter(|sg| sg.schema.types.keys().any(|t| sg.merged_name(t) == name))
            .map(|sg| sg.name.clone())
            .collect();
        diags.push(
            Diagnostic::error(
                "INTERFACE_OBJECT_USAGE_ERROR",
                format!(
                    "Type \"{name}\" is declared with @interfaceObject in all the subgraphs in which is is defined (it is defined in {} but should be defined as an interface in at least one subgraph)",
                    subgraph_names(&with_type)
                ),
            )
            .subgraphs(subgraphs)
            .at(name.to_string()),
        );
    }
}

fn interface_keys(loaded: &[Subgraph], diags: &mut Diagnostics) {
    let implems = implementations(loaded);
    for sg in loaded {
        if sg.fed1 {
            continue;
        }
        for (name, ty) in &sg.schema.types {
            if !ty.is_interface() || !sg.is_user_type(name, ty) {
                continue;
            }
            let resolvable = sg.all(ty.directives(), "key").into_iter().find(|k| {
                !matches!(
                    k.specified_argument_by_name("resolvable")
                        .map(|v| v.as_ref()),
                    Some(apollo_compiler::ast::Value::Boolean(false))
                )
            });
            let Some(key) = resolvable else { continue };
            let merged = sg.merged_name(name);
            let here: BTreeSet<Name> = sg
                .schema
                .types
                .iter()
                .filter_map(|(n, t)| match t {
                    ExtendedType::Object(o)
                        if o.implements_interfaces.iter().any(|i| i.name == *name) =>
                    {
                        Some(sg.merged_name(n))
                    }
                    _ => None,
                })
                .collect();
            let missing: Vec<String> = implems
                .get(&merged)
                .into_iter()
                .flatten()
                .filter(|t| !here.contains(*t))
                .map(|t| t.to_string())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let (s, them) = (&sg.name, if missing.len() > 1 { "them" } else { "it" });
            diags.push(
                Diagnostic::error(
                    "INTERFACE_KEY_MISSING_IMPLEMENTATION_TYPE",
                    format!(
                        "[{s}] Interface type \"{merged}\" has a resolvable key ({}) in subgraph \"{s}\" but that subgraph is missing some of the supergraph implementation types of \"{merged}\". Subgraph \"{s}\" should define {} (and have {them} implement \"{merged}\").",
                        key.to_string().trim(),
                        human_list(&missing, "type", "types")
                    ),
                )
                .subgraph(s.clone())
                .at(merged.to_string()),
            );
        }
    }
}

/// One subgraph's declaration of a field.
struct Source<'a> {
    subgraph: &'a str,
    def: &'a Node<FieldDefinition>,
    external: bool,
}

/// Whether `sub` is a subtype of `sup` (equal, non-null of, implementation/member of).
fn subtype(sup: &Type, sub: &Type, related: &dyn Fn(&Name, &Name) -> bool) -> bool {
    match (sup, sub) {
        (Type::Named(a), Type::Named(b) | Type::NonNullNamed(b))
        | (Type::NonNullNamed(a), Type::NonNullNamed(b)) => a == b || related(a, b),
        (Type::List(a), Type::List(b) | Type::NonNullList(b))
        | (Type::NonNullList(a), Type::NonNullList(b)) => subtype(a, b, related),
        _ => false,
    }
}

fn mismatch_detail(
    groups: &[(String, Vec<String>)],
    first: &str,
    show: impl Fn(&str) -> String,
) -> String {
    let mut ordered: Vec<&(String, Vec<String>)> = groups.iter().filter(|g| g.0 == first).collect();
    ordered.extend(groups.iter().filter(|g| g.0 != first));
    let parts: Vec<String> = ordered
        .iter()
        .map(|(v, names)| format!("{} in {}", show(v), subgraph_names(names)))
        .collect();
    match parts.split_first() {
        Some((head, rest)) if !rest.is_empty() => format!("{head} but {}", rest.join(" and ")),
        Some((head, _)) => head.clone(),
        None => String::new(),
    }
}

fn group(items: impl IntoIterator<Item = (String, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (value, subgraph) in items {
        match out.iter_mut().find(|(v, _)| *v == value) {
            Some((_, names)) => names.push(subgraph),
            None => out.push((value, vec![subgraph])),
        }
    }
    out
}

fn external_fields(loaded: &[Subgraph], diags: &mut Diagnostics) {
    // Subtyping between named types, as the supergraph will have it.
    let mut relation: BTreeSet<(Name, Name)> = BTreeSet::new();
    for sg in loaded {
        for (name, ty) in &sg.schema.types {
            match ty {
                ExtendedType::Object(o) => {
                    for i in &o.implements_interfaces {
                        relation.insert((sg.merged_name(&i.name), sg.merged_name(name)));
                    }
                }
                ExtendedType::Interface(o) => {
                    for i in &o.implements_interfaces {
                        relation.insert((sg.merged_name(&i.name), sg.merged_name(name)));
                    }
                }
                ExtendedType::Union(u) => {
                    for m in &u.members {
                        relation.insert((sg.merged_name(name), sg.merged_name(&m.name)));
                    }
                }
                _ => {}
            }
        }
    }
    let related = |a: &Name, b: &Name| relation.contains(&(a.clone(), b.clone()));
    // (type, field) → declarations, in composition order.
    let mut fields: BTreeMap<(Name, Name), Vec<Source>> = BTreeMap::new();
    for sg in loaded {
        let fake = validate::fake_external_fields(sg);
        for (name, ty) in &sg.schema.types {
            let ExtendedType::Object(o) = ty else {
                continue;
            };
            if !sg.is_user_type(name, ty) {
                continue;
            }
            for (field_name, def) in &o.fields {
                let external = !sg.fed1 && validate::effectively_external(sg, &fake, name, ty, def);
                fields
                    .entry((sg.merged_name(name), field_name.clone()))
                    .or_default()
                    .push(Source {
                        subgraph: &sg.name,
                        def,
                        external,
                    });
            }
        }
    }
    for ((type_name, field_name), sources) in &fields {
        let resolving: Vec<&Source> = sources.iter().filter(|s| !s.external).collect();
        let externals: Vec<&Source> = sources.iter().filter(|s| s.external).collect();
        if resolving.is_empty() || externals.is_empty() {
            continue;
        }
        let coord = format!("{type_name}.{field_name}");
        // The merged type: the most general of the resolving ones (incompatible ones are
        // the merge's FIELD_TYPE_MISMATCH).
        let mut dest = resolving[0].def.ty.clone();
        let mut compatible = true;
        for s in &resolving[1..] {
            if subtype(&dest, &s.def.ty, &related) {
                continue;
            } else if subtype(&s.def.ty, &dest, &related) {
                dest = s.def.ty.clone();
            } else {
                compatible = false;
            }
        }
        let all_equal = resolving.iter().all(|s| s.def.ty == resolving[0].def.ty);
        if compatible
            && externals
                .iter()
                .any(|s| !(s.def.ty == dest || (!all_equal && subtype(&dest, &s.def.ty, &related))))
        {
            let groups = group(
                sources
                    .iter()
                    .map(|s| (s.def.ty.to_string(), s.subgraph.to_string())),
            );
            let bad: Vec<&str> = externals.iter().map(|s| s.subgraph).collect();
            diags.push(
                Diagnostic::error(
                    "EXTERNAL_TYPE_MISMATCH",
                    format!(
                        "Type of field \"{coord}\" is incompatible across subgraphs (where marked @external): it has {}",
                        mismatch_detail(&groups, &dest.to_string(), |t| format!("type \"{t}\""))
                    ),
                )
                .subgraphs(bad)
                .at(coord.clone()),
            );
        }
        // Arguments of the merged field: those of every resolving definition.
        let contextual = |s: &Source, a: &Name| {
            loaded
                .iter()
                .find(|sg| sg.name == s.subgraph)
                .zip(s.def.arguments.iter().find(|x| x.name == *a))
                .is_some_and(|(sg, x)| sg.has(&x.directives, "fromContext"))
        };
        for arg in &resolving[0].def.arguments {
            let a = &arg.name;
            if resolving.iter().any(|s| contextual(s, a)) {
                continue;
            }
            let defs: Vec<_> = resolving
                .iter()
                .filter_map(|s| s.def.arguments.iter().find(|x| x.name == *a))
                .collect();
            if defs.len() != resolving.len() {
                continue;
            }
            let acoord = format!("{coord}({a}:)");
            // Arguments merge to the most specific type.
            let mut arg_ty = defs[0].ty.as_ref().clone();
            for d in &defs[1..] {
                if subtype(d.ty.as_ref(), &arg_ty, &related) {
                    continue;
                } else if subtype(&arg_ty, d.ty.as_ref(), &related) {
                    arg_ty = d.ty.as_ref().clone();
                }
            }
            let defaults: BTreeSet<Option<String>> = defs
                .iter()
                .map(|d| d.default_value.as_ref().map(|v| v.to_string()))
                .collect();
            let with_value: Vec<&Option<String>> =
                defaults.iter().filter(|d| d.is_some()).collect();
            // Inconsistent defaults: none is kept; incompatible ones: the merge reports.
            let default = match (defaults.len(), with_value.as_slice()) {
                (1, _) => defaults.iter().next().cloned().flatten(),
                (_, [_]) => None,
                _ => continue,
            };
            let mut missing = Vec::new();
            let mut bad_type = false;
            let mut bad_default = false;
            for s in &externals {
                match s.def.arguments.iter().find(|x| x.name == *a) {
                    None => missing.push(s.subgraph.to_string()),
                    Some(x) => {
                        if !(x.ty.as_ref() == &arg_ty || subtype(x.ty.as_ref(), &arg_ty, &related))
                        {
                            bad_type = true;
                        }
                        if x.default_value.as_ref().map(|v| v.to_string()) != default {
                            bad_default = true;
                        }
                    }
                }
            }
            let declared: Vec<String> = sources
                .iter()
                .filter(|s| s.def.arguments.iter().any(|x| x.name == *a))
                .map(|s| s.subgraph.to_string())
                .collect();
            if !missing.is_empty() {
                diags.push(
                    Diagnostic::error(
                        "EXTERNAL_ARGUMENT_MISSING",
                        format!(
                            "Field \"{coord}\" is missing argument \"{acoord}\" in some subgraphs where it is marked @external: argument \"{acoord}\" is declared in {} but not in {} (where \"{coord}\" is @external).",
                            subgraph_names(&declared),
                            subgraph_names(&missing)
                        ),
                    )
                    .subgraphs(missing)
                    .at(acoord.clone()),
                );
            }
            let arg_sources = || {
                sources.iter().filter_map(|s| {
                    s.def
                        .arguments
                        .iter()
                        .find(|x| x.name == *a)
                        .map(|x| (x, s.subgraph.to_string()))
                })
            };
            if bad_type {
                let groups = group(arg_sources().map(|(x, n)| (x.ty.to_string(), n)));
                diags.push(
                    Diagnostic::error(
                        "EXTERNAL_ARGUMENT_TYPE_MISMATCH",
                        format!(
                            "Type of argument \"{acoord}\" is incompatible across subgraphs (where \"{coord}\" is marked @external): it has {}",
                            mismatch_detail(&groups, &arg_ty.to_string(), |t| format!("type \"{t}\""))
                        ),
                    )
                    .subgraphs(externals.iter().map(|s| s.subgraph))
                    .at(acoord.clone()),
                );
            }
            if bad_default {
                let groups = group(arg_sources().map(|(x, n)| {
                    (
                        x.default_value
                            .as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        n,
                    )
                }));
                diags.push(
                    Diagnostic::error(
                        "EXTERNAL_ARGUMENT_DEFAULT_MISMATCH",
                        format!(
                            "Argument \"{acoord}\" has incompatible defaults across subgraphs (where \"{coord}\" is marked @external): it has {}",
                            mismatch_detail(&groups, &default.clone().unwrap_or_default(), |d| {
                                if d.is_empty() {
                                    "no default value".to_string()
                                } else {
                                    format!("default value {d}")
                                }
                            })
                        ),
                    )
                    .subgraphs(externals.iter().map(|s| s.subgraph))
                    .at(acoord),
                );
            }
        }
    }
}
