//! The hand-over of just-committed entries to the projection worker
//! (`Ledger::hold_fresh_entries`): the very entries the log holds, taken once, never one a
//! redaction has erased.

use ledger::{AppendEvent, Entry, EntryBody, Envelope};
use testkit::{append_ok, body, temp_ledger};

const TENANT: &str = "acme";

fn logged(t: &testkit::TestLedger, from: u64, to: u64) -> Vec<Entry> {
    t.ledger.entries(TENANT, from, to).unwrap().collect::<Result<_, _>>().unwrap()
}

fn size(t: &testkit::TestLedger) -> u64 {
    t.ledger.head(TENANT).unwrap().size
}

#[test]
fn held_entries_are_the_logged_ones_and_are_taken_once() {
    let t = temp_ledger();
    t.ledger.hold_fresh_entries(1 << 20);
    let qa = t.agent(TENANT, "qa", &[], &[]);
    append_ok(&t.ledger, qa.event("s", 64));
    let batch: Vec<_> = (0..5).map(|_| qa.event("s", 300)).collect();
    t.ledger.append_batch(batch).unwrap();
    let end = size(&t);
    assert_eq!(end, 7, "the key registration, one event, a batch of five");

    // A run that is not all held (beyond the log's end) gives nothing, and keeps what is held.
    assert!(t.ledger.take_fresh_entries(TENANT, 0, end + 1).unwrap().is_none());
    let taken = t.ledger.take_fresh_entries(TENANT, 0, 3).unwrap().expect("0..3 is held");
    assert_eq!(taken, logged(&t, 0, 3));
    let taken = t.ledger.take_fresh_entries(TENANT, 3, end).unwrap().expect("3..7 is held");
    assert_eq!(taken, logged(&t, 3, end));
    // Taken once: the follower reads the log from now on.
    assert!(t.ledger.take_fresh_entries(TENANT, 3, end).unwrap().is_none());
    assert!(t.ledger.take_fresh_entries(TENANT, 0, 1).unwrap().is_none());
    assert!(t.ledger.take_fresh_entries("nobody", 0, 1).is_err(), "an unknown tenant is an error");
}

#[test]
fn nothing_is_held_unless_asked_and_a_stop_forgets() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    append_ok(&t.ledger, qa.event("s", 64));
    assert!(t.ledger.take_fresh_entries(TENANT, 0, 2).unwrap().is_none());
    t.ledger.hold_fresh_entries(1 << 20);
    append_ok(&t.ledger, qa.event("s", 64));
    t.ledger.hold_fresh_entries(0);
    assert!(t.ledger.take_fresh_entries(TENANT, 2, 3).unwrap().is_none());
}

#[test]
fn the_bound_keeps_the_newest_entries() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    // Room for two of these entries (a 4 KiB payload and under 1 KiB of envelope), not three.
    t.ledger.hold_fresh_entries(10 * 1024);
    for _ in 0..4 {
        append_ok(&t.ledger, qa.event("s", 4096));
    }
    let end = size(&t);
    assert!(t.ledger.take_fresh_entries(TENANT, end - 3, end).unwrap().is_none(), "the oldest were evicted");
    let taken = t.ledger.take_fresh_entries(TENANT, end - 2, end).unwrap().expect("the newest two are held");
    assert_eq!(taken, logged(&t, end - 2, end));
}

#[test]
fn a_redaction_drops_what_is_held_for_its_tenant() {
    let t = temp_ledger();
    t.ledger.hold_fresh_entries(1 << 20);
    let qa = t.agent(TENANT, "qa", &[], &[]);
    for _ in 0..3 {
        append_ok(&t.ledger, qa.event("s", 64));
    }
    let payload =
        body(TENANT, "admin", "EntryRedacted", "r-2", "admin", serde_json::json!({"seq": 2, "reason": "erasure"}));
    let receipt = t.ledger.append(AppendEvent::new(Envelope::sign(payload, &t.admin))).unwrap();
    // Neither the erased entry's old bytes nor anything else of the tenant is handed over...
    for from in 0..=receipt.seq {
        assert!(t.ledger.take_fresh_entries(TENANT, from, receipt.seq + 1).unwrap().is_none(), "from {from}");
    }
    assert_eq!(logged(&t, 2, 3)[0].body, EntryBody::Redacted { by_seq: receipt.seq });
    // ...and what commits after the redaction is held again.
    append_ok(&t.ledger, qa.event("s", 64));
    let end = size(&t);
    let taken = t.ledger.take_fresh_entries(TENANT, end - 1, end).unwrap().expect("held again");
    assert_eq!(taken, logged(&t, end - 1, end));
}
