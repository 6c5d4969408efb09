//! [`QueryPlanner`] over `portico-federation`: the supergraph model, its API schema and
//! its planner (with a step budget, so a pathological operation fails cleanly).

use std::collections::BTreeSet;

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::validation::Valid;
use portico_federation::plan::{PlanOptions, QueryPlan};
use portico_federation::supergraph::Supergraph;

use super::{PlanningError, QueryPlanner, SubgraphInfo};
use crate::GatewayError;

/// The federation-backed planner.
pub struct FederationPlanner {
    supergraph: Supergraph,
    max_steps: usize,
}

impl FederationPlanner {
    /// Parse a supergraph SDL (errors name the line and the problem).
    pub fn parse(sdl: &str) -> Result<Self, GatewayError> {
        let supergraph =
            Supergraph::parse(sdl).map_err(|e| GatewayError::Supergraph(e.to_string()))?;
        Ok(Self {
            supergraph,
            max_steps: PlanOptions::default().max_steps,
        })
    }
}

impl QueryPlanner for FederationPlanner {
    fn supergraph(&self) -> Option<&Supergraph> {
        Some(&self.supergraph)
    }

    fn api_schema(&self) -> &Valid<Schema> {
        self.supergraph.api_schema()
    }

    fn authorization_schema(&self) -> &Schema {
        self.supergraph.supergraph_schema()
    }

    fn subgraphs(&self) -> Vec<SubgraphInfo> {
        self.supergraph
            .subgraphs()
            .iter()
            .map(|s| SubgraphInfo {
                name: s.name.clone(),
                url: s.url.clone(),
            })
            .collect()
    }

    fn percent_override_labels(&self) -> Vec<(String, f64)> {
        self.supergraph
            .override_labels()
            .filter_map(|l| Some((l.to_string(), Supergraph::override_label_percent(l)?)))
            .collect()
    }

    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        override_labels: &BTreeSet<String>,
    ) -> Result<QueryPlan, PlanningError> {
        let options = PlanOptions {
            override_labels: override_labels.clone(),
            max_steps: self.max_steps,
        };
        portico_federation::plan::plan(&self.supergraph, document, operation_name, &options)
            .map_err(PlanningError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const SUPERGRAPH: &str = include_str!("../../tests/fixtures/supergraph.graphql");

    fn plan(max_steps: usize, query: &str, name: Option<&str>) -> Result<QueryPlan, PlanningError> {
        let mut planner = FederationPlanner::parse(SUPERGRAPH).expect("fixture loads");
        planner.max_steps = max_steps;
        let document =
            ExecutableDocument::parse_and_validate(planner.api_schema(), query, "q.graphql")
                .expect("query validates");
        planner.plan(&document, name, &BTreeSet::new())
    }

    #[test]
    fn planner_errors_keep_their_code_and_the_client_ones_are_400() {
        let query = "query A { user(id: \"1\") { id } }";
        assert!(plan(PlanOptions::default().max_steps, query, Some("A")).is_ok());

        let unknown = plan(PlanOptions::default().max_steps, query, Some("B")).expect_err("no B");
        assert!(unknown.is_client_error());
        assert_eq!(unknown.code(), "GRAPHQL_UNKNOWN_OPERATION_NAME");
        assert_eq!(unknown.http_status(), StatusCode::BAD_REQUEST);

        let too_complex = plan(1, query, Some("A")).expect_err("over budget");
        assert!(too_complex.is_client_error());
        assert_eq!(too_complex.code(), "QUERY_PLAN_TOO_COMPLEX");
        assert_eq!(too_complex.http_status(), StatusCode::BAD_REQUEST);
    }
}
