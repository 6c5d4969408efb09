//! Usage recording (`[usage]`): the operations the gateway serves, by SHA-256 of their
//! text, with the document, the client names and versions that sent it, a count and the
//! first and last time seen. Bounded (`max_operations`; a new operation beyond it is not
//! recorded, and counted as dropped). Written to a JSON file every `flush_secs` (to a
//! temporary file, then renamed, so a reader never sees half a file), merged with what
//! the file already held, so restarts and several gateways sharing a volume add up.
//!
//! The file is what `portico check --usage FILE` reads: a breaking change that no
//! operation recorded in the window uses is safe, and those that are used name their
//! clients.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One recorded operation (also the file's format: a JSON array of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedOperation {
    /// SHA-256 of the document, hex.
    pub id: String,
    pub body: String,
    /// `name@version` of the clients that sent it (at most [`MAX_CLIENTS`]).
    pub clients: BTreeSet<String>,
    pub count: u64,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
}

/// Most clients kept per operation.
pub const MAX_CLIENTS: usize = 32;

/// The recorder of one gateway.
#[derive(Debug)]
pub struct UsageRecorder {
    path: PathBuf,
    max_operations: usize,
    pending: parking_lot::Mutex<BTreeMap<String, RecordedOperation>>,
    pub(crate) dropped: AtomicU64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UsageRecorder {
    pub fn new(path: PathBuf, max_operations: usize) -> Self {
        Self {
            path,
            max_operations: max_operations.max(1),
            pending: Default::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records one served operation.
    pub fn record(&self, id: &str, body: &str, client: &str, version: &str) {
        let client = match (client, version) {
            ("", _) => "unknown".to_string(),
            (c, "") => c.to_string(),
            (c, v) => format!("{c}@{v}"),
        };
        let t = now();
        let mut pending = self.pending.lock();
        if let Some(op) = pending.get_mut(id) {
            op.count += 1;
            op.last_seen = t;
            if op.clients.len() < MAX_CLIENTS {
                op.clients.insert(client);
            }
            return;
        }
        if pending.len() >= self.max_operations {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.insert(
            id.to_string(),
            RecordedOperation {
                id: id.to_string(),
                body: body.to_string(),
                clients: BTreeSet::from([client]),
                count: 1,
                first_seen: t,
                last_seen: t,
            },
        );
    }

    /// Merges what was recorded since the last flush into the file. The file holds at
    /// most `max_operations` operations (the most recently seen).
    pub fn flush(&self) -> std::io::Result<()> {
        let fresh = std::mem::take(&mut *self.pending.lock());
        if fresh.is_empty() {
            return Ok(());
        }
        let mut all: BTreeMap<String, RecordedOperation> = read(&self.path)
            .into_iter()
            .map(|op| (op.id.clone(), op))
            .collect();
        for (id, op) in fresh {
            match all.get_mut(&id) {
                Some(known) => {
                    known.count += op.count;
                    known.last_seen = known.last_seen.max(op.last_seen);
                    known.first_seen = known.first_seen.min(op.first_seen);
                    for c in op.clients {
                        if known.clients.len() < MAX_CLIENTS {
                            known.clients.insert(c);
                        }
                    }
                }
                None => {
                    all.insert(id, op);
                }
            }
        }
        let mut list: Vec<RecordedOperation> = all.into_values().collect();
        list.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        list.truncate(self.max_operations);
        let text = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// The operations recorded in `path` (none when it does not exist or does not parse).
pub fn read(path: &Path) -> Vec<RecordedOperation> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_is_bounded_and_flushes_merge_with_the_file() {
        let dir = std::env::temp_dir().join(format!("portico-usage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("usage.json");
        let _ = std::fs::remove_file(&path);
        let r = UsageRecorder::new(path.clone(), 2);
        r.record("a", "{ a }", "ios", "1.2");
        r.record("a", "{ a }", "web", "");
        r.record("b", "{ b }", "", "");
        r.record("c", "{ c }", "web", ""); // beyond max_operations
        assert_eq!(r.dropped.load(Ordering::Relaxed), 1);
        r.flush().expect("flush");
        let ops = read(&path);
        assert_eq!(ops.len(), 2);
        let a = ops.iter().find(|o| o.id == "a").expect("a");
        assert_eq!(a.count, 2);
        assert_eq!(
            a.clients,
            BTreeSet::from(["ios@1.2".to_string(), "web".to_string()])
        );
        let b = ops.iter().find(|o| o.id == "b").expect("b");
        assert_eq!(b.clients, BTreeSet::from(["unknown".to_string()]));
        // A second recorder (a restart, another replica) adds to the same file.
        let r2 = UsageRecorder::new(path.clone(), 2);
        r2.record("a", "{ a }", "android", "3");
        r2.flush().expect("flush");
        let a = read(&path).into_iter().find(|o| o.id == "a").expect("a");
        assert_eq!(a.count, 3);
        assert!(a.clients.contains("android@3"));
    }
}
