//! Stage 1b, Federation 1 upgrade: a subgraph without a federation `@link` is rewritten
//! into the Federation 2 subgraph Apollo's schema upgrader would make of it, before the
//! per-subgraph rules run. In Apollo's order:
//!
//! 1. `fields:` arguments of `@key`/`@requires`/`@provides` given as an enum value or a
//!    list (`@key(fields: id)`, `@key(fields: ["id", "x"])`) become strings;
//! 2. `@external` on interface fields and on object types is removed (no-ops in Fed1);
//! 3. key fields of a type extension (`extend type` or `@extends`) lose `@external`;
//! 4. `@requires`/`@provides` keep only the fields that are truly `@external` (and are
//!    removed when none is left);
//! 5. a type that is an extension in a Fed1 subgraph needs a definition in some subgraph
//!    (`EXTENSION_WITH_NO_BASE`);
//! 6. `@key` on interfaces and `@requires`/`@provides` on interface fields are removed
//!    (Fed1 ignored them), and so is `@provides` on a field of non-composite type;
//! 7. `@external` fields used by no `@key`/`@requires`/`@provides` (nor to implement an
//!    interface) are removed, and a type left without fields with them
//!    (`TYPE_WITH_ONLY_UNUSED_EXTERNAL` when something still references it);
//! 8. `@tag` on an `@external` field is removed when a definition elsewhere carries it.
//!
//! Field sharing needs no rewrite: a Fed1 field is shareable (the upgrader adds
//! `@shareable` exactly where another subgraph resolves the field, which is the only place
//! it matters). A Fed1 subgraph also rules out `@interfaceObject` anywhere
//! (`INTERFACE_OBJECT_USAGE_ERROR`), since Fed1 `@key`s on interfaces mean nothing.

use super::subgraph::Subgraph;
use super::validate::{fields_of, used_by_field_sets};
use super::{Diagnostic, Diagnostics};
use apollo_compiler::ast::{self, Value};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::schema::{Component, Directive, ExtendedType, FieldDefinition};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use std::collections::HashSet;

type Fields = IndexMap<Name, Component<FieldDefinition>>;

fn fields_mut(ty: &mut ExtendedType) -> Option<&mut Fields> {
    match ty {
        ExtendedType::Object(o) => Some(&mut o.make_mut().fields),
        ExtendedType::Interface(i) => Some(&mut i.make_mut().fields),
        _ => None,
    }
}

fn drop_directive(list: &mut apollo_compiler::schema::DirectiveList, name: &str) -> bool {
    let before = list.0.len();
    list.0.retain(|d| d.name != name);
    before != list.0.len()
}

fn drop_ast_directive(list: &mut ast::DirectiveList, name: &str) -> bool {
    let before = list.0.len();
    list.0.retain(|d| d.name != name);
    before != list.0.len()
}

/// Whether the type is a Fed1 "extension": `@extends`, or every element of it comes from
/// an `extend type` (the subgraph has no definition of it).
fn is_extension(sg: &Subgraph, ty: &ExtendedType) -> bool {
    if sg.has(ty.directives(), "extends") {
        return true;
    }
    let mut components = ty
        .directives()
        .iter()
        .map(|d| d.origin.extension_id().is_some())
        .chain(
            fields_of(ty)
                .into_iter()
                .flat_map(|fs| fs.values().map(|f| f.origin.extension_id().is_some())),
        )
        .peekable();
    components.peek().is_some() && components.all(|ext| ext)
}

