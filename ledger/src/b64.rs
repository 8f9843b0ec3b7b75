//! Base64, the standard padded alphabet: DSSE envelopes and signatures, raw public keys,
//! export metadata. The one place that names the engine.

use base64::Engine as _;

/// `bytes` as standard padded base64.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard padded base64.
///
/// # Errors
/// The text is not standard padded base64.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}
