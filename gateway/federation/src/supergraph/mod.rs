//! Supergraph loading: a join-spec supergraph SDL → [`Supergraph`], the planner's view of
//! which subgraph resolves what (types, keys, fields with `@requires`/`@provides`/
//! `@override`), and the API schema clients see.
//!
//! Loading is one pass over the schema per stage (parse+validate, `@link` resolution,
//! join metadata, API schema): nothing is quadratic in the number of types or fields.
//! Field sets (`key`, `requires`, `provides`) are kept as strings and parsed lazily, once,
//! the first time a plan needs them.

mod api_schema;
mod join;
mod links;

pub(crate) use join::{ContextArg, FieldJoin, KeyJoin, TypeMeta};
pub(crate) mod join_field_set {
    pub(crate) use super::join::FieldSet;
}

use apollo_compiler::Schema;
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::validation::{DiagnosticList, Valid};
use std::collections::HashMap;

/// A subgraph named in the supergraph (`@join__graph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInfo {
    /// `@join__graph(name:)`: the value used as `FetchNode.service_name`.
    pub name: String,
    /// `@join__graph(url:)`.
    pub url: String,
}

/// Why a supergraph was refused. Messages name the line and the problem.
#[derive(thiserror::Error, Debug)]
pub enum SupergraphError {
    /// The SDL does not parse or is not a valid GraphQL schema.
    #[error("invalid supergraph SDL at line {line}: {message}{}", more(*others))]
    Invalid {
        line: usize,
        message: String,
        /// How many further diagnostics were found.
        others: usize,
    },
    /// `@link` problems: missing link/join spec, unsupported version or feature.
    #[error("supergraph @link error at line {line}: {message}")]
    Link { line: usize, message: String },
    /// A join directive is malformed (unknown graph, missing argument, …).
    #[error("supergraph join error at line {line}: {message}")]
    Join { line: usize, message: String },
    /// Removing `@inaccessible` elements and spec machinery left an invalid schema.
    #[error("the API schema derived from the supergraph is invalid at line {line}: {message}{}", more(*others))]
    ApiSchema {
        line: usize,
        message: String,
        others: usize,
    },
}

fn more(others: usize) -> String {
    if others == 0 {
        String::new()
    } else {
        format!(" (and {others} more problems)")
    }
}

pub(crate) fn line_of(schema: &Schema, location: Option<SourceSpan>) -> usize {
    location
        .and_then(|l| l.line_column_range(&schema.sources))
        .map(|r| r.start.line)
        .unwrap_or(0)
}

fn first_diagnostic(errors: &DiagnosticList) -> (usize, String, usize) {
    let others = errors.len().saturating_sub(1);
    match errors.iter().next() {
        Some(d) => {
            let line = d.line_column_range().map(|r| r.start.line).unwrap_or(0);
            (line, d.error.to_string(), others)
        }
        None => (0, "unknown error".into(), 0),
    }
}

/// A loaded supergraph: subgraphs, join metadata, and the API schema.
pub struct Supergraph {
    supergraph: Valid<Schema>,
    api: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
    /// Join metadata for object, interface and union types.
    pub(crate) types: HashMap<apollo_compiler::Name, TypeMeta>,
    /// Progressive-override labels, sorted, each once.
    override_labels: Vec<String>,
}

impl std::fmt::Debug for Supergraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supergraph")
            .field("subgraphs", &self.subgraphs)
            .field("types", &self.types.len())
            .finish()
    }
}

impl Supergraph {
    /// Loads a supergraph SDL (`@link` + join v0.2–v0.5).
    pub fn parse(sdl: &str) -> Result<Supergraph, SupergraphError> {
        let schema = Schema::parse_and_validate(sdl, "supergraph.graphql").map_err(|e| {
            let (line, message, others) = first_diagnostic(&e.errors);
            SupergraphError::Invalid {
                line,
                message,
                others,
            }
        })?;
        let links = links::resolve(&schema)?;
        let (subgraphs, types) = join::extract(&schema, &links)?;
        let api = api_schema::derive(&schema, &links)?;
        let mut override_labels: Vec<String> = types
            .values()
            .flat_map(|t| t.fields.values().flatten())
            .filter_map(|j| j.override_label.clone())
            .collect();
        override_labels.sort();
        override_labels.dedup();
        Ok(Supergraph {
            supergraph: schema,
            api,
            subgraphs,
            types,
            override_labels,
        })
    }

    /// The progressive-override labels of the supergraph (`@join__field(overrideLabel:)`,
    /// from `@override(from:, label:)`), sorted, each once.
    ///
    /// A label is active for a request when it is in `PlanOptions::override_labels`.
    /// Following Apollo, the gateway decides per request: a `percent(x)` label (see
    /// [`Supergraph::override_label_percent`]) is active with probability x/100, any
    /// other label only when configuration enables it. The active set is part of the
    /// plan cache key.
    pub fn override_labels(&self) -> impl Iterator<Item = &str> {
        self.override_labels.iter().map(String::as_str)
    }

    /// `Some(x)` for a `percent(x)` label (`0 <= x <= 100`, up to 8 decimals, as Apollo
    /// accepts), `None` for any other label.
    pub fn override_label_percent(label: &str) -> Option<f64> {
        let inner = label.strip_prefix("percent(")?.strip_suffix(')')?;
        let (whole, fraction) = match inner.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (inner, None),
        };
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(whole, 3) || fraction.is_some_and(|f| !digits(f, 8)) {
            return None;
        }
        let x: f64 = inner.parse().ok()?;
        (0.0..=100.0).contains(&x).then_some(x)
    }

    /// Subgraphs in `join__Graph` order (the order plans use to break ties).
    pub fn subgraphs(&self) -> &[SubgraphInfo] {
        &self.subgraphs
    }

    /// The schema clients see.
    pub fn api_schema(&self) -> &Valid<Schema> {
        &self.api
    }

    /// The API schema as SDL (without the `@defer` definition the gateway adds for
    /// clients: composed API schemas do not declare it).
    pub fn api_schema_sdl(&self) -> String {
        if self.api.directive_definitions.contains_key("defer") {
            let mut printed = self.api.as_ref().clone();
            printed.directive_definitions.shift_remove("defer");
            return printed.to_string();
        }
        self.api.to_string()
    }

    /// The full supergraph schema, with all join and spec directives.
    pub fn supergraph_schema(&self) -> &Valid<Schema> {
        &self.supergraph
    }

    pub(crate) fn type_meta(&self, name: &str) -> Option<&TypeMeta> {
        self.types.get(name)
    }
}

#[cfg(test)]
mod tests;
