//! The checkpoint note parser (`ledger/src/checkpoint.rs`).
//!
//! The input is used two ways: as a whole signed note, which `parse_and_verify` must reject or
//! accept without panicking; and as the note *text*, signed here with the ledger key so the
//! parser's text rules are reached past the signature check. A text that parses must
//! re-serialise to itself when it holds only the three lines the ledger writes; a note the
//! ledger signs for a parsed checkpoint must parse back to the same checkpoint.
#![no_main]

use base64::Engine as _;
use ledger::checkpoint::note_key_id;
use ledger::SignedCheckpoint;
use libfuzzer_sys::fuzz_target;
use release_ledger_fuzz::ledger_key;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let key = ledger_key();
    let public = key.verifying_key();
    let _ = SignedCheckpoint::parse_and_verify(text, &public);

    // The input as the signed text, with a valid ledger signature line after it.
    let origin = text.split('\n').next().unwrap_or_default();
    let mut blob = note_key_id(origin, &public).to_vec();
    blob.extend_from_slice(&key.sign(text.as_bytes()));
    let note = format!("{text}\n\u{2014} {origin} {}\n", base64::engine::general_purpose::STANDARD.encode(blob));
    // Either format parses without panicking; a v2 note must also be accepted by the strict
    // reader, and a v1 note (chain-head line) refused by it.
    let Ok((parsed, format)) = SignedCheckpoint::parse_and_verify_any(&note, &public) else { return };
    assert_eq!(
        SignedCheckpoint::parse_and_verify(&note, &public).is_ok(),
        format == ledger::TreeFormat::V2Sha256,
        "the strict reader disagrees with the format"
    );
    let checkpoint = parsed.checkpoint;
    let canonical = checkpoint.note_text();
    // The ledger writes the three lines and nothing else; extension lines (which
    // tlog-checkpoint allows) make another text for the same checkpoint.
    if text.lines().count() == 3 {
        assert_eq!(canonical, text, "a checkpoint of three lines does not re-serialise to its text");
    }
    let resigned = checkpoint.sign(&key);
    let reparsed = SignedCheckpoint::parse_and_verify(&resigned.note, &public).expect("the ledger's own note parses");
    assert_eq!(reparsed.checkpoint, checkpoint);
});
