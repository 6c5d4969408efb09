//! Documents and plans, cached.
//!
//! [`QueryPlanner`] is what the gateway needs from federation: the API schema, the
//! subgraph list and a planner. The federation-backed implementation lives in
//! `federation.rs`; tests and other planners implement the trait directly (plans are
//! plain data). Parsed-and-validated documents are cached by query text hash, plans
//! by (query text hash, operation name, override labels): a hit does no re-planning.
//! `stage.rs` runs a miss: on tokio's blocking pool, once per key however many requests
//! wait for it, with failures cached briefly and a panicking planner turned into a
//! [`PlanningError`].

mod cache;
pub mod federation;
mod stage;

use std::collections::BTreeSet;
use std::sync::Arc;

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::validation::Valid;
use portico_federation::plan::{PlanError, QueryPlan};
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;
pub use cache::BoundedCache;
pub(crate) use stage::{PlanJob, PlanStage};

/// Why an operation has no plan.
///
/// A planner returns [`Client`](Self::Client) for the client's doing (answered with HTTP
/// 400, the message and the code) and [`Failed`](Self::Failed) for its own failures
/// (HTTP 500 `QUERY_PLANNING_FAILED`: the message goes to the log, not to the client).
/// `From<PlanError>` sorts `portico-federation`'s errors with
/// [`PlanError::is_client_error`]; `From<String>` is a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanningError {
    /// The operation cannot be planned as asked (unknown operation, too complex,
    /// unsupported feature): the client gets `message` and `code`.
    #[error("{message}")]
    Client {
        /// `extensions.code`, e.g. `QUERY_PLAN_TOO_COMPLEX`.
        code: &'static str,
        message: String,
    },
    /// The planner failed: a bug, or a supergraph it cannot handle.
    #[error("{0}")]
    Failed(String),
    /// The planner panicked (the message is the panic's).
    #[error("the planner panicked: {0}")]
    Panicked(String),
}

impl PlanningError {
    /// A client error with one of the gateway's codes.
    pub fn client(code: ErrorCode, message: impl Into<String>) -> Self {
        PlanningError::Client {
            code: code.as_str(),
            message: message.into(),
        }
    }

    /// Answered with a 4xx and the message, rather than a 500 that hides it?
    pub fn is_client_error(&self) -> bool {
        matches!(self, PlanningError::Client { .. })
    }

    /// The `extensions.code` the client sees.
    pub fn code(&self) -> &'static str {
        match self {
            PlanningError::Client { code, .. } => code,
            PlanningError::Failed(_) | PlanningError::Panicked(_) => {
                ErrorCode::QueryPlanningFailed.as_str()
            }
        }
    }

    /// The HTTP status of the refused request: the code's own when it is a client error
    /// status, else 400 for client errors and 500 for failures.
    pub fn http_status(&self) -> http::StatusCode {
        if !self.is_client_error() {
            return http::StatusCode::INTERNAL_SERVER_ERROR;
        }
        ErrorCode::from_code(self.code())
            .map(ErrorCode::http_status)
            .filter(http::StatusCode::is_client_error)
            .unwrap_or(http::StatusCode::BAD_REQUEST)
    }
}

impl From<PlanError> for PlanningError {
    fn from(error: PlanError) -> Self {
        if error.is_client_error() {
            PlanningError::Client {
                code: error.code(),
                message: error.to_string(),
            }
        } else {
            PlanningError::Failed(error.to_string())
        }
    }
}

impl From<String> for PlanningError {
    fn from(message: String) -> Self {
        PlanningError::Failed(message)
    }
}

impl From<&str> for PlanningError {
    fn from(message: &str) -> Self {
        PlanningError::Failed(message.to_string())
    }
}

/// A subgraph as named in the supergraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInfo {
    pub name: String,
    pub url: String,
}

/// What the gateway needs from a supergraph.
pub trait QueryPlanner: Send + Sync + 'static {
    /// The schema clients see (join machinery and `@inaccessible` removed).
    fn api_schema(&self) -> &Valid<Schema>;
    /// Subgraph names and their URLs from the supergraph.
    fn subgraphs(&self) -> Vec<SubgraphInfo>;
    /// Progressive-override labels `percent(x)` of the supergraph, with x; the gateway
    /// activates each with probability x/100 per request.
    fn percent_override_labels(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// The schema whose `@authenticated`/`@requiresScopes` directives the gateway
    /// enforces: the supergraph schema when there is one (the API schema drops them).
    fn authorization_schema(&self) -> &Schema {
        self.api_schema()
    }
    /// The federation supergraph behind this planner, when there is one (the cost model
    /// is built from it; a reload of the config alone reuses it).
    fn supergraph(&self) -> Option<&portico_federation::supergraph::Supergraph> {
        None
    }
    /// Plan `operation_name` of `document` (validated against [`api_schema`](Self::api_schema)).
    /// Called on tokio's blocking pool, at most once at a time per plan-cache key; a
    /// panic here costs the requests waiting for this plan, never the process.
    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        override_labels: &BTreeSet<String>,
    ) -> Result<QueryPlan, PlanningError>;
}

/// SHA-256 of a query text.
pub type QueryHash = [u8; 32];

pub fn hash_query(query: &str) -> QueryHash {
    Sha256::digest(query.as_bytes()).into()
}

/// Plan-cache hash of an operation filtered by authorization: the client's query hash
/// plus the indices of the requirements the identity misses (what the filtered document
/// depends on). Domain-separated from [`hash_query`] of any query text.
pub fn hash_filtered(query: &QueryHash, denied: &[u32]) -> QueryHash {
    let mut hasher = Sha256::new();
    hasher.update(b"portico-authz-filtered\0");
    hasher.update(query);
    for i in denied {
        hasher.update(i.to_le_bytes());
    }
    hasher.finalize().into()
}

/// Key of the plan cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanKey {
    pub query: QueryHash,
    pub operation_name: Option<String>,
    pub override_labels: BTreeSet<String>,
}

/// A parsed document: `Ok` validated, `Err` the errors to return (also cached, so a
/// client repeating a bad query costs a lookup).
pub type ParsedDocument = Result<Valid<ExecutableDocument>, Vec<crate::error::GraphQLError>>;
/// Parsed documents by query hash.
pub type DocumentCache = BoundedCache<QueryHash, Arc<ParsedDocument>>;
/// Plans.
pub type PlanCache = BoundedCache<PlanKey, Arc<QueryPlan>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_messages_are_failures_hidden_behind_query_planning_failed() {
        let failed = PlanningError::from("broken invariant");
        assert!(!failed.is_client_error());
        assert_eq!(failed.code(), "QUERY_PLANNING_FAILED");
        assert_eq!(
            failed.http_status(),
            http::StatusCode::INTERNAL_SERVER_ERROR
        );
        let panicked = PlanningError::Panicked("boom".into());
        assert_eq!(panicked.code(), "QUERY_PLANNING_FAILED");
    }

    #[test]
    fn a_client_error_with_a_server_code_is_still_a_400() {
        let odd = PlanningError::client(ErrorCode::QueryPlanningFailed, "odd planner");
        assert_eq!(odd.http_status(), http::StatusCode::BAD_REQUEST);
        let future = PlanningError::Client {
            code: "SOME_FUTURE_CODE",
            message: "new".into(),
        };
        assert_eq!(future.http_status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(future.code(), "SOME_FUTURE_CODE");
    }
}
