//! The anchor's format, its reading and its writer, tested on real files.

use super::*;
use std::cell::Cell;

fn head(size: u64, byte: u8) -> AnchoredHead {
    AnchoredHead { size, chain_head: [byte; 32] }
}

fn no_sync() -> std::io::Result<()> {
    panic!("no roll expected")
}

fn bytes_of(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(ANCHOR_FILE)).unwrap()
}

#[test]
fn groups_and_heads_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create(dir.path(), AnchoredHeads::from([(0, head(3, 1))])).unwrap();
    anchor.append(&[(0, head(5, 2)), (1, head(1, 3))], b"batch one", &no_sync).unwrap();
    anchor.append(&[(1, head(4, 4))], b"batch two", &no_sync).unwrap();
    let log = read_log(dir.path()).unwrap().unwrap();
    assert_eq!(log.heads, AnchoredHeads::from([(0, head(5, 2)), (1, head(4, 4))]));
    assert_eq!(log.snapshot, AnchoredHeads::from([(0, head(3, 1))]));
    assert_eq!(log.groups.len(), 2);
    assert_eq!(
        (log.groups[0].heads.clone(), log.groups[0].batch.as_slice()),
        (vec![(0, head(5, 2)), (1, head(1, 3))], &b"batch one"[..])
    );
    assert_eq!(
        (log.groups[1].heads.clone(), log.groups[1].batch.as_slice()),
        (vec![(1, head(4, 4))], &b"batch two"[..])
    );
    assert_eq!(log.end, anchor.len);
    assert_eq!(read(dir.path()).unwrap().unwrap(), log.heads);
    assert!(!dir.path().join("anchor.tmp").exists());
    assert_eq!(bytes_of(dir.path()).len() as u64, CAPACITY, "preallocated: commits overwrite");
}

#[test]
fn a_missing_anchor_is_none_and_a_torn_or_zeroed_last_record_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_log(dir.path()).unwrap().is_none());
    let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
    anchor.append(&[(7, head(2, 9))], &[5u8; 300], &no_sync).unwrap();
    let first_end = anchor.len as usize;
    anchor.append(&[(7, head(3, 8))], &[6u8; 300], &no_sync).unwrap();
    let path = dir.path().join(ANCHOR_FILE);
    let file = bytes_of(dir.path());
    let end = records_end(&file) as usize;
    assert_eq!(end as u64, anchor.len);
    // Where the last record's check ends and its zero padding starts (from its length field;
    // not from the bytes' values: under a random nonce the check itself may end in zeros).
    let len = u32::from_be_bytes(file[first_end..first_end + 4].try_into().unwrap()) as usize;
    let checked_end = first_end + RECORD_HEAD_LEN + len + CHECK_LEN;
    assert!(checked_end < end && file[checked_end..end].iter().all(|b| *b == 0), "padded to 8");
    // Every cut inside the last record (a write that never completed), dropped or
    // zero-filled, reads as the log before it.
    for cut in first_end..end {
        if cut >= checked_end {
            // Only the record's zero padding is lost: nothing of it.
            assert_eq!(parse(&path, &file[..cut]).unwrap().groups.len(), 2, "cut at {cut}");
            continue;
        }
        let mut zeroed = file.clone();
        zeroed[cut..end].fill(0);
        // (Unless the check's last bytes were zeros already: then nothing was lost.)
        if zeroed != file {
            let log = parse(&path, &zeroed).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!((log.heads[&7], log.groups.len(), log.end), (head(2, 9), 1, first_end as u64), "cut at {cut}");
        }
        let log = parse(&path, &file[..cut]).unwrap();
        assert_eq!((log.heads[&7], log.groups.len()), (head(2, 9), 1), "cut at {cut}");
    }
    // A file cut inside its magic was never finished: nothing anchored.
    assert!(parse(&path, &file[..3]).unwrap().heads.is_empty());
}

