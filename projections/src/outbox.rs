//! What a tenant's state owes the log: the decisions and retry requests the fold derived and
//! the log does not hold yet, by event id.
//!
//! The fold inserts an item when it derives it and removes it when it folds the ledger's
//! append of it back. Between the two, the worker appends it. A worker far behind its log (a
//! restart after a long stop, a bulk import) owes a decision for every release it passes,
//! and its own appends land at the end of the log, so the fold reaches them only when it has
//! caught up: the outbox grows with the distance. The bookkeeping here keeps every step in
//! proportion to what changed, never to the size of the outbox:
//! - a store save writes the ids inserted or removed since the last one
//!   ([`Outbox::take_changed`]);
//! - a flush looks at the items not yet appended ([`Outbox::due`]);
//! - once the ledger acknowledges an append, the body leaves memory ([`Outbox::appended`]):
//!   its BLAKE3 digest stands for it when the fold compares the logged bytes, and the store
//!   row still holds it in case it has to be appended again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Something the ledger must append: a decision, or its own retry request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    /// The release.
    pub release_id: String,
    /// The event body (to be signed by the ledger key). Empty in memory once the ledger has
    /// acknowledged the append: [`Outgoing::digest`] stands for it, and the store keeps it.
    /// Private so that it never disagrees with the digest.
    body: String,
    /// Not before this time, ns (retry requests).
    pub not_before_ns: Option<i64>,
    /// The seq of the triggering entry: owed events are appended in this order.
    pub trigger: u64,
    /// The triggering entry's `recordedAt`, ns (decision latency).
    pub trigger_recorded_at: u64,
    /// BLAKE3 of the body (not stored: computed from it), computed when first asked for and at
    /// the latest when the body leaves memory ([`Outbox::appended`]). An item folded back
    /// while its body is still in memory (the offline audit's every decision) is compared
    /// byte for byte and never hashed: the hash was a percent of `ledger-audit verify`
    /// (BENCHMARKS.md, issue 20, twenty-fourth session).
    #[serde(skip)]
    digest: std::sync::OnceLock<[u8; 32]>,
    /// The seq the ledger acknowledged for this process's append of it (not stored).
    #[serde(skip)]
    appended_at: Option<u64>,
}

impl Outgoing {
    /// An item owed, with the body the ledger is to sign.
    pub fn new(
        release_id: String,
        body: String,
        not_before_ns: Option<i64>,
        trigger: u64,
        trigger_recorded_at: u64,
    ) -> Self {
        Self {
            release_id,
            body,
            not_before_ns,
            trigger,
            trigger_recorded_at,
            digest: std::sync::OnceLock::new(),
            appended_at: None,
        }
    }

    /// Whether `payload` is exactly the body owed.
    pub fn matches(&self, payload: &[u8]) -> bool {
        if self.body.is_empty() {
            blake3::hash(payload).as_bytes() == self.digest()
        } else {
            self.body.as_bytes() == payload
        }
    }

    /// The event body to sign; empty once appended (see [`Outgoing::has_body`]).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// BLAKE3 of the body.
    pub fn digest(&self) -> &[u8; 32] {
        // The body is still here whenever the digest is unset: `Outbox::appended` sets it
        // before the body leaves.
        self.digest.get_or_init(|| *blake3::hash(self.body.as_bytes()).as_bytes())
    }

    /// Whether the body is still in memory (it leaves once appended).
    pub fn has_body(&self) -> bool {
        !self.body.is_empty()
    }

    /// Puts back a body read from the store; `false` (and nothing changed) if it is not the
    /// body owed.
    pub fn restore_body(&mut self, body: String) -> bool {
        if blake3::hash(body.as_bytes()).as_bytes() != self.digest() {
            return false;
        }
        self.body = body;
        true
    }
}

/// Two items are equal when they owe the same bytes, whether or not the body is in memory.
impl PartialEq for Outgoing {
    fn eq(&self, other: &Self) -> bool {
        self.release_id == other.release_id
            && self.digest() == other.digest()
            && self.not_before_ns == other.not_before_ns
            && self.trigger == other.trigger
            && self.trigger_recorded_at == other.trigger_recorded_at
    }
}

impl Eq for Outgoing {}

