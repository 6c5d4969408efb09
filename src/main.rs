//! `portico`: the one binary.
//!
//! `portico [dev]` runs the whole demo platform in one process; `portico gateway` runs
//! the gateway alone against any Federation v2 supergraph; `portico subgraph NAME` runs
//! one demo service (SQLite by default, PostgreSQL by URL); `portico migrate NAME`
//! applies a service's migrations; `portico keys` writes fresh key pairs; `portico plan`
//! prints the query plan of an operation.

/// See the `jemalloc` feature in Cargo.toml (on by default).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use portico::platform::{self, PlatformOptions, Storage};
use portico::schema_cmds;
use portico::telemetry::{self, Telemetry, TraceSettings};
use portico_trust::TrustVerifier;

#[derive(Parser, Debug)]
#[command(
    name = "portico",
    version,
    about = "A GraphQL Federation v2 gateway and a reference microservice platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every demo subgraph and the gateway in one process (the default).
    Dev(DevArgs),
    /// Run the gateway against a supergraph.
    Gateway(GatewayArgs),
    /// Run one demo subgraph.
    Subgraph(SubgraphArgs),
    /// Apply one demo subgraph's database migrations.
    Migrate(MigrateArgs),
    /// Write new key pairs: RSA (auth access tokens) and Ed25519 (gateway trust tokens).
    Keys(KeysArgs),
    /// Print the query plan of an operation.
    Plan(PlanArgs),
    /// Print the static cost estimate of an operation, with a per-field breakdown.
    Cost(CostArgs),
    /// Compose subgraph SDLs into a supergraph and the API schema.
    Compose(ComposeArgs),
    /// Schema check: compose and classify every change against the committed API schema.
    Check(schema_cmds::CheckArgs),
    /// Regenerate every generated file of the demo: each `supergraph/<name>.graphql` from
    /// its subgraph's code, then `supergraph/supergraph.graphql` and `schema.graphql`
    /// (`--check`: write nothing, exit 1 when any of them is stale).
    Generate {
        #[arg(long)]
        check: bool,
    },
    /// Print a demo subgraph's SDL (as served at `_service { sdl }`).
    Sdl {
        /// Subgraph name.
        name: String,
    },
}

#[derive(clap::Args, Debug)]
struct DevArgs {
    /// Directory for SQLite files and keys.
    #[arg(long, env = "PORTICO_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Gateway listen address.
    #[arg(long, env = "PORTICO_LISTEN", default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// First loopback port of the six subgraphs (0: any free ports).
    #[arg(long, default_value_t = 4001)]
    subgraph_base_port: u16,
    /// Do not seed demo data.
    #[arg(long)]
    no_seed: bool,
    /// Use Redis Streams as the event bus instead of the in-process bus.
    #[arg(long, env = "PORTICO_REDIS_URL")]
    redis_url: Option<String>,
}

#[derive(clap::Args, Debug)]
struct GatewayArgs {
    /// Gateway config file (TOML, or YAML when named `*.yaml`/`*.yml`).
    #[arg(long, env = "PORTICO_CONFIG")]
    config: Option<PathBuf>,
    /// Supergraph SDL file (overrides the config's `supergraph`).
    #[arg(long, env = "PORTICO_SUPERGRAPH")]
    supergraph: Option<PathBuf>,
    /// Ed25519 private key (PKCS#8 PEM) signing trust tokens (overrides the config).
    #[arg(long, env = "PORTICO_TRUST_KEY")]
    trust_key: Option<PathBuf>,
    /// Check the config, supergraph and trusted-documents files every N seconds and
    /// reload when one changed (0: no polling).
    #[arg(
        long,
        alias = "supergraph-poll-secs",
        env = "PORTICO_RELOAD_POLL_SECS",
        default_value_t = 0
    )]
    reload_poll_secs: u64,
    /// Watch the directories of those files and reload as soon as one changes.
    #[arg(long, env = "PORTICO_WATCH")]
    watch: bool,
}

