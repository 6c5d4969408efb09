//! Tests over the `portico` binary run as a separate process (integration tests of the
//! root package, so that Cargo builds the binary and names it in `CARGO_BIN_EXE_portico`).
//!
//! - `traces`: `portico dev` exporting OpenTelemetry traces to an OTLP/HTTP collector
//!   in this process: one client request is one trace, the gateway's stage and fetch
//!   spans and the subgraphs' spans under them.
//! - `faults`: the production shape (`portico gateway` + six `portico subgraph`
//!   processes, [`Platform`]) with subgraph processes killed, stopped (SIGSTOP: they
//!   accept connections and never answer) and restarted, and the gateway shut down
//!   with SIGTERM while requests are in flight; a subgraph stand-in answering 500,
//!   garbage or an endless body.
//! - `redis`: the same shape on a private `redis-server` that is killed and restarted
//!   empty: the gateway keeps serving, and no event of the outboxes is lost or doubled.
//! - `postgres`: the posts service on a private PostgreSQL server that crashes and comes
//!   back under it.

mod faults;
mod postgres;
mod redis;
mod traces;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// One `portico` service process: how it was started (to restart it on the same
/// address) and where it listens.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
    args: Vec<OsString>,
}

impl Drop for Service {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGKILL promptly everywhere.
        let _ = self.child.start_kill();
    }
}

