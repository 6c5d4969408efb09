//! The `auth` subgraph: accounts and credentials (argon2id), RS256 access tokens, rotating
//! refresh tokens, and the JWKS the gateway verifies access tokens with.
//!
//! - [`schema`]: `register`, `login`, `refresh`, `logout` (GraphQL, behind the trust token).
//! - [`keys`]: the RSA signing key, access-token minting and the JWKS document.
//! - [`store`]: sea-orm entities and the refresh-token rotation rules.
//! - [`validate`]: username / email / password rules (`BAD_USER_INPUT`).
//!
//! `register` writes the account and a `USER_REGISTERED` event in one transaction; the users
//! service creates the profile from that event. Auth never calls another service.

use std::time::Duration;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};
use axum::Router;
use axum::routing::get;
use portico_kit::{KitError, ServiceContext};
use portico_migrations::MigratorTrait;
use sea_orm::DatabaseConnection;

pub mod keys;
pub mod schema;
pub mod sessions;
pub mod store;
pub mod validate;

pub use keys::{KeyError, generate_rsa_private_key_pem};

/// Service name and trust-token audience.
pub const NAME: &str = "auth";

/// Auth's configuration.
#[derive(Clone)]
pub struct AuthSettings {
    /// RSA private key (PKCS#8 or PKCS#1 PEM) signing access tokens.
    pub private_key_pem: String,
    /// Older public keys (SPKI PEM) still listed in the JWKS so tokens they signed verify
    /// until they expire (key rotation).
    pub extra_public_key_pems: Vec<String>,
    /// `iss` of access tokens.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access-token lifetime (15 minutes by default).
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Keep refresh-token sessions in this Redis (shared by auth replicas) instead of
    /// the auth database.
    pub sessions_redis_url: Option<String>,
    /// Key prefix of the sessions in Redis.
    pub sessions_redis_prefix: String,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("sessions_in_redis", &self.sessions_redis_url.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthSettings {
    /// Settings with the defaults (issuer `portico-auth`, audience `portico`, 15 min access
    /// tokens, 30 day refresh tokens) for `private_key_pem`.
    pub fn with_key(private_key_pem: String) -> Self {
        Self {
            private_key_pem,
            extra_public_key_pems: Vec::new(),
            issuer: "portico-auth".into(),
            audience: "portico".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            sessions_redis_url: None,
            sessions_redis_prefix: "portico:auth".into(),
        }
    }
}

/// The GraphQL schema type of auth.
pub type AuthSchema = Schema<schema::Query, schema::Mutation, EmptySubscription>;

fn schema_builder() -> SchemaBuilder<schema::Query, schema::Mutation, EmptySubscription> {
    Schema::build(schema::Query, schema::Mutation, EmptySubscription).enable_federation()
}

/// The Federation v2 SDL served at `_service { sdl }`.
pub fn sdl() -> String {
    schema_builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// Apply auth's migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    portico_migrations::auth::Migrator::up(db, None).await
}

/// The auth service: `/graphql` (trust token required), `/health`, and
/// `/.well-known/jwks.json` (open). Spawns the outbox relay.
pub async fn app(ctx: ServiceContext, settings: AuthSettings) -> Result<Router, KitError> {
    let keys = keys::KeySet::from_settings(&settings)
        .map_err(|e| KitError::Config(format!("auth keys: {e}")))?;
    let jwks = keys.jwks().clone();
    portico_kit::events::spawn_relay(ctx.db.clone(), ctx.bus.clone());
    let sessions: std::sync::Arc<dyn sessions::Sessions> = match &settings.sessions_redis_url {
        Some(url) => std::sync::Arc::new(sessions::RedisFirst {
            redis: sessions::Redis::connect(
                url,
                &settings.sessions_redis_prefix,
                settings.refresh_ttl,
            )
            .await?,
            sql: sessions::Sql(ctx.db.clone()),
        }),
        None => std::sync::Arc::new(sessions::Sql(ctx.db.clone())),
    };
    let schema = schema_builder()
        .data(schema::AuthState {
            db: ctx.db.clone(),
            keys,
            settings,
            sessions,
        })
        .finish();
    let router = portico_kit::server::graphql_router(schema, ctx.name, ctx.trust.clone()).route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move {
                (
                    [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
                    axum::Json(jwks),
                )
            }
        }),
    );
    Ok(router)
}
