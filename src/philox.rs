//! Philox4x32-10, the counter-based generator behind every dropout decision.
//!
//! Philox (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC11)
//! maps a 128-bit counter and a 64-bit key to 128 random bits through ten rounds of
//! multiply-xor-permute. Because each block is a pure function of `(counter, key)`, any block can
//! be computed without the ones before it: that is what makes the dropout mask of an element
//! regenerable from its coordinates alone, in any order, on any lane width.
//!
//! Everything here is bit-exact with the Random123 reference implementation; the known-answer
//! vectors of Random123's `kat_vectors` are among the crate's tests.
//!
//! - [`philox4x32_10`]: one block, scalar.
//! - [`philox4x32_10_x4`], [`philox4x32_10_x8`], [`philox4x32_10_x16`]: 4, 8 or 16 independent
//!   blocks at once, counters and outputs in structure-of-arrays form (word `i` of every block in
//!   one vector).
//! - [`Philox4x32`]: a sequential generator over consecutive counters, implementing `rand_core`'s
//!   [`TryRng`] (hence [`Rng`](rand_core::Rng)) and [`SeedableRng`].
//!
//! The vector forms here run on `wide`'s `u32` lanes. The kernels' own generators are the
//! tables' (`lanes::U32s`): the AVX-512 table holds one block per 64-bit lane, where a round is
//! 6 instructions per 8 blocks (`isa::x86_64::avx512`). Every form gives the same bits; the unit
//! tests and the known answers run on every build and table.

use crate::lanes::U32s;
use core::convert::Infallible;
use rand_core::{SeedableRng, TryRng};
use wide::{u32x4, u32x8, u32x16};

/// Round multipliers (Random123's `PHILOX_M4x32_0`, `PHILOX_M4x32_1`).
pub(crate) const M0: u32 = 0xD251_1F53;
pub(crate) const M1: u32 = 0xCD9E_8D57;
/// Key schedule increments, the Weyl sequence (`PHILOX_W32_0`, `PHILOX_W32_1`).
pub(crate) const W0: u32 = 0x9E37_79B9;
pub(crate) const W1: u32 = 0xBB67_AE85;
/// Philox4x32-10: ten rounds, the variant Random123 recommends and `std::philox4x32` fixes.
pub(crate) const ROUNDS: u32 = 10;

