//! The board: a tenant's releases by status, newest first, with a count per status, as a web
//! console lists them.
//!
//! Types and pure encodings only; the rows live in the projection store ([`crate::store`]),
//! derived from the release rows and written in the same `WriteBatch`, so a listing costs the
//! rows of its page rather than a scan of every release. A [`BoardRow`] is what a list line
//! shows; its keys order it newest first (`!updated_at`, big-endian, then the release id), so
//! a page is one forward iteration from a seek. A page ends with an opaque cursor: the hex of
//! the index it belongs to and the key of the last row looked at, validated when it comes back.

use serde::{Deserialize, Serialize};

use crate::state::{ReleaseState, ReleaseStatus};

/// Rows per page when a query does not say (a `limit` of 0).
pub const DEFAULT_LIMIT: usize = 50;

/// Most rows per page; a larger `limit` is cut to it.
pub const MAX_LIMIT: usize = 500;

/// Most index rows one call looks at. A selective filter (a rare environment, a module, an id
/// prefix) over a large tenant stops here and returns a cursor to continue from, so no single
/// request scans without bound.
pub const SCAN_BOUND: u64 = 20_000;

/// Every status, in the order of their stored codes.
pub const STATUSES: [ReleaseStatus; 7] = [
    ReleaseStatus::Planned,
    ReleaseStatus::Approved,
    ReleaseStatus::Delayed,
    ReleaseStatus::Rejected,
    ReleaseStatus::Published,
    ReleaseStatus::Failed,
    ReleaseStatus::RolledBack,
];

/// The byte that stands for a status in the store's keys and pointer rows. Part of the stored
/// format: never renumbered (a new status takes a new byte).
pub(crate) fn status_code(status: ReleaseStatus) -> u8 {
    match status {
        ReleaseStatus::Planned => b'0',
        ReleaseStatus::Approved => b'1',
        ReleaseStatus::Delayed => b'2',
        ReleaseStatus::Rejected => b'3',
        ReleaseStatus::Published => b'4',
        ReleaseStatus::Failed => b'5',
        ReleaseStatus::RolledBack => b'6',
    }
}

/// The status a stored code stands for.
pub(crate) fn status_of_code(code: u8) -> Option<ReleaseStatus> {
    STATUSES.into_iter().find(|s| status_code(*s) == code)
}

/// One line of the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardRow {
    /// The release.
    pub release_id: String,
    /// Its status.
    pub status: ReleaseStatus,
    /// Its target environment, once declared.
    pub environment: Option<String>,
    /// The names of the modules it ships (its intent's), in the intent's order.
    pub modules: Vec<String>,
    /// `recordedAt` of its first entry, ns.
    pub created_at: u64,
    /// `recordedAt` of its last entry, ns: the board's order, newest first.
    pub updated_at: u64,
    /// When the ledger re-evaluates it (its last decision's, RFC 3339).
    pub retry_after: Option<String>,
    /// The risk score of its last decision.
    pub risk_score: Option<u32>,
}

impl BoardRow {
    /// The line of `release`.
    pub fn of(release: &ReleaseState) -> Self {
        let decision = release.decision.as_ref();
        Self {
            release_id: release.release_id.clone(),
            status: release.status,
            environment: release.environment().map(str::to_owned),
            modules: release
                .intent
                .as_ref()
                .map(|i| i.data.modules.iter().map(|m| m.name.clone()).collect())
                .unwrap_or_default(),
            created_at: release.created_at,
            updated_at: release.updated_at,
            retry_after: decision.and_then(|d| d.retry_after.clone()),
            risk_score: decision.map(|d| d.risk_score),
        }
    }
}

/// What to list. Every filter given must hold; the order is always newest first (by
/// `updatedAt`, then release id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardQuery {
    /// Only this status (iterates that status's index; without it, every release's).
    pub status: Option<ReleaseStatus>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only releases shipping a module of this name.
    pub module: Option<String>,
    /// Only releases updated at or after this time (ns): the listing stops there.
    pub updated_from: Option<u64>,
    /// Only releases updated before this time (ns): the listing starts there.
    pub updated_to: Option<u64>,
    /// Only release ids starting with this. Checked on the index keys, before a row is decoded,
    /// but still a filter over the newest-first index (not a seek by id), so a listing keeps
    /// one order and one kind of cursor; over a large tenant it may take a few calls.
    pub id_prefix: Option<String>,
    /// Continue after this cursor (a page's `next`).
    pub after: Option<String>,
    /// Rows per page: 0 means [`DEFAULT_LIMIT`]; more than [`MAX_LIMIT`] is cut to it.
    pub limit: usize,
}

