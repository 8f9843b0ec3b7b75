//! C2SP `tlog-tiles`: a tenant's Merkle tree as static tiles and entry bundles.
//!
//! The spec (`c2sp.org/tlog-tiles`) serves the tree as "tiles": the hashes of 256 consecutive
//! nodes at tree level `8 * L` (tile height 8, width 256), and the log's entries as "entry
//! bundles" of 256 consecutive entries. What it requires, and where this module does it:
//!
//! - "`<N>` ... MUST be a non-negative integer encoded into zero-padded 3-digit path elements.
//!   All but the last path element MUST begin with an `x`" ([`TileId::path`], [`TileId::parse`]);
//! - "`<L>` ... MUST be a decimal ASCII integer between 0 and 63, with no additional leading
//!   zeroes"; "`<W>` is ... between 1 and 255, with no additional leading zeroes" (the same);
//! - "Full tiles MUST be exactly 256 hashes wide"; "the *n*-th tile at level *l* ... is ...
//!   `MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])`": the stored perfect-subtree
//!   node `(8 * l, n * 256 + i)`, read, never recomputed ([`Ledger::tile_hashes`]);
//! - "A partial tile ... MUST NOT be hashed into a tile at the level above", "Empty tiles MUST
//!   NOT be served": a tile exists only when every node it holds lies inside the tree
//!   ([`TileError::BeyondTree`]); [`tiles_of_size`] lists exactly the tiles of a size;
//! - "Entry bundles are sequences of big-endian uint16 length-prefixed log entries. Each entry
//!   in a bundle hashes to the corresponding entry in the corresponding level 0 Merkle Tree
//!   tile": the log's leaf data is the entry's 32-byte entry hash (the level-0 tile holds
//!   `HASH(0x00 || entryHash)`), so a bundle holds entry hashes, `0x0020 || entryHash` each
//!   ([`encode_bundle`]).
//!
//! Every tile's bytes are a function of the leaves it covers, so a tile never changes once it
//! exists: a partial tile `.p/W` is the first `W` hashes of the full tile it grows into.

use super::*;
use crate::merkle::TreeHasher;

/// The tree hash the tiles are made of: the store's. The tiles serve stored nodes and never
/// hash them again; code that builds tiles from entries ([`TileBuilder`]) and the tests that
/// check tiles against an independent computation use this one name, so a change of the
/// store's tree hash is one line here.
pub type TileHasher = crate::merkle::LogHasher;

/// Tile height: a tile spans 8 tree levels.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile, entries in a full bundle.
pub const TILE_WIDTH: u16 = 256;
/// Bytes of one hash in a tile.
pub const HASH_BYTES: usize = 32;
/// Highest tile level a path may name (`tlog-tiles`: 0 to 63). Levels from 8 up hold nothing
/// in a tree of at most `2^64 - 1` entries; they are well-formed and beyond every tree.
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile holds: hashes at a level, or entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// A hash tile at tile level `L` (tree level `8 * L`).
    Hashes(u8),
    /// An entry bundle (`tile/entries/...`).
    Entries,
}

/// One tile or entry bundle: kind, index `N` within its level, width `W` (1 to 256; 256 is a
/// full tile, anything less a partial one, `.p/W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Hashes at a level, or entries.
    pub kind: TileKind,
    /// `N`.
    pub index: u64,
    /// `W`: 256 for a full tile.
    pub width: u16,
}