#[derive(clap::Args, Debug)]
struct SubgraphArgs {
    /// auth, users, posts, comments, likes or notifications.
    name: String,
    /// Database URL: `sqlite://path.db?mode=rwc`, `sqlite::memory:` or `postgres://…`.
    #[arg(long, env = "PORTICO_DATABASE_URL")]
    database_url: Option<String>,
    /// Listen address.
    #[arg(long, env = "PORTICO_LISTEN", default_value = "127.0.0.1:4001")]
    listen: SocketAddr,
    /// Gateway public key(s) (SPKI PEM) accepted for trust tokens; repeat during rotation.
    #[arg(
        long = "trust-public-key",
        env = "PORTICO_TRUST_PUBLIC_KEY",
        required = true
    )]
    trust_public_keys: Vec<PathBuf>,
    /// Redis URL for the event bus (Redis Streams) and the trust-token replay check
    /// shared by this subgraph's replicas (auth: its refresh-token sessions too);
    /// default in-process (and auth's database).
    #[arg(long, env = "PORTICO_REDIS_URL")]
    redis_url: Option<String>,
    /// auth only: RSA private key (PKCS#8 PEM) signing access tokens.
    #[arg(long, env = "PORTICO_AUTH_PRIVATE_KEY")]
    auth_private_key: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); with --tls-key.
    #[arg(long, env = "PORTICO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PORTICO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM bundle): mutual TLS with
    /// the gateway. Needs --tls-cert.
    #[arg(long, env = "PORTICO_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct MigrateArgs {
    name: String,
    #[arg(long, env = "PORTICO_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(clap::Args, Debug)]