impl Default for BoardQuery {
    fn default() -> Self {
        Self {
            status: None,
            environment: None,
            module: None,
            updated_from: None,
            updated_to: None,
            id_prefix: None,
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl BoardQuery {
    /// The rows a page holds at most.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            limit => limit.min(MAX_LIMIT),
        }
    }

    /// Whether the release id passes the `id_prefix` filter.
    pub(crate) fn id_matches(&self, release_id: &[u8]) -> bool {
        self.id_prefix.as_ref().is_none_or(|prefix| release_id.starts_with(prefix.as_bytes()))
    }

    /// Whether a row passes the filters the index does not apply by itself (environment,
    /// module).
    pub(crate) fn row_matches(&self, row: &BoardRow) -> bool {
        self.environment.as_ref().is_none_or(|e| row.environment.as_ref() == Some(e))
            && self.module.as_ref().is_none_or(|m| row.modules.iter().any(|name| name == m))
    }

    /// Whether a row passes every filter (the cursor aside): the definition the index's
    /// listing must agree with.
    pub fn matches(&self, row: &BoardRow) -> bool {
        self.status.is_none_or(|s| s == row.status)
            && self.updated_from.is_none_or(|from| row.updated_at >= from)
            && self.updated_to.is_none_or(|to| row.updated_at < to)
            && self.id_matches(row.release_id.as_bytes())
            && self.row_matches(row)
    }
}

/// A page of the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardPage {
    /// The rows, newest first.
    pub rows: Vec<BoardRow>,
    /// Where the next page starts, if the listing may go on: the page is full, or the call
    /// looked at [`SCAN_BOUND`] rows. The next page may be empty when no further row matches.
    pub next: Option<String>,
    /// Index rows this call looked at (matching or not).
    pub scanned: u64,
}

/// How many of a tenant's releases are at each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    /// `Planned`.
    pub planned: u64,
    /// `Approved`.
    pub approved: u64,
    /// `Delayed`.
    pub delayed: u64,
    /// `Rejected`.
    pub rejected: u64,
    /// `Published`.
    pub published: u64,
    /// `Failed`.
    pub failed: u64,
    /// `RolledBack`.
    pub rolled_back: u64,
    /// Every release.
    pub total: u64,
}

impl StatusCounts {
    /// The counts of `statuses`.
    pub fn of(statuses: impl IntoIterator<Item = ReleaseStatus>) -> Self {
        let mut counts = Self::default();
        for status in statuses {
            counts.add(status);
        }
        counts
    }

    fn slot(&mut self, status: ReleaseStatus) -> &mut u64 {
        match status {
            ReleaseStatus::Planned => &mut self.planned,
            ReleaseStatus::Approved => &mut self.approved,
            ReleaseStatus::Delayed => &mut self.delayed,
            ReleaseStatus::Rejected => &mut self.rejected,
            ReleaseStatus::Published => &mut self.published,
            ReleaseStatus::Failed => &mut self.failed,
            ReleaseStatus::RolledBack => &mut self.rolled_back,
        }
    }

    /// The releases at `status`.
    pub fn get(&self, status: ReleaseStatus) -> u64 {
        let mut counts = *self;
        *counts.slot(status)
    }

    /// One release more at `status`.
    pub fn add(&mut self, status: ReleaseStatus) {
        *self.slot(status) += 1;
        self.total += 1;
    }

    /// One release fewer at `status` (saturating: counts are derived, and a count that would
    /// go below zero is a bug, not a reason to fail a save).
    pub fn remove(&mut self, status: ReleaseStatus) {
        let slot = self.slot(status);
        debug_assert!(*slot > 0, "no release to remove at {status:?}");
        *slot = slot.saturating_sub(1);
        self.total = self.total.saturating_sub(1);
    }
}

/// Where a release sits in an index, after the index's prefix: `!updated_at` (big-endian, so
/// bytewise order is newest first), a zero byte, the release id.
pub(crate) fn position_key(updated_at: u64, release_id: &str) -> Vec<u8> {
    [(!updated_at).to_be_bytes().as_slice(), b"\0", release_id.as_bytes()].concat()
}

/// Bytes of a position before the release id.
pub(crate) const POSITION_HEAD: usize = 9;

/// Whether `position` has the shape of [`position_key`] (a stored key that does not is corrupt).
pub(crate) fn is_position(position: &[u8]) -> bool {
    position.len() > POSITION_HEAD && position[POSITION_HEAD - 1] == 0
}

/// The release id of a position of [`position_key`]'s shape.
pub(crate) fn position_id(position: &[u8]) -> &[u8] {
    position.get(POSITION_HEAD..).unwrap_or_default()
}

/// The first byte of a cursor: which index it walks.
fn index_tag(status: Option<ReleaseStatus>) -> u8 {
    status.map_or(b'u', status_code)
}

/// The cursor that continues a listing of `status`'s index after `position`.
pub(crate) fn encode_cursor(status: Option<ReleaseStatus>, position: &[u8]) -> String {
    hex::encode([&[index_tag(status)], position].concat())
}

