//! Helpers shared by the fuzz targets (`fuzz_targets/`).
//!
//! The one subtle piece is [`third_party`]: arrow's and parquet's readers are not hardened
//! against every malformed input and may panic, which the service treats as a malformed file
//! (`tools/src/file.rs` catches it). libFuzzer's panic hook aborts on *any* panic, caught or
//! not, so the export target runs only those third-party calls under [`third_party`], which
//! lets their panics unwind to a `catch_unwind`; a panic anywhere else — in our code — still
//! reaches libFuzzer's hook and fails the target.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use ledger::KeyPair;

thread_local! {
    static IN_THIRD_PARTY: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, a call into a third-party decoder, turning its panic into `None`.
///
/// Must only wrap code that is not ours: our own code must never panic on any input.
pub fn third_party<T>(f: impl FnOnce() -> T) -> Option<T> {
    // Installed on first use, i.e. after libfuzzer-sys installed its aborting hook, which
    // stays in charge of every panic outside this function.
    HOOK.call_once(|| {
        let libfuzzer_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_THIRD_PARTY.with(Cell::get) {
                libfuzzer_hook(info);
            }
        }));
    });
    IN_THIRD_PARTY.with(|flag| flag.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_THIRD_PARTY.with(|flag| flag.set(false));
    result.ok()
}

/// The fixed "ledger key" of the targets that need a signer.
pub fn ledger_key() -> KeyPair {
    KeyPair::from_seed(&[7; 32])
}

/// The fixed "admin key".
pub fn admin_key() -> KeyPair {
    KeyPair::from_seed(&[8; 32])
}

/// A tiny cursor over fuzz input, for targets that need structured values.
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// The next byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    /// The next big-endian `u64` (zero-padded when short).
    pub fn u64(&mut self) -> u64 {
        let mut out = [0u8; 8];
        for byte in &mut out {
            *byte = self.u8();
        }
        u64::from_be_bytes(out)
    }

    /// A `u64` that is usually small (so sizes hit real trees) but may be anything.
    pub fn size(&mut self) -> u64 {
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => u64::from(self.u8()) % 20,
            2 => u64::MAX - u64::from(self.u8()),
            _ => self.u64(),
        }
    }

    /// The next 32 bytes (zero-padded when short).
    pub fn hash(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for byte in &mut out {
            *byte = self.u8();
        }
        out
    }

    /// Up to `max` bytes, the length taken from the input.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = (usize::from(self.u8()) << 8 | usize::from(self.u8())).min(max).min(self.0.len());
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// The files of an evidence pack as the `evidence_pack` target reads them from its input: a
/// name (up to 256 bytes, read as UTF-8 lossily) and its bytes (up to 65,535), again and again
/// until the input ends (at most 4,096 files). `tools/examples/fuzz_seeds.rs` writes real packs
/// in this form.
pub fn pack_files(input: &mut Input<'_>) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    while !input.0.is_empty() && files.len() < 4096 {
        let name = String::from_utf8_lossy(input.bytes(256)).into_owned();
        let bytes = input.bytes(usize::MAX).to_vec();
        files.insert(name, bytes);
    }
    files
}

