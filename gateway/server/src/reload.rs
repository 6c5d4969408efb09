//! Reloading from files: the config file, the supergraph file and the trusted-documents
//! manifest, read again on demand (SIGHUP: [`FileReloader::check`] with `explicit`),
//! every N seconds ([`FileReloader::spawn_poll`]) or when a file in their directories
//! changes ([`FileReloader::spawn_watch`], inotify/kqueue/… through `notify`).
//!
//! A check fingerprints the three files' contents. Nothing happens when none changed
//! (unless the reload is explicit); otherwise the whole config is parsed and
//! [`Gateway::reload`] applies it, with the new supergraph when that changed. Each
//! content is tried once: a bad file is reported once (logged, counted in
//! `portico_reloads_total{result="failed"}`), not at every poll, and the previous
//! state keeps serving until a fixed file arrives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, GatewayConfig, TrustedDocumentsMode};
use crate::{Gateway, GatewayError, Reload, Reloaded};

/// How long a watch waits after a change before reading: editors and Kubernetes
/// write a file in several steps (truncate + write, or a symlink swap).
const SETTLE: Duration = Duration::from_millis(200);

/// Why a reload from files did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("no supergraph file: neither given nor set as `supergraph` in the config")]
    NoSupergraph,
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// The files a gateway was started from.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// The config file (`None`: the config in force is kept, only the other files
    /// reload).
    pub config: Option<PathBuf>,
    /// The supergraph file when given apart from the config (`--supergraph`); otherwise
    /// the config's `supergraph`.
    pub supergraph: Option<PathBuf>,
}

/// Content hashes of the files of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fingerprint {
    config: u64,
    supergraph: u64,
    manifest: u64,
}

#[derive(Debug, Default)]
struct Seen {
    /// What the last check read (whatever became of it): a content is tried once.
    tried: Fingerprint,
    /// What is serving.
    applied: Fingerprint,
}

/// Reloads a [`Gateway`] from its [`Files`].
pub struct FileReloader {
    gateway: Gateway,
    files: Files,
    seen: parking_lot::Mutex<Seen>,
}

impl FileReloader {
    /// A reloader for `gateway`, which was started from `files` as they are now.
    pub fn new(gateway: Gateway, files: Files) -> Arc<Self> {
        let reloader = Self {
            gateway,
            files,
            seen: Default::default(),
        };
        let now = reloader.read().map(|r| r.fingerprint).unwrap_or_default();
        *reloader.seen.lock() = Seen {
            tried: now,
            applied: now,
        };
        Arc::new(reloader)
    }

