//! The runner (`portico-bench run`): starts the four subgraphs as a process of their own,
//! composes them with Portico's composition, records the subgraph requests Portico makes
//! for one client request (the floor replays them), then measures, round after round and
//! alternating the targets in each round: the floor, Portico, and Hive Router with
//! deduplication on and off when a `hive_router` binary is given. Each gateway is a fresh
//! process per round; CPU comes from `/proc/<pid>/stat` over the measured window only, peak
//! RSS from `VmHWM`. Results go to stdout and `<out>/results.{md,json}`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use reqwest::header::HeaderValue;
use serde::Serialize;

use crate::load::{self, Checker, FloorCall, LoadResult, Workload};
use crate::subgraphs::{self, Data, HEAVY_QUERY, NAMES, Recorded, SMALL_QUERY};

/// Options of `portico-bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Rounds; each round runs every target once, in turn.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Warm-up before each measured window, in seconds (not counted).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Measured window of each scenario, in seconds.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Measured window of the overload scenario, in seconds.
    #[arg(long, default_value_t = 10)]
    pub overload_duration: u64,
    /// Connections of the heavy scenarios.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Connections of the overload scenario.
    #[arg(long, default_value_t = 400)]
    pub overload_connections: usize,
    /// Distinct signed JWTs of the `heavy-jwt` scenario (each request takes the next one).
    #[arg(long, default_value_t = 20_000)]
    pub tokens: usize,
    /// Scenarios to run, in order: small, heavy, heavy-jwt, overload.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "small,heavy,heavy-jwt,overload"
    )]
    pub scenarios: Vec<String>,
    /// The `portico` binary (default: beside this one, i.e. `cargo build --release` output).
    #[arg(long)]
    pub portico: Option<PathBuf>,
    /// A second Portico binary measured as its own target (e.g. a baseline commit).
    #[arg(long)]
    pub portico_baseline: Option<PathBuf>,
    /// TOML tables (ones the generated config lacks) appended to the baseline's config, e.g.
    /// `[deduplication]\nrequests = false`: the same binary (unless
    /// `--portico-baseline` names another) with one setting changed, as its own target.
    #[arg(long)]
    pub portico_baseline_config: Option<String>,
    /// A Hive Router binary (`hive_router`, from `cargo install hive-router`); default:
    /// one on `PATH`, or where `scripts/install-hive-router.sh` installs it.
    #[arg(long, env = "PORTICO_BENCH_HIVE")]
    pub hive: Option<PathBuf>,
    /// Version label of the Hive Router binary, for the report.
    #[arg(long, default_value = "0.0.41")]
    pub hive_version: String,
    /// Skip the floor.
    #[arg(long)]
    pub no_floor: bool,
    /// Working and output directory.
    #[arg(long, default_value = "target/bench-gateways")]
    pub out: PathBuf,
    /// First of the ports used (subgraphs: base..base+3, gateways: base+10..).
    #[arg(long, default_value_t = 25_221)]
    pub base_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Small,
    Heavy,
    HeavyJwt,
    Overload,
}

impl Scenario {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "small" => Scenario::Small,
            "heavy" => Scenario::Heavy,
            "heavy-jwt" => Scenario::HeavyJwt,
            "overload" => Scenario::Overload,
            _ => bail!("unknown scenario {s:?} (small, heavy, heavy-jwt, overload)"),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Scenario::Small => "small",
            Scenario::Heavy => "heavy",
            Scenario::HeavyJwt => "heavy-jwt",
            Scenario::Overload => "overload",
        }
    }
    fn describe(self, a: &RunArgs) -> String {
        match self {
            Scenario::Small => "`{ users { id } }`, 1 connection".into(),
            Scenario::Heavy => format!(
                "heavy query, {} connections, identical requests",
                a.connections
            ),
            Scenario::HeavyJwt => format!(
                "heavy query, {} connections, a distinct valid RS256 JWT per request, propagated to subgraphs",
                a.connections
            ),
            Scenario::Overload => format!("heavy query, {} connections", a.overload_connections),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Floor,
    Portico {
        bin: PathBuf,
        label: &'static str,
        /// TOML appended to the generated config (later keys win).
        extra: String,
    },
    Hive {
        bin: PathBuf,
        dedupe: bool,
    },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Floor => "floor (subgraphs direct)".into(),
            Target::Portico { label, .. } => (*label).into(),
            Target::Hive { dedupe: true, .. } => "Hive Router".into(),
            Target::Hive { dedupe: false, .. } => "Hive Router, dedupe off".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    round: usize,
    target: String,
    scenario: Scenario,
    load: LoadResult,
    gateway_cpu_ms_per_request: Option<f64>,
    subgraph_cpu_ms_per_request: f64,
    subgraph_requests_per_request: f64,
    gateway_peak_rss_mb: Option<f64>,
    /// Resident set size (`VmRSS`) before the warm-up, in MB.
    gateway_rss_before_mb: Option<f64>,
    /// `VmRSS` 10 s after the window ended (overload only), in MB.
    gateway_rss_after_mb: Option<f64>,
    /// Most TCP connections from the gateway to the subgraphs open at once during the
    /// window (sampled every 50 ms).
    subgraph_connections_max: Option<usize>,
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&log)?;
        cmd.stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log,
        })
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32, tick: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (n(11) + n(12)) / tick
}