#[test]
fn a_damaged_record_before_a_valid_one_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
    let start = anchor.len as usize;
    anchor.append(&[(1, head(2, 1))], b"first group", &no_sync).unwrap();
    let second = anchor.len as usize;
    anchor.append(&[(1, head(3, 2))], b"second group", &no_sync).unwrap();
    let path = dir.path().join(ANCHOR_FILE);
    let full = bytes_of(dir.path());
    for offset in start..second {
        let mut bytes = full.clone();
        bytes[offset] ^= 0x40;
        match parse(&path, &bytes) {
            Err(AnchorError::Corrupted { offset: at, reason, .. }) => {
                assert_eq!(at as usize, start, "flip at {offset}");
                assert!(reason.contains(&format!("valid record at byte {second}")), "flip at {offset}: {reason}");
            }
            // A flip in the padding after the check changes nothing read.
            Ok(log) => assert!(offset >= second - 7 && log.groups.len() == 2, "flip at {offset} went unnoticed"),
            Err(other) => panic!("flip at {offset}: {other}"),
        }
    }
    let mut bad_magic = full.clone();
    bad_magic[0] ^= 1;
    assert!(matches!(parse(&path, &bad_magic), Err(AnchorError::Corrupted { offset: 0, .. })));
    let mut bad_header = full.clone();
    bad_header[9] ^= 1;
    assert!(matches!(parse(&path, &bad_header), Err(AnchorError::Corrupted { offset: 8, .. })));
}

