//! Stage 2, per-subgraph federation rules: `@key`/`@requires`/`@provides` field sets
//! (parse, exist, no arguments in keys, no abstract types in keys, `@external` where
//! needed), `@external` usage, `@override` form, `@interfaceObject` form, keys on
//! interfaces repeated on implementations.

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

fn fields_of(ty: &ExtendedType) -> Option<&IndexMap<Name, Component<FieldDefinition>>> {
    match ty {
        ExtendedType::Object(o) => Some(&o.fields),
        ExtendedType::Interface(i) => Some(&i.fields),
        _ => None,
    }
}

pub(crate) fn is_external(sg: &Subgraph, ty: &ExtendedType, field: &FieldDefinition) -> bool {
    sg.has(&field.directives, "external") || sg.has(ty.directives(), "external")
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
            if let Some(src) = fields_arg(key)
                && let Ok(fields) = field_set_fields(sg, name, &src)
            {
                used.extend(fields.into_iter().map(|(p, f, _, _)| (p, f)));
            }
        }
        let Some(fields) = fields_of(ty) else {
            continue;
        };
        for field in fields.values() {
            for r in sg.all(&field.directives, "requires") {
                if let Some(src) = fields_arg(r)
                    && let Ok(fields) = field_set_fields(sg, name, &src)
                {
                    used.extend(fields.into_iter().map(|(p, f, _, _)| (p, f)));
                }
            }
            for p in sg.all(&field.directives, "provides") {
                let target = field.ty.inner_named_type().clone();
                if let Some(src) = fields_arg(p)
                    && let Ok(fields) = field_set_fields(sg, &target, &src)
                {
                    used.extend(fields.into_iter().map(|(p, f, _, _)| (p, f)));
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

pub(crate) fn subgraph(sg: &Subgraph, diags: &mut Diagnostics) {
    let name = sg.name.as_str();
    let used = used_by_field_sets(sg);
    let mut push = |code: &'static str, coordinate: String, message: String| {
        diags.push(
            Diagnostic::error(code, format!("[{name}] {message}"))
                .subgraph(name)
                .at(coordinate),
        );
    };
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) {
            continue;
        }
        let is_interface = matches!(ty, ExtendedType::Interface(_));
        let directives: &DirectiveList = ty.directives();
        // @key
        for key in sg.all(directives, "key") {
            let Some(src) = fields_arg(key) else { continue };
            let head = format!("On type \"{type_name}\", for @key(fields: \"{src}\")");
            match field_set_fields(sg, type_name, &src) {
                Err(e) => push(
                    "KEY_INVALID_FIELDS",
                    type_name.to_string(),
                    format!("{head}: {e}"),
                ),
                Ok(fields) => {
                    if src.contains('@') {
                        push(
                            "KEY_DIRECTIVE_IN_FIELDS_ARG",
                            type_name.to_string(),
                            format!(
                                "{head}: cannot have directive applications in the @key(fields:) argument"
                            ),
                        );
                    }
                    for (parent, field, def, _) in &fields {
                        if !def.arguments.is_empty() {
                            push(
                                "KEY_FIELDS_HAS_ARGS",
                                format!("{parent}.{field}"),
                                format!(
                                    "{head}: field {parent}.{field} cannot be included because it has arguments (fields with argument are not allowed in @key)"
                                ),
                            );
                        }
                        if let Some(t) = sg.schema.types.get(def.ty.inner_named_type())
                            && matches!(t, ExtendedType::Interface(_) | ExtendedType::Union(_))
                        {
                            let kind = if t.is_interface() {
                                "interface"
                            } else {
                                "union"
                            };
                            push(
                                "KEY_FIELDS_SELECT_INVALID_TYPE",
                                format!("{parent}.{field}"),
                                format!(
                                    "{head}: field \"{parent}.{field}\" is a {kind} type which is not allowed in @key"
                                ),
                            );
                        }
                    }
                }
            }
            if is_interface {
                // Every implementation in this subgraph must repeat the key.
                for (impl_name, impl_ty) in &sg.schema.types {
                    if let ExtendedType::Object(o) = impl_ty
                        && o.implements_interfaces.iter().any(|i| i.name == *type_name)
                        && !sg.all(&o.directives, "key").iter().any(|k| {
                            fields_arg(k).map(|s| normalize_ws(&s)) == Some(normalize_ws(&src))
                        })
                    {
                        push(
                            "INTERFACE_KEY_NOT_ON_IMPLEMENTATION",
                            impl_name.to_string(),
                            format!(
                                "Key @key(fields: \"{src}\") on interface type \"{type_name}\" is missing on implementation type \"{impl_name}\"."
                            ),
                        );
                    }
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
                        format!("{head}: {e}"),
                    ),
                    Ok(selected) => {
                        for (parent, f, _, top) in selected {
                            if !top || sg.fed1 {
                                continue;
                            }
                            let pty = &sg.schema.types[&parent];
                            let def = fields_of(pty).and_then(|fs| fs.get(&f));
                            if def.is_some_and(|d| !is_external(sg, pty, d)) {
                                push(
                                    "REQUIRES_FIELDS_MISSING_EXTERNAL",
                                    coord.clone(),
                                    format!(
                                        "{head}: field \"{parent}.{f}\" should not be part of a @requires since it is already provided by this subgraph (it is not marked @external)"
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            for p in sg.all(&field.directives, "provides") {
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
                        format!("{head}: {e}"),
                    ),
                    Ok(selected) => {
                        for (parent, f, _, top) in selected {
                            if !top {
                                continue;
                            }
                            let pty = &sg.schema.types[&parent];
                            let def = fields_of(pty).and_then(|fs| fs.get(&f));
                            if def.is_some_and(|d| !is_external(sg, pty, d)) && !sg.fed1 {
                                push(
                                    "PROVIDES_FIELDS_MISSING_EXTERNAL",
                                    coord.clone(),
                                    format!(
                                        "{head}: field \"{parent}.{f}\" should not be part of a @provides since it is already provided by this subgraph (it is not marked @external)"
                                    ),
                                );
                            }
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
}

pub(crate) fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
