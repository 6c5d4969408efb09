//! Execution: run a [`QueryPlan`] against the subgraphs, then shape the merged data into
//! the client's response.
//!
//! `run` walks the plan (fetches, batched entity fetches, merging, error re-mapping);
//! `shape` applies the client's operation to the merged tree (order, aliases,
//! fragments, `@skip`/`@include`, `__typename`, values checked against the API schema,
//! null bubbling); `subgraph` is the only code that talks to subgraphs;
//! `subgraph_errors` decides what clients see of the errors subgraphs return. A failing or
//! slow subgraph never fails the request: its part of the data is null and an error
//! with `SUBREQUEST_HTTP_ERROR`, `SUBREQUEST_TIMEOUT` or `SUBREQUEST_RESPONSE_TOO_LARGE`
//! and `serviceName` says why.

mod run;
mod shape;
pub mod subgraph;
pub mod subgraph_errors;
mod value;

pub use value::{Key, Obj, Val};

use apollo_compiler::Schema;
use apollo_compiler::executable::{ExecutableDocument, Operation};
use apollo_compiler::validation::Valid;
use parking_lot::Mutex;
use portico_federation::plan::QueryPlan;
use serde_json::{Map, Value};

use crate::auth::Identity;
use crate::error::{GraphQLError, GraphQLResponse, PathElem};
pub use subgraph::{Endpoint, Resilience, Sending, Subgraphs};
pub use subgraph_errors::SubgraphErrorPolicy;

/// One step of a response path whose key is borrowed (from the operation or the plan):
/// the executor walks thousands of objects per request without a `String` per key, and
/// makes a path owned ([`owned`]) only for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) fn owned(path: &[Step<'_>]) -> Vec<PathElem> {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => PathElem::Key((*k).to_string()),
            Step::Index(i) => PathElem::Index(*i),
        })
        .collect()
}

/// Whether an owned and a borrowed path agree on their common length (one is a prefix of
/// the other).
pub(crate) fn agree(owned: &[PathElem], path: &[Step<'_>]) -> bool {
    owned.iter().zip(path).all(|(a, b)| match (a, b) {
        (PathElem::Key(a), Step::Key(b)) => a == b,
        (PathElem::Index(a), Step::Index(b)) => a == b,
        _ => false,
    })
}

/// Shapes `data` for `operation` as [`execute`] does once the plan has run (in place,
/// `data` is taken; no fetch failed), returning the response's `data` and how many
/// errors shaping raised. For benchmarks of the shaping stage alone
/// (`portico-bench stages`); requests go through [`execute`].
#[doc(hidden)]
pub fn shape_only(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    data: &mut Val,
) -> (Val, usize) {
    let mut errors = Vec::new();
    let variables = Map::new();
    let shaped = shape::Shaper {
        schema,
        document,
        variables: &variables,
        introspection: None,
        errors: &mut errors,
        failed_paths: &[],
        groups: Default::default(),
    }
    .shape(operation, data);
    (shaped, errors.len())
}

/// One operation to execute.
pub struct ExecutionInput<'a> {
    pub schema: &'a Valid<Schema>,
    pub document: &'a Valid<ExecutableDocument>,
    pub operation: &'a Operation,
    pub plan: &'a QueryPlan,
    /// Coerced variable values.
    pub variables: &'a Map<String, Value>,
    /// Root introspection results, when the operation selects `__schema`/`__type`.
    pub introspection: Option<&'a Map<String, Value>>,
    pub identity: &'a Identity,
    pub request_id: &'a str,
    /// The client's headers, for the `[headers]` propagation rules (never forwarded
    /// wholesale).
    pub client_headers: &'a http::HeaderMap,
    /// `@defer` delivered incrementally: the initial payload's shape and where it goes.
    pub initial: Option<InitialPart<'a>>,
}

