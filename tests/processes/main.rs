//! Tests over the `portico` binary run as a separate process (integration tests of the
//! root package, so that Cargo builds the binary and names it in `CARGO_BIN_EXE_portico`).
//!
//! - `traces`: `portico dev` exporting OpenTelemetry traces to an OTLP/HTTP collector
//!   in this process: one client request is one trace, the gateway's stage and fetch
//!   spans and the subgraphs' spans under them.

mod traces;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `portico` process, killed when dropped, with its data directory removed.
pub struct Portico {
    pub child: Child,
    pub data_dir: PathBuf,
}

impl Drop for Portico {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A fresh directory under the system temp dir, unique to this run.
pub fn fresh_dir(label: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("portico-{label}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a data directory");
    dir
}

/// Starts `portico dev` on free ports with `env` set (and every inherited `OTEL_*`
/// variable removed), waits until it is seeded and serving, and returns it with the
/// gateway's `/graphql` URL.
pub async fn start_dev(env: &[(&str, String)]) -> (Portico, String) {
    let data_dir = fresh_dir("dev");
    let mut command = Command::new(env!("CARGO_BIN_EXE_portico"));
    command
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--subgraph-base-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") || name.starts_with("PORTICO_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start `portico dev`");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("Playground: open ") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("`portico dev` prints its playground URL once seeded");
    // Keep reading its output, so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Portico { child, data_dir }, url)
}
