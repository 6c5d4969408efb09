//! Usage recording (`[usage]`): the operations the gateway serves, by SHA-256 of their
//! text, with the document, the client names and versions that sent it, a count and the
//! first and last time seen. Bounded (`max_operations`; a new operation beyond it is not
//! recorded, and counted as dropped). Flushed every `flush_secs` by a thread of its own:
//!
//! - to a JSON file (to a temporary file, then renamed, so a reader never sees half a
//!   file), merged with what the file already held, so restarts and several gateways
//!   sharing a volume add up;
//! - and/or to Redis, merged there by one atomic script per operation, so every replica
//!   adds to the same record (layout under the prefix: `ops`, a sorted set of ids by last
//!   seen; `op:<id>`, a hash of `body`, `count`, `first_seen`, `last_seen`;
//!   `op:<id>:clients`, a set). Redis holds at most `max_operations` (the least recently
//!   seen go). When Redis cannot be reached, what was to be written goes back into the
//!   pending records (within the bound) and the next flush tries again.
//!
//! The file or the Redis URL is what `portico check --usage` reads: a breaking change
//! that no operation recorded in the window uses is safe, and those that are used name
//! their clients.

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
pub struct UsageRecorder {
    path: Option<PathBuf>,
    redis: Option<RedisSink>,
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
    /// A recorder flushing to the file at `path`.
    pub fn new(path: PathBuf, max_operations: usize) -> Self {
        Self::with_sinks(Some(path), None, max_operations)
    }