/// The initial payload of an operation with `@defer`: once the plan's primary part has
/// run (the whole plan when it has no `Defer` node), the data so far is shaped for
/// `operation` of `document` (the client's operation without its deferred fragments)
/// and handed to `send`; then the deferred fragments' fetches run and the whole
/// operation is shaped as usual, the caller taking the deferred parts from it.
pub struct InitialPart<'a> {
    pub document: &'a Valid<ExecutableDocument>,
    pub operation: &'a Operation,
    /// Called with the payload and the subgraph response headers passed on so far.
    pub send: SendInitial<'a>,
    /// Deferred fragments delivered each in a part of its own, as soon as the plan's
    /// deferred nodes of its label have run (the others come with the whole response).
    pub parts: Vec<DeferredPart<'a>>,
    /// Called with a fragment's label and its part's response.
    pub send_part: SendPart<'a>,
}

/// Where [`InitialPart`]'s first payload goes (with the response headers so far).
pub type SendInitial<'a> = Box<dyn FnOnce(GraphQLResponse, http::HeaderMap) + Send + 'a>;
/// Where each deferred fragment's part goes (with the fragment's label).
pub type SendPart<'a> = Box<dyn FnMut(&str, GraphQLResponse) + Send + 'a>;

/// The shape of one deferred fragment's part: the initial payload's fields and the
/// fragment's own (`label` is the plan's `DeferredNode::label`).
pub struct DeferredPart<'a> {
    pub label: String,
    pub document: &'a Valid<ExecutableDocument>,
    pub operation: &'a Operation,
}

/// Run the plan and shape the response (always `data`, possibly partial).
/// Runs the plan and shapes the response; also returns the subgraph response headers
/// the `[headers]` `respond` rules pass on to the client.
pub async fn execute(
    subgraphs: &Subgraphs,
    input: ExecutionInput<'_>,
) -> (GraphQLResponse, http::HeaderMap) {
    let node = input.plan.node.as_ref();
    run_and_shape(
        subgraphs,
        input,
        node,
        value::Val::Object(value::Obj::new()),
        Vec::new(),
    )
    .await
}

/// One event of a subscription. `event` is what the subscription's root fetch (sent by
/// [`subscription::split`](crate::subscription::split)'s `root`) streamed: its data
/// (after the root fetch's `output_rewrites`) starts the response tree and its errors
/// the response's; `rest` (the plan after that fetch: entity fetches for the fields
/// other subgraphs own) runs on it, then the response is shaped as for a query.
pub(crate) async fn execute_event(
    subgraphs: &Subgraphs,
    input: ExecutionInput<'_>,
    root: &portico_federation::plan::FetchNode,
    rest: Option<&portico_federation::plan::PlanNode>,
    event: subgraph::SubgraphResponse,
) -> GraphQLResponse {
    let mut data = event
        .data
        .filter(Val::is_object)
        .unwrap_or_else(|| Val::Object(Obj::new()));
    run::apply_rewrites(&mut data, &root.output_rewrites);
    let errors = event
        .errors
        .into_iter()
        .map(|raw| {
            let mut e = subgraphs.error_policy().to_client(raw, &root.service_name);
            if e.path.as_ref().is_some_and(Vec::is_empty) {
                e.path = None;
            }
            e
        })
        .collect();
    run_and_shape(subgraphs, input, rest, data, errors).await.0
}

/// Runs `node` on `data`, then shapes the response.
async fn run_and_shape(
    subgraphs: &Subgraphs,
    mut input: ExecutionInput<'_>,
    node: Option<&portico_federation::plan::PlanNode>,
    data: Val,
    errors: Vec<GraphQLError>,
) -> (GraphQLResponse, http::HeaderMap) {
    let is_subtype = |abstract_type: &str, object_type: &str| {
        input.schema.is_subtype(abstract_type, object_type)
    };
    let is_object = |name: &str| {
        matches!(
            input.schema.types.get(name),
            Some(apollo_compiler::schema::ExtendedType::Object(_))
        )
    };
    let run = run::Run {
        subgraphs,
        variables: input.variables,
        identity: input.identity,
        request_id: input.request_id,
        client_mutation: input.operation.operation_type
            == apollo_compiler::executable::OperationType::Mutation,
        client_headers: input.client_headers,
        is_subtype: &is_subtype,
        is_object: &is_object,
        data: Mutex::new(data),
        errors: Mutex::new(errors),
        failed_paths: Mutex::new(Vec::new()),
        response_headers: Mutex::new(http::HeaderMap::new()),
    };
    match input.initial.take() {
        None => {
            if let Some(node) = node {
                run.node(node).await;
            }
        }
        Some(initial) => run_incremental(&run, Shaping::of(&input), node, initial).await,
    }
    let mut data = run.data.into_inner();
    let errors: Vec<GraphQLError> = run.errors.into_inner();
    let failed_paths = run.failed_paths.into_inner();
    let response_headers = run.response_headers.into_inner();
    let response = shape_response(
        Shaping::of(&input),
        input.document,
        input.operation,
        &mut data,
        errors,
        &failed_paths,
    );
    (response, response_headers)
}

