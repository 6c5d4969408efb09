//! Actual cost: the same weights applied to the response that came back, with the list
//! sizes actually returned, so operators can compare it with the estimate and tune
//! `assumedSize` and the default list size.

use super::estimate::Pricing;
use super::{CostError, CostModel};
use apollo_compiler::Name;
use apollo_compiler::executable::{ExecutableDocument, Field, Selection, SelectionSet};
use apollo_compiler::validation::Valid;
use serde_json::{Map, Value};

/// What the actual-cost walk needs of a response tree: `serde_json::Value`, or a
/// gateway's own tree (Portico's executor prices the tree it shaped, before it is
/// serialised, without converting it).
pub trait ResponseTree {
    /// What this value is.
    fn node(&self) -> Node<'_, Self>
    where
        Self: Sized;
    /// Field `key` of an object (`None` for anything else or a missing field).
    fn field(&self, key: &str) -> Option<&Self>;
    /// The string, if this is one.
    fn string(&self) -> Option<&str>;
}

/// The kind of a [`ResponseTree`] value.
pub enum Node<'a, V> {
    Null,
    List(&'a [V]),
    Object,
    Leaf,
}

impl ResponseTree for Value {
    fn node(&self) -> Node<'_, Self> {
        match self {
            Value::Null => Node::Null,
            Value::Array(items) => Node::List(items),
            Value::Object(_) => Node::Object,
            _ => Node::Leaf,
        }
    }

    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }

    fn string(&self) -> Option<&str> {
        self.as_str()
    }
}

/// The cost of a response's `data` for the operation that produced it: each object
/// returned costs its field's weight, each leaf its (usually zero) weight, list items are
/// counted as returned, arguments once per field occurrence, mutation root fields the
/// mutation base. A null value costs only an explicit weight (`@cost`, mutation base).
/// Fields absent from `data` cost nothing. Abstract types are resolved by `__typename`
/// when the response has it.
pub fn actual_cost<V: ResponseTree>(
    model: &CostModel,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
    data: &V,
) -> Result<f64, CostError> {
    let pricing = Pricing::new(model, document, operation_name, variables)?;
    let Node::Object = data.node() else {
        return Ok(0.0);
    };
    let selection_set = &pricing.operation.selection_set;
    let walker = Actual {
        pricing: &pricing,
        priced: Default::default(),
    };
    Ok(walker.object(selection_set, &selection_set.ty, data))
}

struct Actual<'p, 'a> {
    pricing: &'p Pricing<'a>,
    /// What a field costs on a parent type apart from its value (its weight and its
    /// arguments), priced once per (field, parent) in this walk rather than once per
    /// object: keyed by the addresses of the field and of the parent's name, which live
    /// as long as the walk.
    priced: std::cell::RefCell<rustc_hash::FxHashMap<(usize, usize), Priced<'a>>>,
}

#[derive(Clone, Copy)]
struct Priced<'a> {
    weight: super::estimate::Weight,
    arguments: f64,
    /// The field's named type.
    returned: &'a Name,
}

impl<'a> Actual<'_, 'a> {
    /// `object` is an object ([`Node::Object`]).
    fn object<V: ResponseTree>(
        &self,
        selection_set: &'a SelectionSet,
        ty: &Name,
        object: &V,
    ) -> f64 {
        let model = self.pricing.model;
        let typename = object
            .field("__typename")
            .and_then(V::string)
            .and_then(|t| model.api.types.get_key_value(t))
            .map(|(name, _)| name);
        let runtime = typename.or((!model.possible.contains_key(ty)).then_some(ty));
        self.selections(selection_set, ty, runtime, object)
    }

    /// `runtime` is `None` for an abstract type whose object has no `__typename`: every
    /// fragment applies, the fields present decide.
    fn selections<V: ResponseTree>(
        &self,
        selection_set: &'a SelectionSet,
        ty: &Name,
        runtime: Option<&Name>,
        object: &V,
    ) -> f64 {
        let pricing = self.pricing;
        let applies = |condition: &str| runtime.is_none_or(|r| pricing.model.applies(condition, r));
        let mut cost = 0.0;
        for selection in &selection_set.selections {
            match selection {
                Selection::Field(field) if pricing.included(&field.directives) => {
                    if let Some(value) = object.field(field.response_key().as_str()) {
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

    fn field<V: ResponseTree>(&self, field: &'a Field, parent: &Name, value: &V) -> f64 {
        let pricing = self.pricing;
        if field.name == "__typename" {
            return 0.0;
        }
        if Pricing::is_introspection(field) {
            return pricing.model.introspection_weight;
        }
        let key = (
            std::ptr::from_ref(field) as usize,
            parent.as_str().as_ptr() as usize,
        );
        let cached = self.priced.borrow().get(&key).copied();
        let priced = match cached {
            Some(p) => p,
            None => {
                let (def, rule) = pricing.definition(field, parent);
                let p = Priced {
                    weight: pricing.weight(parent, def, rule),
                    arguments: pricing.arguments(field, def, rule),
                    returned: def.ty.inner_named_type(),
                };
                self.priced.borrow_mut().insert(key, p);
                p
            }
        };
        priced.arguments + self.value(field, priced.returned, &priced.weight, value)
    }

    fn value<V: ResponseTree>(
        &self,
        field: &'a Field,
        returned: &Name,
        weight: &super::estimate::Weight,
        value: &V,
    ) -> f64 {
        match value.node() {
            Node::Null => {
                if weight.explicit {
                    weight.weight
                } else {
                    0.0
                }
            }
            Node::List(items) => items
                .iter()
                .map(|item| self.value(field, returned, weight, item))
                .sum(),
            Node::Object => {
                let model = self.pricing.model;
                let own = if !weight.explicit && model.possible.contains_key(returned) {
                    // An abstract type without a weight: the returned object's type decides.
                    value
                        .field("__typename")
                        .and_then(V::string)
                        .and_then(|t| model.type_weight(t))
                        .unwrap_or(1.0)
                } else {
                    weight.weight
                };
                own + self.object(&field.selection_set, returned, value)
            }
            Node::Leaf => weight.weight,
        }
    }
}