/// The appends a tenant's state owes, by event id (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    owed: BTreeMap<String, Outgoing>,
    /// Ids inserted or removed since the last [`Outbox::take_changed`].
    changed: BTreeSet<String>,
    /// Owed and not appended by this process yet.
    unsent: BTreeSet<String>,
    /// Appended and not folded back yet, by the seq the ledger acknowledged.
    in_flight: BTreeSet<(u64, String)>,
}

/// Two outboxes are equal when they owe the same items; the bookkeeping is not part of it.
impl PartialEq for Outbox {
    fn eq(&self, other: &Self) -> bool {
        self.owed == other.owed
    }
}

impl Eq for Outbox {}

impl Outbox {
    /// The item owed under `id`.
    pub fn get(&self, id: &str) -> Option<&Outgoing> {
        self.owed.get(id)
    }

    /// Whether `id` is owed.
    pub fn contains_key(&self, id: &str) -> bool {
        self.owed.contains_key(id)
    }

    /// Every item owed, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Outgoing)> {
        self.owed.iter()
    }

    /// The ids owed, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.owed.keys()
    }

    /// The items owed, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Outgoing> {
        self.owed.values()
    }

    /// How many items are owed.
    pub fn len(&self) -> usize {
        self.owed.len()
    }

    /// Whether nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// Owes `item` under `id` (replacing what was owed under it).
    pub fn insert(&mut self, id: String, item: Outgoing) {
        if let Some(old) = self.owed.insert(id.clone(), item) {
            if let Some(seq) = old.appended_at {
                self.in_flight.remove(&(seq, id.clone()));
            }
        }
        self.changed.insert(id.clone());
        self.unsent.insert(id);
    }

    /// Owes an item read back from the store: not a change to store again.
    pub fn insert_stored(&mut self, id: String, item: Outgoing) {
        self.owed.insert(id.clone(), item);
        self.unsent.insert(id);
    }

    /// Stops owing `id`; returns what was owed.
    pub fn remove(&mut self, id: &str) -> Option<Outgoing> {
        let old = self.owed.remove(id)?;
        self.changed.insert(id.to_owned());
        self.unsent.remove(id);
        if let Some(seq) = old.appended_at {
            self.in_flight.remove(&(seq, id.to_owned()));
        }
        Some(old)
    }

    /// The ids inserted or removed since the last call (what a store save writes).
    pub fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// Puts back ids taken by [`Outbox::take_changed`] whose save failed.
    pub fn restore_changed(&mut self, ids: BTreeSet<String>) {
        self.changed.extend(ids);
    }

    /// The items not appended yet and due at `now` (ns), in trigger order: every decision,
    /// and the retry requests whose time has come when `retries` is set.
    pub fn due(&self, now: i64, retries: bool) -> Vec<(&String, &Outgoing)> {
        let mut due: Vec<(&String, &Outgoing)> = self
            .unsent
            .iter()
            .filter_map(|id| self.owed.get_key_value(id))
            .filter(|(_, o)| o.not_before_ns.is_none_or(|t| retries && t <= now))
            .collect();
        due.sort_by(|(a_id, a), (b_id, b)| (a.trigger, a_id).cmp(&(b.trigger, b_id)));
        due
    }

    /// Whether an item not appended yet is due at `now` (ns), retries included.
    pub fn owes_due(&self, now: i64) -> bool {
        self.unsent.iter().filter_map(|id| self.owed.get(id)).any(|o| o.not_before_ns.is_none_or(|t| t <= now))
    }

    /// The earliest time after `now` at which an item not appended yet falls due.
    pub fn next_due_after(&self, now: i64) -> Option<i64> {
        self.unsent.iter().filter_map(|id| self.owed.get(id)?.not_before_ns).filter(|t| *t > now).min()
    }

    /// Records that the ledger acknowledged the append of `id` at `seq`: the body leaves
    /// memory, and the item is not offered again unless the fold passes `seq` without folding
    /// it back (see [`Outbox::folded_to`]).
    pub fn appended(&mut self, id: &str, seq: u64) {
        let Some(item) = self.owed.get_mut(id) else { return };
        if let Some(old) = item.appended_at.replace(seq) {
            self.in_flight.remove(&(old, id.to_owned()));
        }
        // The digest stands for the body from here on.
        item.digest();
        item.body = String::new();
        self.unsent.remove(id);
        self.in_flight.insert((seq, id.to_owned()));
    }

    /// The fold has reached `position`: an item appended below it and still owed was not
    /// folded back as owed (the log holds other bytes under its id), so it is offered again.
    /// Returns those ids; their bodies must be read back from the store before an append.
    pub fn folded_to(&mut self, position: u64) -> Vec<String> {
        let mut passed = Vec::new();
        while let Some((seq, _)) = self.in_flight.first() {
            if *seq >= position {
                break;
            }
            let Some((_, id)) = self.in_flight.pop_first() else { break };
            if let Some(item) = self.owed.get_mut(&id) {
                item.appended_at = None;
                self.unsent.insert(id.clone());
                passed.push(id);
            }
        }
        passed
    }

    /// How many items are appended and not folded back yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(trigger: u64, retry_at: Option<i64>) -> Outgoing {
        Outgoing::new("r1".into(), format!("{{\"trigger\":{trigger}}}"), retry_at, trigger, trigger * 10)
    }

    #[test]
    fn changes_and_flushes_cost_what_changed() {
        let mut outbox = Outbox::default();
        outbox.insert("decision:r1:5".into(), item(5, None));
        outbox.insert("decision:r1:3".into(), item(3, None));
        outbox.insert("retry:r1:3".into(), item(3, Some(100)));
        assert_eq!(outbox.take_changed().len(), 3);
        assert!(outbox.take_changed().is_empty());

        // Decisions in trigger order; the retry only when retries are allowed and it is due.
        let due =
            |o: &Outbox, now, retries| o.due(now, retries).into_iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
        assert_eq!(due(&outbox, 1_000, false), ["decision:r1:3", "decision:r1:5"]);
        assert_eq!(due(&outbox, 99, true), ["decision:r1:3", "decision:r1:5"]);
        assert_eq!(due(&outbox, 100, true), ["decision:r1:3", "retry:r1:3", "decision:r1:5"]);
        assert_eq!(outbox.next_due_after(0), Some(100));

        // Appended: not offered again, body out of memory, still equal and still matching.
        let before = outbox.clone();
        outbox.appended("decision:r1:3", 40);
        outbox.appended("decision:r1:5", 41);
        assert_eq!(due(&outbox, 0, false), Vec::<String>::new());
        assert!(!outbox.owes_due(0));
        assert!(outbox.owes_due(100));
        let sent = outbox.get("decision:r1:3").unwrap();
        assert!(!sent.has_body());
        assert!(sent.matches(b"{\"trigger\":3}"));
        assert!(!sent.matches(b"{\"trigger\":4}"));
        assert_eq!(outbox, before);
        assert!(outbox.take_changed().is_empty(), "an append is not a change to store");
        assert_eq!(outbox.in_flight(), 2);

        // Folded back at seq 40: gone, a change to store.
        assert!(outbox.remove("decision:r1:3").is_some());
        assert_eq!(outbox.take_changed().into_iter().collect::<Vec<_>>(), ["decision:r1:3"]);
        assert_eq!(outbox.in_flight(), 1);
        // Passed seq 41 without folding the other back: offered again, its body to restore.
        assert!(outbox.folded_to(41).is_empty());
        assert_eq!(outbox.folded_to(42), ["decision:r1:5"]);
        assert_eq!(due(&outbox, 0, false), ["decision:r1:5"]);
        let mut again = outbox.get("decision:r1:5").unwrap().clone();
        assert!(!again.restore_body("{\"trigger\":6}".into()));
        assert!(again.restore_body("{\"trigger\":5}".into()));
        assert_eq!(again.body(), "{\"trigger\":5}");
        assert_eq!(outbox.in_flight(), 0);
    }

    #[test]
    fn a_stored_item_decodes_with_its_digest() {
        let owed = item(7, Some(5));
        use crate::store::{decode_row, encode_row};
        let decoded: Outgoing = decode_row(&encode_row(&owed).unwrap()).unwrap();
        assert_eq!(decoded, owed);
        assert_eq!(decoded.digest(), blake3::hash(owed.body.as_bytes()).as_bytes());
        let mut stored = Outbox::default();
        stored.insert_stored("retry:r1:7".into(), decoded);
        assert!(stored.take_changed().is_empty(), "read back, not changed");
        assert_eq!(stored.due(5, true).len(), 1);
    }
}