struct KeysArgs {
    /// Output directory.
    #[arg(long, default_value = "keys")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct CostArgs {
    /// Supergraph SDL file (default: the embedded demo supergraph, priced with the demo's
    /// list-size settings).
    #[arg(long)]
    supergraph: Option<PathBuf>,
    /// Gateway config whose `[cost]` section supplies settings by coordinate.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The operation: a file path, or the GraphQL text itself.
    #[arg(long)]
    query: String,
    /// Variables: a JSON object, or a file holding one.
    #[arg(long)]
    variables: Option<String>,
    /// Operation name, when the document has several.
    #[arg(long)]
    operation_name: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ComposeArgs {
    /// Subgraph list (TOML: `[[subgraph]] name, url, sdl`).
    #[arg(long, default_value = "supergraph/subgraphs.toml")]
    subgraphs: PathBuf,
    /// Fetch each SDL live from `_service { sdl }`, signing trust tokens with this gateway key.
    #[arg(long, value_name = "GATEWAY_KEY")]
    live: Option<PathBuf>,
    /// Where to write the supergraph SDL.
    #[arg(long, default_value = "supergraph/supergraph.graphql")]
    output: PathBuf,
    /// Where to write the API schema.
    #[arg(long, default_value = "schema.graphql")]
    api_output: PathBuf,
    /// Do not write: fail (exit 1) when the files on disk are not what composition produces.
    #[arg(long)]
    check: bool,
    #[arg(long, value_enum, default_value_t)]
    format: schema_cmds::Format,
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// Supergraph SDL file (default: the embedded demo supergraph).
    #[arg(long)]
    supergraph: Option<PathBuf>,
    /// The operation: a file path, or the GraphQL text itself.
    #[arg(long)]
    query: String,
    /// Operation name, when the document has several.
    #[arg(long)]
    operation_name: Option<String>,
    /// Progressive override labels to enable.
    #[arg(long = "override-label")]
    override_labels: Vec<String>,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn default_database_url(name: &str) -> String {
    platform::database_url(&Storage::Dir(PathBuf::from("data")), name)
}

/// Brings generated file `path` to `content`: with `check`, only reports (and returns
/// `true`) when it differs.
fn sync_generated(path: &Path, content: &str, check: bool) -> Result<bool> {
    if std::fs::read_to_string(path).unwrap_or_default() == content {
        return Ok(false);
    }
    if check {
        eprintln!("{} is stale: run `portico generate`", path.display());
        return Ok(true);
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(false)
}

/// A file's content when `s` names a file, else `s` itself.
fn text_or_file(s: &str) -> Result<String> {
    if std::path::Path::new(s).is_file() {
        read(&PathBuf::from(s))
    } else {
        Ok(s.to_string())
    }
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Logs on stdout, filtered by `RUST_LOG` (default `info,sqlx=warn,sea_orm=warn`, plus
/// `portico::access=warn` for the text-log commands), as
/// text or as one JSON object per line: `PORTICO_LOG_FORMAT=json|text`, default `json`
/// for the long-running services (`gateway`, `subgraph`: what log collectors ingest) and
/// `text` for `dev` and the other commands.
/// Logs, and traces when an OTLP endpoint is configured (see `portico::telemetry`).
fn init_telemetry(default_json: bool, service_name: &str) -> Result<Telemetry> {
    telemetry::init(
        default_json,
        TraceSettings {
            service_name: std::env::var("OTEL_SERVICE_NAME")
                .unwrap_or_else(|_| service_name.into()),
            ..TraceSettings::default()
        },
    )
}

/// Serves a subgraph until SIGTERM/SIGINT, then stops accepting and lets requests in
/// flight finish (at most 30 s).
async fn serve_subgraph<L>(listener: L, router: axum::Router) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        portico_gateway::termination().await;
        signalled.notify_one();
    });
    tokio::select! {
        served = server => served?,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        } => tracing::warn!("shut down at the deadline: requests still in flight were cut"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // No subcommand = `portico dev` with its defaults (and environment overrides).
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["portico", "dev"])
            .command
            .context("clap parses `dev`")?,
    };
    match command {
        Command::Dev(args) => {
            let telemetry = init_telemetry(false, "portico")?;
            let p = platform::start(PlatformOptions {
                storage: Storage::Dir(args.data_dir.clone()),
                gateway_addr: args.listen,
                subgraph_base_port: (args.subgraph_base_port != 0)
                    .then_some(args.subgraph_base_port),
                seed: !args.no_seed,
                redis_url: args.redis_url,
                limits: true,
            })
            .await?;
            for (name, url) in &p.subgraphs {
                println!("subgraph {name:<14} {url}");
            }
            println!("gateway  {:<14} {}", "", p.gateway_url);
            println!();
            println!("Playground: open {} in a browser.", p.gateway_url);
            println!(
                "Demo accounts: {} (password `{}`), data in {}",
                portico::seed::DEMO_USERS.join(", "),
                portico::seed::DEMO_PASSWORD,
                args.data_dir.display()
            );
            tokio::signal::ctrl_c().await?;
            println!("shutting down");
            p.shutdown();
            telemetry.shutdown().await;
        }
        Command::Gateway(args) => {
            let mut config = match &args.config {
                Some(path) => portico_gateway::GatewayConfig::from_file(path)
                    .with_context(|| format!("loading config {}", path.display()))?,
                None => portico_gateway::GatewayConfig::default(),
            };
            let traces = &config.telemetry;
            let telemetry = telemetry::init(
                true,
                TraceSettings {
                    service_name: std::env::var("OTEL_SERVICE_NAME")
                        .unwrap_or_else(|_| traces.service_name.clone()),
                    otlp_endpoint: traces.otlp_endpoint.clone(),
                    sample_ratio: traces.sample_ratio,
                },
            )?;
            if let Some(sg) = args.supergraph.clone() {
                config.supergraph = Some(sg);
            }
            let sg_path = config.supergraph.clone().context(
                "no supergraph: pass --supergraph FILE or set `supergraph` in the config",
            )?;
            let sdl = read(&sg_path)?;
            let key_path = args
                .trust_key
                .or_else(|| config.trust.signing_key.clone())
                .context("no trust key: pass --trust-key FILE (see `portico keys`)")?;
            let signer = portico_trust::TrustSigner::from_pkcs8_pem(&read(&key_path)?)
                .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", key_path.display()))?;
            let listener = portico_gateway::bind(config.listen).await?;
            let addr = listener.local_addr()?;
            let gateway = portico_gateway::Gateway::new(config, &sdl, signer)?;
            // The parsed supergraph keeps what it needs: do not hold the text for the
            // process's lifetime (megabytes on large supergraphs).
            drop(sdl);
            // SIGHUP always; polling and watching when asked.
            let reloader = portico_gateway::reload::FileReloader::new(
                gateway.clone(),
                portico_gateway::reload::Files {
                    config: args.config.clone(),
                    supergraph: args.supergraph.clone(),
                },
            );
            #[cfg(unix)]
            reloader.spawn_signal();
            if args.reload_poll_secs > 0 {
                reloader.spawn_poll(std::time::Duration::from_secs(args.reload_poll_secs));
            }
            if args.watch {
                reloader.spawn_watch()?;
            }
            println!("gateway listening on http://{addr}/graphql");
            let served =
                portico_gateway::serve_until(gateway, listener, portico_gateway::termination())
                    .await;
            telemetry.shutdown().await;
            served?;
        }
        Command::Subgraph(args) => {
            let telemetry = init_telemetry(true, &format!("portico-{}", args.name))?;
            let url = args
                .database_url
                .unwrap_or_else(|| default_database_url(&args.name));
            let pems = args
                .trust_public_keys
                .iter()
                .map(read)
                .collect::<Result<Vec<_>>>()?;
            let mut verifier = TrustVerifier::from_public_pems(&pems)
                .context("loading the gateway public key(s)")?;
            // Replicas of this subgraph share the Redis: a token one accepted, the others
            // refuse (portico_kit::replay).
            if let Some(u) = &args.redis_url {
                let store = portico_kit::replay::RedisReplayStore::connect(u, "portico:trust:jti")
                    .await
                    .context("connecting the shared trust-token replay store (Redis)")?;
                verifier = verifier.with_shared_replay(Arc::new(store));
            }
            let bus: Arc<dyn portico_kit::events::Bus> = match &args.redis_url {
                Some(u) => Arc::new(
                    portico_kit::events::RedisStreamsBus::connect(u, "portico:events").await?,
                ),
                None => Arc::new(portico_kit::events::InProcessBus::new()),
            };
            let settings = if args.name == "auth" {
                let path = args
                    .auth_private_key
                    .context("auth needs --auth-private-key FILE (see `portico keys`)")?;
                let private = read(&path)?;
                platform::public_key_pem_from_private(&private)
                    .with_context(|| format!("{} is not an RSA private key", path.display()))?;
                let mut settings = platform::auth_settings(&private);
                // Replicas share sessions: a rotation or logout on one holds on all.
                settings.sessions_redis_url = args.redis_url.clone();
                Some(settings)
            } else {
                None
            };
            let router = platform::subgraph_router(
                &args.name,
                &url,
                verifier,
                bus,
                args.redis_url.clone(),
                settings,
            )
            .await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            let addr = listener.local_addr()?;
            match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => {
                    let config = portico_kit::tls::server_config(&portico_kit::tls::TlsSettings {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: args.tls_client_ca.clone(),
                    })?;
                    println!(
                        "subgraph {} listening on https://{addr}/graphql{}",
                        args.name,
                        if args.tls_client_ca.is_some() {
                            " (client certificates required)"
                        } else {
                            ""
                        }
                    );
                    let listener = portico_kit::tls::TlsListener::new(listener, config)?;
                    serve_subgraph(listener, router).await?;
                }
                _ => {
                    println!("subgraph {} listening on http://{addr}/graphql", args.name);
                    serve_subgraph(listener, router).await?;
                }
            }
            telemetry.shutdown().await;
        }
        Command::Migrate(args) => {
            init_telemetry(false, "portico")?;
            let url = args
                .database_url
                .unwrap_or_else(|| default_database_url(&args.name));
            platform::migrate(&args.name, &url).await?;
            println!("{}: migrations applied", args.name);
        }
        Command::Keys(args) => {
            let keys = platform::Keys::generate()?;
            keys.write(&args.out)?;
            println!(
                "wrote {0}/auth.pem, {0}/auth.pub.pem (RSA), {0}/gateway.pem, {0}/gateway.pub.pem (Ed25519)",
                args.out.display()
            );
        }
        Command::Plan(args) => {
            let sdl = match &args.supergraph {
                Some(p) => read(p)?,
                None => platform::DEMO_SUPERGRAPH.to_string(),
            };
            let query = text_or_file(&args.query)?;
            let supergraph = portico_federation::supergraph::Supergraph::parse(&sdl)?;
            let doc = apollo_compiler::ExecutableDocument::parse_and_validate(
                supergraph.api_schema(),
                &query,
                "query.graphql",
            )
            .map_err(|e| anyhow::anyhow!("{}", e.errors))?;
            let options = portico_federation::plan::PlanOptions {
                override_labels: args.override_labels.into_iter().collect(),
                ..Default::default()
            };
            let plan = portico_federation::plan::plan(
                &supergraph,
                &doc,
                args.operation_name.as_deref(),
                &options,
            )?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{plan}");
            }
        }
        Command::Cost(args) => {
            let (sdl, mut config) = match &args.supergraph {
                Some(p) => (read(p)?, portico_gateway::GatewayConfig::default()),
                None => {
                    let mut c = portico_gateway::GatewayConfig::default();
                    platform::apply_demo_policy(&mut c)?;
                    (platform::DEMO_SUPERGRAPH.to_string(), c)
                }
            };
            if let Some(path) = &args.config {
                config = portico_gateway::GatewayConfig::from_file(path)
                    .with_context(|| format!("loading config {}", path.display()))?;
            }
            let query = text_or_file(&args.query)?;
            let variables: serde_json::Map<String, serde_json::Value> = match &args.variables {
                Some(v) => serde_json::from_str(&text_or_file(v)?)
                    .context("--variables must be a JSON object")?,
                None => Default::default(),
            };
            let supergraph = portico_federation::supergraph::Supergraph::parse(&sdl)?;
            let doc = apollo_compiler::ExecutableDocument::parse_and_validate(
                supergraph.api_schema(),
                &query,
                "query.graphql",
            )
            .map_err(|e| anyhow::anyhow!("{}", e.errors))?;
            let model = portico_federation::cost::CostModel::new(&supergraph, &config.cost.model)?;
            let estimate = model.estimate(&doc, args.operation_name.as_deref(), &variables)?;
            print!("{}", portico_federation::cost::render_breakdown(&estimate));
            println!(
                "max_cost {} -> {}",
                config.cost.max_cost,
                if estimate.total > config.cost.max_cost {
                    "REFUSED (COST_ESTIMATED_TOO_EXPENSIVE)"
                } else {
                    "accepted"
                }
            );
        }
        Command::Compose(args) => {
            let signer = match &args.live {
                Some(p) => Some(portico_trust::TrustSigner::from_pkcs8_pem(&read(p)?)?),
                None => None,
            };
            let inputs = schema_cmds::inputs(&args.subgraphs, signer.as_ref()).await?;
            let code = schema_cmds::compose_cmd(
                &inputs,
                &args.output,
                &args.api_output,
                args.check,
                args.format,
            )?;
            std::process::exit(code);
        }
        Command::Check(args) => {
            let outcome = schema_cmds::run_check(&args).await;
            print!("{}", outcome.report);
            eprint!("{}", outcome.messages);
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            std::process::exit(outcome.code);
        }
        Command::Generate { check } => {
            let list = PathBuf::from("supergraph/subgraphs.toml");
            let mut stale = false;
            for name in platform::SUBGRAPHS {
                let sdl = platform::subgraph_sdl(name)
                    .with_context(|| format!("unknown subgraph `{name}`"))?;
                let path = PathBuf::from(format!("supergraph/{name}.graphql"));
                stale |= sync_generated(&path, &sdl, check)?;
            }
            let inputs = schema_cmds::inputs(&list, None).await?;
            let code = schema_cmds::compose_cmd(
                &inputs,
                Path::new("supergraph/supergraph.graphql"),
                Path::new("schema.graphql"),
                check,
                schema_cmds::Format::Text,
            )?;
            // The Kubernetes deployment's copy (kustomize reads only its own folder).
            let supergraph = read(&PathBuf::from("supergraph/supergraph.graphql"))?;
            stale |= sync_generated(
                Path::new("deploy/k8s/supergraph.graphql"),
                &supergraph,
                check,
            )?;
            std::process::exit(if stale && code == 0 { 1 } else { code });
        }
        Command::Sdl { name } => {
            let sdl = platform::subgraph_sdl(&name)
                .with_context(|| format!("unknown subgraph `{name}`"))?;
            print!("{sdl}");
        }
    }
    Ok(())
}
