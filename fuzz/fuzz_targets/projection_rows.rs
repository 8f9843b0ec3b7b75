//! The rows of the projection store (`projections/src/store.rs`; MessagePack with named
//! fields since its format 7): the tenant meta, a release, a history item, an owed append. The
//! store is derived data, but a row that does not decode must be an error
//! (`StoreError::Corrupt`), never a panic of the worker or a query.
//!
//! Properties: a row that decodes re-encodes to a row that decodes and re-encodes to the same
//! bytes (bytes, not values: MessagePack carries any f64, NaN included); a decoded release is
//! summarised (`query::summary`) and, with a decoded meta, evaluated (`gates::evaluate`, what
//! the worker runs on loaded state) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use projections::outbox::Outgoing;
use projections::state::{HistoryItem, ReleaseState, TenantMeta};
use projections::store::{decode_row, encode_row};
use projections::{gates, query, TenantState};
use release_ledger_fuzz::Input;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(row: &[u8]) -> Option<T> {
    let value: T = decode_row(row).ok()?;
    let encoded = encode_row(&value).expect("encode");
    let again: T = decode_row(&encoded).expect("re-encoded row decodes");
    assert_eq!(encode_row(&again).expect("encode"), encoded, "row round trip");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 5 {
        0 => {
            round_trip::<TenantMeta>(input.rest());
        }
        1 => {
            if let Some(release) = round_trip::<ReleaseState>(input.rest()) {
                let _ = query::summary(&TenantState::new("tenant-1"), &release);
            }
        }
        2 => {
            round_trip::<HistoryItem>(input.rest());
        }
        3 => {
            let row = input.rest();
            if let Ok(owed) = decode_row::<Outgoing>(row) {
                let encoded = encode_row(&owed).expect("encode");
                let again: Outgoing = decode_row(&encoded).expect("re-encoded row decodes");
                assert_eq!(encode_row(&again).expect("encode"), encoded, "row round trip");
                assert!(again.matches(owed.body().as_bytes()) || !owed.has_body());
            }
        }
        _ => {
            // A meta row and a release row, as the worker loads them, then evaluated.
            let (at, trigger) = (input.u64(), input.u64());
            let meta_row = input.bytes(usize::MAX);
            let Some(meta) = round_trip::<TenantMeta>(meta_row) else { return };
            let Some(release) = round_trip::<ReleaseState>(input.rest()) else { return };
            let _ = gates::evaluate(&meta, &release, trigger, at);
            let mut state = TenantState::new(&meta.tenant);
            state.meta = meta;
            let _ = query::summary(&state, &release);
        }
    }
});
