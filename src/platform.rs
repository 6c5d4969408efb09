//! The whole demo platform in one process: six subgraphs on loopback ports plus the
//! gateway. This is what `portico dev` (and so `cargo run --release`) starts, and what
//! the end-to-end tests start with in-memory databases.
//!
//! Start-up order: keys (generated on first start) → databases (migrated) → in-process
//! event bus → subgraphs (each bound before the gateway learns its URL) → gateway
//! (embedded demo supergraph with subgraph URLs overridden) → demo data (seeded through
//! the gateway's public API, exactly as a client would, only when the platform is new).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use portico_gateway::config::SubgraphConfig;
use portico_gateway::{Gateway, GatewayConfig};
use portico_kit::ServiceContext;
use portico_kit::events::{Bus, InProcessBus};
use portico_trust::{TrustSigner, TrustVerifier};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The demo supergraph, composed from the six subgraph SDLs under `supergraph/`.
pub const DEMO_SUPERGRAPH: &str = include_str!("../supergraph/supergraph.graphql");

/// `iss` of the demo's access tokens.
pub const ISSUER: &str = "portico-auth";
/// `aud` of the demo's access tokens.
pub const AUDIENCE: &str = "portico";

/// Names of the demo subgraphs, in start order.
pub const SUBGRAPHS: [&str; 6] = [
    "auth",
    "users",
    "posts",
    "comments",
    "likes",
    "notifications",
];

/// Where the platform keeps its state.
#[derive(Debug, Clone)]
pub enum Storage {
    /// SQLite files (and keys) under this directory.
    Dir(PathBuf),
    /// In-memory SQLite, fresh keys: nothing survives the process (tests).
    Memory,
}

#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub storage: Storage,
    /// Gateway listen address (port 0 = any free port).
    pub gateway_addr: SocketAddr,
    /// First port for the subgraphs (auth, users, …); `None` = any free ports.
    pub subgraph_base_port: Option<u16>,
    /// Seed demo data when the platform is new.
    pub seed: bool,
    /// Redis URL for the event bus (Redis Streams); `None` = in-process bus.
    pub redis_url: Option<String>,
    /// Enforce the gateway's cost limit and rate limits (on by default; the load test
    /// turns them off to measure raw throughput).
    pub limits: bool,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        Self {
            storage: Storage::Dir(PathBuf::from("data")),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
            subgraph_base_port: Some(4001),
            seed: true,
            redis_url: None,
            limits: true,
        }
    }
}

/// A running platform. Dropping it does not stop the tasks; call [`Platform::shutdown`].
pub struct Platform {
    pub gateway_url: String,
    pub subgraphs: Vec<(&'static str, String)>,
    pub gateway: Arc<Gateway>,
    /// The gateway's signer (tests use it to prove what a subgraph accepts).
    pub trust_signer: TrustSigner,
    tasks: Vec<JoinHandle<()>>,
}

impl Platform {
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Keys of a platform: RSA for auth's access tokens, Ed25519 for the gateway's trust tokens.
pub struct Keys {
    pub auth_private_pem: String,
    pub auth_public_pem: String,
    pub gateway_signer: TrustSigner,
}

impl Keys {
    pub fn generate() -> Result<Self> {
        let auth_private_pem =
            portico_auth::generate_rsa_private_key_pem().context("generating the RSA key")?;
        let auth_public_pem = public_key_pem_from_private(&auth_private_pem)
            .context("deriving the RSA public key")?;
        Ok(Self {
            auth_private_pem,
            auth_public_pem,
            gateway_signer: TrustSigner::generate(),
        })
    }

    /// Write the key files `auth.pem`, `auth.pub.pem`, `gateway.pem`, `gateway.pub.pem`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_secret(&dir.join("auth.pem"), &self.auth_private_pem)?;
        std::fs::write(dir.join("auth.pub.pem"), &self.auth_public_pem)?;
        write_secret(
            &dir.join("gateway.pem"),
            &self.gateway_signer.to_pkcs8_pem()?,
        )?;
        std::fs::write(
            dir.join("gateway.pub.pem"),
            self.gateway_signer.public_key_pem()?,
        )?;
        Ok(())
    }