impl Service {
    /// Starts `portico <args>` and waits for its `… listening on http://ADDR/graphql`
    /// line. `listen` replaces the `{listen}` argument (`127.0.0.1:0` for a free port).
    pub async fn start(args: &[OsString], listen: &str) -> Service {
        let args: Vec<OsString> = args
            .iter()
            .map(|a| {
                if a == "{listen}" {
                    OsString::from(listen)
                } else {
                    a.clone()
                }
            })
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_portico"));
        command
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("PORTICO_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, _) in std::env::vars() {
            if name.starts_with("OTEL_") || name.starts_with("PORTICO_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start portico");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, rest)) = line.split_once(" listening on http://") {
                    return rest.trim_end_matches("/graphql").parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("portico {args:?} prints where it listens"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let args = args
            .into_iter()
            .map(|a| {
                if a == listen {
                    OsString::from("{listen}")
                } else {
                    a
                }
            })
            .collect();
        Service { child, addr, args }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`, `KILL`) with `kill(1)`.
    pub async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Kills the process and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts the same command again on the same address (after [`Service::kill`]).
    pub async fn restart(&mut self) {
        let listen = self.addr.to_string();
        let again = Service::start(&self.args, &listen).await;
        let old = std::mem::replace(self, again);
        drop(old);
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }
}

/// How [`Platform::start_with`] departs from the plain production shape.
#[derive(Default)]
pub struct Options<'a> {
    /// Gateway config (TOML: top-level keys, then tables).
    pub config: &'a str,
    /// `(subgraph, url)`: the gateway sends that subgraph's requests to `url` (a
    /// stand-in served by the test) instead.
    pub elsewhere: Vec<(&'a str, String)>,
    /// Redis URL: the subgraphs' event bus and trust-token replay store, and the
    /// gateway's rate limiter.
    pub redis: Option<String>,
    /// `(subgraph, database URL)` instead of its SQLite file.
    pub databases: Vec<(&'a str, String)>,
}

/// The demo platform in its production shape: one `portico subgraph` process per
/// service (SQLite files in a fresh directory, the gateway's trust public key) and one
/// `portico gateway` process (config written here, the committed demo supergraph).
pub struct Platform {
    pub dir: PathBuf,
    pub subgraphs: BTreeMap<&'static str, Service>,
    pub gateway: Service,
    config: PathBuf,
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const SUBGRAPHS: [&str; 6] = [
    "auth",
    "users",
    "posts",
    "comments",
    "likes",
    "notifications",
];

async fn run_portico(args: &[&OsString]) {
    let status = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("run portico");
    assert!(status.success(), "portico {args:?}");
}

impl Platform {
    /// Starts the six subgraphs, then the gateway with `extra_config` (TOML: top-level
    /// keys, then tables) in its config.
    pub async fn start(extra_config: &str) -> Platform {
        Self::start_with(Options {
            config: extra_config,
            ..Options::default()
        })
        .await
    }

    /// [`Platform::start`] with [`Options`].
    pub async fn start_with(options: Options<'_>) -> Platform {
        let Options {
            config: extra_config,
            elsewhere,
            redis,
            databases,
        } = options;
        let dir = fresh_dir("platform");
        let keys = dir.join("keys");
        run_portico(&[
            &"keys".into(),
            &"--out".into(),
            &keys.clone().into_os_string(),
        ])
        .await;
        let mut subgraphs = BTreeMap::new();
        for name in SUBGRAPHS {
            let mut args: Vec<OsString> = vec!["subgraph".into(), name.into()];
            args.extend(["--listen".into(), "{listen}".into()]);
            args.push("--database-url".into());
            args.push(
                databases
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or_else(
                        || format!("sqlite://{}/{name}.db?mode=rwc", dir.display()),
                        |(_, url)| url.clone(),
                    )
                    .into(),
            );
            args.push("--trust-public-key".into());
            args.push(keys.join("gateway.pub.pem").into_os_string());
            if name == "auth" {
                args.push("--auth-private-key".into());
                args.push(keys.join("auth.pem").into_os_string());
            }
            if let Some(url) = &redis {
                args.push("--redis-url".into());
                args.push(url.into());
            }
            subgraphs.insert(name, Service::start(&args, "127.0.0.1:0").await);
        }
        let supergraph =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("supergraph/supergraph.graphql");
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\nsupergraph = {:?}\n{extra_config}\n[trust]\nsigning_key = {:?}\n",
            supergraph.display().to_string(),
            keys.join("gateway.pem").display().to_string(),
        );
        // Access tokens: auth's keys, as in deploy/gateway.toml.
        config.push_str(&format!(
            "[jwt]\njwks_url = \"http://{}/.well-known/jwks.json\"\nissuer = \"portico-auth\"\naudience = \"portico\"\n",
            subgraphs["auth"].addr
        ));
        if let Some(url) = &redis {
            config.push_str(&format!(
                "[rate_limit]\nbackend = \"redis\"\nredis_url = {url:?}\n"
            ));
        }
        for (name, service) in &subgraphs {
            let url = elsewhere
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| service.url(), |(_, url)| url.clone());
            config.push_str(&format!("[subgraphs.{name}]\nurl = {url:?}\n"));
        }
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config).expect("write the gateway config");
        let gateway = Service::start(
            &[
                "gateway".into(),
                "--config".into(),
                config_path.clone().into_os_string(),
            ],
            "127.0.0.1:0",
        )
        .await;
        Platform {
            dir,
            subgraphs,
            gateway,
            config: config_path,
        }
    }

    pub fn url(&self) -> String {
        self.gateway.url()
    }

    pub fn subgraph(&mut self, name: &str) -> &mut Service {
        self.subgraphs.get_mut(name).expect("a demo subgraph")
    }

    /// The gateway's config file.
    pub fn config(&self) -> &Path {
        &self.config
    }
}

/// POSTs `query` to `url`: the HTTP status and the JSON body (`Null` if none).
pub async fn post(url: &str, query: &str) -> (u16, serde_json::Value) {
    post_as(url, None, query, serde_json::json!({})).await
}

/// POSTs `query` with `variables`, with `token` as the bearer token when given.
pub async fn post_as(
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Resident memory of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// A private PostgreSQL server (initdb in a fresh directory, `pg_ctl` start and stop;
/// run as the `postgres` user when the tests run as root, as in CI), for tests that take
/// the database away from a subgraph. `None` when the server binaries are missing.
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    pub async fn start(dir: &Path, port: u16) -> Option<PrivatePostgres> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        let bin = versions
            .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
            .find(|b| b.join("initdb").exists())?;
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .await
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        let pg = PrivatePostgres {
            bin,
            data: dir.join("pgdata"),
            port,
            as_postgres,
        };
        if as_postgres {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir)
                .status()
                .await
                .ok()?;
            if !owned.success() {
                return None;
            }
        }
        let data = pg.data.display().to_string();
        if !pg
            .run(
                "initdb",
                &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            )
            .await
        {
            return None;
        }
        pg.up().await.then_some(pg)
    }

    /// Runs server binary `tool` with `args` (as `postgres` when root).
    async fn run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Starts the server (after [`PrivatePostgres::crash`] too: it recovers from its WAL)
    /// and waits until it accepts connections.
    pub async fn up(&self) -> bool {
        let data = self.data.display().to_string();
        let log = self.data.with_extension("log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port, data
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )
        .await
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    /// connections cut).
    pub async fn crash(&self) -> bool {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await
    }

    /// Creates database `name`.
    pub async fn create_database(&self, name: &str) -> bool {
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        )
        .await
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        } else {
            std::process::Command::new(&program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
    }
}
