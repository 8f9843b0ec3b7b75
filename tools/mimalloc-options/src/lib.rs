//! The mimalloc option the offline auditor (`ledger-audit`) sets before it allocates in
//! earnest: freed memory is kept for reuse rather than returned to the operating system.
//!
//! mimalloc returns ("purges") memory that stays free for 10 ms. `ledger-audit verify` frees a
//! record batch's buffers and a batch of parsed entries every few milliseconds and allocates the
//! next ones at once, so with the default each batch's memory went back to the kernel and was
//! faulted in (and zeroed) again: 13,527 page faults in one `verify` of the benchmark export,
//! against 846–977 with purging off (a kernel that pages out cold memory itself, as the
//! benchmark host's DAMON scheme does, still takes some). `verify` was 2–8 % faster without the
//! purges (BENCHMARKS.md, "Issue 20, twenty-fourth session"). Memory stays bounded: what is kept
//! is what was in use at the peak, which the audit's read-ahead, signature queue and fold cache
//! bound (peak RSS 126 MB against 118–121 MB on that export).
//!
//! The bindings (`libmimalloc-sys`'s `extended` feature) name no constant for the option, so
//! [`PURGE_DELAY`] gives its place in mimalloc's `mi_option_e`; the tests check it against
//! mimalloc's own reading of `MIMALLOC_PURGE_DELAY` from the environment, so a mimalloc whose
//! options moved fails them rather than setting another option.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in the `mi_option_e` of the mimalloc that `libmimalloc-sys` 0.1.49
/// bundles (v2.2): the delay, in ms, before free memory is purged; -1 never purges.
pub const PURGE_DELAY: mi_option_t = 15;

/// Never return freed memory to the operating system (mimalloc's `purge_delay` = -1).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins, for measurements.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (an atomic store in
    // mimalloc 2.2) and takes no pointers; `PURGE_DELAY` is a valid option (the tests check it).
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set(PURGE_DELAY, -1);
    }
}

/// mimalloc's current purge delay, ms (-1: never).
pub fn purge_delay() -> i64 {
    // SAFETY: reads an integer from mimalloc's option table; no pointers.
    #[allow(unsafe_code)]
    let delay = unsafe { mi_option_get(PURGE_DELAY) };
    // A C `long`: 64 bits here, 32 on some platforms.
    #[allow(clippy::useless_conversion)]
    i64::from(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process the test below starts: the purge delay it must see.
    const CHILD: &str = "MIMALLOC_OPTIONS_TEST_WANT";

    #[test]
    fn the_option_at_purge_delay_is_the_one_mimalloc_reads_from_its_environment() {
        if let Some(want) = std::env::var_os(CHILD) {
            // The child: mimalloc read `MIMALLOC_PURGE_DELAY` into the option at `PURGE_DELAY`,
            // and `keep_freed_memory` leaves a value from the environment alone.
            keep_freed_memory();
            assert_eq!(purge_delay().to_string(), want.to_string_lossy());
            return;
        }
        for delay in ["77", "1234"] {
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "tests::the_option_at_purge_delay_is_the_one_mimalloc_reads_from_its_environment"])
                .env("MIMALLOC_PURGE_DELAY", delay)
                .env(CHILD, delay)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "MIMALLOC_PURGE_DELAY={delay}: {stdout}");
            // The child ran this test (a filter that matched nothing would pass too).
            assert!(stdout.contains("1 passed"), "{stdout}");
        }
    }

    #[test]
    fn keep_freed_memory_turns_purging_off() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay(), 10, "mimalloc 2.2's default purge delay");
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}
