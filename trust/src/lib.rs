//! The trust contract between the gateway and the subgraphs.
//!
//! The gateway forwards the caller's identity as plain headers (`portico-user-id`,
//! `portico-user-scopes`) and, next to them, a *trust token* in `portico-trust` that it
//! signs with its Ed25519 private key. The token names the target subgraph (audience),
//! expires within a minute, binds the identity headers **and the request body** (its
//! SHA-256), and carries a unique id: a subgraph that verifies it with the gateway's
//! **public** key knows the request came through the gateway and that neither the
//! identity headers nor the operation were altered. A captured token is worth nothing
//! with another body, and a subgraph with a [`ReplayGuard`] refuses it a second time. A
//! subgraph holds no secret that could mint one. The gateway mints one token per
//! subgraph request.
//!
//! Wire format: `v2.<base64url(claims JSON)>.<base64url(Ed25519 signature over "v2." + claims part)>`.
//! The verifier accepts several public keys at once so the gateway key can be rotated
//! without downtime (publish the new public key to subgraphs, then switch the gateway).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Header carrying the trust token.
pub const HEADER_TRUST: &str = "portico-trust";
/// Header carrying the verified user id (absent for anonymous callers).
pub const HEADER_USER_ID: &str = "portico-user-id";
/// Header carrying the verified scopes, space separated.
pub const HEADER_USER_SCOPES: &str = "portico-user-scopes";
/// Header carrying the gateway's request id (for log correlation; not bound).
pub const HEADER_REQUEST_ID: &str = "portico-request-id";
/// Longest lifetime a verifier accepts, whatever the token says.
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// Clock skew tolerated between gateway and subgraph.
pub const LEEWAY_SECS: u64 = 5;

const VERSION: &str = "v2";

/// Why a trust token was refused. Every variant maps to HTTP 401 at the subgraph.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("missing trust token")]
    Missing,
    #[error("malformed trust token")]
    Malformed,
    #[error("trust token signed by an unknown key")]
    UnknownKey,
    #[error("trust token signature is invalid")]
    BadSignature,
    #[error("trust token expired")]
    Expired,
    #[error("trust token issued in the future")]
    NotYetValid,
    #[error("trust token lifetime exceeds the allowed maximum")]
    TooLongLived,
    #[error("trust token was minted for another subgraph")]
    WrongAudience,
    #[error("identity headers do not match the trust token")]
    IdentityMismatch,
    #[error("request body does not match the trust token")]
    BodyMismatch,
    #[error("trust token was already used")]
    Replayed,
    #[error("too many live trust tokens to remember; retry shortly")]
    ReplayCacheFull,
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// The identity the gateway vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Authenticated user id; `None` for anonymous callers.
    pub user_id: Option<String>,
    /// Scopes granted by the access token.
    pub scopes: Vec<String>,
}

impl Identity {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn user(id: impl Into<String>, scopes: Vec<String>) -> Self {
        Self {
            user_id: Some(id.into()),
            scopes,
        }
    }

    /// The value of the `portico-user-scopes` header.
    pub fn scopes_header(&self) -> String {
        self.scopes.join(" ")
    }

    /// Hash binding the identity headers into the token.
    fn binding(user_id: Option<&str>, scopes: &str) -> String {
        let mut h = Sha256::new();
        h.update(user_id.unwrap_or("").as_bytes());
        h.update([0u8]);
        h.update(scopes.as_bytes());
        B64.encode(h.finalize())
    }
}

/// Claims inside a trust token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Target subgraph name.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
    /// Key id of the signing key.
    pub kid: String,
    /// Hash of the identity headers (`sha256(user_id \0 scopes)`).
    pub idh: String,
    /// User id, repeated for convenience (must match the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Hash of the request body (`base64url(sha256(body))`).
    pub bh: String,
    /// Unique token id (128 random bits, base64url), for replay detection.
    pub jti: String,
}

