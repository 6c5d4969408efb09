//! Static estimate: walks the operation, pricing each selection set once per (selection
//! set, type, sizing) and taking the most expensive possible type of abstract types; a
//! second, capped walk writes the breakdown from the memoised prices.

use super::model::{CostModel, FieldRule, ListSizeRule};
use super::{CostError, CostEstimate, FieldCostLine, MAX_BREAKDOWN_LINES};
use apollo_compiler::ast::{self, OperationType};
use apollo_compiler::executable::{
    DirectiveList, ExecutableDocument, Field, Operation, Selection, SelectionSet,
};
use apollo_compiler::schema::FieldDefinition;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node};
use serde_json::{Map, Value};
use std::collections::HashMap;

impl CostModel {
    /// Estimates the cost of operation `operation_name` (the only one when `None`) of a
    /// document validated against the supergraph's API schema, with the request's
    /// variables, including a per-field breakdown.
    pub fn estimate(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> Result<CostEstimate, CostError> {
        let pricing = Pricing::new(self, document, operation_name, variables)?;
        let mut estimator = Estimator::new(&pricing);
        let operation = pricing.operation;
        let root = Child {
            selection_set: &operation.selection_set,
            ty: operation.selection_set.ty.clone(),
            sizing: None,
            typed: false,
        };
        let total = estimator.selection_set(root.selection_set, &root.ty, None, false)?;
        let mut lines = Lines::default();
        estimator.lines_static(&root, "", &mut lines)?;
        Ok(CostEstimate {
            total,
            breakdown: lines.lines,
            breakdown_truncated: lines.truncated,
        })
    }

    /// [`CostModel::estimate`] without the breakdown, for the request path.
    pub fn estimate_total(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> Result<f64, CostError> {
        let pricing = Pricing::new(self, document, operation_name, variables)?;
        let operation = pricing.operation;
        Estimator::new(&pricing).selection_set(
            &operation.selection_set,
            &operation.selection_set.ty,
            None,
            false,
        )
    }
}

/// What pricing needs from one request: the model, the operation, variable values.
pub(crate) struct Pricing<'a> {
    pub(crate) model: &'a CostModel,
    pub(crate) document: &'a ExecutableDocument,
    pub(crate) operation: &'a Operation,
    variables: &'a Map<String, Value>,
    /// Default values of the operation's variables.
    defaults: HashMap<&'a str, &'a ast::Value>,
    /// Root type of the operation when it is a mutation.
    mutation_root: Option<&'a Name>,
}

/// A variable's value: from the request, else the operation's default.
enum Var<'a> {
    Json(&'a Value),
    Ast(&'a ast::Value),
    Missing,
}

/// How a field is priced per instance.
#[derive(Clone, Copy)]
pub(crate) struct Weight {
    pub(crate) weight: f64,
    /// Set by `@cost` (field or type) or the mutation base, not a default: charged even
    /// when the actual value is null.
    pub(crate) explicit: bool,
}

impl<'a> Pricing<'a> {
    pub(crate) fn new(
        model: &'a CostModel,
        document: &'a Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        variables: &'a Map<String, Value>,
    ) -> Result<Pricing<'a>, CostError> {
        let document: &'a ExecutableDocument = document;
        let operation = document
            .operations
            .get(operation_name)
            .map_err(|e| CostError::Operation(e.message().to_string()))?;
        let defaults = operation
            .variables
            .iter()
            .filter_map(|v| Some((v.name.as_str(), &**v.default_value.as_ref()?)))
            .collect();
        let mutation_root = (operation.operation_type == OperationType::Mutation)
            .then_some(&operation.selection_set.ty);
        Ok(Pricing {
            model,
            document,
            operation,
            variables,
            defaults,
            mutation_root,
        })
    }

    fn variable(&self, name: &str) -> Var<'a> {
        match (self.variables.get(name), self.defaults.get(name)) {
            (Some(v), _) => Var::Json(v),
            (None, Some(v)) => Var::Ast(v),
            (None, None) => Var::Missing,
        }
    }

