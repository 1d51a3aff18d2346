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
//! The vector forms run on `wide`'s `u32` lanes; with AVX-512 the 16-lane form instead holds one
//! block per 64-bit lane (two registers of 8), where a round is 6 instructions per 8 blocks: the
//! multiply reads the low halves directly and one dword shuffle brings the high halves down
//! (`wide`'s general 32-bit widening multiply spends 8 shuffles and unpacks per 16 lanes). Both
//! give the same bits; the unit tests and the known answers run on every build.

use crate::lanes::U32s;
use core::convert::Infallible;
use rand_core::{SeedableRng, TryRng};
use wide::{u32x4, u32x8, u32x16};

/// Round multipliers (Random123's `PHILOX_M4x32_0`, `PHILOX_M4x32_1`).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
/// Key schedule increments, the Weyl sequence (`PHILOX_W32_0`, `PHILOX_W32_1`).
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;
/// Philox4x32-10: ten rounds, the variant Random123 recommends and `std::philox4x32` fixes.
const ROUNDS: u32 = 10;

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

/// Word 0 of Philox4x32-10 for the eight counters `[c0[l], c1, c2, c3]`: the tie-break words,
/// a few per row, whose block is a latency-bound chain of rounds with little to overlap. Eight
/// lanes, not sixteen, halve its cost (one 512-bit register of 64-bit lanes on AVX-512).
#[inline(always)]
pub(crate) fn philox_word0_x8(c0: [u32; 8], c1: u32, c2: u32, c3: u32, key: [u32; 2]) -> [u32; 8] {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        avx512::word0_x8(c0, [c1, c2, c3], key)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        let ctr = [
            u32x8::new(c0),
            u32x8::splat(c1),
            u32x8::splat(c2),
            u32x8::splat(c3),
        ];
        philox_lanes::<8, u32x8>(ctr, key)[0].to_array()
    }
}

/// Philox rounds for 16 lanes on AVX-512, one block per 64-bit lane.
///
/// `vpmuludq` multiplies the low 32 bits of each 64-bit lane into a full 64-bit product, so a
/// block whose words sit in the low halves of 64-bit lanes needs no shuffle before the multiply,
/// and its product's two halves are `lo` (in place) and `hi` (one `vpshufd` away). The high
/// halves carry garbage that no later step reads. A round is then 2 multiplies, 2 shuffles and 2
/// three-way xors per 8 blocks, against `wide`'s general `mul_keep_low_high`, which spends 6
/// shuffles and unpacks per multiply to return the halves in 32-bit lane order.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
pub(crate) mod avx512 {
    use super::{M0, M1, ROUNDS, W0, W1};
    use safe_arch::{
        bitxor_m512i, m512i, mul_u32_wide_m512i, permute2_i32_m512i, set_splat_i32_m512i,
        shuffle_abv_i64_all_m512i, shuffle_i32_m512i, unpack_high_i32_m512i, unpack_low_i32_m512i,
    };
    use wide::u32x16;

    /// 8 blocks, word `i` of block `k` in the low half of 64-bit lane `k` of `.0[i]`.
    type Eight = [m512i; 4];

    /// Lanes `4k, 4k+1` of each 128-bit quarter `k` into `lo`, lanes `4k+2, 4k+3` into `hi`.
    #[inline(always)]
    fn spread(v: [u32x16; 4]) -> (Eight, Eight) {
        let m = v.map(wide::bytemuck::cast::<u32x16, m512i>);
        (
            m.map(|w| unpack_low_i32_m512i(w, w)),
            m.map(|w| unpack_high_i32_m512i(w, w)),
        )
    }

    /// The inverse of [`spread`]: the low halves back in lane order (one `vpermt2d` a word).
    #[inline(always)]
    fn gather(lo: Eight, hi: Eight) -> [u32x16; 4] {
        let idx: m512i =
            wide::bytemuck::cast([0i32, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30]);
        core::array::from_fn(|i| {
            let (l, h) = (lo[i], hi[i]);
            wide::bytemuck::cast(permute2_i32_m512i(l, idx, h))
        })
    }

    /// The round keys, from memory: a broadcast from memory costs only a load, where one from a
    /// register takes a vector port from the rounds (three uops a round with the key's add).
    #[inline(always)]
    fn schedule(key: [u32; 2]) -> [[u32; 2]; ROUNDS as usize] {
        let mut ks = [key; ROUNDS as usize];
        for r in 1..ks.len() {
            ks[r] = [ks[r - 1][0].wrapping_add(W0), ks[r - 1][1].wrapping_add(W1)];
        }
        core::hint::black_box(ks)
    }