/// `base64url(sha256(body))`, the body binding of a token.
pub fn body_hash(body: &[u8]) -> String {
    B64.encode(Sha256::digest(body))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Key id of a public key: first 8 bytes of its SHA-256, hex.
fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The gateway's side: holds the private key and mints tokens.
#[derive(Clone)]
pub struct TrustSigner {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for TrustSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TrustSigner {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_key(key)
    }

    fn from_key(key: SigningKey) -> Self {
        let kid = key_id(&key.verifying_key());
        Self { key, kid }
    }

    /// Load a PKCS#8 PEM private key (as written by `portico keys`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TrustError> {
        let key =
            SigningKey::from_pkcs8_pem(pem).map_err(|e| TrustError::InvalidKey(e.to_string()))?;
        Ok(Self::from_key(key))
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, TrustError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|s| s.to_string())
            .map_err(|e| TrustError::InvalidKey(e.to_string()))
    }

    /// The public key as SPKI PEM, for subgraphs.
    pub fn public_key_pem(&self) -> Result<String, TrustError> {
        self.key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| TrustError::InvalidKey(e.to_string()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A verifier that accepts this signer's tokens.
    pub fn verifier(&self) -> TrustVerifier {
        TrustVerifier {
            keys: vec![(self.kid.clone(), self.key.verifying_key())],
            replay: None,
            shared: None,
        }
    }

    /// Mint a token for one request to `audience` with body `body`, binding `identity`,
    /// valid for `ttl` (capped at [`MAX_TTL`]).
    pub fn mint(&self, audience: &str, identity: &Identity, body: &[u8], ttl: Duration) -> String {
        let iat = now_secs();
        let ttl = ttl.min(MAX_TTL).as_secs();
        let jti: [u8; 16] = rand::random();
        // An empty user id is no user id, as the verifier reads the header (found by the
        // `trust` fuzz target: such a token was refused by the subgraph it was for).
        let user_id = identity.user_id.as_deref().filter(|u| !u.is_empty());
        self.sign(&Claims {
            aud: audience.to_string(),
            iat,
            exp: iat + ttl,
            kid: self.kid.clone(),
            idh: Identity::binding(user_id, &identity.scopes_header()),
            sub: user_id.map(str::to_string),
            bh: body_hash(body),
            jti: B64.encode(jti),
        })
    }

    /// Sign arbitrary claims (tests use this to craft expired or foreign tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{VERSION}.{}", B64.encode(body));
        let sig = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(sig.to_bytes()))
    }
}

/// The subgraph's side: public keys only.
#[derive(Clone, Debug)]
pub struct TrustVerifier {
    keys: Vec<(String, VerifyingKey)>,
    replay: Option<std::sync::Arc<ReplayGuard>>,
    shared: Option<std::sync::Arc<dyn SharedReplayStore>>,
}

/// A token that verified: the identity it carries, and its id and expiry for a replay
/// check shared by several processes ([`SharedReplayStore`]).
#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Identity,
    pub jti: String,
    /// Unix seconds after which no verifier accepts the token (expiry plus leeway).
    pub dead_after: u64,
}

/// The future a [`SharedReplayStore`] returns.
pub type ClaimFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>>;

/// Accepted token ids shared by every replica of a subgraph (the kit implements it over
/// Redis), so a token replayed to another replica within its lifetime is refused too;
/// the per-process [`ReplayGuard`] cannot see that. Checked after the token verified.
pub trait SharedReplayStore: Send + Sync + std::fmt::Debug {
    /// Records `jti` for `audience` until `dead_after` (unix seconds): `Ok(true)` when it
    /// was new, `Ok(false)` when it was recorded before (a replay), `Err` when the store
    /// cannot answer.
    fn claim<'a>(&'a self, audience: &'a str, jti: &'a str, dead_after: u64) -> ClaimFuture<'a>;
}

/// Remembers the ids of the tokens a subgraph process accepted until they expire, and
/// refuses a token seen before ([`TrustError::Replayed`]). Bounded: at most `capacity`
/// live ids (expired ones are dropped first); beyond it new tokens are refused
/// ([`TrustError::ReplayCacheFull`]) rather than remembered partially. Per process: with
/// several replicas of one subgraph, a token replayed to another replica within its
/// lifetime is not detected (the body binding still holds).
#[derive(Debug)]
pub struct ReplayGuard {
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    capacity: usize,
}

