//! Temporary experiment (to be deleted).
use release_ledger_benches::*;
use std::time::Instant;
#[test]
fn exp() {
    let sample = AppendFixture::new(16);
    let pool = sign_work(&sample.agents, 1, 256);
    let shapes: Vec<StoredShape> = pool.iter().flatten().flatten().map(StoredShape::of).collect();
    let variants: [(&str, &[&str]); 6] = [
        ("all", &["meta", "entries", "streams", "stream_heads", "event_ids", "tree", "checkpoints"]),
        ("entries", &["entries"]),
        ("no-tree", &["meta", "entries", "streams", "stream_heads", "event_ids", "checkpoints"]),
        ("tree", &["tree"]),
        ("event_ids", &["event_ids"]),
        ("streams+heads", &["streams", "stream_heads"]),
    ];
    for round in 0..2 {
        for (name, cfs) in variants {
            let store = RawStore::open();
            let mut builder = RowBuilder::new(0, 274);
            let mut next = shapes.iter().cycle();
            let mut times = Vec::new();
            for _ in 0..12 {
                let groups: Vec<Vec<Row>> = (0..16)
                    .map(|_| {
                        let g: Vec<StoredShape> = next.by_ref().take(64).cloned().collect();
                        builder.group(&g).into_iter().filter(|r| cfs.contains(&r.column_family())).collect()
                    })
                    .collect();
                let start = Instant::now();
                for rows in groups {
                    store.write_group(&rows);
                }
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "round {round} {name:14} median {:.1} ms per 1024 events -> {:.0} events/s",
                times[6] * 1e3,
                1024.0 / times[6]
            );
        }
    }
}
