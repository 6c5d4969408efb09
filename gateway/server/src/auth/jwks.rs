//! JWKS cache: keys fetched from a URL (or read from a file), refreshed in the
//! background every `jwks_max_age_secs`, when stale, and on an unknown `kid`
//! (rate-limited); the last good copy is kept when the endpoint fails.
//!
//! Each key's algorithm is pinned from the JWK: its `alg` when present and consistent
//! with the key type, else the key type's default (RSA → RS256, EC P-256 → ES256,
//! P-384 → ES384, OKP Ed25519 → EdDSA). Symmetric (`oct`) keys are never used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;

use super::AuthError;
use crate::config::JwtConfig;

type KeyEntry = (Arc<DecodingKey>, Algorithm);

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyEntry>,
    /// Keys without a `kid`, usable when the token has none either.
    anonymous: Vec<KeyEntry>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Where the JWKS document comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Url(String),
    File(std::path::PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

pub(super) struct JwksCache {
    source: Source,
    http: reqwest::Client,
    max_age: Duration,
    min_refresh: Duration,
    state: RwLock<State>,
    /// Serialises fetches so a burst of unknown `kid`s makes one request.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub(super) fn new(source: Source, http: reqwest::Client, config: &JwtConfig) -> Self {
        Self {
            source,
            http,
            max_age: Duration::from_secs(config.jwks_max_age_secs),
            min_refresh: Duration::from_secs(config.jwks_min_refresh_secs),
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Start refreshing every `jwks_max_age_secs` in the background (when running in a
    /// tokio runtime), so requests rarely wait for a fetch. The task ends with the cache.
    pub(super) fn spawn_refresher(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let period = self.max_age.max(Duration::from_secs(1));
        runtime.spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                if cache.may_fetch(true) {
                    cache.refresh().await;
                }
                drop(cache);
                tokio::time::sleep(period).await;
            }
        });
    }

    /// Whether a key with this `kid` is still published (no fetch).
    pub(super) fn has_kid(&self, kid: Option<&str>) -> bool {
        self.lookup(kid).is_some()
    }

    fn lookup(&self, kid: Option<&str>) -> Option<KeyEntry> {
        let state = self.state.read();
        match kid {
            Some(kid) => state.keys.get(kid).cloned(),
            None => match (state.anonymous.as_slice(), state.keys.len()) {
                ([only], 0) => Some(only.clone()),
                ([], 1) => state.keys.values().next().cloned(),
                _ => None,
            },
        }
    }

    fn may_fetch(&self, stale_only: bool) -> bool {
        let state = self.state.read();
        let stale = state.fetched_at.is_none_or(|t| t.elapsed() >= self.max_age);
        let allowed = state
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.min_refresh);
        allowed && (!stale_only || stale)
    }

    /// The key that verifies a token with this `kid`, and its pinned algorithm.
    pub(super) async fn key_for(&self, kid: Option<&str>) -> Result<KeyEntry, AuthError> {
        if let Some(found) = self.lookup(kid) {
            if self.may_fetch(true) {
                self.refresh().await;
                return self.lookup(kid).map_or(Ok(found), Ok);
            }
            return Ok(found);
        }
        if self.may_fetch(false) {
            self.refresh().await;
        } else {
            // A fetch may be in flight (the background one at start-up): wait for it.
            drop(self.fetching.lock().await);
        }
        match self.lookup(kid) {
            Some(found) => Ok(found),
            None if self.state.read().fetched_at.is_none() => Err(AuthError::KeysUnavailable),
            None => Err(AuthError::UnknownKey),
        }
    }

    async fn refresh(&self) {
        let _guard = self.fetching.lock().await;
        // Another task may have fetched while we waited.
        if !self.may_fetch(false) {
            return;
        }
        self.state.write().last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, anonymous)) => {
                let mut state = self.state.write();
                state.keys = keys;
                state.anonymous = anonymous;
                state.fetched_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "JWKS fetch failed; keeping the last good keys")
            }
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, KeyEntry>, Vec<KeyEntry>), String> {
        let set: JwkSet = match &self.source {
            Source::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if !response.status().is_success() {
                    return Err(format!("HTTP {}", response.status()));
                }
                response.json().await.map_err(|e| e.to_string())?
            }
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::from_str(&text).map_err(|e| e.to_string())?
            }
        };
        let mut keys = HashMap::new();
        let mut anonymous = Vec::new();
        for jwk in &set.keys {
            // The algorithm comes from the key, never from a token.
            let Some(alg) = pinned_algorithm(jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let entry = (Arc::new(key), alg);
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), entry);
                }
                None => anonymous.push(entry),
            }
        }
        Ok((keys, anonymous))
    }
}

/// The one algorithm a JWK verifies, or `None` when the key is unusable (symmetric,
/// unknown curve, or an `alg` that contradicts the key type).
fn pinned_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{EllipticCurve, PublicKeyUse};
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match declared {
            None | Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
            Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
            Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
            Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
            Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
            Some(_) => None,
        },
        AlgorithmParameters::EllipticCurve(ec) => match (&ec.curve, declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => Some(Algorithm::ES256),
            (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match (&okp.curve, declared) {
            (EllipticCurve::Ed25519, None | Some(KeyAlgorithm::EdDSA)) => Some(Algorithm::EdDSA),
            _ => None,
        },
        // Never a shared secret: that is how HS256 key confusion starts.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_pinned_by_key_type_and_symmetric_keys_are_ignored() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys": [
                {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
                {"kty": "RSA", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
                {"kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"},
                {"kty": "OKP", "crv": "Ed25519", "x": "AQAB"},
                {"kty": "oct", "alg": "HS256", "k": "c2VjcmV0"},
                {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}
            ]}"#,
        )
        .expect("jwks");
        let algs: Vec<_> = set.keys.iter().map(pinned_algorithm).collect();
        assert_eq!(
            algs,
            vec![
                Some(Algorithm::RS256),
                Some(Algorithm::PS256),
                None,
                Some(Algorithm::ES256),
                Some(Algorithm::EdDSA),
                None,
                None,
            ]
        );
    }
}