impl ReplayGuard {
    /// Default capacity: a million live tokens (about 16,000 requests per second to one
    /// subgraph process with one-minute tokens).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    pub fn new(capacity: usize) -> Self {
        Self {
            seen: std::sync::Mutex::new(std::collections::HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn check(&self, jti: &str, exp: u64, now: u64) -> Result<(), TrustError> {
        // A poisoned lock only means another request panicked while holding it; the map
        // itself is still consistent.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= self.capacity {
            seen.retain(|_, e| *e + LEEWAY_SECS >= now);
        }
        if seen.contains_key(jti) {
            return Err(TrustError::Replayed);
        }
        if seen.len() >= self.capacity {
            return Err(TrustError::ReplayCacheFull);
        }
        seen.insert(jti.to_string(), exp);
        Ok(())
    }
}

impl TrustVerifier {
    /// Build from one or more SPKI PEM public keys (several during rotation).
    pub fn from_public_pems<S: AsRef<str>>(pems: &[S]) -> Result<Self, TrustError> {
        let mut keys = Vec::new();
        for pem in pems {
            let key = VerifyingKey::from_public_key_pem(pem.as_ref())
                .map_err(|e| TrustError::InvalidKey(e.to_string()))?;
            keys.push((key_id(&key), key));
        }
        if keys.is_empty() {
            return Err(TrustError::InvalidKey("no public key given".into()));
        }
        Ok(Self {
            keys,
            replay: None,
            shared: None,
        })
    }

    /// Also check accepted ids against a store shared by every replica (see
    /// [`SharedReplayStore`]; the caller awaits it with [`Verified`]'s id).
    pub fn with_shared_replay(mut self, store: std::sync::Arc<dyn SharedReplayStore>) -> Self {
        self.shared = Some(store);
        self
    }

    /// The shared replay store, if any.
    pub fn shared_replay(&self) -> Option<&std::sync::Arc<dyn SharedReplayStore>> {
        self.shared.as_ref()
    }

    /// Refuse tokens seen before (see [`ReplayGuard`]).
    pub fn with_replay_guard(mut self, capacity: usize) -> Self {
        self.replay = Some(std::sync::Arc::new(ReplayGuard::new(capacity)));
        self
    }

    /// Accept tokens of another verifier's keys too (rotation).
    pub fn with(mut self, other: &TrustVerifier) -> Self {
        for k in &other.keys {
            if !self.keys.iter().any(|(kid, _)| kid == &k.0) {
                self.keys.push(k.clone());
            }
        }
        self
    }

    /// Verify `token` for `audience` against the identity headers and the body actually
    /// received (and, with a replay guard, that it was not used before).
    pub fn verify(
        &self,
        token: Option<&str>,
        audience: &str,
        user_id_header: Option<&str>,
        scopes_header: Option<&str>,
        body: &[u8],
    ) -> Result<Identity, TrustError> {
        self.verify_token(token, audience, user_id_header, scopes_header, body)
            .map(|v| v.identity)
    }

    /// As [`verify`](Self::verify), also giving the token's id and expiry (for a
    /// [`SharedReplayStore`]).
    pub fn verify_token(
        &self,
        token: Option<&str>,
        audience: &str,
        user_id_header: Option<&str>,
        scopes_header: Option<&str>,
        body: &[u8],
    ) -> Result<Verified, TrustError> {
        self.verify_token_at(
            token,
            audience,
            user_id_header,
            scopes_header,
            body,
            now_secs(),
        )
    }

