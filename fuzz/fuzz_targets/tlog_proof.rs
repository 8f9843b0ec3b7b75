//! The C2SP tlog-proof file parser and verifier (`ledger/src/tlog_proof.rs`).
//!
//! Any input must be refused or accepted without panicking, by `parse` and by `verify`
//! (under the fuzzing ledger key, so proofs whose note is signed reach the inclusion check).
//! A file that parses must re-serialise to a file that parses to the same proof.
#![no_main]

use ledger::tlog_proof::TlogProof;
use libfuzzer_sys::fuzz_target;
use release_ledger_fuzz::ledger_key;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(proof) = TlogProof::parse(text) else { return };
    let again = TlogProof::parse(&proof.to_text()).expect("a parsed proof re-serialises to a proof");
    assert_eq!(again, proof, "the re-serialised proof is another proof");
    let _ = proof.verify(&ledger_key().verifying_key());
});
