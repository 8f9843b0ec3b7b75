//! The stored value layouts of `ledger/src/store/layout.rs`: the entry value (raw bytes, and
//! values built with correct hashes around arbitrary bodies so decoding gets past the hash
//! checks), the tenant head and the event-id row. Decoding never panics, and what decodes
//! re-encodes to exactly the stored bytes.
#![no_main]

use ledger::fuzzing::{
    decode_entry_value, decode_event_id_value, encode_entry_value, encode_event_id_value, EncodedBody, Head,
};
use ledger::hash::{entry_hash, payload_hash};
use ledger::{EntryBody, Envelope};
use libfuzzer_sys::fuzz_target;
use release_ledger_fuzz::Input;

fn reencode(entry: &ledger::Entry) -> Vec<u8> {
    match &entry.body {
        EntryBody::Present(envelope) => encode_entry_value(
            entry.recorded_at,
            &entry.prev_hash,
            &entry.payload_hash,
            &entry.entry_hash,
            EncodedBody::Envelope(&envelope.to_bytes()),
        ),
        EntryBody::Redacted { by_seq } => encode_entry_value(
            entry.recorded_at,
            &entry.prev_hash,
            &entry.payload_hash,
            &entry.entry_hash,
            EncodedBody::Redacted(*by_seq),
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 4 {
        // Raw stored bytes under an arbitrary seq.
        0 => {
            let seq = input.u64();
            let value = input.rest();
            if let Ok(entry) = decode_entry_value(seq, value) {
                assert_eq!(entry.seq, seq);
                assert_eq!(reencode(&entry), value, "entry value is not canonical");
            }
        }
        // A value with correct hashes around an arbitrary body (envelope bytes or a
        // redaction marker): it decodes exactly when the body does.
        1 => {
            let (seq, recorded_at, prev_hash) = (input.u64(), input.u64(), input.hash());
            let redacted = input.u8() & 1 == 1;
            let body = input.rest();
            let payload = if redacted { input.hash() } else { payload_hash(body) };
            let entry_hash = entry_hash(seq, recorded_at, &prev_hash, &payload);
            let mut value =
                encode_entry_value(recorded_at, &prev_hash, &payload, &entry_hash, EncodedBody::Envelope(body));
            if redacted {
                value[1] = 1; // The redacted flag, with the body bytes as the tail.
            }
            let decoded = decode_entry_value(seq, &value);
            if !redacted {
                assert_eq!(decoded.is_ok(), Envelope::from_bytes(body).is_ok(), "{decoded:?}");
            } else {
                assert_eq!(decoded.is_ok(), body.len() == 8, "{decoded:?}");
            }
            if let Ok(entry) = decoded {
                assert_eq!(reencode(&entry), value, "entry value is not canonical");
                assert!(entry.check_hashes().is_ok());
            }
        }
        2 => {
            let value = input.rest();
            if let Ok(head) = Head::decode(value) {
                assert_eq!(head.encode().as_slice(), value);
            }
        }
        _ => {
            let value = input.rest();
            if let Ok((seq, digest)) = decode_event_id_value(value) {
                assert_eq!(encode_event_id_value(seq, &digest).as_slice(), value);
            }
        }
    }
});
