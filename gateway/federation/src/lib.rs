//! `portico-federation`: pure Federation v2 logic — no I/O, no async.
//!
//! Stages: [`supergraph`] (load a join-spec supergraph, build the model and API schema),
//! [`plan`] (operation + supergraph → `QueryPlan`). Composition, schema diff and cost live
//! beside them as they land.

pub mod compose;
pub mod cost;
pub mod diff;
pub mod plan;
pub mod supergraph;

pub use plan::{PlanError, PlanOptions, QueryPlan, plan};
pub use supergraph::{SubgraphInfo, Supergraph, SupergraphError};
