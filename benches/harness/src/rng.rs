//! Small deterministic PRNGs, so sample positions do not depend on a crate: [`XorShift64`]
//! (the same samples on every run, for the scale curves and the summary probe) and
//! [`SplitMix64`] (seeded per run, for `ledger-bench`'s query clients).

/// Marsaglia's xorshift64 (13, 7, 17); the state must not be 0.
#[derive(Debug, Clone)]
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// The next of the sequence.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// SplitMix64 (Steele, Lea and Flood), seeded per run; the test kit's generator, shared rather
/// than copied.
pub use testkit::gov::Rng as SplitMix64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequences_are_the_published_ones() {
        // xorshift64 from 1: 1082269761, then 1152992998833853505.
        let mut x = XorShift64(1);
        assert_eq!([x.next(), x.next()], [1_082_269_761, 1_152_992_998_833_853_505]);
        // SplitMix64 from 0: the reference implementation's first output.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(SplitMix64::new(7).below(0), 0);
        assert!(SplitMix64::new(7).below(10) < 10);
    }
}
