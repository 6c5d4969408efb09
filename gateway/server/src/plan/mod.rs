//! Documents and plans, cached.
//!
//! [`QueryPlanner`] is what the gateway needs from federation: the API schema, the
//! subgraph list and a planner. The federation-backed implementation lives in
//! `federation.rs`; tests and other planners implement the trait directly (plans are
//! plain data). Parsed-and-validated documents are cached by query text hash, plans
//! by (query text hash, operation name, override labels): a hit does no re-planning.

mod cache;
pub mod federation;

use std::collections::BTreeSet;
use std::sync::Arc;

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::validation::Valid;
use portico_federation::plan::QueryPlan;
use sha2::{Digest, Sha256};

pub use cache::BoundedCache;

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
    /// Plan `operation_name` of `document` (validated against [`api_schema`](Self::api_schema)).
    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        override_labels: &BTreeSet<String>,
    ) -> Result<QueryPlan, String>;
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
