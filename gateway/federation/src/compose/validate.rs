//! Stage 2, per-subgraph federation rules: `@key`/`@requires`/`@provides` field sets
//! (parse and validate at every depth, no directive applications, no arguments in keys and
//! provides, no abstract types in keys, `@requires`/`@provides` leaves `@external` unless a
//! field on their path is, as Apollo's `validateFieldSetSelections`), `@external` usage,
//! `@override` form, `@interfaceObject` form, keys on interfaces repeated on
//! implementations; `@context`/`@fromContext` in [`super::context`]. Federation 1
//! subgraphs keep the `@key` checks only, as before.

use super::subgraph::Subgraph;
use super::{Diagnostic, Diagnostics};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::executable::{FieldSet, Selection, SelectionSet};
use apollo_compiler::schema::{Component, DirectiveList, ExtendedType, FieldDefinition};
use apollo_compiler::{Name, Node};
use std::collections::HashSet;

/// A field selected by a field set: parent type, field, definition, at top level.
pub(crate) type Selected = (Name, Name, Node<FieldDefinition>, bool);

/// `(type, field)` pairs.
pub(crate) type FieldRefs = HashSet<(Name, Name)>;

/// Fields a field set selects, with their parent type; `None` when it does not parse or
/// validate (the error message is returned instead).
pub(crate) fn field_set_fields(
    sg: &Subgraph,
    type_name: &Name,
    source: &str,
) -> Result<Vec<Selected>, String> {
    match FieldSet::parse_and_validate(&sg.schema, type_name.clone(), source, "fields") {
        Ok(fs) => {
            let mut out = Vec::new();
            walk(&fs.selection_set, 0, &mut out);
            Ok(out)
        }
        Err(e) => Err(e
            .errors
            .iter()
            .map(|d| d.error.to_string())
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// Fields a field set selects even when it does not validate (those that resolve), so
/// an invalid `fields` does not also make its `@external` fields "unused".
fn field_set_fields_lenient(sg: &Subgraph, type_name: &Name, source: &str) -> Vec<(Name, Name)> {
    let doc = match apollo_compiler::ast::Document::parse(format!("{{ {source} }}"), "fields") {
        Ok(doc) => doc,
        Err(e) => e.partial,
    };
    let mut out = Vec::new();
    for d in &doc.definitions {
        if let apollo_compiler::ast::Definition::OperationDefinition(o) = d {
            resolvable_fields(sg, type_name, &o.selection_set, &mut out);
        }
    }
    out
}

fn resolvable_fields(
    sg: &Subgraph,
    type_name: &Name,
    selections: &[apollo_compiler::ast::Selection],
    out: &mut Vec<(Name, Name)>,
) {
    use apollo_compiler::ast::Selection as S;
    for sel in selections {
        match sel {
            S::Field(f) => {
                if let Some(def) = sg
                    .schema
                    .types
                    .get(type_name)
                    .and_then(fields_of)
                    .and_then(|fs| fs.get(&f.name))
                {
                    out.push((type_name.clone(), f.name.clone()));
                    resolvable_fields(sg, def.ty.inner_named_type(), &f.selection_set, out);
                }
            }
            S::InlineFragment(i) => {
                let on = i.type_condition.as_ref().unwrap_or(type_name);
                resolvable_fields(sg, on, &i.selection_set, out);
            }
            S::FragmentSpread(_) => {}
        }
    }
}

/// Collects `(parent, field, definition, has_arguments_or_directives_at_depth0)`.
fn walk(set: &SelectionSet, depth: usize, out: &mut Vec<Selected>) {
    for sel in &set.selections {
        match sel {
            Selection::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                out.push((
                    set.ty.clone(),
                    f.name.clone(),
                    f.definition.clone(),
                    depth == 0,
                ));
                walk(&f.selection_set, depth + 1, out);
            }
            Selection::InlineFragment(i) => walk(&i.selection_set, depth, out),
            Selection::FragmentSpread(_) => {}
        }
    }
}

pub(crate) fn fields_of(ty: &ExtendedType) -> Option<&IndexMap<Name, Component<FieldDefinition>>> {
    match ty {
        ExtendedType::Object(o) => Some(&o.fields),
        ExtendedType::Interface(i) => Some(&i.fields),
        _ => None,
    }
}

pub(crate) fn is_external(sg: &Subgraph, ty: &ExtendedType, field: &FieldDefinition) -> bool {
    sg.has(&field.directives, "external") || sg.has(ty.directives(), "external")
}

const NOT_STRING: &str = "Invalid value for argument \"fields\": must be a string.";

/// A `fields:` argument that is not a string (Federation 1 values were coerced already).
fn fields_not_string(d: &apollo_compiler::ast::Directive) -> bool {
    d.specified_argument_by_name("fields")
        .is_some_and(|v| v.as_str().is_none() && !v.is_null())
}

fn resolvable(d: &apollo_compiler::ast::Directive) -> bool {
    d.specified_argument_by_name("resolvable")
        .and_then(|v| v.to_bool())
        .unwrap_or(true)
}

fn fields_arg(d: &apollo_compiler::ast::Directive) -> Option<String> {
    d.specified_argument_by_name("fields")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Fields used by this subgraph's keys, requires and provides (where `@external` is legit).
pub(crate) fn used_by_field_sets(sg: &Subgraph) -> FieldRefs {
    let mut used = FieldRefs::new();
    for (name, ty) in &sg.schema.types {
        if !sg.is_user_type(name, ty) {
            continue;
        }
        for key in sg.all(ty.directives(), "key") {
            if let Some(src) = fields_arg(key) {
                used.extend(field_set_fields_lenient(sg, name, &src));
            }
        }
        let Some(fields) = fields_of(ty) else {
            continue;
        };
        for field in fields.values() {
            for r in sg.all(&field.directives, "requires") {
                if let Some(src) = fields_arg(r) {
                    used.extend(field_set_fields_lenient(sg, name, &src));
                }
            }
            for p in sg.all(&field.directives, "provides") {
                let target = field.ty.inner_named_type().clone();
                if let Some(src) = fields_arg(p) {
                    used.extend(field_set_fields_lenient(sg, &target, &src));
                }
            }
        }
    }
    used
}

fn valid_label(label: &str) -> bool {
    if let Some(rest) = label
        .strip_prefix("percent(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return rest
            .parse::<f64>()
            .is_ok_and(|p| (0.0..=100.0).contains(&p))
            && rest.chars().all(|c| c.is_ascii_digit() || c == '.');
    }
    let mut chars = label.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
}

/// An error in subgraph `name`, Apollo-style (`[name] message`), at `coordinate`.
fn subgraph_error(
    name: &str,
    code: &'static str,
    coordinate: String,
    message: String,
) -> Diagnostic {
    Diagnostic::error(code, format!("[{name}] {message}"))
        .subgraph(name)
        .at(coordinate)
}

pub(crate) fn subgraph(sg: &Subgraph, diags: &mut Diagnostics) {
    let name = sg.name.as_str();
    let used = used_by_field_sets(sg);
    let mut push = |code: &'static str, coordinate: String, message: String| {
        diags.push(subgraph_error(name, code, coordinate, message));
    };
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) {
            continue;
        }
        let is_interface = matches!(ty, ExtendedType::Interface(_));
        let directives: &DirectiveList = ty.directives();
        // @key
        for key in sg.all(directives, "key") {
            if fields_not_string(key) {
                push(
                    "KEY_INVALID_FIELDS_TYPE",
                    type_name.to_string(),
                    format!("On type \"{type_name}\", for {}: {NOT_STRING}", **key),
                );
            }
            let Some(src) = fields_arg(key) else { continue };
            let head = format!("On type \"{type_name}\", for @key(fields: \"{src}\")");
            match field_set_fields(sg, type_name, &src) {
                Err(e) => push(
                    "KEY_INVALID_FIELDS",
                    type_name.to_string(),
                    format!(
                        "{head}: {}",
                        describe_invalid(sg, Kind::Key, type_name, &src).unwrap_or(e)
                    ),
                ),
                Ok(_) => {
                    for (code, at, msg) in check_field_set(sg, Kind::Key, type_name, &src) {
                        push(
                            code,
                            at.unwrap_or_else(|| type_name.to_string()),
                            format!("{head}: {msg}"),
                        );
                    }
                }
            }
            if is_interface {
                // Every implementation in this subgraph must repeat the key, resolvable
                // when the interface's is.
                let mut missing = false;
                let mut unresolvable = Vec::new();
                for (impl_name, impl_ty) in &sg.schema.types {
                    let ExtendedType::Object(o) = impl_ty else {
                        continue;
                    };
                    if !o.implements_interfaces.iter().any(|i| i.name == *type_name) {
                        continue;
                    }
                    let keys = sg.all(&o.directives, "key");
                    let matching = keys.iter().find(|k| {
                        fields_arg(k).map(|s| canonical_field_set(&s))
                            == Some(canonical_field_set(&src))
                    });
                    if let Some(k) = matching {
                        if resolvable(key) && !resolvable(k) {
                            unresolvable.push(impl_name.to_string());
                        }
                    } else {
                        missing = true;
                        push(
                            "INTERFACE_KEY_NOT_ON_IMPLEMENTATION",
                            impl_name.to_string(),
                            format!(
                                "Key @key(fields: \"{src}\") on interface type \"{type_name}\" is missing on implementation type \"{impl_name}\"."
                            ),
                        );
                    }
                }
                if !missing && !unresolvable.is_empty() {
                    push(
                        "INTERFACE_KEY_NOT_ON_IMPLEMENTATION",
                        type_name.to_string(),
                        format!(
                            "Key {} on interface type \"{type_name}\" should be resolvable on all implementation types, but is declared with argument \"@key(resolvable:)\" set to false in {}.",
                            **key,
                            super::across::human_list(&unresolvable, "type", "types")
                        ),
                    );
                }
            }
        }
        // @interfaceObject
        if sg.has(directives, "interfaceObject") && sg.all(directives, "key").is_empty() {
            push(
                "INTERFACE_OBJECT_USAGE_ERROR",
                type_name.to_string(),
                format!(
                    "The @interfaceObject directive can only be applied to entity types but type \"{type_name}\" has no @key in this subgraph."
                ),
            );
        }
        let Some(fields) = fields_of(ty) else {
            continue;
        };
        let implemented: HashSet<(Name, Name)> = match ty {
            ExtendedType::Object(o) => o
                .implements_interfaces
                .iter()
                .filter_map(|i| sg.schema.types.get(&i.name))
                .filter_map(fields_of)
                .flat_map(|fs| fs.keys().map(|f| (type_name.clone(), f.clone())))
                .collect(),
            _ => HashSet::new(),
        };
        for (field_name, field) in fields {
            let coord = format!("{type_name}.{field_name}");
            let external = is_external(sg, ty, field);
            if external && is_interface {
                push(
                    "EXTERNAL_ON_INTERFACE",
                    coord.clone(),
                    format!(
                        "Interface type field \"{coord}\" is marked @external but @external is not allowed on interface fields (it is nonsensical)."
                    ),
                );
            } else if external
                && !used.contains(&(type_name.clone(), field_name.clone()))
                && !implemented.contains(&(type_name.clone(), field_name.clone()))
                && sg.has(&field.directives, "external")
            {
                push(
                    "EXTERNAL_UNUSED",
                    coord.clone(),
                    format!(
                        "Field \"{coord}\" is marked @external but is not used in any federation directive (@key, @provides, @requires) or to satisfy an interface; the field declaration has no use and should be removed (or the field should not be @external)."
                    ),
                );
            }
            for r in sg.all(&field.directives, "requires") {
                if fields_not_string(r) {
                    push(
                        "REQUIRES_INVALID_FIELDS_TYPE",
                        coord.clone(),
                        format!("On field \"{coord}\", for {}: {NOT_STRING}", **r),
                    );
                }
                let Some(src) = fields_arg(r) else { continue };
                let head = format!("On field \"{coord}\", for @requires(fields: \"{src}\")");
                if is_interface {
                    push(
                        "REQUIRES_UNSUPPORTED_ON_INTERFACE",
                        coord.clone(),
                        format!(
                            "Cannot use @requires on field \"{coord}\" of parent type \"{type_name}\": @requires is not yet supported within interfaces"
                        ),
                    );
                    continue;
                }
                match field_set_fields(sg, type_name, &src) {
                    Err(e) => push(
                        "REQUIRES_INVALID_FIELDS",
                        coord.clone(),
                        format!(
                            "{head}: {}",
                            describe_invalid(sg, Kind::Requires, type_name, &src).unwrap_or(e)
                        ),
                    ),
                    Ok(_) => {
                        for (code, _, msg) in check_field_set(sg, Kind::Requires, type_name, &src) {
                            push(code, coord.clone(), format!("{head}: {msg}"));
                        }
                    }
                }
            }
            for p in sg.all(&field.directives, "provides") {
                if fields_not_string(p) {
                    push(
                        "PROVIDES_INVALID_FIELDS_TYPE",
                        coord.clone(),
                        format!("On field \"{coord}\", for {}: {NOT_STRING}", **p),
                    );
                }
                let Some(src) = fields_arg(p) else { continue };
                let head = format!("On field \"{coord}\", for @provides(fields: \"{src}\")");
                if is_interface {
                    push(
                        "PROVIDES_UNSUPPORTED_ON_INTERFACE",
                        coord.clone(),
                        format!(
                            "Cannot use @provides on field \"{coord}\" of parent type \"{type_name}\": @provides is not yet supported within interfaces"
                        ),
                    );
                    continue;
                }
                let target = field.ty.inner_named_type();
                if !sg
                    .schema
                    .types
                    .get(target)
                    .is_some_and(|t| t.is_object() || t.is_interface() || t.is_union())
                {
                    push(
                        "PROVIDES_ON_NON_OBJECT_FIELD",
                        coord.clone(),
                        format!(
                            "{head}: Invalid @provides directive on field \"{coord}\": field has type \"{}\" which is not a Composite Type",
                            field.ty
                        ),
                    );
                    continue;
                }
                match field_set_fields(sg, target, &src) {
                    Err(e) => push(
                        "PROVIDES_INVALID_FIELDS",
                        coord.clone(),
                        format!(
                            "{head}: {}",
                            describe_invalid(sg, Kind::Provides, target, &src).unwrap_or(e)
                        ),
                    ),
                    Ok(_) => {
                        for (code, _, msg) in check_field_set(sg, Kind::Provides, target, &src) {
                            push(code, coord.clone(), format!("{head}: {msg}"));
                        }
                    }
                }
            }
            for o in sg.all(&field.directives, "override") {
                let from = o
                    .specified_argument_by_name("from")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                if is_interface {
                    push(
                        "OVERRIDE_ON_INTERFACE",
                        coord.clone(),
                        format!(
                            "@override cannot be used on field \"{coord}\" on subgraph \"{name}\": @override is not supported on interface type fields."
                        ),
                    );
                }
                if from == name {
                    push(
                        "OVERRIDE_FROM_SELF_ERROR",
                        coord.clone(),
                        format!(
                            "Source and destination subgraphs \"{name}\" are the same for overridden field \"{coord}\""
                        ),
                    );
                }
                if external {
                    push(
                        "OVERRIDE_COLLISION_WITH_ANOTHER_DIRECTIVE",
                        coord.clone(),
                        format!(
                            "@override cannot be used on field \"{coord}\" on subgraph \"{name}\" since \"{coord}\" on \"{name}\" is marked with directive \"@external\""
                        ),
                    );
                }
                if let Some(label) = o
                    .specified_argument_by_name("label")
                    .and_then(|v| v.as_str())
                    && !valid_label(label)
                {
                    push(
                        "OVERRIDE_LABEL_INVALID",
                        coord.clone(),
                        format!(
                            "Invalid @override label \"{label}\" on field \"{coord}\" on subgraph \"{name}\": labels must start with a letter and after that may contain alphanumerics, underscores, minuses, colons, periods, or they may be of the form \"percent(x)\" where x is a float between 0-100 inclusive."
                        ),
                    );
                }
            }
        }
    }
    super::context::check(sg, &mut push);
}

