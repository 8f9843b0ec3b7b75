//! Ed25519 keys: PKCS#8 PEM files, key ids, and the data dir's key set.
//!
//! `keyid` is the lowercase hex SHA-256 of the raw 32-byte public key (DESIGN §3.1), so a key
//! id binds its public key for ever: the registry can revoke a key but never re-point an id.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::KeyError;

/// The SHA-256 of a raw Ed25519 public key; shown and sent as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The key id of `public_key`.
    pub fn of(public_key: &VerifyingKey) -> Self {
        Self(Sha256::digest(public_key.as_bytes()).into())
    }

    /// Parses 64 lowercase hex characters.
    ///
    /// One pass through a table, checking and decoding together: the auditor and the server
    /// read a key id from every envelope they check.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadKeyId(text.chars().take(80).collect());
        let digits: &[u8; 64] = text.as_bytes().try_into().map_err(|_| bad())?;
        let mut bytes = [0u8; 32];
        // Any character outside `0-9a-f` maps to 0x10 or more, so the high nibbles of the
        // OR of all of them tell whether one was bad.
        let mut seen = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (HEX_VALUE[usize::from(pair[0])], HEX_VALUE[usize::from(pair[1])]);
            seen |= high | low;
            *byte = (high << 4) | (low & 0x0f);
        }
        if seen >= 0x10 {
            return Err(bad());
        }
        Ok(Self(bytes))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Each byte's value as a lowercase hex digit, or `0xff` for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// An Ed25519 signing key with its derived key id.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed (deterministic; for tests and fixtures).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let key_id = KeyId::of(&signing.verifying_key());
        Self { signing, key_id }
    }

    /// Parses a PKCS#8 PEM private key (what `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::BadPem(e.to_string()))?;
        Ok(Self::from_signing_key(signing))
    }

    /// The PKCS#8 PEM encoding of the private key, in the RFC 8410 v1 form that
    /// `openssl genpkey -algorithm ed25519` writes (no embedded public key). The v2 form
    /// (RFC 5958, with the public key) is not readable by OpenSSL 3.0 or Python's
    /// `cryptography`, so it is never written, though it is accepted on read.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes { secret_key: self.signing.to_bytes(), public_key: None };
        let pem = bytes
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::BadPem(e.to_string()))?;
        Ok(pem.to_string())
    }

    /// The SubjectPublicKeyInfo PEM encoding of the public key.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.signing
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::BadPem(e.to_string()))
    }

    /// Reads a PKCS#8 PEM file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::load_with_passphrase(path, None)
    }

    /// Reads a PKCS#8 PEM file, plain (`PRIVATE KEY`) or encrypted (`ENCRYPTED PRIVATE KEY`,
    /// PBES2 as `openssl genpkey -aes256` writes it), decrypting with `passphrase`. An encrypted
    /// key without a passphrase is [`KeyError::NeedsPassphrase`]; a passphrase given for a
    /// plain key is not needed and ignored.
    pub fn load_with_passphrase(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|cause| KeyError::Io { path: path.into(), cause })?;
        let bad_file = |e| match e {
            KeyError::BadPem(reason) => KeyError::BadPemFile { path: path.into(), reason },
            other => other,
        };
        let label = pkcs8::der::pem::decode_label(text.trim_start().as_bytes()).ok();
        if label != Some(<pkcs8::EncryptedPrivateKeyInfo<'_> as pkcs8::der::pem::PemLabel>::PEM_LABEL) {
            return Self::from_pkcs8_pem(&text).map_err(bad_file);
        }
        let passphrase = passphrase.ok_or_else(|| KeyError::NeedsPassphrase { path: path.into() })?;
        let (_, document) =
            pkcs8::Document::from_pem(text.trim_start()).map_err(|e| bad_file(KeyError::BadPem(e.to_string())))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|e| bad_file(KeyError::BadPem(e.to_string())))?;
        let decrypted = encrypted
            .decrypt(passphrase)
            .map_err(|e| KeyError::Decrypt { path: path.into(), reason: e.to_string() })?;
        let signing =
            SigningKey::from_pkcs8_der(decrypted.as_bytes()).map_err(|e| bad_file(KeyError::BadPem(e.to_string())))?;
        Ok(Self::from_signing_key(signing))
    }

    /// Writes the private key as PKCS#8 PEM, readable by its owner only (mode 0600), refusing to
    /// overwrite an existing file.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self.to_pkcs8_pem()?;
        write_new_file(path, pem.as_bytes(), 0o600)
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw public key, base64 (the form `AgentKeyRegistered.publicKey` takes).
    pub fn public_key_base64(&self) -> String {
        crate::b64::encode(self.signing.verifying_key().as_bytes())
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// Parses a raw 32-byte Ed25519 public key given as base64, rejecting weak (small-order) keys.
pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey, KeyError> {
    let raw = crate::b64::decode(text.trim()).map_err(|e| KeyError::BadPublicKey(format!("not base64: {e}")))?;
    public_key_from_bytes(&raw)
}

/// Parses a raw 32-byte Ed25519 public key, rejecting weak (small-order) keys.
pub fn public_key_from_bytes(raw: &[u8]) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] =
        raw.try_into().map_err(|_| KeyError::BadPublicKey(format!("expected 32 bytes, got {}", raw.len())))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadPublicKey("not a curve point".into()))?;
    if key.is_weak() {
        return Err(KeyError::BadPublicKey("weak (small-order) key".into()));
    }
    Ok(key)
}

