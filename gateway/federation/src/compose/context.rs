//! Stage 2, `@context` / `@fromContext` (federation v2.8), per subgraph: context names,
//! where `@fromContext` may be applied, that its context is set in the subgraph, and that
//! its selection (`$ctx { field }` or `$ctx ... on A { f } ... on B { f }`) selects
//! existing fields of a type matching the argument on every type setting the context.
//! Same rules, codes and messages as Apollo's (and The Guild's) composition.

use super::subgraph::Subgraph;
use apollo_compiler::ast::{self, Definition, Selection};
use apollo_compiler::collections::IndexMap;
use apollo_compiler::schema::{ExtendedType, InputValueDefinition};
use apollo_compiler::{Name, Node};
use std::collections::{HashMap, HashSet};

/// Reports one problem: code, coordinate, message (without the subgraph prefix).
pub(crate) type Report<'a> = dyn FnMut(&'static str, String, String) + 'a;

/// A type as written (`[String!]!`), for comparing a selection with the argument type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ty {
    Named(Name),
    NonNull(Box<Ty>),
    List(Box<Ty>),
}

impl Ty {
    fn of(t: &ast::Type) -> Ty {
        match t {
            ast::Type::Named(n) => Ty::Named(n.clone()),
            ast::Type::NonNullNamed(n) => Ty::NonNull(Box::new(Ty::Named(n.clone()))),
            ast::Type::List(i) => Ty::List(Box::new(Ty::of(i))),
            ast::Type::NonNullList(i) => Ty::NonNull(Box::new(Ty::List(Box::new(Ty::of(i))))),
        }
    }

    fn nullable(self) -> Ty {
        match self {
            Ty::NonNull(i) => *i,
            t => t,
        }
    }
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ty::Named(n) => write!(f, "{n}"),
            Ty::NonNull(i) => write!(f, "{i}!"),
            Ty::List(i) => write!(f, "[{i}]"),
        }
    }
}

/// Whether a selection of type `sel` can feed an argument of type `arg`.
fn matches(sel: &Ty, arg: &Ty) -> bool {
    match (sel, arg) {
        (Ty::NonNull(s), Ty::NonNull(a)) => matches(s, a),
        (_, Ty::NonNull(_)) => false,
        (Ty::NonNull(s), a) => matches(s, a),
        (Ty::List(s), Ty::List(a)) => matches(s, a),
        (_, Ty::List(_)) | (Ty::List(_), _) => false,
        (Ty::Named(s), Ty::Named(a)) => s == a,
    }
}

/// `field` or `... on T`, with what is selected below.
enum Val {
    Field(Name, Option<Vec<Val>>),
    Fragment(Option<Name>, Vec<Val>),
}

fn compile(selections: &[Selection]) -> Result<Vec<Val>, &'static str> {
    let mut out = Vec::new();
    for s in selections {
        match s {
            Selection::FragmentSpread(_) => return Err("fragment spread is not allowed"),
            Selection::Field(f) => {
                if f.alias.is_some() {
                    return Err("aliases are not allowed in the selection");
                }
                if !f.directives.is_empty() {
                    return Err("directives are not allowed in the selection");
                }
                let next = if f.selection_set.is_empty() {
                    None
                } else {
                    Some(compile(&f.selection_set)?)
                };
                out.push(Val::Field(f.name.clone(), next));
            }
            Selection::InlineFragment(i) => {
                if !i.directives.is_empty() {
                    return Err("directives are not allowed in the selection");
                }
                out.push(Val::Fragment(
                    i.type_condition.clone(),
                    compile(&i.selection_set)?,
                ));
            }
        }
    }
    Ok(out)
}

enum Layout {
    Direct(Vec<Val>),
    Conditional(IndexMap<Name, Vec<Val>>),
}

