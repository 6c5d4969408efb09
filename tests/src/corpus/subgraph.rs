//! A data-driven Federation v2 test subgraph: a subgraph SDL plus a JSON data file,
//! served over real HTTP (axum, `127.0.0.1:0`), executed by apollo-compiler's
//! spec-following executor (fragments, aliases, `__typename`, `@skip`/`@include`,
//! variables, null propagation and error paths come from there).
//!
//! Data semantics (shared with `tests/fixtures/reference.mjs`, which runs this same code
//! through the `tests/fixtures/server` binary):
//! - `data.Query` / `data.Mutation`: the root objects. A field is looked up as
//!   `name(<args>)` first, where `<args>` is the compact JSON of the coerced arguments
//!   with keys sorted (`user({"id":"1"})`), then as plain `name`.
//! - An object value of a type that has `@key` in this subgraph is completed from
//!   `data.entities.<Type>`: the first record matching the object on one of the type's
//!   keys supplies every field the object does not carry itself. So `{"id": "1"}` is a
//!   reference to the entity `User` 1.
//! - Objects of abstract types carry `__typename`.
//! - `_entities(representations)`: each representation is looked up by its
//!   `__typename`'s key fields (for an interface: among its implementations' records;
//!   a record's own `__typename` names its concrete type); unknown → `null`. Fields not
//!   in the record are read from the representation (so `@requires` inputs arrive).
//! - Special values: `{"__error": "msg", "extensions": {...}}` is a field error at that
//!   path (the field is null, bubbling per the spec; not supported as a list item); a
//!   record with a top-level `__error` is an entity error (`_entities[i]` null + error);
//!   `{"__echo": "a.b"}` returns the value at that path of the current
//!   object (record + representation); `{"__format": "x {a.b} y"}` a string built from it;
//!   `{"__increment": "name"}` increments a counter shared by all subgraphs of a case
//!   and returns it (proves mutation order).
//! - `data.__config`: `{"down": true}` answers HTTP 500; `{"delayMs": N}` sleeps first;
//!   `{"servedSdl": "..."}` executes that SDL instead of the subgraph's file (a subgraph
//!   deployed with a schema other than the composed one: mistyped leaves, unknown enum
//!   values reach the gateway).
//! - `_service { sdl }` returns the SDL file.
//!
//! Every request is recorded (query text, variables, operation name, global sequence
//! number) so tests prove batching by counting.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::Schema;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::{ExtendedType, Type};
use apollo_compiler::validation::Valid;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value};

/// State shared by all subgraphs of one case: counters for `__increment` and the global
/// request sequence (to check the order of requests across subgraphs).
#[derive(Default)]
pub struct Shared {
    counters: Mutex<HashMap<String, i64>>,
    sequence: AtomicU64,
}

/// One request a test subgraph received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// Global position among the requests of all subgraphs sharing one [`Shared`].
    pub seq: u64,
    pub subgraph: String,
    pub query: String,
    pub variables: Value,
    #[serde(rename = "operationName")]
    pub operation_name: Option<String>,
}

/// A running data-driven subgraph. Dropping it stops the server.
pub struct TestSubgraph {
    pub name: String,
    pub url: String,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestSubgraph {
    /// Build the subgraph schema and start serving it on `127.0.0.1:0`.
    pub async fn start(
        name: &str,
        sdl: &str,
        data: Value,
        shared: Arc<Shared>,
    ) -> Result<Self, String> {
        let model = Arc::new(Model::new(name, sdl, data, shared)?);
        let recorded = model.recorded.clone();
        let app = Router::new()
            .route("/graphql", post(handle))
            .route("/__requests", get(requests))
            .with_state(model);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            name: name.to_string(),
            url: format!("http://{addr}/graphql"),
            recorded,
            _shutdown: tx,
        })
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().expect("recorder lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.recorded.lock().expect("recorder lock").len()
    }
}

/// A parsed key field set: `id`, `id sku`, `upc organization { id }`.
#[derive(Debug, Clone)]
struct KeyField {
    name: String,
    sub: Vec<KeyField>,
}