    /// Reads the files and reloads the gateway when one changed, or always when
    /// `explicit` (SIGHUP; the files the config names are read again too). `Ok(None)`:
    /// nothing changed. Blocking (file reads, parsing a supergraph): call it from a
    /// blocking thread.
    pub fn check(&self, explicit: bool) -> Result<Option<Reloaded>, ReloadError> {
        // One check at a time, so two cannot apply in the wrong order.
        let mut seen = self.seen.lock();
        let read = match self.read() {
            Ok(read) => read,
            Err((fingerprint, e)) => {
                if !explicit && seen.tried == fingerprint {
                    return Ok(None);
                }
                seen.tried = fingerprint;
                self.gateway
                    .live
                    .reloads_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "reload failed; still serving the previous config and supergraph");
                return Err(e);
            }
        };
        if !explicit && seen.tried == read.fingerprint {
            return Ok(None);
        }
        seen.tried = read.fingerprint;
        let supergraph_changed = read.fingerprint.supergraph != seen.applied.supergraph;
        let reloaded = self.gateway.reload(Reload {
            config: read.config,
            supergraph: supergraph_changed.then_some(read.supergraph.as_str()),
            reread_files: explicit || read.fingerprint.manifest != seen.applied.manifest,
        })?;
        seen.applied = read.fingerprint;
        tracing::info!(
            config = ?self.files.config,
            supergraph = %read.supergraph_path.display(),
            supergraph_changed,
            "serving the reloaded files"
        );
        Ok(Some(reloaded))
    }

    /// Reads the files: the parsed config, the supergraph text and the fingerprint; on
    /// error, the fingerprint of what could be read (so that a bad file is reported
    /// once).
    fn read(&self) -> Result<Read, (Fingerprint, ReloadError)> {
        let mut fingerprint = Fingerprint::default();
        let config = match &self.files.config {
            Some(path) => {
                let text = read_text(path).map_err(|e| (fingerprint, e))?;
                fingerprint.config = hash(&text);
                GatewayConfig::from_file_text(&text, path)
                    .and_then(|c| c.validate().map(|()| c))
                    .map_err(|e| (fingerprint, e.into()))?
            }
            None => self.gateway.config(),
        };
        let supergraph_path = self
            .files
            .supergraph
            .clone()
            .or_else(|| config.supergraph.clone())
            .ok_or((fingerprint, ReloadError::NoSupergraph))?;
        let supergraph = read_text(&supergraph_path).map_err(|e| (fingerprint, e))?;
        fingerprint.supergraph = hash(&(supergraph_path.as_path(), &supergraph));
        let trusted = &config.trusted_documents;
        if let (Some(path), true) = (&trusted.manifest, trusted.mode != TrustedDocumentsMode::Off) {
            // Unreadable here: the reload itself reports it.
            fingerprint.manifest = hash(&(path, std::fs::read(path).ok()));
        }
        Ok(Read {
            config,
            supergraph,
            supergraph_path,
            fingerprint,
        })
    }

    /// The directories holding the files (watched rather than the files: editors and
    /// Kubernetes ConfigMaps replace a file by a rename or a symlink swap).
    fn directories(&self) -> Vec<PathBuf> {
        let config = self.gateway.config();
        let mut files: Vec<PathBuf> = self.files.config.iter().cloned().collect();
        files.extend(self.files.supergraph.clone().or(config.supergraph));
        files.extend(config.trusted_documents.manifest);
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .map(|f| match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Reload on SIGHUP (explicit: every file read again).
    #[cfg(unix)]
    pub fn spawn_signal(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::error!("cannot listen for SIGHUP: no reload on signal");
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config, supergraph and manifest");
                this.check_in_background(true).await;
            }
        });
    }

    /// Check the files every `every`.
    pub fn spawn_poll(self: &Arc<Self>, every: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                this.check_in_background(false).await;
            }
        });
    }

    /// Check the files whenever something changes in their directories (after
    /// [`SETTLE`]; changes meanwhile are taken in the same check).
    pub fn spawn_watch(self: &Arc<Self>) -> Result<(), ReloadError> {
        use notify::Watcher;
        let changed = Arc::new(tokio::sync::Notify::new());
        let signal = changed.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reads (ours included) are not changes.
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    signal.notify_one();
                }
            })
            .map_err(|source| ReloadError::Watch {
                path: PathBuf::from("."),
                source,
            })?;
        for dir in self.directories() {
            watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
                .map_err(|source| ReloadError::Watch {
                    path: dir.clone(),
                    source,
                })?;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // The watcher lives as long as this task.
            let _watcher = watcher;
            loop {
                changed.notified().await;
                tokio::time::sleep(SETTLE).await;
                this.check_in_background(false).await;
            }
        });
        Ok(())
    }

    async fn check_in_background(self: &Arc<Self>, explicit: bool) {
        let this = self.clone();
        // Errors are logged and counted where they happen.
        let _ = tokio::task::spawn_blocking(move || this.check(explicit)).await;
    }
}

struct Read {
    config: GatewayConfig,
    supergraph: String,
    supergraph_path: PathBuf,
    fingerprint: Fingerprint,
}

fn read_text(path: &Path) -> Result<String, ReloadError> {
    std::fs::read_to_string(path).map_err(|source| ReloadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn hash(value: &impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(value)
}