/// A field set value as a string: Fed1 accepted `fields: id` and `fields: ["id", "x"]`.
fn coerce_fields(value: &Value) -> Option<String> {
    match value {
        Value::String(_) => None,
        Value::Enum(e) => Some(e.to_string()),
        Value::List(items) => Some(
            items
                .iter()
                .filter_map(|v| match v.as_ref() {
                    Value::String(s) => Some(s.clone()),
                    Value::Enum(e) => Some(e.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn fields_string(d: &Directive) -> Option<String> {
    d.specified_argument_by_name("fields")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn set_fields(d: &mut Node<Directive>, fields: String) {
    let d = d.make_mut();
    for a in d.arguments.iter_mut() {
        if a.name == "fields" {
            a.make_mut().value = Node::new(Value::String(fields.clone()));
        }
    }
}

/// Keeps only the parts of a field set that select truly external fields (Apollo's
/// `removeNonExternalLeafFields`): an external field is kept with its whole selection,
/// a non-external one only for the external fields below it.
fn external_only(schema: &Schema, type_name: &Name, source: &str) -> Option<String> {
    let doc = ast::Document::parse(format!("{{ {source} }}"), "fields").ok()?;
    let set = doc.definitions.iter().find_map(|d| match d {
        ast::Definition::OperationDefinition(o) => Some(&o.selection_set),
        _ => None,
    })?;
    Some(filter_selections(schema, type_name, set))
}

fn print_selection_set(set: &[ast::Selection]) -> String {
    let parts: Vec<String> = set
        .iter()
        .map(|s| match s {
            ast::Selection::Field(f) => {
                if f.selection_set.is_empty() {
                    f.name.to_string()
                } else {
                    format!("{} {{ {} }}", f.name, print_selection_set(&f.selection_set))
                }
            }
            ast::Selection::InlineFragment(i) => format!(
                "...{} {{ {} }}",
                i.type_condition
                    .as_ref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default(),
                print_selection_set(&i.selection_set)
            ),
            ast::Selection::FragmentSpread(f) => format!("...{}", f.fragment_name),
        })
        .collect();
    parts.join(" ")
}

fn filter_selections(schema: &Schema, type_name: &Name, set: &[ast::Selection]) -> String {
    let mut kept = Vec::new();
    for sel in set {
        match sel {
            ast::Selection::Field(f) => {
                let def = schema
                    .types
                    .get(type_name)
                    .and_then(fields_of)
                    .and_then(|fs| fs.get(&f.name));
                let Some(def) = def else {
                    // Unknown field: leave it for validation to report.
                    kept.push(print_selection_set(std::slice::from_ref(sel)));
                    continue;
                };
                if def.directives.has("external") {
                    kept.push(print_selection_set(std::slice::from_ref(sel)));
                } else if !f.selection_set.is_empty() {
                    let inner =
                        filter_selections(schema, def.ty.inner_named_type(), &f.selection_set);
                    if !inner.is_empty() {
                        kept.push(format!("{} {{ {inner} }}", f.name));
                    }
                }
            }
            ast::Selection::InlineFragment(i) => {
                let target = i.type_condition.as_ref().unwrap_or(type_name);
                let inner = filter_selections(schema, target, &i.selection_set);
                if !inner.is_empty() {
                    kept.push(match &i.type_condition {
                        Some(t) => format!("... on {t} {{ {inner} }}"),
                        None => format!("... {{ {inner} }}"),
                    });
                }
            }
            ast::Selection::FragmentSpread(_) => {
                kept.push(print_selection_set(std::slice::from_ref(sel)))
            }
        }
    }
    kept.join(" ")
}

/// Top-level field names of a field set (for the key fields of extensions).
fn top_level_fields(source: &str) -> Vec<Name> {
    let Ok(doc) = ast::Document::parse(format!("{{ {source} }}"), "fields") else {
        return Vec::new();
    };
    doc.definitions
        .iter()
        .filter_map(|d| match d {
            ast::Definition::OperationDefinition(o) => Some(&o.selection_set),
            _ => None,
        })
        .flatten()
        .filter_map(|s| match s {
            ast::Selection::Field(f) => Some(f.name.clone()),
            _ => None,
        })
        .collect()
}

/// Upgrades every Fed1 subgraph in place (see the module documentation).
pub(crate) fn upgrade(subgraphs: &mut [Subgraph], diags: &mut Diagnostics) {
    let fed1: Vec<usize> = (0..subgraphs.len())
        .filter(|i| subgraphs[*i].fed1)
        .collect();
    if fed1.is_empty() {
        return;
    }
    // @interfaceObject needs every subgraph on Federation 2.
    for sg in subgraphs.iter().filter(|s| !s.fed1) {
        let uses = sg
            .schema
            .types
            .values()
            .any(|t| sg.has(t.directives(), "interfaceObject"));
        if uses {
            for other in subgraphs.iter().filter(|s| s.fed1) {
                diags.push(
                    Diagnostic::error(
                        "INTERFACE_OBJECT_USAGE_ERROR",
                        format!(
                            "The @interfaceObject directive can only be used if all subgraphs have federation 2 subgraph schema (schema with a `@link` to \"https://specs.apollo.dev/federation\" version 2.0 or newer): @interfaceObject is used in subgraph \"{}\" but subgraph \"{}\" is not a federation 2 subgraph schema.",
                            sg.name, other.name
                        ),
                    )
                    .subgraphs([sg.name.clone(), other.name.clone()]),
                );
            }
        }
    }
    // Types some subgraph defines (not only extends), in merged names.
    let mut defined: HashSet<Name> = HashSet::new();
    for sg in subgraphs.iter() {
        for (name, ty) in &sg.schema.types {
            if sg.is_user_type(name, ty) && !is_extension(sg, ty) {
                defined.insert(sg.merged_name(name));
            }
        }
    }
    for idx in fed1 {
        upgrade_one(subgraphs, idx, &defined, diags);
    }
}

fn upgrade_one(
    subgraphs: &mut [Subgraph],
    idx: usize,
    defined: &HashSet<Name>,
    diags: &mut Diagnostics,
) {
    let sg = &subgraphs[idx];
    let sg_name = sg.name.clone();
    let mut schema: Schema = sg.schema.clone().into_inner();
    let user_types: Vec<Name> = sg
        .schema
        .types
        .iter()
        .filter(|(n, t)| sg.is_user_type(n, t))
        .map(|(n, _)| n.clone())
        .collect();
    let extensions: HashSet<Name> = user_types
        .iter()
        .filter(|n| is_extension(sg, &sg.schema.types[*n]))
        .cloned()
        .collect();
    let roots: HashSet<Name> = sg.roots.keys().cloned().collect();

    // 5. Extensions need a base somewhere (root types are exempt: every subgraph has them).
    for name in &extensions {
        if !roots.contains(name) && !defined.contains(&sg.merged_name(name)) {
            diags.push(
                Diagnostic::error(
                    "EXTENSION_WITH_NO_BASE",
                    format!(
                        "[{sg_name}] Type \"{name}\" is an extension type, but there is no type definition for \"{name}\" in any subgraph."
                    ),
                )
                .subgraph(sg_name.clone())
                .at(name.to_string()),
            );
        }
    }

    for name in &user_types {
        let Some(ty) = schema.types.get_mut(name) else {
            continue;
        };
        let is_interface = matches!(ty, ExtendedType::Interface(_));
        // 1. Field set arguments as strings.
        let coerce = |list: &mut apollo_compiler::schema::DirectiveList| {
            for d in list.0.iter_mut() {
                if !matches!(d.name.as_str(), "key" | "requires" | "provides") {
                    continue;
                }
                if let Some(s) = d
                    .specified_argument_by_name("fields")
                    .and_then(|v| coerce_fields(v))
                {
                    set_fields(&mut d.node, s);
                }
            }
        };
        match ty {
            ExtendedType::Object(o) => coerce(&mut o.make_mut().directives),
            ExtendedType::Interface(i) => coerce(&mut i.make_mut().directives),
            _ => {}
        }
        if let Some(fields) = fields_mut(ty) {
            for f in fields.values_mut() {
                let f = f.make_mut();
                for d in f.directives.0.iter_mut() {
                    if !matches!(d.name.as_str(), "requires" | "provides") {
                        continue;
                    }
                    if let Some(s) = d
                        .specified_argument_by_name("fields")
                        .and_then(|v| coerce_fields(v))
                    {
                        set_fields(d, s);
                    }
                }
            }
        }
        // 2. @external on interface fields and on object types; 6. interface directives.
        match ty {
            ExtendedType::Object(o) => {
                drop_directive(&mut o.make_mut().directives, "external");
            }
            ExtendedType::Interface(i) => {
                drop_directive(&mut i.make_mut().directives, "key");
            }
            _ => {}
        }
        if is_interface && let Some(fields) = fields_mut(ty) {
            for f in fields.values_mut() {
                let f = f.make_mut();
                drop_ast_directive(&mut f.directives, "external");
                drop_ast_directive(&mut f.directives, "requires");
                drop_ast_directive(&mut f.directives, "provides");
            }
        }
        // 3. Key fields of extensions are not external.
        if extensions.contains(name) {
            let keys: Vec<String> = ty
                .directives()
                .get_all("key")
                .filter_map(|d| fields_string(d))
                .collect();
            let key_fields: HashSet<Name> = keys.iter().flat_map(|k| top_level_fields(k)).collect();
            if let Some(fields) = fields_mut(ty) {
                for (fname, f) in fields.iter_mut() {
                    if key_fields.contains(fname) {
                        drop_ast_directive(&mut f.make_mut().directives, "external");
                    }
                }
            }
        }
    }

    // 4. Inactive @requires/@provides fields; 6. @provides on non-composite fields.
    for name in &user_types {
        let Some(ExtendedType::Object(_)) = schema.types.get(name) else {
            continue;
        };
        let field_names: Vec<Name> = schema
            .types
            .get(name)
            .and_then(fields_of)
            .map(|fs| fs.keys().cloned().collect())
            .unwrap_or_default();
        for fname in field_names {
            let Some(def) = schema
                .types
                .get(name)
                .and_then(fields_of)
                .and_then(|fs| fs.get(&fname))
            else {
                continue;
            };
            let target = def.ty.inner_named_type().clone();
            let composite = matches!(
                schema.types.get(&target),
                Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
            );
            let mut rewrites: Vec<(&'static str, Option<String>)> = Vec::new();
            for (directive, parent) in [("requires", name.clone()), ("provides", target.clone())] {
                let Some(d) = def.directives.get(directive) else {
                    continue;
                };
                if directive == "provides" && !composite {
                    rewrites.push(("provides", None));
                    continue;
                }
                let Some(src) = d
                    .specified_argument_by_name("fields")
                    .and_then(|v| v.as_str())
                else {
                    continue;
                };
                match external_only(&schema, &parent, src) {
                    Some(kept) if kept.is_empty() => rewrites.push((directive, None)),
                    Some(kept) if kept != src.trim() => rewrites.push((directive, Some(kept))),
                    _ => {}
                }
            }
            if rewrites.is_empty() {
                continue;
            }
            if let Some(fields) = schema.types.get_mut(name).and_then(fields_mut)
                && let Some(f) = fields.get_mut(&fname)
            {
                let f = f.make_mut();
                for (directive, kept) in rewrites {
                    match kept {
                        None => {
                            drop_ast_directive(&mut f.directives, directive);
                        }
                        Some(kept) => {
                            for d in f.directives.0.iter_mut() {
                                if d.name == directive {
                                    set_fields(d, kept.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // 7. Unused @external fields.
    subgraphs[idx].schema = Valid::assume_valid(schema);
    let mut schema = {
        let probe = &subgraphs[idx];
        let used = used_by_field_sets(probe);
        let mut implemented: HashSet<(Name, Name)> = HashSet::new();
        for (name, ty) in &probe.schema.types {
            if let ExtendedType::Object(o) = ty {
                for i in &o.implements_interfaces {
                    if let Some(fs) = probe.schema.types.get(&i.name).and_then(fields_of) {
                        implemented.extend(fs.keys().map(|f| (name.clone(), f.clone())));
                    }
                }
            }
        }
        let mut schema = probe.schema.clone().into_inner();
        let mut emptied = Vec::new();
        for name in &user_types {
            let Some(fields) = schema.types.get_mut(name).and_then(fields_mut) else {
                continue;
            };
            let before = fields.len();
            fields.retain(|fname, f| {
                let key = (name.clone(), fname.clone());
                !f.directives.has("external") || used.contains(&key) || implemented.contains(&key)
            });
            if fields.is_empty() && before > 0 {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            let referenced = schema.types.values().any(|t| {
                fields_of(t).is_some_and(|fs| {
                    fs.values().any(|f| {
                        f.ty.inner_named_type() == &name
                            || f.arguments.iter().any(|a| a.ty.inner_named_type() == &name)
                    })
                }) || matches!(t, ExtendedType::Union(u) if u.members.iter().any(|m| m.name == name))
            });
            if referenced {
                diags.push(
                    Diagnostic::error(
                        "TYPE_WITH_ONLY_UNUSED_EXTERNAL",
                        format!(
                            "[{sg_name}] Type {name} contains only external fields and all those fields are all unused (they are not referenced by any @key, @provides or @requires, and do not implement an interface field). Please remove those fields, or the type itself."
                        ),
                    )
                    .subgraph(sg_name.clone())
                    .at(name.to_string()),
                );
            } else {
                schema.types.shift_remove(&name);
            }
        }
        schema
    };

    // 8. @tag on external fields that a definition elsewhere carries.
    let mut tags_elsewhere: HashSet<(Name, Name, String)> = HashSet::new();
    for (i, other) in subgraphs.iter().enumerate() {
        if i == idx {
            continue;
        }
        for (tname, ty) in &other.schema.types {
            let Some(fs) = fields_of(ty) else { continue };
            for (fname, f) in fs {
                if other.has(&f.directives, "external") {
                    continue;
                }
                for t in other.all(&f.directives, "tag") {
                    tags_elsewhere.insert((other.merged_name(tname), fname.clone(), t.to_string()));
                }
            }
        }
    }
    let merged: Vec<(Name, Name)> = user_types
        .iter()
        .map(|n| (n.clone(), subgraphs[idx].merged_name(n)))
        .collect();
    for (name, merged_name) in merged {
        let Some(fields) = schema.types.get_mut(&name).and_then(fields_mut) else {
            continue;
        };
        for (fname, f) in fields.iter_mut() {
            if !f.directives.has("external") || !f.directives.has("tag") {
                continue;
            }
            let f = f.make_mut();
            f.directives.0.retain(|d| {
                d.name != "tag"
                    || !tags_elsewhere.contains(&(
                        merged_name.clone(),
                        fname.clone(),
                        d.to_string(),
                    ))
            });
        }
    }

    subgraphs[idx].schema = Valid::assume_valid(schema);
}
