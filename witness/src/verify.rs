//! Client-side verification of a cosigned checkpoint against a policy: the log's signature
//! must verify, then the valid cosignatures of distinct policy witnesses are counted against
//! the quorum. Signature lines of keys the policy does not list are ignored (signed-note:
//! "Verifiers MUST ignore signatures from unknown keys"); a line whose name and key ID match a
//! policy witness but whose signature does not verify is reported, never counted.

use std::collections::BTreeSet;

use crate::cosig::{verify_cosignature, verify_note_signature, SignatureError};
use crate::note::{CheckpointBody, FormatError, SignedNote, Vkey};
use crate::policy::Policy;

/// Why a note is not a checkpoint of a trusted log (before any cosignature is looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointRejected {
    /// Not a signed note or not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(#[from] FormatError),
    /// No trusted log key is named for the checkpoint's origin.
    #[error("no trusted log key for origin {0}")]
    UnknownOrigin(String),
    /// A signature line of a trusted log key does not verify (signed-note: "clients SHOULD
    /// reject the whole note").
    #[error("log signature: {0}")]
    BadLogSignature(SignatureError),
    /// No signature line of a trusted log key.
    #[error("the checkpoint carries no signature of the log key {0}")]
    NoLogSignature(String),
}

/// A policy witness's valid cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's policy name.
    pub witness: String,
    /// The cosignature's timestamp, POSIX seconds.
    pub timestamp: u64,
}

/// A policy witness's signature line that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCosignature {
    /// The witness's policy name.
    pub witness: String,
    /// Why.
    pub reason: SignatureError,
}

/// What a cosigned checkpoint proves under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReport {
    /// The checkpoint's origin, size and root.
    pub checkpoint: CheckpointBody,
    /// The note text (the signed bytes).
    pub text: String,
    /// The policy witnesses with a valid cosignature, in policy order, each once.
    pub cosigned: Vec<Cosigned>,
    /// The policy witnesses' signature lines that do not verify.
    pub failed: Vec<FailedCosignature>,
    /// The policy witnesses without any signature line on the note.
    pub missing: Vec<String>,
    /// Whether the valid cosignatures meet the policy's quorum.
    pub quorum_met: bool,
    /// The quorum, described (for messages).
    pub quorum: String,
}

/// Checks the log signature of `note` with the log key named for its origin among `logs`.
pub fn verify_log_signature(note: &SignedNote, logs: &[Vkey]) -> Result<CheckpointBody, CheckpointRejected> {
    let checkpoint = CheckpointBody::parse(&note.text)?;
    let trusted: Vec<&Vkey> = logs.iter().filter(|vkey| vkey.name == checkpoint.origin).collect();
    if trusted.is_empty() {
        return Err(CheckpointRejected::UnknownOrigin(checkpoint.origin));
    }
    let mut verified = false;
    for line in &note.signatures {
        for vkey in trusted.iter().filter(|vkey| vkey.matches(line)) {
            verify_note_signature(vkey, &note.text, line).map_err(CheckpointRejected::BadLogSignature)?;
            verified = true;
        }
    }
    if !verified {
        return Err(CheckpointRejected::NoLogSignature(trusted[0].to_string()));
    }
    Ok(checkpoint)
}

