//! Header propagation to subgraphs, compiled from `[headers]` at start-up.
//!
//! By default a subgraph receives nothing the client sent: only the identity headers,
//! the trust token and the request id the gateway sets itself. Rules add client headers
//! (optionally renamed, with a default) and static values, for every subgraph (`"*"`)
//! and per subgraph (applied after `"*"`, so they win). Hop-by-hop and framing headers,
//! `host`, and anything named `portico-*` can never be propagated nor inserted: the
//! identity headers are the trust token's to vouch for.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::HeadersConfig;

/// Why a header name may not appear in a rule (`None`: allowed).
pub fn refused_header(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if HeaderName::from_bytes(lower.as_bytes()).is_err() {
        return Some("not a valid header name");
    }
    if lower.starts_with("portico-") {
        return Some("`portico-*` headers are set by the gateway only");
    }
    const FRAMING: &[&str] = &[
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
        "accept",
        "accept-encoding",
    ];
    if FRAMING.contains(&lower.as_str()) {
        return Some("hop-by-hop and framing headers are set by the HTTP client");
    }
    None
}

#[derive(Debug, Clone)]
enum Rule {
    Propagate {
        from: HeaderName,
        to: HeaderName,
        default: Option<HeaderValue>,
    },
    Insert {
        name: HeaderName,
        value: HeaderValue,
    },
}

/// Compiled rules, per subgraph (with `"*"` already merged in).
#[derive(Debug, Default)]
pub struct HeaderRules {
    all: Vec<Rule>,
    by_subgraph: HashMap<String, Vec<Rule>>,
    /// Response headers passed on to the client, per subgraph (`"*"` merged in).
    respond_all: Vec<HeaderName>,
    respond_by_subgraph: HashMap<String, Vec<HeaderName>>,
    /// Every client header some rule propagates (sorted, once each).
    propagated: Vec<HeaderName>,
}

impl HeaderRules {
    /// Compile validated config (invalid names were refused by config validation).
    pub fn new(config: &HeadersConfig) -> Self {
        let compile = |rules: &crate::config::HeaderRules| -> Vec<Rule> {
            let mut out = Vec::new();
            for p in &rules.propagate {
                let (Ok(from), Ok(to)) = (
                    HeaderName::from_bytes(p.named.to_ascii_lowercase().as_bytes()),
                    HeaderName::from_bytes(
                        p.rename
                            .as_deref()
                            .unwrap_or(&p.named)
                            .to_ascii_lowercase()
                            .as_bytes(),
                    ),
                ) else {
                    continue;
                };
                let default = p
                    .default
                    .as_deref()
                    .and_then(|d| HeaderValue::from_str(d).ok());
                out.push(Rule::Propagate { from, to, default });
            }
            for i in &rules.insert {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(i.name.to_ascii_lowercase().as_bytes()),
                    HeaderValue::from_str(&i.value),
                ) {
                    out.push(Rule::Insert { name, value });
                }
            }
            out
        };
        let all = config.subgraphs.get("*").map(compile).unwrap_or_default();
        let by_subgraph: HashMap<String, Vec<Rule>> = config
            .subgraphs
            .iter()
            .filter(|(name, _)| name.as_str() != "*")
            .map(|(name, rules)| {
                let mut merged = all.clone();
                merged.extend(compile(rules));
                (name.clone(), merged)
            })
            .collect();
        let names = |rules: &crate::config::HeaderRules| -> Vec<HeaderName> {
            rules
                .respond
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
                .collect()
        };
        let respond_all = config.subgraphs.get("*").map(names).unwrap_or_default();
        let respond_by_subgraph = config
            .subgraphs
            .iter()
            .filter(|(name, _)| name.as_str() != "*")
            .map(|(name, rules)| {
                let mut merged = respond_all.clone();
                merged.extend(
                    names(rules)
                        .into_iter()
                        .filter(|n| !respond_all.contains(n)),
                );
                (name.clone(), merged)
            })
            .collect();
        let mut propagated: Vec<HeaderName> = std::iter::once(&all)
            .chain(by_subgraph.values())
            .flatten()
            .filter_map(|rule| match rule {
                Rule::Propagate { from, .. } => Some(from.clone()),
                Rule::Insert { .. } => None,
            })
            .collect();
        propagated.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        propagated.dedup();
        Self {
            all,
            by_subgraph,
            respond_all,
            respond_by_subgraph,
            propagated,
        }
    }

    /// The client headers some rule propagates to some subgraph: what, beside the
    /// operation and the identity, can change what subgraphs answer a client.
    pub fn propagated(&self) -> &[HeaderName] {
        &self.propagated
    }

    /// Whether any request rule exists.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.by_subgraph.is_empty()
    }

    /// Whether some of `subgraph`'s response headers go on to the client.
    pub fn responds(&self, subgraph: &str) -> bool {
        !self
            .respond_by_subgraph
            .get(subgraph)
            .unwrap_or(&self.respond_all)
            .is_empty()
    }

    /// The headers of `response` from `subgraph` that go on to the client (every value).
    /// Merged into a response with [`append_all`].
    pub fn respond(&self, subgraph: &str, response: &HeaderMap) -> HeaderMap {
        let names = self
            .respond_by_subgraph
            .get(subgraph)
            .unwrap_or(&self.respond_all);
        let mut out = HeaderMap::new();
        for name in names {
            for value in response.get_all(name) {
                out.append(name.clone(), value.clone());
            }
        }
        out
    }

    /// The headers to add to a request to `subgraph`, from the client's headers.
    pub fn for_subgraph(&self, subgraph: &str, client: &HeaderMap) -> HeaderMap {
        let rules = self.by_subgraph.get(subgraph).unwrap_or(&self.all);
        let mut out = HeaderMap::new();
        for rule in rules {
            match rule {
                Rule::Propagate { from, to, default } => {
                    let values: Vec<_> = client.get_all(from).iter().cloned().collect();
                    if values.is_empty() {
                        if let Some(d) = default {
                            out.insert(to.clone(), d.clone());
                        }
                    } else {
                        out.remove(to);
                        for v in values {
                            out.append(to.clone(), v);
                        }
                    }
                }
                Rule::Insert { name, value } => {
                    out.insert(name.clone(), value.clone());
                }
            }
        }
        out
    }
}