/// The position a cursor continues after, refused (with why) when it is not one this module
/// wrote for a listing of `status`'s index.
pub(crate) fn decode_cursor(cursor: &str, status: Option<ReleaseStatus>) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(cursor).map_err(|e| format!("not a board cursor (hex): {e}"))?;
    let Some((&tag, position)) = bytes.split_first() else { return Err("empty cursor".into()) };
    if tag != index_tag(status) {
        let listed = |s: Option<ReleaseStatus>| s.map_or("every status", ReleaseStatus::as_str);
        let other = match tag {
            b'u' => Some(None),
            code => status_of_code(code).map(Some),
        };
        return Err(match other {
            Some(other) => format!("a cursor of the {} listing, not of {}", listed(other), listed(status)),
            None => format!("unknown listing {tag:#04x} in the cursor"),
        });
    }
    if !is_position(position) {
        return Err("cursor does not hold a board position".into());
    }
    if std::str::from_utf8(position_id(position)).is_err() {
        return Err("cursor's release id is not UTF-8".into());
    }
    Ok(position.to_vec())
}

/// The pointer row of a release: the index position it has (its status code, then its
/// `updated_at` big-endian), so a save can delete the rows of the position it leaves.
pub(crate) fn encode_pointer(status: ReleaseStatus, updated_at: u64) -> [u8; 9] {
    let mut row = [0; 9];
    row[0] = status_code(status);
    row[1..].copy_from_slice(&updated_at.to_be_bytes());
    row
}

/// A pointer row read back.
pub(crate) fn decode_pointer(row: &[u8]) -> Option<(ReleaseStatus, u64)> {
    let (&code, at) = row.split_first()?;
    Some((status_of_code(code)?, u64::from_be_bytes(at.try_into().ok()?)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_newest_first_then_by_id() {
        let mut keys = [
            position_key(5, "b"),
            position_key(7, "a"),
            position_key(5, "a"),
            position_key(0, "z"),
            position_key(u64::MAX, "q"),
        ];
        keys.sort();
        let ids: Vec<_> = keys.iter().map(|k| std::str::from_utf8(position_id(k)).unwrap()).collect();
        assert_eq!(ids, ["q", "a", "a", "b", "z"]);
        assert_eq!(keys[1], position_key(7, "a"));
        assert!(keys.iter().all(|k| is_position(k)));
    }

    #[test]
    fn codes_and_pointers_round_trip() {
        for status in STATUSES {
            assert_eq!(status_of_code(status_code(status)), Some(status));
            assert_eq!(decode_pointer(&encode_pointer(status, 42)), Some((status, 42)));
            assert_ne!(status_code(status), b'u');
        }
        assert_eq!(decode_pointer(b"9\0\0\0\0\0\0\0\0"), None);
        assert_eq!(decode_pointer(b"0\0\0"), None);
    }

    #[test]
    fn a_cursor_comes_back_as_its_position_or_a_precise_refusal() {
        let position = position_key(9, "r1");
        let cursor = encode_cursor(Some(ReleaseStatus::Delayed), &position);
        assert_eq!(decode_cursor(&cursor, Some(ReleaseStatus::Delayed)), Ok(position.clone()));
        let every = encode_cursor(None, &position);
        assert_eq!(decode_cursor(&every, None), Ok(position.clone()));
        let refused = |cursor: &str, status| decode_cursor(cursor, status).unwrap_err();
        assert_eq!(refused(&cursor, None), "a cursor of the Delayed listing, not of every status");
        assert_eq!(
            refused(&every, Some(ReleaseStatus::Planned)),
            "a cursor of the every status listing, not of Planned"
        );
        assert!(refused("zz", None).starts_with("not a board cursor (hex)"), "{}", refused("zz", None));
        assert_eq!(refused("", None), "empty cursor");
        assert_eq!(refused("ff00", None), "unknown listing 0xff in the cursor");
        assert_eq!(refused(&every[..12], None), "cursor does not hold a board position");
        // The separator after the time must be there.
        let mut bad = position.clone();
        bad[8] = 1;
        assert_eq!(refused(&encode_cursor(None, &bad), None), "cursor does not hold a board position");
        let mut latin = position_key(9, "r");
        latin.push(0xff);
        assert_eq!(refused(&encode_cursor(None, &latin), None), "cursor's release id is not UTF-8");
    }

    #[test]
    fn counts_add_and_remove_with_their_total() {
        let mut counts = StatusCounts::of([ReleaseStatus::Planned, ReleaseStatus::Planned, ReleaseStatus::RolledBack]);
        assert_eq!(
            (counts.get(ReleaseStatus::Planned), counts.get(ReleaseStatus::RolledBack), counts.total),
            (2, 1, 3)
        );
        counts.remove(ReleaseStatus::Planned);
        counts.add(ReleaseStatus::Approved);
        assert_eq!(
            counts,
            StatusCounts { planned: 1, approved: 1, rolled_back: 1, total: 3, ..StatusCounts::default() }
        );
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"planned":1,"approved":1,"delayed":0,"rejected":0,"published":0,"failed":0,"rolledBack":1,"total":3}"#
        );
    }

    #[test]
    fn the_page_size_defaults_and_is_bounded() {
        let with = |limit| BoardQuery { limit, ..BoardQuery::default() }.page_size();
        assert_eq!((with(0), with(1), with(DEFAULT_LIMIT), with(MAX_LIMIT + 1)), (DEFAULT_LIMIT, 1, 50, MAX_LIMIT));
        assert_eq!(BoardQuery::default().limit, DEFAULT_LIMIT);
    }
}