#[test]
fn a_head_that_goes_back_is_corruption() {
    let nonce = new_nonce();
    let mut bytes = Vec::new();
    encode_header(&mut bytes, nonce);
    encode_record(&mut bytes, nonce, [(4, &head(9, 1))].into_iter(), &[]).unwrap();
    let at = bytes.len();
    encode_record(&mut bytes, nonce, [(4, &head(8, 1))].into_iter(), b"batch").unwrap();
    match parse(Path::new("anchor"), &bytes) {
        Err(AnchorError::Corrupted { offset, reason, .. }) => {
            assert_eq!(offset as usize, at);
            assert!(reason.contains("goes back from 9 to 8"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn format_1_files_are_still_read() {
    let mut bytes = MAGIC_V1.to_vec();
    for (tid, size, byte) in [(2u32, 4u64, 1u8), (2, 6, 2), (5, 1, 3)] {
        bytes.extend_from_slice(&tid.to_be_bytes());
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&[byte; 32]);
        bytes.extend_from_slice(&check_v1(tid, size, &[byte; 32]));
    }
    bytes.extend_from_slice(&[0u8; 520]);
    let log = parse(Path::new("anchor"), &bytes).unwrap();
    assert_eq!(log.heads, AnchoredHeads::from([(2, head(6, 2)), (5, head(1, 3))]));
    assert!(log.groups.is_empty());
    assert_eq!(log.end as usize, 8 + 3 * RECORD_LEN_V1);
    bytes[8 + 3] ^= 1;
    assert!(matches!(parse(Path::new("anchor"), &bytes), Err(AnchorError::Corrupted { offset: 8, .. })));
}

#[test]
fn shortfall_names_what_the_store_lacks() {
    let want = head(5, 7);
    let hash = |bytes: [u8; 32]| move |_| Ok::<_, String>(bytes);
    assert_eq!(shortfall(&want, None, hash([7; 32])), Some(Shortfall::Missing));
    assert_eq!(shortfall(&want, Some(4), hash([7; 32])), Some(Shortfall::Shorter { stored: 4 }));
    assert_eq!(shortfall(&want, Some(5), hash([8; 32])), Some(Shortfall::Rewritten { seq: 4 }));
    assert_eq!(
        shortfall(&want, Some(9), |_| Err("gone".to_owned())),
        Some(Shortfall::Unreadable { seq: 4, reason: "gone".into() })
    );
    assert_eq!(shortfall(&want, Some(9), hash([7; 32])), None);
}

#[test]
fn rolls_sync_the_store_first_and_recycle_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 4096;
    let mut anchor =
        Anchor::create_with_capacity(dir.path(), AnchoredHeads::from([(1, head(1, 0))]), capacity).unwrap();
    let syncs = Cell::new(0);
    let sync = || {
        syncs.set(syncs.get() + 1);
        Ok(())
    };
    let mut since_roll = 0;
    for size in 2..=40u64 {
        let before = syncs.get();
        anchor.append(&[(1, head(size, size as u8)), (2, head(size * 2, 1))], &[size as u8; 700], &sync).unwrap();
        if syncs.get() > before {
            since_roll = 0;
        } else {
            since_roll += 1;
        }
        let log = read_log(dir.path()).unwrap().unwrap();
        assert_eq!(
            log.heads,
            AnchoredHeads::from([(1, head(size, size as u8)), (2, head(size * 2, 1))]),
            "size {size}"
        );
        // Only the groups since the last roll are records; the roll's snapshot holds the rest.
        assert_eq!(log.groups.len(), since_roll, "size {size}");
        for group in &log.groups {
            assert_eq!(group.batch, vec![group.heads[0].1.size as u8; 700]);
        }
        assert!(!dir.path().join(PREVIOUS_FILE).exists());
    }
    assert!(syncs.get() >= 5, "{} rolls", syncs.get());
    assert_eq!(bytes_of(dir.path()).len() as u64, capacity, "the recycled file never grows");
    // The spare is the previous anchor: whole and valid, with its own nonce.
    let spare = parse(&dir.path().join(SPARE_FILE), &std::fs::read(dir.path().join(SPARE_FILE)).unwrap()).unwrap();
    assert!(spare.heads[&1].size < 40);
}

#[test]
fn a_failed_store_sync_fails_the_roll_and_leaves_the_anchor_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 1024).unwrap();
    anchor.append(&[(1, head(1, 1))], &[1u8; 500], &no_sync).unwrap();
    let before = bytes_of(dir.path());
    let error =
        anchor.append(&[(1, head(2, 2))], &[2u8; 600], &|| Err(std::io::Error::other("disk gone"))).unwrap_err();
    assert_eq!(error.to_string(), "disk gone");
    assert_eq!(bytes_of(dir.path()), before);
    assert_eq!(read(dir.path()).unwrap().unwrap()[&1], head(1, 1));
}

#[test]
fn a_group_too_large_for_the_file_rolls_into_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 1024).unwrap();
    let synced = Cell::new(false);
    anchor
        .append(&[(3, head(9, 9))], &[0u8; 5000], &|| {
            synced.set(true);
            Ok(())
        })
        .unwrap();
    assert!(synced.get());
    let log = read_log(dir.path()).unwrap().unwrap();
    assert_eq!((log.snapshot[&3], log.groups.len()), (head(9, 9), 0));
}

/// The writer's overlapped path never rolls (a roll claims every group durable in RocksDB,
/// whose write of the group may still be under way): a record that does not fit is refused,
/// and the file and the heads stay as they were.
#[test]
fn append_fitting_refuses_a_record_that_needs_a_roll_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::from([(1, head(2, 1))]), 1024).unwrap();
    let small = anchor.record(&[(1, head(3, 2))], &[7u8; 100]).unwrap();
    assert!(anchor.fits(&small));
    anchor.append_fitting(&[(1, head(3, 2))], &small).unwrap();
    let before = bytes_of(dir.path());
    let large = anchor.record(&[(1, head(4, 3))], &[8u8; 2000]).unwrap();
    assert!(!anchor.fits(&large));
    let error = anchor.append_fitting(&[(1, head(4, 3))], &large).unwrap_err();
    assert!(error.to_string().contains("a roll is needed"), "{error}");
    assert_eq!(bytes_of(dir.path()), before, "nothing written");
    assert_eq!(anchor.heads()[&1], head(3, 2), "the heads did not move");
    let log = read_log(dir.path()).unwrap().unwrap();
    assert_eq!((log.heads[&1], log.groups.len()), (head(3, 2), 1));
}

