//! jsonwebtoken's crypto provider for the gateway: RSA signatures (`RS256/384/512`,
//! `PS256/384/512`) are verified with `ring` (constant-time, assembly-optimised: a
//! 2048-bit RS256 check takes a fraction of the pure-Rust `rsa` crate's time, which
//! re-parses the key and computes with generic big integers on every token); everything
//! else (EC, EdDSA, signing, JWK utilities) stays with jsonwebtoken's `rust_crypto`
//! provider. `ring` accepts RSA keys of 2048 to 8192 bits only, so tokens signed with a
//! smaller key are refused (`InvalidSignature`).

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_sig, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as RUST_CRYPTO;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: RUST_CRYPTO.signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: RUST_CRYPTO
            .key_utils
            .rsa_pub_components_from_private_key,
        rsa_pub_components_from_public_key: RUST_CRYPTO
            .key_utils
            .rsa_pub_components_from_public_key,
        ec_pub_components_from_private_key: RUST_CRYPTO
            .key_utils
            .ec_pub_components_from_private_key,
        ed_pub_components_from_private_key: RUST_CRYPTO
            .key_utils
            .ed_pub_components_from_private_key,
        compute_digest: RUST_CRYPTO.key_utils.compute_digest,
    },
};

/// Makes this the process's jsonwebtoken provider, once; a provider already installed
/// (by an application embedding the gateway) is kept.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let params: &'static RsaParameters = match algorithm {
        Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
        _ => {
            return (RUST_CRYPTO.verifier_factory)(algorithm, key);
        }
    };
    if key.family() != AlgorithmFamily::Rsa {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingRsa {
        algorithm: *algorithm,
        params,
        key: key.clone(),
    }))
}

struct RingRsa {
    algorithm: Algorithm,
    params: &'static RsaParameters,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingRsa {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let checked = match self.key.kind() {
            // A PEM key: PKCS#1 `RSAPublicKey` DER, as ring takes it.
            DecodingKeyKind::SecretOrDer(der) => {
                UnparsedPublicKey::new(self.params, der).verify(msg, sig)
            }
            // A JWK: modulus and exponent.
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(self.params, msg, sig)
            }
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingRsa {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}
