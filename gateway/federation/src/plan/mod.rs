//! Query planning: operation + supergraph → [`QueryPlan`].
//!
//! The pipeline (see [`plan`]) reads top to bottom:
//! 1. [`operation`]: pick the operation, inline fragments, drop root introspection;
//! 2. [`walk`]: walk the selection tree keeping the current subgraph, putting each field
//!    into a fetch group and opening entity groups when a field lives elsewhere
//!    (Federation-1 gateway style greedy planning, extended for Federation v2);
//! 3. [`merge_siblings`]: merge entity groups that differ only by a type condition;
//! 4. [`schedule`]: turn the group DAG into `Sequence`/`Parallel`/`Flatten`/`Fetch` nodes,
//!    rendering each group's subgraph operation ([`render`]); with `@defer`, a `Defer`
//!    node: the primary part's fetches, then each deferred fragment's.
//!
//! `@defer`: the walk gives each outermost deferred fragment a segment of its own
//! ([`walk::DEFER_SEGMENTS`]); the fields it selects leave the fetch they would have
//! joined by a key jump (to the same subgraph if need be), deferred root fields get root
//! fetches of their own, and everything below follows in that segment. A field with no
//! key to jump by stays in the primary fetch.
//!
//! Everything the planner asks of the supergraph ("can subgraph S resolve T.f?") goes
//! through [`graph`], so only the types an operation touches are ever looked at.

pub mod model;
pub use model::*;

pub mod coverage;
pub(crate) mod graph;
pub(crate) mod merge_siblings;
pub(crate) mod operation;
pub(crate) mod render;
pub(crate) mod schedule;
pub(crate) mod walk;

use crate::supergraph::Supergraph;
use apollo_compiler::ExecutableDocument;
use apollo_compiler::validation::Valid;
use std::collections::BTreeSet;

/// Per-request planning options.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Active progressive-override labels (`@override(label:)`): fields whose label is in
    /// this set are resolved by the overriding subgraph, others by the overridden one.
    /// The planner does no sampling: the gateway picks the set per request (each
    /// `percent(x)` label of [`Supergraph::override_labels`] with probability x/100, see
    /// [`Supergraph::override_label_percent`], plus the labels its configuration enables)
    /// and keys its plan cache on it.
    pub override_labels: BTreeSet<String>,
    /// Work budget; planning fails with [`PlanError::BudgetExceeded`] beyond it.
    pub max_steps: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            override_labels: BTreeSet::new(),
            max_steps: 100_000,
        }
    }
}

/// Why an operation could not be planned.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The requested operation (or a fragment) is not in the document.
    #[error("{0}")]
    UnknownOperation(String),
    /// The operation needs more planning work than `PlanOptions::max_steps` allows.
    #[error("query planning exceeded its budget of {max_steps} steps")]
    BudgetExceeded { max_steps: usize },
    /// Fields and fragments nest deeper than the planner accepts.
    #[error("the operation nests fields and fragments deeper than {max_depth} levels")]
    TooDeep { max_depth: usize },
    /// No subgraph can resolve a field from where the plan stands.
    #[error("no subgraph can resolve {type_name}.{field}{detail}")]
    Unresolvable {
        type_name: String,
        field: String,
        /// Extra context (`" from subgraph \"a\" at path user"`), possibly empty.
        detail: String,
    },
    /// A `key`/`requires`/`provides` field set of the supergraph is malformed.
    #[error("invalid field set on {coordinate}: {message}")]
    InvalidFieldSet { coordinate: String, message: String },
    /// The operation selects a field that needs a Federation feature the planner does not
    /// support (today: arguments filled by `@fromContext`).
    #[error("{coordinate} cannot be planned: {reason}")]
    Unsupported { coordinate: String, reason: String },
    /// A planner invariant failed (a bug): the message says which.
    #[error("internal planner error: {0}")]
    Internal(String),
}

impl PlanError {
    /// Is this the client's doing (an operation too complex, a feature the planner refuses,
    /// an unknown operation), answered with a 4xx and the message, rather than a planner
    /// failure (a 500 that shows only its code and the request id outside dev mode)?
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            PlanError::UnknownOperation(_)
                | PlanError::BudgetExceeded { .. }
                | PlanError::TooDeep { .. }
                | PlanError::Unsupported { .. }
        )
    }

    /// The stable `extensions.code` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::UnknownOperation(_) => "GRAPHQL_UNKNOWN_OPERATION_NAME",
            PlanError::BudgetExceeded { .. } | PlanError::TooDeep { .. } => {
                "QUERY_PLAN_TOO_COMPLEX"
            }
            PlanError::Unsupported { .. } => "QUERY_PLAN_UNSUPPORTED",
            PlanError::Unresolvable { .. }
            | PlanError::InvalidFieldSet { .. }
            | PlanError::Internal(_) => "QUERY_PLANNING_FAILED",
        }
    }
}

/// Step counter shared by the stages.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) used: usize,
    pub(crate) max: usize,
}

impl Budget {
    pub(crate) fn tick(&mut self) -> Result<(), PlanError> {
        self.used += 1;
        if self.used > self.max {
            Err(PlanError::BudgetExceeded {
                max_steps: self.max,
            })
        } else {
            Ok(())
        }
    }
}

/// Plans `operation_name` of `document` (already validated against the API schema).
pub fn plan(
    supergraph: &Supergraph,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    options: &PlanOptions,
) -> Result<QueryPlan, PlanError> {
    let mut budget = Budget {
        used: 0,
        max: options.max_steps,
    };
    let operation = operation::normalize(document, operation_name, &mut budget)?;
    if operation.selections.is_empty() {
        return Ok(QueryPlan { node: None });
    }
    let graph = graph::Graph::new(supergraph, &options.override_labels);
    let mut groups = walk::walk(&graph, &operation, &mut budget, true)?;
    merge_siblings::merge(&mut groups, &mut budget)?;
    if !groups.defers_are_separable() {
        // A deferred fragment's fetches and the primary part's wait for each other: plan
        // as if there were no `@defer` (the gateway then delivers everything at once).
        groups = walk::walk(&graph, &operation, &mut budget, false)?;
        merge_siblings::merge(&mut groups, &mut budget)?;
    }
    let node = schedule::schedule(&graph, &operation, &groups, &mut budget)?;
    Ok(QueryPlan { node })
}
