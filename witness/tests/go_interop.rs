//! Interop: Go's `golang.org/x/mod/sumdb/note` (Debian's package, built offline by
//! `testkit::go_tlogcheck`) opens a checkpoint cosigned by our witnesses, with a
//! `note.Verifier` for cosignature/v1 written from the spec (tests/interop/go/tlogcheck/cosig.go)
//! and the log's own Ed25519 vkey. Fails, never skips, without Go.

#![allow(clippy::unwrap_used)]

use ledger::KeyPair;
use witness::cosig::sign_note;
use witness::note::ED25519_NOTE_TYPE;
use witness::{Cosigner, SignedNote, Vkey};

const ORIGIN: &str = "release-ledger/acme";

fn go_cosig(args: &[String], note: &str) -> (bool, String, String) {
    let args: Vec<&str> = std::iter::once("cosig").chain(args.iter().map(String::as_str)).collect();
    let output = testkit::run_go_tlogcheck(&args, note);
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn go_note_open_verifies_witness_cosignatures_v1() {
    let log = KeyPair::from_seed(&[1; 32]);
    let log_vkey = Vkey::new(ORIGIN, ED25519_NOTE_TYPE, log.verifying_key()).unwrap();
    let cosigners: Vec<Cosigner> = (0..2u8)
        .map(|i| Cosigner::new(&format!("witness{i}.example/w"), KeyPair::from_seed(&[20 + i; 32])).unwrap())
        .collect();
    // With an extension line: the cosignature covers the whole note text.
    let text = format!("{ORIGIN}\n42\n{}\nextension line\n", ledger::b64::encode([7u8; 32]));
    let mut note = SignedNote { signatures: vec![sign_note(ORIGIN, &log, &text)], text: text.clone() };
    for (i, cosigner) in cosigners.iter().enumerate() {
        note.signatures.push(cosigner.cosign(&text, 1_700_000_000 + i as u64));
    }
    let stranger = Cosigner::new("stranger.example/w", KeyPair::from_seed(&[30; 32])).unwrap();
    note.signatures.push(stranger.cosign(&text, 1_700_000_000));
    let note = note.to_note();
    let args: Vec<String> =
        std::iter::once(log_vkey.to_string()).chain(cosigners.iter().map(|c| c.vkey().to_string())).collect();

    let (ok, stdout, stderr) = go_cosig(&args, &note);
    assert!(ok, "{stderr}");
    for signer in [&log_vkey, cosigners[0].vkey(), cosigners[1].vkey()] {
        let line = format!("verified {} {}", signer.name, hex::encode(signer.key_id()));
        assert!(stdout.contains(&line), "{line} missing from\n{stdout}");
    }
    assert!(stdout.contains("unknown stranger.example/w"), "{stdout}");

    // A cosignature over another timestamp (the 8 bytes changed, the signature not) fails in Go.
    let mut tampered = SignedNote::parse(&note).unwrap();
    tampered.signatures[1].signature[7] ^= 1;
    let (ok, _, stderr) = go_cosig(&args, &tampered.to_note());
    assert!(!ok, "Go accepted a cosignature with a changed timestamp");
    assert!(stderr.contains("invalid signature"), "{stderr}");
    // A vkey whose key ID does not match its key is refused by our Go verifier too.
    let mut bad_vkey = args.clone();
    let wrong =
        Vkey::new("other.example/w", witness::note::COSIGNATURE_V1_TYPE, cosigners[1].vkey().public_key).unwrap();
    bad_vkey[2] = format!(
        "{}+{}+{}",
        cosigners[1].vkey().name,
        hex::encode(wrong.key_id()),
        args[2].splitn(3, '+').nth(2).unwrap()
    );
    let (ok, _, stderr) = go_cosig(&bad_vkey, &note);
    assert!(!ok && stderr.contains("key ID does not match"), "{stderr}");
}
