//! Operation-aware mode: the schema coordinates each client operation uses (types,
//! `Type.field`, `Type.field(arg:)`, input fields, enum types, directives `@dir` and
//! their arguments `@dir(arg:)`, plus the internal markers `@dir on LOCATION` and
//! `@dir repeated` that directive location and `repeatable` removals touch, and
//! `Type.field(arg:) default` / `@dir(arg:) default` / `Input.field default` where an
//! argument or input field is omitted or given through a variable that may be unset, so
//! may take its default), and which operations stop validating against the new schema.
//!
//! Selections, input types and values are walked with explicit stacks: their depth comes
//! from the operation and the schema.

use super::BrokenOperation;
use apollo_compiler::Node;
use apollo_compiler::ast::{
    Argument, DirectiveList, DirectiveLocation, InputValueDefinition, Type, Value,
};
use apollo_compiler::executable::{ExecutableDocument, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};
use std::collections::{HashMap, HashSet};

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
            Ok(doc) => used.push((name.clone(), Collector::of(old, &doc))),
            Err(e) => skipped.push(BrokenOperation {
                name: name.clone(),
                errors: errors_of(&e.errors),
            }),
        }
    }
    (used, skipped)
}

/// What one document uses.
struct Collector<'s> {
    schema: &'s Schema,
    /// Variables of the document's operations and whether each may be unset at run
    /// time (nullable and without a default value in some operation): an argument or
    /// input field given such a variable may take its default.
    may_be_unset: HashMap<Name, bool>,
    /// Input types reached through a variable: every field of their runtime values may
    /// be omitted.
    through_variables: HashSet<Name>,
    used: HashSet<String>,
}

impl<'s> Collector<'s> {
    fn of(schema: &'s Schema, doc: &ExecutableDocument) -> HashSet<String> {
        let mut may_be_unset: HashMap<Name, bool> = HashMap::new();
        for op in doc.operations.iter() {
            for v in &op.variables {
                let unset = !v.ty.is_non_null() && v.default_value.is_none();
                *may_be_unset.entry(v.name.clone()).or_default() |= unset;
            }
        }
        let mut c = Collector {
            schema,
            may_be_unset,
            through_variables: HashSet::new(),
            used: HashSet::new(),
        };
        for op in doc.operations.iter() {
            c.directives(&op.directives, op.operation_type.into());
            for v in &op.variables {
                c.variable_type(v.ty.inner_named_type());
                if let Some(default) = &v.default_value {
                    c.value(&v.ty, default);
                }
                c.directives(&v.directives, DirectiveLocation::VariableDefinition);
            }
            c.selection_set(&op.selection_set);
        }
        for f in doc.fragments.values() {
            c.directives(&f.directives, DirectiveLocation::FragmentDefinition);
            c.selection_set(&f.selection_set);
        }
        c.used
    }

    fn may_be_unset(&self, variable: &Name) -> bool {
        self.may_be_unset.get(variable).copied().unwrap_or(true)
    }

    /// An input type an argument takes: the type and every input field reachable from it.
    fn input_type(&mut self, ty: &Name) {
        let mut stack = vec![ty.clone()];
        while let Some(ty) = stack.pop() {
            if !self.used.insert(ty.to_string()) {
                continue;
            }
            if let Some(ExtendedType::InputObject(io)) = self.schema.types.get(&ty) {
                for (f, def) in &io.fields {
                    self.used.insert(format!("{ty}.{f}"));
                    stack.push(def.ty.inner_named_type().clone());
                }
            }
        }
    }

    /// A variable's type: as [`Self::input_type`], and every input field reachable may be
    /// omitted from the value given at run time (`Input.field default`).
    fn variable_type(&mut self, ty: &Name) {
        self.input_type(ty);
        let mut stack = vec![ty.clone()];
        while let Some(ty) = stack.pop() {
            if !self.through_variables.insert(ty.clone()) {
                continue;
            }
            if let Some(ExtendedType::InputObject(io)) = self.schema.types.get(&ty) {
                for (f, def) in &io.fields {
                    self.used.insert(format!("{ty}.{f} default"));
                    stack.push(def.ty.inner_named_type().clone());
                }
            }
        }
    }