fn parse_field_set(text: &str) -> Vec<KeyField> {
    let spaced = text
        .replace('{', " { ")
        .replace('}', " } ")
        .replace(',', " ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    parse_fields(&tokens, &mut pos)
}

fn parse_fields(tokens: &[&str], pos: &mut usize) -> Vec<KeyField> {
    let mut out: Vec<KeyField> = Vec::new();
    while *pos < tokens.len() {
        match tokens[*pos] {
            "}" => {
                *pos += 1;
                return out;
            }
            "{" => {
                *pos += 1;
                let sub = parse_fields(tokens, pos);
                if let Some(last) = out.last_mut() {
                    last.sub = sub;
                }
            }
            name => {
                *pos += 1;
                out.push(KeyField {
                    name: name.to_string(),
                    sub: Vec::new(),
                });
            }
        }
    }
    out
}

fn key_matches(key: &[KeyField], rep: &Value, record: &Value) -> bool {
    key.iter().all(|f| {
        let (Some(a), Some(b)) = (rep.get(&f.name), record.get(&f.name)) else {
            return false;
        };
        if f.sub.is_empty() {
            a == b
        } else {
            key_matches(&f.sub, a, b)
        }
    })
}

const FEDERATION_PRELUDE: &[(&str, &str)] = &[
    (
        "directive @key",
        "directive @key(fields: FieldSet!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE",
    ),
    (
        "directive @requires",
        "directive @requires(fields: FieldSet!) on FIELD_DEFINITION",
    ),
    (
        "directive @provides",
        "directive @provides(fields: FieldSet!) on FIELD_DEFINITION",
    ),
    (
        "directive @external",
        "directive @external(reason: String) on OBJECT | FIELD_DEFINITION",
    ),
    (
        "directive @shareable",
        "directive @shareable repeatable on OBJECT | FIELD_DEFINITION",
    ),
    (
        "directive @override",
        "directive @override(from: String!, label: String) on FIELD_DEFINITION",
    ),
    (
        "directive @inaccessible",
        "directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION",
    ),
    (
        "directive @tag",
        "directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA",
    ),
    (
        "directive @interfaceObject",
        "directive @interfaceObject on OBJECT",
    ),
    (
        "directive @extends",
        "directive @extends on OBJECT | INTERFACE",
    ),
    (
        "directive @composeDirective",
        "directive @composeDirective(name: String!) repeatable on SCHEMA",
    ),
    (
        "directive @authenticated",
        "directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "directive @requiresScopes",
        "directive @requiresScopes(scopes: [[federation__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "directive @policy",
        "directive @policy(policies: [[federation__Policy!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "directive @cost",
        "directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR",
    ),
    (
        "directive @listSize",
        "directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION",
    ),
    (
        "directive @context",
        "directive @context(name: String!) repeatable on INTERFACE | OBJECT | UNION",
    ),
    (
        "directive @fromContext",
        "directive @fromContext(field: federation__ContextFieldValue) on ARGUMENT_DEFINITION",
    ),
    (
        "scalar federation__ContextFieldValue",
        "scalar federation__ContextFieldValue",
    ),
    (
        "directive @link",
        "directive @link(url: String!, as: String, import: [link__Import], for: link__Purpose) repeatable on SCHEMA",
    ),
    ("scalar link__Import", "scalar link__Import"),
    (
        "enum link__Purpose",
        "enum link__Purpose { SECURITY EXECUTION }",
    ),
    ("scalar FieldSet", "scalar FieldSet"),
    ("scalar federation__Scope", "scalar federation__Scope"),
    ("scalar federation__Policy", "scalar federation__Policy"),
    ("scalar _Any", "scalar _Any"),
    ("type _Service", "type _Service { sdl: String }"),
];

struct Model {
    name: String,
    sdl: String,
    schema: Valid<Schema>,
    /// Type name → its key field sets in this subgraph.
    keys: HashMap<String, Vec<Vec<KeyField>>>,
    data: Value,
    shared: Arc<Shared>,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl Model {
    fn new(name: &str, sdl: &str, data: Value, shared: Arc<Shared>) -> Result<Self, String> {
        // Schema drift: `__config.servedSdl` is the schema actually executed (the
        // composed SDL stays what `_service` returns and what the supergraph was built from).
        let served = data
            .get("__config")
            .and_then(|c| c.get("servedSdl"))
            .and_then(|s| s.as_str())
            .unwrap_or(sdl)
            .to_string();
        let mut full = served.clone();
        full.push('\n');
        for (probe, def) in FEDERATION_PRELUDE {
            if !served.contains(probe) {
                full.push_str(def);
                full.push('\n');
            }
        }
        // First pass: find the entity types.
        let probe_schema = Schema::builder()
            .adopt_orphan_extensions()
            .parse(full.clone(), format!("{name}.graphql"))
            .build()
            .map_err(|e| format!("subgraph {name}: schema does not build:\n{}", e.errors))?;
        let mut keys: HashMap<String, Vec<Vec<KeyField>>> = HashMap::new();
        let mut entity_objects: Vec<String> = Vec::new();
        for (type_name, ty) in &probe_schema.types {
            let directives = match ty {
                ExtendedType::Object(o) => &o.directives,
                ExtendedType::Interface(i) => &i.directives,
                _ => continue,
            };
            for d in directives.get_all("key") {
                let Some(fields) = d
                    .specified_argument_by_name("fields")
                    .and_then(|v| v.as_str())
                else {
                    continue;
                };
                keys.entry(type_name.to_string())
                    .or_default()
                    .push(parse_field_set(fields));
            }
            if keys.contains_key(type_name.as_str()) && matches!(ty, ExtendedType::Object(_)) {
                entity_objects.push(type_name.to_string());
            }
        }
        entity_objects.sort();
        if !entity_objects.is_empty() {
            full.push_str(&format!("union _Entity = {}\n", entity_objects.join(" | ")));
            full.push_str(
                "extend type Query { _entities(representations: [_Any!]!): [_Entity]! }\n",
            );
        }
        full.push_str("extend type Query { _service: _Service! }\n");
        let schema = Schema::builder()
            .adopt_orphan_extensions()
            .parse(full, format!("{name}.graphql"))
            .build()
            .map_err(|e| format!("subgraph {name}: schema does not build:\n{}", e.errors))?
            .validate()
            .map_err(|e| format!("subgraph {name}: invalid schema:\n{}", e.errors))?;
        Ok(Self {
            name: name.to_string(),
            sdl: sdl.to_string(),
            schema,
            keys,
            data,
            shared,
            recorded: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn config(&self, key: &str) -> Option<&Value> {
        self.data.get("__config").and_then(|c| c.get(key))
    }

    /// The record of entity type `type_name` (or of one of its implementations, when it
    /// is an interface here) matching `rep` on one of the type's keys.
    fn find_entity(&self, type_name: &str, rep: &Value) -> Option<(String, Map<String, Value>)> {
        let keys = self.keys.get(type_name)?;
        let mut candidates: Vec<String> = vec![type_name.to_string()];
        if let Some(ExtendedType::Interface(_)) = self.schema.types.get(type_name) {
            let mut impls: Vec<String> = self
                .schema
                .types
                .iter()
                .filter(|(_, t)| match t {
                    ExtendedType::Object(o) => {
                        o.implements_interfaces.iter().any(|i| i.name == type_name)
                    }
                    _ => false,
                })
                .map(|(n, _)| n.to_string())
                .collect();
            impls.sort();
            candidates.extend(impls);
        }
        for candidate in candidates {
            let Some(records) = self
                .data
                .get("entities")
                .and_then(|e| e.get(&candidate))
                .and_then(|r| r.as_array())
            else {
                continue;
            };
            for record in records {
                if keys.iter().any(|k| key_matches(k, rep, record)) {
                    let concrete = record
                        .get("__typename")
                        .and_then(|t| t.as_str())
                        .unwrap_or(&candidate)
                        .to_string();
                    return Some((concrete, record.as_object().cloned().unwrap_or_default()));
                }
            }
        }
        None
    }
}

/// Per-request execution context (sync, single-threaded).
struct Ctx<'m> {
    model: &'m Model,
    /// Extensions of `__error` values, by message, patched into the response.
    error_extensions: RefCell<HashMap<String, Value>>,
    /// Errors added by hand (entity-level errors), appended to the response.
    extra_errors: RefCell<Vec<Value>>,
}

struct Obj<'c> {
    ctx: &'c Ctx<'c>,
    type_name: String,
    layers: Vec<Map<String, Value>>,
}

fn to_json(v: &JsonValue) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn from_json(v: &Value) -> JsonValue {
    serde_json::from_value(v.clone()).unwrap_or(JsonValue::Null)
}

fn field_error(message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Numbers as strings, so `{"id": 2}` and `{"id": "2"}` compare equal.
fn loose(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(loose).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), loose(v))).collect()),
        other => other.clone(),
    }
}

