//! Authorization: `@authenticated`, `@requiresScopes` and `@policy` (from the
//! supergraph) plus config rules keyed by schema coordinate, enforced after
//! authentication and before planning, with Apollo's semantics.
//!
//! `@policy(policies: [["a", "b"], ["c"]])` holds when a [`PolicyEvaluator`] grants a
//! AND b, OR c. The evaluator is asked once per request (only when the supergraph has
//! policies) about every policy the supergraph names; the default one,
//! [`ConfigPolicies`], maps names to `[authorization.policies]` rules and denies the
//! rest. An embedding application plugs its own through
//! [`crate::Gateway::with_policy_evaluator`].
//!
//! A field is unauthorized when the identity misses a requirement of the field
//! (`Type.field`), of the type it returns, or — for a field selected on an interface —
//! of the same field on any implementation. Unauthorized fields (and fragments on
//! unauthorized types) are removed from the operation that is planned; the client's
//! operation is still used to shape the response, so they come back as `null` with an
//! `UNAUTHORIZED_FIELD_OR_TYPE` error at their path (a non-null one bubbles per spec).
//! With `reject_unauthorized` the whole request is refused instead (401 anonymous,
//! 403 authenticated). A selection set left empty gets `__typename` so the filtered
//! operation stays valid; the client never sees it.
//!
//! Everything is compiled at start-up into two maps; the hot path does map lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use apollo_compiler::Schema;
use apollo_compiler::ast;
use apollo_compiler::executable::{ExecutableDocument, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use http::StatusCode;

use crate::auth::Identity;
use crate::config::{AuthorizationConfig, ConfigError, RuleConfig};
use crate::error::{ErrorCode, GraphQLError, PathElem, RequestFailure};
use crate::execute::Val;

/// Errors reported per request are capped (the operation is filtered completely).
const MAX_ERRORS: usize = 100;

/// One requirement: all of it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A verified token.
    Authenticated,
    /// One of the groups held completely (`[["a", "b"], ["c"]]` = a AND b, OR c).
    Scopes(Vec<Vec<String>>),
    /// One of the groups of policies granted completely (`@policy`).
    Policies(Vec<Vec<String>>),
}

impl Requirement {
    fn holds(&self, who: &Subject<'_>) -> bool {
        let identity = who.identity;
        match self {
            Requirement::Authenticated => identity.user_id.is_some(),
            Requirement::Scopes(groups) => {
                identity.user_id.is_some()
                    && groups
                        .iter()
                        .any(|g| g.iter().all(|s| identity.scopes.contains(s)))
            }
            Requirement::Policies(groups) => groups
                .iter()
                .any(|g| g.iter().all(|p| who.granted.contains(p))),
        }
    }
}

/// Decides which `@policy` policies an identity is granted. Called once per request,
/// synchronously, on the request path: keep it cheap (no I/O).
pub trait PolicyEvaluator: Send + Sync {
    /// The subset of `policies` granted to `identity` (anything else is denied).
    fn granted(&self, identity: &Identity, policies: &BTreeSet<String>) -> BTreeSet<String>;
}

/// The default [`PolicyEvaluator`]: `[authorization.policies]` maps a policy name to a
/// rule (`"authenticated"` or `{ scopes = [[...]] }`); a policy not listed is denied.
#[derive(Debug, Default, Clone)]
pub struct ConfigPolicies {
    rules: BTreeMap<String, Requirement>,
}

impl ConfigPolicies {
    /// Compile `config.policies` (unknown rule shapes are refused).
    pub fn new(config: &AuthorizationConfig) -> Result<Self, ConfigError> {
        let rules = config
            .policies
            .iter()
            .map(|(name, rule)| {
                rule_requirement(&format!("authorization.policies.\"{name}\""), rule)
                    .map(|r| (name.clone(), r))
            })
            .collect::<Result<_, _>>()?;
        Ok(ConfigPolicies { rules })
    }
}

impl PolicyEvaluator for ConfigPolicies {
    fn granted(&self, identity: &Identity, policies: &BTreeSet<String>) -> BTreeSet<String> {
        let who = Subject {
            identity,
            granted: BTreeSet::new(),
        };
        policies
            .iter()
            .filter(|p| self.rules.get(*p).is_some_and(|r| r.holds(&who)))
            .cloned()
            .collect()
    }
}

