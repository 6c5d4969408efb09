//! Trust-token verification as a subgraph does it, on arbitrary input: the first byte
//! chooses between a token made of the input's bytes and a token minted for a request,
//! then altered at positions the input chooses (so that mutations reach every check
//! past the format). Verification must refuse (or, unaltered, accept) and never panic;
//! an altered token must never verify for another audience, identity or body.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portico_trust::{Identity, TrustSigner, TrustVerifier};

static KEYS: LazyLock<(TrustSigner, TrustVerifier)> = LazyLock::new(|| {
    let signer = TrustSigner::generate();
    let verifier = signer.verifier();
    (signer, verifier)
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (signer, verifier) = &*KEYS;
    // Request parts from the input: body | user id | scopes, separated by 0xFF.
    let mut parts = rest.splitn(4, |b| *b == 0xFF);
    let body = parts.next().unwrap_or_default();
    let user = parts.next().and_then(|u| std::str::from_utf8(u).ok());
    let scopes = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let edits = parts.next().unwrap_or_default();
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let _ = verifier.verify(Some(&token), "users", user, scopes, body);
        return;
    }
    // Only identities the gateway sends (it refuses JWTs with others): a short printable
    // subject, printable scope words.
    let fits = |s: &str| s.len() <= 256 && !s.chars().any(char::is_control);
    if !user.is_none_or(fits) || !scopes.is_none_or(fits) {
        return;
    }
    let identity = Identity {
        user_id: user.map(str::to_string),
        scopes: scopes
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    // The headers as the gateway writes them.
    let scopes_header = identity.scopes_header();
    let scopes = Some(scopes_header.as_str());
    let token = signer.mint("users", &identity, body, Duration::from_secs(60));
    let mut bytes = token.clone().into_bytes();
    for pair in edits.chunks(2) {
        if let [at, value] = pair
            && !bytes.is_empty()
        {
            let i = *at as usize % bytes.len();
            bytes[i] ^= value;
        }
    }
    let altered = String::from_utf8_lossy(&bytes).into_owned();
    let verdict = verifier.verify(Some(&altered), "users", user, scopes, body);
    if altered == token {
        assert!(verdict.is_ok(), "a freshly minted token verifies: {verdict:?}");
    }
    // Never valid for another audience, nor for another body.
    assert!(verifier.verify(Some(&altered), "posts", user, scopes, body).is_err());
    let mut other_body = body.to_vec();
    other_body.push(b'!');
    assert!(
        verifier
            .verify(Some(&altered), "users", user, scopes, &other_body)
            .is_err()
    );
});