    /// A recorder flushing to the file at `path` (when set) and to Redis (when set).
    pub fn with_sinks(
        path: Option<PathBuf>,
        redis: Option<RedisSink>,
        max_operations: usize,
    ) -> Self {
        Self {
            path,
            redis,
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

    /// Merges what was recorded since the last flush into the file and into Redis.
    /// Redis unreachable: the records go back to the pending ones (within the bound) for
    /// the next flush, and the error is returned.
    pub fn flush(&self) -> Result<(), UsageError> {
        let fresh = std::mem::take(&mut *self.pending.lock());
        if fresh.is_empty() {
            return Ok(());
        }
        let file = match &self.path {
            Some(path) => write_file(path, &fresh, self.max_operations),
            None => Ok(()),
        };
        if let Some(redis) = &self.redis
            && let Err((merged, e)) = redis.merge(&fresh, self.max_operations)
        {
            // Those merged before the failure are in Redis; the others wait.
            let mut pending = self.pending.lock();
            for (id, op) in fresh.into_iter().skip(merged) {
                let room = pending.len() < self.max_operations;
                match pending.get_mut(&id) {
                    Some(newer) => merge_into(newer, op),
                    None if room => {
                        pending.insert(id, op);
                    }
                    None => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            return Err(e);
        }
        file
    }
}

/// Adds `op`'s counts, times and clients to `known`.
fn merge_into(known: &mut RecordedOperation, op: RecordedOperation) {
    known.count += op.count;
    known.last_seen = known.last_seen.max(op.last_seen);
    known.first_seen = known.first_seen.min(op.first_seen);
    for c in op.clients {
        if known.clients.len() < MAX_CLIENTS {
            known.clients.insert(c);
        }
    }
}

fn write_file(
    path: &Path,
    fresh: &BTreeMap<String, RecordedOperation>,
    max_operations: usize,
) -> Result<(), UsageError> {
    let mut all: BTreeMap<String, RecordedOperation> = read(path)
        .into_iter()
        .map(|op| (op.id.clone(), op))
        .collect();
    for (id, op) in fresh {
        match all.get_mut(id) {
            Some(known) => merge_into(known, op.clone()),
            None => {
                all.insert(id.clone(), op.clone());
            }
        }
    }
    let mut list: Vec<RecordedOperation> = all.into_values().collect();
    list.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
    list.truncate(max_operations);
    let text = serde_json::to_vec_pretty(&list).map_err(|e| UsageError::File(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| UsageError::File(format!("{}: {e}", path.display()));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Why recorded usage could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage file: {0}")]
    File(String),
    #[error("usage in Redis: {0}")]
    Redis(String),
}

/// Merges one operation into Redis. KEYS: the `ops` sorted set, the operation's hash,
/// its clients set. ARGV: id, body, count, first_seen, last_seen, MAX_CLIENTS,
/// max_operations, key prefix, clients... The least recently seen operations beyond
/// max_operations are removed with their keys.
const MERGE_SCRIPT: &str = r"
redis.call('HSETNX', KEYS[2], 'body', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'count', ARGV[3])
local first = tonumber(redis.call('HGET', KEYS[2], 'first_seen'))
if not first or tonumber(ARGV[4]) < first then redis.call('HSET', KEYS[2], 'first_seen', ARGV[4]) end
local last = tonumber(redis.call('HGET', KEYS[2], 'last_seen'))
if not last or tonumber(ARGV[5]) > last then
  redis.call('HSET', KEYS[2], 'last_seen', ARGV[5])
  last = tonumber(ARGV[5])
end
for i = 9, #ARGV do
  if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[6]) then break end
  redis.call('SADD', KEYS[3], ARGV[i])
end
redis.call('ZADD', KEYS[1], last, ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[7])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  for _, id in ipairs(old) do
    redis.call('DEL', ARGV[8] .. 'op:' .. id, ARGV[8] .. 'op:' .. id .. ':clients')
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
end
return 1
";

/// Where a recorder writes in Redis. Synchronous on purpose: only the flusher thread
/// uses it, never a request. Connects on first use, with bounded waits.
pub struct RedisSink {
    client: redis::Client,
    prefix: String,
    timeout: std::time::Duration,
    connection: parking_lot::Mutex<Option<redis::Connection>>,
    script: redis::Script,
}

impl RedisSink {
    /// Checks the URL; connects at the first flush.
    pub fn new(url: &str, prefix: &str, timeout: std::time::Duration) -> Result<Self, UsageError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(|e| UsageError::Redis(e.to_string()))?,
            prefix: prefix.to_string(),
            timeout,
            connection: parking_lot::Mutex::new(None),
            script: redis::Script::new(MERGE_SCRIPT),
        })
    }

    /// Merges `fresh` (in its order); on failure, how many were merged before it.
    fn merge(
        &self,
        fresh: &BTreeMap<String, RecordedOperation>,
        max_operations: usize,
    ) -> Result<(), (usize, UsageError)> {
        let err = |e: redis::RedisError| (0, UsageError::Redis(e.to_string()));
        let mut slot = self.connection.lock();
        let connection = match slot.as_mut() {
            Some(c) => c,
            None => {
                let c = self
                    .client
                    .get_connection_with_timeout(self.timeout)
                    .map_err(err)?;
                c.set_read_timeout(Some(self.timeout)).map_err(err)?;
                c.set_write_timeout(Some(self.timeout)).map_err(err)?;
                slot.insert(c)
            }
        };
        for (merged, (id, op)) in fresh.iter().enumerate() {
            let op_key = format!("{}op:{id}", self.prefix);
            let mut invocation = self.script.prepare_invoke();
            invocation
                .key(format!("{}ops", self.prefix))
                .key(&op_key)
                .key(format!("{op_key}:clients"))
                .arg(id)
                .arg(&op.body)
                .arg(op.count)
                .arg(op.first_seen)
                .arg(op.last_seen)
                .arg(MAX_CLIENTS)
                .arg(max_operations)
                .arg(&self.prefix);
            for client in &op.clients {
                invocation.arg(client);
            }
            if let Err(e) = invocation.invoke::<i64>(connection) {
                // A broken connection is made again at the next flush.
                *slot = None;
                return Err((merged, UsageError::Redis(e.to_string())));
            }
        }
        Ok(())
    }
}

/// The operations recorded in Redis under `prefix` and last seen at or after `since`
/// (unix seconds), most recently seen first.
pub fn read_redis(
    url: &str,
    prefix: &str,
    since: u64,
    timeout: std::time::Duration,
) -> Result<Vec<RecordedOperation>, UsageError> {
    use redis::Commands as _;
    let err = |e: redis::RedisError| UsageError::Redis(e.to_string());
    let client = redis::Client::open(url).map_err(err)?;
    let mut c = client.get_connection_with_timeout(timeout).map_err(err)?;
    c.set_read_timeout(Some(timeout)).map_err(err)?;
    let ids: Vec<String> = c
        .zrevrangebyscore(format!("{prefix}ops"), "+inf", since)
        .map_err(err)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let op_key = format!("{prefix}op:{id}");
        let fields: std::collections::HashMap<String, String> = c.hgetall(&op_key).map_err(err)?;
        let clients: BTreeSet<String> = c.smembers(format!("{op_key}:clients")).map_err(err)?;
        let number = |k: &str| fields.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let Some(body) = fields.get("body") else {
            continue; // removed between the two reads
        };
        out.push(RecordedOperation {
            id: id.clone(),
            body: body.clone(),
            clients,
            count: number("count"),
            first_seen: number("first_seen"),
            last_seen: number("last_seen"),
        });
    }
    Ok(out)
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

    fn redis_up(what: &str) -> bool {
        let up = redis::Client::open("redis://127.0.0.1:6379")
            .and_then(|c| c.get_connection_with_timeout(std::time::Duration::from_secs(1)))
            .is_ok();
        if !up {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what}: Redis is required in CI (127.0.0.1:6379)"
            );
            eprintln!("\n!!!!! SKIPPED {what}: no Redis on 127.0.0.1:6379 !!!!!\n");
        }
        up
    }

    #[test]
    fn replicas_add_up_in_redis_bounded_and_nothing_is_lost_while_it_is_away() {
        if !redis_up("replicas_add_up_in_redis") {
            return;
        }
        let url = "redis://127.0.0.1:6379";
        let prefix = format!("portico-test:usage:{}:", uuid::Uuid::new_v4());
        let timeout = std::time::Duration::from_secs(2);
        let sink = || Some(RedisSink::new(url, &prefix, timeout).expect("url"));
        let a = UsageRecorder::with_sinks(None, sink(), 2);
        let b = UsageRecorder::with_sinks(None, sink(), 2);
        a.record("x", "{ x }", "ios", "1");
        a.record("x", "{ x }", "ios", "1");
        a.record("y", "{ y }", "web", "");
        b.record("x", "{ x }", "android", "3");
        a.flush().expect("flush a");
        b.flush().expect("flush b");
        let ops = read_redis(url, &prefix, 0, timeout).expect("read");
        assert_eq!(ops.len(), 2, "{ops:?}");
        let x = ops.iter().find(|o| o.id == "x").expect("x");
        assert_eq!(x.body, "{ x }");
        assert_eq!(x.count, 3);
        assert_eq!(
            x.clients,
            BTreeSet::from(["android@3".to_string(), "ios@1".to_string()])
        );
        assert!(x.first_seen > 0 && x.first_seen <= x.last_seen);
        // The window: nothing was seen in the future.
        assert!(
            read_redis(url, &prefix, now() + 3600, timeout)
                .expect("read")
                .is_empty()
        );
        // Bounded: a third operation pushes out the least recently seen one, keys
        // included.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        b.record("z", "{ z }", "web", "");
        b.record("x", "{ x }", "web", "");
        b.flush().expect("flush");
        let ids: BTreeSet<String> = read_redis(url, &prefix, 0, timeout)
            .expect("read")
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(ids, BTreeSet::from(["x".to_string(), "z".to_string()]));
        let mut c = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connection");
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut c)
            .expect("keys");
        assert!(!left.iter().any(|k| k.contains("op:y")), "{left:?}");

        // Redis unreachable: the flush fails and the records wait for the next one.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dead = UsageRecorder::with_sinks(
            None,
            Some(
                RedisSink::new(&format!("redis://127.0.0.1:{closed}"), &prefix, timeout)
                    .expect("url"),
            ),
            2,
        );
        dead.record("w", "{ w }", "web", "");
        assert!(matches!(dead.flush(), Err(UsageError::Redis(_))));
        dead.record("w", "{ w }", "web", "");
        let pending = dead.pending.lock();
        assert_eq!(pending.get("w").map(|o| o.count), Some(2));
        drop(pending);
        let _: () = redis::cmd("DEL").arg(left).query(&mut c).expect("clean up");
    }
}
