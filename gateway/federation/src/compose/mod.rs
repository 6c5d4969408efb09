//! Composition: Federation v2 (and v1) subgraph SDLs → a supergraph SDL (`link/v1.0`,
//! `join/v0.5`) and its API schema, or every problem found, each with Apollo's stable
//! composition code, the subgraph(s) and the coordinate.
//!
//! Stages, in order (each its own module):
//! 1. [`subgraph`]: parse and validate each subgraph, resolve its federation `@link`.
//!    Federation 1 subgraphs are then rewritten as Apollo's schema upgrader does
//!    ([`upgrade`]).
//! 2. [`validate`]: per-subgraph federation rules (field sets, `@external`, `@override`,
//!    `@interfaceObject`).
//! 3. [`merge`]: merge types across subgraphs (sharing, enums, inputs, arguments,
//!    directives) and print the supergraph with its join metadata.
//!    [`postmerge`] then checks the merged supergraph: interface fields implemented,
//!    transitive access-control requirements of `@requires`/`@fromContext`.
//! 4. [`inaccessible`]: `@inaccessible` consistency; then load the printed supergraph with
//!    [`Supergraph::parse`] (the same loader the gateway uses) and derive the API schema.
//! 5. [`satisfiability`]: every API field reachable from the root types.
//!
//! Errors from all stages are collected; stages after a failing one still run when their
//! input is usable, so one run reports as much as possible.

mod across;
mod context;
mod diagnostic;
mod inaccessible;
mod merge;
mod normalize;
mod postmerge;
mod satisfiability;
mod subgraph;
mod upgrade;
mod validate;

pub(crate) use diagnostic::github_escape as diagnostic_escape;
pub use diagnostic::{Diagnostic, Severity, render_github, render_json, render_text};
pub use normalize::{normalize_api, normalize_supergraph};

use crate::supergraph::Supergraph;

/// One subgraph to compose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInput {
    /// The subgraph name (`@join__graph(name:)`); its enum value is the upper-cased name.
    pub name: String,
    /// The routing URL (`@join__graph(url:)`).
    pub url: String,
    /// The subgraph SDL, as served by `_service { sdl }`.
    pub sdl: String,
}

/// A successful composition.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The supergraph SDL the gateway loads.
    pub supergraph_sdl: String,
    /// The API schema SDL clients see.
    pub api_sdl: String,
    /// Hints: composition succeeded but something deserves a look.
    pub hints: Vec<Diagnostic>,
}

/// A failed composition: all errors found, and the hints gathered on the way.
#[derive(thiserror::Error, Debug, Clone)]
#[error("composition failed with {} error(s)", errors.len())]
pub struct CompositionErrors {
    pub errors: Vec<Diagnostic>,
    pub hints: Vec<Diagnostic>,
}

/// Diagnostics collected across stages.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Composes subgraphs into a supergraph. Subgraphs are taken in the order given; that
/// order is the `join__Graph` order (ties in planning are broken by it).
pub fn compose(subgraphs: &[SubgraphInput]) -> Result<Composed, CompositionErrors> {
    let mut diags = Diagnostics::default();
    let mut seen = std::collections::HashSet::new();
    for s in subgraphs {
        if !seen.insert(merge::graph_enum_name(&s.name)) {
            diags.push(
                Diagnostic::error(
                    "INVALID_SUBGRAPH_NAME",
                    format!(
                        "[{}] A subgraph with the same name (or the same enum value) is already composed",
                        s.name
                    ),
                )
                .subgraph(s.name.clone()),
            );
        }
    }
    let mut loaded: Vec<_> = subgraphs
        .iter()
        .filter_map(|s| subgraph::load(s, &mut diags))
        .collect();
    if loaded.len() != subgraphs.len() || diags.has_errors() {
        return Err(finish_errors(diags));
    }
    upgrade::upgrade(&mut loaded, &mut diags);
    if diags.has_errors() {
        return Err(finish_errors(diags));
    }
    for s in &loaded {
        validate::subgraph(s, &mut diags);
    }
    across::check(&loaded, &mut diags);
    if diags.has_errors() {
        return Err(finish_errors(diags));
    }
    let printed = merge::merge(&loaded, &mut diags);
    if diags.has_errors() {
        return Err(finish_errors(diags));
    }
    if let Ok(schema) = apollo_compiler::Schema::parse(&printed, "supergraph.graphql") {
        postmerge::check(&schema, &loaded, &mut diags);
        inaccessible::check(&schema, &mut diags);
        if diags.has_errors() {
            return Err(finish_errors(diags));
        }
    }
    let supergraph = match Supergraph::parse(&printed) {
        Ok(s) => s,
        Err(e) => {
            let code = match &e {
                crate::supergraph::SupergraphError::ApiSchema { .. } => "REFERENCED_INACCESSIBLE",
                _ => "INVALID_GRAPHQL",
            };
            diags.push(Diagnostic::error(
                code,
                format!("the composed supergraph is invalid: {e}"),
            ));
            return Err(finish_errors(diags));
        }
    };
    satisfiability::check(&supergraph, &mut diags);
    if diags.has_errors() {
        return Err(finish_errors(diags));
    }
    Ok(Composed {
        supergraph_sdl: printed,
        api_sdl: supergraph.api_schema_sdl(),
        hints: diags.list,
    })
}

fn finish_errors(diags: Diagnostics) -> CompositionErrors {
    let (errors, hints) = diags
        .list
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    CompositionErrors { errors, hints }
}