    /// `false` when `@skip`/`@include` exclude the selection. An undecidable condition
    /// (missing variable) counts as included: estimates err on the expensive side.
    pub(crate) fn included(&self, directives: &DirectiveList) -> bool {
        for d in directives.iter() {
            let excluded_when = match d.name.as_str() {
                "skip" => true,
                "include" => false,
                _ => continue,
            };
            let value = match d.specified_argument_by_name("if").map(|v| &**v) {
                Some(ast::Value::Boolean(b)) => Some(*b),
                Some(ast::Value::Variable(name)) => match self.variable(name) {
                    Var::Json(v) => v.as_bool(),
                    Var::Ast(v) => v.to_bool(),
                    Var::Missing => None,
                },
                _ => None,
            };
            if value == Some(excluded_when) {
                return false;
            }
        }
        true
    }

    /// The definition of `field` on the runtime type `parent`, and its rule.
    pub(crate) fn definition<'f>(
        &self,
        field: &'f Field,
        parent: &str,
    ) -> (&'f FieldDefinition, Option<&'a FieldRule>)
    where
        'a: 'f,
    {
        let def = self
            .model
            .output_field(parent, &field.name)
            .unwrap_or(&field.definition);
        (def, self.model.field_rule(parent, &field.name))
    }

    pub(crate) fn weight(
        &self,
        parent: &str,
        def: &FieldDefinition,
        rule: Option<&FieldRule>,
    ) -> Weight {
        let returned = def.ty.inner_named_type();
        if let Some(weight) = rule.and_then(|r| r.weight) {
            Weight {
                weight,
                explicit: true,
            }
        } else if self.mutation_root.is_some_and(|root| root == parent) {
            Weight {
                weight: self.model.mutation_base,
                explicit: true,
            }
        } else if let Some(weight) = self.model.type_weight(returned) {
            Weight {
                weight,
                explicit: true,
            }
        } else {
            Weight {
                weight: if self.model.is_composite(returned) {
                    1.0
                } else {
                    0.0
                },
                explicit: false,
            }
        }
    }

    /// The price of the arguments given to a field.
    pub(crate) fn arguments(
        &self,
        field: &Field,
        def: &FieldDefinition,
        rule: Option<&FieldRule>,
    ) -> f64 {
        let mut cost = 0.0;
        for argument in &field.arguments {
            let Some(arg_def) = def.argument_by_name(&argument.name) else {
                continue;
            };
            let own = rule.and_then(|r| r.arguments.get(&argument.name).copied());
            cost += self.input_ast(&argument.value, own, &arg_def.ty);
        }
        cost
    }

    /// Weight of an input value that is not an object or a list.
    fn input_leaf(&self, own: Option<f64>, ty: &ast::Type) -> f64 {
        own.or_else(|| self.model.type_weight(ty.inner_named_type()))
            .unwrap_or(0.0)
    }

    fn input_object_base(&self, own: Option<f64>, ty: &ast::Type) -> f64 {
        own.or_else(|| self.model.type_weight(ty.inner_named_type()))
            .unwrap_or(1.0)
    }

    fn input_field(&self, ty: &ast::Type, field: &str) -> Option<(ast::Type, Option<f64>)> {
        let input_type = ty.inner_named_type();
        let def = self
            .model
            .api
            .get_input_object(input_type)?
            .fields
            .get(field)?;
        let own = self
            .model
            .field_rule(input_type, field)
            .and_then(|r| r.weight);
        Some(((*def.ty).clone(), own))
    }

    fn input_ast(&self, value: &ast::Value, own: Option<f64>, ty: &ast::Type) -> f64 {
        match value {
            ast::Value::Null => 0.0,
            ast::Value::Variable(name) => match self.variable(name) {
                Var::Json(v) => self.input_json(v, own, ty),
                Var::Ast(v) => self.input_ast(v, own, ty),
                Var::Missing => 0.0,
            },
            ast::Value::List(items) => items
                .iter()
                .map(|item| self.input_ast(item, own, ty.item_type()))
                .sum(),
            ast::Value::Object(fields) => {
                let mut cost = self.input_object_base(own, ty);
                for (name, v) in fields {
                    if let Some((field_ty, field_own)) = self.input_field(ty, name) {
                        cost += self.input_ast(v, field_own, &field_ty);
                    }
                }
                cost
            }
            _ => self.input_leaf(own, ty),
        }
    }

    fn input_json(&self, value: &Value, own: Option<f64>, ty: &ast::Type) -> f64 {
        match value {
            Value::Null => 0.0,
            Value::Array(items) => items
                .iter()
                .map(|item| self.input_json(item, own, ty.item_type()))
                .sum(),
            Value::Object(fields) => {
                let mut cost = self.input_object_base(own, ty);
                for (name, v) in fields {
                    if let Some((field_ty, field_own)) = self.input_field(ty, name) {
                        cost += self.input_json(v, field_own, &field_ty);
                    }
                }
                cost
            }
            _ => self.input_leaf(own, ty),
        }
    }

    /// An Int argument value (literal or variable), negative values as 0.
    fn size_of(&self, value: &ast::Value) -> Option<f64> {
        let n = match value {
            ast::Value::Variable(name) => match self.variable(name) {
                Var::Json(v) => v.as_f64(),
                Var::Ast(v) => v.to_f64(),
                Var::Missing => None,
            },
            other => other.to_f64(),
        }?;
        Some(n.max(0.0))
    }

    /// The size a `@listSize` gives for this field occurrence: the largest slicing
    /// argument value (given, else the argument's default), else `assumedSize`.
    pub(crate) fn list_size(
        &self,
        rule: &ListSizeRule,
        field: &Field,
        def: &FieldDefinition,
        parent: &str,
    ) -> Result<Option<f64>, CostError> {
        let mut found = 0;
        let mut largest: Option<f64> = None;
        for name in &rule.slicing_arguments {
            let value = match field.arguments.iter().find(|a| a.name == *name) {
                Some(given) => self.size_of(&given.value),
                None => def
                    .argument_by_name(name)
                    .and_then(|d| d.default_value.as_ref())
                    .and_then(|v| self.size_of(v)),
            };
            if let Some(n) = value {
                found += 1;
                largest = Some(largest.map_or(n, |l| l.max(n)));
            }
        }
        if rule.require_one && !rule.slicing_arguments.is_empty() && found != 1 {
            return Err(CostError::SlicingArguments {
                coordinate: format!("{parent}.{}", field.name),
                arguments: rule
                    .slicing_arguments
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                found,
            });
        }
        Ok(largest.or(rule.assumed_size))
    }

    pub(crate) fn is_introspection(field: &Field) -> bool {
        matches!(field.name.as_str(), "__schema" | "__type")
    }
}

