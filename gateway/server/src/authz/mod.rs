//! Authorization: `@authenticated` and `@requiresScopes` (from the supergraph) plus
//! config rules keyed by schema coordinate, enforced after authentication and before
//! planning, with Apollo's semantics.
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

use std::collections::{HashMap, HashSet};

use apollo_compiler::Schema;
use apollo_compiler::ast;
use apollo_compiler::executable::{ExecutableDocument, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use http::StatusCode;

use crate::auth::Identity;
use crate::config::{AuthorizationConfig, ConfigError, RuleConfig};
use crate::error::{ErrorCode, GraphQLError, PathElem, RequestFailure};

/// Errors reported per request are capped (the operation is filtered completely).
const MAX_ERRORS: usize = 100;

/// One requirement: all of it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A verified token.
    Authenticated,
    /// One of the groups held completely (`[["a", "b"], ["c"]]` = a AND b, OR c).
    Scopes(Vec<Vec<String>>),
}

impl Requirement {
    fn holds(&self, identity: &Identity) -> bool {
        match self {
            Requirement::Authenticated => identity.user_id.is_some(),
            Requirement::Scopes(groups) => {
                identity.user_id.is_some()
                    && groups
                        .iter()
                        .any(|g| g.iter().all(|s| identity.scopes.contains(s)))
            }
        }
    }
}

/// The compiled policy.
#[derive(Debug, Default)]
pub struct Authorizer {
    fields: HashMap<(String, String), Vec<Requirement>>,
    types: HashMap<String, Vec<Requirement>>,
    require_authentication: bool,
    reject_unauthorized: bool,
}

/// The operation to plan when some fields were removed, and the errors to report.
pub struct Filtered {
    pub document: Valid<ExecutableDocument>,
    pub errors: Vec<GraphQLError>,
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
        for (name, ty) in &directive_schema.types {
            if !api_schema.types.contains_key(name) {
                continue;
            }
            for r in requirements(ty.directives().iter().map(|d| &*d.node)) {
                authz.add_type(name.as_str(), r);
            }
            let fields: Vec<_> = match ty {
                ExtendedType::Object(o) => o.fields.iter().collect(),
                ExtendedType::Interface(i) => i.fields.iter().collect(),
                _ => Vec::new(),
            };
            for (field, def) in fields {
                for r in requirements(def.directives.iter().map(|d| &**d)) {
                    authz.add_field(name.as_str(), field.as_str(), r);
                }
            }
        }
        for (coordinate, rule) in &config.rules {
            let invalid = |message: String| ConfigError::Invalid {
                key: format!("authorization.rules.\"{coordinate}\""),
                message,
            };
            let requirement = match rule {
                RuleConfig::Keyword(k) if k == "authenticated" => Requirement::Authenticated,
                RuleConfig::Keyword(k) => {
                    return Err(invalid(format!(
                        "unknown rule \"{k}\": use \"authenticated\" or {{ scopes = [[...]] }}"
                    )));
                }
                RuleConfig::Scopes { scopes } => Requirement::Scopes(scopes.clone()),
            };
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
        Ok(authz)
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

    fn type_allowed(&self, ty: &str, identity: &Identity) -> bool {
        self.types
            .get(ty)
            .is_none_or(|rs| rs.iter().all(|r| r.holds(identity)))
    }

    fn field_allowed(
        &self,
        parent: &str,
        field: &ast::FieldDefinition,
        identity: &Identity,
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
        schema: &Valid<Schema>,
        document: &Valid<ExecutableDocument>,
        operation: &Operation,
        identity: &Identity,
    ) -> Result<Option<Filtered>, RequestFailure> {
        if !self.has_rules() {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let mut visiting = HashSet::new();
        let mut path = Vec::new();
        self.collect_errors(
            document,
            &operation.selection_set,
            identity,
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
        let mut filtered = (**document).clone();
        let denied: HashSet<String> = document
            .fragments
            .iter()
            .filter(|(_, f)| !self.type_allowed(f.type_condition().as_str(), identity))
            .map(|(name, _)| name.to_string())
            .collect();
        for op in filtered
            .operations
            .anonymous
            .iter_mut()
            .chain(filtered.operations.named.values_mut())
        {
            self.filter_set(schema, &mut op.make_mut().selection_set, identity, &denied);
        }
        for fragment in filtered.fragments.values_mut() {
            self.filter_set(
                schema,
                &mut fragment.make_mut().selection_set,
                identity,
                &denied,
            );
        }
        // Only selections were removed (and `__typename` added to emptied sets); unused
        // fragments or variables left behind do not matter to the planner.
        Ok(Some(Filtered {
            document: Valid::assume_valid(filtered),
            errors,
        }))
    }

    /// Walk the client's operation (fragments expanded, cycles impossible after
    /// validation but guarded) and report each unauthorized selection at its path.
    fn collect_errors<'d>(
        &self,
        document: &'d ExecutableDocument,
        set: &'d SelectionSet,
        identity: &Identity,
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
        identity: &Identity,
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

/// Drop the "non-null field is null" errors an authorization error already explains
/// (authorization paths name response keys only, so list indices are ignored), then put
/// the authorization errors first.
pub fn merge_errors(errors: &mut Vec<GraphQLError>, authz: Vec<GraphQLError>) {
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
    errors.splice(0..0, authz);
}

fn unauthorized(path: Vec<PathElem>) -> GraphQLError {
    GraphQLError::new(
        ErrorCode::UnauthorizedFieldOrType,
        "Unauthorized field or type",
    )
    .with_path(path)
}

/// `@authenticated` / `@requiresScopes(scopes:)` among directives.
fn requirements<'a>(directives: impl Iterator<Item = &'a ast::Directive>) -> Vec<Requirement> {
    let mut out = Vec::new();
    for d in directives {
        match d.name.as_str() {
            "authenticated" => out.push(Requirement::Authenticated),
            "requiresScopes" => {
                let groups = d
                    .specified_argument_by_name("scopes")
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
                    .unwrap_or_default();
                out.push(Requirement::Scopes(groups));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::ExecutableDocument;

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
        match authz
            .authorize(&schema, &doc, op, identity)
            .expect("not rejected")
        {
            None => (Vec::new(), None),
            Some(f) => (
                f.errors.into_iter().filter_map(|e| e.path).collect(),
                Some(f.document.to_string()),
            ),
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
}