    /// The high half of each 64-bit lane moved into its low half.
    #[inline(always)]
    fn high(p: m512i) -> m512i {
        shuffle_i32_m512i::<0b10_11_00_01>(p)
    }

    #[inline(always)]
    fn round(c: Eight, m0: m512i, m1: m512i, k0: m512i, k1: m512i) -> Eight {
        let [c0, c1, c2, c3] = c;
        let p0 = mul_u32_wide_m512i(c0, m0);
        let p1 = mul_u32_wide_m512i(c2, m1);
        [
            bitxor_m512i(bitxor_m512i(high(p1), c1), k0),
            p1,
            bitxor_m512i(bitxor_m512i(high(p0), c3), k1),
            p0,
        ]
    }

    /// The ten rounds on `C` independent chains of 8 blocks, interleaved round by round: one
    /// chain is latency-bound, four keep both 512-bit ports busy.
    #[inline(always)]
    fn rounds<const C: usize>(mut chains: [Eight; C], key: [u32; 2]) -> [Eight; C] {
        let (m0, m1) = (
            set_splat_i32_m512i(M0 as i32),
            set_splat_i32_m512i(M1 as i32),
        );
        for &[k0, k1] in &schedule(key) {
            let (kv0, kv1) = (
                set_splat_i32_m512i(k0 as i32),
                set_splat_i32_m512i(k1 as i32),
            );
            for c in &mut chains {
                *c = round(*c, m0, m1, kv0, kv1);
            }
        }
        chains
    }

    /// Word 0 of eight blocks `[c0[l], c[0], c[1], c[2]]`: one chain.
    #[inline(always)]
    pub(crate) fn word0_x8(c0: [u32; 8], c: [u32; 3], key: [u32; 2]) -> [u32; 8] {
        let wide = |v: [u32; 8]| -> m512i { wide::bytemuck::cast(v.map(u64::from)) };
        let s = [wide(c0), wide([c[0]; 8]), wide([c[1]; 8]), wide([c[2]; 8])];
        let [s] = rounds([s], key);
        wide::bytemuck::cast::<m512i, [u64; 8]>(s[0]).map(|w| w as u32)
    }

    /// Word 0 of eight blocks `[c0[l], c1, rows[l] as u32, (rows[l] >> 32) as u32]`: one chain.
    #[inline(always)]
    pub(crate) fn word0_x8_rows(c0: [u32; 8], c1: u32, rows: [u64; 8], key: [u32; 2]) -> [u32; 8] {
        let wide = |v: [u32; 8]| -> m512i { wide::bytemuck::cast(v.map(u64::from)) };
        let s = [
            wide(c0),
            wide([c1; 8]),
            wide(rows.map(|r| r as u32)),
            wide(rows.map(|r| (r >> 32) as u32)),
        ];
        let [s] = rounds([s], key);
        wide::bytemuck::cast::<m512i, [u64; 8]>(s[0]).map(|w| w as u32)
    }

    /// One batch of 16 blocks, two chains of 8 in flight.
    #[inline(always)]
    pub(crate) fn philox_x1(a: [u32x16; 4], key: [u32; 2]) -> [u32x16; 4] {
        let (lo, hi) = spread(a);
        let [lo, hi] = rounds([lo, hi], key);
        gather(lo, hi)
    }

    /// Blocks `first .. first + 4` (wrapping) with counters `[first + b, c[0], c[1], c[2]]`, in
    /// output order, one per 128-bit lane: a row of up to 64 columns. One register, so one
    /// latency-bound chain; a round reverses the product's dwords `[lo0, hi0, lo1, hi1]` and xors
    /// in `[w1, 0, w3, 0]` (a 64-bit shift of the state) and the key: four instructions and 7
    /// cycles a round, where [`in_order`] would spend 8 blocks' work on these 4.
    #[inline(always)]
    pub(crate) fn in_order_4(first: u32, c: [u32; 3], key: [u32; 2]) -> u32x16 {
        let per_lane = |f: fn(usize) -> u32| -> u32x16 { u32x16::new(core::array::from_fn(f)) };
        let m: m512i = wide::bytemuck::cast(per_lane(|d| [M0, 0, M1, 0][d % 4]));
        let step = per_lane(|d| [W0, 0, W1, 0][d % 4]);
        let [k0, k1] = key;
        let mut k = u32x16::new(core::array::from_fn(|d| [k0, 0, k1, 0][d % 4]));
        let [c0, c1, c2] = c;
        let mut v = u32x16::new(core::array::from_fn(|d| {
            [first.wrapping_add((d / 4) as u32), c0, c1, c2][d % 4]
        }));
        for round in 0..ROUNDS {
            if round > 0 {
                k += step;
            }
            let p = mul_u32_wide_m512i(wide::bytemuck::cast(v), m);
            let p: u32x16 = wide::bytemuck::cast(shuffle_i32_m512i::<0b00_01_10_11>(p));
            let w = wide::bytemuck::cast::<u32x16, wide::u64x8>(v) >> 32;
            v = p ^ wide::bytemuck::cast::<wide::u64x8, u32x16>(w) ^ k;
        }
        v
    }