/// Appends every value of `from` to `to` (`HeaderMap::extend` would replace a name that
/// `to` already has; two fetches' `Set-Cookie`s must both reach the client).
pub fn append_all(to: &mut HeaderMap, from: HeaderMap) {
    let mut last = None;
    for (name, value) in from {
        // The iterator names only the first of a name's values.
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            to.append(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    #[test]
    fn rules_propagate_rename_default_and_insert_per_subgraph() {
        let config = GatewayConfig::from_toml(
            r#"
            [headers.subgraphs."*"]
            propagate = [{ named = "Accept-Language" }, { named = "x-client", rename = "x-client-name", default = "web" }]
            [headers.subgraphs.users]
            insert = [{ name = "x-from", value = "portico" }]
            "#,
        )
        .expect("valid");
        let rules = HeaderRules::new(&config.headers);
        let mut client = HeaderMap::new();
        client.insert("accept-language", HeaderValue::from_static("fr"));
        client.insert("cookie", HeaderValue::from_static("secret"));
        let users = rules.for_subgraph("users", &client);
        assert_eq!(users["accept-language"], "fr");
        assert_eq!(users["x-client-name"], "web");
        assert_eq!(users["x-from"], "portico");
        assert!(users.get("cookie").is_none());
        let posts = rules.for_subgraph("posts", &client);
        assert!(posts.get("x-from").is_none());
        assert_eq!(posts.len(), 2);
        assert!(
            HeaderRules::new(&Default::default())
                .for_subgraph("users", &client)
                .is_empty()
        );
        // What request sharing compares: each propagated client header once, sorted.
        let names: Vec<&str> = rules.propagated().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept-language", "x-client"]);
        assert!(!rules.responds("users"));
    }

    #[test]
    fn respond_rules_are_per_subgraph_and_propagated_names_merged() {
        let config = GatewayConfig::from_toml(
            r#"
            [headers.subgraphs.auth]
            respond = ["set-cookie"]
            propagate = [{ named = "x-b" }]
            [headers.subgraphs.users]
            propagate = [{ named = "x-a" }, { named = "x-b" }]
            "#,
        )
        .expect("valid");
        let rules = HeaderRules::new(&config.headers);
        assert!(rules.responds("auth") && !rules.responds("users"));
        let names: Vec<&str> = rules.propagated().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-a", "x-b"]);
    }

    #[test]
    fn gateway_owned_and_framing_headers_are_refused_in_config() {
        for bad in [
            r#"[headers.subgraphs."*"]
               propagate = [{ named = "portico-user-id" }]"#,
            r#"[headers.subgraphs."*"]
               propagate = [{ named = "x-user", rename = "Portico-User-Id" }]"#,
            r#"[headers.subgraphs.users]
               insert = [{ name = "portico-trust", value = "x" }]"#,
            r#"[headers.subgraphs.users]
               insert = [{ name = "content-length", value = "1" }]"#,
        ] {
            let e = GatewayConfig::from_toml(bad).expect_err(bad);
            assert!(e.to_string().contains("headers.subgraphs"), "{e}");
        }
    }
}
