//! The comparison itself: one pass over the types of both schemas.
//!
//! Type changes follow variance: an output position may become more specific (nullable →
//! non-null is safe, the reverse breaking); an input position (argument, input field) may
//! become less specific (non-null → nullable is safe, the reverse breaking).

use super::{Change, ChangeKind};
use apollo_compiler::ast::{InputValueDefinition, Type};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::schema::{Component, ExtendedType, FieldDefinition};
use apollo_compiler::{Name, Node, Schema};

use ChangeKind::{Breaking, Dangerous, Safe};

struct Out(Vec<Change>);

impl Out {
    fn push(
        &mut self,
        kind: ChangeKind,
        code: &'static str,
        coordinate: String,
        touches: String,
        message: String,
    ) {
        self.0.push(Change {
            kind,
            code,
            coordinate,
            message,
            operations: Vec::new(),
            touches,
        });
    }
}

/// `a` is at least as specific as `b` (same named type, more non-null wrappers).
fn is_subtype(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Named(x), Type::Named(y)) => x == y,
        (Type::NonNullNamed(x), Type::NonNullNamed(y) | Type::Named(y)) => x == y,
        (Type::List(x), Type::List(y)) => is_subtype(x, y),
        (Type::NonNullList(x), Type::NonNullList(y) | Type::List(y)) => is_subtype(x, y),
        _ => false,
    }
}

fn kind_name(ty: &ExtendedType) -> &'static str {
    match ty {
        ExtendedType::Scalar(_) => "scalar",
        ExtendedType::Object(_) => "object type",
        ExtendedType::Interface(_) => "interface",
        ExtendedType::Union(_) => "union",
        ExtendedType::Enum(_) => "enum",
        ExtendedType::InputObject(_) => "input object",
    }
}

