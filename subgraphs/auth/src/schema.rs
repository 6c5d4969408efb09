//! Auth's GraphQL API: `register`, `login`, `refresh`, `logout`, each returning an
//! [`AuthPayload`] (except `logout`). Credential failures are `UNAUTHENTICATED` with a
//! message that does not reveal whether the account exists; bad input is `BAD_USER_INPUT`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::Duration as ChronoDuration;
use portico_kit::errors::{ErrorCode, OrInternal, bad_input, gql_error, internal};
use portico_kit::events::{USER_REGISTERED, enqueue};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};

use crate::keys::{AccessClaims, KeySet};
use crate::store::{self, account};
use crate::{AuthSettings, validate};

/// Default scopes of an access token.
pub const DEFAULT_SCOPE: &str = "read write";

/// Shared state of the resolvers.
pub struct AuthState {
    pub db: DatabaseConnection,
    pub keys: KeySet,
    pub settings: AuthSettings,
    /// Refresh-token sessions (the database, or Redis shared by the replicas).
    pub sessions: std::sync::Arc<dyn crate::sessions::Sessions>,
}

/// Tokens returned by `register`, `login` and `refresh`.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuthPayload {
    /// RS256 JWT to send as `Authorization: Bearer …` to the gateway.
    pub access_token: String,
    /// Opaque token to exchange for new tokens with `refresh` (single use).
    pub refresh_token: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i32,
    pub user_id: ID,
}

pub struct Query;

#[Object]
impl Query {
    /// Version of the auth service.
    async fn auth_service_version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

pub struct Mutation;

/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "portico_refresh";

/// The refresh token given as an argument, else the one in the request's cookie.
fn presented_refresh(ctx: &Context<'_>, argument: Option<String>) -> Option<String> {
    argument.or_else(|| {
        ctx.data_opt::<portico_kit::server::RequestCookies>()
            .and_then(|c| c.get(REFRESH_COOKIE))
            .map(str::to_string)
    })
}

fn invalid_credentials() -> async_graphql::Error {
    gql_error(
        ErrorCode::Unauthenticated,
        "invalid username/email or password",
    )
}

fn invalid_refresh() -> async_graphql::Error {
    gql_error(
        ErrorCode::Unauthenticated,
        "refresh token is invalid, expired or revoked",
    )
}

async fn hash_password(password: String) -> async_graphql::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .or_internal()?
    .map_err(internal)
}

/// Verify in a blocking task. A hash that does not parse counts as a mismatch.
async fn verify_password(password: String, hash: String) -> async_graphql::Result<bool> {
    tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .or_internal()
}

/// A valid argon2id hash of a random password, verified against when the account does not
/// exist so that both paths cost the same.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(store::new_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl AuthState {
    fn access_token(&self, user_id: &str) -> async_graphql::Result<String> {
        let iat = chrono::Utc::now().timestamp();
        let ttl = self.settings.access_ttl.as_secs() as i64;
        self.keys
            .sign(&AccessClaims {
                iss: self.settings.issuer.clone(),
                aud: self.settings.audience.clone(),
                sub: user_id.to_string(),
                scope: DEFAULT_SCOPE.to_string(),
                iat,
                exp: iat + ttl,
            })
            .map_err(internal)
    }

    fn refresh_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        let ttl =
            ChronoDuration::from_std(self.settings.refresh_ttl).unwrap_or(ChronoDuration::days(30));
        portico_kit::now() + ttl
    }

    /// Also hands the refresh token to browsers as an `HttpOnly; Secure; SameSite=Strict`
    /// cookie (through the gateway's `respond` rule), so script never has to hold it.
    fn set_refresh_cookie(&self, ctx: &Context<'_>, refresh: &str) {
        let max_age = self.settings.refresh_ttl.as_secs();
        ctx.append_http_header(
            "set-cookie",
            format!(
                "{REFRESH_COOKIE}={refresh}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Strict"
            ),
        );
    }

    fn payload(&self, user_id: &str, refresh: String) -> async_graphql::Result<AuthPayload> {
        Ok(AuthPayload {
            access_token: self.access_token(user_id)?,
            refresh_token: refresh,
            expires_in: i32::try_from(self.settings.access_ttl.as_secs()).unwrap_or(i32::MAX),
            user_id: ID(user_id.to_string()),
        })
    }
}

fn unique_violation(e: &DbErr) -> Option<String> {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(msg)) => Some(msg),
        _ => None,
    }
}