    /// Blocks `first + b` (`b < 8 C`, wrapping) with counters `[first + b, c[0], c[1], c[2]]`,
    /// in output order ([`super::blocks_in_order`]): element `[i][h]` holds blocks
    /// `8 i + 4 h .. 8 i + 4 h + 4`, one per 128-bit lane, its words in order. `C` independent
    /// chains of 8.
    ///
    /// The rounds are those above (a block per 64-bit lane, the counter's constant words
    /// splats, so nothing to spread), then four permutes per 8 blocks
    /// ([`chains_in_order`]), against 60 instructions for the rounds. Rounds kept in block order (one
    /// block per 128-bit lane, three instructions per round per 4 blocks) measured 10 % slower:
    /// LLVM fuses their blend and shuffle into one `vpermt2d`, three cycles on every round's
    /// path.
    #[inline(always)]
    pub(crate) fn in_order<const C: usize>(
        first: u32,
        c: [u32; 3],
        key: [u32; 2],
    ) -> [[u32x16; 2]; C] {
        let splat = |v: u32| -> m512i { wide::bytemuck::cast([u64::from(v); 8]) };
        let chains: [Eight; C] = core::array::from_fn(|i| {
            let first = first.wrapping_add(8 * i as u32);
            let w0: [u64; 8] = core::array::from_fn(|k| u64::from(first.wrapping_add(k as u32)));
            [
                wide::bytemuck::cast(w0),
                splat(c[0]),
                splat(c[1]),
                splat(c[2]),
            ]
        });
        chains_in_order(chains, key)
    }

    /// Blocks `0 .. B` of the dropout main stream (counters `[b, 0, R as u32, (R >> 32) as u32]`,
    /// as `dropout::main_counter` makes them) of the `32 / B` rows with global ids
    /// `R = row .. row + 32 / B` (wrapping), `B` = 4 or 8, in output order: register `e` holds
    /// the bytes deciding columns `64 (e % (B / 4)) ..` of row `row + e / (B / 4)`, i.e. a row of
    /// 64 columns per register, or of 128 per two. Four chains of 8 blocks: 32 blocks at full
    /// throughput, where a row of 64 or 128 columns alone is one latency-bound chain of 4 or 8.
    #[inline(always)]
    pub(crate) fn rows_ahead<const B: usize>(row: u64, key: [u32; 2]) -> [u32x16; 8] {
        let chains: [Eight; 4] = core::array::from_fn(|i| {
            let r = |k: usize| row.wrapping_add((8 / B * i + k / B) as u64);
            let w = |f: &dyn Fn(usize) -> u32| -> m512i {
                wide::bytemuck::cast::<[u64; 8], m512i>(core::array::from_fn(|k| u64::from(f(k))))
            };
            [
                w(&|k| (k % B) as u32),
                w(&|_| 0),
                w(&|k| r(k) as u32),
                w(&|k| (r(k) >> 32) as u32),
            ]
        });
        let [[a, b], [c, d], [e, f], [g, h]] = chains_in_order(chains, key);
        [a, b, c, d, e, f, g, h]
    }

    /// The rounds of `C` chains of 8 blocks, each chain's blocks then in output order, four per
    /// register (two `vpermt2d` pair words 0-1 and 2-3 of each block into 64-bit lanes, two
    /// `vpermt2q` put each block's two pairs in a 128-bit lane).
    #[inline(always)]
    fn chains_in_order<const C: usize>(chains: [Eight; C], key: [u32; 2]) -> [[u32x16; 2]; C] {
        let pair: m512i =
            wide::bytemuck::cast([0i32, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30]);
        let lo: m512i = wide::bytemuck::cast([0i64, 8, 1, 9, 2, 10, 3, 11]);
        let hi: m512i = wide::bytemuck::cast([4i64, 12, 5, 13, 6, 14, 7, 15]);
        rounds(chains, key).map(|[w0, w1, w2, w3]| {
            let (p01, p23) = (
                permute2_i32_m512i(w0, pair, w1),
                permute2_i32_m512i(w2, pair, w3),
            );
            [
                wide::bytemuck::cast(shuffle_abv_i64_all_m512i(p01, lo, p23)),
                wide::bytemuck::cast(shuffle_abv_i64_all_m512i(p01, hi, p23)),
            ]
        })
    }
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