pub(crate) fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A field set in a canonical form, so that two spellings of the same selection compare
/// equal whatever their order or whitespace (`"sku id"` = `"id  sku"`); an unparsable set
/// falls back to its whitespace-normalised text.
pub(crate) fn canonical_field_set(source: &str) -> String {
    fn print(set: &[apollo_compiler::ast::Selection]) -> String {
        use apollo_compiler::ast::Selection as S;
        let mut parts: Vec<String> = set
            .iter()
            .map(|s| match s {
                S::Field(f) => {
                    let alias = f
                        .alias
                        .as_ref()
                        .map(|a| format!("{a}:"))
                        .unwrap_or_default();
                    let args: Vec<String> = f
                        .arguments
                        .iter()
                        .map(|a| format!("{}:{}", a.name, a.value))
                        .collect();
                    let args = if args.is_empty() {
                        String::new()
                    } else {
                        format!("({})", args.join(","))
                    };
                    if f.selection_set.is_empty() {
                        format!("{alias}{}{args}", f.name)
                    } else {
                        format!("{alias}{}{args}{{{}}}", f.name, print(&f.selection_set))
                    }
                }
                S::InlineFragment(i) => format!(
                    "...{}{{{}}}",
                    i.type_condition
                        .as_ref()
                        .map(|t| format!("on {t}"))
                        .unwrap_or_default(),
                    print(&i.selection_set)
                ),
                S::FragmentSpread(f) => format!("...{}", f.fragment_name),
            })
            .collect();
        parts.sort();
        parts.dedup();
        parts.join(" ")
    }
    match apollo_compiler::ast::Document::parse(format!("{{ {source} }}"), "fields") {
        Ok(doc) => doc
            .definitions
            .iter()
            .find_map(|d| match d {
                apollo_compiler::ast::Definition::OperationDefinition(o) => {
                    Some(print(&o.selection_set))
                }
                _ => None,
            })
            .unwrap_or_else(|| normalize_ws(source)),
        Err(_) => normalize_ws(source),
    }
}

