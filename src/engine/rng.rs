//! A tiny random source (xorshift64*) for `$(random)`.
//!
//! The engine must be reproducible from its inputs, so it never reads an OS random source
//! itself: the seed is an input. The service's channel actor draws it from the OS when a
//! channel starts (so chat cannot predict `$(random)` from the channel name), tests and the
//! replay tool pass fixed seeds to get the same sequence every run.

/// Xorshift64* generator; never zero.
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl Default for XorShift {
    fn default() -> Self {
        Self::from_seed(0)
    }
}

/// A fixed seed derived from `name` (FNV-1a), for callers that want a reproducible sequence
/// per name (benchmarks, the replay tool). Never use it where chat must not predict the dice.
pub fn name_seed(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl XorShift {
    /// A generator seeded with the FNV-1a hash of `seed` (see [`name_seed`]).
    pub fn seeded(seed: &str) -> Self {
        Self::from_seed(name_seed(seed))
    }

    /// A generator for a 64-bit seed. The seed goes through splitmix64 first, so nearby seeds
    /// (0, 1, 2...) still give unrelated sequences; every seed is valid.
    pub fn from_seed(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self { state: z | 1 }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi` (the bounds may come in either order).
    pub fn range_inclusive(&mut self, a: i64, b: i64) -> i64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
        let offset = u128::from(self.next_u64()) % span;
        (i128::from(lo) + offset as i128) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_range_is_respected() {
        let mut a = XorShift::seeded("xqcow");
        let mut b = XorShift::seeded("xqcow");
        for _ in 0..100 {
            let x = a.range_inclusive(5, -3);
            assert_eq!(x, b.range_inclusive(-3, 5));
            assert!((-3..=5).contains(&x));
        }
        let mut c = XorShift::seeded("x");
        let _ = c.range_inclusive(i64::MIN, i64::MAX);
        assert_eq!(c.range_inclusive(7, 7), 7);
    }

    #[test]
    fn nearby_seeds_give_unrelated_sequences() {
        let firsts: std::collections::BTreeSet<u64> =
            (0..64).map(|s| XorShift::from_seed(s).next_u64()).collect();
        assert_eq!(firsts.len(), 64);
        let mut zero = XorShift::from_seed(0);
        assert_ne!(zero.next_u64(), zero.next_u64());
    }
}
