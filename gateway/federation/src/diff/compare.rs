//! The comparison itself: one pass over the types of both schemas.
//!
//! Type changes follow variance: an output position may become more specific (nullable →
//! non-null is safe, the reverse breaking); an input position (argument, input field) may
//! become less specific (non-null → nullable is safe, the reverse breaking).

use super::values::same_default;
use super::{Change, ChangeKind};
use apollo_compiler::ast::{DirectiveDefinition, InputValueDefinition, Type};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::schema::{Component, DirectiveList, ExtendedType, FieldDefinition};
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
            line: None,
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
    // The schema's own description is not compared: the introspection query behind
    // `--old-url`/`--new-url` does not ask for it (graphql-js leaves it out by default
    // too, older servers reject it), so it would show up as a change that is not one.
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
                fields(&mut out, (old, new), name, &a.fields, &b.fields);
            }
            (ExtendedType::Interface(a), ExtendedType::Interface(b)) => {
                interfaces(
                    &mut out,
                    name,
                    &a.implements_interfaces,
                    &b.implements_interfaces,
                );
                fields(&mut out, (old, new), name, &a.fields, &b.fields);
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
                        Some(nd) => {
                            if def.description != nd.description {
                                out.push(
                                    Safe,
                                    "ENUM_VALUE_DESCRIPTION_CHANGED",
                                    coord.clone(),
                                    name.to_string(),
                                    format!("Description of enum value \"{coord}\" changed"),
                                );
                            }
                            deprecations(
                                &mut out,
                                &coord,
                                name,
                                &def.directives,
                                &nd.directives,
                                Deprecatable::EnumValue,
                            )
                        }
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
                        Some(nd) => input_value(
                            &mut out,
                            (old, new),
                            &coord,
                            &format!("{coord} default"),
                            def,
                            nd,
                            What::InputField,
                        ),
                    }
                }
                for (f, def) in b.fields.iter().filter(|(f, _)| !a.fields.contains_key(*f)) {
                    let coord = format!("{name}.{f}");
                    if def.is_required() {
                        out.push(Breaking, "REQUIRED_INPUT_FIELD_ADDED", coord.clone(), name.to_string(), format!("Required input field \"{coord}\" was added: existing values of \"{name}\" lack it"));
                    } else if let Some(d) = &def.default_value {
                        out.push(Dangerous, "OPTIONAL_INPUT_FIELD_ADDED", coord.clone(), name.to_string(), format!("Optional input field \"{coord}\" was added with default value {d}: existing values of \"{name}\" that lack it now carry that default, which may change what the server does with them"));
                    } else {
                        out.push(Safe, "OPTIONAL_INPUT_FIELD_ADDED", coord.clone(), name.to_string(), format!("Optional input field \"{coord}\" was added without a default value: existing values of \"{name}\" that lack it mean what they meant before"));
                    }
                }
                one_of(&mut out, name, &a.directives, &b.directives);
            }
            (ExtendedType::Scalar(a), ExtendedType::Scalar(b)) => {
                specified_by(&mut out, name, &a.directives, &b.directives);
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
        .filter(|(name, d)| !is_built_in_directive(name, d))
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
                        format!("{coord} on {l}"),
                        format!("Location {l} was removed from directive \"{coord}\""),
                    );
                }
                for l in nd.locations.iter().filter(|l| !d.locations.contains(l)) {
                    out.push(
                        Safe,
                        "DIRECTIVE_LOCATION_ADDED",
                        coord.clone(),
                        coord.clone(),
                        format!("Location {l} was added to directive \"{coord}\""),
                    );
                }
                match (d.repeatable, nd.repeatable) {
                    (true, false) => out.push(Breaking, "DIRECTIVE_REPEATABLE_REMOVED", coord.clone(), format!("{coord} repeated"), format!("Directive \"{coord}\" is no longer repeatable: uses that repeat it at one location stop validating")),
                    (false, true) => out.push(
                        Safe,
                        "DIRECTIVE_REPEATABLE_ADDED",
                        coord.clone(),
                        coord.clone(),
                        format!("Directive \"{coord}\" is now repeatable"),
                    ),
                    _ => {}
                }
                if d.description != nd.description {
                    out.push(
                        Safe,
                        "DIRECTIVE_DESCRIPTION_CHANGED",
                        coord.clone(),
                        coord.clone(),
                        format!("Description of directive \"{coord}\" changed"),
                    );
                }
                arguments(
                    &mut out,
                    (old, new),
                    &coord,
                    &d.arguments,
                    &nd.arguments,
                    Owner::Directive,
                );
            }
        }
    }
    for (name, d) in new.directive_definitions.iter() {
        if !is_built_in_directive(name, d) && !old.directive_definitions.contains_key(name) {
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

/// apollo-compiler's built-ins, and `@oneOf` (built in since the 2025 spec; declared or
/// not, see `super::one_of_definition`).
fn is_built_in_directive(name: &Name, d: &Node<DirectiveDefinition>) -> bool {
    d.is_built_in() || name == "oneOf"
}

/// `@oneOf` on an input object: adding it makes values that set zero or several fields
/// invalid; removing it keeps every value valid but drops the "exactly one" contract
/// that clients (and code generators, through `isOneOf`) may rely on.
fn one_of(out: &mut Out, name: &Name, old: &DirectiveList, new: &DirectiveList) {
    match (old.has("oneOf"), new.has("oneOf")) {
        (false, true) => out.push(Breaking, "INPUT_ONE_OF_ADDED", name.to_string(), name.to_string(), format!("Input object \"{name}\" became @oneOf: existing values that set no field or several fields stop validating")),
        (true, false) => out.push(Dangerous, "INPUT_ONE_OF_REMOVED", name.to_string(), name.to_string(), format!("Input object \"{name}\" is no longer @oneOf: values may now set several fields or none, which clients and generated types built for exactly one field do not expect")),
        _ => {}
    }
}

/// `@specifiedBy(url:)` on a custom scalar: a changed or removed URL means the scalar's
/// values may be serialized differently than clients parse them.
fn specified_by(out: &mut Out, name: &Name, old: &DirectiveList, new: &DirectiveList) {
    let url = |d: &DirectiveList| {
        d.get("specifiedBy").map(|d| {
            d.specified_argument_by_name("url")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        })
    };
    match (url(old), url(new)) {
        (None, Some(u)) => out.push(
            Safe,
            "SCALAR_SPECIFIED_BY_ADDED",
            name.to_string(),
            name.to_string(),
            format!("Scalar \"{name}\" is now specified by {u}"),
        ),
        (Some(u), None) => out.push(Dangerous, "SCALAR_SPECIFIED_BY_REMOVED", name.to_string(), name.to_string(), format!("Scalar \"{name}\" is no longer specified by {u}: clients parsing its values by that specification may be wrong")),
        (Some(a), Some(b)) if a != b => out.push(Dangerous, "SCALAR_SPECIFIED_BY_CHANGED", name.to_string(), name.to_string(), format!("Scalar \"{name}\" changed its specification from {a} to {b}: clients parsing its values by the old one may be wrong")),
        _ => {}
    }
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

/// What `@deprecated` applies to.
#[derive(Clone, Copy)]
enum Deprecatable {
    Field,
    EnumValue,
    Arg,
    InputField,
}

fn deprecations(
    out: &mut Out,
    coord: &str,
    touches: &str,
    old: &apollo_compiler::ast::DirectiveList,
    new: &apollo_compiler::ast::DirectiveList,
    what: Deprecatable,
) {
    let (code_dep, code_undep, code_reason) = match what {
        Deprecatable::Field => (
            "FIELD_DEPRECATED",
            "FIELD_DEPRECATION_REMOVED",
            "FIELD_DEPRECATION_REASON_CHANGED",
        ),
        Deprecatable::EnumValue => (
            "ENUM_VALUE_DEPRECATED",
            "ENUM_VALUE_DEPRECATION_REMOVED",
            "ENUM_VALUE_DEPRECATION_REASON_CHANGED",
        ),
        Deprecatable::Arg => (
            "ARG_DEPRECATED",
            "ARG_DEPRECATION_REMOVED",
            "ARG_DEPRECATION_REASON_CHANGED",
        ),
        Deprecatable::InputField => (
            "INPUT_FIELD_DEPRECATED",
            "INPUT_FIELD_DEPRECATION_REMOVED",
            "INPUT_FIELD_DEPRECATION_REASON_CHANGED",
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
    schemas: (&Schema, &Schema),
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
        deprecations(
            out,
            &coord,
            &coord,
            &o.directives,
            &n.directives,
            Deprecatable::Field,
        );
        arguments(
            out,
            schemas,
            &coord,
            &o.arguments,
            &n.arguments,
            Owner::Field,
        );
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

/// What an argument belongs to: a field's arguments and a directive's classify some
/// changes differently (graphql-inspector: a directive argument's new default is
/// dangerous, an optional directive argument added is safe).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Field,
    Directive,
}

fn arguments(
    out: &mut Out,
    schemas: (&Schema, &Schema),
    coord: &str,
    old: &[Node<InputValueDefinition>],
    new: &[Node<InputValueDefinition>],
    owner: Owner,
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
            Some(n) => {
                let what = match owner {
                    Owner::Field => What::Arg,
                    Owner::Directive => What::DirectiveArg,
                };
                let relies = format!("{acoord} default");
                input_value(out, schemas, &acoord, &relies, o, n, what)
            }
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
                format!("Required argument \"{acoord}\" was added: existing uses of \"{coord}\" do not pass it"),
            );
        } else if owner == Owner::Directive {
            out.push(
                Safe,
                "OPTIONAL_ARG_ADDED",
                acoord.clone(),
                coord.to_string(),
                format!("Optional argument \"{acoord}\" was added: existing uses of the directive stay valid"),
            );
        } else if let Some(d) = &n.default_value {
            out.push(
                Dangerous,
                "OPTIONAL_ARG_ADDED",
                acoord.clone(),
                coord.to_string(),
                format!("Optional argument \"{acoord}\" was added with default value {d}: operations that do not pass it now get the behaviour of that default, which may differ from what \"{coord}\" did before"),
            );
        } else {
            out.push(
                Safe,
                "OPTIONAL_ARG_ADDED",
                acoord.clone(),
                coord.to_string(),
                format!("Optional argument \"{acoord}\" was added without a default value: operations that do not pass it get null, the old behaviour"),
            );
        }
    }
}

/// An argument, directive argument or input field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Arg,
    DirectiveArg,
    InputField,
}

/// A default value added, removed or changed on an argument or input field present in
/// both schemas (graphql-js and GraphQL Inspector agree: no request stops validating,
/// so it is dangerous, not breaking), except:
/// - a default added where the value was required (non-null, no default): every
///   request already gives it, none takes the default: safe;
/// - a default removed from a non-null one, which becomes required: requests that omit
///   it stop validating: breaking (a type change that makes it required is reported as
///   such, not again here).
fn default_value(
    out: &mut Out,
    coord: &str,
    relies_on_default: &str,
    o: &InputValueDefinition,
    n: &InputValueDefinition,
    (what, code): (What, &'static str),
) {
    let show = |v: &Option<Node<apollo_compiler::ast::Value>>| {
        v.as_ref()
            .map_or_else(|| "none".to_string(), |v| v.to_string())
    };
    let (od, nd) = (show(&o.default_value), show(&n.default_value));
    let who = match what {
        What::DirectiveArg => "uses of the directive",
        What::Arg => "operations",
        What::InputField => "values",
    };
    if o.is_required() {
        out.push(
            Safe,
            code,
            coord.into(),
            relies_on_default.into(),
            format!("Default value {nd} was added to \"{coord}\", which was required: {who} all give it already, none takes the default"),
        );
    } else if n.is_required() && o.ty.is_non_null() {
        out.push(
            Breaking,
            code,
            coord.into(),
            relies_on_default.into(),
            format!("Default value {od} was removed from \"{coord}\", which is now required: {who} that omit it stop validating"),
        );
    } else {
        let what_changed = match (&o.default_value, &n.default_value) {
            (None, _) => format!("Default value {nd} was added to \"{coord}\""),
            (_, None) => format!("Default value {od} was removed from \"{coord}\""),
            _ => format!("Default value of \"{coord}\" changed from {od} to {nd}"),
        };
        out.push(
            Dangerous,
            code,
            coord.into(),
            relies_on_default.into(),
            format!("{what_changed}: {who} that omit it get a different value, which may change what the server does"),
        );
    }
}

/// An argument or input field present in both schemas. `relies_on_default` is what an
/// operation uses when it may take the default (`Type.field(arg:) default`,
/// `Input.field default`: the argument or input field omitted, or given through a
/// variable that may be unset; see `operations.rs`).
fn input_value(
    out: &mut Out,
    (old, new): (&Schema, &Schema),
    coord: &str,
    relies_on_default: &str,
    o: &InputValueDefinition,
    n: &InputValueDefinition,
    what: What,
) {
    let (type_code, default_code, desc_code) = match what {
        What::Arg | What::DirectiveArg => (
            "ARG_CHANGED_TYPE",
            "ARG_DEFAULT_VALUE_CHANGED",
            "ARG_DESCRIPTION_CHANGED",
        ),
        What::InputField => (
            "INPUT_FIELD_CHANGED_TYPE",
            "INPUT_FIELD_DEFAULT_VALUE_CHANGED",
            "INPUT_FIELD_DESCRIPTION_CHANGED",
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
    let same = match (&o.default_value, &n.default_value) {
        (None, None) => true,
        (Some(a), Some(b)) => same_default(old, &o.ty, a, new, &n.ty, b),
        _ => false,
    };
    if !same {
        default_value(out, coord, relies_on_default, o, n, (what, default_code));
    }
    if o.description != n.description {
        out.push(
            Safe,
            desc_code,
            coord.into(),
            coord.into(),
            format!("Description of \"{coord}\" changed"),
        );
    }
    let dep = match what {
        What::InputField => Deprecatable::InputField,
        _ => Deprecatable::Arg,
    };
    deprecations(out, coord, coord, &o.directives, &n.directives, dep);
}
