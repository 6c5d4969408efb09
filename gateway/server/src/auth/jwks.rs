//! JWKS cache: keys fetched from a URL, refreshed when stale or on an unknown `kid`
//! (rate-limited), last good copy kept when the endpoint fails.

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

pub(super) struct JwksCache {
    url: String,
    http: reqwest::Client,
    max_age: Duration,
    min_refresh: Duration,
    state: RwLock<State>,
    /// Serialises fetches so a burst of unknown `kid`s makes one request.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub(super) fn new(url: String, http: reqwest::Client, config: &JwtConfig) -> Self {
        Self {
            url,
            http,
            max_age: Duration::from_secs(config.jwks_max_age_secs),
            min_refresh: Duration::from_secs(config.jwks_min_refresh_secs),
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
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
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the last good keys")
            }
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, KeyEntry>, Vec<KeyEntry>), String> {
        let response = self
            .http
            .get(&self.url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        let mut anonymous = Vec::new();
        for jwk in &set.keys {
            // RSA keys only; the algorithm comes from the key, never from a token.
            let AlgorithmParameters::RSA(_) = &jwk.algorithm else {
                continue;
            };
            let alg = match jwk.common.key_algorithm {
                None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                Some(KeyAlgorithm::RS384) => Algorithm::RS384,
                Some(KeyAlgorithm::RS512) => Algorithm::RS512,
                Some(KeyAlgorithm::PS256) => Algorithm::PS256,
                Some(KeyAlgorithm::PS384) => Algorithm::PS384,
                Some(KeyAlgorithm::PS512) => Algorithm::PS512,
                Some(_) => continue,
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
