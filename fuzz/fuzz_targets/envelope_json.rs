//! The DSSE envelope as received (JSON): parsing never panics, and an envelope that parses
//! survives both of its encodings unchanged.
#![no_main]

use ledger::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(envelope) = Envelope::from_json(text) else { return };
    let json = envelope.to_json();
    assert_eq!(Envelope::from_json(&json).as_ref(), Ok(&envelope), "json round trip");
    assert_eq!(Envelope::from_bytes(&envelope.to_bytes()).as_ref(), Ok(&envelope), "storage round trip");
    let _ = envelope.signed_bytes();
});
