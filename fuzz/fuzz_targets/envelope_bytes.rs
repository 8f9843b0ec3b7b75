//! The strict binary storage framing of an envelope (`Envelope::from_bytes`): decoding never
//! panics, and what decodes re-encodes to exactly the same bytes (the framing is canonical,
//! which the payload hash relies on) and survives the JSON form unchanged.
#![no_main]

use ledger::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::from_bytes(data) else { return };
    assert_eq!(envelope.to_bytes(), data, "storage bytes are not canonical");
    assert_eq!(Envelope::from_json(&envelope.to_json()).as_ref(), Ok(&envelope), "json round trip");
});
