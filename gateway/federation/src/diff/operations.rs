//! Operation-aware mode: the schema coordinates each client operation uses (types,
//! `Type.field`, `Type.field(arg:)`, input fields, enum types), and which operations stop
//! validating against the new schema.

use super::BrokenOperation;
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
                    for v in &op.variables {
                        input_type(old, v.ty.inner_named_type(), &mut set);
                    }
                    selection_set(old, &op.selection_set, &mut set);
                }
                for f in doc.fragments.values() {
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
                used.insert(coord);
                used.insert(f.definition.ty.inner_named_type().to_string());
                selection_set(schema, &f.selection_set, used);
            }
            Selection::InlineFragment(i) => selection_set(schema, &i.selection_set, used),
            Selection::FragmentSpread(_) => {}
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
