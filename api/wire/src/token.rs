//! Reader tokens: short-lived JWTs (RFC 7519) signed with EdDSA (RFC 8037) by a key the ledger
//! already knows — a tenant key registered in the tenant's log, or the data dir's admin key.
//!
//! The key registry the log keeps is the identity store: a token names its key in the header
//! (`kid`, the hex key id) and its tenant in the claims (`tenant`); the server looks the key up
//! in that tenant's registry, checks it is not revoked, and verifies the signature. Revoking the
//! key (an `AgentKeyRevoked` event) ends every token it signed. No secret lives on the server.
//!
//! Claims: `sub` (the agent id, or `admin`), `tenant` (absent for the admin key: an operator
//! token), `aud` (the ledger's checkpoint origin prefix, so a token for one ledger is refused by
//! another), `iat` and `exp` (seconds since the epoch). The server refuses a token whose
//! lifetime (`exp - iat`) exceeds its maximum (one hour unless configured) or that was issued in
//! the future. JWT encoding and verification are the `jsonwebtoken` crate's.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger::keys::KeyPair;
use serde::{Deserialize, Serialize};

/// The subject of a token signed by the data dir's admin key.
pub const ADMIN_SUBJECT: &str = "admin";

/// A token's lifetime unless the caller asks for another (`release-ledger token --ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest lifetime a server accepts unless configured (`serve --max-token-lifetime`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Clock skew tolerated between the minting machine and the server, seconds.
pub const LEEWAY_SECONDS: u64 = 60;

/// The claims of a reader token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The agent id the key is registered to, or [`ADMIN_SUBJECT`].
    pub sub: String,
    /// The tenant whose registry holds the key; absent for the admin key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The ledger's checkpoint origin prefix.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

/// Why a token could not be minted or was refused. The messages name the cause for the
/// caller; none of them says anything of a tenant other than the one the token names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or not one of ours (algorithm, missing `kid`).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not verify with the key the token names.
    #[error("the token's signature does not verify with key {0}")]
    BadSignature(String),
    /// Expired (beyond the leeway).
    #[error("the token expired at {exp} (now {now})")]
    Expired {
        /// `exp`.
        exp: u64,
        /// The server's clock.
        now: u64,
    },
    /// Issued for another ledger.
    #[error("the token's audience {got:?} is not this ledger ({want:?})")]
    WrongAudience {
        /// The token's `aud`.
        got: String,
        /// This ledger's origin prefix.
        want: String,
    },
    /// Lives longer than the server accepts, or was issued in the future.
    #[error("{0}")]
    Lifetime(String),
    /// The key cannot sign (encoding it failed).
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// Seconds since the epoch, from the system clock (`ledger::clock`, the one place it is read):
/// what clients mint tokens at.
pub fn unix_now() -> u64 {
    use ledger::clock::Clock as _;
    ledger::clock::SystemClock.now_ns() / 1_000_000_000
}

/// What a token says before it is verified: which key, which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The hex key id (`kid`).
    pub key_id: String,
    /// The claimed tenant.
    pub tenant: Option<String>,
    /// The claimed subject.
    pub subject: String,
}

/// Mints a token signed by `key` for `tenant` (`None`: the admin key's operator token), valid
/// for `ttl` from `now` (seconds since the epoch).
pub fn mint(
    key: &KeyPair,
    subject: &str,
    tenant: Option<&str>,
    audience: &str,
    ttl: Duration,
    now: u64,
) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.key_id().to_hex());
    let claims = Claims {
        sub: subject.to_owned(),
        tenant: tenant.map(str::to_owned),
        aud: audience.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl.as_secs()),
    };
    let pem = key.to_pkcs8_pem().map_err(|e| TokenError::Signing(e.to_string()))?;
    let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| TokenError::Signing(e.to_string()))?;
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| TokenError::Signing(e.to_string()))
}

/// Reads the key id and tenant of `token` without verifying anything (to find the key).
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let data =
        jsonwebtoken::dangerous::insecure_decode::<Claims>(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if data.header.alg != Algorithm::EdDSA {
        return Err(TokenError::Malformed(format!("algorithm {:?}: ledger tokens are EdDSA", data.header.alg)));
    }
    let key_id = data.header.kid.ok_or_else(|| TokenError::Malformed("no key id (kid) in the header".into()))?;
    Ok(Unverified { key_id, tenant: data.claims.tenant, subject: data.claims.sub })
}