fn path_get<'v>(layers: &'v [Map<String, Value>], path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = layers.iter().find_map(|l| l.get(first))?;
    for p in parts {
        cur = match cur {
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            other => other.get(p)?,
        };
    }
    Some(cur)
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<'c> Obj<'c> {
    fn new(ctx: &'c Ctx<'c>, type_name: String, inline: Map<String, Value>) -> Self {
        let mut layers = vec![inline];
        if ctx.model.keys.contains_key(&type_name)
            && let Some((_, record)) = ctx
                .model
                .find_entity(&type_name, &Value::Object(layers[0].clone()))
        {
            layers.push(record);
        }
        Self {
            ctx,
            type_name,
            layers,
        }
    }

    fn lookup(&self, name: &str, args: &JsonMap) -> Option<Value> {
        let with_args = if args.is_empty() {
            None
        } else {
            let args = sorted(&to_json(&JsonValue::Object(args.clone())));
            Some(format!("{name}({args})"))
        };
        // ID arguments may arrive as Int literals (`user(id: 2)`): compare leniently too.
        let loose_args = with_args
            .as_ref()
            .map(|_| loose(&to_json(&JsonValue::Object(args.clone()))));
        for layer in &self.layers {
            if let Some(k) = &with_args
                && let Some(v) = layer.get(k)
            {
                return Some(v.clone());
            }
            if let Some(wanted) = &loose_args {
                let prefix = format!("{name}(");
                for (k, v) in layer {
                    let Some(inner) = k.strip_prefix(&prefix).and_then(|r| r.strip_suffix(')'))
                    else {
                        continue;
                    };
                    if serde_json::from_str::<Value>(inner).is_ok_and(|a| &loose(&a) == wanted) {
                        return Some(v.clone());
                    }
                }
            }
            if let Some(v) = layer.get(name) {
                return Some(v.clone());
            }
        }
        None
    }

    fn complete(&self, value: Value, ty: &Type) -> Result<ResolvedValue<'c>, FieldError> {
        if let Value::Object(m) = &value {
            if let Some(msg) = m.get("__error") {
                let msg = render(msg);
                if let Some(ext) = m.get("extensions") {
                    self.ctx
                        .error_extensions
                        .borrow_mut()
                        .insert(msg.clone(), ext.clone());
                }
                return Err(field_error(msg));
            }
            if let Some(path) = m.get("__echo").and_then(|p| p.as_str()) {
                let v = path_get(&self.layers, path).cloned().unwrap_or(Value::Null);
                return self.complete(v, ty);
            }
            if let Some(fmt) = m.get("__format").and_then(|p| p.as_str()) {
                return Ok(ResolvedValue::leaf(from_json(&Value::String(
                    self.format(fmt),
                ))));
            }
            if let Some(counter) = m.get("__increment").and_then(|p| p.as_str()) {
                let mut counters = self.ctx.model.shared.counters.lock().expect("counters");
                let c = counters.entry(counter.to_string()).or_insert(0);
                *c += 1;
                return Ok(ResolvedValue::leaf(from_json(&Value::from(*c))));
            }
        }
        match (value, ty) {
            (Value::Null, _) => Ok(ResolvedValue::null()),
            (Value::Array(items), Type::List(inner) | Type::NonNullList(inner)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.complete(item, inner));
                }
                Ok(ResolvedValue::List(Box::new(out.into_iter())))
            }
            (Value::Array(_), _) => Err(field_error("data has a list for a non-list field")),
            (Value::Object(m), Type::Named(n) | Type::NonNullNamed(n))
                if self.ctx.model.schema.types.get(n).is_some_and(|t| {
                    matches!(
                        t,
                        ExtendedType::Object(_)
                            | ExtendedType::Interface(_)
                            | ExtendedType::Union(_)
                    )
                }) =>
            {
                let concrete = match m.get("__typename").and_then(|t| t.as_str()) {
                    Some(t) => t.to_string(),
                    None => match self.ctx.model.schema.types.get(n) {
                        Some(ExtendedType::Object(_)) => n.to_string(),
                        _ => {
                            return Err(field_error(format!(
                                "data object for abstract type {n} has no __typename"
                            )));
                        }
                    },
                };
                Ok(ResolvedValue::object(Obj::new(self.ctx, concrete, m)))
            }
            (v, _) => Ok(ResolvedValue::leaf(from_json(&v))),
        }
    }

    fn format(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut rest = fmt;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            let path = &rest[start + 1..start + end];
            out.push_str(
                &path_get(&self.layers, path)
                    .map(render)
                    .unwrap_or_else(|| "null".into()),
            );
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn entities(&self, info: &ResolveInfo<'_>) -> Result<ResolvedValue<'c>, FieldError> {
        let reps = info
            .arguments()
            .get("representations")
            .map(to_json)
            .unwrap_or(Value::Null);
        let reps = reps.as_array().cloned().unwrap_or_default();
        let mut out: Vec<Result<ResolvedValue<'c>, FieldError>> = Vec::new();
        let response_key = info
            .field_selections()
            .first()
            .map(|f| f.response_key().to_string())
            .unwrap_or_else(|| "_entities".into());
        for (index, rep) in reps.into_iter().enumerate() {
            let Some(type_name) = rep.get("__typename").and_then(|t| t.as_str()) else {
                out.push(Err(field_error("representation without __typename")));
                continue;
            };
            match self.ctx.model.find_entity(type_name, &rep) {
                None => out.push(Ok(ResolvedValue::null())),
                Some((_, record)) if record.contains_key("__error") => {
                    // apollo-compiler turns an item error into a null *list*; the spec
                    // (and real subgraphs) null only the item: do that by hand.
                    let mut err = serde_json::json!({
                        "message": render(&record["__error"]),
                        "path": [response_key.clone(), index],
                    });
                    if let Some(ext) = record.get("extensions") {
                        err["extensions"] = ext.clone();
                    }
                    self.ctx.extra_errors.borrow_mut().push(err);
                    out.push(Ok(ResolvedValue::null()));
                }
                Some((concrete, record)) => {
                    let rep_map = rep.as_object().cloned().unwrap_or_default();
                    out.push(Ok(ResolvedValue::object(Obj {
                        ctx: self.ctx,
                        type_name: concrete,
                        layers: vec![record, rep_map],
                    })));
                }
            }
        }
        Ok(ResolvedValue::List(Box::new(out.into_iter())))
    }
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let name = info.field_name();
        let is_query = self.type_name == "Query";
        if is_query && name == "_entities" {
            return self.entities(info);
        }
        if is_query && name == "_service" {
            let mut m = Map::new();
            m.insert("sdl".into(), Value::String(self.ctx.model.sdl.clone()));
            return Ok(ResolvedValue::object(Obj {
                ctx: self.ctx,
                type_name: "_Service".into(),
                layers: vec![m],
            }));
        }
        let value = self.lookup(name, info.arguments()).unwrap_or(Value::Null);
        self.complete(value, &info.field_definition().ty)
    }
}