/// What shaping takes from an [`ExecutionInput`] besides the operation.
#[derive(Clone, Copy)]
struct Shaping<'a> {
    schema: &'a Valid<Schema>,
    variables: &'a Map<String, Value>,
    introspection: Option<&'a Map<String, Value>>,
}

impl<'a> Shaping<'a> {
    fn of(input: &ExecutionInput<'a>) -> Self {
        Shaping {
            schema: input.schema,
            variables: input.variables,
            introspection: input.introspection,
        }
    }
}

/// `data` shaped for `operation` of `document` (in place; `data` is taken), with
/// `errors` and those shaping raises.
fn shape_response(
    input: Shaping<'_>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    data: &mut Val,
    mut errors: Vec<GraphQLError>,
    failed_paths: &[Vec<PathElem>],
) -> GraphQLResponse {
    let data = shape::Shaper {
        schema: input.schema,
        document,
        variables: input.variables,
        introspection: input.introspection,
        errors: &mut errors,
        failed_paths,
        groups: Default::default(),
    }
    .shape(operation, data);
    GraphQLResponse {
        errors,
        data: Some(data),
        extensions: Map::new(),
    }
}

/// `@defer` delivered incrementally: the plan's primary part (the whole plan when it has
/// no `Defer` node), the initial payload shaped from a copy of the data (shaping takes
/// the tree it shapes) and sent; then the deferred nodes, concurrently, each
/// fragment's part shaped and sent once the last node with its label has run.
async fn run_incremental(
    run: &run::Run<'_>,
    input: Shaping<'_>,
    node: Option<&portico_federation::plan::PlanNode>,
    initial: InitialPart<'_>,
) {
    let (primary, deferred) = match node {
        Some(portico_federation::plan::PlanNode::Defer { primary, deferred }) => {
            (primary.as_deref(), deferred.as_slice())
        }
        other => (other, &[][..]),
    };
    if let Some(node) = primary {
        run.node(node).await;
    }
    let shape_now = |document, operation| {
        let mut data = run.data.lock().clone();
        let errors = run.errors.lock().clone();
        let failed_paths = run.failed_paths.lock().clone();
        shape_response(input, document, operation, &mut data, errors, &failed_paths)
    };
    let passed_on = run.response_headers.lock().clone();
    (initial.send)(shape_now(initial.document, initial.operation), passed_on);
    let mut send_part = initial.send_part;
    let mut emit = |label: &str| {
        if let Some(part) = initial.parts.iter().find(|p| p.label == label) {
            send_part(label, shape_now(part.document, part.operation));
        }
    };
    // Deferred nodes still to run, per fragment label.
    let mut left: std::collections::HashMap<&str, usize> = Default::default();
    for d in deferred {
        if let Some(label) = &d.label {
            *left.entry(label).or_default() += usize::from(d.node.is_some());
        }
    }
    for (label, _) in left.iter().filter(|(_, n)| **n == 0) {
        emit(label);
    }
    let mut running: futures::stream::FuturesUnordered<_> = deferred
        .iter()
        .filter_map(|d| {
            let node = d.node.as_deref()?;
            let label = d.label.as_deref();
            Some(futures::FutureExt::map(run.node(node), move |()| label))
        })
        .collect();
    while let Some(done) = futures::StreamExt::next(&mut running).await {
        let Some(label) = done else { continue };
        if let Some(n) = left.get_mut(label) {
            *n -= 1;
            if *n == 0 {
                emit(label);
            }
        }
    }
}
