//! Plan walking: `Sequence` in order, `Parallel` joined, `Condition` on a variable,
//! root `Fetch` merged at the root, and `Flatten` + entity `Fetch` batched: every object
//! at the path across the whole response is projected through `requires`, duplicates
//! are removed, ONE `_entities` request is sent, and result `i` is merged into every
//! object that produced representation `i` (located again by its concrete path, so
//! parallel branches merging elsewhere cannot shift it).

use std::collections::HashMap;

use futures::future::{BoxFuture, FutureExt, join_all};
use parking_lot::Mutex;
use portico_federation::plan::{
    BatchFetchNode, ContextArgument, ContextFetch, FetchNode, OperationKind, PathSegment, PlanNode,
    Rewrite, Selection,
};
use serde_json::{Map, Value};

use super::subgraph::{FetchError, Sending, SubgraphResponse, Subgraphs, Variables};
use super::value::{Key, Obj, Val, merge};
use super::{Step, owned};
use crate::auth::Identity;
use crate::error::{ErrorCode, GraphQLError, PathElem};

/// Everything a plan run reads, and the response tree and errors it writes.
pub(super) struct Run<'a> {
    pub subgraphs: &'a Subgraphs,
    pub variables: &'a Map<String, Value>,
    pub identity: &'a Identity,
    pub request_id: &'a str,
    /// The client's operation is a mutation: its queries are never shared with other
    /// requests (it reads its own writes).
    pub client_mutation: bool,
    /// The client's headers, for the `[headers]` propagation rules.
    pub client_headers: &'a http::HeaderMap,
    /// Answers "is `typename` a `type_condition`?" (interfaces/unions).
    pub is_subtype: &'a (dyn Fn(&str, &str) -> bool + Sync),
    /// Answers "is `typename` an object type of the API schema?".
    pub is_object: &'a (dyn Fn(&str) -> bool + Sync),
    pub data: Mutex<Val>,
    pub errors: Mutex<Vec<GraphQLError>>,
    /// Response paths whose data a failed fetch should have provided: nulls under them
    /// are explained by that fetch's error and get no error of their own.
    pub failed_paths: Mutex<Vec<Vec<PathElem>>>,
    /// Subgraph response headers passed on to the client (`[headers] respond`).
    pub response_headers: Mutex<http::HeaderMap>,
}