/// Who a request is checked for: the identity and the policies granted to it.
struct Subject<'a> {
    identity: &'a Identity,
    granted: BTreeSet<String>,
}

/// The evaluator in force (replaceable after start-up by the embedding application).
struct EvaluatorSlot(parking_lot::RwLock<Arc<dyn PolicyEvaluator>>);

impl Default for EvaluatorSlot {
    fn default() -> Self {
        EvaluatorSlot(parking_lot::RwLock::new(
            Arc::new(ConfigPolicies::default()),
        ))
    }
}

impl std::fmt::Debug for EvaluatorSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyEvaluator")
    }
}

/// The compiled policy.
#[derive(Debug, Default)]
pub struct Authorizer {
    fields: HashMap<(String, String), Vec<Requirement>>,
    types: HashMap<String, Vec<Requirement>>,
    require_authentication: bool,
    reject_unauthorized: bool,
    /// Every policy named by a `@policy` directive.
    policies: BTreeSet<String>,
    /// Every distinct requirement of `fields` and `types`: which of them an identity
    /// misses determines the filtered operation (see [`Filtered::denied`]).
    requirements: Vec<Requirement>,
    evaluator: EvaluatorSlot,
}

/// Some fields are unauthorized: the errors to report, and what the operation to plan
/// ([`Authorizer::filter`], built only when the plan is not cached) depends on.
pub struct Filtered {
    pub errors: Vec<GraphQLError>,
    /// The policies granted to the identity (the evaluator is asked once per request).
    granted: BTreeSet<String>,
    /// Indices of the requirements the identity misses. The filtered document is a
    /// function of the client's document and this set only, so (query hash, `denied`)
    /// keys its plan without printing and hashing the filtered document.
    pub denied: Vec<u32>,
}

impl Authorizer {
    /// Compile the directives found in `directive_schema` (the supergraph schema, or the
    /// API schema) and the config rules, checked against the API schema.
    pub fn new(
        config: &AuthorizationConfig,
        api_schema: &Schema,
        directive_schema: &Schema,
    ) -> Result<Self, ConfigError> {
        let mut authz = Authorizer {
            require_authentication: config.require_authentication,
            reject_unauthorized: config.reject_unauthorized,
            ..Default::default()
        };
        authz.set_evaluator(Arc::new(ConfigPolicies::new(config)?));
        let names = DirectiveNames::of(directive_schema);
        for (name, ty) in &directive_schema.types {
            if !api_schema.types.contains_key(name) {
                continue;
            }
            for r in names.requirements(ty.directives().iter().map(|d| &*d.node)) {
                authz.add_type(name.as_str(), r);
            }
            let fields: Vec<_> = match ty {
                ExtendedType::Object(o) => o.fields.iter().collect(),
                ExtendedType::Interface(i) => i.fields.iter().collect(),
                _ => Vec::new(),
            };
            for (field, def) in fields {
                for r in names.requirements(def.directives.iter().map(|d| &**d)) {
                    authz.add_field(name.as_str(), field.as_str(), r);
                }
            }
        }
        for (coordinate, rule) in &config.rules {
            let key = format!("authorization.rules.\"{coordinate}\"");
            let requirement = rule_requirement(&key, rule)?;
            let invalid = |message: String| ConfigError::Invalid { key, message };
            match coordinate.split_once('.') {
                Some((ty, field)) => {
                    let exists = api_schema.types.get(ty).is_some_and(|t| match t {
                        ExtendedType::Object(o) => o.fields.contains_key(field),
                        ExtendedType::Interface(i) => i.fields.contains_key(field),
                        _ => false,
                    });
                    if !exists {
                        return Err(invalid("no such field in the API schema".into()));
                    }
                    authz.add_field(ty, field, requirement);
                }
                None => {
                    if !api_schema.types.contains_key(coordinate.as_str()) {
                        return Err(invalid("no such type in the API schema".into()));
                    }
                    authz.add_type(coordinate, requirement);
                }
            }
        }
        // A field selected on an interface carries the requirements of the same field on
        // every implementation (Apollo's rule), so it cannot be read around them.
        let implementers = api_schema.implementers_map();
        let mut inherited = Vec::new();
        for (iface, imps) in &implementers {
            let Some(ExtendedType::Interface(i)) = api_schema.types.get(iface) else {
                continue;
            };
            for field in i.fields.keys() {
                for object in imps.iter() {
                    let key = (object.to_string(), field.to_string());
                    for r in authz.fields.get(&key).into_iter().flatten() {
                        inherited.push((iface.to_string(), field.to_string(), r.clone()));
                    }
                }
            }
        }
        for (ty, field, r) in inherited {
            authz.add_field(&ty, &field, r);
        }
        let mut requirements: Vec<Requirement> = Vec::new();
        for r in authz.fields.values().chain(authz.types.values()).flatten() {
            if let Requirement::Policies(groups) = r {
                authz.policies.extend(groups.iter().flatten().cloned());
            }
            if !requirements.contains(r) {
                requirements.push(r.clone());
            }
        }
        authz.requirements = requirements;
        for name in config.policies.keys() {
            if !authz.policies.contains(name) {
                tracing::warn!(
                    policy = %name,
                    "authorization.policies: no @policy in the supergraph names this policy"
                );
            }
        }
        Ok(authz)
    }