    /// Load the key files from `dir`, generating and writing them on first start.
    pub fn load_or_generate(dir: &Path) -> Result<Self> {
        let auth = dir.join("auth.pem");
        let gateway = dir.join("gateway.pem");
        if auth.exists() && gateway.exists() {
            let auth_private_pem = std::fs::read_to_string(&auth)
                .with_context(|| format!("reading {}", auth.display()))?;
            let auth_public_pem = public_key_pem_from_private(&auth_private_pem)
                .with_context(|| format!("{} is not an RSA private key", auth.display()))?;
            let gateway_signer = TrustSigner::from_pkcs8_pem(
                &std::fs::read_to_string(&gateway)
                    .with_context(|| format!("reading {}", gateway.display()))?,
            )
            .with_context(|| format!("{} is not an Ed25519 private key", gateway.display()))?;
            return Ok(Self {
                auth_private_pem,
                auth_public_pem,
                gateway_signer,
            });
        }
        let keys = Self::generate()?;
        keys.write(dir)?;
        tracing::info!(dir = %dir.display(), "generated new key pairs");
        Ok(keys)
    }
}

/// The SPKI PEM public key of a PKCS#8 PEM RSA private key.
pub fn public_key_pem_from_private(private_pem: &str) -> Result<String> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).context("not a PKCS#8 RSA key")?;
    Ok(key.to_public_key().to_public_key_pem(LineEnding::LF)?)
}

fn write_secret(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The database URL of one service for the given storage.
pub fn database_url(storage: &Storage, name: &str) -> String {
    match storage {
        Storage::Dir(dir) => format!("sqlite://{}/{name}.db?mode=rwc", dir.display()),
        Storage::Memory => "sqlite::memory:".to_string(),
    }
}

fn unknown(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "unknown subgraph `{name}` (expected one of: {})",
        SUBGRAPHS.join(", ")
    )
}

async fn connect(name: &str, database_url: &str) -> Result<sea_orm::DatabaseConnection> {
    portico_kit::db::connect(database_url)
        .await
        .with_context(|| format!("connecting the {name} database"))
}

/// Apply one service's migrations to an open database.
async fn migrate_db(name: &str, db: &sea_orm::DatabaseConnection) -> Result<()> {
    match name {
        "auth" => portico_auth::migrate(db).await?,
        "users" => portico_users::migrate(db).await?,
        "posts" => portico_posts::migrate(db).await?,
        "comments" => portico_comments::migrate(db).await?,
        "likes" => portico_likes::migrate(db).await?,
        "notifications" => portico_notifications::migrate(db).await?,
        other => return Err(unknown(other)),
    }
    Ok(())
}

/// Build one subgraph's router (migrating its database first).
pub async fn subgraph_router(
    name: &str,
    database_url: &str,
    trust: TrustVerifier,
    bus: Arc<dyn Bus>,
    redis_url: Option<String>,
    auth_settings: Option<portico_auth::AuthSettings>,
) -> Result<axum::Router> {
    let db = connect(name, database_url).await?;
    migrate_db(name, &db).await?;
    macro_rules! ctx {
        ($n:expr) => {
            ServiceContext {
                name: $n,
                db,
                trust,
                bus,
                redis_url,
            }
        };
    }
    let router = match name {
        "auth" => {
            let settings = auth_settings.context("auth needs its RSA private key")?;
            portico_auth::app(ctx!(portico_auth::NAME), settings).await?
        }
        "users" => portico_users::app(ctx!(portico_users::NAME)).await?,
        "posts" => portico_posts::app(ctx!(portico_posts::NAME)).await?,
        "comments" => portico_comments::app(ctx!(portico_comments::NAME)).await?,
        "likes" => portico_likes::app(ctx!(portico_likes::NAME)).await?,
        "notifications" => portico_notifications::app(ctx!(portico_notifications::NAME)).await?,
        other => return Err(unknown(other)),
    };
    Ok(router)
}

/// Apply one service's migrations.
pub async fn migrate(name: &str, database_url: &str) -> Result<()> {
    migrate_db(name, &connect(name, database_url).await?).await
}

/// The SDL a demo subgraph serves at `_service { sdl }`.
pub fn subgraph_sdl(name: &str) -> Option<String> {
    Some(match name {
        "auth" => portico_auth::sdl(),
        "users" => portico_users::sdl(),
        "posts" => portico_posts::sdl(),
        "comments" => portico_comments::sdl(),
        "likes" => portico_likes::sdl(),
        "notifications" => portico_notifications::sdl(),
        _ => return None,
    })
}

/// Auth's settings for a private key (PKCS#8 PEM): the demo's issuer, audience and TTLs.
pub fn auth_settings(private_key_pem: &str) -> portico_auth::AuthSettings {
    portico_auth::AuthSettings {
        issuer: ISSUER.to_string(),
        audience: AUDIENCE.to_string(),
        ..portico_auth::AuthSettings::with_key(private_key_pem.to_string())
    }
}