#[test]
fn a_scrub_leaves_no_group_bytes_in_either_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 2048).unwrap();
    let marker = b"Max-Mustermann-erase-me";
    let found = |dir: &Path| {
        [ANCHOR_FILE, SPARE_FILE]
            .iter()
            .filter(|name| std::fs::read(dir.join(name)).is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker)))
            .count()
    };
    // The marker in the spare (rolled out) and in the anchor.
    anchor.append(&[(1, head(1, 1))], marker, &no_sync).unwrap();
    anchor.append(&[(1, head(2, 2))], &[0u8; 1900], &|| Ok(())).unwrap();
    anchor.append(&[(1, head(3, 3))], marker, &no_sync).unwrap();
    assert_eq!(found(dir.path()), 2);
    let synced = Cell::new(false);
    anchor
        .scrub(&|| {
            synced.set(true);
            Ok(())
        })
        .unwrap();
    assert!(synced.get());
    assert_eq!(found(dir.path()), 0);
    let log = read_log(dir.path()).unwrap().unwrap();
    assert_eq!((log.snapshot[&1], log.groups.len()), (head(3, 3), 0));
    anchor.append(&[(1, head(4, 4))], b"after", &no_sync).unwrap();
    assert_eq!(read_log(dir.path()).unwrap().unwrap().heads[&1], head(4, 4));
}

fn group(offset: u64, heads: &[(u32, u64)]) -> AnchoredGroup {
    AnchoredGroup {
        offset,
        heads: heads.iter().map(|(tid, size)| (*tid, head(*size, *size as u8))).collect(),
        batch: vec![1],
    }
}

#[test]
fn the_plan_replays_exactly_the_lost_suffix_or_explains_why_not() {
    let log = AnchorLog {
        snapshot: AnchoredHeads::from([(1, head(2, 2))]),
        heads: AnchoredHeads::new(),
        groups: vec![group(100, &[(1, 3)]), group(200, &[(1, 5), (2, 1)]), group(300, &[(2, 2)])],
        end: 400,
    };
    let stored = |sizes: &'static [(u32, u64)]| move |tid| sizes.iter().find(|(t, _)| *t == tid).map(|(_, s)| *s);
    let plan = log.plan(stored(&[(1, 5), (2, 2)])).unwrap();
    assert_eq!((plan.replay_from, plan.before.len()), (3, 0), "nothing lost");
    let plan = log.plan(stored(&[(1, 3)])).unwrap();
    assert_eq!(plan.replay_from, 1);
    assert_eq!(plan.before, BTreeMap::from([(1, Some(head(3, 3))), (2, None)]));
    assert_eq!(log.plan(stored(&[(1, 2)])).unwrap().replay_from, 0);
    assert_eq!(log.plan(stored(&[(1, 5), (2, 1)])).unwrap().replay_from, 2);
    // Shorter than anything the anchor can replay onto, or between two groups' sizes.
    let error = log.plan(stored(&[(1, 1)])).unwrap_err();
    assert!(error.contains("tenant id 1 holds 1 entries, neither the 2") && error.contains("byte 100"), "{error}");
    let error = log.plan(stored(&[(1, 4)])).unwrap_err();
    assert!(error.contains("tenant id 1 holds 4 entries, neither the 3") && error.contains("byte 200"), "{error}");
    // A group held after one lost: not a prefix.
    let split = AnchorLog {
        snapshot: AnchoredHeads::from([(1, head(2, 2)), (2, head(1, 1))]),
        groups: vec![group(100, &[(1, 3)]), group(200, &[(2, 2)])],
        ..AnchorLog::default()
    };
    let error = split.plan(stored(&[(1, 2), (2, 2)])).unwrap_err();
    assert!(error.contains("holds the anchored group at byte 200 but not one anchored before it"), "{error}");
}
