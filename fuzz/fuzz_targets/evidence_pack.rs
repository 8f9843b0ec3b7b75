//! The evidence-pack verifier (`tools/src/evidence/`), `ledger-audit verify-evidence`: a pack
//! comes from whoever hands it to an auditor, so any set of files must be verified or refused
//! without panicking — the manifest, the key, the checkpoint, every proof, envelope and
//! attestation, the re-derivation of the decisions and the rendering of the reports.
//!
//! The input is a list of files, each a name and its bytes ([`release_ledger_fuzz::pack_files`]);
//! the seeds are real packs (`tools/examples/fuzz_seeds.rs`). A pack that verifies is checked
//! with its own key: the verifier's last step rebuilt every file from what it verified, so the
//! files are exactly the pack's, and they must verify again to the same outcome.
#![no_main]

use ledger_tools::evidence;
use libfuzzer_sys::fuzz_target;
use release_ledger_fuzz::{pack_files, Input};

fuzz_target!(|data: &[u8]| {
    let files = pack_files(&mut Input(data));
    if let Ok(verified) = evidence::verify(&files, None) {
        assert_eq!(verified.files, files.len(), "a verified pack counts its files");
        let again = evidence::verify(&files, None).expect("a verified pack verifies again");
        assert_eq!(again.decisions, verified.decisions, "verification is deterministic");
    }
});
