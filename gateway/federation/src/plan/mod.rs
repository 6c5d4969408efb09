//! Query planning: operation + supergraph → [`QueryPlan`].

pub mod model;
pub use model::*;