/// Verifies `note`: the log signature against the policy's logs (or, when `logs` is given,
/// those keys instead: a client that knows its log from other context, as tlog-policy allows),
/// then every policy witness's cosignature, and evaluates the quorum.
pub fn verify_cosigned(note: &str, policy: &Policy, logs: Option<&[Vkey]>) -> Result<QuorumReport, CheckpointRejected> {
    let parsed = SignedNote::parse(note)?;
    let policy_logs: Vec<Vkey> = policy.logs.iter().map(|log| log.vkey.clone()).collect();
    let checkpoint = verify_log_signature(&parsed, logs.unwrap_or(&policy_logs))?;
    let (mut cosigned, mut failed, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    let mut valid = BTreeSet::new();
    for (index, witness) in policy.witnesses.iter().enumerate() {
        let lines: Vec<_> = parsed.signatures.iter().filter(|line| witness.vkey.matches(line)).collect();
        if lines.is_empty() {
            missing.push(witness.name.clone());
        }
        for line in lines {
            match verify_cosignature(&witness.vkey, &parsed.text, line) {
                Ok(timestamp) if valid.insert(index) => {
                    cosigned.push(Cosigned { witness: witness.name.clone(), timestamp });
                }
                Ok(_) => {} // A second valid line of the same witness counts once.
                Err(reason) => failed.push(FailedCosignature { witness: witness.name.clone(), reason }),
            }
        }
    }
    Ok(QuorumReport {
        checkpoint,
        text: parsed.text,
        cosigned,
        failed,
        missing,
        quorum_met: policy.quorum_met(&valid),
        quorum: policy.describe_quorum(),
    })
}

impl QuorumReport {
    /// One line for humans: which witnesses cosigned, which failed, whether the quorum holds.
    pub fn summary(&self) -> String {
        let names = |list: &[String]| if list.is_empty() { "none".to_owned() } else { list.join(", ") };
        let cosigned: Vec<String> =
            self.cosigned.iter().map(|c| format!("{} (time {})", c.witness, c.timestamp)).collect();
        let failed: Vec<String> = self.failed.iter().map(|f| format!("{}: {}", f.witness, f.reason)).collect();
        format!(
            "quorum {} {}: cosigned by {}; failed: {}; missing: {}",
            self.quorum,
            if self.quorum_met { "met" } else { "NOT met" },
            names(&cosigned),
            names(&failed),
            names(&self.missing)
        )
    }
}

#[cfg(test)]
mod tests {
    use ledger::KeyPair;

    use super::*;
    use crate::cosig::{sign_note, Cosigner};
    use crate::note::{COSIGNATURE_V1_TYPE, ED25519_NOTE_TYPE};

    const ORIGIN: &str = "example.com/log";

    fn setup() -> (KeyPair, Vec<Cosigner>, Policy) {
        let log = KeyPair::from_seed(&[1; 32]);
        let cosigners: Vec<Cosigner> = (0..3u8)
            .map(|i| Cosigner::new(&format!("w{i}.example"), KeyPair::from_seed(&[10 + i; 32])).unwrap())
            .collect();
        let mut text = format!("log {}\n", Vkey::new(ORIGIN, ED25519_NOTE_TYPE, log.verifying_key()).unwrap());
        for (i, c) in cosigners.iter().enumerate() {
            text.push_str(&format!("witness W{i} {} http://127.0.0.1:{}\n", c.vkey(), 9000 + i));
        }
        text.push_str("group G 2 W0 W1 W2\nquorum G\n");
        (log, cosigners, Policy::parse(text.as_bytes()).unwrap())
    }

    fn note(log: &KeyPair, cosigners: &[&Cosigner]) -> String {
        let text = format!("{ORIGIN}\n5\n{}\n", ledger::b64::encode([3u8; 32]));
        let mut note = SignedNote { text: text.clone(), signatures: vec![sign_note(ORIGIN, log, &text)] };
        for c in cosigners {
            note.signatures.push(c.cosign(&text, 1_700_000_000));
        }
        note.to_note()
    }

    #[test]
    fn two_of_three_meet_the_quorum_and_one_does_not() {
        let (log, c, policy) = setup();
        let report = verify_cosigned(&note(&log, &[&c[0], &c[2]]), &policy, None).unwrap();
        assert!(report.quorum_met, "{}", report.summary());
        assert_eq!(report.cosigned.iter().map(|c| c.witness.as_str()).collect::<Vec<_>>(), ["W0", "W2"]);
        assert_eq!(report.missing, ["W1"]);
        let report = verify_cosigned(&note(&log, &[&c[1]]), &policy, None).unwrap();
        assert!(!report.quorum_met);
        assert!(report.summary().contains("quorum group G (2 of 3) NOT met: cosigned by W1"), "{}", report.summary());
        // The same witness twice is one witness.
        let report = verify_cosigned(&note(&log, &[&c[1], &c[1]]), &policy, None).unwrap();
        assert!(!report.quorum_met);
    }

    #[test]
    fn a_forged_cosignature_is_reported_and_not_counted() {
        let (log, c, policy) = setup();
        let good = note(&log, &[&c[0], &c[1]]);
        let mut parsed = SignedNote::parse(&good).unwrap();
        parsed.signatures[2].signature[20] ^= 1;
        let report = verify_cosigned(&parsed.to_note(), &policy, None).unwrap();
        assert!(!report.quorum_met);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].witness, "W1");
        assert_eq!(report.failed[0].reason, SignatureError::Invalid("w1.example".into()));
        // An unknown cosigner's line (another key under a policy witness's name) is ignored.
        let stranger = Cosigner::new("w2.example", KeyPair::from_seed(&[99; 32])).unwrap();
        let report = verify_cosigned(&note(&log, &[&c[0], &stranger]), &policy, None).unwrap();
        assert!(!report.quorum_met);
        assert!(report.failed.is_empty());
        assert_eq!(report.missing, ["W1", "W2"]);
    }

    #[test]
    fn the_log_signature_comes_first() {
        let (log, c, policy) = setup();
        let other_log = KeyPair::from_seed(&[2; 32]);
        let error = verify_cosigned(&note(&other_log, &[&c[0], &c[1]]), &policy, None).unwrap_err();
        assert!(matches!(error, CheckpointRejected::NoLogSignature(_)), "{error}");
        let forged = note(&log, &[&c[0]]).replacen("\n5\n", "\n6\n", 1);
        let error = verify_cosigned(&forged, &policy, None).unwrap_err();
        assert!(matches!(error, CheckpointRejected::BadLogSignature(_)), "{error}");
        let elsewhere = Vkey::new("other.example/log", ED25519_NOTE_TYPE, log.verifying_key()).unwrap();
        let error = verify_cosigned(&note(&log, &[&c[0]]), &policy, Some(&[elsewhere])).unwrap_err();
        assert_eq!(error, CheckpointRejected::UnknownOrigin(ORIGIN.into()));
        // A witness key given as the log key is of the wrong type.
        let as_cosig = Vkey::new(ORIGIN, COSIGNATURE_V1_TYPE, log.verifying_key()).unwrap();
        assert!(verify_cosigned(&note(&log, &[]), &policy, Some(&[as_cosig])).is_err());
    }
}