/// The size a parent's `@listSize(sizedFields:)` gives to some of its children.
#[derive(Clone, Copy)]
struct Sizing<'m> {
    size: f64,
    fields: &'m [Name],
}

impl Sizing<'_> {
    fn size_for(&self, field: &str) -> Option<f64> {
        self.fields.iter().any(|f| f == field).then_some(self.size)
    }
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    selection_set: usize,
    ty: Name,
    sizing: Option<(usize, u64)>,
    typed: bool,
}

impl Key {
    fn new(
        selection_set: &SelectionSet,
        ty: &Name,
        sizing: Option<Sizing<'_>>,
        typed: bool,
    ) -> Key {
        Key {
            selection_set: std::ptr::from_ref(selection_set) as usize,
            ty: ty.clone(),
            sizing: sizing.map(|s| (s.fields.as_ptr() as usize, s.size.to_bits())),
            typed,
        }
    }
}

/// A priced field occurrence.
struct FieldPrice<'a> {
    total: f64,
    multiplier: f64,
    child: Option<Child<'a>>,
}

/// The selection of a priced field.
struct Child<'a> {
    selection_set: &'a SelectionSet,
    ty: Name,
    sizing: Option<Sizing<'a>>,
    /// The field returns an abstract type without a weight of its own: each possible
    /// type adds its own weight (`@cost` on the object type, else 1).
    typed: bool,
}