    /// A literal value of type `ty`: `Input.field default` for each input field an object
    /// in it omits or gives a variable that may be unset.
    fn value(&mut self, ty: &Type, value: &Value) {
        let schema = self.schema;
        let mut stack: Vec<(&Type, &Value)> = vec![(ty, value)];
        while let Some((ty, value)) = stack.pop() {
            match (ty, value) {
                (Type::List(item) | Type::NonNullList(item), Value::List(items)) => {
                    stack.extend(items.iter().map(|v| (&**item, &**v)));
                }
                // Input coercion: a single value for a list type is a list of one.
                (Type::List(item) | Type::NonNullList(item), single) => {
                    stack.push((&**item, single))
                }
                (Type::Named(name) | Type::NonNullNamed(name), Value::Object(given)) => {
                    let Some(ExtendedType::InputObject(io)) = schema.types.get(name) else {
                        continue;
                    };
                    for (f, def) in &io.fields {
                        match given.iter().find(|(g, _)| g == f).map(|(_, v)| &**v) {
                            Some(Value::Variable(v)) if !self.may_be_unset(v) => {}
                            None | Some(Value::Variable(_)) => {
                                self.used.insert(format!("{name}.{f} default"));
                            }
                            Some(v) => stack.push((&def.ty, v)),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The arguments given to a field or directive `coord` (`Type.field`, `@dir`):
    /// `coord(arg:)` and the input types of each, the input fields their literal values
    /// omit, and `coord(arg:) default` for every argument omitted or given a variable
    /// that may be unset (those take the argument's default).
    fn arguments(
        &mut self,
        coord: &str,
        defs: &[Node<InputValueDefinition>],
        given: &[Node<Argument>],
    ) {
        for a in given {
            self.used.insert(format!("{coord}({}:)", a.name));
            if let Some(def) = defs.iter().find(|d| d.name == a.name) {
                self.input_type(def.ty.inner_named_type());
                self.value(&def.ty, &a.value);
            }
        }
        for def in defs {
            let takes_default = match given.iter().find(|a| a.name == def.name) {
                None => true,
                Some(a) => match &*a.value {
                    Value::Variable(v) => self.may_be_unset(v),
                    _ => false,
                },
            };
            if takes_default {
                self.used.insert(format!("{coord}({}:) default", def.name));
            }
        }
    }

    /// Directives applied at `location`: `@dir`, its arguments (as [`Self::arguments`]),
    /// `@dir on LOCATION`, and `@dir repeated` when it appears more than once in the list.
    fn directives(&mut self, list: &DirectiveList, location: DirectiveLocation) {
        let schema = self.schema;
        for d in list.iter() {
            let coord = format!("@{}", d.name);
            let defs = schema
                .directive_definitions
                .get(&d.name)
                .map(|def| def.arguments.as_slice())
                .unwrap_or_default();
            self.arguments(&coord, defs, &d.arguments);
            self.used.insert(format!("{coord} on {}", location.name()));
            if list.get_all(&d.name).nth(1).is_some() {
                self.used.insert(format!("{coord} repeated"));
            }
            self.used.insert(coord);
        }
    }

    fn selection_set(&mut self, set: &SelectionSet) {
        let mut stack = vec![set];
        while let Some(set) = stack.pop() {
            self.used.insert(set.ty.to_string());
            for sel in &set.selections {
                match sel {
                    Selection::Field(f) => {
                        if f.name.starts_with("__") {
                            continue;
                        }
                        let coord = format!("{}.{}", set.ty, f.name);
                        self.arguments(&coord, &f.definition.arguments, &f.arguments);
                        self.used.insert(coord);
                        self.used
                            .insert(f.definition.ty.inner_named_type().to_string());
                        self.directives(&f.directives, DirectiveLocation::Field);
                        stack.push(&f.selection_set);
                    }
                    Selection::InlineFragment(i) => {
                        self.directives(&i.directives, DirectiveLocation::InlineFragment);
                        stack.push(&i.selection_set);
                    }
                    Selection::FragmentSpread(s) => {
                        self.directives(&s.directives, DirectiveLocation::FragmentSpread)
                    }
                }
            }
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