fn deprecation(d: &apollo_compiler::ast::DirectiveList) -> Option<String> {
    d.get("deprecated").map(|d| {
        d.specified_argument_by_name("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("No longer supported")
            .to_string()
    })
}

pub(crate) fn compare(old: &Schema, new: &Schema) -> Vec<Change> {
    let mut out = Out(Vec::new());
    // Root types.
    for (root, o, n) in [
        (
            "query",
            &old.schema_definition.query,
            &new.schema_definition.query,
        ),
        (
            "mutation",
            &old.schema_definition.mutation,
            &new.schema_definition.mutation,
        ),
        (
            "subscription",
            &old.schema_definition.subscription,
            &new.schema_definition.subscription,
        ),
    ] {
        let o = o.as_ref().map(|c| c.name.clone());
        let n = n.as_ref().map(|c| c.name.clone());
        match (&o, &n) {
            (Some(o), Some(n)) if o != n => out.push(
                Breaking,
                "ROOT_TYPE_CHANGED",
                root.into(),
                o.to_string(),
                format!("The {root} root type changed from \"{o}\" to \"{n}\""),
            ),
            (Some(o), None) => out.push(
                Breaking,
                "ROOT_TYPE_REMOVED",
                root.into(),
                o.to_string(),
                format!("The {root} root type \"{o}\" was removed"),
            ),
            (None, Some(n)) => out.push(
                Safe,
                "ROOT_TYPE_ADDED",
                root.into(),
                n.to_string(),
                format!("The {root} root type \"{n}\" was added"),
            ),
            _ => {}
        }
    }
    for (name, o) in old.types.iter().filter(|(_, t)| !t.is_built_in()) {
        let Some(n) = new.types.get(name) else {
            out.push(
                Breaking,
                "TYPE_REMOVED",
                name.to_string(),
                name.to_string(),
                format!("Type \"{name}\" ({}) was removed", kind_name(o)),
            );
            continue;
        };
        if std::mem::discriminant(o) != std::mem::discriminant(n) {
            out.push(
                Breaking,
                "TYPE_CHANGED_KIND",
                name.to_string(),
                name.to_string(),
                format!(
                    "Type \"{name}\" changed from {} to {}",
                    kind_name(o),
                    kind_name(n)
                ),
            );
            continue;
        }
        if o.description() != n.description() {
            out.push(
                Safe,
                "TYPE_DESCRIPTION_CHANGED",
                name.to_string(),
                name.to_string(),
                format!("Description of type \"{name}\" changed"),
            );
        }
        match (o, n) {
            (ExtendedType::Object(a), ExtendedType::Object(b)) => {
                interfaces(
                    &mut out,
                    name,
                    &a.implements_interfaces,
                    &b.implements_interfaces,
                );
                fields(&mut out, name, &a.fields, &b.fields);
            }
            (ExtendedType::Interface(a), ExtendedType::Interface(b)) => {
                interfaces(
                    &mut out,
                    name,
                    &a.implements_interfaces,
                    &b.implements_interfaces,
                );
                fields(&mut out, name, &a.fields, &b.fields);
            }
            (ExtendedType::Union(a), ExtendedType::Union(b)) => {
                for m in a.members.iter().filter(|m| !b.members.contains(*m)) {
                    out.push(
                        Breaking,
                        "UNION_MEMBER_REMOVED",
                        name.to_string(),
                        name.to_string(),
                        format!("Type \"{}\" was removed from union \"{name}\"", m.name),
                    );
                }
                for m in b.members.iter().filter(|m| !a.members.contains(*m)) {
                    out.push(Dangerous, "UNION_MEMBER_ADDED", name.to_string(), name.to_string(), format!("Type \"{}\" was added to union \"{name}\": clients switching on __typename may not handle it", m.name));
                }
            }
            (ExtendedType::Enum(a), ExtendedType::Enum(b)) => {
                for (v, def) in &a.values {
                    let coord = format!("{name}.{v}");
                    match b.values.get(v) {
                        None => out.push(
                            Breaking,
                            "ENUM_VALUE_REMOVED",
                            coord.clone(),
                            name.to_string(),
                            format!("Enum value \"{coord}\" was removed"),
                        ),
                        Some(nd) => deprecations(
                            &mut out,
                            &coord,
                            name,
                            &def.directives,
                            &nd.directives,
                            "ENUM_VALUE",
                        ),
                    }
                }
                for v in b.values.keys().filter(|v| !a.values.contains_key(*v)) {
                    let coord = format!("{name}.{v}");
                    out.push(
                        Dangerous,
                        "ENUM_VALUE_ADDED",
                        coord.clone(),
                        name.to_string(),
                        format!("Enum value \"{coord}\" was added: clients may not handle it"),
                    );
                }
            }
            (ExtendedType::InputObject(a), ExtendedType::InputObject(b)) => {
                for (f, def) in &a.fields {
                    let coord = format!("{name}.{f}");
                    match b.fields.get(f) {
                        None => out.push(
                            Breaking,
                            "INPUT_FIELD_REMOVED",
                            coord.clone(),
                            coord.clone(),
                            format!("Input field \"{coord}\" was removed"),
                        ),
                        Some(nd) => input_value(&mut out, &coord, def, nd, "INPUT_FIELD"),
                    }
                }
                for (f, def) in b.fields.iter().filter(|(f, _)| !a.fields.contains_key(*f)) {
                    let coord = format!("{name}.{f}");
                    if def.is_required() {
                        out.push(Breaking, "REQUIRED_INPUT_FIELD_ADDED", coord.clone(), name.to_string(), format!("Required input field \"{coord}\" was added: existing values of \"{name}\" lack it"));
                    } else {
                        out.push(
                            Safe,
                            "OPTIONAL_INPUT_FIELD_ADDED",
                            coord.clone(),
                            name.to_string(),
                            format!("Optional input field \"{coord}\" was added"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    for (name, n) in new.types.iter().filter(|(_, t)| !t.is_built_in()) {
        if !old.types.contains_key(name) {
            out.push(
                Safe,
                "TYPE_ADDED",
                name.to_string(),
                name.to_string(),
                format!("Type \"{name}\" ({}) was added", kind_name(n)),
            );
        }
    }
    // Directives.
    for (name, d) in old
        .directive_definitions
        .iter()
        .filter(|(_, d)| !d.is_built_in())
    {
        let coord = format!("@{name}");
        match new.directive_definitions.get(name) {
            None => out.push(
                Breaking,
                "DIRECTIVE_REMOVED",
                coord.clone(),
                coord.clone(),
                format!("Directive \"{coord}\" was removed"),
            ),
            Some(nd) => {
                for l in d.locations.iter().filter(|l| !nd.locations.contains(l)) {
                    out.push(
                        Breaking,
                        "DIRECTIVE_LOCATION_REMOVED",
                        coord.clone(),
                        coord.clone(),
                        format!("Location {l} was removed from directive \"{coord}\""),
                    );
                }
                arguments(&mut out, &coord, &d.arguments, &nd.arguments);
            }
        }
    }
    for name in new.directive_definitions.keys() {
        if !old.directive_definitions.contains_key(name) {
            let coord = format!("@{name}");
            out.push(
                Safe,
                "DIRECTIVE_ADDED",
                coord.clone(),
                coord.clone(),
                format!("Directive \"{coord}\" was added"),
            );
        }
    }
    let mut changes = out.0;
    changes.sort_by(|a, b| (a.kind, &a.coordinate, a.code).cmp(&(b.kind, &b.coordinate, b.code)));
    changes
}

fn interfaces(
    out: &mut Out,
    name: &Name,
    old: &apollo_compiler::collections::IndexSet<apollo_compiler::schema::ComponentName>,
    new: &apollo_compiler::collections::IndexSet<apollo_compiler::schema::ComponentName>,
) {
    for i in old.iter().filter(|i| !new.contains(*i)) {
        out.push(
            Breaking,
            "INTERFACE_IMPLEMENTATION_REMOVED",
            name.to_string(),
            i.name.to_string(),
            format!("\"{name}\" no longer implements interface \"{}\"", i.name),
        );
    }
    for i in new.iter().filter(|i| !old.contains(*i)) {
        out.push(Dangerous, "INTERFACE_IMPLEMENTATION_ADDED", name.to_string(), i.name.to_string(), format!("\"{name}\" now implements interface \"{}\": clients switching on __typename may not handle it", i.name));
    }
}

fn deprecations(
    out: &mut Out,
    coord: &str,
    touches: &str,
    old: &apollo_compiler::ast::DirectiveList,
    new: &apollo_compiler::ast::DirectiveList,
    what: &'static str,
) {
    let (code_dep, code_undep, code_reason) = match what {
        "FIELD" => (
            "FIELD_DEPRECATED",
            "FIELD_DEPRECATION_REMOVED",
            "FIELD_DEPRECATION_REASON_CHANGED",
        ),
        _ => (
            "ENUM_VALUE_DEPRECATED",
            "ENUM_VALUE_DEPRECATION_REMOVED",
            "ENUM_VALUE_DEPRECATION_REASON_CHANGED",
        ),
    };
    match (deprecation(old), deprecation(new)) {
        (None, Some(r)) => out.push(
            Safe,
            code_dep,
            coord.into(),
            touches.into(),
            format!("\"{coord}\" was deprecated: {r}"),
        ),
        (Some(_), None) => out.push(
            Safe,
            code_undep,
            coord.into(),
            touches.into(),
            format!("\"{coord}\" is no longer deprecated"),
        ),
        (Some(a), Some(b)) if a != b => out.push(
            Safe,
            code_reason,
            coord.into(),
            touches.into(),
            format!("Deprecation reason of \"{coord}\" changed to: {b}"),
        ),
        _ => {}
    }
}

fn fields(
    out: &mut Out,
    name: &Name,
    old: &IndexMap<Name, Component<FieldDefinition>>,
    new: &IndexMap<Name, Component<FieldDefinition>>,
) {
    for (f, o) in old {
        let coord = format!("{name}.{f}");
        let Some(n) = new.get(f) else {
            out.push(
                Breaking,
                "FIELD_REMOVED",
                coord.clone(),
                coord.clone(),
                format!("Field \"{coord}\" was removed"),
            );
            continue;
        };
        if o.ty != n.ty {
            if is_subtype(&n.ty, &o.ty) {
                out.push(Safe, "FIELD_CHANGED_TYPE", coord.clone(), coord.clone(), format!("Field \"{coord}\" changed type from \"{}\" to \"{}\" (more specific: safe for clients)", o.ty, n.ty));
            } else {
                out.push(
                    Breaking,
                    "FIELD_CHANGED_TYPE",
                    coord.clone(),
                    coord.clone(),
                    format!(
                        "Field \"{coord}\" changed type from \"{}\" to \"{}\"",
                        o.ty, n.ty
                    ),
                );
            }
        }
        if o.description != n.description {
            out.push(
                Safe,
                "FIELD_DESCRIPTION_CHANGED",
                coord.clone(),
                coord.clone(),
                format!("Description of field \"{coord}\" changed"),
            );
        }
        deprecations(out, &coord, &coord, &o.directives, &n.directives, "FIELD");
        arguments(out, &coord, &o.arguments, &n.arguments);
    }
    for (f, _) in new.iter().filter(|(f, _)| !old.contains_key(*f)) {
        let coord = format!("{name}.{f}");
        out.push(
            Safe,
            "FIELD_ADDED",
            coord.clone(),
            coord.clone(),
            format!("Field \"{coord}\" was added"),
        );
    }
}

fn arguments(
    out: &mut Out,
    coord: &str,
    old: &[Node<InputValueDefinition>],
    new: &[Node<InputValueDefinition>],
) {
    for o in old {
        let acoord = format!("{coord}({}:)", o.name);
        match new.iter().find(|n| n.name == o.name) {
            None => out.push(
                Breaking,
                "ARG_REMOVED",
                acoord.clone(),
                acoord.clone(),
                format!("Argument \"{acoord}\" was removed"),
            ),
            Some(n) => input_value(out, &acoord, o, n, "ARG"),
        }
    }
    for n in new.iter().filter(|n| !old.iter().any(|o| o.name == n.name)) {
        let acoord = format!("{coord}({}:)", n.name);
        if n.is_required() {
            out.push(
                Breaking,
                "REQUIRED_ARG_ADDED",
                acoord.clone(),
                coord.to_string(),
                format!("Required argument \"{acoord}\" was added"),
            );
        } else {
            out.push(
                Safe,
                "OPTIONAL_ARG_ADDED",
                acoord.clone(),
                coord.to_string(),
                format!("Optional argument \"{acoord}\" was added"),
            );
        }
    }
}

/// An argument or input field present in both schemas.
fn input_value(
    out: &mut Out,
    coord: &str,
    o: &InputValueDefinition,
    n: &InputValueDefinition,
    what: &'static str,
) {
    let (type_code, default_code) = match what {
        "ARG" => ("ARG_CHANGED_TYPE", "ARG_DEFAULT_VALUE_CHANGED"),
        _ => (
            "INPUT_FIELD_CHANGED_TYPE",
            "INPUT_FIELD_DEFAULT_VALUE_CHANGED",
        ),
    };
    if o.ty != n.ty {
        if is_subtype(&o.ty, &n.ty) {
            out.push(Safe, type_code, coord.into(), coord.into(), format!("\"{coord}\" changed type from \"{}\" to \"{}\" (less specific: existing values stay valid)", o.ty, n.ty));
        } else {
            out.push(
                Breaking,
                type_code,
                coord.into(),
                coord.into(),
                format!("\"{coord}\" changed type from \"{}\" to \"{}\"", o.ty, n.ty),
            );
        }
    }
    let od = o.default_value.as_ref().map(|v| v.to_string());
    let nd = n.default_value.as_ref().map(|v| v.to_string());
    if od != nd {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        out.push(Breaking, default_code, coord.into(), coord.into(), format!("Default value of \"{coord}\" changed from {} to {}: operations relying on the default get different results", show(&od), show(&nd)));
    }
}
