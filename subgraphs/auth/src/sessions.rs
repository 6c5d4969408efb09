//! Where refresh-token sessions live: the auth database (the embedded default, [`Sql`])
//! or Redis ([`Redis`], with `--redis-url`, through [`RedisFirst`], which falls back to
//! the database while Redis is unreachable so that logins keep working), behind one
//! [`Sessions`] interface. A session
//! is a family of single-use refresh tokens (see `store`): each use rotates the token,
//! reusing a rotated one revokes the family, logout revokes it. With Redis, every auth
//! replica sees each rotation and revocation at once.
//!
//! Redis keys (`<prefix>` is `portico:auth` in the platform):
//! - `<prefix>:rt:<sha256 of the token>`: a hash `{id, account, family, exp, rotated}`,
//!   expiring with the token; `rotated` is incremented by each use, so exactly one use
//!   sees 1 (`HINCRBY` is atomic across replicas);
//! - `<prefix>:revoked:<family>`: set when the family is revoked, expiring after the
//!   longest refresh-token lifetime (no token of the family outlives it).

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use redis::aio::ConnectionManager;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::store::{self, refresh_token};

/// One refresh token as found.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's id (SQL row id, or the token hash in Redis).
    pub id: String,
    pub account_id: String,
    pub family_id: String,
    pub expires_at: DateTime<Utc>,
    pub rotated: bool,
    pub revoked: bool,
    /// Found in Redis (else in the database).
    pub in_redis: bool,
}

/// A failure of the session store (database or Redis).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("session store (redis): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("session store: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait Sessions: Send + Sync {
    /// Stores a new token of `family_id` for `account_id`; returns it (plaintext).
    async fn issue(
        &self,
        account_id: &str,
        family_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SessionError>;
    /// The session of a presented token, if it is known.
    async fn find(&self, token: &str) -> Result<Option<Session>, SessionError>;
    /// Marks `session`'s token used; `false` when it was used (or revoked) already.
    async fn mark_rotated(&self, session: &Session) -> Result<bool, SessionError>;
    /// Revokes every token of `family_id`; `true` when it was live.
    async fn revoke_family(&self, family_id: &str) -> Result<bool, SessionError>;
}

/// Sessions in the auth database (`refresh_tokens`).
pub struct Sql(pub DatabaseConnection);

#[async_trait]
impl Sessions for Sql {
    async fn issue(
        &self,
        account_id: &str,
        family_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SessionError> {
        Ok(store::issue_refresh_token(&self.0, account_id, family_id, expires_at).await?)
    }

    async fn find(&self, token: &str) -> Result<Option<Session>, SessionError> {
        let row = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(store::hash_token(token)))
            .one(&self.0)
            .await?;
        Ok(row.map(|r| Session {
            id: r.id,
            account_id: r.account_id,
            family_id: r.family_id,
            expires_at: r.expires_at,
            rotated: r.rotated,
            revoked: r.revoked,
            in_redis: false,
        }))
    }

    async fn mark_rotated(&self, session: &Session) -> Result<bool, SessionError> {
        Ok(store::mark_rotated(&self.0, &session.id).await?)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<bool, SessionError> {
        Ok(store::revoke_family(&self.0, family_id).await? > 0)
    }
}

/// Sessions in Redis, shared by every auth replica.
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    /// How long a revocation is remembered: the longest refresh-token lifetime.
    revocation_ttl: std::time::Duration,
}

impl Redis {
    /// Connects to `url` (bounded: fails within seconds when Redis is unreachable).
    pub async fn connect(
        url: &str,
        prefix: &str,
        revocation_ttl: std::time::Duration,
    ) -> Result<Self, portico_kit::KitError> {
        Ok(Self {
            conn: portico_kit::replay::connect_bounded(url).await?,
            prefix: prefix.to_string(),
            revocation_ttl,
        })
    }

    fn token_key(&self, hash: &str) -> String {
        format!("{}:rt:{hash}", self.prefix)
    }

    fn revoked_key(&self, family: &str) -> String {
        format!("{}:revoked:{family}", self.prefix)
    }
}