    /// Replace the [`PolicyEvaluator`] (the default one maps `[authorization.policies]`).
    pub fn set_evaluator(&self, evaluator: Arc<dyn PolicyEvaluator>) {
        *self.evaluator.0.write() = evaluator;
    }

    /// The identity plus the policies the evaluator grants it (asked only when the
    /// supergraph has `@policy` directives).
    fn subject<'a>(&self, identity: &'a Identity) -> Subject<'a> {
        let granted = if self.policies.is_empty() {
            BTreeSet::new()
        } else {
            let evaluator = self.evaluator.0.read().clone();
            evaluator.granted(identity, &self.policies)
        };
        Subject { identity, granted }
    }

    fn add_field(&mut self, ty: &str, field: &str, r: Requirement) {
        let list = self
            .fields
            .entry((ty.to_string(), field.to_string()))
            .or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }

    fn add_type(&mut self, ty: &str, r: Requirement) {
        let list = self.types.entry(ty.to_string()).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }

    /// Whether any rule exists (no rules: nothing to walk).
    pub fn has_rules(&self) -> bool {
        !self.fields.is_empty() || !self.types.is_empty()
    }

    /// `require_authentication`: refuse anonymous requests outright.
    pub fn check_identity(&self, identity: &Identity) -> Result<(), RequestFailure> {
        if self.require_authentication && identity.user_id.is_none() {
            return Err(RequestFailure::from(
                GraphQLError::new(
                    ErrorCode::Unauthenticated,
                    "an access token is required (Authorization: Bearer <token>)",
                )
                .with_extension("reason", "TOKEN_REQUIRED"),
            ));
        }
        Ok(())
    }

    fn type_allowed(&self, ty: &str, identity: &Subject<'_>) -> bool {
        self.types
            .get(ty)
            .is_none_or(|rs| rs.iter().all(|r| r.holds(identity)))
    }

    fn field_allowed(
        &self,
        parent: &str,
        field: &ast::FieldDefinition,
        identity: &Subject<'_>,
    ) -> bool {
        if field.name.starts_with("__") {
            return true;
        }
        let own = self
            .fields
            .get(&(parent.to_string(), field.name.to_string()))
            .is_none_or(|rs| rs.iter().all(|r| r.holds(identity)));
        own && self.type_allowed(field.ty.inner_named_type(), identity)
    }

    /// Check `operation` for `identity`: `Ok(None)` when everything is allowed,
    /// `Ok(Some(filtered))` when fields were removed, `Err` when the request is refused
    /// (`reject_unauthorized`).
    pub fn authorize(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Operation,
        identity: &Identity,
    ) -> Result<Option<Filtered>, RequestFailure> {
        if !self.has_rules() {
            return Ok(None);
        }
        let subject = self.subject(identity);
        let who = &subject;
        let mut errors = Vec::new();
        let mut visiting = HashSet::new();
        let mut path = Vec::new();
        self.collect_errors(
            document,
            &operation.selection_set,
            who,
            &mut path,
            &mut visiting,
            &mut errors,
        );
        if errors.is_empty() {
            return Ok(None);
        }
        if self.reject_unauthorized {
            let status = if identity.user_id.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            return Err(RequestFailure { status, errors });
        }
        let denied_requirements = self
            .requirements
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.holds(who))
            .map(|(i, _)| i as u32)
            .collect();
        Ok(Some(Filtered {
            errors,
            granted: subject.granted,
            denied: denied_requirements,
        }))
    }

    /// The operation to plan for `filtered` (from [`authorize`](Self::authorize) of the
    /// same document and identity): unauthorized selections removed.
    pub fn filter(
        &self,
        schema: &Valid<Schema>,
        document: &Valid<ExecutableDocument>,
        identity: &Identity,
        filtered: &Filtered,
    ) -> Valid<ExecutableDocument> {
        let who = &Subject {
            identity,
            granted: filtered.granted.clone(),
        };
        let mut filtered = (**document).clone();
        let denied: HashSet<String> = document
            .fragments
            .iter()
            .filter(|(_, f)| !self.type_allowed(f.type_condition().as_str(), who))
            .map(|(name, _)| name.to_string())
            .collect();
        for op in filtered
            .operations
            .anonymous
            .iter_mut()
            .chain(filtered.operations.named.values_mut())
        {
            self.filter_set(schema, &mut op.make_mut().selection_set, who, &denied);
        }
        for fragment in filtered.fragments.values_mut() {
            self.filter_set(schema, &mut fragment.make_mut().selection_set, who, &denied);
        }
        // Only selections were removed (and `__typename` added to emptied sets); unused
        // fragments or variables left behind do not matter to the planner.
        Valid::assume_valid(filtered)
    }

    /// Walk the client's operation (fragments expanded, cycles impossible after
    /// validation but guarded) and report each unauthorized selection at its path.
    fn collect_errors<'d>(
        &self,
        document: &'d ExecutableDocument,
        set: &'d SelectionSet,
        identity: &Subject<'_>,
        path: &mut Vec<PathElem>,
        visiting: &mut HashSet<&'d str>,
        errors: &mut Vec<GraphQLError>,
    ) {
        for selection in &set.selections {
            if errors.len() >= MAX_ERRORS {
                return;
            }
            match selection {
                Selection::Field(f) => {
                    path.push(PathElem::Key(f.response_key().to_string()));
                    if !self.field_allowed(set.ty.as_str(), &f.definition, identity) {
                        errors.push(unauthorized(path.clone()));
                    } else {
                        self.collect_errors(
                            document,
                            &f.selection_set,
                            identity,
                            path,
                            visiting,
                            errors,
                        );
                    }
                    path.pop();
                }
                Selection::InlineFragment(inline) => {
                    let ty = inline.selection_set.ty.as_str();
                    if !self.type_allowed(ty, identity) {
                        errors.push(unauthorized(path.clone()));
                    } else {
                        self.collect_errors(
                            document,
                            &inline.selection_set,
                            identity,
                            path,
                            visiting,
                            errors,
                        );
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let Some(fragment) = document.fragments.get(&spread.fragment_name) else {
                        continue;
                    };
                    if !self.type_allowed(fragment.type_condition().as_str(), identity) {
                        errors.push(unauthorized(path.clone()));
                    } else if visiting.insert(spread.fragment_name.as_str()) {
                        self.collect_errors(
                            document,
                            &fragment.selection_set,
                            identity,
                            path,
                            visiting,
                            errors,
                        );
                        visiting.remove(spread.fragment_name.as_str());
                    }
                }
            }
        }
    }

    /// Remove unauthorized selections from a selection set (recursively).
    fn filter_set(
        &self,
        schema: &Valid<Schema>,
        set: &mut SelectionSet,
        identity: &Subject<'_>,
        denied: &HashSet<String>,
    ) {
        let was_empty = set.selections.is_empty();
        let parent = set.ty.clone();
        let fragments_ok = |name: &str| self.type_allowed(name, identity);
        set.selections.retain_mut(|selection| match selection {
            Selection::Field(f) => {
                if !self.field_allowed(parent.as_str(), &f.definition, identity) {
                    return false;
                }
                if !f.selection_set.selections.is_empty() {
                    self.filter_set(schema, &mut f.make_mut().selection_set, identity, denied);
                }
                true
            }
            Selection::InlineFragment(inline) => {
                if !fragments_ok(inline.selection_set.ty.as_str()) {
                    return false;
                }
                self.filter_set(
                    schema,
                    &mut inline.make_mut().selection_set,
                    identity,
                    denied,
                );
                true
            }
            // Fragment definitions are filtered on their own; a spread on an
            // unauthorized type condition goes.
            Selection::FragmentSpread(spread) => !denied.contains(spread.fragment_name.as_str()),
        });
        if !was_empty
            && set.selections.is_empty()
            && let Ok(typename) = set.new_field(schema, apollo_compiler::name!("__typename"))
        {
            set.push(typename);
        }
    }
}

