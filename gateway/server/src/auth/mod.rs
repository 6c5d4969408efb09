//! Authentication: turns `Authorization: Bearer <JWT>` into a verified [`Identity`].
//!
//! The algorithm is pinned by the key, never taken from the token: a PEM public key is
//! RS256 (RSA), ES256 (EC P-256) or EdDSA (Ed25519); a JWKS key uses its own `alg`
//! (RS256/384/512, PS256/384/512, ES256/384, EdDSA) or its key type's default.
//! `alg: none`, HMAC with the public key as secret, and any algorithm other than the
//! key's are refused. `exp` is required, `nbf` honoured, both with a leeway; `iss`/`aud`
//! are checked when configured; tokens over `max_token_bytes` are refused unparsed.
//! JWKS documents (URL or file) are cached, refreshed in the background and when older
//! than `jwks_max_age_secs`, and on an unknown `kid` at most once per
//! `jwks_min_refresh_secs`; when the key server is down the last good copy keeps
//! serving. Verified tokens are remembered by SHA-256 until they expire (a hit still
//! requires their key to be published). No request without a token is refused here (it
//! is anonymous); a bad token refuses the request with `UNAUTHENTICATED` and HTTP 401
//! before any subgraph is called. Tokens are never logged.

pub mod crypto;
mod jwks;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

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
    #[error("jwt.public_key: not an RSA, EC P-256 or Ed25519 public key in PEM form: {0}")]
    BadKey(String),
}

/// Where verification keys come from.
enum Keys {
    None,
    Pem(Box<DecodingKey>, Algorithm),
    Jwks(Arc<JwksCache>),
}

/// A verified token remembered until `exp`.
struct Verified {
    identity: Identity,
    exp: u64,
    kid: Option<String>,
}

/// Verifies bearer tokens; built once at start-up.
pub struct Authenticator {
    keys: Keys,
    config: JwtConfig,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
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
        crypto::install();
        let keys = if let Some(path) = &config.public_key {
            let pem = std::fs::read(path).map_err(|source| AuthSetupError::ReadKey {
                path: path.display().to_string(),
                source,
            })?;
            let (key, alg) = DecodingKey::from_rsa_pem(&pem)
                .map(|k| (k, Algorithm::RS256))
                .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| (k, Algorithm::ES256)))
                .or_else(|_| DecodingKey::from_ed_pem(&pem).map(|k| (k, Algorithm::EdDSA)))
                .map_err(|e| AuthSetupError::BadKey(e.to_string()))?;
            Keys::Pem(Box::new(key), alg)
        } else if let Some(source) = config
            .jwks_url
            .clone()
            .map(jwks::Source::Url)
            .or_else(|| config.jwks_file.clone().map(jwks::Source::File))
        {
            let cache = Arc::new(JwksCache::new(source, http, config));
            cache.spawn_refresher();
            Keys::Jwks(cache)
        } else {
            Keys::None
        };
        Ok(Self {
            keys,
            config: config.clone(),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// A remembered verification of this token, if its key is still published.
    fn remembered(&self, hash: &[u8; 32]) -> Option<(Identity, u64)> {
        let verified = self.verified.lock();
        let hit = verified.get(hash)?;
        if hit.exp <= jsonwebtoken::get_current_timestamp() {
            return None;
        }
        if let Keys::Jwks(cache) = &self.keys
            && !cache.has_kid(hit.kid.as_deref())
        {
            return None;
        }
        Some((hit.identity.clone(), hit.exp))
    }

    fn remember(&self, hash: [u8; 32], entry: Verified) {
        let max = self.config.verified_cache_size;
        if max == 0 {
            return;
        }
        let mut verified = self.verified.lock();
        if verified.len() >= max {
            let now = jsonwebtoken::get_current_timestamp();
            verified.retain(|_, v| v.exp > now);
            if verified.len() >= max {
                verified.clear();
            }
        }
        verified.insert(hash, entry);
    }

    /// Verify the `Authorization` header value; `None` → anonymous.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        self.authenticate_with_expiry(authorization)
            .await
            .map(|(identity, _)| identity)
    }

    /// [`authenticate`](Self::authenticate), with the token's `exp` (unix seconds; `None`
    /// for anonymous callers): a subscription ends when its token expires.
    pub async fn authenticate_with_expiry(
        &self,
        authorization: Option<&str>,
    ) -> Result<(Identity, Option<u64>), AuthError> {
        let Some(header) = authorization else {
            return Ok((Identity::anonymous(), None));
        };
        let token = bearer_token(header)?;
        if token.len() > self.config.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((identity, exp)) = self.remembered(&hash) {
            return Ok((identity, Some(exp)));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (key, algorithm): (Arc<DecodingKey>, Algorithm) = match &self.keys {
            Keys::None => return Err(AuthError::NotConfigured),
            Keys::Pem(key, alg) => (Arc::new((**key).clone()), *alg),
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
        // The identity travels to subgraphs as headers (`portico-user-id`, and the scopes
        // space-separated in `portico-user-scopes`): a subject must be a short printable
        // value and a scope one printable word, or the subgraph would read another
        // identity (two scopes for `["read admin"]`) or refuse the request.
        let printable =
            |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
        if !printable(&claims.sub)
            || scopes
                .iter()
                .any(|s| !printable(s) || s.chars().any(char::is_whitespace))
        {
            return Err(AuthError::Malformed);
        }
        let identity = Identity::user(claims.sub, scopes);
        self.remember(
            hash,
            Verified {
                identity: identity.clone(),
                exp: claims.exp,
                kid: header.kid,
            },
        );
        Ok((identity, Some(claims.exp)))
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