    /// As [`verify_token`](Self::verify_token) at a given time (unix seconds).
    pub fn verify_token_at(
        &self,
        token: Option<&str>,
        audience: &str,
        user_id_header: Option<&str>,
        scopes_header: Option<&str>,
        request_body: &[u8],
        now: u64,
    ) -> Result<Verified, TrustError> {
        let token = token.ok_or(TrustError::Missing)?;
        if token.len() > 4096 {
            return Err(TrustError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(version), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TrustError::Malformed);
        };
        if version != VERSION {
            return Err(TrustError::Malformed);
        }
        let body_bytes = B64.decode(body).map_err(|_| TrustError::Malformed)?;
        let sig_bytes = B64.decode(sig).map_err(|_| TrustError::Malformed)?;
        let sig = Signature::from_slice(&sig_bytes).map_err(|_| TrustError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&body_bytes).map_err(|_| TrustError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|(kid, _)| kid == &claims.kid)
            .map(|(_, k)| k)
            .ok_or(TrustError::UnknownKey)?;
        let signed_len = version.len() + 1 + body.len();
        key.verify(&token.as_bytes()[..signed_len], &sig)
            .map_err(|_| TrustError::BadSignature)?;
        if claims.exp + LEEWAY_SECS < now {
            return Err(TrustError::Expired);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(TrustError::NotYetValid);
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL.as_secs() {
            return Err(TrustError::TooLongLived);
        }
        if claims.aud != audience {
            return Err(TrustError::WrongAudience);
        }
        let user_id = user_id_header.filter(|s| !s.is_empty());
        let scopes = scopes_header.unwrap_or("");
        if Identity::binding(user_id, scopes) != claims.idh || claims.sub.as_deref() != user_id {
            return Err(TrustError::IdentityMismatch);
        }
        if body_hash(request_body) != claims.bh {
            return Err(TrustError::BodyMismatch);
        }
        if let Some(guard) = &self.replay {
            guard.check(&claims.jti, claims.exp, now)?;
        }
        Ok(Verified {
            identity: Identity {
                user_id: user_id.map(str::to_string),
                scopes: scopes.split_whitespace().map(str::to_string).collect(),
            },
            dead_after: claims.exp + LEEWAY_SECS,
            jti: claims.jti,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_minted_for_an_empty_user_id_verifies_as_anonymous() {
        // Regression of fuzz/artifacts/trust/crash-54202efc… (the `trust` target).
        let signer = TrustSigner::generate();
        let verifier = signer.verifier();
        let identity = Identity {
            user_id: Some(String::new()),
            scopes: Vec::new(),
        };
        let token = signer.mint("users", &identity, b"{", Duration::from_secs(60));
        for header in [Some(""), None] {
            let verified = verifier
                .verify(Some(&token), "users", header, Some(""), b"{")
                .expect("verifies");
            assert_eq!(verified.user_id, None);
        }
    }

    const BODY: &[u8] = br#"{"query":"{ me { id } }"}"#;

    fn ident() -> Identity {
        Identity::user("42", vec!["read".into(), "write".into()])
    }

    #[test]
    fn a_minted_token_verifies_for_its_audience_and_headers() {
        let s = TrustSigner::generate();
        let t = s.mint("users", &ident(), BODY, Duration::from_secs(30));
        let id = s
            .verifier()
            .verify(Some(&t), "users", Some("42"), Some("read write"), BODY)
            .expect("valid");
        assert_eq!(id, ident());
    }

    #[test]
    fn anonymous_identity_round_trips() {
        let s = TrustSigner::generate();
        let t = s.mint(
            "posts",
            &Identity::anonymous(),
            BODY,
            Duration::from_secs(30),
        );
        let id = s
            .verifier()
            .verify(Some(&t), "posts", None, None, BODY)
            .expect("valid");
        assert_eq!(id.user_id, None);
    }

    #[test]
    fn refusals() {
        let s = TrustSigner::generate();
        let v = s.verifier();
        let t = s.mint("users", &ident(), BODY, Duration::from_secs(30));
        assert_eq!(
            v.verify(None, "users", None, None, BODY),
            Err(TrustError::Missing)
        );
        assert_eq!(
            v.verify(Some(&t), "posts", Some("42"), Some("read write"), BODY),
            Err(TrustError::WrongAudience)
        );
        assert_eq!(
            v.verify(Some(&t), "users", Some("43"), Some("read write"), BODY),
            Err(TrustError::IdentityMismatch)
        );
        assert_eq!(
            v.verify(
                Some(&t),
                "users",
                Some("42"),
                Some("read write admin"),
                BODY
            ),
            Err(TrustError::IdentityMismatch)
        );
        let other = TrustSigner::generate();
        let forged = other.mint("users", &ident(), BODY, Duration::from_secs(30));
        assert_eq!(
            v.verify(Some(&forged), "users", Some("42"), Some("read write"), BODY),
            Err(TrustError::UnknownKey)
        );
        // Same kid, different signature: tamper with the body.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged_sig = other.mint("users", &ident(), BODY, Duration::from_secs(30));
        let fs: Vec<&str> = forged_sig.split('.').collect();
        parts[2] = fs[2];
        assert_eq!(
            v.verify(
                Some(&parts.join(".")),
                "users",
                Some("42"),
                Some("read write"),
                BODY
            ),
            Err(TrustError::BadSignature)
        );
        let now = now_secs();
        let expired = s.sign(&Claims {
            aud: "users".into(),
            iat: now - 120,
            exp: now - 60,
            kid: s.kid().into(),
            idh: Identity::binding(None, ""),
            sub: None,
            bh: body_hash(BODY),
            jti: "x".into(),
        });
        assert_eq!(
            v.verify(Some(&expired), "users", None, None, BODY),
            Err(TrustError::Expired)
        );
        let long = s.sign(&Claims {
            aud: "users".into(),
            iat: now,
            exp: now + 3600,
            kid: s.kid().into(),
            idh: Identity::binding(None, ""),
            sub: None,
            bh: body_hash(BODY),
            jti: "x".into(),
        });
        assert_eq!(
            v.verify(Some(&long), "users", None, None, BODY),
            Err(TrustError::TooLongLived)
        );
        assert_eq!(
            v.verify(Some("garbage"), "users", None, None, BODY),
            Err(TrustError::Malformed)
        );
    }

    #[test]
    fn rotation_accepts_both_keys_and_pems_round_trip() {
        let old = TrustSigner::generate();
        let new = TrustSigner::generate();
        let pems = [
            old.public_key_pem().expect("pem"),
            new.public_key_pem().expect("pem"),
        ];
        let v = TrustVerifier::from_public_pems(&pems).expect("keys");
        for s in [&old, &new] {
            let t = s.mint(
                "likes",
                &Identity::anonymous(),
                BODY,
                Duration::from_secs(10),
            );
            assert!(v.verify(Some(&t), "likes", None, None, BODY).is_ok());
        }
        let reloaded =
            TrustSigner::from_pkcs8_pem(&old.to_pkcs8_pem().expect("pem")).expect("load");
        assert_eq!(reloaded.kid(), old.kid());
    }

    #[test]
    fn the_token_binds_the_body_and_a_guard_refuses_replays() {
        let s = TrustSigner::generate();
        let t = s.mint("users", &ident(), BODY, Duration::from_secs(30));
        let v = s.verifier();
        // Another operation with a captured token: refused.
        assert_eq!(
            v.verify(
                Some(&t),
                "users",
                Some("42"),
                Some("read write"),
                br#"{"query":"mutation { deleteEverything }"}"#
            ),
            Err(TrustError::BodyMismatch)
        );
        // Without a guard the same request verifies twice; with one, only once.
        assert!(
            v.verify(Some(&t), "users", Some("42"), Some("read write"), BODY)
                .is_ok()
        );
        assert!(
            v.verify(Some(&t), "users", Some("42"), Some("read write"), BODY)
                .is_ok()
        );
        let guarded = s.verifier().with_replay_guard(2);
        assert!(
            guarded
                .verify(Some(&t), "users", Some("42"), Some("read write"), BODY)
                .is_ok()
        );
        assert_eq!(
            guarded.verify(Some(&t), "users", Some("42"), Some("read write"), BODY),
            Err(TrustError::Replayed)
        );
        // Clones share the guard (one per subgraph process).
        let clone = guarded.clone();
        assert_eq!(
            clone.verify(Some(&t), "users", Some("42"), Some("read write"), BODY),
            Err(TrustError::Replayed)
        );
        // Every token has its own id.
        let t2 = s.mint("users", &ident(), BODY, Duration::from_secs(30));
        assert_ne!(t, t2);
        assert!(
            guarded
                .verify(Some(&t2), "users", Some("42"), Some("read write"), BODY)
                .is_ok()
        );
        // Full of live tokens: a new one is refused, not remembered partially.
        let t3 = s.mint("users", &ident(), BODY, Duration::from_secs(30));
        assert_eq!(
            guarded.verify(Some(&t3), "users", Some("42"), Some("read write"), BODY),
            Err(TrustError::ReplayCacheFull)
        );
        // Expired ids are forgotten to make room.
        let later = now_secs() + 3_600;
        let fresh = s.sign(&Claims {
            aud: "users".into(),
            iat: later,
            exp: later + 30,
            kid: s.kid().into(),
            idh: Identity::binding(None, ""),
            sub: None,
            bh: body_hash(BODY),
            jti: "fresh".into(),
        });
        assert!(
            guarded
                .verify_token_at(Some(&fresh), "users", None, None, BODY, later)
                .is_ok()
        );
    }
}