/// Most paths one unauthorized selection is reported at (one per element of the lists
/// on its way); beyond, the rest of its elements go unreported.
const MAX_PATHS_PER_SELECTION: usize = 1000;

/// Drop the "non-null field is null" errors an authorization error already explains
/// (compared on response keys, list indices ignored), then put the authorization errors
/// first, each at its paths in `data`: authorization is decided on the operation, by
/// response keys, so an unauthorized field under a list is reported once per element,
/// with the element's index, as execution would have reported it (`["users", 0,
/// "email"]`, `["users", 1, "email"]`, ...). Where `data` holds no value on the way (a
/// parent nulled, an empty list, no data), the path is given by response keys.
pub fn merge_errors(errors: &mut Vec<GraphQLError>, authz: Vec<GraphQLError>, data: Option<&Val>) {
    let explained = |e: &GraphQLError| {
        e.code() == Some(ErrorCode::NullValueInNonNullField.as_str())
            && e.path.as_ref().is_some_and(|path| {
                let keys: Vec<PathElem> = path
                    .iter()
                    .filter(|p| matches!(p, PathElem::Key(_)))
                    .cloned()
                    .collect();
                authz
                    .iter()
                    .filter_map(|a| a.path.as_ref())
                    .any(|a| keys.starts_with(a))
            })
    };
    errors.retain(|e| !explained(e));
    let mut placed = Vec::with_capacity(authz.len());
    for error in authz {
        let paths = match (&error.path, data) {
            (Some(keys), Some(data)) => paths_in(data, keys),
            _ => Vec::new(),
        };
        if paths.is_empty() {
            placed.push(error);
            continue;
        }
        for path in paths {
            let mut at = error.clone();
            at.path = Some(path);
            placed.push(at);
        }
    }
    errors.splice(0..0, placed);
}