#[Object]
impl Mutation {
    /// Create an account and log in. The user profile is created by the users service
    /// from the `USER_REGISTERED` event.
    async fn register(
        &self,
        ctx: &Context<'_>,
        username: String,
        email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.data::<AuthState>()?;
        let username = validate::username(&username)?;
        let email = validate::email(&email)?;
        validate::password(&password)?;
        let taken = account::Entity::find()
            .filter(
                account::Column::Username
                    .eq(&username)
                    .or(account::Column::Email.eq(&email)),
            )
            .one(&state.db)
            .await
            .or_internal()?;
        if let Some(existing) = taken {
            return Err(if existing.username == username {
                bad_input("username is already taken")
            } else {
                bad_input("email is already registered")
            });
        }
        let hash = hash_password(password).await?;
        let id = portico_kit::new_id();
        let family = portico_kit::new_id();
        let expires = state.refresh_expiry();
        let txn = state.db.begin().await.or_internal()?;
        let result: Result<(), DbErr> = async {
            account::Entity::insert(account::ActiveModel {
                id: Set(id.clone()),
                username: Set(username.clone()),
                email: Set(email),
                password_hash: Set(hash),
                created_at: Set(portico_kit::now()),
            })
            .exec_without_returning(&txn)
            .await?;
            enqueue(
                &txn,
                USER_REGISTERED,
                serde_json::json!({ "userId": id, "username": username }),
            )
            .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(e) if unique_violation(&e).is_some() => {
                return Err(bad_input("username or email is already registered"));
            }
            Err(e) => return Err(internal(e)),
        }
        txn.commit().await.or_internal()?;
        // The session, once the account exists (if this fails, logging in works).
        let refresh = state
            .sessions
            .issue(&id, &family, expires)
            .await
            .or_internal()?;
        state.set_refresh_cookie(ctx, &refresh);
        state.payload(&id, refresh)
    }

    /// Log in with a username or an email address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        username_or_email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.data::<AuthState>()?;
        let key = username_or_email.trim().to_lowercase();
        if key.is_empty() || key.len() > 254 || password.len() > 1024 {
            return Err(invalid_credentials());
        }
        let column = if key.contains('@') {
            account::Column::Email
        } else {
            account::Column::Username
        };
        let found = account::Entity::find()
            .filter(column.eq(&key))
            .one(&state.db)
            .await
            .or_internal()?;
        let hash = found
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let ok = verify_password(password, hash).await?;
        let Some(account) = found.filter(|_| ok) else {
            return Err(invalid_credentials());
        };
        let refresh = state
            .sessions
            .issue(&account.id, &portico_kit::new_id(), state.refresh_expiry())
            .await
            .or_internal()?;
        state.set_refresh_cookie(ctx, &refresh);
        state.payload(&account.id, refresh)
    }

    /// Exchange a refresh token for new tokens: the argument, or else the
    /// `portico_refresh` cookie (browsers). The presented token is rotated (single use);
    /// presenting a rotated token again revokes its whole family.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.data::<AuthState>()?;
        let Some(refresh_token) = presented_refresh(ctx, refresh_token) else {
            return Err(invalid_refresh());
        };
        if refresh_token.len() > 256 {
            return Err(invalid_refresh());
        }
        let Some(row) = state.sessions.find(&refresh_token).await.or_internal()? else {
            return Err(invalid_refresh());
        };
        if row.revoked || row.expires_at <= chrono::Utc::now() {
            return Err(invalid_refresh());
        }
        // Marking the token used is the one atomic step: of two concurrent uses (on any
        // replicas) only one wins; the other is a reuse.
        if row.rotated || !state.sessions.mark_rotated(&row).await.or_internal()? {
            state
                .sessions
                .revoke_family(&row.family_id)
                .await
                .or_internal()?;
            tracing::warn!(family = %row.family_id, account = %row.account_id, "refresh token reuse: family revoked");
            return Err(gql_error(
                ErrorCode::Unauthenticated,
                "refresh token was already used; the session has been revoked",
            ));
        }
        let next = state
            .sessions
            .issue(&row.account_id, &row.family_id, state.refresh_expiry())
            .await
            .or_internal()?;
        state.set_refresh_cookie(ctx, &next);
        state.payload(&row.account_id, next)
    }

    /// Revoke the session (token family) of a refresh token (the argument, or else the
    /// `portico_refresh` cookie, which is cleared). `false` when the token is unknown or
    /// already revoked.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> async_graphql::Result<bool> {
        let state = ctx.data::<AuthState>()?;
        ctx.append_http_header(
            "set-cookie",
            format!("{REFRESH_COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"),
        );
        let Some(refresh_token) = presented_refresh(ctx, refresh_token) else {
            return Ok(false);
        };
        if refresh_token.len() > 256 {
            return Ok(false);
        }
        match state.sessions.find(&refresh_token).await.or_internal()? {
            Some(row) => state
                .sessions
                .revoke_family(&row.family_id)
                .await
                .or_internal(),
            None => Ok(false),
        }
    }
}
