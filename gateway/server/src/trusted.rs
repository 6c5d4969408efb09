//! Trusted documents (a safelist of operations): a manifest of the operations clients
//! are allowed to send, in Apollo's persisted-query manifest format
//! (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body", …}]}`)
//! or Relay's (`{"<id>": "<document>"}`). Clients may send only the id (`documentId`,
//! or `extensions.persistedQuery.sha256Hash`). Modes (`[trusted_documents] mode`):
//! `off`; `log` (everything is served, operations not in the manifest are counted and
//! logged); `enforce` (they are refused with `PERSISTED_QUERY_NOT_IN_LIST`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the trusted documents manifest {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the trusted documents manifest {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

/// The allowed operations, by id and by text.
#[derive(Debug, Default)]
pub struct Manifest {
    by_id: HashMap<String, Arc<str>>,
    bodies: HashSet<Arc<str>>,
}

impl Manifest {
    /// Parses either manifest format.
    pub fn parse(text: &str, path: &str) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_string(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut manifest = Manifest::default();
        let mut add = |id: &str, body: &str| {
            let body: Arc<str> = Arc::from(body);
            manifest.by_id.insert(id.to_string(), body.clone());
            manifest.bodies.insert(body);
        };
        match value.get("operations") {
            // Apollo's format.
            Some(Value::Array(operations)) => {
                for (i, op) in operations.iter().enumerate() {
                    let (Some(id), Some(body)) = (
                        op.get("id").and_then(Value::as_str),
                        op.get("body").and_then(Value::as_str),
                    ) else {
                        return Err(invalid(format!(
                            "operations[{i}] needs an `id` and a `body`"
                        )));
                    };
                    add(id, body);
                }
            }
            Some(_) => return Err(invalid("`operations` must be an array".into())),
            // Relay's: id → document.
            None => {
                let Some(map) = value.as_object() else {
                    return Err(invalid(
                        "expected Apollo's manifest or Relay's { id: document } map".into(),
                    ));
                };
                for (id, body) in map {
                    let Some(body) = body.as_str() else {
                        return Err(invalid(format!("`{id}`: the document must be a string")));
                    };
                    add(id, body);
                }
            }
        }
        Ok(manifest)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The document of `id`.
    pub fn document(&self, id: &str) -> Option<Arc<str>> {
        self.by_id.get(id).cloned()
    }

    /// Is `body` one of the allowed documents (exact text)?
    pub fn allows(&self, body: &str) -> bool {
        self.bodies.contains(body)
    }
}

/// The manifest in force (replaced by [`TrustedDocuments::reload`]) and the count of
/// operations not in it.
#[derive(Debug, Default)]
pub struct TrustedDocuments {
    manifest: parking_lot::RwLock<Arc<Manifest>>,
    pub(crate) unknown: AtomicU64,
}

impl TrustedDocuments {
    pub fn new(manifest: Manifest) -> Self {
        Self {
            manifest: parking_lot::RwLock::new(Arc::new(manifest)),
            unknown: AtomicU64::new(0),
        }
    }

    pub fn current(&self) -> Arc<Manifest> {
        self.manifest.read().clone()
    }

    /// Serve `manifest` from now on.
    pub fn reload(&self, manifest: Manifest) {
        *self.manifest.write() = Arc::new(manifest);
    }

    pub(crate) fn count_unknown(&self) {
        self.unknown.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads and parses the manifest file at `path`.
pub fn load(path: &std::path::Path) -> Result<Manifest, ManifestError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: shown.clone(),
        source,
    })?;
    Manifest::parse(&text, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_manifest_formats_parse_and_bad_ones_say_why() {
        let apollo = r#"{"format":"apollo-persisted-query-manifest","version":1,
            "operations":[{"id":"abc","name":"Me","type":"query","body":"query Me { me { id } }"}]}"#;
        let m = Manifest::parse(apollo, "m.json").expect("apollo");
        assert_eq!(m.len(), 1);
        assert_eq!(m.document("abc").as_deref(), Some("query Me { me { id } }"));
        assert!(m.allows("query Me { me { id } }"));
        assert!(!m.allows("query Me { me { id name } }"));
        let relay = r#"{"1f2e": "query A { a }", "9c": "query B { b }"}"#;
        let m = Manifest::parse(relay, "r.json").expect("relay");
        assert_eq!(m.len(), 2);
        assert!(m.allows("query B { b }"));
        for bad in [
            "[1]",
            "{\"operations\": {}}",
            "{\"operations\": [{\"id\": \"x\"}]}",
            "{\"a\": 1}",
            "nope",
        ] {
            let e = Manifest::parse(bad, "bad.json").expect_err(bad);
            assert!(e.to_string().contains("bad.json"), "{e}");
        }
    }
}
