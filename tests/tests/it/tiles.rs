//! C2SP tlog-tiles read from the store (`ledger::store::tiles`): every tile of a tree is the
//! Merkle nodes computed independently from the entry hashes (`merkle::root_of_leaves`), at
//! sizes around every tile boundary up to a second level-1 tile; anything outside the tree of
//! the size asked for is a precise error.

use ledger::hash::Hash32;
use ledger::merkle::{root_of_leaves, TreeHasher as _};
use ledger::store::tiles::{tiles_of_size, TileError, TileHasher, TileId, TileKind, TILE_WIDTH};
use testkit::*;

const TENANT: &str = "acme";

/// A tenant with `size` entries: one key registration, then `TestsPassed` events.
fn ledger_of(size: u64) -> TestLedger {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &["QAAutomation"], &["TestsPassed"]);
    let mut left = size - 1;
    while left > 0 {
        let n = left.min(4096);
        t.ledger.append_batch((0..n).map(|_| qa.event("release/r1", 0)).collect()).unwrap();
        left -= n;
    }
    assert_eq!(t.ledger.head(TENANT).unwrap().size, size);
    t
}

/// What the spec says tile `tile` of the tree over `entry_hashes` holds, computed from the
/// entry hashes alone: `MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])`.
fn expected(tile: TileId, entry_hashes: &[Hash32], leaves: &[Hash32]) -> Vec<Hash32> {
    let first = tile.index as usize * usize::from(TILE_WIDTH);
    let range = first..first + usize::from(tile.width);
    match tile.kind {
        TileKind::Entries => entry_hashes[range].to_vec(),
        TileKind::Hashes(level) => {
            let span = 1usize << (u32::from(level) * 8);
            range.map(|i| root_of_leaves::<TileHasher>(&leaves[i * span..(i + 1) * span])).collect()
        }
    }
}

#[test]
fn every_tile_is_the_merkle_nodes_of_the_entries_at_every_size() {
    let size = 65_536 + 3;
    let t = ledger_of(size);
    let entry_hashes: Vec<Hash32> = all_entries(&t.ledger, TENANT).iter().map(|e| e.entry_hash).collect();
    let leaves: Vec<Hash32> = entry_hashes.iter().map(|h| TileHasher::hash_leaf(h)).collect();
    for tree_size in [0, 1, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, size] {
        let tiles = tiles_of_size(tree_size);
        for &tile in &tiles {
            let got = t.ledger.tile_hashes(TENANT, tile, tree_size).unwrap();
            assert_eq!(got, expected(tile, &entry_hashes[..tree_size as usize], &leaves), "{tile} at {tree_size}");
        }
        // What is not a tile of this size: one hash wider than each partial tile, the full
        // tile of each partial one, the tile after the last of each level.
        for &tile in &tiles {
            let last = !tiles.iter().any(|t| t.kind == tile.kind && t.index > tile.index);
            let mut outside = if last { vec![TileId { index: tile.index + 1, ..tile }] } else { Vec::new() };
            if !tile.is_full() {
                outside.push(TileId { width: tile.width + 1, ..tile });
                outside.push(TileId { width: TILE_WIDTH, ..tile });
            }
            for outside in outside {
                match t.ledger.tile_hashes(TENANT, outside, tree_size) {
                    Err(TileError::BeyondTree { tile, tree_size: at, needs }) => {
                        assert_eq!((tile, at), (outside.path(), tree_size));
                        assert!(needs > tree_size, "{outside} needs {needs}");
                    }
                    other => panic!("{outside} at {tree_size}: {other:?}"),
                }
            }
        }
        // Every level above the highest is empty, at any index.
        let top = tiles.iter().filter_map(|t| if let TileKind::Hashes(l) = t.kind { Some(l + 1) } else { None }).max();
        let above = TileId::new(TileKind::Hashes(top.unwrap_or(0)), 0, 1).unwrap();
        assert!(matches!(t.ledger.tile_hashes(TENANT, above, tree_size), Err(TileError::BeyondTree { .. })));
    }
    // The spec's own counts at the largest size: 256 full level-0 tiles and a partial of 3, a
    // full level-1 tile and a partial level-2 tile of width 1.
    let tiles = tiles_of_size(size);
    assert_eq!(tiles.iter().filter(|t| t.kind == TileKind::Hashes(0)).count(), 257);
    assert!(tiles.contains(&TileId::new(TileKind::Hashes(1), 0, 256).unwrap()));
    assert!(tiles.contains(&TileId::new(TileKind::Hashes(2), 0, 1).unwrap()));
    // The encoded bytes: 32 bytes a hash; `0x0020 || entry hash` an entry.
    let bundle = t.ledger.tile_data(TENANT, TileId::new(TileKind::Entries, 0, 2).unwrap(), size).unwrap();
    assert_eq!(bundle, [&[0, 32][..], &entry_hashes[0], &[0, 32], &entry_hashes[1]].concat());
    let tile = TileId::new(TileKind::Hashes(0), 256, 3).unwrap();
    assert_eq!(t.ledger.tile_data(TENANT, tile, size).unwrap(), leaves[65_536..].concat());
}

#[test]
fn a_tile_outside_the_log_is_a_precise_error() {
    let t = ledger_of(300);
    let tile = TileId::new(TileKind::Hashes(0), 0, 256).unwrap();
    assert_eq!(t.ledger.tile_hashes(TENANT, tile, 300).unwrap().len(), 256);
    match t.ledger.tile_hashes(TENANT, tile, 301) {
        Err(TileError::BeyondLog { tree_size: 301, size: 300 }) => {}
        other => panic!("{other:?}"),
    }
    match t.ledger.tile_hashes("nobody", tile, 1) {
        Err(TileError::UnknownTenant(name)) => assert_eq!(name, "nobody"),
        other => panic!("{other:?}"),
    }
    // A level whose nodes are larger than any 64-bit tree, and an index whose end overflows.
    for tile in [
        TileId::new(TileKind::Hashes(8), 0, 1).unwrap(),
        TileId::new(TileKind::Hashes(63), 0, 1).unwrap(),
        TileId::new(TileKind::Entries, u64::MAX, 1).unwrap(),
    ] {
        match t.ledger.tile_hashes(TENANT, tile, 300) {
            Err(TileError::BeyondTree { needs, .. }) => assert_eq!(needs, u64::MAX, "{tile}"),
            other => panic!("{tile}: {other:?}"),
        }
    }
    // And the error says what is missing.
    let partial = TileId::new(TileKind::Hashes(0), 1, 45).unwrap();
    let error = t.ledger.tile_hashes(TENANT, partial, 300).unwrap_err().to_string();
    assert_eq!(error, "tile/0/001.p/45 is not inside the tree of 300 entries (it needs 301 entries)");
}
