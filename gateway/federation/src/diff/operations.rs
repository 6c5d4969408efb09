//! Operation-aware mode: the schema coordinates each client operation uses (types,
//! `Type.field`, `Type.field(arg:)`, input fields, enum types, directives `@dir` and
//! their arguments `@dir(arg:)`, plus the internal markers `@dir on LOCATION` and
//! `@dir repeated` that directive location and `repeatable` removals touch, and
//! `Type.field(arg:) default` / `@dir(arg:) default` where an argument is omitted or
//! given through a variable, so may take its default), and which operations stop
//! validating against the new schema.

use super::BrokenOperation;
use apollo_compiler::Node;
use apollo_compiler::ast::{
    Argument, DirectiveList, DirectiveLocation, InputValueDefinition, Value,
};
use apollo_compiler::executable::{ExecutableDocument, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};
use std::collections::HashSet;

fn errors_of(e: &apollo_compiler::validation::DiagnosticList) -> Vec<String> {
    e.iter().map(|d| d.error.to_string()).collect()
}

/// `(operation name, coordinates used)` for every operation valid against `old`, and the
/// operations that are not.
pub(crate) fn usage(
    old: &Valid<Schema>,
    operations: &[(String, String)],
) -> (Vec<(String, HashSet<String>)>, Vec<BrokenOperation>) {
    let mut used = Vec::new();
    let mut skipped = Vec::new();
    for (name, text) in operations {
        match ExecutableDocument::parse_and_validate(old, text.as_str(), name.as_str()) {
            Ok(doc) => {
                let mut set = HashSet::new();
                for op in doc.operations.iter() {
                    directives(old, &op.directives, op.operation_type.into(), &mut set);
                    for v in &op.variables {
                        input_type(old, v.ty.inner_named_type(), &mut set);
                        directives(
                            old,
                            &v.directives,
                            DirectiveLocation::VariableDefinition,
                            &mut set,
                        );
                    }
                    selection_set(old, &op.selection_set, &mut set);
                }
                for f in doc.fragments.values() {
                    directives(
                        old,
                        &f.directives,
                        DirectiveLocation::FragmentDefinition,
                        &mut set,
                    );
                    selection_set(old, &f.selection_set, &mut set);
                }
                used.push((name.clone(), set));
            }
            Err(e) => skipped.push(BrokenOperation {
                name: name.clone(),
                errors: errors_of(&e.errors),
            }),
        }
    }
    (used, skipped)
}

fn input_type(schema: &Schema, ty: &Name, set: &mut HashSet<String>) {
    if !set.insert(ty.to_string()) {
        return;
    }
    if let Some(ExtendedType::InputObject(io)) = schema.types.get(ty) {
        for (f, def) in &io.fields {
            set.insert(format!("{ty}.{f}"));
            input_type(schema, def.ty.inner_named_type(), set);
        }
    }
}

/// Directives applied at `location`: `@dir`, `@dir(arg:)` per argument given (and the
/// input types it takes), `@dir on LOCATION`, and `@dir repeated` when it appears more
/// than once in the list.
fn directives(
    schema: &Schema,
    list: &DirectiveList,
    location: DirectiveLocation,
    used: &mut HashSet<String>,
) {
    for d in list.iter() {
        let coord = format!("@{}", d.name);
        for a in &d.arguments {
            used.insert(format!("{coord}({}:)", a.name));
            if let Some(def) = schema
                .directive_definitions
                .get(&d.name)
                .and_then(|def| def.arguments.iter().find(|x| x.name == a.name))
            {
                input_type(schema, def.ty.inner_named_type(), used);
            }
        }
        if let Some(def) = schema.directive_definitions.get(&d.name) {
            may_default(&coord, &def.arguments, &d.arguments, used);
        }
        used.insert(format!("{coord} on {}", location.name()));
        if list.get_all(&d.name).nth(1).is_some() {
            used.insert(format!("{coord} repeated"));
        }
        used.insert(coord);
    }
}

/// `{coord}(arg:) default` for every argument of the definition that the use omits or
/// gives through a variable (which may be unset): those take the argument's default.
fn may_default(
    coord: &str,
    defs: &[Node<InputValueDefinition>],
    given: &[Node<Argument>],
    used: &mut HashSet<String>,
) {
    for def in defs {
        let value = given.iter().find(|a| a.name == def.name).map(|a| &*a.value);
        if matches!(value, None | Some(Value::Variable(_))) {
            used.insert(format!("{coord}({}:) default", def.name));
        }
    }
}

fn selection_set(schema: &Schema, set: &SelectionSet, used: &mut HashSet<String>) {
    used.insert(set.ty.to_string());
    for sel in &set.selections {
        match sel {
            Selection::Field(f) => {
                if f.name.starts_with("__") {
                    continue;
                }
                let coord = format!("{}.{}", set.ty, f.name);
                for a in &f.arguments {
                    used.insert(format!("{coord}({}:)", a.name));
                    if let Some(def) = f.definition.arguments.iter().find(|d| d.name == a.name) {
                        input_type(schema, def.ty.inner_named_type(), used);
                    }
                }
                may_default(&coord, &f.definition.arguments, &f.arguments, used);
                used.insert(coord);
                used.insert(f.definition.ty.inner_named_type().to_string());
                directives(schema, &f.directives, DirectiveLocation::Field, used);
                selection_set(schema, &f.selection_set, used);
            }
            Selection::InlineFragment(i) => {
                directives(
                    schema,
                    &i.directives,
                    DirectiveLocation::InlineFragment,
                    used,
                );
                selection_set(schema, &i.selection_set, used)
            }
            Selection::FragmentSpread(s) => directives(
                schema,
                &s.directives,
                DirectiveLocation::FragmentSpread,
                used,
            ),
        }
    }
}

/// Operations valid against the old schema that do not validate against `new`.
pub(crate) fn broken(
    new: &Valid<Schema>,
    operations: &[(String, String)],
    skipped: &[BrokenOperation],
) -> Vec<BrokenOperation> {
    operations
        .iter()
        .filter(|(name, _)| !skipped.iter().any(|s| s.name == *name))
        .filter_map(|(name, text)| {
            ExecutableDocument::parse_and_validate(new, text.as_str(), name.as_str())
                .err()
                .map(|e| BrokenOperation {
                    name: name.clone(),
                    errors: errors_of(&e.errors),
                })
        })
        .collect()
}