fn graphql_error(message: impl Into<String>) -> Value {
    serde_json::json!({ "errors": [ { "message": message.into() } ] })
}

async fn requests(State(model): State<Arc<Model>>) -> Json<Vec<RecordedRequest>> {
    Json(model.recorded.lock().expect("recorder lock").clone())
}

async fn handle(State(model): State<Arc<Model>>, body: axum::body::Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(graphql_error(format!("bad JSON: {e}"))),
            )
                .into_response();
        }
    };
    let query = body
        .get("query")
        .and_then(|q| q.as_str())
        .unwrap_or("")
        .to_string();
    let variables = body.get("variables").cloned().unwrap_or(Value::Null);
    let operation_name = body
        .get("operationName")
        .and_then(|q| q.as_str())
        .map(str::to_string);
    let seq = model.shared.sequence.fetch_add(1, Ordering::SeqCst);
    model
        .recorded
        .lock()
        .expect("recorder lock")
        .push(RecordedRequest {
            seq,
            subgraph: model.name.clone(),
            query: query.clone(),
            variables: variables.clone(),
            operation_name: operation_name.clone(),
        });
    if let Some(ms) = model.config("delayMs").and_then(|v| v.as_u64()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if model.config("down").and_then(|v| v.as_bool()) == Some(true) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "subgraph is down").into_response();
    }
    let out = execute(&model, &query, &variables, operation_name.as_deref());
    Json(out).into_response()
}