/// The deployment's gateway config (`deploy/gateway.toml`), the one source of the demo's
/// gateway policy: list sizes of its connections (async-graphql, federation v2.5, cannot
/// declare `@listSize`, so the gateway prices them by coordinate) and the fields that need
/// a signed-in user (anonymous callers get `null` + `UNAUTHORIZED_FIELD_OR_TYPE`; the
/// subgraphs check again themselves).
pub const DEPLOY_GATEWAY_CONFIG: &str = include_str!("../deploy/gateway.toml");

/// Apply the demo's cost settings, authorization rules and header rules (the refresh
/// cookie) (from [`DEPLOY_GATEWAY_CONFIG`])
/// to a gateway config; `extensions.cost` is shown so playground users see prices.
pub fn apply_demo_policy(config: &mut GatewayConfig) -> Result<()> {
    let deploy = GatewayConfig::from_toml(DEPLOY_GATEWAY_CONFIG).context("deploy/gateway.toml")?;
    config.cost.model = deploy.cost.model;
    config.cost.expose_in_extensions = true;
    config.authorization = deploy.authorization;
    config.headers = deploy.headers;
    config.playground_sign_in = deploy.playground_sign_in;
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if addr.port() != 0 => {
            tracing::warn!(%addr, error = %e, "port busy, using any free port");
            TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?
        }
        Err(e) => return Err(e).with_context(|| format!("binding {addr}")),
    };
    let local = listener.local_addr()?;
    Ok((listener, local))
}

fn spawn_server(listener: TcpListener, router: axum::Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Connect info gives the gateway the client address (anonymous rate-limit key).
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "server stopped");
        }
    })
}

/// Start the six subgraphs and the gateway.
pub async fn start(options: PlatformOptions) -> Result<Platform> {
    let keys = match &options.storage {
        Storage::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
            Keys::load_or_generate(&dir.join("keys"))?
        }
        Storage::Memory => Keys::generate()?,
    };
    let verifier = keys.gateway_signer.verifier();
    let bus: Arc<dyn Bus> = match &options.redis_url {
        Some(url) => Arc::new(
            portico_kit::events::RedisStreamsBus::connect(url, "portico:events")
                .await
                .context("connecting the Redis event bus")?,
        ),
        None => Arc::new(InProcessBus::new()),
    };

    let mut tasks = Vec::new();
    let mut subgraphs = Vec::new();
    let mut auth_base = String::new();
    for (i, name) in SUBGRAPHS.iter().enumerate() {
        let settings = (*name == "auth").then(|| auth_settings(&keys.auth_private_pem));
        let router = subgraph_router(
            name,
            &database_url(&options.storage, name),
            verifier.clone(),
            bus.clone(),
            options.redis_url.clone(),
            settings,
        )
        .await?;
        let port = options
            .subgraph_base_port
            .map(|p| p.saturating_add(i as u16))
            .unwrap_or(0);
        let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        tasks.push(spawn_server(listener, router));
        if *name == "auth" {
            auth_base = format!("http://{addr}/");
        }
        subgraphs.push((*name, format!("http://{addr}/graphql")));
    }

    let mut config = GatewayConfig {
        dev: true,
        ..GatewayConfig::default()
    };
    for (name, url) in &subgraphs {
        config.subgraphs.insert(
            name.to_string(),
            SubgraphConfig {
                url: Some(url.clone()),
                ..Default::default()
            },
        );
    }
    apply_demo_policy(&mut config)?;
    if !options.limits {
        config.rate_limit.enabled = false;
        config.cost.max_cost = f64::MAX;
    }
    // Access tokens are verified against auth's JWKS, as in production.
    config.jwt.jwks_url = Some(format!("{}.well-known/jwks.json", auth_base));
    config.jwt.issuer = Some(ISSUER.to_string());
    config.jwt.audience = Some(AUDIENCE.to_string());
    let gateway = Arc::new(
        Gateway::new(config, DEMO_SUPERGRAPH, keys.gateway_signer.clone())
            .context("starting the gateway")?,
    );
    let (listener, gateway_addr) = bind(options.gateway_addr).await?;
    tasks.push(spawn_server(listener, gateway.router()));
    let gateway_url = format!("http://{gateway_addr}/graphql");

    let platform = Platform {
        gateway_url,
        subgraphs,
        gateway,
        trust_signer: keys.gateway_signer.clone(),
        tasks,
    };
    if options.seed {
        let marker = match &options.storage {
            Storage::Dir(dir) => Some(dir.join(".seeded")),
            Storage::Memory => None,
        };
        if marker.as_ref().is_none_or(|m| !m.exists()) {
            crate::seed::seed(&platform.gateway_url)
                .await
                .context("seeding demo data")?;
            if let Some(m) = marker {
                std::fs::write(m, "demo data seeded\n")?;
            }
        }
    }
    Ok(platform)
}