/// Which federation directive a field set belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Requires,
    Provides,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Requires => "requires",
            Kind::Provides => "provides",
        }
    }

    fn code(self, what: &str) -> &'static str {
        match (self, what) {
            (Kind::Key, "directive") => "KEY_DIRECTIVE_IN_FIELDS_ARG",
            (Kind::Requires, "directive") => "REQUIRES_DIRECTIVE_IN_FIELDS_ARG",
            (Kind::Provides, "directive") => "PROVIDES_DIRECTIVE_IN_FIELDS_ARG",
            (Kind::Key, "args") => "KEY_FIELDS_HAS_ARGS",
            (Kind::Requires, "args") => "REQUIRES_FIELDS_HAS_ARGS",
            (Kind::Provides, "args") => "PROVIDES_FIELDS_HAS_ARGS",
            (Kind::Requires, _) => "REQUIRES_FIELDS_MISSING_EXTERNAL",
            (Kind::Provides, _) => "PROVIDES_FIELDS_MISSING_EXTERNAL",
            (Kind::Key, _) => "KEY_FIELDS_SELECT_INVALID_TYPE",
        }
    }
}

/// A field-set problem: code, coordinate when it names a selected field, message.
type FieldSetProblem = (&'static str, Option<String>, String);

/// Apollo's `validateFieldSetSelections` over an already validated field set: no
/// directive applications anywhere; no fields with arguments in `@key`/`@provides`;
/// `@requires`/`@provides` leaves must be `@external` unless a parent on their path is
/// (or, for an interface field, one of its implementations is); `@key` selects no
/// interface- or union-typed field. Federation 1 subgraphs only get the `@key` checks.
fn check_field_set(
    sg: &Subgraph,
    kind: Kind,
    type_name: &Name,
    source: &str,
) -> Vec<FieldSetProblem> {
    let mut out = Vec::new();
    if let Ok(fs) = FieldSet::parse_and_validate(&sg.schema, type_name.clone(), source, "fields") {
        let fake = fake_externals(sg);
        check_selections(sg, kind, &fs.selection_set, false, &fake, &mut out);
    }
    out
}

fn check_selections(
    sg: &Subgraph,
    kind: Kind,
    set: &SelectionSet,
    external_in_parents: bool,
    fake: &FieldRefs,
    out: &mut Vec<FieldSetProblem>,
) {
    let strict = kind == Kind::Key || !sg.fed1;
    let directive = kind.name();
    for sel in &set.selections {
        let directives = match sel {
            Selection::Field(f) => &f.directives,
            Selection::InlineFragment(i) => &i.directives,
            Selection::FragmentSpread(s) => &s.directives,
        };
        if strict && !directives.is_empty() {
            let found = directives
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            out.push((
                kind.code("directive"),
                None,
                format!(
                    "cannot have directive applications in the @{directive}(fields:) argument but found {found}."
                ),
            ));
        }
        match sel {
            Selection::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                let parent = &set.ty;
                let coordinate = format!("{parent}.{}", f.name);
                let Some(pty) = sg.schema.types.get(parent) else {
                    continue;
                };
                let is_fake = fake.contains(&(parent.clone(), f.name.clone()));
                let external = is_external(sg, pty, &f.definition) && !is_fake;
                if kind != Kind::Requires && strict && !f.definition.arguments.is_empty() {
                    out.push((
                        kind.code("args"),
                        Some(coordinate.clone()),
                        format!(
                            "field {coordinate} cannot be included because it has arguments (fields with argument are not allowed in @{directive})"
                        ),
                    ));
                }
                if kind == Kind::Key
                    && let Some(t) = sg.schema.types.get(f.definition.ty.inner_named_type())
                    && (t.is_interface() || t.is_union())
                {
                    let what = if t.is_interface() {
                        "Interface"
                    } else {
                        "Union"
                    };
                    out.push((
                        kind.code("type"),
                        Some(coordinate.clone()),
                        format!(
                            "field \"{coordinate}\" is a {what} type which is not allowed in @key"
                        ),
                    ));
                }
                let leaf = f.selection_set.selections.is_empty();
                if kind != Kind::Key && !sg.fed1 && leaf && !external && !external_in_parents {
                    out.push((
                        kind.code("external"),
                        Some(coordinate.clone()),
                        if is_fake {
                            format!(
                                "field \"{coordinate}\" should not be part of a @{directive} since it is already \"effectively\" provided by this subgraph (while it is marked @external, it is a @key field of an extension type, which are not internally considered external for historical/backward compatibility reasons)"
                            )
                        } else {
                            format!(
                                "field \"{coordinate}\" should not be part of a @{directive} since it is already provided by this subgraph (it is not marked @external)"
                            )
                        },
                    ));
                }
                if !leaf {
                    let below = external_in_parents
                        || external
                        || (pty.is_interface() && external_in_implementation(sg, parent, &f.name));
                    check_selections(sg, kind, &f.selection_set, below, fake, out);
                }
            }
            Selection::InlineFragment(i) => {
                check_selections(sg, kind, &i.selection_set, external_in_parents, fake, out)
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// Apollo's "fake" external fields: `@external` fields selected by a `@key` of a type
/// extension (`extend type` or `@extends`). For historical reasons they are not
/// considered external, so a `@requires`/`@provides` may not select them as if they were.
pub(crate) fn fake_externals(sg: &Subgraph) -> FieldRefs {
    let mut out = FieldRefs::new();
    let Some(key) = sg.local("key") else {
        return out;
    };
    if sg.fed1 {
        return out;
    }
    for (name, ty) in &sg.schema.types {
        if !sg.is_user_type(name, ty) {
            continue;
        }
        let extends = sg.has(ty.directives(), "extends");
        for k in ty.directives().get_all(key) {
            if !(extends || k.origin.extension_id().is_some()) {
                continue;
            }
            let Some(src) = fields_arg(&k.node) else {
                continue;
            };
            for (parent, field) in field_set_fields_lenient(sg, name, &src) {
                let direct = sg
                    .schema
                    .types
                    .get(&parent)
                    .and_then(fields_of)
                    .and_then(|fs| fs.get(&field))
                    .is_some_and(|d| sg.has(&d.directives, "external"));
                if direct {
                    out.insert((parent, field));
                }
            }
        }
    }
    out
}

/// Whether some object implementing `interface` has its field `field` `@external`.
fn external_in_implementation(sg: &Subgraph, interface: &Name, field: &Name) -> bool {
    sg.schema.types.values().any(|t| {
        if let ExtendedType::Object(o) = t
            && o.implements_interfaces.iter().any(|i| i.name == *interface)
            && let Some(def) = o.fields.get(field)
        {
            is_external(sg, t, def)
        } else {
            false
        }
    })
}

/// Apollo's wording for a field set that does not validate, when the first problem is
/// one it words itself: an unknown field, a composite field without a selection, a leaf
/// field with one. `None` for anything else (syntax errors, bad arguments, …).
fn describe_invalid(sg: &Subgraph, kind: Kind, type_name: &Name, source: &str) -> Option<String> {
    let doc = apollo_compiler::ast::Document::parse(format!("{{ {source} }}"), "fields").ok()?;
    let selections = doc.definitions.iter().find_map(|d| match d {
        apollo_compiler::ast::Definition::OperationDefinition(o) => Some(&o.selection_set),
        _ => None,
    })?;
    describe_selections(sg, kind, type_name, selections)
}

fn describe_selections(
    sg: &Subgraph,
    kind: Kind,
    type_name: &Name,
    selections: &[apollo_compiler::ast::Selection],
) -> Option<String> {
    use apollo_compiler::ast::Selection as S;
    let ty = sg.schema.types.get(type_name)?;
    for sel in selections {
        match sel {
            S::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                let Some(def) = fields_of(ty).and_then(|fs| fs.get(&f.name)) else {
                    let hint = if kind == Kind::Key {
                        "the field should either be added to this subgraph or, if it should not be resolved by this subgraph, you need to add it to this subgraph with @external"
                    } else {
                        "if the field is defined in another subgraph, you need to add it to this subgraph with @external"
                    };
                    return Some(format!(
                        "Cannot query field \"{}\" on type \"{type_name}\" ({hint}).",
                        f.name
                    ));
                };
                let child = def.ty.inner_named_type();
                let composite = sg
                    .schema
                    .types
                    .get(child)
                    .is_some_and(|t| t.is_object() || t.is_interface() || t.is_union());
                if composite && f.selection_set.is_empty() {
                    return Some(format!(
                        "Invalid empty selection set for field \"{type_name}.{}\" of non-leaf type {}",
                        f.name, def.ty
                    ));
                }
                if !composite && !f.selection_set.is_empty() {
                    return Some(format!(
                        "Field \"{}\" must not have a selection since type \"{}\" has no subfields.",
                        f.name, def.ty
                    ));
                }
                if let Some(m) = describe_selections(sg, kind, child, &f.selection_set) {
                    return Some(m);
                }
            }
            S::InlineFragment(i) => {
                let on = i.type_condition.as_ref().unwrap_or(type_name);
                if let Some(m) = describe_selections(sg, kind, on, &i.selection_set) {
                    return Some(m);
                }
            }
            S::FragmentSpread(_) => {}
        }
    }
    None
}

/// Apollo's "fake" external fields of a subgraph (see [`fake_externals`]), for the
/// cross-subgraph `@external` checks.
pub(crate) fn fake_external_fields(sg: &Subgraph) -> FieldRefs {
    fake_externals(sg)
}

/// Whether a field is `@external` the way Apollo's merge sees it: marked (or its type
/// is), and not a "fake" external key field of a type extension.
pub(crate) fn effectively_external(
    sg: &Subgraph,
    fake: &FieldRefs,
    type_name: &Name,
    ty: &ExtendedType,
    field: &FieldDefinition,
) -> bool {
    is_external(sg, ty, field) && !fake.contains(&(type_name.clone(), field.name.clone()))
}

fn is_list(ty: &apollo_compiler::ast::Type) -> bool {
    matches!(
        ty,
        apollo_compiler::ast::Type::List(_) | apollo_compiler::ast::Type::NonNullList(_)
    )
}

fn strings_arg(d: &apollo_compiler::ast::Directive, name: &str) -> Option<Vec<String>> {
    let v = d.specified_argument_by_name(name)?;
    match v.as_ref() {
        apollo_compiler::ast::Value::List(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
        ),
        apollo_compiler::ast::Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Cost spec rules (Apollo's `validate_cost_directives` / `validate_list_size_directives`):
/// no `@cost` on interface fields (COST_APPLIED_TO_INTERFACE_FIELD); `@listSize` on a
/// list field unless it uses `sizedFields` (LIST_SIZE_APPLIED_TO_NON_LIST), a
/// non-negative `assumedSize` (LIST_SIZE_INVALID_ASSUMED_SIZE), `slicingArguments`
/// naming `Int`/`Int!` arguments of the field (LIST_SIZE_INVALID_SLICING_ARGUMENT),
/// `sizedFields` naming list fields of the composite returned type
/// (LIST_SIZE_INVALID_SIZED_FIELD).
pub(crate) fn cost_spec(sg: &Subgraph, diags: &mut Diagnostics) {
    if sg.fed1 {
        return;
    }
    let name = sg.name.as_str();
    let mut push = |code: &'static str, coordinate: String, message: String| {
        diags.push(subgraph_error(name, code, coordinate, message));
    };
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) {
            continue;
        }
        let Some(fields) = fields_of(ty) else {
            continue;
        };
        for (field_name, field) in fields {
            let coord = format!("{type_name}.{field_name}");
            if ty.is_interface() && sg.has(&field.directives, "cost") {
                push(
                    "COST_APPLIED_TO_INTERFACE_FIELD",
                    coord.clone(),
                    format!("@cost cannot be applied to interface \"{coord}\""),
                );
            }
            for ls in sg.all(&field.directives, "listSize") {
                let sized = strings_arg(ls, "sizedFields").unwrap_or_default();
                if sized.is_empty() && !is_list(&field.ty) {
                    push(
                        "LIST_SIZE_APPLIED_TO_NON_LIST",
                        coord.clone(),
                        format!("\"{coord}\" is not a list"),
                    );
                }
                if let Some(apollo_compiler::ast::Value::Int(i)) = ls
                    .specified_argument_by_name("assumedSize")
                    .map(|v| v.as_ref())
                    && i.try_to_i32().is_ok_and(|n| n < 0)
                {
                    push(
                        "LIST_SIZE_INVALID_ASSUMED_SIZE",
                        coord.clone(),
                        format!("Assumed size of \"{coord}\" cannot be negative"),
                    );
                }
                for arg in strings_arg(ls, "slicingArguments").unwrap_or_default() {
                    match field.arguments.iter().find(|a| a.name == arg.as_str()) {
                        None => push(
                            "LIST_SIZE_INVALID_SLICING_ARGUMENT",
                            coord.clone(),
                            format!("Slicing argument \"{arg}\" is not an argument of \"{coord}\""),
                        ),
                        Some(a) if a.ty.is_list() || a.ty.inner_named_type().as_str() != "Int" => {
                            push(
                                "LIST_SIZE_INVALID_SLICING_ARGUMENT",
                                coord.clone(),
                                format!(
                                    "Slicing argument \"{arg}\" of \"{coord}\" must be an Int or Int!"
                                ),
                            )
                        }
                        Some(_) => {}
                    }
                }
                if sized.is_empty() {
                    continue;
                }
                let target = field.ty.inner_named_type();
                let Some(target_fields) = sg.schema.types.get(target).and_then(fields_of) else {
                    push(
                        "LIST_SIZE_INVALID_SIZED_FIELD",
                        coord.clone(),
                        format!(
                            "Sized fields cannot be used because \"{target}\" is not a composite type"
                        ),
                    );
                    continue;
                };
                for s in &sized {
                    match target_fields.get(s.as_str()) {
                        None => push(
                            "LIST_SIZE_INVALID_SIZED_FIELD",
                            coord.clone(),
                            format!("Sized field \"{s}\" is not a field on type \"{target}\""),
                        ),
                        Some(f) if !is_list(&f.ty) => push(
                            "LIST_SIZE_INVALID_SIZED_FIELD",
                            coord.clone(),
                            format!("Sized field \"{target}.{s}\" is not a list"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

/// `@shareable` usage (Apollo's `validate_shareable_directives`, INVALID_SHAREABLE_USAGE):
/// not on interface fields, not repeated on one field, not repeated on one type
/// definition or extension; `@external` collisions: `@provides` on an `@external` field
/// (EXTERNAL_COLLISION_WITH_ANOTHER_DIRECTIVE), `@tag`/`@inaccessible` on an `@external`
/// field (MERGED_DIRECTIVE_APPLICATION_ON_EXTERNAL).
pub(crate) fn shareable_and_external(sg: &Subgraph, diags: &mut Diagnostics) {
    if sg.fed1 {
        return;
    }
    let name = sg.name.as_str();
    let fake = fake_externals(sg);
    let mut push = |code: &'static str, coordinate: String, message: String| {
        diags.push(subgraph_error(name, code, coordinate, message));
    };
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) {
            continue;
        }
        if let Some(local) = sg.local("shareable") {
            let mut per_declaration: Vec<(Option<apollo_compiler::schema::ExtensionId>, usize)> =
                Vec::new();
            for d in ty.directives().get_all(local) {
                let ext = d.origin.extension_id().cloned();
                match per_declaration.iter_mut().find(|(k, _)| *k == ext) {
                    Some((_, n)) => *n += 1,
                    None => per_declaration.push((ext, 1)),
                }
            }
            if per_declaration.iter().any(|(_, n)| *n > 1) {
                push(
                    "INVALID_SHAREABLE_USAGE",
                    type_name.to_string(),
                    format!(
                        "Invalid duplicate application of @shareable on the same type declaration of \"{type_name}\": @shareable is only repeatable on types so it can be used simultaneously on a type definition and its extensions, but it should not be duplicated on the same definition/extension declaration"
                    ),
                );
            }
        }
        let Some(fields) = fields_of(ty) else {
            continue;
        };
        for (field_name, field) in fields {
            let coord = format!("{type_name}.{field_name}");
            let shareable = sg.all(&field.directives, "shareable").len();
            if ty.is_interface() && shareable > 0 {
                push(
                    "INVALID_SHAREABLE_USAGE",
                    coord.clone(),
                    format!(
                        "Invalid use of @shareable on field \"{coord}\": only object type fields can be marked with @shareable"
                    ),
                );
            } else if shareable > 1 {
                push(
                    "INVALID_SHAREABLE_USAGE",
                    coord.clone(),
                    format!(
                        "Invalid duplicate application of @shareable on field \"{coord}\": @shareable is only repeatable on types so it can be used simultaneously on a type definition and its extensions, but it should not be duplicated on the same definition/extension declaration"
                    ),
                );
            }
            if !ty.is_object() || !effectively_external(sg, &fake, type_name, ty, field) {
                continue;
            }
            if sg.has(&field.directives, "provides") {
                push(
                    "EXTERNAL_COLLISION_WITH_ANOTHER_DIRECTIVE",
                    coord.clone(),
                    format!("Cannot have both @provides and @external on field \"{coord}\""),
                );
            }
            for canonical in ["tag", "inaccessible"] {
                for d in sg.all(&field.directives, canonical) {
                    push(
                        "MERGED_DIRECTIVE_APPLICATION_ON_EXTERNAL",
                        coord.clone(),
                        format!(
                            "Cannot apply merged directive {} to external field \"{coord}\"",
                            d.to_string().trim()
                        ),
                    );
                }
            }
        }
    }
}

/// Access control on interfaces (Apollo's `validate_no_access_control_on_interfaces`,
/// AUTH_REQUIREMENTS_APPLIED_ON_INTERFACE): `@authenticated`, `@requiresScopes` and
/// `@policy` may not be applied on interfaces, interface fields or `@interfaceObject`
/// types (their requirements belong on the implementations).
pub(crate) fn access_control_on_interfaces(sg: &Subgraph, diags: &mut Diagnostics) {
    if sg.fed1 {
        return;
    }
    let name = sg.name.as_str();
    for canonical in ["authenticated", "requiresScopes", "policy"] {
        let Some(local) = sg.local(canonical) else {
            continue;
        };
        let mut push = |coordinate: String, what: String| {
            diags.push(
                Diagnostic::error(
                    "AUTH_REQUIREMENTS_APPLIED_ON_INTERFACE",
                    format!(
                        "[{name}] Invalid use of @{local} on {what}: @{local} cannot be applied on interfaces, interface fields and interface objects"
                    ),
                )
                .subgraph(name)
                .at(coordinate),
            );
        };
        for (type_name, ty) in &sg.schema.types {
            if !sg.is_user_type(type_name, ty) {
                continue;
            }
            let on_type = sg.has(ty.directives(), canonical);
            match ty {
                ExtendedType::Interface(i) => {
                    if on_type {
                        push(type_name.to_string(), format!("interface \"{type_name}\""));
                    }
                    for (field_name, field) in &i.fields {
                        if sg.has(&field.directives, canonical) {
                            let coord = format!("{type_name}.{field_name}");
                            push(coord.clone(), format!("field \"{coord}\""));
                        }
                    }
                }
                ExtendedType::Object(_)
                    if on_type && sg.has(ty.directives(), "interfaceObject") =>
                {
                    push(
                        type_name.to_string(),
                        format!("interface object \"{type_name}\""),
                    );
                }
                _ => {}
            }
        }
    }
}
