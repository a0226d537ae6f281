//! A fast, seeded hasher for the station's maps keyed by small integers
//! (object handles, call ids). Seeded from the driver's entropy so that peers
//! cannot predict collisions.

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Multiply-rotate hashing of whole words.
#[derive(Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(K);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn finish(&self) -> u64 {
        // Fold the high bits down: hash tables use both ends.
        self.0 ^ (self.0 >> 29)
    }
}

/// Builds [`FastHasher`]s from a per-station seed.
#[derive(Clone, Copy)]
pub(crate) struct SeededState(pub(crate) u64);

impl Default for SeededState {
    /// A fixed seed, for maps whose keys no peer chooses (station ids).
    fn default() -> Self {
        SeededState(K)
    }
}

impl BuildHasher for SeededState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// A map with the fast seeded hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, SeededState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sequential_handles_spread_over_buckets() {
        let s = SeededState(12345);
        let (mut low, mut high) = (HashSet::new(), HashSet::new());
        for i in 0..4096u64 {
            let h = s.hash_one(crate::DOHandle::new(
                crate::ClassId(100),
                crate::StationId(3),
                i as u32,
            ));
            low.insert(h & 0xfff);
            high.insert(h >> 57);
        }
        // A random function fills about 63% of 4096 buckets and all 128 tags.
        assert!(low.len() > 2400, "{}", low.len());
        assert_eq!(high.len(), 128);
        assert_ne!(SeededState(1).hash_one(7u64), SeededState(2).hash_one(7u64));
    }
}