/// One Philox4x32-10 block: 128 random bits from a 128-bit counter and a 64-bit key.
///
/// Each round computes `(hi0, lo0) = M0 * c[0]` and `(hi1, lo1) = M1 * c[2]` as 64-bit products and
/// sets `c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]`; between rounds the key advances by
/// `(0x9E3779B9, 0xBB67AE85)`, wrapping. Cost: 20 32x32->64-bit multiplies, about 5 ns scalar.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..ROUNDS {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = u64::from(M0) * u64::from(c0);
        let p1 = u64::from(M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Philox4x32-10 over `N` independent blocks held as four vectors (word `i` of every block in
/// `counter[i]`); the same rounds as [`philox4x32_10`], lane by lane.
#[inline(always)]
pub(crate) fn philox_lanes<const N: usize, U: U32s<N>>(counter: [U; 4], key: [u32; 2]) -> [U; 4] {
    U::philox_x1(counter, key)
}

/// [`philox_lanes`] in portable `wide` operations.
#[inline(always)]
pub(crate) fn portable_x1<const N: usize, U: U32s<N>>(counter: [U; 4], key: [u32; 2]) -> [U; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let (m0, m1) = (U::splat(M0), U::splat(M1));
    let [mut k0, mut k1] = key;
    for round in 0..ROUNDS {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (lo0, hi0) = c0.mul_lo_hi(m0);
        let (lo1, hi1) = c2.mul_lo_hi(m1);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ U::splat(k0), lo1, hi0 ^ c3 ^ U::splat(k1), lo0);
    }
    [c0, c1, c2, c3]
}

/// Two independent batches of [`portable_x1`], their rounds interleaved: one batch is a chain of
/// ten dependent multiply rounds (latency-bound), two in flight fill the multiplier's pipeline.
/// Written out rather than as a loop over the batches of [`portable_x1`]'s rounds: that loop
/// measured 10 % (and with the products gathered first, 80 %) slower on the SSE2 build.
#[inline(always)]
pub(crate) fn portable_x2<const N: usize, U: U32s<N>>(
    a: [U; 4],
    b: [U; 4],
    key: [u32; 2],
) -> ([U; 4], [U; 4]) {
    let [mut a0, mut a1, mut a2, mut a3] = a;
    let [mut b0, mut b1, mut b2, mut b3] = b;
    let (m0, m1) = (U::splat(M0), U::splat(M1));
    let [mut k0, mut k1] = key;
    for round in 0..ROUNDS {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (kv0, kv1) = (U::splat(k0), U::splat(k1));
        let (alo0, ahi0) = a0.mul_lo_hi(m0);
        let (blo0, bhi0) = b0.mul_lo_hi(m0);
        let (alo1, ahi1) = a2.mul_lo_hi(m1);
        let (blo1, bhi1) = b2.mul_lo_hi(m1);
        (a0, a1, a2, a3) = (ahi1 ^ a1 ^ kv0, alo1, ahi0 ^ a3 ^ kv1, alo0);
        (b0, b1, b2, b3) = (bhi1 ^ b1 ^ kv0, blo1, bhi0 ^ b3 ^ kv1, blo0);
    }
    ([a0, a1, a2, a3], [b0, b1, b2, b3])
}

/// The counters `[b(l), c[0], c[1], c[2]]` of lanes `l < N`, as structure-of-arrays words, where
/// lane `l = 4 q + k` (quarter `q`, position `k`) holds block `b(l) = first + (N / 4) k + q`: after
/// the 4x4 transpose of each 128-bit quarter ([`U32s::transpose_quarters`], eight unpacks),
/// register `k` holds blocks `(N / 4) k + q`, `q = 0, 1, ...`, in output order.
#[inline(always)]
fn counters<const N: usize, U: U32s<N>>(first: u32, c: [u32; 3]) -> [U; 4] {
    let order = U::from_array(core::array::from_fn(|l| ((N / 4) * (l % 4) + l / 4) as u32));
    [
        U::splat(first) + order,
        U::splat(c[0]),
        U::splat(c[1]),
        U::splat(c[2]),
    ]
}

/// The `N` blocks with counters `[first + b, c[0], c[1], c[2]]` (`b < N`, wrapping) as their
/// `16 N` output bytes in order: block by block, each block's words `0..4` little-endian. Register
/// `i` holds bytes `4 N i .. 4 N (i + 1)`, i.e. blocks `i N / 4 ..`; only the first `regs` registers
/// are promised (a width may skip the blocks of the others).
///
/// This is the dropout main stream's layout (`dropout`): byte `j` of a row's stream decides column
/// `j`, so a vector of `N` lanes compares its bytes and gets the bits of `4 N` consecutive columns.
#[inline(always)]
pub(crate) fn blocks_in_order<const N: usize, U: U32s<N>>(
    first: u32,
    c: [u32; 3],
    key: [u32; 2],
    regs: usize,
) -> [U; 4] {
    U::blocks_in_order(first, c, key, regs)
}

/// [`blocks_in_order`] of blocks `first .. first + N` and of `first + N .. first + 2 N`, all
/// registers promised.
#[inline(always)]
pub(crate) fn blocks_in_order_x2<const N: usize, U: U32s<N>>(
    first: u32,
    c: [u32; 3],
    key: [u32; 2],
) -> ([U; 4], [U; 4]) {
    U::blocks_in_order_x2(first, c, key)
}

/// [`blocks_in_order`] in portable operations: structure-of-arrays rounds, then a transpose.
#[inline(always)]
pub(crate) fn portable_in_order<const N: usize, U: U32s<N>>(
    first: u32,
    c: [u32; 3],
    key: [u32; 2],
    _regs: usize,
) -> [U; 4] {
    U::transpose_quarters(portable_x1::<N, U>(counters(first, c), key))
}

/// [`blocks_in_order_x2`] in portable operations.
#[inline(always)]
pub(crate) fn portable_in_order_x2<const N: usize, U: U32s<N>>(
    first: u32,
    c: [u32; 3],
    key: [u32; 2],
) -> ([U; 4], [U; 4]) {
    let second = first.wrapping_add(N as u32);
    let (a, b) = portable_x2::<N, U>(counters(first, c), counters(second, c), key);
    (U::transpose_quarters(a), U::transpose_quarters(b))
}

/// Four Philox4x32-10 blocks at once: lane `l` of the result is
/// `philox4x32_10([counter[0][l], counter[1][l], counter[2][l], counter[3][l]], key)`, word by word.
#[inline]
pub fn philox4x32_10_x4(counter: [u32x4; 4], key: [u32; 2]) -> [u32x4; 4] {
    philox_lanes::<4, u32x4>(counter, key)
}

/// Eight Philox4x32-10 blocks at once; see [`philox4x32_10_x4`] for the layout.
#[inline]
pub fn philox4x32_10_x8(counter: [u32x8; 4], key: [u32; 2]) -> [u32x8; 4] {
    philox_lanes::<8, u32x8>(counter, key)
}

/// Sixteen Philox4x32-10 blocks at once; see [`philox4x32_10_x4`] for the layout.
#[inline]
pub fn philox4x32_10_x16(counter: [u32x16; 4], key: [u32; 2]) -> [u32x16; 4] {
    philox_lanes::<16, u32x16>(counter, key)
}

/// A sequential Philox4x32-10 stream: the blocks of consecutive counters, word 0 first.
///
/// The counter is a 128-bit little-endian integer over the words `[c0, c1, c2, c3]` (`c0` lowest)
/// and advances by one per block, wrapping after 2^128 blocks. The output is the sequence of `u32`
/// words `philox4x32_10(c, key)[0..4]` for `c = start, start + 1, ...`:
///
/// - `next_u32` returns the next word;
/// - `next_u64` takes two words, the first as the low half (so it equals two `next_u32` calls);
/// - `fill_bytes` takes `ceil(len / 4)` words and writes their little-endian bytes, discarding the
///   unused bytes of the last word (so any split of a fill into word-multiple pieces, or into
///   `next_u32` calls, gives the same bytes).
///
/// Seeding: [`SeedableRng::from_seed`] reads a 24-byte seed as the key (bytes 0..8, two
/// little-endian words) then the starting counter (bytes 8..24, four little-endian words).
/// [`SeedableRng::seed_from_u64`] is overridden to use the same key convention as the dropout masks:
/// key `[seed as u32, (seed >> 32) as u32]`, counter 0. Its values are part of the crate's
/// reproducibility contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Philox4x32 {
    key: [u32; 2],
    /// Counter of the next block to generate.
    counter: [u32; 4],
    block: [u32; 4],
    /// Next unused word of `block`; 4 when it is spent.
    used: usize,
}