/// Peak resident set size (`VmHWM`) in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmHWM:")
}

/// Resident set size now (`VmRSS`) in MB.
fn rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmRSS:")
}

fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Established IPv4 TCP connections whose remote port is one of `ports`: the client
/// sides of connections to the subgraphs (`/proc/net/tcp`; only the gateway under test
/// connects to them while it is measured).
fn connections_to(ports: &[u16]) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 01 = ESTABLISHED.
            let remote_port = f
                .get(2)
                .and_then(|a| a.split_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            f.get(3) == Some(&"01") && remote_port.is_some_and(|p| ports.contains(&p))
        })
        .count()
}

/// Samples [`connections_to`] every 50 ms until `stop`; the most seen.
async fn most_connections(ports: [u16; 4], stop: Arc<std::sync::atomic::AtomicBool>) -> usize {
    let mut most = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        most = most.max(connections_to(&ports));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    most
}

fn clock_tick() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn wait_ready(http: &reqwest::Client, url: &str, proc: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!(
                "{} exited ({status}) before answering; log:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        let ok = http
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer on {url}; log:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Setup {
    dir: PathBuf,
    supergraph: PathBuf,
    keys_dir: PathBuf,
    tokens: Arc<Vec<HeaderValue>>,
}

fn write_portico_config(s: &Setup, port: u16, extra: &str) -> Result<PathBuf> {
    let path = s.dir.join(format!("portico-{port}.toml"));
    let pubkey = s.keys_dir.join("auth.pub.pem");
    let config = format!(
        r#"# Written by portico-bench: Portico's defaults, except what the benchmark needs.
listen = "127.0.0.1:{port}"
supergraph = "{supergraph}"

[trust]
signing_key = "{gateway_key}"

[jwt]
public_key = "{pubkey}"

# The heavy query's estimate is above the default max_cost (5,000).
[cost]
max_cost = 1000000.0

# One load generator address would exhaust an anonymous budget in seconds.
[rate_limit]
enabled = false

[headers.subgraphs]
"*" = {{ propagate = [{{ named = "authorization" }}] }}
{extra}
"#,
        supergraph = s.supergraph.display(),
        gateway_key = s.keys_dir.join("gateway.pem").display(),
        pubkey = pubkey.display(),
    );
    std::fs::write(&path, config)?;
    Ok(path)
}

fn write_hive_config(s: &Setup, dedupe: bool) -> Result<PathBuf> {
    let path = s.dir.join(format!("hive-dedupe-{dedupe}.yaml"));
    let jwks = s.dir.join("jwks.json");
    let config = format!(
        r#"# Written by portico-bench: Hive Router's defaults, except what the benchmark needs.
traffic_shaping:
  all:
    dedupe_enabled: {dedupe}
headers:
  all:
    request:
      - propagate:
          named: Authorization
jwt:
  enabled: true
  require_authentication: false
  jwks_providers:
    - source: file
      path: {jwks}
"#,
        jwks = jwks.display()
    );
    std::fs::write(&path, config)?;
    Ok(path)
}

fn start_target(t: &Target, s: &Setup, port: u16) -> Result<Option<Proc>> {
    match t {
        Target::Floor => Ok(None),
        Target::Portico { bin, extra, .. } => {
            let config = write_portico_config(s, port, extra)?;
            let mut cmd = Command::new(bin);
            cmd.arg("gateway").arg("--config").arg(&config);
            Proc::spawn("portico", cmd, s.dir.join(format!("portico-{port}.log"))).map(Some)
        }
        Target::Hive { bin, dedupe } => {
            let config = write_hive_config(s, *dedupe)?;
            let mut cmd = Command::new(bin);
            cmd.env("HOST", "127.0.0.1")
                .env("PORT", port.to_string())
                .env("SUPERGRAPH_FILE_PATH", &s.supergraph)
                .env("ROUTER_CONFIG_FILE_PATH", &config)
                .current_dir(&s.dir);
            Proc::spawn("hive_router", cmd, s.dir.join(format!("hive-{dedupe}.log"))).map(Some)
        }
    }
}

/// Signs the benchmark's access tokens (RS256, an hour long) with the auth key of `keys`.
pub struct Tokens {
    set: portico_auth::keys::KeySet,
    now: i64,
}

impl Tokens {
    /// Signs with `auth_private_pem` (the auth subgraph's RSA key, PKCS#8 PEM).
    pub fn new(auth_private_pem: &str) -> Result<Self> {
        let set = portico_auth::keys::KeySet::from_settings(&portico_auth::AuthSettings {
            issuer: "portico-bench".into(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(3600),
            ..portico_auth::AuthSettings::with_key(auth_private_pem.to_string())
        })?;
        Ok(Tokens {
            set,
            now: chrono::Utc::now().timestamp(),
        })
    }

    /// `Bearer <token>` for user `sub`.
    pub fn bearer(&self, sub: &str) -> Result<String> {
        let token = self.set.sign(&portico_auth::keys::AccessClaims {
            iss: "portico-bench".into(),
            aud: "portico".into(),
            sub: sub.to_string(),
            scope: String::new(),
            iat: self.now,
            exp: self.now + 3600,
        })?;
        Ok(format!("Bearer {token}"))
    }

    /// The JWKS document both gateways verify the tokens with.
    pub fn jwks(&self) -> String {
        self.set.jwks().to_string()
    }
}

/// `n` distinct `Bearer` tokens signed with `auth_private_pem`, and the JWKS that
/// verifies them.
pub(crate) fn mint_tokens(auth_private_pem: &str, n: usize) -> Result<(Vec<HeaderValue>, String)> {
    let tokens = Tokens::new(auth_private_pem)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    let parts: Vec<Vec<HeaderValue>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                let tokens = &tokens;
                scope.spawn(move || {
                    (from..(from + chunk).min(n))
                        .filter_map(|i| {
                            let t = tokens.bearer(&format!("bench-user-{i}")).ok()?;
                            HeaderValue::from_str(&t).ok()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let list: Vec<HeaderValue> = parts.into_iter().flatten().collect();
    if list.len() != n {
        bail!("minted {} of {n} tokens", list.len());
    }
    Ok((list, tokens.jwks()))
}

async fn subgraph_requests(http: &reqwest::Client, base: &str) -> Result<u64> {
    Ok(http
        .get(format!("{base}/bench/requests"))
        .send()
        .await?
        .text()
        .await?
        .trim()
        .parse()?)
}

/// Records the subgraph requests `gateway` makes for one `query`.
async fn record(
    http: &reqwest::Client,
    base: &str,
    gateway: &str,
    query: &str,
    checker: &Checker,
) -> Result<Vec<Recorded>> {
    http.post(format!("{base}/bench/record")).send().await?;
    let body = serde_json::json!({ "query": query }).to_string();
    let resp = http
        .post(gateway)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .bytes()
        .await?;
    checker
        .check(&resp)
        .map_err(|e| anyhow::anyhow!("Portico's answer is wrong: {e}"))?;
    let list: Vec<Recorded> = http
        .get(format!("{base}/bench/recorded"))
        .send()
        .await?
        .json()
        .await?;
    Ok(list)
}

fn floor_calls(list: &[Recorded], urls: &[String]) -> Vec<FloorCall> {
    list.iter()
        .filter_map(|r| {
            let i = NAMES.iter().position(|n| *n == r.subgraph)?;
            Some(FloorCall {
                url: urls[i].clone(),
                body: Bytes::from(r.request.clone()),
                expected: Bytes::from(r.response.clone()),
            })
        })
        .collect()
}

/// A `hive_router` binary on `PATH`, or where `scripts/install-hive-router.sh` puts it
/// by default (`$CARGO_TARGET_DIR` or `target`, then `hive-router-0.0.41/bin`).
fn find_hive() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("hive_router"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        let p = target.join("hive-router-0.0.41/bin/hive_router");
        p.is_file().then_some(p)
    })
}

fn default_portico() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("portico");
    if !bin.exists() {
        bail!(
            "no portico binary at {} (build it: cargo build --release -p portico -p portico-bench), or pass --portico",
            bin.display()
        );
    }
    Ok(bin)
}

/// `portico-bench run`.
pub async fn run(a: RunArgs) -> Result<()> {
    let scenarios: Vec<Scenario> = a
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&a.out)?;
    let dir = std::fs::canonicalize(&a.out)?;
    let tick = clock_tick();
    let http = load::client(4);

    // Keys: the gateway's trust key, and an RSA key whose tokens both gateways verify.
    let keys_dir = dir.join("keys");
    let keys = portico::platform::Keys::generate()?;
    keys.write(&keys_dir)?;
    println!("minting {} access tokens…", a.tokens);
    let (tokens, jwks) = mint_tokens(&keys.auth_private_pem, a.tokens)?;
    std::fs::write(dir.join("jwks.json"), jwks)?;

    // The subgraphs, in a process of their own.
    let ports = [
        a.base_port,
        a.base_port + 1,
        a.base_port + 2,
        a.base_port + 3,
    ];
    let subgraph_urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/graphql"))
        .collect();
    let base = format!("http://127.0.0.1:{}", ports[0]);
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("subgraphs")
        .arg("--ports")
        .arg(ports.map(|p| p.to_string()).join(","));
    // A port already taken (say, by a `portico-bench subgraphs` left running) would have
    // another process answer for these subgraphs, and their CPU be read off the wrong one.
    for port in ports {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            bail!("port {port} is taken ({e}): stop whatever serves it, or pass --base-port");
        }
    }
    let mut sub = Proc::spawn("subgraphs", cmd, dir.join("subgraphs.log"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/health")).send().await.is_err() {
        if Instant::now() > deadline || sub.child.try_wait()?.is_some() {
            bail!("the subgraphs did not start; log:\n{}", sub.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Compose with Portico's composition.
    let inputs: Vec<_> = NAMES
        .iter()
        .zip(&subgraph_urls)
        .map(|(n, url)| -> Result<_> {
            Ok(portico_federation::compose::SubgraphInput {
                name: (*n).to_string(),
                url: url.clone(),
                sdl: subgraphs::sdl(n).context("subgraph")?,
            })
        })
        .collect::<Result<_>>()?;
    let composed = portico_federation::compose::compose(&inputs)
        .map_err(|e| anyhow::anyhow!("composition failed: {:?}", e.errors))?;
    let supergraph = dir.join("supergraph.graphql");
    std::fs::write(&supergraph, &composed.supergraph_sdl)?;

    let data = Data::new();
    let heavy = Arc::new(Checker::new(&data.expected_heavy()));
    let small = Arc::new(Checker::new(&data.expected_small()));
    let heavy_bytes = subgraphs::canonical(&data.expected_heavy()).len();
    let setup = Setup {
        dir: dir.clone(),
        supergraph,
        keys_dir,
        tokens: Arc::new(tokens),
    };

    let portico = match &a.portico {
        Some(p) => p.clone(),
        None => default_portico()?,
    };
    let mut targets = Vec::new();
    if !a.no_floor {
        targets.push(Target::Floor);
    }
    targets.push(Target::Portico {
        bin: portico.clone(),
        label: "Portico",
        extra: String::new(),
    });
    if a.portico_baseline.is_some() || a.portico_baseline_config.is_some() {
        targets.push(Target::Portico {
            bin: a
                .portico_baseline
                .clone()
                .unwrap_or_else(|| portico.clone()),
            label: "Portico (baseline)",
            extra: a.portico_baseline_config.clone().unwrap_or_default(),
        });
    }
    let hive = a.hive.clone().or_else(find_hive);
    if let Some(h) = &hive {
        println!("Hive Router: {}", h.display());
        targets.push(Target::Hive {
            bin: h.clone(),
            dedupe: true,
        });
        targets.push(Target::Hive {
            bin: h.clone(),
            dedupe: false,
        });
    } else {
        println!(
            "no Hive Router found (--hive, PATH, or scripts/install-hive-router.sh's default place): measuring the floor and Portico only"
        );
    }

    // The floor: the requests Portico makes for one client request.
    let gw_port = a.base_port + 10;
    let gw_url = format!("http://127.0.0.1:{gw_port}/graphql");
    let (heavy_floor, small_floor) = {
        let mut p = start_target(&targets[usize::from(!a.no_floor)], &setup, gw_port)?
            .context("Portico process")?;
        wait_ready(&http, &gw_url, &mut p).await?;
        let h = record(&http, &base, &gw_url, HEAVY_QUERY, &heavy).await?;
        let s = record(&http, &base, &gw_url, SMALL_QUERY, &small).await?;
        (
            floor_calls(&h, &subgraph_urls),
            floor_calls(&s, &subgraph_urls),
        )
    };
    println!(
        "heavy query: {heavy_bytes} bytes of response, {} subgraph requests through Portico",
        heavy_floor.len()
    );
    let heavy_floor = Arc::new(heavy_floor);
    let small_floor = Arc::new(small_floor);

    let mut rows = Vec::new();
    for round in 1..=a.rounds {
        for (i, t) in targets.iter().enumerate() {
            let port = gw_port + i as u16;
            let url = format!("http://127.0.0.1:{port}/graphql");
            let mut proc = start_target(t, &setup, port)?;
            if let Some(p) = proc.as_mut() {
                wait_ready(&http, &url, p).await?;
            }
            for &sc in &scenarios {
                if *t == Target::Floor && sc == Scenario::HeavyJwt {
                    continue; // the subgraphs see no token: the same as `heavy`
                }
                let connections = match sc {
                    Scenario::Small => 1,
                    Scenario::Heavy | Scenario::HeavyJwt => a.connections,
                    Scenario::Overload => a.overload_connections,
                };
                let duration = Duration::from_secs(if sc == Scenario::Overload {
                    a.overload_duration
                } else {
                    a.duration
                });
                let w = match (t, sc) {
                    (Target::Floor, Scenario::Small) => Workload::Floor {
                        calls: small_floor.clone(),
                    },
                    (Target::Floor, _) => Workload::Floor {
                        calls: heavy_floor.clone(),
                    },
                    (_, Scenario::Small) => gateway_workload(&url, SMALL_QUERY, &small, None),
                    (_, Scenario::HeavyJwt) => {
                        gateway_workload(&url, HEAVY_QUERY, &heavy, Some(setup.tokens.clone()))
                    }
                    _ => gateway_workload(&url, HEAVY_QUERY, &heavy, None),
                };
                let client = load::client(connections);
                let gw_pid = proc.as_ref().map(Proc::pid);
                let rss_before = gw_pid.and_then(rss_mb);
                load::run(&client, &w, connections, Duration::from_secs(a.warmup)).await;
                let cpu0 = gw_pid.map(|p| cpu_seconds(p, tick));
                let sub0 = cpu_seconds(sub.pid(), tick);
                let req0 = subgraph_requests(&http, &base).await?;
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let sampling = tokio::spawn(most_connections(ports, stop.clone()));
                let result = load::run(&client, &w, connections, duration).await;
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let most = sampling.await.ok();
                let req1 = subgraph_requests(&http, &base).await?;
                let sub1 = cpu_seconds(sub.pid(), tick);
                let cpu1 = gw_pid.map(|p| cpu_seconds(p, tick));
                let n = result.completed.max(1) as f64;
                let row = Row {
                    round,
                    target: t.label(),
                    scenario: sc,
                    gateway_cpu_ms_per_request: cpu0.zip(cpu1).map(|(a, b)| (b - a) * 1000.0 / n),
                    subgraph_cpu_ms_per_request: (sub1 - sub0) * 1000.0 / n,
                    subgraph_requests_per_request: (req1 - req0) as f64 / n,
                    gateway_peak_rss_mb: gw_pid.and_then(peak_rss_mb),
                    gateway_rss_before_mb: rss_before,
                    // After a burst: does the memory come back down?
                    gateway_rss_after_mb: match (gw_pid, sc) {
                        (Some(pid), Scenario::Overload) => {
                            drop(client);
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            rss_mb(pid)
                        }
                        _ => None,
                    },
                    subgraph_connections_max: gw_pid.and(most),
                    load: result,
                };
                println!(
                    "round {round} {:<26} {:<10} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  gw cpu {:>6} ms/req  errors {}{}",
                    row.target,
                    sc.name(),
                    row.load.rps,
                    row.load.p50_us as f64 / 1000.0,
                    row.load.p99_us as f64 / 1000.0,
                    row.gateway_cpu_ms_per_request
                        .map(|c| format!("{c:.3}"))
                        .unwrap_or_else(|| "-".into()),
                    row.load.errors,
                    row.load
                        .first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
                rows.push(row);
            }
            drop(proc);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    drop(sub);

    let report = report(
        &a,
        &targets,
        &scenarios,
        &rows,
        heavy_bytes,
        heavy_floor.len(),
    );
    println!("\n{report}");
    std::fs::write(dir.join("results.md"), &report)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    println!("written to {}", dir.join("results.md").display());
    Ok(())
}

fn gateway_workload(
    url: &str,
    query: &str,
    checker: &Arc<Checker>,
    tokens: Option<Arc<Vec<HeaderValue>>>,
) -> Workload {
    Workload::Gateway {
        url: url.to_string(),
        body: Bytes::from(serde_json::json!({ "query": query }).to_string()),
        expected: checker.clone(),
        tokens,
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The rows of `target` in scenario `sc`, one per round.
fn rows_of<'r>(rows: &'r [Row], target: &str, sc: Scenario) -> Vec<&'r Row> {
    rows.iter()
        .filter(|r| r.scenario == sc && r.target == target)
        .collect()
}

/// The largest value `f` gives over `rows`, rounded, or `-` when none has one.
fn largest(rows: &[&Row], f: impl Fn(&Row) -> Option<f64>) -> String {
    rows.iter()
        .filter_map(|r| f(r))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

fn report(
    a: &RunArgs,
    targets: &[Target],
    scenarios: &[Scenario],
    rows: &[Row],
    heavy_bytes: usize,
    heavy_fetches: usize,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "Run of {} ({} round(s), targets alternating in each; warm-up {} s, window {} s, overload {} s; {cores} cores; loopback).",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        a.rounds,
        a.warmup,
        a.duration,
        a.overload_duration
    );
    let _ = writeln!(
        out,
        "Heavy response: {heavy_bytes} bytes (compact JSON); Portico sends {heavy_fetches} subgraph requests for it. Every response checked; `errors` counts any that was not the expected JSON."
    );
    if targets.iter().any(|t| matches!(t, Target::Hive { .. })) {
        let _ = writeln!(out, "Hive Router {}.", a.hive_version);
    }
    for &sc in scenarios {
        let _ = writeln!(out, "\n### {} — {}\n", sc.name(), sc.describe(a));
        let _ = writeln!(
            out,
            "| target | req/s | Portico ÷ target | p50 ms | p99 ms | gateway CPU ms/req | subgraph CPU ms/req | subgraph req/req | peak RSS MB | errors |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let portico_rps = mean(
            rows.iter()
                .filter(|r| r.scenario == sc && r.target == "Portico")
                .map(|r| r.load.rps),
        );
        for t in targets {
            let label = t.label();
            let rs = rows_of(rows, &label, sc);
            if rs.is_empty() {
                continue;
            }
            let rps = mean(rs.iter().map(|r| r.load.rps));
            let cpu = rs
                .iter()
                .filter_map(|r| r.gateway_cpu_ms_per_request)
                .collect::<Vec<_>>();
            let rss = largest(&rs, |r| r.gateway_peak_rss_mb);
            let _ = writeln!(
                out,
                "| {label} | {rps:.0} | {} | {:.2} | {:.2} | {} | {:.3} | {:.1} | {} | {} |",
                if rps > 0.0 {
                    format!("{:.2}", portico_rps / rps)
                } else {
                    "-".into()
                },
                mean(rs.iter().map(|r| r.load.p50_us as f64 / 1000.0)),
                mean(rs.iter().map(|r| r.load.p99_us as f64 / 1000.0)),
                if cpu.is_empty() {
                    "-".into()
                } else {
                    format!("{:.3}", mean(cpu.into_iter()))
                },
                mean(rs.iter().map(|r| r.subgraph_cpu_ms_per_request)),
                mean(rs.iter().map(|r| r.subgraph_requests_per_request)),
                rss,
                rs.iter().map(|r| r.load.errors).sum::<u64>(),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n### Gateway memory and subgraph connections\n\nRSS before the warm-up, peak, and 10 s after the overload window (clients gone); most connections from the gateway to the four subgraphs open at once during each window (sampled every 50 ms). Largest over the rounds.\n"
    );
    let _ = writeln!(
        out,
        "| target | scenario | RSS before MB | peak RSS MB | RSS 10 s after MB | max subgraph connections |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|");
    for t in targets.iter().filter(|t| **t != Target::Floor) {
        let label = t.label();
        for &sc in scenarios {
            let rs = rows_of(rows, &label, sc);
            if rs.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} |",
                sc.name(),
                largest(&rs, |r| r.gateway_rss_before_mb),
                largest(&rs, |r| r.gateway_peak_rss_mb),
                largest(&rs, |r| r.gateway_rss_after_mb),
                largest(&rs, |r| r.subgraph_connections_max.map(|n| n as f64)),
            );
        }
    }
    out
}
