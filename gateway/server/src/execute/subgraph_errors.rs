//! What clients see of the errors subgraphs return (`[subgraph_errors]`). Subgraphs put
//! internal detail in `extensions` (stack traces, SQL, host names), so outside dev mode
//! only the allowed keys pass (default: `code`); messages pass unless `redact_message`
//! is set, and `serviceName` (the subgraph's name: internal topology) is added only when
//! `expose_service_name` is set. In dev mode everything passes and `serviceName` is
//! added. A `serviceName` the subgraph sent is never kept (a subgraph cannot speak for
//! another), and `locations` are dropped: they point into the subgraph operation, not
//! the client's document.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::config::{SubgraphConfig, SubgraphErrorsConfig};
use crate::error::{GraphQLError, PathElem};

/// The message of every subgraph error when messages are redacted.
pub const REDACTED_MESSAGE: &str = "subgraph error (redacted)";

/// The `[subgraph_errors]` rules, compiled once with the gateway's mode.
#[derive(Debug, Clone)]
pub struct SubgraphErrorPolicy {
    /// `None`: every key passes.
    allow_extensions: Option<Vec<String>>,
    /// Per-subgraph allowlists (`[subgraphs.<name>] allow_error_extensions`), replacing
    /// `allow_extensions` for that subgraph.
    by_subgraph: HashMap<String, Option<Vec<String>>>,
    redact_message: bool,
    service_name: bool,
    /// Dev mode: everything passes, whatever the rules.
    dev: bool,
}

impl Default for SubgraphErrorPolicy {
    /// The production defaults: `code` only, messages kept.
    fn default() -> Self {
        Self::new(&SubgraphErrorsConfig::default(), false)
    }
}

impl SubgraphErrorPolicy {
    /// The rules of `config`; in `dev` mode everything passes.
    pub fn new(config: &SubgraphErrorsConfig, dev: bool) -> Self {
        if dev {
            return Self {
                allow_extensions: None,
                by_subgraph: HashMap::new(),
                redact_message: false,
                service_name: true,
                dev: true,
            };
        }
        Self {
            allow_extensions: allowlist(&config.allow_extensions),
            by_subgraph: HashMap::new(),
            redact_message: config.redact_message,
            service_name: config.expose_service_name,
            dev: false,
        }
    }

    /// The per-subgraph allowlists of `subgraphs` (ignored in dev mode, where
    /// everything passes).
    pub fn with_subgraph_rules(mut self, subgraphs: &BTreeMap<String, SubgraphConfig>) -> Self {
        if self.dev {
            return self;
        }
        for (name, config) in subgraphs {
            if let Some(keys) = &config.allow_error_extensions {
                self.by_subgraph.insert(name.clone(), allowlist(keys));
            }
        }
        self
    }

    /// A subgraph's raw error as the client sees it (`serviceName` set to `service` when
    /// the policy names subgraphs).
    pub fn to_client(&self, raw: Value, service: &str) -> GraphQLError {
        let mut raw = match raw {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let message = match raw.remove("message") {
            _ if self.redact_message => REDACTED_MESSAGE.to_string(),
            Some(Value::String(m)) => m,
            _ => "subgraph error".to_string(),
        };
        let path = raw
            .get("path")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(PathElem::from_json).collect());
        let mut extensions = match raw.remove("extensions") {
            Some(Value::Object(map)) => map,
            _ => Default::default(),
        };
        let allowed = self
            .by_subgraph
            .get(service)
            .unwrap_or(&self.allow_extensions);
        if let Some(allowed) = allowed {
            extensions.retain(|key, _| allowed.iter().any(|a| a == key));
        }
        extensions.remove("serviceName");
        if self.service_name {
            extensions.insert("serviceName".into(), Value::String(service.to_string()));
        }
        GraphQLError {
            message,
            locations: Vec::new(),
            path,
            extensions,
        }
    }
}