fn layout(source: &str) -> Result<Layout, String> {
    let doc = if source.trim_start().starts_with('{') {
        format!("query {source}")
    } else {
        format!("query {{ {source} }}")
    };
    let doc = ast::Document::parse(doc, "fromContext")
        .map_err(|e| format!("the selection does not parse: {}", e.errors))?;
    let Some(selections) = doc.definitions.iter().find_map(|d| match d {
        Definition::OperationDefinition(o) => Some(&o.selection_set),
        _ => None,
    }) else {
        return Err("no selection is made".into());
    };
    let values = compile(selections)?;
    match values.first() {
        None => Err("no selection is made".into()),
        Some(Val::Field(..)) if values.len() == 1 => Ok(Layout::Direct(values)),
        Some(Val::Field(..)) => Err("multiple selections are made".into()),
        Some(Val::Fragment(..)) => {
            let count = values.len();
            let mut branches = IndexMap::default();
            for v in values {
                match v {
                    Val::Field(..) => return Err("multiple fields could be selected".into()),
                    Val::Fragment(None, _) => {
                        return Err("inline fragments must have type conditions".into());
                    }
                    Val::Fragment(Some(on), next) => {
                        branches.insert(on, next);
                    }
                }
            }
            if branches.len() == count {
                Ok(Layout::Conditional(branches))
            } else {
                Err("type conditions have same name".into())
            }
        }
    }
}

enum Resolved {
    Type(Ty),
    Unresolved,
    UnknownField(Name, Name),
    InterfaceObject(Name),
}

fn is_composite(t: &ExtendedType) -> bool {
    t.is_object() || t.is_interface() || t.is_union()
}

fn resolve_all(sg: &Subgraph, ty: &Name, values: &[Val]) -> Resolved {
    let Some(def) = sg.schema.types.get(ty).filter(|t| is_composite(t)) else {
        return Resolved::Unresolved;
    };
    if def.is_object() && sg.has(def.directives(), "interfaceObject") {
        return Resolved::InterfaceObject(ty.clone());
    }
    let mut found: Option<Ty> = None;
    for v in values {
        match resolve_one(sg, ty, def, v) {
            Resolved::Type(t) => match &found {
                None => found = Some(t),
                Some(f) if matches(f, &t) && matches(&t, f) => {}
                Some(_) => return Resolved::Unresolved,
            },
            other => return other,
        }
    }
    found.map_or(Resolved::Unresolved, Resolved::Type)
}

fn resolve_one(sg: &Subgraph, ty: &Name, def: &ExtendedType, value: &Val) -> Resolved {
    match value {
        Val::Fragment(on, next) => match on {
            Some(on) => resolve_all(sg, on, next),
            None => Resolved::Unresolved,
        },
        Val::Field(name, next) => {
            if name == "__typename" {
                return Resolved::Type(Ty::NonNull(Box::new(Ty::Named(
                    Name::new_static_unchecked("String"),
                ))));
            }
            let field = match def {
                ExtendedType::Object(o) => o.fields.get(name),
                ExtendedType::Interface(i) => i.fields.get(name),
                _ => return Resolved::Unresolved,
            };
            let Some(field) = field else {
                return Resolved::UnknownField(ty.clone(), name.clone());
            };
            let Some(next) = next else {
                return Resolved::Type(Ty::of(&field.ty).nullable());
            };
            match resolve_all(sg, field.ty.inner_named_type(), next) {
                Resolved::Type(inner) => Resolved::Type(wrap_lists(Ty::of(&field.ty), inner)),
                other => other,
            }
        }
    }
}

/// The list structure of `field` (nullability dropped) around `inner`.
fn wrap_lists(field: Ty, inner: Ty) -> Ty {
    match field.nullable() {
        Ty::List(i) => Ty::List(Box::new(wrap_lists(*i, inner))),
        _ => inner,
    }
}

/// Object types a value of `ty` can be.
fn runtime_types(sg: &Subgraph, ty: &Name) -> HashSet<Name> {
    match sg.schema.types.get(ty) {
        Some(ExtendedType::Object(_)) => HashSet::from([ty.clone()]),
        Some(ExtendedType::Union(u)) => u.members.iter().map(|m| m.name.clone()).collect(),
        Some(ExtendedType::Interface(_)) => sg
            .schema
            .types
            .iter()
            .filter(|(_, t)| match t {
                ExtendedType::Object(o) => o.implements_interfaces.iter().any(|i| i.name == *ty),
                _ => false,
            })
            .map(|(n, _)| n.clone())
            .collect(),
        _ => HashSet::new(),
    }
}