struct Estimator<'p, 'a> {
    pricing: &'p Pricing<'a>,
    /// (selection set, runtime object type, sizing) → cost.
    by_runtime: HashMap<Key, f64>,
    /// (selection set, static type, sizing) → (cost, the possible type that priced it).
    by_static: HashMap<Key, (f64, Name)>,
}

#[derive(Default)]
struct Lines {
    lines: Vec<FieldCostLine>,
    truncated: bool,
}

impl<'p, 'a> Estimator<'p, 'a> {
    fn new(pricing: &'p Pricing<'a>) -> Self {
        Estimator {
            pricing,
            by_runtime: HashMap::new(),
            by_static: HashMap::new(),
        }
    }

    /// Cost of a selection set on `ty`: for an interface or union, its most expensive
    /// possible type. `typed`: add each possible type's weight.
    fn selection_set(
        &mut self,
        selection_set: &'a SelectionSet,
        ty: &Name,
        sizing: Option<Sizing<'a>>,
        typed: bool,
    ) -> Result<f64, CostError> {
        let key = Key::new(selection_set, ty, sizing, typed);
        if let Some((cost, _)) = self.by_static.get(&key) {
            return Ok(*cost);
        }
        let model = self.pricing.model;
        let type_weight = |runtime: &Name| {
            if typed {
                model.type_weight(runtime).unwrap_or(1.0)
            } else {
                0.0
            }
        };
        let mut best: Option<(f64, &Name)> = None;
        match model.possible.get(ty) {
            Some(types) if !types.is_empty() => {
                for runtime in types {
                    let cost = self.runtime(selection_set, runtime, sizing)? + type_weight(runtime);
                    if best.is_none_or(|(b, _)| cost > b) {
                        best = Some((cost, runtime));
                    }
                }
            }
            _ => {
                best = Some((
                    self.runtime(selection_set, ty, sizing)? + type_weight(ty),
                    ty,
                ))
            }
        }
        let (cost, runtime) = best.expect("at least one type priced");
        self.by_static.insert(key, (cost, runtime.clone()));
        Ok(cost)
    }

    /// Cost of a selection set for an object of type `runtime`.
    fn runtime(
        &mut self,
        selection_set: &'a SelectionSet,
        runtime: &Name,
        sizing: Option<Sizing<'a>>,
    ) -> Result<f64, CostError> {
        let key = Key::new(selection_set, runtime, sizing, false);
        if let Some(cost) = self.by_runtime.get(&key) {
            return Ok(*cost);
        }
        let mut cost = 0.0;
        for selection in &selection_set.selections {
            match self.applicable(selection, runtime) {
                Applicable::Field(field) => {
                    let upstream = sizing.and_then(|s| s.size_for(&field.name));
                    if let Some(price) = self.field(field, runtime, upstream)? {
                        cost += price.total;
                    }
                }
                Applicable::Fragment(inner) => cost += self.runtime(inner, runtime, sizing)?,
                Applicable::No => {}
            }
        }
        self.by_runtime.insert(key, cost);
        Ok(cost)
    }

    fn applicable(&self, selection: &'a Selection, runtime: &str) -> Applicable<'a> {
        let pricing = self.pricing;
        match selection {
            Selection::Field(field) if pricing.included(&field.directives) => {
                Applicable::Field(field)
            }
            Selection::FragmentSpread(spread) if pricing.included(&spread.directives) => {
                match pricing.document.fragments.get(&spread.fragment_name) {
                    Some(fragment) if pricing.model.applies(fragment.type_condition(), runtime) => {
                        Applicable::Fragment(&fragment.selection_set)
                    }
                    _ => Applicable::No,
                }
            }
            Selection::InlineFragment(inline)
                if pricing.included(&inline.directives)
                    && inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| pricing.model.applies(c, runtime)) =>
            {
                Applicable::Fragment(&inline.selection_set)
            }
            _ => Applicable::No,
        }
    }

