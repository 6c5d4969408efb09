//! Cost settings from the gateway's configuration: defaults, plus `@cost`/`@listSize`
//! equivalents keyed by schema coordinate for subgraphs that cannot declare the
//! directives (async-graphql 7 speaks Federation v2.5; the cost directives came in v2.9).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Cost analysis settings. Embedded in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct CostSettings {
    /// Size assumed for a list field when neither a slicing argument nor `assumedSize`
    /// gives one.
    pub default_list_size: u32,
    /// Weight of each mutation root field (instead of the object/scalar default), unless
    /// the field has its own weight. Its selection is added on top.
    pub mutation_base: u32,
    /// Weight of `__schema` and `__type` (their selections are not priced). `__typename`
    /// is always free.
    pub introspection_weight: f64,
    /// Per-coordinate settings, merged over the supergraph's `@cost`/`@listSize` (a value
    /// set here wins). Keys: `Type.field` (output field or input field),
    /// `Type.field(argument:)` (argument; only `weight` applies).
    pub fields: BTreeMap<String, FieldCost>,
    /// Weight of a type by name, like `@cost` on an object, interface, scalar, enum or
    /// input object type.
    pub types: BTreeMap<String, f64>,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            default_list_size: 10,
            mutation_base: 10,
            introspection_weight: 0.0,
            fields: BTreeMap::new(),
            types: BTreeMap::new(),
        }
    }
}

/// `@cost` and `@listSize` for one schema coordinate. Unset values fall back to the
/// supergraph's directives, then to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct FieldCost {
    /// `@cost(weight:)`: replaces the default weight of the field's type (object,
    /// interface, union 1; scalar, enum 0).
    pub weight: Option<f64>,
    /// `@listSize(assumedSize:)`: size of the list when no slicing argument is given.
    pub assumed_size: Option<u32>,
    /// `@listSize(slicingArguments:)`: arguments whose value is the list size (`first`);
    /// the largest given value wins.
    pub slicing_arguments: Vec<String>,
    /// `@listSize(sizedFields:)`: fields of the returned type that the size applies to
    /// (`edges`, `nodes` of a connection) instead of the field itself.
    pub sized_fields: Vec<String>,
    /// `@listSize(requireOneSlicingArgument:)`: refuse the operation unless exactly one
    /// slicing argument has a value. Unset: the directive's value, else `false` (the
    /// directive itself defaults to `true`).
    pub require_one_slicing_argument: Option<bool>,
}