#[async_trait]
impl Sessions for Redis {
    async fn issue(
        &self,
        account_id: &str,
        family_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SessionError> {
        let token = store::new_token();
        let key = self.token_key(&store::hash_token(&token));
        let mut conn = self.conn.clone();
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("account")
            .arg(account_id)
            .arg("family")
            .arg(family_id)
            .arg("exp")
            .arg(expires_at.timestamp())
            .arg("rotated")
            .arg(0)
            .ignore()
            .cmd("EXPIREAT")
            .arg(&key)
            .arg(expires_at.timestamp())
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(token)
    }

    async fn find(&self, token: &str) -> Result<Option<Session>, SessionError> {
        let hash = store::hash_token(token);
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.token_key(&hash))
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| SessionError::Corrupt(format!("session without `{name}`")))
        };
        let family_id = field("family")?;
        let exp: i64 = field("exp")?
            .parse()
            .map_err(|_| SessionError::Corrupt("bad `exp`".into()))?;
        let rotated: i64 = field("rotated")?.parse().unwrap_or(1);
        let revoked: bool = redis::cmd("EXISTS")
            .arg(self.revoked_key(&family_id))
            .query_async(&mut conn)
            .await?;
        Ok(Some(Session {
            id: hash,
            account_id: field("account")?,
            family_id,
            expires_at: Utc
                .timestamp_opt(exp, 0)
                .single()
                .ok_or_else(|| SessionError::Corrupt("bad `exp`".into()))?,
            rotated: rotated > 0,
            revoked,
            in_redis: true,
        }))
    }

    async fn mark_rotated(&self, session: &Session) -> Result<bool, SessionError> {
        let mut conn = self.conn.clone();
        // Only the first use of the token sees 1, whichever replica it reaches.
        let uses: i64 = redis::cmd("HINCRBY")
            .arg(self.token_key(&session.id))
            .arg("rotated")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let revoked: bool = redis::cmd("EXISTS")
            .arg(self.revoked_key(&session.family_id))
            .query_async(&mut conn)
            .await?;
        Ok(uses == 1 && !revoked)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<bool, SessionError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.revoked_key(family_id))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.revocation_ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}

/// Sessions in Redis, and in the database while Redis is unreachable: new sessions go
/// to Redis, or to the database when Redis fails (logged at most every 10 s); a token is
/// looked up in Redis, then in the database, and rotated or revoked where it was found.
/// Both are shared by every auth replica, so rotation and revocation hold everywhere.
pub struct RedisFirst {
    pub redis: Redis,
    pub sql: Sql,
}

fn redis_unavailable(error: &SessionError) {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = Utc::now().timestamp();
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now >= last + 10 {
        LAST.store(now, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(error = %error, "sessions: Redis unavailable, using the database");
    }
}

#[async_trait]
impl Sessions for RedisFirst {
    async fn issue(
        &self,
        account_id: &str,
        family_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SessionError> {
        match self.redis.issue(account_id, family_id, expires_at).await {
            Ok(token) => Ok(token),
            Err(e) => {
                redis_unavailable(&e);
                self.sql.issue(account_id, family_id, expires_at).await
            }
        }
    }

    async fn find(&self, token: &str) -> Result<Option<Session>, SessionError> {
        match self.redis.find(token).await {
            Ok(Some(session)) => Ok(Some(session)),
            Ok(None) => self.sql.find(token).await,
            Err(e) => {
                redis_unavailable(&e);
                // A session issued while Redis was away is in the database; one in Redis
                // cannot be checked now.
                match self.sql.find(token).await? {
                    Some(session) => Ok(Some(session)),
                    None => Err(e),
                }
            }
        }
    }

    async fn mark_rotated(&self, session: &Session) -> Result<bool, SessionError> {
        if session.in_redis {
            self.redis.mark_rotated(session).await
        } else {
            self.sql.mark_rotated(session).await
        }
    }

    async fn revoke_family(&self, family_id: &str) -> Result<bool, SessionError> {
        // A family lives in one of the two (the one its first token went to); revoke in
        // both, and fail only if Redis failed and the database had nothing to revoke.
        let in_sql = self.sql.revoke_family(family_id).await?;
        match self.redis.revoke_family(family_id).await {
            Ok(in_redis) => Ok(in_sql || in_redis),
            Err(_) if in_sql => Ok(true),
            Err(e) => Err(e),
        }
    }
}