/// Why the selection is invalid (the full message), if it is.
fn check_selection(
    sg: &Subgraph,
    owners: &[Name],
    context: &str,
    coord: &str,
    source: &str,
    arg: &Ty,
) -> Result<(), String> {
    let invalid = |reason: &str| {
        format!(
            "Context \"{context}\" is used in \"{coord}\" but the selection is invalid: {reason}"
        )
    };
    let check = |r: Resolved| match r {
        Resolved::UnknownField(owner, field) => Err(format!(
            "Context \"{context}\" is used in \"{coord}\" but the selection is invalid for type {owner}. Error: Cannot query field \"{field}\" on type \"{owner}\"."
        )),
        Resolved::InterfaceObject(t) => Err(invalid(&format!(
            "One of the types in the selection is an interfaceObject: \"{t}\""
        ))),
        Resolved::Unresolved => Err(invalid(&format!(
            "the type of the selection does not match the expected type \"{arg}\""
        ))),
        Resolved::Type(t) if !matches(&t, arg) => Err(invalid(&format!(
            "the type of the selection \"{t}\" does not match the expected type \"{arg}\""
        ))),
        Resolved::Type(_) => Ok(()),
    };
    let layout = layout(source).map_err(|r| invalid(&r))?;
    let mut touched = HashSet::new();
    for owner in owners {
        if sg.schema.types.get(owner).is_none_or(|t| !is_composite(t)) {
            continue;
        }
        match &layout {
            Layout::Direct(values) => check(resolve_all(sg, owner, values))?,
            Layout::Conditional(branches) => {
                let runtime = runtime_types(sg, owner);
                let mut applicable = false;
                for (on, values) in branches {
                    if !runtime.contains(on) {
                        continue;
                    }
                    applicable = true;
                    touched.insert(on.clone());
                    if !sg.schema.types.get(on).is_some_and(|t| t.is_object()) {
                        return Err(invalid("type conditions must be an object type"));
                    }
                    check(resolve_all(sg, on, values))?;
                }
                if !applicable {
                    return Err(invalid(&format!(
                        "no type condition matches the location \"{owner}\""
                    )));
                }
            }
        }
    }
    if let Layout::Conditional(branches) = &layout
        && let Some(unused) = branches.keys().find(|b| !touched.contains(*b))
    {
        return Err(invalid(&format!(
            "type condition \"{unused}\" is never used."
        )));
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn skip_ignored(s: &[char], mut pos: usize) -> usize {
    while let Some(&c) = s.get(pos) {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => pos += 1,
            '#' => {
                while s.get(pos).is_some_and(|&c| c != '\n' && c != '\r') {
                    pos += 1;
                }
            }
            _ => break,
        }
    }
    pos
}

/// `$name rest` → `(name, rest)`.
fn context_reference(value: &str) -> Option<(String, String)> {
    let chars: Vec<char> = value.chars().collect();
    let mut pos = skip_ignored(&chars, 0);
    if chars.get(pos) != Some(&'$') {
        return None;
    }
    pos = skip_ignored(&chars, pos + 1);
    if !chars.get(pos).is_some_and(|&c| is_name_start(c)) {
        return None;
    }
    let start = pos;
    while chars
        .get(pos)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == '_')
    {
        pos += 1;
    }
    let name: String = chars[start..pos].iter().collect();
    let rest: String = chars[pos..].iter().collect();
    (!rest.is_empty()).then_some((name, rest))
}