/// Parses a public key given as text: an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), a PKCS#8
/// private key PEM (its public half), or the raw 32 bytes in base64.
pub fn public_key_from_text(text: &str) -> Result<VerifyingKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text = text.trim();
    if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        let key = VerifyingKey::from_public_key_pem(text).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        return public_key_from_bytes(key.as_bytes());
    }
    if text.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Ok(KeyPair::from_pkcs8_pem(text)?.verifying_key());
    }
    public_key_from_base64(text)
}

/// The paths of a data dir's key files.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    /// `DIR/keys/ledger.pem`: signs checkpoints and decisions.
    pub ledger: PathBuf,
    /// `DIR/keys/ledger.pub`: the ledger public key for auditors (SPKI PEM).
    pub ledger_pub: PathBuf,
    /// `DIR/keys/admin.pem`: registers the first agent keys of every tenant.
    pub admin: PathBuf,
}

impl KeyPaths {
    /// The key paths under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("keys");
        Self { ledger: dir.join("ledger.pem"), ledger_pub: dir.join("ledger.pub"), admin: dir.join("admin.pem") }
    }
}

/// Creates `path` with `contents` and `mode`, failing if it exists, and fsyncs it and its
/// directory so a crash cannot leave a half-written key behind.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |cause| KeyError::Io { path: path.into(), cause };
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    // A bare file name's parent is "", which means the current directory.
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key_id() {
        let key = KeyPair::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = KeyPair::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.key_id(), key.key_id());
    }

    #[test]
    fn key_id_is_sha256_of_the_raw_public_key() {
        let key = KeyPair::from_seed(&[7; 32]);
        let expected = hex::encode(Sha256::digest(key.verifying_key().as_bytes()));
        assert_eq!(key.key_id().to_hex(), expected);
        assert_eq!(KeyId::from_hex(&expected).unwrap(), key.key_id());
    }

    #[test]
    fn written_keys_are_the_v1_form_openssl_writes() {
        // A v1 PrivateKeyInfo of an Ed25519 key is exactly 48 bytes of DER: the 16-byte
        // prefix RFC 8410 shows, then the 32-byte seed. The v2 form adds the public key.
        let key = KeyPair::from_seed(&[9; 32]);
        let pem = key.to_pkcs8_pem().unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = crate::b64::decode(body).unwrap();
        assert_eq!(der.len(), 48, "not the v1 form");
        assert_eq!(hex::encode(&der[..16]), "302e020100300506032b657004220420");
        assert_eq!(&der[16..], &[9; 32]);
    }

    #[test]
    fn openssl_written_pkcs8_parses() {
        // Written by `openssl genpkey -algorithm ed25519` (RFC 8410 example key).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let key = KeyPair::from_pkcs8_pem(pem).unwrap();
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    #[test]
    fn bad_key_ids_and_public_keys_are_rejected() {
        assert!(KeyId::from_hex("ABCD").is_err());
        assert!(KeyId::from_hex(&"G".repeat(64)).is_err());
        assert!(public_key_from_base64("AAAA").is_err());
        // The identity point is a small-order key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(public_key_from_bytes(&identity).is_err());
    }

    proptest::proptest! {
        /// The table decoder accepts exactly 64 lowercase hex digits and decodes them as the
        /// `hex` crate does; any other character, anywhere (uppercase included), is refused.
        /// Checked with uppercase digits put in the table: it fails.
        #[test]
        fn key_ids_decode_as_the_hex_crate_decodes_lowercase_hex(
            bytes in proptest::array::uniform32(proptest::num::u8::ANY),
            at in 0usize..64,
            other in proptest::num::u8::ANY,
        ) {
            let text = hex::encode(bytes);
            proptest::prop_assert_eq!(KeyId::from_hex(&text).unwrap().0, bytes);
            let mut changed = text.clone().into_bytes();
            changed[at] = other;
            let lowercase_hex = matches!(other, b'0'..=b'9' | b'a'..=b'f');
            match String::from_utf8(changed) {
                Ok(changed) => {
                    let decoded = KeyId::from_hex(&changed);
                    proptest::prop_assert_eq!(decoded.is_ok(), lowercase_hex);
                    if let Ok(id) = decoded {
                        proptest::prop_assert_eq!(id.0.to_vec(), hex::decode(&changed).unwrap());
                    }
                }
                Err(_) => proptest::prop_assert!(!lowercase_hex),
            }
            proptest::prop_assert!(KeyId::from_hex(&text[..63]).is_err());
            let longer = format!("{text}0");
            proptest::prop_assert!(KeyId::from_hex(&longer).is_err());
        }
    }
}