impl Philox4x32 {
    /// A stream with the given key whose first block is `philox4x32_10(counter, key)`.
    pub const fn new(key: [u32; 2], counter: [u32; 4]) -> Self {
        Self {
            key,
            counter,
            block: [0; 4],
            used: 4,
        }
    }

    /// The counter of the next block the stream will generate (a block already started is not
    /// counted again).
    pub const fn counter(&self) -> [u32; 4] {
        self.counter
    }

    /// The key.
    pub const fn key(&self) -> [u32; 2] {
        self.key
    }

    #[inline]
    fn refill(&mut self) {
        self.block = philox4x32_10(self.counter, self.key);
        let mut carry = true;
        for word in &mut self.counter {
            (*word, carry) = word.overflowing_add(u32::from(carry));
        }
        self.used = 0;
    }

    #[inline]
    fn word(&mut self) -> u32 {
        if self.used >= 4 {
            self.refill();
        }
        let w = self.block.get(self.used).copied().unwrap_or(0);
        self.used += 1;
        w
    }
}

impl TryRng for Philox4x32 {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.word())
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let lo = u64::from(self.word());
        let hi = u64::from(self.word());
        Ok(hi << 32 | lo)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(4) {
            let bytes = self.word().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(bytes) {
                *d = s;
            }
        }
        Ok(())
    }
}

impl SeedableRng for Philox4x32 {
    type Seed = [u8; 24];

    fn from_seed(seed: [u8; 24]) -> Self {
        let mut words = [0u32; 6];
        for (w, b) in words.iter_mut().zip(seed.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let [k0, k1, c0, c1, c2, c3] = words;
        Self::new([k0, k1], [c0, c1, c2, c3])
    }

    fn seed_from_u64(seed: u64) -> Self {
        Self::new(crate::dropout::key_words(seed), [0; 4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_match_scalar_for_every_width() {
        let key = [0x0123_4567, 0x89AB_CDEF];
        let ctr = |l: u32| [l.wrapping_mul(0x9E37_79B9), l ^ 0xFFFF_0000, l << 7, !l];
        let x16 = philox4x32_10_x16(
            core::array::from_fn(|w| u32x16::new(core::array::from_fn(|l| ctr(l as u32)[w]))),
            key,
        );
        let x8 = philox4x32_10_x8(
            core::array::from_fn(|w| u32x8::new(core::array::from_fn(|l| ctr(l as u32)[w]))),
            key,
        );
        let x4 = philox4x32_10_x4(
            core::array::from_fn(|w| u32x4::new(core::array::from_fn(|l| ctr(l as u32)[w]))),
            key,
        );
        for l in 0..16 {
            let want = philox4x32_10(ctr(l as u32), key);
            for w in 0..4 {
                assert_eq!(x16[w].to_array()[l], want[w]);
                if l < 8 {
                    assert_eq!(x8[w].to_array()[l], want[w]);
                }
                if l < 4 {
                    assert_eq!(x4[w].to_array()[l], want[w]);
                }
            }
        }
    }

    #[test]
    fn counter_carries_across_all_words() {
        let mut rng = Philox4x32::new([1, 2], [u32::MAX, u32::MAX, u32::MAX, 7]);
        let _ = rand_core::Rng::next_u32(&mut rng);
        assert_eq!(rng.counter(), [0, 0, 0, 8]);
    }
}