    /// Prices one field occurrence under an object of type `parent`; `None` for
    /// `__typename`.
    fn field(
        &mut self,
        field: &'a Node<Field>,
        parent: &Name,
        upstream: Option<f64>,
    ) -> Result<Option<FieldPrice<'a>>, CostError> {
        let pricing = self.pricing;
        if field.name == "__typename" {
            return Ok(None);
        }
        if Pricing::is_introspection(field) {
            return Ok(Some(FieldPrice {
                total: pricing.model.introspection_weight,
                multiplier: 1.0,
                child: None,
            }));
        }
        let (def, rule) = pricing.definition(field, parent);
        let list_size = match rule.and_then(|r| r.list_size.as_ref()) {
            Some(list_size) => Some((list_size, pricing.list_size(list_size, field, def, parent)?)),
            None => None,
        };
        let multiplier = if def.ty.is_list() {
            upstream
                .or(list_size.and_then(|(_, size)| size))
                .unwrap_or(pricing.model.default_list_size)
        } else {
            1.0
        };
        let returned = def.ty.inner_named_type();
        let weight = pricing.weight(parent, def, rule);
        let typed = !weight.explicit && pricing.model.possible.contains_key(returned);
        let weight = if typed { 0.0 } else { weight.weight };
        // What the gateway fetches for `@requires`, once per object the field is on.
        let arguments = pricing.arguments(field, def, rule) + rule.map_or(0.0, |r| r.requires);
        let mut selection = 0.0;
        let mut child = None;
        if !field.selection_set.selections.is_empty() {
            let sizing = list_size.and_then(|(rule, size)| {
                Some(Sizing {
                    size: size?,
                    fields: &rule.sized_fields,
                })
                .filter(|s| !s.fields.is_empty())
            });
            selection = self.selection_set(&field.selection_set, returned, sizing, typed)?;
            child = Some(Child {
                selection_set: &field.selection_set,
                ty: returned.clone(),
                sizing,
                typed,
            });
        }
        Ok(Some(FieldPrice {
            total: multiplier * (weight + selection) + arguments,
            multiplier,
            child,
        }))
    }

    fn lines_static(
        &mut self,
        child: &Child<'a>,
        prefix: &str,
        out: &mut Lines,
    ) -> Result<(), CostError> {
        let Child {
            selection_set,
            ref ty,
            sizing,
            typed,
        } = *child;
        self.selection_set(selection_set, ty, sizing, typed)?;
        let runtime = self
            .by_static
            .get(&Key::new(selection_set, ty, sizing, typed))
            .map(|(_, r)| r.clone())
            .expect("priced above");
        self.lines_runtime(selection_set, &runtime, sizing, prefix, out)
    }

    fn lines_runtime(
        &mut self,
        selection_set: &'a SelectionSet,
        runtime: &Name,
        sizing: Option<Sizing<'a>>,
        prefix: &str,
        out: &mut Lines,
    ) -> Result<(), CostError> {
        for selection in &selection_set.selections {
            if out.truncated {
                return Ok(());
            }
            match self.applicable(selection, runtime) {
                Applicable::Field(field) => {
                    let upstream = sizing.and_then(|s| s.size_for(&field.name));
                    let Some(price) = self.field(field, runtime, upstream)? else {
                        continue;
                    };
                    if out.lines.len() >= MAX_BREAKDOWN_LINES {
                        out.truncated = true;
                        return Ok(());
                    }
                    let path = if prefix.is_empty() {
                        field.response_key().to_string()
                    } else {
                        format!("{prefix}.{}", field.response_key())
                    };
                    out.lines.push(FieldCostLine {
                        path: path.clone(),
                        coordinate: format!("{runtime}.{}", field.name),
                        multiplier: price.multiplier,
                        cost: price.total,
                    });
                    if let Some(child) = &price.child {
                        self.lines_static(child, &path, out)?;
                    }
                }
                Applicable::Fragment(inner) => {
                    self.lines_runtime(inner, runtime, sizing, prefix, out)?;
                }
                Applicable::No => {}
            }
        }
        Ok(())
    }
}

enum Applicable<'a> {
    Field(&'a Node<Field>),
    Fragment(&'a SelectionSet),
    No,
}