pub(crate) fn check(sg: &Subgraph, report: &mut Report<'_>) {
    if sg.local("context").is_none() && sg.local("fromContext").is_none() {
        return;
    }
    // Context names, and the types setting each.
    let mut owners: HashMap<String, Vec<Name>> = HashMap::new();
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) || !is_composite(ty) {
            continue;
        }
        for c in sg.all(ty.directives(), "context") {
            let Some(name) = c
                .specified_argument_by_name("name")
                .and_then(|v| v.as_str())
            else {
                continue;
            };
            if name.contains('_') {
                report(
                    "CONTEXT_NAME_INVALID",
                    type_name.to_string(),
                    format!("Context name \"{name}\" may not contain an underscore."),
                );
            } else if !name.starts_with(|c: char| c.is_ascii_alphabetic())
                || !name.chars().all(|c| c.is_ascii_alphanumeric())
            {
                report(
                    "CONTEXT_NAME_INVALID",
                    type_name.to_string(),
                    format!(
                        "Context name \"{name}\" is invalid. It should have only alphanumeric characters."
                    ),
                );
            }
            owners
                .entry(name.to_string())
                .or_default()
                .push(type_name.clone());
        }
    }
    for (dname, def) in &sg.schema.directive_definitions {
        for arg in &def.arguments {
            if sg.has(&arg.directives, "fromContext") {
                report(
                    "CONTEXT_NOT_SET",
                    format!("@{dname}({}:)", arg.name),
                    format!(
                        "@fromContext argument cannot be used on a directive definition \"@{dname}({}:)\".",
                        arg.name
                    ),
                );
            }
        }
    }
    for (type_name, ty) in &sg.schema.types {
        if !sg.is_user_type(type_name, ty) {
            continue;
        }
        let fields = match ty {
            ExtendedType::Object(o) => &o.fields,
            ExtendedType::Interface(i) => &i.fields,
            _ => continue,
        };
        for (field_name, field) in fields {
            for arg in &field.arguments {
                let Some(fc) = sg.all(&arg.directives, "fromContext").into_iter().next() else {
                    continue;
                };
                let coord = format!("{type_name}.{field_name}({}:)", arg.name);
                check_argument(sg, ty, field_name, arg, fc, &coord, &owners, report);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_argument(
    sg: &Subgraph,
    ty: &ExtendedType,
    field_name: &Name,
    arg: &Node<InputValueDefinition>,
    from_context: &ast::Directive,
    coord: &str,
    owners: &HashMap<String, Vec<Name>>,
    report: &mut Report<'_>,
) {
    let ExtendedType::Object(object) = ty else {
        report(
            "CONTEXT_NOT_SET",
            coord.to_string(),
            format!(
                "@fromContext argument cannot be used on a field that exists on an abstract type \"{coord}\"."
            ),
        );
        return;
    };
    for itf in &object.implements_interfaces {
        if let Some(ExtendedType::Interface(i)) = sg.schema.types.get(&itf.name)
            && i.fields.contains_key(field_name)
        {
            report(
                "CONTEXT_NOT_SET",
                coord.to_string(),
                format!(
                    "@fromContext argument cannot be used on a field implementing an interface field \"{}.{field_name}\".",
                    itf.name
                ),
            );
        }
    }
    if arg.default_value.is_some() {
        report(
            "CONTEXT_NOT_SET",
            coord.to_string(),
            format!("@fromContext arguments may not have a default value: \"{coord}\"."),
        );
    }
    let Some(value) = from_context
        .specified_argument_by_name("field")
        .and_then(|v| v.as_str())
    else {
        return;
    };
    let Some((context, selection)) = context_reference(value) else {
        report(
            "NO_CONTEXT_IN_SELECTION",
            coord.to_string(),
            format!("@fromContext argument does not reference a context \"{value}\"."),
        );
        return;
    };
    let Some(set_by) = owners.get(&context).filter(|o| !o.is_empty()) else {
        report(
            "CONTEXT_NOT_SET",
            coord.to_string(),
            format!("Context \"{context}\" is used at location \"{coord}\" but is never set."),
        );
        return;
    };
    if let Err(message) = check_selection(sg, set_by, &context, coord, &selection, &Ty::of(&arg.ty))
    {
        report("CONTEXT_INVALID_SELECTION", coord.to_string(), message);
    }
    let resolvable_key = sg.all(&object.directives, "key").iter().any(|k| {
        k.specified_argument_by_name("resolvable")
            .and_then(|v| v.to_bool())
            .unwrap_or(true)
    });
    if !resolvable_key {
        report(
            "CONTEXT_NO_RESOLVABLE_KEY",
            object.name.to_string(),
            format!(
                "Object \"{}\" has no resolvable key but has a field with a contextual argument.",
                object.name
            ),
        );
    }
}