/// The paths response keys `keys` take in `data`, one per element of each list on the
/// way (depth-first, in order), at most [`MAX_PATHS_PER_SELECTION`]. A null or missing
/// value on the way ends its path with the remaining keys. Iterative: no recursion
/// whose depth the response controls.
fn paths_in(data: &Val, keys: &[PathElem]) -> Vec<Vec<PathElem>> {
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<PathElem>, &Val, usize)> = vec![(Vec::new(), data, 0)];
    while let Some((mut path, value, i)) = stack.pop() {
        if out.len() >= MAX_PATHS_PER_SELECTION {
            break;
        }
        match (value, keys.get(i)) {
            (Val::Array(items), _) => {
                for (n, item) in items.iter().enumerate().rev() {
                    let mut at = path.clone();
                    at.push(PathElem::Index(n));
                    stack.push((at, item, i));
                }
            }
            (Val::Object(object), Some(PathElem::Key(key))) => {
                path.push(PathElem::Key(key.clone()));
                match object.get(key) {
                    Some(child) if i + 1 < keys.len() => stack.push((path, child, i + 1)),
                    Some(_) => out.push(path),
                    None => {
                        path.extend(keys[i + 1..].iter().cloned());
                        out.push(path);
                    }
                }
            }
            _ => {
                path.extend(keys[i..].iter().cloned());
                out.push(path);
            }
        }
    }
    out
}

fn unauthorized(path: Vec<PathElem>) -> GraphQLError {
    GraphQLError::new(
        ErrorCode::UnauthorizedFieldOrType,
        "Unauthorized field or type",
    )
    .with_path(path)
}