/// Verifies `token` with `key` (the raw Ed25519 public key): signature, audience, expiry (with
/// [`LEEWAY_SECONDS`]), and a lifetime of at most `max_lifetime`.
pub fn verify(
    token: &str,
    key: &[u8; 32],
    key_id: &str,
    audience: &str,
    max_lifetime: Duration,
    now: u64,
) -> Result<Claims, TokenError> {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    let decoding = DecodingKey::from_ed_components(&x).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // Expiry and audience are checked below against the caller's clock and with messages that
    // say what was wrong; the signature is the crate's.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, &decoding, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature(key_id.to_owned()),
        _ => TokenError::Malformed(e.to_string()),
    })?;
    let claims = data.claims;
    if claims.aud != audience {
        return Err(TokenError::WrongAudience { got: claims.aud, want: audience.to_owned() });
    }
    if claims.exp.saturating_add(LEEWAY_SECONDS) < now {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    if claims.iat > now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::Lifetime(format!("the token was issued in the future ({} > now {now})", claims.iat)));
    }
    let lifetime = claims.exp.saturating_sub(claims.iat);
    if lifetime > max_lifetime.as_secs() {
        return Err(TokenError::Lifetime(format!(
            "the token lives {lifetime} s; this server accepts at most {} s (mint a shorter one)",
            max_lifetime.as_secs()
        )));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn raw(key: &KeyPair) -> [u8; 32] {
        let public = ledger::keys::public_key_from_base64(&key.public_key_base64()).unwrap();
        public.to_bytes()
    }

    #[test]
    fn a_minted_token_verifies_and_says_whose_it_is() {
        let key = KeyPair::from_seed(&[7; 32]);
        let token = mint(&key, "qa-bot", Some("acme"), "ledger.example/abc", DEFAULT_TTL, NOW).unwrap();
        let peeked = peek(&token).unwrap();
        assert_eq!(peeked.key_id, key.key_id().to_hex());
        assert_eq!(peeked.tenant.as_deref(), Some("acme"));
        let claims =
            verify(&token, &raw(&key), &peeked.key_id, "ledger.example/abc", DEFAULT_MAX_LIFETIME, NOW + 10).unwrap();
        assert_eq!((claims.sub.as_str(), claims.exp), ("qa-bot", NOW + 900));
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let key = KeyPair::from_seed(&[7; 32]);
        let other = KeyPair::from_seed(&[8; 32]);
        let aud = "ledger.example/abc";
        let kid = key.key_id().to_hex();
        let token = mint(&key, "qa-bot", Some("acme"), aud, DEFAULT_TTL, NOW).unwrap();
        let verify_at =
            |token: &str, key: &KeyPair, now| verify(token, &raw(key), &kid, aud, DEFAULT_MAX_LIFETIME, now);
        assert_eq!(verify_at(&token, &other, NOW), Err(TokenError::BadSignature(kid.clone())));
        assert!(matches!(verify_at(&token, &key, NOW + 900 + LEEWAY_SECONDS + 1), Err(TokenError::Expired { .. })));
        assert!(verify_at(&token, &key, NOW + 900 + LEEWAY_SECONDS).is_ok());
        assert!(matches!(
            verify(&token, &raw(&key), &kid, "other.example/x", DEFAULT_MAX_LIFETIME, NOW),
            Err(TokenError::WrongAudience { .. })
        ));
        let long = mint(&key, "qa-bot", Some("acme"), aud, Duration::from_secs(7200), NOW).unwrap();
        assert!(matches!(verify_at(&long, &key, NOW), Err(TokenError::Lifetime(_))));
        let future = mint(&key, "qa-bot", Some("acme"), aud, DEFAULT_TTL, NOW + 3600).unwrap();
        assert!(matches!(verify_at(&future, &key, NOW), Err(TokenError::Lifetime(_))));
        // A changed claim breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
        let forged = String::from_utf8(claims).unwrap().replace("acme", "evil");
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        let forged = parts.join(".");
        assert_eq!(peek(&forged).unwrap().tenant.as_deref(), Some("evil"));
        assert_eq!(verify_at(&forged, &key, NOW), Err(TokenError::BadSignature(kid.clone())));
        assert!(matches!(peek("not-a-jwt"), Err(TokenError::Malformed(_))));
    }
}
