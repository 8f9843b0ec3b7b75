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

/// SplitMix64 (Steele, Lea and Flood); quality is ample for picking seqs.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next of the sequence.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequences_are_the_published_ones() {
        // xorshift64 from 1: 1082269761, then 1152992998833853505.
        let mut x = XorShift64(1);
        assert_eq!([x.next(), x.next()], [1_082_269_761, 1_152_992_998_833_853_505]);
        // SplitMix64 from 0: the reference implementation's first output.
        assert_eq!(SplitMix64(0).next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(SplitMix64(7).below(0), 0);
        assert!(SplitMix64(7).below(10) < 10);
    }
}