/// `keys` as an allowlist: `None` (every key) when it holds `*`.
fn allowlist(keys: &[String]) -> Option<Vec<String>> {
    (!keys.iter().any(|k| k == "*")).then(|| keys.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaky() -> Value {
        json!({
            "message": "relation \"users\" does not exist",
            "locations": [{"line": 1, "column": 2}],
            "path": ["_entities", 0, "name"],
            "extensions": {
                "code": "INTERNAL",
                "stacktrace": ["at db.rs:12"],
                "host": "db-1.internal",
                "serviceName": "someone-else"
            }
        })
    }

    fn config(allow: &[&str], redact_message: bool) -> SubgraphErrorsConfig {
        SubgraphErrorsConfig {
            allow_extensions: allow.iter().map(|s| s.to_string()).collect(),
            redact_message,
            expose_service_name: false,
        }
    }

    #[test]
    fn production_keeps_the_code_and_the_message_only() {
        let e = SubgraphErrorPolicy::default().to_client(leaky(), "users");
        assert_eq!(e.message, "relation \"users\" does not exist");
        assert_eq!(
            serde_json::to_value(&e.extensions).expect("json"),
            json!({"code": "INTERNAL"}),
            "no subgraph names outside dev mode"
        );
        assert!(e.locations.is_empty());
        assert_eq!(
            e.path,
            Some(vec![
                PathElem::Key("_entities".into()),
                PathElem::Index(0),
                PathElem::Key("name".into())
            ])
        );
    }

    #[test]
    fn the_allowlist_the_wildcard_and_redaction_apply_outside_dev_mode_only() {
        let e = SubgraphErrorPolicy::new(&config(&["host"], true), false).to_client(leaky(), "u");
        assert_eq!(e.message, REDACTED_MESSAGE);
        assert_eq!(
            serde_json::to_value(&e.extensions).expect("json"),
            json!({"host": "db-1.internal"})
        );
        // Even with every key allowed, a subgraph's own `serviceName` never passes.
        let all = SubgraphErrorPolicy::new(&config(&["*"], false), false).to_client(leaky(), "u");
        assert_eq!(all.extensions.len(), 3, "{:?}", all.extensions);
        assert!(all.extensions.get("serviceName").is_none());
        let named = SubgraphErrorsConfig {
            expose_service_name: true,
            ..config(&["code"], false)
        };
        let named = SubgraphErrorPolicy::new(&named, false).to_client(leaky(), "u");
        assert_eq!(
            serde_json::to_value(&named.extensions).expect("json"),
            json!({"code": "INTERNAL", "serviceName": "u"})
        );
        let dev = SubgraphErrorPolicy::new(&config(&[], true), true).to_client(leaky(), "u");
        assert_eq!(dev.message, "relation \"users\" does not exist");
        assert_eq!(dev.extensions.len(), 4);
        assert_eq!(dev.extensions["stacktrace"], json!(["at db.rs:12"]));
    }

    #[test]
    fn a_subgraph_rule_replaces_the_allowlist_for_that_subgraph_only() {
        let subgraphs: BTreeMap<String, SubgraphConfig> = [
            (
                "reviews".to_string(),
                SubgraphConfig {
                    allow_error_extensions: Some(vec!["code".into(), "host".into()]),
                    ..Default::default()
                },
            ),
            (
                "audit".to_string(),
                SubgraphConfig {
                    allow_error_extensions: Some(vec!["*".into()]),
                    ..Default::default()
                },
            ),
        ]
        .into();
        let policy = SubgraphErrorPolicy::default().with_subgraph_rules(&subgraphs);
        let keys = |service: &str| {
            let mut keys: Vec<String> = policy
                .to_client(leaky(), service)
                .extensions
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys("users"), ["code"]);
        assert_eq!(keys("reviews"), ["code", "host"]);
        assert_eq!(keys("audit"), ["code", "host", "stacktrace"]);
        // Dev mode passes everything, rules or not.
        let dev = SubgraphErrorPolicy::new(&config(&["code"], false), true)
            .with_subgraph_rules(&subgraphs)
            .to_client(leaky(), "reviews");
        assert_eq!(dev.extensions.len(), 4);
    }

    #[test]
    fn malformed_errors_still_become_errors() {
        let policy = SubgraphErrorPolicy::default();
        for raw in [
            json!("oops"),
            json!({"message": 3, "extensions": [1]}),
            json!(null),
        ] {
            let e = policy.to_client(raw, "u");
            assert_eq!(e.message, "subgraph error");
            assert_eq!(e.path, None);
            assert!(e.extensions.is_empty(), "{:?}", e.extensions);
        }
    }
}