impl<'a> Run<'a> {
    pub fn node(&'a self, node: &'a PlanNode) -> BoxFuture<'a, ()> {
        async move {
            match node {
                PlanNode::Sequence { nodes } => {
                    for n in nodes {
                        self.node(n).await;
                    }
                }
                PlanNode::Parallel { nodes } => {
                    join_all(nodes.iter().map(|n| self.node(n))).await;
                }
                PlanNode::Fetch(fetch) => self.fetch(fetch, &[]).await,
                PlanNode::BatchFetch(batch) => self.batch_fetch(batch).await,
                PlanNode::Flatten { path, node } => match node.as_ref() {
                    PlanNode::Fetch(fetch) => self.fetch(fetch, path).await,
                    other => {
                        // Not produced by our planner; run it at the root rather than drop it.
                        tracing::warn!("Flatten around a non-Fetch node; running it unflattened");
                        self.node(other).await
                    }
                },
                // Delivered at once: the primary part, then every deferred fragment's.
                PlanNode::Defer { primary, deferred } => {
                    if let Some(n) = primary {
                        self.node(n).await;
                    }
                    self.deferred(deferred).await;
                }
                PlanNode::Condition {
                    condition,
                    if_clause,
                    else_clause,
                } => {
                    let on = self
                        .variables
                        .get(condition)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let branch = if on { if_clause } else { else_clause };
                    if let Some(n) = branch {
                        self.node(n).await;
                    }
                }
            }
        }
        .boxed()
    }

    /// Every deferred fragment's fetches, in parallel (each waits only for the primary
    /// part, which has run).
    pub async fn deferred(&'a self, deferred: &'a [portico_federation::plan::DeferredNode]) {
        join_all(
            deferred
                .iter()
                .filter_map(|d| d.node.as_deref())
                .map(|n| self.node(n)),
        )
        .await;
    }

    fn fetch_variables(&self, fetch: &FetchNode) -> Map<String, Value> {
        fetch
            .variable_usages
            .iter()
            .filter_map(|name| Some((name.clone(), self.variables.get(name)?.clone())))
            .collect()
    }

    async fn fetch(&self, fetch: &FetchNode, path: &[PathSegment]) {
        match (&fetch.requires, &fetch.context) {
            (None, _) => self.root_fetch(fetch).await,
            (Some(requires), None) => self.entity_fetch(fetch, path, requires).await,
            (Some(requires), Some(context)) => {
                self.context_fetch(fetch, path, requires, context).await
            }
        }
    }

    /// An entity fetch with `@fromContext` arguments: representations are grouped by
    /// the values their ancestors give the arguments; one group is `fetch.operation` as
    /// is, several are one request with an aliased `_entities` per group.
    async fn context_fetch(
        &self,
        fetch: &FetchNode,
        path: &[PathSegment],
        requires: &[Selection],
        context: &ContextFetch,
    ) {
        // 1. Collect: representations keyed by (values, representation).
        let mut groups: Vec<(Vec<Val>, Collected<'_>)> = Vec::new();
        {
            let mut data = self.data.lock();
            // The objects' paths first: their values are read with the ancestors'.
            let mut concretes = Vec::new();
            visit_mut(
                &mut data,
                path,
                &mut Vec::new(),
                self.is_subtype,
                &mut |concrete, _| concretes.push(concrete.to_vec()),
            );
            let data = &*data;
            let mut seen: HashMap<(Vec<Val>, Val), (usize, usize)> = HashMap::new();
            for concrete in concretes {
                let Some(mut rep) = navigate(data, &concrete)
                    .and_then(|object| project(object, requires, self.is_subtype))
                else {
                    continue;
                };
                apply_rewrites(&mut rep, &fetch.input_rewrites);
                let values: Vec<Val> = context
                    .arguments
                    .iter()
                    .map(|a| context_value(data, &concrete, a))
                    .collect();
                let key = (values, rep);
                let (g, index) = match seen.get(&key) {
                    Some(found) => *found,
                    None => {
                        let (values, rep) = key.clone();
                        let g = match groups.iter().position(|(v, _)| *v == values) {
                            Some(g) => g,
                            None => {
                                groups.push((
                                    values,
                                    Collected {
                                        representations: Vec::new(),
                                        producers: Vec::new(),
                                    },
                                ));
                                groups.len() - 1
                            }
                        };
                        groups[g].1.representations.push(rep);
                        let found = (g, groups[g].1.representations.len() - 1);
                        seen.insert(key, found);
                        found
                    }
                };
                groups[g].1.producers.push((concrete, index));
            }
        }
        if groups.is_empty() {
            return;
        }
        // 2. One request.
        let mut variables = Variables::from(self.fetch_variables(fetch));
        let (operation, aliases) = if groups.len() == 1 {
            for (a, v) in context.arguments.iter().zip(&groups[0].0) {
                variables
                    .values
                    .insert(a.variable.clone(), v.clone().into_json());
            }
            let reps = std::mem::take(&mut groups[0].1.representations);
            variables
                .representations
                .push(("representations".into(), reps));
            (fetch.operation.clone(), vec!["_entities".to_string()])
        } else {
            let mut defs = Vec::new();
            let mut fields = Vec::new();
            let mut aliases = Vec::new();
            for (i, (values, collected)) in groups.iter_mut().enumerate() {
                defs.push(format!("$r{i}:[_Any!]!"));
                let mut selection = context.selection.clone();
                for (a, v) in context.arguments.iter().zip(values.iter()) {
                    let renamed = format!("{}_{i}", a.variable);
                    defs.push(format!("${renamed}:{}", a.type_name));
                    selection = rename_variable(&selection, &a.variable, &renamed);
                    variables.values.insert(renamed, v.clone().into_json());
                }
                variables.representations.push((
                    format!("r{i}"),
                    std::mem::take(&mut collected.representations),
                ));
                fields.push(format!("_e{i}:_entities(representations:$r{i}){selection}"));
                aliases.push(format!("_e{i}"));
            }
            defs.extend(context.variable_definitions.iter().cloned());
            let name = fetch
                .operation_name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            (
                format!("query{name}({}){{{}}}", defs.join(","), fields.join(" ")),
                aliases,
            )
        };
        let Some(response) = self
            .send_entities(
                &fetch.service_name,
                &operation,
                fetch.operation_name.as_deref(),
                variables,
                &groups
                    .iter()
                    .map(|(_, c)| c.producers.as_slice())
                    .collect::<Vec<_>>(),
            )
            .await
        else {
            return;
        };
        // 3. Scatter; 4. errors.
        let by_reps: Vec<Vec<Vec<&Vec<Step<'_>>>>> = groups
            .iter()
            .map(|(_, c)| {
                let count = c.producers.iter().map(|(_, i)| i + 1).max().unwrap_or(0);
                by_representation(&c.producers, count)
            })
            .collect();
        let rewrites: Vec<&[Rewrite]> = vec![&fetch.output_rewrites; aliases.len()];
        let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
        let paths = vec![path; aliases.len()];
        let producers: Vec<&[(Vec<Step<'_>>, usize)]> =
            groups.iter().map(|(_, c)| c.producers.as_slice()).collect();
        self.finish_entities(
            &fetch.service_name,
            response,
            &aliases,
            &paths,
            &producers,
            &by_reps,
            &rewrites,
        );
    }

    fn query_sending(&self) -> Sending {
        if self.client_mutation {
            Sending::QueryOfMutation
        } else {
            Sending::Query
        }
    }

    /// Keeps the response headers the `respond` rules pass on to the client.
    fn pass_on(&self, response: &mut SubgraphResponse) {
        let headers = std::mem::take(&mut response.headers);
        if !headers.is_empty() {
            crate::headers::append_all(&mut self.response_headers.lock(), headers);
        }
    }

    async fn root_fetch(&self, fetch: &FetchNode) {
        let result = self
            .subgraphs
            .send(
                &fetch.service_name,
                if fetch.operation_kind == OperationKind::Mutation {
                    Sending::Mutation
                } else {
                    self.query_sending()
                },
                &fetch.operation,
                fetch.operation_name.as_deref(),
                self.fetch_variables(fetch),
                self.identity,
                self.request_id,
                self.client_headers,
            )
            .await;
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                self.failed_paths.lock().push(Vec::new());
                // One error at each root field the fetch was to answer (those are null
                // because of it), so clients see which fields the failure cost.
                let error = fetch_error(&e);
                let keys = root_response_keys(&fetch.operation);
                let mut errors = self.errors.lock();
                if keys.is_empty() {
                    return errors.push(error);
                }
                for key in keys {
                    errors.push(error.clone().with_path(vec![PathElem::Key(key)]));
                }
                return;
            }
        };
        self.pass_on(&mut response);
        if let Some(mut data) = response.data.filter(Val::is_object) {
            apply_rewrites(&mut data, &fetch.output_rewrites);
            merge(&mut self.data.lock(), data);
        }
        let mut errors = self.errors.lock();
        for raw in response.errors {
            let mut e = self
                .subgraphs
                .error_policy()
                .to_client(raw, &fetch.service_name);
            // Root fetch paths already use client response keys.
            if e.path.as_ref().is_some_and(Vec::is_empty) {
                e.path = None;
            }
            errors.push(e);
        }
    }

    async fn entity_fetch(&self, fetch: &FetchNode, path: &[PathSegment], requires: &[Selection]) {
        // 1. Collect: every object at `path`, projected and deduplicated.
        let batch = self.collect_batch(path, requires, &fetch.input_rewrites);
        if batch.representations.is_empty() {
            return;
        }
        // 2. One request for all of them; 3. scatter; 4. errors to the producers' paths.
        let count = batch.representations.len();
        let mut variables = Variables::from(self.fetch_variables(fetch));
        variables
            .representations
            .push(("representations".into(), batch.representations));
        let Some(response) = self
            .send_entities(
                &fetch.service_name,
                &fetch.operation,
                fetch.operation_name.as_deref(),
                variables,
                &[&batch.producers],
            )
            .await
        else {
            return;
        };
        let by_rep = by_representation(&batch.producers, count);
        self.finish_entities(
            &fetch.service_name,
            response,
            &["_entities"],
            &[path],
            &[&batch.producers],
            std::slice::from_ref(&by_rep),
            &[&fetch.output_rewrites],
        );
    }

    /// Several entity batches to one subgraph in one request (`BatchFetch`).
    async fn batch_fetch(&self, fetch: &BatchFetchNode) {
        let mut collected_all = Vec::with_capacity(fetch.entity_batches.len());
        let mut variables = Variables::from(
            fetch
                .variable_usages
                .iter()
                .filter_map(|name| Some((name.clone(), self.variables.get(name)?.clone())))
                .collect::<Map<String, Value>>(),
        );
        for b in &fetch.entity_batches {
            let mut collected = self.collect_batch(&b.path, &b.requires, &b.input_rewrites);
            let count = collected.representations.len();
            variables.representations.push((
                b.variable.clone(),
                std::mem::take(&mut collected.representations),
            ));
            collected_all.push((collected.producers, count));
        }
        let batches: Vec<Vec<Vec<&Vec<Step<'_>>>>> = collected_all
            .iter()
            .map(|(producers, count)| by_representation(producers, *count))
            .collect();
        if batches.iter().all(Vec::is_empty) {
            return;
        }
        let Some(response) = self
            .send_entities(
                &fetch.service_name,
                &fetch.operation,
                fetch.operation_name.as_deref(),
                variables,
                &collected_all
                    .iter()
                    .map(|(p, _)| p.as_slice())
                    .collect::<Vec<_>>(),
            )
            .await
        else {
            return;
        };
        let aliases: Vec<&str> = fetch
            .entity_batches
            .iter()
            .map(|b| b.alias.as_str())
            .collect();
        let rewrites: Vec<&[Rewrite]> = fetch
            .entity_batches
            .iter()
            .map(|b| b.output_rewrites.as_slice())
            .collect();
        let paths: Vec<&[PathSegment]> = fetch
            .entity_batches
            .iter()
            .map(|b| b.path.as_slice())
            .collect();
        let producers: Vec<&[(Vec<Step<'_>>, usize)]> =
            collected_all.iter().map(|(p, _)| p.as_slice()).collect();
        self.finish_entities(
            &fetch.service_name,
            response,
            &aliases,
            &paths,
            &producers,
            &batches,
            &rewrites,
        );
    }

    /// Sends an entity request; on failure, records the error and the producers' paths
    /// (their nulls are explained by it) and returns `None`.
    async fn send_entities(
        &self,
        service: &str,
        operation: &str,
        operation_name: Option<&str>,
        variables: Variables,
        producers: &[&[(Vec<Step<'_>>, usize)]],
    ) -> Option<SubgraphResponse> {
        let result = self
            .subgraphs
            .send(
                service,
                // `_entities` fetches are queries.
                self.query_sending(),
                operation,
                operation_name,
                variables,
                self.identity,
                self.request_id,
                self.client_headers,
            )
            .await;
        match result {
            Ok(mut r) => {
                self.pass_on(&mut r);
                Some(r)
            }
            Err(e) => {
                let mut failed = self.failed_paths.lock();
                for list in producers {
                    failed.extend(list.iter().map(|(path, _)| owned(path)));
                }
                drop(failed);
                self.errors.lock().push(fetch_error(&e));
                None
            }
        }
    }

    /// Scatters every aliased `_entities` result of the response (alias `i` → the
    /// objects at `paths[i]` that produced `producers[i]`, with `output_rewrites[i]`) and
    /// maps the subgraph's errors to the producers' paths (`batches[i]`: producers by
    /// representation).
    #[allow(clippy::too_many_arguments)] // three call sites, one per fetch kind
    fn finish_entities(
        &self,
        service: &str,
        response: SubgraphResponse,
        aliases: &[&str],
        paths: &[&[PathSegment]],
        producers: &[&[(Vec<Step<'_>>, usize)]],
        batches: &[Vec<Vec<&Vec<Step<'_>>>>],
        output_rewrites: &[&[Rewrite]],
    ) {
        let SubgraphResponse { data, errors, .. } = response;
        let mut data = match data {
            Some(Val::Object(map)) => map,
            _ => Obj::new(),
        };
        for (i, (alias, by_rep)) in aliases.iter().zip(batches).enumerate() {
            if by_rep.is_empty() {
                continue;
            }
            let rewrites = output_rewrites.get(i).copied().unwrap_or(&[]);
            self.scatter(
                service,
                data.remove(alias),
                paths.get(i).copied().unwrap_or(&[]),
                producers.get(i).copied().unwrap_or(&[]),
                by_rep.len(),
                rewrites,
                errors.is_empty(),
            );
        }
        let mut out = self.errors.lock();
        for raw in errors {
            let e = self.subgraphs.error_policy().to_client(raw, service);
            push_remapped(&mut out, e, |alias| {
                aliases
                    .iter()
                    .position(|a| *a == alias)
                    .map(|i| &batches[i])
            });
        }
    }

    /// Every object at `path`, projected through `requires` (rewritten) and
    /// deduplicated: the representations, and which concrete path produced which.
    fn collect_batch<'p>(
        &self,
        path: &'p [PathSegment],
        requires: &[Selection],
        input_rewrites: &[Rewrite],
    ) -> Collected<'p> {
        let mut producers: Vec<(Vec<Step<'p>>, usize)> = Vec::new();
        let mut data = self.data.lock();
        // Representations are projected in `requires` order, so equal ones are equal
        // field by field: the set compares them structurally, no serialising.
        // Representations are subgraph data: a hasher seeded at random per set (foldhash,
        // not SipHash, which was 3.3 % of a heavy request's instructions here).
        let mut seen: indexmap::IndexSet<Val, foldhash::quality::RandomState> =
            indexmap::IndexSet::default();
        let is_subtype = self.is_subtype;
        visit_mut(
            &mut data,
            path,
            &mut Vec::new(),
            is_subtype,
            &mut |concrete, object| {
                if let Some(mut rep) = project(object, requires, is_subtype) {
                    apply_rewrites(&mut rep, input_rewrites);
                    let (index, _) = seen.insert_full(rep);
                    producers.push((concrete.to_vec(), index));
                }
            },
        );
        Collected {
            representations: seen.into_iter().collect(),
            producers,
        }
    }

    /// Merges entity `i` of `entities` into every object that produced representation `i`
    /// ([`scatter_into`]), or records why the entities cannot be scattered.
    #[allow(clippy::too_many_arguments)]
    fn scatter(
        &self,
        service: &str,
        entities: Option<Val>,
        path: &[PathSegment],
        producers: &[(Vec<Step<'_>>, usize)],
        count: usize,
        output_rewrites: &[Rewrite],
        no_errors: bool,
    ) {
        match entities {
            Some(Val::Array(entities)) if entities.len() == count => {
                // Each entity with its `__typename` set apart (merged by the rule in
                // `merge_entity`, not overwritten), and how many producers still need it.
                let mut slots: Vec<Option<(Val, Option<Val>)>> = entities
                    .into_iter()
                    .map(|mut entity| {
                        if !entity.is_object() {
                            return None;
                        }
                        apply_rewrites(&mut entity, output_rewrites);
                        let typename = entity.as_object_mut()?.remove("__typename");
                        Some((entity, typename))
                    })
                    .collect();
                let mut data = self.data.lock();
                scatter_into(
                    &mut data,
                    path,
                    producers,
                    &mut slots,
                    self.is_subtype,
                    self.is_object,
                );
            }
            Some(Val::Array(entities)) => self.errors.lock().push(
                GraphQLError::new(
                    ErrorCode::SubrequestHttpError,
                    format!(
                        "subgraph '{service}' returned {} entities for {count} representations",
                        entities.len()
                    ),
                )
                .with_extension("serviceName", service.to_string()),
            ),
            _ if no_errors => self.errors.lock().push(
                GraphQLError::new(
                    ErrorCode::SubrequestHttpError,
                    format!("subgraph '{service}' returned no _entities"),
                )
                .with_extension("serviceName", service.to_string()),
            ),
            _ => {}
        }
    }
}

/// Merges entity `i` of `slots` (rewrites applied, `__typename` set apart) into every
/// object that produced representation `i`: the producers are in the order the
/// collecting walk ([`visit_mut`]) met them, so the same walk along `path` finds them in
/// turn; a producer the walk does not meet where expected (the data changed between
/// collection and now) is found again by its path afterwards.
fn scatter_into(
    data: &mut Val,
    path: &[PathSegment],
    producers: &[(Vec<Step<'_>>, usize)],
    slots: &mut [Option<(Val, Option<Val>)>],
    is_subtype: &(dyn Fn(&str, &str) -> bool + Sync),
    is_object: &(dyn Fn(&str) -> bool + Sync),
) {
    let mut uses = vec![0usize; slots.len()];
    for (_, i) in producers {
        if let Some(u) = uses.get_mut(*i) {
            *u += 1;
        }
    }
    let mut next = 0;
    visit_mut(
        data,
        path,
        &mut Vec::new(),
        is_subtype,
        &mut |concrete, target| {
            if let Some((expected, i)) = producers.get(next)
                && expected.as_slice() == concrete
            {
                next += 1;
                merge_entity(target, slots, &mut uses, *i, is_object);
            }
        },
    );
    for (concrete, i) in producers.get(next..).unwrap_or(&[]) {
        if let Some(target) = navigate_mut(data, concrete) {
            merge_entity(target, slots, &mut uses, *i, is_object);
        }
    }
}

/// Merges entity `i` into `target` (moved at its last use, copied before).
fn merge_entity(
    target: &mut Val,
    slots: &mut [Option<(Val, Option<Val>)>],
    uses: &mut [usize],
    i: usize,
    is_object: &(dyn Fn(&str) -> bool + Sync),
) {
    let (Some(Some((entity, typename))), Some(left)) = (slots.get(i), uses.get_mut(i)) else {
        return;
    };
    if let (Some(t), Val::Object(map)) = (typename, &mut *target) {
        // Keep a concrete type already known; take the entity's when it is concrete and
        // ours is not (an `@interfaceObject` subgraph named the interface).
        let keep = map.get("__typename").is_some_and(|old| {
            old == t || old.as_str().is_some_and(is_object) || !t.as_str().is_some_and(is_object)
        });
        if !keep {
            map.insert("__typename", t.clone());
        }
    }
    *left = left.saturating_sub(1);
    if *left == 0 {
        if let Some(Some((entity, _))) = slots.get_mut(i).map(Option::take) {
            merge(target, entity);
        }
    } else {
        merge(target, entity.clone());
    }
}

/// The value of a `@fromContext` argument for the object at `concrete`: read at
/// `argument.path` in the ancestor `levels_up` path elements above it (`null` if absent).
fn context_value(data: &Val, concrete: &[Step<'_>], argument: &ContextArgument) -> Val {
    let keep = concrete.len().saturating_sub(argument.levels_up);
    let Some(mut at) = navigate(data, &concrete[..keep]) else {
        return Val::Null;
    };
    for key in &argument.path {
        match at.get(key.as_str()) {
            Some(next) => at = next,
            None => return Val::Null,
        }
    }
    at.clone()
}

fn navigate<'v>(value: &'v Val, path: &[Step<'_>]) -> Option<&'v Val> {
    let mut cur = value;
    for elem in path {
        cur = match elem {
            Step::Key(k) => cur.get(k)?,
            Step::Index(i) => cur.at(*i)?,
        };
    }
    Some(cur)
}

/// `$name` → `$to` in an operation text, only where the whole variable name matches.
fn rename_variable(text: &str, name: &str, to: &str) -> String {
    let needle = format!("${name}");
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        out.push_str(&rest[..at]);
        if after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.push_str(&needle);
        } else {
            out.push('$');
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Representations collected for one entity batch.
struct Collected<'p> {
    representations: Vec<Val>,
    producers: Vec<(Vec<Step<'p>>, usize)>,
}

/// Producers grouped by representation index.
fn by_representation<'a, 'p>(
    producers: &'a [(Vec<Step<'p>>, usize)],
    count: usize,
) -> Vec<Vec<&'a Vec<Step<'p>>>> {
    let mut by_rep: Vec<Vec<&Vec<Step<'p>>>> = vec![Vec::new(); count];
    for (concrete, index) in producers {
        if let Some(list) = by_rep.get_mut(*index) {
            list.push(concrete);
        }
    }
    by_rep
}

/// A subgraph error at `<alias>.i.rest` goes to the client path of every producer of
/// representation `i` of the batch `alias` names; others lose their path.
fn push_remapped<'b, 'p: 'b>(
    out: &mut Vec<GraphQLError>,
    mut e: GraphQLError,
    batch_of: impl Fn(&str) -> Option<&'b Vec<Vec<&'b Vec<Step<'p>>>>>,
) {
    let remapped = match e.path.as_deref() {
        Some([PathElem::Key(k), PathElem::Index(i), rest @ ..]) => batch_of(k)
            .and_then(|by_rep| by_rep.get(*i))
            .map(|producers| {
                producers
                    .iter()
                    .map(|p| {
                        let mut full = owned(p);
                        full.extend_from_slice(rest);
                        full
                    })
                    .collect::<Vec<_>>()
            }),
        _ => None,
    };
    match remapped {
        Some(paths) => {
            for p in paths {
                out.push(e.clone().with_path(p));
            }
        }
        None => {
            e.path = None;
            out.push(e);
        }
    }
}

/// The response keys of the root fields of a subgraph operation (aliases where given),
/// without `__typename`; empty if the document does not parse (never the case for a
/// planned fetch). Read only when a root fetch fails.
fn root_response_keys(operation: &str) -> Vec<String> {
    use apollo_compiler::ast::{Definition, Selection};
    let Ok(document) = apollo_compiler::parser::Parser::new().parse_ast(operation, "fetch.graphql")
    else {
        return Vec::new();
    };
    let Some(Definition::OperationDefinition(op)) = document
        .definitions
        .iter()
        .find(|d| matches!(d, Definition::OperationDefinition(_)))
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for selection in &op.selection_set {
        if let Selection::Field(field) = selection {
            let key = field.alias.as_ref().unwrap_or(&field.name).to_string();
            if key != "__typename" && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

fn fetch_error(e: &FetchError) -> GraphQLError {
    let (code, service) = match e {
        FetchError::Timeout { service, .. } | FetchError::SlotTimeout { service, .. } => {
            (ErrorCode::SubrequestTimeout, service)
        }
        FetchError::ResponseTooLarge { service, .. } => {
            (ErrorCode::SubrequestResponseTooLarge, service)
        }
        FetchError::Http { service, .. }
        | FetchError::UnknownSubgraph(service)
        | FetchError::CircuitOpen { service, .. } => (ErrorCode::SubrequestHttpError, service),
    };
    GraphQLError::new(code, e.to_string()).with_extension("serviceName", service.clone())
}

fn typename(v: &Val) -> Option<&str> {
    v.get("__typename").and_then(Val::as_str)
}

/// Calls `f` with every non-null object at `path` and its concrete path, in document
/// order. Lists met where the path expects an object are walked into (as `@` would).
fn visit_mut<'p>(
    value: &mut Val,
    path: &'p [PathSegment],
    current: &mut Vec<Step<'p>>,
    is_subtype: &(dyn Fn(&str, &str) -> bool + Sync),
    f: &mut dyn FnMut(&[Step<'p>], &mut Val),
) {
    if let Val::Array(items) = value {
        let rest = match path.first() {
            Some(PathSegment::List) => &path[1..],
            _ => path,
        };
        for (i, item) in items.iter_mut().enumerate() {
            current.push(Step::Index(i));
            visit_mut(item, rest, current, is_subtype, f);
            current.pop();
        }
        return;
    }
    if !value.is_object() {
        return;
    }
    match path.first() {
        None => f(current, value),
        Some(PathSegment::Key(k)) => {
            if let Some(child) = value.get_mut(k) {
                current.push(Step::Key(k.as_str()));
                visit_mut(child, &path[1..], current, is_subtype, f);
                current.pop();
            }
        }
        Some(PathSegment::List) => {}
        Some(PathSegment::TypeCondition(types)) => {
            let keep =
                typename(value).is_some_and(|t| types.iter().any(|c| c == t || is_subtype(c, t)));
            if keep {
                visit_mut(value, &path[1..], current, is_subtype, f);
            }
        }
    }
}

/// Build a representation from `object` through `requires`; `None` when the object is
/// not of a required type or lacks a required field.
fn project(
    object: &Val,
    requires: &[Selection],
    is_subtype: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Option<Val> {
    let mut out = Obj::with_capacity(requires.len() + 1);
    let mut matched_any = false;
    let mut has_fragments = false;
    for sel in requires {
        match sel {
            Selection::Field {
                name,
                alias,
                selections,
            } => {
                let value = object.get(name)?;
                let projected = project_value(value, selections, is_subtype)?;
                out.insert(alias.as_deref().unwrap_or(name), projected);
                matched_any = true;
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                has_fragments = true;
                let applies = match (type_condition, typename(object)) {
                    (None, _) => true,
                    (Some(c), Some(t)) => c == t || is_subtype(c, t),
                    (Some(_), None) => false,
                };
                if applies {
                    if let Val::Object(inner) = project(object, selections, is_subtype)? {
                        for (k, v) in inner {
                            out.insert(k, v);
                        }
                    }
                    matched_any = true;
                }
            }
        }
    }
    if has_fragments && !matched_any {
        return None;
    }
    if let Some(t) = object.get("__typename")
        && !out.contains_key("__typename")
    {
        out.push(Key::new_static("__typename"), t.clone());
    }
    Some(Val::Object(out))
}

fn project_value(
    value: &Val,
    selections: &[Selection],
    is_subtype: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Option<Val> {
    if selections.is_empty() {
        return Some(value.clone());
    }
    match value {
        Val::Null => Some(Val::Null),
        Val::Array(items) => items
            .iter()
            .map(|i| project_value(i, selections, is_subtype))
            .collect::<Option<Vec<_>>>()
            .map(Val::Array),
        Val::Object(_) => {
            let mut projected = project(value, selections, is_subtype)?;
            // Nested objects keep only what was asked for, `__typename` included only if
            // selected.
            let asked_typename = selections
                .iter()
                .any(|s| matches!(s, Selection::Field { name, .. } if name == "__typename"));
            if !asked_typename && let Val::Object(m) = &mut projected {
                m.remove("__typename");
            }
            Some(projected)
        }
        _ => Some(value.clone()),
    }
}

pub(super) fn apply_rewrites(value: &mut Val, rewrites: &[Rewrite]) {
    for rewrite in rewrites {
        match rewrite {
            Rewrite::ValueSetter {
                path,
                if_typename,
                value: new,
            } => {
                if !if_typename.is_empty()
                    && !typename(value).is_some_and(|t| if_typename.iter().any(|c| c == t))
                {
                    continue;
                }
                set_at(value, path, new);
            }
            Rewrite::KeyRenamer {
                path,
                rename_key_to,
            } => rename_at(value, path, rename_key_to),
        }
    }
}

/// Renames the key at the end of `path` (response keys; lists walked into) in every
/// object it reaches. An explicit stack: the path is as deep as the operation.
fn rename_at(value: &mut Val, path: &[String], to: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut stack: Vec<(&mut Val, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Val::Array(items) => stack.extend(items.iter_mut().map(|i| (i, depth))),
            Val::Object(map) if depth == parents.len() => map.rename(last, to),
            Val::Object(map) => {
                if let Some(next) = map.get_mut(parents[depth].as_str()) {
                    stack.push((next, depth + 1));
                }
            }
            _ => {}
        }
    }
}

fn set_at(value: &mut Val, path: &[String], new: &Value) {
    match path {
        [] => {}
        [last] => {
            if let Val::Object(map) = value {
                map.insert(last.as_str(), Val::from(new.clone()));
            }
        }
        [first, rest @ ..] => {
            if let Some(next) = value.get_mut(first.as_str()) {
                set_at(next, rest, new);
            }
        }
    }
}

fn navigate_mut<'v>(value: &'v mut Val, path: &[Step<'_>]) -> Option<&'v mut Val> {
    let mut cur = value;
    for elem in path {
        cur = match elem {
            Step::Key(k) => cur.get_mut(k)?,
            Step::Index(i) => cur.at_mut(*i)?,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn root_response_keys_are_the_fields_a_failed_root_fetch_was_to_answer() {
        assert_eq!(
            root_response_keys(
                "query Q__posts__0($id:ID!){post(id:$id){id} mine:post(id:\"2\"){id} __typename post(id:$id){caption}}"
            ),
            vec!["post".to_string(), "mine".to_string()]
        );
        assert!(root_response_keys("{ not graphql").is_empty());
    }

    fn no_subtypes(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn collect_walks_lists_and_type_conditions() {
        let mut data = Val::from(
            json!({"a": [{"b": {"__typename": "X", "id": 1}}, {"b": null}, {"b": {"__typename": "Y", "id": 2}}]}),
        );
        let path = vec![
            PathSegment::Key("a".into()),
            PathSegment::List,
            PathSegment::Key("b".into()),
            PathSegment::TypeCondition(vec!["Y".into()]),
        ];
        let mut out = Vec::new();
        visit_mut(
            &mut data,
            &path,
            &mut Vec::new(),
            &no_subtypes,
            &mut |concrete, _| out.push(concrete.to_vec()),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0], vec![Step::Key("a"), Step::Index(2), Step::Key("b")]);
    }

    #[test]
    fn visit_mut_walks_nested_lists_in_document_order() {
        let mut data = Val::from(json!({"a": [
            {"b": [{"__typename": "Y", "id": 1}, {"__typename": "X"}]},
            {"b": null},
            {"b": {"__typename": "Y", "id": 2}},
            [{"b": {"__typename": "Y", "id": 3}}]
        ]}));
        let path = vec![
            PathSegment::Key("a".into()),
            PathSegment::List,
            PathSegment::Key("b".into()),
            PathSegment::TypeCondition(vec!["Y".into()]),
        ];
        let collected = vec![
            vec![
                Step::Key("a"),
                Step::Index(0),
                Step::Key("b"),
                Step::Index(0),
            ],
            vec![Step::Key("a"), Step::Index(2), Step::Key("b")],
            vec![
                Step::Key("a"),
                Step::Index(3),
                Step::Index(0),
                Step::Key("b"),
            ],
        ];
        assert_eq!(collected.len(), 3);
        let mut visited = Vec::new();
        visit_mut(
            &mut data,
            &path,
            &mut Vec::new(),
            &no_subtypes,
            &mut |concrete, _| visited.push(concrete.to_vec()),
        );
        assert_eq!(visited, collected);
    }

    #[test]
    fn scatter_finds_producers_the_walk_misses_by_path_and_moves_at_the_last_use() {
        let mut data = Val::from(json!({"a": [{"id": 1}, {"id": 2}, {"id": 3}]}));
        let path = vec![PathSegment::Key("a".into()), PathSegment::List];
        let at = |i| vec![Step::Key("a"), Step::Index(i)];
        // Out of walk order: [a,2] is met in order, [a,0] and [a,1] only by path; the
        // first and the last object share representation 0.
        let producers = vec![(at(2), 0), (at(0), 0), (at(1), 1)];
        let mut slots = vec![
            Some((Val::from(json!({"n": "zero"})), Some(Val::from("T")))),
            Some((Val::from(json!({"n": "one"})), None)),
        ];
        scatter_into(
            &mut data,
            &path,
            &producers,
            &mut slots,
            &no_subtypes,
            &|_| true,
        );
        assert_eq!(
            data.into_json(),
            // Objects without a `__typename` take the entity's.
            json!({"a": [
                {"id": 1, "__typename": "T", "n": "zero"},
                {"id": 2, "n": "one"},
                {"id": 3, "__typename": "T", "n": "zero"}
            ]})
        );
        assert!(
            slots.iter().all(Option::is_none),
            "each entity moved at its last use"
        );
    }

    #[test]
    fn projection_follows_requires_and_skips_other_types() {
        let requires = vec![Selection::InlineFragment {
            type_condition: Some("User".into()),
            selections: vec![
                Selection::Field {
                    name: "__typename".into(),
                    alias: None,
                    selections: vec![],
                },
                Selection::Field {
                    name: "id".into(),
                    alias: None,
                    selections: vec![],
                },
                Selection::Field {
                    name: "org".into(),
                    alias: None,
                    selections: vec![Selection::Field {
                        name: "id".into(),
                        alias: None,
                        selections: vec![],
                    }],
                },
            ],
        }];
        let user = Val::from(
            json!({"__typename": "User", "id": "1", "name": "x", "org": {"id": "o", "n": 1}}),
        );
        assert_eq!(
            project(&user, &requires, &no_subtypes).map(Val::into_json),
            Some(json!({"__typename": "User", "id": "1", "org": {"id": "o"}}))
        );
        let other = Val::from(json!({"__typename": "Bot", "id": "1"}));
        assert_eq!(project(&other, &requires, &no_subtypes), None);
        let missing = Val::from(json!({"__typename": "User", "org": null}));
        assert_eq!(project(&missing, &requires, &no_subtypes), None);
    }
}
