//! Authentication: turns `Authorization: Bearer <JWT>` into a verified [`Identity`].
//!
//! The algorithm is pinned by the key, never taken from the token: a PEM public key is
//! RS256; a JWKS key uses its own `alg` (RSA family only) or RS256. `alg: none`, HMAC
//! with the public key as secret, and any algorithm other than the key's are refused by
//! `jsonwebtoken`'s validation, which only admits the pinned algorithm. `exp` is
//! required, `nbf` honoured, both with a leeway; `iss`/`aud` are checked when configured.
//! JWKS documents are cached, re-fetched when older than `jwks_max_age_secs`, and on an
//! unknown `kid` at most once per `jwks_min_refresh_secs`; when the key server is down
//! the last good copy keeps serving. No request without a token is refused here (it is
//! anonymous); a bad token refuses the request with `UNAUTHENTICATED` and HTTP 401
//! before any subgraph is called. Tokens are never logged.

mod jwks;

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
pub use portico_trust::Identity;
use serde::Deserialize;

use crate::config::JwtConfig;
use crate::error::{ErrorCode, GraphQLError};
use jwks::JwksCache;

/// Why a bearer token was refused. Every variant is `UNAUTHENTICATED` / HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("the access token is too large")]
    TooLarge,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token's algorithm is not accepted for this key")]
    WrongAlgorithm,
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    InvalidSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token's issuer is not accepted")]
    InvalidIssuer,
    #[error("the access token's audience is not accepted")]
    InvalidAudience,
    #[error("access tokens cannot be verified: no key is configured")]
    NotConfigured,
    #[error("the keys that verify access tokens are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// A stable reason code for `extensions.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::NotBearer => "NOT_BEARER",
            AuthError::TooLarge => "TOKEN_TOO_LARGE",
            AuthError::Malformed => "MALFORMED",
            AuthError::WrongAlgorithm => "WRONG_ALGORITHM",
            AuthError::UnknownKey => "UNKNOWN_KEY",
            AuthError::InvalidSignature => "INVALID_SIGNATURE",
            AuthError::Expired => "EXPIRED",
            AuthError::NotYetValid => "NOT_YET_VALID",
            AuthError::InvalidIssuer => "INVALID_ISSUER",
            AuthError::InvalidAudience => "INVALID_AUDIENCE",
            AuthError::NotConfigured => "NOT_CONFIGURED",
            AuthError::KeysUnavailable => "KEYS_UNAVAILABLE",
        }
    }

    pub fn to_graphql_error(&self) -> GraphQLError {
        GraphQLError::new(ErrorCode::Unauthenticated, self.to_string())
            .with_extension("reason", self.reason())
    }
}

/// Why the authenticator could not be built from config (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("jwt.public_key: cannot read {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("jwt.public_key: not an RSA public key in PEM form: {0}")]
    BadKey(String),
}

/// Where verification keys come from.
enum Keys {
    None,
    Pem(Box<DecodingKey>),
    Jwks(Box<JwksCache>),
}

/// Verifies bearer tokens; built once at start-up.
pub struct Authenticator {
    keys: Keys,
    config: JwtConfig,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    List(Vec<String>),
    Text(String),
}

impl Authenticator {
    /// Build from config; reads the PEM file if one is configured.
    pub fn from_config(config: &JwtConfig, http: reqwest::Client) -> Result<Self, AuthSetupError> {
        let keys = if let Some(path) = &config.public_key {
            let pem = std::fs::read(path).map_err(|source| AuthSetupError::ReadKey {
                path: path.display().to_string(),
                source,
            })?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|e| AuthSetupError::BadKey(e.to_string()))?;
            Keys::Pem(Box::new(key))
        } else if let Some(url) = &config.jwks_url {
            Keys::Jwks(Box::new(JwksCache::new(url.clone(), http, config)))
        } else {
            Keys::None
        };
        Ok(Self {
            keys,
            config: config.clone(),
        })
    }

    /// Verify the `Authorization` header value; `None` → anonymous.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let Some(header) = authorization else {
            return Ok(Identity::anonymous());
        };
        let token = bearer_token(header)?;
        if token.len() > self.config.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (key, algorithm): (Arc<DecodingKey>, Algorithm) = match &self.keys {
            Keys::None => return Err(AuthError::NotConfigured),
            Keys::Pem(key) => (Arc::new((**key).clone()), Algorithm::RS256),
            Keys::Jwks(cache) => cache.key_for(header.kid.as_deref()).await?,
        };
        if header.alg != algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => AuthError::InvalidSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
            ErrorKind::InvalidAudience => AuthError::InvalidAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::WrongAlgorithm
            }
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;
        let scopes = match (claims.scope, claims.scp) {
            (Some(s), _) | (None, Some(ScopeClaim::Text(s))) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            (None, Some(ScopeClaim::List(l))) => l,
            (None, None) => Vec::new(),
        };
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed);
        }
        Ok(Identity::user(claims.sub, scopes))
    }
}

fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_required() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(AuthError::NotBearer));
        assert_eq!(bearer_token("Bearer"), Err(AuthError::NotBearer));
    }

    #[tokio::test]
    async fn no_header_is_anonymous_and_tokens_need_keys() {
        let a = Authenticator::from_config(&JwtConfig::default(), reqwest::Client::new())
            .expect("no keys is valid");
        assert_eq!(
            a.authenticate(None).await.expect("anonymous"),
            Identity::anonymous()
        );
        assert_eq!(
            a.authenticate(Some("Bearer a.b.c")).await,
            Err(AuthError::Malformed)
        );
    }
}
