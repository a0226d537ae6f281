//! A small, seeded, portable pseudo-random number generator.
//!
//! The simulator and randomized tests must be reproducible from a seed on every
//! platform, so netz carries its own generator instead of depending on one:
//! xoshiro256** (Blackman & Vigna), with its state expanded from a 64-bit seed
//! by splitmix64. It is fast and statistically good, and **not** suitable for
//! anything security-related.

use std::cmp::Ordering;
use std::ops::{Range, RangeInclusive};

/// A seeded xoshiro256** pseudo-random number generator.
///
/// The same seed always yields the same sequence, on every platform and in
/// every build profile.
///
/// ```
/// use netz_core::sim::Rng;
/// let mut a = Rng::new(7);
/// let mut b = Rng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.gen_range(10..20u32);
/// assert!((10..20).contains(&x));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64: advances `state` and returns the next output.
pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded with `seed`. Every seed (including zero) is valid.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 is a bijection of its counter, so four consecutive outputs
        // are never all zero; the all-zero state (a fixed point) cannot occur.
        Rng { s }
    }

    /// A generator with the given raw xoshiro256** state (for reference tests).
    #[cfg(test)]
    pub(super) fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    /// The next 64 uniformly distributed random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 uniformly distributed random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniformly distributed `f64` in `[0, 1)`, with 53 bits of precision.
    pub fn gen_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p`.
    ///
    /// `p` is clamped to `[0, 1]`; NaN counts as 0. `gen_bool(0.0)` is always
    /// `false` and `gen_bool(1.0)` always `true`.
    pub fn gen_bool(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.gen_f64() < p
    }

    /// A uniformly distributed value in `range` (`lo..hi` or `lo..=hi`), for
    /// all primitive integer types up to 64 bits and for `f64`.
    ///
    /// Integer sampling is unbiased. An empty range does not panic: it yields
    /// its start (`lo`).
    pub fn gen_range<T, R: SampleRange<T>>(&mut self, range: R) -> T {
        range.sample(self)
    }

    /// A uniformly distributed integer in `0..n`; `0` when `n == 0`.
    ///
    /// Unbiased (Lemire's multiply-and-reject method).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Fills `dest` with random bytes.
    pub fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A vector of `len` random bytes.
    pub fn gen_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill_bytes(&mut v);
        v
    }

    /// Shuffles `slice` uniformly (Fisher–Yates).
    pub fn shuffle<T>(&mut self, slice: &mut [T]) {
        for i in (1..slice.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            slice.swap(i, j);
        }
    }

    /// A uniformly chosen element of `slice`, or `None` if it is empty.
    pub fn choose<'a, T>(&mut self, slice: &'a [T]) -> Option<&'a T> {
        if slice.is_empty() {
            None
        } else {
            slice.get(self.below(slice.len() as u64) as usize)
        }
    }

    /// A new generator whose sequence is independent of this one's, derived
    /// from this generator's next output. Useful to give a sub-component its
    /// own reproducible stream.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// A range [`Rng::gen_range`] can sample from.
///
/// Implemented for `Range` and `RangeInclusive` of `u8`, `u16`, `u32`, `u64`,
/// `usize`, `i8`, `i16`, `i32`, `i64`, `isize` and `f64`.
pub trait SampleRange<T> {
    /// A uniformly distributed value in the range; the start if it is empty.
    fn sample(self, rng: &mut Rng) -> T;
}

macro_rules! unsigned_ranges {
    ($($t:ty),*) => {$(
        #[allow(clippy::unnecessary_cast)]
        impl SampleRange<$t> for Range<$t> {
            fn sample(self, rng: &mut Rng) -> $t {
                if self.start >= self.end {
                    return self.start;
                }
                let span = (self.end - self.start) as u64;
                self.start + rng.below(span) as $t
            }
        }

        #[allow(clippy::unnecessary_cast)]
        impl SampleRange<$t> for RangeInclusive<$t> {
            fn sample(self, rng: &mut Rng) -> $t {
                let (lo, hi) = self.into_inner();
                if lo > hi {
                    return lo;
                }
                let span = ((hi - lo) as u64).wrapping_add(1);
                if span == 0 {
                    // The whole 64-bit domain.
                    return rng.next_u64() as $t;
                }
                lo + rng.below(span) as $t
            }
        }
    )*};
}

macro_rules! signed_ranges {
    ($($t:ty),*) => {$(
        #[allow(clippy::unnecessary_cast)]
        impl SampleRange<$t> for Range<$t> {
            fn sample(self, rng: &mut Rng) -> $t {
                if self.start >= self.end {
                    return self.start;
                }
                let span = (self.end as i64).wrapping_sub(self.start as i64) as u64;
                (self.start as i64).wrapping_add(rng.below(span) as i64) as $t
            }
        }

        #[allow(clippy::unnecessary_cast)]
        impl SampleRange<$t> for RangeInclusive<$t> {
            fn sample(self, rng: &mut Rng) -> $t {
                let (lo, hi) = self.into_inner();
                if lo > hi {
                    return lo;
                }
                let span = ((hi as i64).wrapping_sub(lo as i64) as u64).wrapping_add(1);
                if span == 0 {
                    return rng.next_u64() as $t;
                }
                (lo as i64).wrapping_add(rng.below(span) as i64) as $t
            }
        }
    )*};
}

unsigned_ranges!(u8, u16, u32, u64, usize);
signed_ranges!(i8, i16, i32, i64, isize);

impl SampleRange<f64> for Range<f64> {
    fn sample(self, rng: &mut Rng) -> f64 {
        // Also catches NaN bounds.
        if self.start.partial_cmp(&self.end) != Some(Ordering::Less) {
            return self.start;
        }
        let x = self.start + (self.end - self.start) * rng.gen_f64();
        // Rounding can land exactly on `end`; keep the range half-open.
        if x < self.end {
            x
        } else {
            self.start
        }
    }
}

impl SampleRange<f64> for RangeInclusive<f64> {
    fn sample(self, rng: &mut Rng) -> f64 {
        let (lo, hi) = self.into_inner();
        if !matches!(lo.partial_cmp(&hi), Some(Ordering::Less | Ordering::Equal)) {
            return lo;
        }
        (lo + (hi - lo) * rng.gen_f64()).min(hi)
    }
}
