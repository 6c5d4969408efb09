//! Static cost analysis, following the IBM GraphQL Cost Directive specification as Apollo's
//! demand control applies it. Pure: no I/O, no async.
//!
//! Stages: [`CostModel::new`] indexes, once per supergraph, the `@cost`/`@listSize`
//! applications of the supergraph (under their `@link` names, or through
//! `@join__directive`) merged with [`CostSettings`] keyed by schema coordinate
//! (`model.rs`); [`CostModel::estimate`] prices an operation before execution
//! (`estimate.rs`); [`actual_cost`] prices the response that came back (`actual.rs`);
//! [`render_breakdown`] prints an estimate for `portico cost` (`render.rs`).
//!
//! Rules. A field costs `size × (weight + selection) + arguments + requires`:
//! - `weight`: the field's `@cost`, else its type's `@cost`, else 1 for objects, interfaces
//!   and unions, 0 for scalars and enums. A mutation root field weighs
//!   [`CostSettings::mutation_base`] unless it has its own `@cost`. `__typename` is free;
//!   `__schema`/`__type` weigh [`CostSettings::introspection_weight`].
//! - `size` (list fields only): the size a parent's `@listSize(sizedFields:)` gives this
//!   field, else the largest slicing argument value (literal, variable, variable default,
//!   argument default), else `assumedSize`, else [`CostSettings::default_list_size`].
//!   `requireOneSlicingArgument` refuses the operation unless exactly one slicing
//!   argument has a value.
//! - `arguments`: each given argument's `@cost` (or its type's), input objects 1 plus
//!   their fields, lists the sum of their items; variables are priced by their value.
//! - Abstract types and fragments: a selection set on an interface or union costs as much
//!   as its most expensive possible type (fields looked up on that type, which inherits
//!   the interface field's rules it does not set itself); a field returning an interface
//!   or union without a weight of its own weighs what that type weighs (its `@cost`,
//!   else 1).
//! - `@skip`/`@include` (literals or variables) remove what they exclude.
//! - `requires`: a field with `@requires` adds, once per object it is resolved on, what
//!   its required selections cost by these rules (weights, assumed or default list
//!   sizes; the most costly subgraph's when several require), priced at load.
//! - Not priced: `@defer`, subgraph fetches (the estimate is of the client operation,
//!   not of the plan); a list of lists is sized once.
//!
//! Estimating is linear in the document: selection sets are priced once per
//! (selection set, type, sizing) and reused, so a fragment spread many times (a "fragment
//! bomb") does not cost exponential time. The breakdown is capped at
//! [`MAX_BREAKDOWN_LINES`] lines.

mod actual;
mod estimate;
mod model;
mod render;
mod settings;

pub use actual::{Node as ResponseNode, ResponseTree, actual_cost};
pub use model::CostModel;
pub use render::render_breakdown;
pub use settings::{CostSettings, FieldCost};

use serde::Serialize;

/// Most lines a [`CostEstimate::breakdown`] holds; beyond, `breakdown_truncated` is set.
pub const MAX_BREAKDOWN_LINES: usize = 10_000;

/// The estimated cost of an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// Total estimated cost.
    pub total: f64,
    /// One line per priced field occurrence, in document order (pre-order: a field before
    /// its selection). Selections on abstract types show the possible type that priced
    /// highest. Empty when the estimate was computed without breakdown.
    pub breakdown: Vec<FieldCostLine>,
    /// The breakdown stopped at [`MAX_BREAKDOWN_LINES`].
    pub breakdown_truncated: bool,
}

/// The cost of one field occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldCostLine {
    /// Response path from the root, by response key (`me.posts.edges.node`).
    pub path: String,
    /// Schema coordinate the field was priced as (`PostConnection.edges`).
    pub coordinate: String,
    /// List size applied to the field (1 for a field that is not a list).
    pub multiplier: f64,
    /// Cost of this field for one instance of its parent: `multiplier × (weight +
    /// selection) + arguments`.
    pub cost: f64,
}

/// Why a cost model could not be built or an operation could not be priced.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum CostError {
    /// A key of [`CostSettings`] names no schema element, or its values do not fit it.
    #[error("cost settings `{key}`: {message}")]
    Settings { key: String, message: String },
    /// A `@cost`/`@listSize` application of the supergraph is malformed.
    #[error("supergraph cost directive on {coordinate}: {message}")]
    Directive { coordinate: String, message: String },
    /// The document has no operation of that name (or several and no name was given).
    #[error("no operation to price: {0}")]
    Operation(String),
    /// `@listSize(requireOneSlicingArgument: true)` and not exactly one slicing argument
    /// had a value.
    #[error(
        "{coordinate} requires exactly one of its slicing arguments ({}) to be set, found {found}",
        arguments.join(", ")
    )]
    SlicingArguments {
        coordinate: String,
        arguments: Vec<String>,
        found: usize,
    },
}