/// A config rule (`"authenticated"` or `{ scopes = [[...]] }`) as a requirement.
fn rule_requirement(key: &str, rule: &RuleConfig) -> Result<Requirement, ConfigError> {
    match rule {
        RuleConfig::Keyword(k) if k == "authenticated" => Ok(Requirement::Authenticated),
        RuleConfig::Keyword(k) => Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!(
                "unknown rule \"{k}\": use \"authenticated\" or {{ scopes = [[...]] }}"
            ),
        }),
        RuleConfig::Scopes { scopes } => Ok(Requirement::Scopes(scopes.clone())),
    }
}

/// The names the authorization directives have in a schema, from its
/// `@link(url: "https://specs.apollo.dev/<spec>/v0.x")`: the link's `as:` name (else the
/// spec name), and any `import: ["@<spec>"]` or `import: [{name: "@<spec>", as: "@x"}]`;
/// without a link, the spec names.
struct DirectiveNames {
    authenticated: Vec<String>,
    requires_scopes: Vec<String>,
    policy: Vec<String>,
}

impl DirectiveNames {
    fn of(schema: &Schema) -> Self {
        let linked = |spec: &str| {
            let mut names = Vec::new();
            for link in schema
                .schema_definition
                .directives
                .iter()
                .filter(|d| d.name == "link")
            {
                let Some(url) = link
                    .specified_argument_by_name("url")
                    .and_then(|u| u.as_str())
                else {
                    continue;
                };
                let Some((_, tail)) = url.rsplit_once(&format!("/{spec}/v")) else {
                    continue;
                };
                if tail.contains('/') {
                    continue;
                }
                names.push(
                    link.specified_argument_by_name("as")
                        .and_then(|a| a.as_str())
                        .unwrap_or(spec)
                        .to_string(),
                );
                let imports = link
                    .specified_argument_by_name("import")
                    .and_then(|i| i.as_list())
                    .unwrap_or_default();
                let root = format!("@{spec}");
                for import in imports {
                    let renamed = match import.as_ref() {
                        ast::Value::String(name) if *name == root => Some(root.as_str()),
                        ast::Value::Object(fields) => {
                            let field = |key: &str| {
                                fields
                                    .iter()
                                    .find(|(k, _)| k == key)
                                    .and_then(|(_, v)| v.as_str())
                            };
                            (field("name") == Some(root.as_str()))
                                .then(|| field("as").unwrap_or(root.as_str()))
                        }
                        _ => None,
                    };
                    if let Some(name) = renamed {
                        names.push(name.trim_start_matches('@').to_string());
                    }
                }
            }
            if names.is_empty() {
                names.push(spec.to_string());
            }
            names.dedup();
            names
        };
        DirectiveNames {
            authenticated: linked("authenticated"),
            requires_scopes: linked("requiresScopes"),
            policy: linked("policy"),
        }
    }

    /// `@authenticated` / `@requiresScopes(scopes:)` / `@policy(policies:)` among
    /// directives.
    fn requirements<'a>(
        &self,
        directives: impl Iterator<Item = &'a ast::Directive>,
    ) -> Vec<Requirement> {
        let mut out = Vec::new();
        for d in directives {
            let name = d.name.as_str();
            let is = |names: &[String]| names.iter().any(|n| n == name);
            if is(&self.authenticated) {
                out.push(Requirement::Authenticated);
            } else if is(&self.requires_scopes) {
                out.push(Requirement::Scopes(groups(d, "scopes")));
            } else if is(&self.policy) {
                out.push(Requirement::Policies(groups(d, "policies")));
            }
        }
        out
    }
}

