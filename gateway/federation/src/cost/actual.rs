//! Actual cost: the same weights applied to the response that came back, with the list
//! sizes actually returned, so operators can compare it with the estimate and tune
//! `assumedSize` and the default list size.

use super::estimate::Pricing;
use super::{CostError, CostModel};
use apollo_compiler::Name;
use apollo_compiler::executable::{ExecutableDocument, Field, Selection, SelectionSet};
use apollo_compiler::validation::Valid;
use serde_json::{Map, Value};

/// The cost of a response's `data` for the operation that produced it: each object
/// returned costs its field's weight, each leaf its (usually zero) weight, list items are
/// counted as returned, arguments once per field occurrence, mutation root fields the
/// mutation base. A null value costs only an explicit weight (`@cost`, mutation base).
/// Fields absent from `data` cost nothing. Abstract types are resolved by `__typename`
/// when the response has it.
pub fn actual_cost(
    model: &CostModel,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
    data: &Value,
) -> Result<f64, CostError> {
    let pricing = Pricing::new(model, document, operation_name, variables)?;
    let Value::Object(root) = data else {
        return Ok(0.0);
    };
    let selection_set = &pricing.operation.selection_set;
    let walker = Actual { pricing: &pricing };
    Ok(walker.object(selection_set, &selection_set.ty, root))
}

struct Actual<'p, 'a> {
    pricing: &'p Pricing<'a>,
}

impl Actual<'_, '_> {
    fn object(&self, selection_set: &SelectionSet, ty: &Name, object: &Map<String, Value>) -> f64 {
        let model = self.pricing.model;
        let typename = object
            .get("__typename")
            .and_then(Value::as_str)
            .and_then(|t| model.api.types.get_key_value(t))
            .map(|(name, _)| name);
        let runtime = typename.or((!model.possible.contains_key(ty)).then_some(ty));
        self.selections(selection_set, ty, runtime, object)
    }

    /// `runtime` is `None` for an abstract type whose object has no `__typename`: every
    /// fragment applies, the fields present decide.
    fn selections(
        &self,
        selection_set: &SelectionSet,
        ty: &Name,
        runtime: Option<&Name>,
        object: &Map<String, Value>,
    ) -> f64 {
        let pricing = self.pricing;
        let applies = |condition: &str| runtime.is_none_or(|r| pricing.model.applies(condition, r));
        let mut cost = 0.0;
        for selection in &selection_set.selections {
            match selection {
                Selection::Field(field) if pricing.included(&field.directives) => {
                    if let Some(value) = object.get(field.response_key().as_str()) {
                        cost += self.field(field, runtime.unwrap_or(ty), value);
                    }
                }
                Selection::FragmentSpread(spread) if pricing.included(&spread.directives) => {
                    if let Some(fragment) = pricing.document.fragments.get(&spread.fragment_name)
                        && applies(fragment.type_condition())
                    {
                        cost += self.selections(&fragment.selection_set, ty, runtime, object);
                    }
                }
                Selection::InlineFragment(inline)
                    if pricing.included(&inline.directives)
                        && inline.type_condition.as_ref().is_none_or(|c| applies(c)) =>
                {
                    cost += self.selections(&inline.selection_set, ty, runtime, object);
                }
                _ => {}
            }
        }
        cost
    }

    fn field(&self, field: &Field, parent: &Name, value: &Value) -> f64 {
        let pricing = self.pricing;
        if field.name == "__typename" {
            return 0.0;
        }
        if Pricing::is_introspection(field) {
            return pricing.model.introspection_weight;
        }
        let (def, rule) = pricing.definition(field, parent);
        let weight = pricing.weight(parent, def, rule);
        let returned = def.ty.inner_named_type();
        pricing.arguments(field, def, rule) + self.value(field, returned, &weight, value)
    }

    fn value(
        &self,
        field: &Field,
        returned: &Name,
        weight: &super::estimate::Weight,
        value: &Value,
    ) -> f64 {
        match value {
            Value::Null => {
                if weight.explicit {
                    weight.weight
                } else {
                    0.0
                }
            }
            Value::Array(items) => items
                .iter()
                .map(|item| self.value(field, returned, weight, item))
                .sum(),
            Value::Object(object) => {
                let model = self.pricing.model;
                let own = if !weight.explicit && model.possible.contains_key(returned) {
                    // An abstract type without a weight: the returned object's type decides.
                    object
                        .get("__typename")
                        .and_then(Value::as_str)
                        .and_then(|t| model.type_weight(t))
                        .unwrap_or(1.0)
                } else {
                    weight.weight
                };
                own + self.object(&field.selection_set, returned, object)
            }
            _ => weight.weight,
        }
    }
}
