//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>) and their canonical storage bytes.
//!
//! The signature covers `PAE(payloadType, payload)`; the entry chain covers the hash of the
//! canonical *storage* encoding of the whole envelope ([`Envelope::to_bytes`]), so the
//! signature bytes themselves are tamper-evident too.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::keys::KeyPair;

/// The payload type of every Release Ledger event.
pub const EVENT_PAYLOAD_TYPE: &str = "application/vnd.release-ledger.event.v1+json";

/// Version byte that opens [`Envelope::to_bytes`].
const ENVELOPE_FORMAT_V1: u8 = 1;

/// The DSSE Pre-Authentication Encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 40 + payload_type.len() + payload.len());
    pae_into(&mut out, payload_type, payload);
    out
}

/// [`pae`], appended to `out` (a batch of messages built without a copy per message).
pub fn pae_into(out: &mut Vec<u8>, payload_type: &str, payload: &[u8]) {
    // The lengths in decimal through `itoa`, not `write!`: the auditor builds one PAE per
    // entry, and the formatting machinery was a few tenths of a percent of its CPU.
    let mut digits = itoa::Buffer::new();
    out.reserve(12 + 40 + payload_type.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(digits.format(payload_type.len()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(digits.format(payload.len()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Lowercase hex SHA-256 of the signer's raw public key.
    pub keyid: String,
    /// The raw 64-byte Ed25519 signature.
    pub sig: Vec<u8>,
}

/// A DSSE envelope: the payload bytes exactly as signed, and the signatures over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Must be [`EVENT_PAYLOAD_TYPE`] for an append to be accepted.
    pub payload_type: String,
    /// The event body, JSON bytes exactly as the author signed them; never re-serialised.
    pub payload: Vec<u8>,
    /// Release Ledger v1 accepts exactly one signature (the author's).
    pub signatures: Vec<Signature>,
}

impl Envelope {
    /// Signs `payload` as an event with `key`.
    pub fn sign(payload: Vec<u8>, key: &KeyPair) -> Self {
        let sig = key.sign(&pae(EVENT_PAYLOAD_TYPE, &payload)).to_vec();
        Self {
            payload_type: EVENT_PAYLOAD_TYPE.to_owned(),
            payload,
            signatures: vec![Signature { keyid: key.key_id().to_hex(), sig }],
        }
    }

    /// The bytes this envelope's signatures cover.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Whether one of its signatures verifies with `key` (strict Ed25519: no malleable or
    /// small-order forms).
    pub fn is_signed_by(&self, key: &ed25519_dalek::VerifyingKey) -> bool {
        let message = self.signed_bytes();
        self.signatures.iter().any(|s| {
            ed25519_dalek::Signature::from_slice(&s.sig).is_ok_and(|sig| key.verify_strict(&message, &sig).is_ok())
        })
    }

    /// Whether every field fits the storage encoding's length prefixes: `payloadType` and
    /// `payload` under 4 GiB, each keyid and sig under 64 KiB, fewer than 64 Ki signatures.
    /// Every envelope the ledger signs, decodes or accepts does (the append path checks it);
    /// [`Envelope::to_bytes`] of one that does not would cut a length short.
    pub fn check_bounds(&self) -> Result<(), DecodeError> {
        let over = |what: &str, len: usize, max: usize| {
            (len > max).then(|| DecodeError::new(format!("{what} is {len} bytes, over the encoding's {max}")))
        };
        let max16 = usize::from(u16::MAX);
        let max32 = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        let problem = over("payloadType", self.payload_type.len(), max32)
            .or_else(|| over("payload", self.payload.len(), max32))
            .or_else(|| over("the signature count", self.signatures.len(), max16))
            .or_else(|| {
                self.signatures
                    .iter()
                    .find_map(|s| over("a keyid", s.keyid.len(), max16).or_else(|| over("a sig", s.sig.len(), max16)))
            });
        problem.map_or(Ok(()), Err)
    }

    /// The canonical storage encoding (`docs/format.md`), of an envelope within
    /// [`Envelope::check_bounds`]:
    ///
    /// ```text
    /// u8 version=1 | u32be len | payloadType | u32be len | payload | u16be nsigs
    ///   | per signature: u16be len | keyid (ASCII) | u16be len | sig
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert!(self.check_bounds().is_ok(), "to_bytes of an envelope over the encoding's bounds");
        let sig_bytes: usize = self.signatures.iter().map(|s| 4 + s.keyid.len() + s.sig.len()).sum();
        let mut out = Vec::with_capacity(11 + self.payload_type.len() + self.payload.len() + sig_bytes);
        self.encode(|bytes| out.extend_from_slice(bytes));
        out
    }

    /// [`crate::hash::payload_hash`] of [`Envelope::to_bytes`], hashed as the encoding is
    /// produced rather than from a copy of it (each entry a verifier checks).
    pub fn payload_hash(&self) -> crate::hash::Hash32 {
        let mut hasher = blake3::Hasher::new();
        self.encode(|bytes| {
            hasher.update(bytes);
        });
        *hasher.finalize().as_bytes()
    }

    /// The storage encoding, piece by piece, into `sink`: [`Envelope::to_bytes`] and
    /// [`Envelope::payload_hash`] are this one sequence.
    fn encode(&self, mut sink: impl FnMut(&[u8])) {
        sink(&[ENVELOPE_FORMAT_V1]);
        sink(&(self.payload_type.len() as u32).to_be_bytes());
        sink(self.payload_type.as_bytes());
        sink(&(self.payload.len() as u32).to_be_bytes());
        sink(&self.payload);
        sink(&(self.signatures.len() as u16).to_be_bytes());
        for signature in &self.signatures {
            sink(&(signature.keyid.len() as u16).to_be_bytes());
            sink(signature.keyid.as_bytes());
            sink(&(signature.sig.len() as u16).to_be_bytes());
            sink(&signature.sig);
        }
    }

    /// Decodes [`Envelope::to_bytes`], strictly: trailing bytes, short fields and non-UTF-8
    /// text are errors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != ENVELOPE_FORMAT_V1 {
            return Err(DecodeError::new(format!("unknown envelope format version {version}")));
        }
        let payload_type = reader.utf8_u32()?;
        let payload = reader.bytes_u32()?.to_vec();
        let count = reader.u16()?;
        let mut signatures = Vec::with_capacity(usize::from(count).min(16));
        for _ in 0..count {
            let keyid =
                String::from_utf8(reader.bytes_u16()?.to_vec()).map_err(|_| DecodeError::new("keyid is not UTF-8"))?;
            let sig = reader.bytes_u16()?.to_vec();
            signatures.push(Signature { keyid, sig });
        }
        reader.finish()?;
        Ok(Self { payload_type, payload, signatures })
    }

    /// The standard DSSE JSON form (`payload` and `sig` base64).
    pub fn to_json(&self) -> String {
        let json = JsonEnvelope {
            payload_type: self.payload_type.clone(),
            payload: crate::b64::encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| JsonSignature { keyid: s.keyid.clone(), sig: crate::b64::encode(&s.sig) })
                .collect(),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses the standard DSSE JSON form.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        let json: JsonEnvelope = serde_json::from_str(text).map_err(|e| DecodeError::new(format!("dsse json: {e}")))?;
        let payload =
            crate::b64::decode(&json.payload).map_err(|e| DecodeError::new(format!("payload base64: {e}")))?;
        let signatures = json
            .signatures
            .into_iter()
            .map(|s| {
                let sig = crate::b64::decode(&s.sig).map_err(|e| DecodeError::new(format!("sig base64: {e}")))?;
                Ok(Signature { keyid: s.keyid, sig })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self { payload_type: json.payload_type, payload, signatures })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonEnvelope {
    payload_type: String,
    payload: String,
    signatures: Vec<JsonSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

/// A strict big-endian reader over a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::new(format!("truncated: wanted {n} bytes, {} left", self.bytes.len())));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn bytes_u32(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn bytes_u16(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    pub(crate) fn utf8_u32(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes_u32()?.to_vec()).map_err(|_| DecodeError::new("text is not UTF-8"))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(format!("{} trailing bytes", self.bytes.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // The worked example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        // Appended after what the buffer holds, as a batch of messages does.
        let mut out = b"before".to_vec();
        pae_into(&mut out, "application/vnd.in-toto+json", &[0u8; 1234]);
        assert_eq!(out, [&b"before"[..], &pae("application/vnd.in-toto+json", &[0u8; 1234])].concat());
    }

    #[test]
    fn the_streamed_payload_hash_is_the_hash_of_the_encoding() {
        let key = KeyPair::from_seed(&[2; 32]);
        let mut envelopes = vec![Envelope::sign(br#"{"a":1}"#.to_vec(), &key), Envelope::sign(Vec::new(), &key)];
        let mut two = Envelope::sign(vec![7u8; 5000], &key);
        two.signatures.push(Signature { keyid: "another".into(), sig: vec![9; 64] });
        envelopes.push(two);
        let mut none = Envelope::sign(b"x".to_vec(), &key);
        none.signatures.clear();
        none.payload_type = String::new();
        envelopes.push(none);
        for envelope in envelopes {
            assert_eq!(envelope.payload_hash(), crate::hash::payload_hash(&envelope.to_bytes()));
            assert_eq!(Envelope::from_bytes(&envelope.to_bytes()).unwrap(), envelope);
        }
    }

    #[test]
    fn fields_over_the_length_prefixes_are_out_of_bounds() {
        let envelope = Envelope::sign(br#"{"a":1}"#.to_vec(), &KeyPair::from_seed(&[1; 32]));
        assert!(envelope.check_bounds().is_ok());
        let mut long_keyid = envelope.clone();
        long_keyid.signatures[0].keyid = "k".repeat(usize::from(u16::MAX) + 1);
        assert!(long_keyid.check_bounds().unwrap_err().to_string().contains("a keyid is 65536 bytes"));
        let mut many = envelope.clone();
        many.signatures = vec![envelope.signatures[0].clone(); usize::from(u16::MAX) + 1];
        assert!(many.check_bounds().unwrap_err().to_string().contains("signature count"));
        // At the bound, the encoding round-trips.
        let mut at_bound = envelope;
        at_bound.signatures[0].keyid = "k".repeat(usize::from(u16::MAX));
        assert_eq!(Envelope::from_bytes(&at_bound.to_bytes()).unwrap(), at_bound);
    }

    #[test]
    fn storage_bytes_round_trip_and_reject_trailing_garbage() {
        let envelope = Envelope::sign(br#"{"a":1}"#.to_vec(), &KeyPair::from_seed(&[1; 32]));
        let bytes = envelope.to_bytes();
        assert_eq!(Envelope::from_bytes(&bytes).unwrap(), envelope);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Envelope::from_bytes(&longer).is_err());
        assert!(Envelope::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn dsse_json_round_trips() {
        let envelope = Envelope::sign(b"{}".to_vec(), &KeyPair::from_seed(&[2; 32]));
        let json = envelope.to_json();
        assert!(json.contains("\"payloadType\""));
        assert_eq!(Envelope::from_json(&json).unwrap(), envelope);
    }
}
