//! The RSA key set: signs RS256 access tokens with the current private key and publishes
//! the current and extra public keys as a JWKS. The `kid` of a key is the first 16 hex
//! digits of the SHA-256 of its DER public key, so it is stable across restarts.
//!
//! Signing (the only private-key operation a request triggers) goes through `ring`
//! (constant-time RSA, already in the tree for rustls), not the `rsa` crate, whose
//! private-key operations carry a timing advisory (RUSTSEC-2023-0071, "Marvin"); `rsa`
//! only generates keys (`portico keys`, first start) and reads PEM and public keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuthSettings;

/// Key handling failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid RSA private key: {0}")]
    InvalidPrivateKey(String),
    #[error("invalid RSA public key: {0}")]
    InvalidPublicKey(String),
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A new 2048-bit RSA private key as PKCS#8 PEM (for `portico keys` and first start).
pub fn generate_rsa_private_key_pem() -> Result<String, KeyError> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Generate(e.to_string()))
}

/// The SPKI PEM public key of a private key PEM.
pub fn public_key_pem(private_key_pem: &str) -> Result<String, KeyError> {
    let key = parse_private(private_key_pem)?;
    RsaPublicKey::from(&key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))
}

fn parse_private(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| KeyError::InvalidPrivateKey(e.to_string()))
}

fn kid_of(key: &RsaPublicKey) -> Result<String, KeyError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn jwk(key: &RsaPublicKey, kid: &str) -> serde_json::Value {
    serde_json::json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": B64.encode(key.n().to_bytes_be()),
        "e": B64.encode(key.e().to_bytes_be()),
    })
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
}

/// The signing key and the published JWKS.
#[derive(Clone)]
pub struct KeySet {
    signing: std::sync::Arc<RsaKeyPair>,
    rng: SystemRandom,
    /// `base64url({"alg":"RS256","typ":"JWT","kid":...})`, the same for every token.
    header: String,
    kid: String,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, KeyError> {
        let private = parse_private(&settings.private_key_pem)?;
        let public = RsaPublicKey::from(&private);
        let kid = kid_of(&public)?;
        let der = private
            .to_pkcs8_der()
            .map_err(|e| KeyError::InvalidPrivateKey(e.to_string()))?;
        let signing = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| KeyError::InvalidPrivateKey(e.to_string()))?;
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
        let header = B64.encode(header.to_string());
        let mut keys = vec![jwk(&public, &kid)];
        for pem in &settings.extra_public_key_pems {
            let extra = RsaPublicKey::from_public_key_pem(pem)
                .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
            let extra_kid = kid_of(&extra)?;
            if extra_kid != kid {
                keys.push(jwk(&extra, &extra_kid));
            }
        }
        Ok(Self {
            signing: std::sync::Arc::new(signing),
            rng: SystemRandom::new(),
            header,
            kid,
            jwks: serde_json::json!({ "keys": keys }),
        })
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document (`{"keys": [...]}`).
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// Sign an RS256 access token with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let claims = serde_json::to_vec(claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let mut token = format!("{}.{}", self.header, B64.encode(claims));
        let mut signature = vec![0; self.signing.public().modulus_len()];
        self.signing
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        token.push('.');
        token.push_str(&B64.encode(signature));
        Ok(token)
    }
}