fn execute(model: &Model, query: &str, variables: &Value, operation_name: Option<&str>) -> Value {
    let doc =
        match ExecutableDocument::parse_and_validate(&model.schema, query, "operation.graphql") {
            Ok(d) => d,
            Err(e) => {
                let messages: Vec<String> = e.errors.iter().map(|d| d.to_json().message).collect();
                return graphql_error(format!(
                    "subgraph {}: invalid operation: {}",
                    model.name,
                    messages.join("; ")
                ));
            }
        };
    let vars: JsonMap = match variables {
        Value::Object(_) => serde_json::from_value(variables.clone()).unwrap_or_default(),
        _ => JsonMap::new(),
    };
    let execution = match Execution::new(&model.schema, &doc).operation_name(operation_name) {
        Ok(e) => e.raw_variable_values(&vars),
        Err(e) => return graphql_error(format!("{e:?}")),
    };
    let root_name = match doc.operations.get(operation_name) {
        Ok(op) => op.object_type().to_string(),
        Err(_) => "Query".to_string(),
    };
    let ctx = Ctx {
        model,
        error_extensions: RefCell::new(HashMap::new()),
        extra_errors: RefCell::new(Vec::new()),
    };
    let root_data = model
        .data
        .get(&root_name)
        .and_then(|v| v.as_object())
        .cloned()
        .unwrap_or_default();
    let root = Obj {
        ctx: &ctx,
        type_name: root_name,
        layers: vec![root_data],
    };
    let response = match execution.execute_sync(&root) {
        Ok(r) => r,
        Err(e) => return graphql_error(e.to_graphql_error(&doc.sources).message),
    };
    let mut out = serde_json::to_value(&response).unwrap_or(Value::Null);
    let ext = ctx.error_extensions.borrow();
    if let Some(errors) = out.get_mut("errors").and_then(|e| e.as_array_mut()) {
        for err in errors {
            let mut msg = err
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            if let Some(stripped) = msg.strip_prefix("resolver error: ") {
                msg = stripped.to_string();
                err["message"] = Value::String(msg.clone());
            }
            if let Some(x) = ext.get(&msg) {
                err["extensions"] = x.clone();
            }
        }
    }
    let extra = ctx.extra_errors.take();
    if !extra.is_empty()
        && let Some(obj) = out.as_object_mut()
    {
        let errors = obj
            .entry("errors")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = errors.as_array_mut() {
            list.extend(extra);
        }
    }
    out
}