/// A tile path that is not one `tlog-tiles` defines, or a tile that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad tile path {path:?}: {reason}")]
pub struct TilePathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a tile cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// No tenant by that name.
    #[error("unknown tenant {:?}", clip(.0))]
    UnknownTenant(String),
    /// The tree size asked for is larger than the log.
    #[error("tree size {tree_size} is beyond the log end ({size} entries)")]
    BeyondLog {
        /// The size asked for.
        tree_size: u64,
        /// The log's size.
        size: u64,
    },
    /// The tile holds nodes (or entries) outside the tree of `tree_size`: it does not exist
    /// (yet) at that size.
    #[error("{tile} is not inside the tree of {tree_size} entries (it needs {needs} entries)")]
    BeyondTree {
        /// The tile's path.
        tile: String,
        /// The tree size.
        tree_size: u64,
        /// The tree size from which it exists (saturated at `u64::MAX`).
        needs: u64,
    },
    /// The store failed or holds damaged data.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl TileId {
    /// A tile, checked: width 1 to 256, level at most 63.
    pub fn new(kind: TileKind, index: u64, width: u16) -> Result<Self, String> {
        if width == 0 || width > TILE_WIDTH {
            return Err(format!("width {width} is not between 1 and {TILE_WIDTH}"));
        }
        if let TileKind::Hashes(level) = kind {
            if level > MAX_TILE_LEVEL {
                return Err(format!("level {level} is above {MAX_TILE_LEVEL}"));
            }
        }
        Ok(Self { kind, index, width })
    }

    /// Whether the tile is full (256 wide).
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The number of entries the tree needs for this tile to exist: the end of the last node
    /// (or entry) it holds; `None` beyond `u64`.
    pub fn needs(&self) -> Option<u64> {
        let end = self.index.checked_mul(u64::from(TILE_WIDTH))?.checked_add(u64::from(self.width))?;
        match self.kind {
            TileKind::Entries => Some(end),
            TileKind::Hashes(level) => {
                let shift = u32::from(level) * TILE_HEIGHT;
                end.checked_mul(1u64.checked_shl(shift)?)
            }
        }
    }

    /// The path below a log's prefix: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes(level) => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let mut path = format!("tile/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a path below a log's prefix (what [`TileId::path`] writes), strictly: no leading
    /// zeroes in `L` or `W`, 3-digit groups in `N` with every group but the last `x`-prefixed
    /// and no leading all-zero groups (one spelling per index), no trailing slash.
    pub fn parse(path: &str) -> Result<Self, TilePathError> {
        let bad = |reason: &str| TilePathError { path: path.to_owned(), reason: reason.to_owned() };
        let rest = path.strip_prefix("tile/").ok_or_else(|| bad("does not start with tile/"))?;
        let (level, rest) = rest.split_once('/').ok_or_else(|| bad("no tile index"))?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let level = parse_decimal(level).ok_or_else(|| bad("L is not a decimal without leading zeroes"))?;
            let level = u8::try_from(level)
                .ok()
                .filter(|l| *l <= MAX_TILE_LEVEL)
                .ok_or_else(|| bad("L is not between 0 and 63"))?;
            TileKind::Hashes(level)
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = parse_decimal(width).ok_or_else(|| bad("W is not a decimal without leading zeroes"))?;
                let width = u16::try_from(width)
                    .ok()
                    .filter(|w| (1..TILE_WIDTH).contains(w))
                    .ok_or_else(|| bad("W is not between 1 and 255"))?;
                (index, width)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = decode_index(index).map_err(|reason| bad(&reason))?;
        Self::new(kind, index, width).map_err(|reason| bad(&reason))
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `N` as `tlog-tiles` spells it: 3-digit groups, all but the last prefixed with `x`
/// (1234067 → `x001/x234/067`, 5 → `005`).
pub fn encode_index(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn decode_index(text: &str) -> Result<u64, String> {
    let groups: Vec<&str> = text.split('/').collect();
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group.strip_prefix('x').ok_or_else(|| format!("N element {group:?} is not the last and lacks its x"))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("N element {group:?} is not 3 digits"));
        }
        if i == 0 && !last && digits == "000" {
            return Err("N has a leading all-zero element".into());
        }
        let value: u64 = digits.parse().map_err(|_| format!("N element {group:?} is not 3 digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|i| i.checked_add(value))
            .ok_or_else(|| "N does not fit 64 bits".to_owned())?;
    }
    Ok(index)
}

/// A decimal without sign or leading zeroes ("0" itself is fine).
fn parse_decimal(text: &str) -> Option<u64> {
    let ok = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if ok {
        text.parse().ok()
    } else {
        None
    }
}

/// Every tile and entry bundle of the tree of `size` entries, in the order of the spec's
/// definition (entries, then level 0 upwards; full tiles, then the partial one of each level):
/// the full tiles, and the partial tiles of exactly this size (`floor(size / 256**l) mod 256`
/// wide, none where that is 0).
pub fn tiles_of_size(size: u64) -> Vec<TileId> {
    let mut tiles = Vec::new();
    let mut push_level = |kind: TileKind, nodes: u64| {
        let width = u64::from(TILE_WIDTH);
        tiles.extend((0..nodes / width).map(|index| TileId { kind, index, width: TILE_WIDTH }));
        if nodes % width != 0 {
            tiles.push(TileId { kind, index: nodes / width, width: (nodes % width) as u16 });
        }
    };
    push_level(TileKind::Entries, size);
    for level in 0..=MAX_TILE_LEVEL {
        let nodes = size.checked_shr(u32::from(level) * TILE_HEIGHT).unwrap_or(0);
        if nodes == 0 {
            break;
        }
        push_level(TileKind::Hashes(level), nodes);
    }
    tiles
}

/// A hash tile's bytes: the hashes, concatenated.
pub fn encode_tile(hashes: &[Hash32]) -> Vec<u8> {
    hashes.concat()
}

/// An entry bundle's bytes: each entry (an entry hash) as big-endian `u16` length ‖ bytes.
pub fn encode_bundle(entry_hashes: &[Hash32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry_hashes.len() * (2 + HASH_BYTES));
    for hash in entry_hashes {
        out.extend_from_slice(&(HASH_BYTES as u16).to_be_bytes());
        out.extend_from_slice(hash);
    }
    out
}

impl Ledger {
    /// The hashes of hash tile `tile` (or the entry hashes of entry bundle `tile`) of
    /// `tenant`'s tree of `tree_size` entries: stored nodes at tree level `8 * L`, indices
    /// `N * 256 .. N * 256 + W`, or the entry hashes of seqs `N * 256 .. N * 256 + W`. Only
    /// what lies wholly inside the tree of `tree_size` exists: anything else is
    /// [`TileError::BeyondTree`], and a `tree_size` beyond the log is [`TileError::BeyondLog`].
    pub fn tile_hashes(&self, tenant: &str, tile: TileId, tree_size: u64) -> Result<Vec<Hash32>, TileError> {
        let (tid, size) = {
            let committed = self.inner.committed.read();
            let state = committed.tenants.get(tenant).ok_or_else(|| TileError::UnknownTenant(tenant.to_owned()))?;
            (state.tid, state.head.size)
        };
        if tree_size > size {
            return Err(TileError::BeyondLog { tree_size, size });
        }
        let needs = tile.needs();
        if needs.is_none_or(|needs| needs > tree_size) {
            return Err(TileError::BeyondTree { tile: tile.path(), tree_size, needs: needs.unwrap_or(u64::MAX) });
        }
        let first = tile.index * u64::from(TILE_WIDTH);
        let end = first + u64::from(tile.width);
        match tile.kind {
            TileKind::Hashes(level) => {
                let source = TreeSource { inner: &self.inner, tid };
                let level = u32::from(level) * TILE_HEIGHT;
                (first..end).map(|index| source.node(level, index).map_err(TileError::Read)).collect()
            }
            TileKind::Entries => self
                .entries(tenant, first, end)?
                .map(|entry| entry.map(|e| e.entry_hash).map_err(TileError::Read))
                .collect(),
        }
    }

    /// The bytes of `tile` as `tlog-tiles` serves them ([`encode_tile`] or [`encode_bundle`]
    /// of [`Ledger::tile_hashes`]).
    pub fn tile_data(&self, tenant: &str, tile: TileId, tree_size: u64) -> Result<Vec<u8>, TileError> {
        let hashes = self.tile_hashes(tenant, tile, tree_size)?;
        Ok(match tile.kind {
            TileKind::Hashes(_) => encode_tile(&hashes),
            TileKind::Entries => encode_bundle(&hashes),
        })
    }
}

/// Builds every tile of a log from its entry hashes, in order, with memory for one tile per
/// level: what a writer of a tile directory uses when it has the entries but not the store.
/// Hashes with [`TileHasher`], the store's tree hash, so its tiles are the store's.
#[derive(Debug, Default)]
pub struct TileBuilder {
    /// The entry hashes of the bundle being filled.
    bundle: Vec<Hash32>,
    /// Per tile level, the hashes of the tile being filled.
    levels: Vec<Vec<Hash32>>,
    size: u64,
}

impl TileBuilder {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next entry; `full(tile, hashes)` receives every tile this entry completes
    /// (the entry bundle, the level-0 tile, and each level above whose tile it fills).
    pub fn push(&mut self, entry_hash: Hash32, mut full: impl FnMut(TileId, &[Hash32])) {
        let index = self.size / u64::from(TILE_WIDTH);
        self.size += 1;
        self.bundle.push(entry_hash);
        if self.bundle.len() == usize::from(TILE_WIDTH) {
            full(TileId { kind: TileKind::Entries, index, width: TILE_WIDTH }, &self.bundle);
            self.bundle.clear();
        }
        let mut node = TileHasher::hash_leaf(&entry_hash);
        for level in 0u8.. {
            if self.levels.len() <= usize::from(level) {
                self.levels.push(Vec::with_capacity(usize::from(TILE_WIDTH)));
            }
            let hashes = &mut self.levels[usize::from(level)];
            hashes.push(node);
            if hashes.len() < usize::from(TILE_WIDTH) {
                break;
            }
            let nodes_below = self.size >> (u32::from(level) * TILE_HEIGHT);
            let index = nodes_below / u64::from(TILE_WIDTH) - 1;
            full(TileId { kind: TileKind::Hashes(level), index, width: TILE_WIDTH }, hashes);
            // A full tile is a perfect subtree of height 8: its root is the node one tile
            // level up.
            node = merkle::root_of_leaves::<TileHasher>(hashes);
            hashes.clear();
        }
    }

    /// The partial tiles of the current size (the entry bundle and each level that is not
    /// empty), each with its hashes.
    pub fn partial_tiles(&self) -> Vec<(TileId, Vec<Hash32>)> {
        let mut tiles = Vec::new();
        let width = u64::from(TILE_WIDTH);
        if !self.bundle.is_empty() {
            let tile = TileId { kind: TileKind::Entries, index: self.size / width, width: self.bundle.len() as u16 };
            tiles.push((tile, self.bundle.clone()));
        }
        for (level, hashes) in self.levels.iter().enumerate() {
            if hashes.is_empty() {
                continue;
            }
            let nodes = self.size >> (level as u32 * TILE_HEIGHT);
            let tile = TileId { kind: TileKind::Hashes(level as u8), index: nodes / width, width: hashes.len() as u16 };
            tiles.push((tile, hashes.clone()));
        }
        tiles
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_follow_the_spec_examples_and_parse_back() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
        let tile = TileId::new(TileKind::Hashes(0), 1_234_067, 256).unwrap();
        assert_eq!(tile.path(), "tile/0/x001/x234/067");
        let partial = TileId::new(TileKind::Entries, 5, 112).unwrap();
        assert_eq!(partial.path(), "tile/entries/005.p/112");
        for tile in [tile, partial, TileId::new(TileKind::Hashes(63), u64::MAX, 1).unwrap()] {
            assert_eq!(TileId::parse(&tile.path()).unwrap(), tile);
        }
        for bad in [
            "tile/00/000",
            "tile/64/000",
            "tile/0/1",
            "tile/0/0000",
            "tile/0/001/002",
            "tile/0/x000/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/0/000/",
            "tile/entries/x1/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tiles/0/000",
        ] {
            assert!(TileId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tiles_of_a_size_are_the_spec_example() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1"
        let tiles = tiles_of_size(70_000);
        let of = |kind| tiles.iter().filter(|t| t.kind == kind).collect::<Vec<_>>();
        let level0 = of(TileKind::Hashes(0));
        assert_eq!(level0.len(), 274);
        assert_eq!(level0.iter().filter(|t| t.is_full()).count(), 273);
        assert_eq!(level0.last().unwrap().width, 112);
        assert_eq!(of(TileKind::Hashes(1)).iter().map(|t| t.width).collect::<Vec<_>>(), [256, 17]);
        assert_eq!(of(TileKind::Hashes(2)).iter().map(|t| t.width).collect::<Vec<_>>(), [1]);
        assert_eq!(of(TileKind::Entries).len(), 274);
        assert!(of(TileKind::Hashes(3)).is_empty());
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1"
        let tiles = tiles_of_size(256);
        assert_eq!(tiles.len(), 3);
        assert_eq!(tiles[2], TileId { kind: TileKind::Hashes(1), index: 0, width: 1 });
        assert!(tiles_of_size(0).is_empty());
        // The levels stop where a tree of 64-bit size stops: level 7 holds nodes of 2^56 leaves.
        assert_eq!(TileId::new(TileKind::Hashes(7), 0, 1).unwrap().needs(), Some(1 << 56));
        assert_eq!(TileId::new(TileKind::Hashes(8), 0, 1).unwrap().needs(), None);
    }

    #[test]
    fn the_builder_makes_the_tiles_of_every_size_it_passes() {
        let mut builder = TileBuilder::new();
        let mut full = Vec::new();
        for seq in 0..70_000u64 {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&seq.to_be_bytes());
            builder.push(hash, |tile, hashes| {
                assert_eq!(hashes.len(), 256);
                full.push(tile);
            });
            if [0, 254, 255, 256, 65_535, 65_536, 69_999].contains(&seq) {
                let mut made = full.clone();
                made.extend(builder.partial_tiles().into_iter().map(|(tile, _)| tile));
                made.sort();
                let mut want = tiles_of_size(seq + 1);
                want.sort();
                assert_eq!(made, want, "size {}", seq + 1);
            }
        }
    }
}