/// A `[[String]]` argument.
fn groups(d: &ast::Directive, argument: &str) -> Vec<Vec<String>> {
    d.specified_argument_by_name(argument)
        .and_then(|v| v.as_list())
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    g.as_list()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::ExecutableDocument;
    use serde_json::json;

    fn keys(keys: &[&str]) -> Vec<PathElem> {
        keys.iter().map(|k| PathElem::Key(k.to_string())).collect()
    }

    fn paths(data: serde_json::Value, at: &[&str]) -> serde_json::Value {
        serde_json::to_value(paths_in(&Val::from(data), &keys(at))).expect("json")
    }

    #[test]
    fn unauthorized_paths_take_the_list_indices_of_the_response() {
        // A field under two lists: one path per element, in order.
        let data = json!({"users": [
            {"posts": [{"secret": null}, {"secret": null}]},
            {"posts": []},
            {"posts": [{"secret": null}]},
        ]});
        assert_eq!(
            paths(data, &["users", "posts", "secret"]),
            json!([
                ["users", 0, "posts", 0, "secret"],
                ["users", 0, "posts", 1, "secret"],
                ["users", 2, "posts", 0, "secret"],
            ])
        );
        // A parent nulled by a non-null unauthorized field: the path ends in the keys.
        let data = json!({"users": [{"secret": null, "id": "1"}, null]});
        assert_eq!(
            paths(data, &["users", "secret"]),
            json!([["users", 0, "secret"], ["users", 1, "secret"]])
        );
        // No data on the way: the keys alone.
        assert_eq!(
            paths(json!(null), &["me", "secret"]),
            json!([["me", "secret"]])
        );
        // Bounded.
        let many = json!({"users": vec![json!({"secret": null}); 5000]});
        assert_eq!(
            paths(many, &["users", "secret"]).as_array().map(Vec::len),
            Some(MAX_PATHS_PER_SELECTION)
        );
    }

    #[test]
    fn merged_authorization_errors_are_placed_per_element_and_come_first() {
        let data = Val::from(json!({"users": [{"email": null}, {"email": null}]}));
        let mut errors = vec![GraphQLError::new(ErrorCode::InternalServerError, "other")];
        let refused = vec![unauthorized(keys(&["users", "email"]))];
        merge_errors(&mut errors, refused.clone(), Some(&data));
        let placed: Vec<_> = errors.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            serde_json::to_value(placed).expect("json"),
            json!([["users", 0, "email"], ["users", 1, "email"], null])
        );
        // An empty list: the error still says what was refused, by keys.
        let mut errors = Vec::new();
        let empty = Val::from(json!({"users": []}));
        merge_errors(&mut errors, refused, Some(&empty));
        assert_eq!(errors[0].path, Some(keys(&["users", "email"])));
    }

    #[test]
    fn directive_names_follow_link_as_and_import_renames() {
        let sdl = r#"
            schema
              @link(url: "https://specs.apollo.dev/link/v1.0")
              @link(url: "https://specs.apollo.dev/authenticated/v0.1", as: "mustLogIn")
              @link(url: "https://specs.apollo.dev/requiresScopes/v0.1", import: [{name: "@requiresScopes", as: "@scopes"}])
              @link(url: "https://specs.apollo.dev/policy/v0.1", import: ["@policy"])
            { query: Query }
            directive @link(url: String, as: String, import: [link__Import], for: String) repeatable on SCHEMA
            scalar link__Import
            directive @mustLogIn on FIELD_DEFINITION | OBJECT
            directive @scopes(scopes: [[String!]!]!) on FIELD_DEFINITION | OBJECT
            directive @policy(policies: [[String!]!]!) on FIELD_DEFINITION | OBJECT
            type Query { a: String @mustLogIn, b: String @scopes(scopes: [["x"]]), c: String @policy(policies: [["p"]]), d: String }
        "#;
        let schema = Schema::parse(sdl, "renamed.graphql").expect("schema");
        let names = DirectiveNames::of(&schema);
        assert_eq!(names.authenticated, vec!["mustLogIn".to_string()]);
        assert_eq!(
            names.requires_scopes,
            vec!["requiresScopes".to_string(), "scopes".to_string()]
        );
        assert_eq!(names.policy, vec!["policy".to_string()]);
        let query = match schema.types.get("Query") {
            Some(ExtendedType::Object(o)) => o.clone(),
            _ => panic!("Query"),
        };
        let of =
            |field: &str| names.requirements(query.fields[field].directives.iter().map(|d| &**d));
        assert!(matches!(of("a")[..], [Requirement::Authenticated]));
        assert!(matches!(of("b")[..], [Requirement::Scopes(_)]));
        assert!(matches!(of("c")[..], [Requirement::Policies(_)]));
        assert!(of("d").is_empty());
    }

    const SCHEMA: &str = r#"
        directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
        directive @requiresScopes(scopes: [[String!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
        type Query { node: Node, a: A, b: B }
        interface Node { id: ID! secret: String }
        type A implements Node { id: ID! secret: String @authenticated }
        type B implements Node @requiresScopes(scopes: [["x", "y"], ["z"]]) { id: ID! secret: String }
    "#;

    fn run(query: &str, identity: &Identity) -> (Vec<Vec<PathElem>>, Option<String>) {
        let schema = Schema::parse_and_validate(SCHEMA, "s.graphql").expect("schema");
        let authz =
            Authorizer::new(&AuthorizationConfig::default(), &schema, &schema).expect("compiles");
        let doc =
            ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").expect("valid");
        let op = doc.operations.get(None).expect("one operation");
        match authz.authorize(&doc, op, identity).expect("not rejected") {
            None => (Vec::new(), None),
            Some(f) => {
                let filtered = authz.filter(&schema, &doc, identity, &f).to_string();
                (
                    f.errors.into_iter().filter_map(|e| e.path).collect(),
                    Some(filtered),
                )
            }
        }
    }

    fn path(keys: &[&str]) -> Vec<PathElem> {
        keys.iter().map(|k| PathElem::Key(k.to_string())).collect()
    }

    #[test]
    fn interface_fields_inherit_the_requirements_of_their_implementations() {
        let (errors, filtered) = run("{ node { id secret } }", &Identity::anonymous());
        assert_eq!(errors, vec![path(&["node", "secret"])]);
        let filtered = filtered.expect("filtered");
        assert!(!filtered.contains("secret"), "{filtered}");
        let user = Identity::user("1", vec!["z".into()]);
        assert_eq!(
            run("{ node { id secret } }", &user).0,
            Vec::<Vec<PathElem>>::new()
        );
    }

    #[test]
    fn scope_groups_are_or_of_and_and_apply_to_fields_and_fragments_of_the_type() {
        let q = "{ b { id } node { ... on B { id } } }";
        let some = Identity::user("1", vec!["x".into()]);
        let (errors, _) = run(q, &some);
        assert_eq!(errors, vec![path(&["b"]), path(&["node"])]);
        let both = Identity::user("1", vec!["x".into(), "y".into()]);
        assert!(run(q, &both).0.is_empty());
        let z = Identity::user("1", vec!["z".into()]);
        assert!(run(q, &z).0.is_empty());
    }

    #[test]
    fn an_emptied_selection_set_keeps_the_operation_valid_with_typename() {
        let (errors, filtered) = run("{ a { secret } }", &Identity::anonymous());
        assert_eq!(errors, vec![path(&["a", "secret"])]);
        let filtered = filtered.expect("filtered");
        assert!(filtered.contains("__typename"), "{filtered}");
        assert!(!filtered.contains("secret"), "{filtered}");
    }

    #[test]
    fn policy_is_found_under_its_link_name_and_needs_a_whole_group_granted() {
        let sdl = r#"
            schema @link(url: "https://specs.apollo.dev/policy/v0.1", as: "pol") { query: Query }
            directive @link(url: String, as: String) repeatable on SCHEMA
            directive @pol(policies: [[String!]!]!) on FIELD_DEFINITION | OBJECT
            type Query { a: String @pol(policies: [["x", "y"], ["z"]]) b: String }
        "#;
        let schema = Schema::parse_and_validate(sdl, "s.graphql").expect("schema");
        let authz =
            Authorizer::new(&AuthorizationConfig::default(), &schema, &schema).expect("compiles");
        let doc =
            ExecutableDocument::parse_and_validate(&schema, "{ a b }", "q.graphql").expect("valid");
        let op = doc.operations.get(None).expect("one operation");
        struct Grant(&'static [&'static str]);
        impl PolicyEvaluator for Grant {
            fn granted(&self, _: &Identity, policies: &BTreeSet<String>) -> BTreeSet<String> {
                policies
                    .iter()
                    .filter(|p| self.0.contains(&p.as_str()))
                    .cloned()
                    .collect()
            }
        }
        let denied = |grant: &'static [&'static str]| {
            authz.set_evaluator(Arc::new(Grant(grant)));
            authz
                .authorize(&doc, op, &Identity::anonymous())
                .expect("not rejected")
                .map(|f| f.errors.len())
                .unwrap_or(0)
        };
        assert_eq!(denied(&[]), 1, "nobody grants: denied");
        assert_eq!(denied(&["x"]), 1, "half a group: denied");
        assert_eq!(denied(&["x", "y"]), 0);
        assert_eq!(denied(&["z"]), 0);
    }
}
