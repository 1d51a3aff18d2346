//! The AVX-512 table: 16 lanes in `zmm` registers, comparisons into mask registers,
//! `vscalefps` for the exponential's last step, and Philox with one block per 64-bit lane.
//!
//! Needs AVX-512 F, BW (byte comparisons of the keep bits), DQ (mask/vector moves, `vandps`)
//! and VL, with the AVX2 table's features; [`Avx512`]'s microkernels check them before they
//! run (see the parent module).

use super::has_avx512;
use crate::exp::CUTOFF;
use crate::lanes::{F32s, U32s};
use core::arch::x86_64::*;
use core::ops::{Add, BitAnd, BitOr, BitXor, Div, Mul, Shl, Shr, Sub};

/// The kernel of the AVX-512 table: AVX-512 F/BW/DQ/VL, 16 lanes, chosen at run time.
///
/// On a CPU without those features every call through it returns
/// [`Error::UnsupportedKernel`](crate::Error::UnsupportedKernel). [`Best`](crate::Best) does not
/// pick it yet (see [`isa`](fn@crate::isa)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Avx512;

/// The target features of the table's microkernels.
macro_rules! avx512_microkernel {
    ($($f:tt)*) => {
        microkernel!(
            "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,f16c,lzcnt,popcnt",
            has_avx512,
            crate::Wide16,
            $($f)*
        );
    };
}

table_kernel!(
    Avx512,
    "avx512",
    "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,f16c,lzcnt,popcnt",
    has_avx512,
    crate::Wide16
);
crate::kernel::vector::vector_passes!(Avx512, 16, F32x16, avx512_microkernel);

/// 16 `f32` lanes. Comparison results are lane masks (all bits set or clear).
#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

/// 16 `u32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct U32x16(__m512i);

#[inline(always)]
fn mask_of(v: __m512) -> __mmask16 {
    intrinsics!(_mm512_movepi32_mask(_mm512_castps_si512(v)))
}

#[inline(always)]
fn vector_of(k: __mmask16) -> __m512 {
    intrinsics!(_mm512_castsi512_ps(_mm512_movm_epi32(k)))
}

binary!(F32x16, Add, add, _mm512_add_ps);
binary!(F32x16, Sub, sub, _mm512_sub_ps);
binary!(F32x16, Mul, mul, _mm512_mul_ps);
binary!(F32x16, Div, div, _mm512_div_ps);
binary!(F32x16, BitAnd, bitand, _mm512_and_ps);
binary!(F32x16, BitOr, bitor, _mm512_or_ps);
binary!(U32x16, Add, add, _mm512_add_epi32);
binary!(U32x16, BitAnd, bitand, _mm512_and_si512);
binary!(U32x16, BitXor, bitxor, _mm512_xor_si512);

shifts!(U32x16, _mm512_sll_epi32, _mm512_srl_epi32);

impl F32s<16> for F32x16 {
    type U = U32x16;
    const PAIRS: bool = true;
    #[cfg(test)]
    const FUSED: bool = true;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self(intrinsics!(_mm512_set1_ps(v)))
    }
    #[inline(always)]
    fn load(a: &[f32; 16]) -> Self {
        Self(intrinsics!(_mm512_loadu_ps(a.as_ptr())))
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; 16]) {
        intrinsics!(_mm512_storeu_ps(a.as_mut_ptr(), self.0))
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(intrinsics!(_mm512_fmadd_ps(self.0, a.0, b.0)))
    }
    #[inline(always)]
    fn max_fast(self, o: Self) -> Self {
        Self(intrinsics!(_mm512_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(vector_of(intrinsics!(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(
            self.0, o.0
        ))))
    }
    #[inline(always)]
    fn lt_mask(self, o: Self) -> Self {
        Self(vector_of(intrinsics!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(
            self.0, o.0
        ))))
    }
    #[inline(always)]
    fn ne_mask(self, o: Self) -> Self {
        Self(vector_of(intrinsics!(_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(
            self.0, o.0
        ))))
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        Self(intrinsics!(_mm512_mask_blend_ps(mask_of(mask.0), f.0, t.0)))
    }
    #[inline(always)]
    fn any(self) -> bool {
        mask_of(self.0) != 0
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // Halving: log2(16) steps, a short chain between the passes.
        let v = self.0;
        intrinsics!({
            let h = _mm256_max_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            );
            let q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let e = _mm_max_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_max_ss(e, _mm_movehdup_ps(e)))
        })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let v = self.0;
        intrinsics!({
            let h = _mm256_add_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            );
            let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let e = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(e, _mm_movehdup_ps(e)))
        })
    }
    #[inline(always)]
    fn to_bits(self) -> U32x16 {
        U32x16(intrinsics!(_mm512_castps_si512(self.0)))
    }
    #[inline(always)]
    fn from_bits(u: U32x16) -> Self {
        Self(intrinsics!(_mm512_castsi512_ps(u.0)))
    }
    /// A zero-masked move: LLVM folds it into the instruction before (pass 3's multiply from
    /// memory becomes one zero-masked multiply per chunk).
    #[inline(always)]
    fn kept(self, bits: u32) -> Self {
        Self(intrinsics!(_mm512_maskz_mov_ps(bits as u16, self.0)))
    }
    /// Three instructions: a compare straight into a mask register (`NLT_UQ`, so NaN lanes stay
    /// set), `q = 1 + t p`, and a zero-masked `vscalefps` for `2^n q`, where the portable form
    /// spends a shift, a multiply, an FMA, a compare, a mask inversion and a masked FMA. The
    /// rounding is the same wherever `t 2^n` is normal (scaling by a power of two is exact);
    /// below, this form is the more accurate.
    #[inline(always)]
    fn exp_finish(d: Self, _vn: Self, n: Self, t: Self, p: Self) -> Self {
        Self(intrinsics!({
            let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(d.0, _mm512_set1_ps(CUTOFF));
            let q = _mm512_fmadd_ps(t.0, p.0, _mm512_set1_ps(1.0));
            _mm512_maskz_scalef_ps(keep, q, n.0)
        }))
    }
}

impl U32s<16> for U32x16 {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        Self(intrinsics!(_mm512_set1_epi32(v as i32)))
    }
    #[cfg(test)]
    fn to_array(self) -> [u32; 16] {
        let mut a = [0u32; 16];
        intrinsics!(_mm512_storeu_epi32(a.as_mut_ptr().cast(), self.0));
        a
    }
    #[inline(always)]
    fn from_array(a: [u32; 16]) -> Self {
        Self(intrinsics!(_mm512_loadu_epi32(a.as_ptr().cast())))
    }
    #[inline(always)]
    fn mul_lo_hi(self, o: Self) -> (Self, Self) {
        intrinsics!({
            let even = _mm512_mul_epu32(self.0, o.0);
            let odd = _mm512_mul_epu32(
                _mm512_srli_epi64::<32>(self.0),
                _mm512_srli_epi64::<32>(o.0),
            );
            let lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
            let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(even), odd);
            (Self(lo), Self(hi))
        })
    }
    #[inline(always)]
    fn gt_mask_i32(self, o: Self) -> Self {
        Self(intrinsics!(_mm512_movm_epi32(_mm512_cmpgt_epi32_mask(
            self.0, o.0
        ))))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(intrinsics!(_mm512_movm_epi32(_mm512_cmpeq_epi32_mask(
            self.0, o.0
        ))))
    }
    /// One unsigned byte comparison into a 64-bit mask register; the register's bytes in memory
    /// order are the lanes' little-endian bytes.
    #[inline(always)]
    fn bytes_gt(self, gt: u8) -> u64 {
        intrinsics!(_mm512_cmpgt_epu8_mask(self.0, _mm512_set1_epi8(gt as i8)))
    }
    #[inline(always)]
    fn bytes_eq(self, eq: u8) -> u64 {
        intrinsics!(_mm512_cmpeq_epi8_mask(self.0, _mm512_set1_epi8(eq as i8)))
    }
    #[inline(always)]
    fn transpose_quarters(w: [Self; 4]) -> [Self; 4] {
        let [U32x16(a), U32x16(b), U32x16(c), U32x16(d)] = w;
        intrinsics!({
            let (t0, t1) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
            let (t2, t3) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
            [
                Self(_mm512_unpacklo_epi64(t0, t2)),
                Self(_mm512_unpackhi_epi64(t0, t2)),
                Self(_mm512_unpacklo_epi64(t1, t3)),
                Self(_mm512_unpackhi_epi64(t1, t3)),
            ]
        })
    }
    /// Only the chains of the registers asked for: a row of 64 columns needs 4 blocks, not 16.
    #[inline(always)]
    fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4] {
        let z = Self::splat(0);
        if regs <= 1 {
            [philox::in_order_4(first, c, key), z, z, z]
        } else if regs <= 2 {
            let [[a, b]] = philox::in_order::<1>(first, c, key);
            [a, b, z, z]
        } else {
            let [[a, b], [d, e]] = philox::in_order::<2>(first, c, key);
            [a, b, d, e]
        }
    }
    /// Four chains of 8 blocks.
    #[inline(always)]
    fn blocks_in_order_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([Self; 4], [Self; 4]) {
        let [[a0, a1], [a2, a3], [b0, b1], [b2, b3]] = philox::in_order::<4>(first, c, key);
        ([a0, a1, a2, a3], [b0, b1, b2, b3])
    }
    #[inline(always)]
    fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4] {
        philox::x1(a, key)
    }
    const ROWS_AHEAD: bool = true;
    #[inline(always)]
    fn rows_ahead<const B: usize>(row: u64, key: [u32; 2]) -> [Self; 8] {
        philox::rows_ahead::<B>(row, key)
    }
    /// One chain of 8 blocks in one register of 64-bit lanes: half the work of 16 lanes.
    #[inline(always)]
    fn word0_x8(c0: [u32; 8], c: [u32; 3], key: [u32; 2]) -> [u32; 8] {
        let s = [
            philox::u64s(c0.map(u64::from)),
            philox::splat64(c[0]),
            philox::splat64(c[1]),
            philox::splat64(c[2]),
        ];
        philox::word0(s, key)
    }
    #[inline(always)]
    fn word0_x8_rows(c0: [u32; 8], c1: u32, rows: [u64; 8], key: [u32; 2]) -> [u32; 8] {
        let s = [
            philox::u64s(c0.map(u64::from)),
            philox::splat64(c1),
            philox::u64s(rows.map(|r| u64::from(r as u32))),
            philox::u64s(rows.map(|r| r >> 32)),
        ];
        philox::word0(s, key)
    }
}

/// Philox rounds with one block per 64-bit lane.
///
/// `vpmuludq` multiplies the low 32 bits of each 64-bit lane into a full 64-bit product, so a
/// block whose words sit in the low halves of 64-bit lanes needs no shuffle before the multiply,
/// and its product's two halves are `lo` (in place) and `hi` (one `vpshufd` away). The high
/// halves carry garbage that no later step reads. A round is then 2 multiplies, 2 shuffles and 2
/// three-way xors per 8 blocks, against 6 shuffles and unpacks per multiply for a general
/// 32-bit widening multiply that returns the halves in 32-bit lane order.
mod philox {
    use super::U32x16;
    use crate::lanes::U32s;
    use crate::philox::{M0, M1, ROUNDS, W0, W1};
    use core::arch::x86_64::*;

    /// 8 blocks, word `i` of block `k` in the low half of 64-bit lane `k` of `[i]`.
    type Eight = [__m512i; 4];

    #[inline(always)]
    pub(super) fn u64s(a: [u64; 8]) -> __m512i {
        intrinsics!(_mm512_loadu_epi64(a.as_ptr().cast()))
    }

    #[inline(always)]
    pub(super) fn splat64(v: u32) -> __m512i {
        intrinsics!(_mm512_set1_epi64(i64::from(v)))
    }

    #[inline(always)]
    fn i32s(a: [i32; 16]) -> __m512i {
        intrinsics!(_mm512_loadu_epi32(a.as_ptr()))
    }

    /// Word 0 of the low halves of `s[0]` after the rounds.
    #[inline(always)]
    pub(super) fn word0(s: Eight, key: [u32; 2]) -> [u32; 8] {
        let [s] = rounds([s], key);
        let mut out = [0u64; 8];
        intrinsics!(_mm512_storeu_epi64(out.as_mut_ptr().cast(), s[0]));
        out.map(|w| w as u32)
    }

    /// Lanes `4k, 4k+1` of each 128-bit quarter `k` into `lo`, lanes `4k+2, 4k+3` into `hi`.
    #[inline(always)]
    fn spread(v: [U32x16; 4]) -> (Eight, Eight) {
        let (mut lo, mut hi) = ([zero(); 4], [zero(); 4]);
        for ((l, h), w) in lo.iter_mut().zip(&mut hi).zip(v) {
            (*l, *h) = intrinsics!((
                _mm512_unpacklo_epi32(w.0, w.0),
                _mm512_unpackhi_epi32(w.0, w.0)
            ));
        }
        (lo, hi)
    }

    #[inline(always)]
    fn zero() -> __m512i {
        intrinsics!(_mm512_setzero_si512())
    }

    /// The inverse of [`spread`]: the low halves back in lane order (one `vpermt2d` a word).
    #[inline(always)]
    fn gather(lo: Eight, hi: Eight) -> [U32x16; 4] {
        let idx = i32s([0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30]);
        let mut out = [U32x16(zero()); 4];
        for ((o, l), h) in out.iter_mut().zip(lo).zip(hi) {
            *o = U32x16(intrinsics!(_mm512_permutex2var_epi32(l, idx, h)));
        }
        out
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

    #[inline(always)]
    fn round(c: Eight, m0: __m512i, m1: __m512i, k0: __m512i, k1: __m512i) -> Eight {
        let [c0, c1, c2, c3] = c;
        intrinsics!({
            let p0 = _mm512_mul_epu32(c0, m0);
            let p1 = _mm512_mul_epu32(c2, m1);
            // The high half of each 64-bit lane moved into its low half.
            let h0 = _mm512_shuffle_epi32::<0b10_11_00_01>(p0);
            let h1 = _mm512_shuffle_epi32::<0b10_11_00_01>(p1);
            [
                _mm512_xor_si512(_mm512_xor_si512(h1, c1), k0),
                p1,
                _mm512_xor_si512(_mm512_xor_si512(h0, c3), k1),
                p0,
            ]
        })
    }

    /// The ten rounds on `C` independent chains of 8 blocks, interleaved round by round: one
    /// chain is latency-bound, four keep both 512-bit ports busy.
    #[inline(always)]
    fn rounds<const C: usize>(mut chains: [Eight; C], key: [u32; 2]) -> [Eight; C] {
        let (m0, m1) = intrinsics!((_mm512_set1_epi32(M0 as i32), _mm512_set1_epi32(M1 as i32)));
        for &[k0, k1] in &schedule(key) {
            let (kv0, kv1) =
                intrinsics!((_mm512_set1_epi32(k0 as i32), _mm512_set1_epi32(k1 as i32)));
            for c in &mut chains {
                *c = round(*c, m0, m1, kv0, kv1);
            }
        }
        chains
    }

    /// One batch of 16 blocks, two chains of 8 in flight.
    #[inline(always)]
    pub(super) fn x1(a: [U32x16; 4], key: [u32; 2]) -> [U32x16; 4] {
        let (lo, hi) = spread(a);
        let [lo, hi] = rounds([lo, hi], key);
        gather(lo, hi)
    }

    /// Blocks `first .. first + 4` (wrapping) with counters `[first + b, c[0], c[1], c[2]]`, in
    /// output order, one per 128-bit lane: a row of up to 64 columns. One register, so one
    /// latency-bound chain; a round reverses the product's dwords `[lo0, hi0, lo1, hi1]` and xors
    /// in `[w1, 0, w3, 0]` (a 64-bit shift of the state) and the key: four instructions a round,
    /// where [`in_order`] would spend 8 blocks' work on these 4.
    #[inline(always)]
    pub(super) fn in_order_4(first: u32, c: [u32; 3], key: [u32; 2]) -> U32x16 {
        let m = U32x16::from_array(core::array::from_fn(|d| [M0, 0, M1, 0][d % 4]));
        let step = U32x16::from_array(core::array::from_fn(|d| [W0, 0, W1, 0][d % 4]));
        let [k0, k1] = key;
        let mut k = U32x16::from_array(core::array::from_fn(|d| [k0, 0, k1, 0][d % 4]));
        let [c0, c1, c2] = c;
        let mut v = U32x16::from_array(core::array::from_fn(|d| {
            [first.wrapping_add((d / 4) as u32), c0, c1, c2][d % 4]
        }));
        for round in 0..ROUNDS {
            if round > 0 {
                k = k + step;
            }
            v = U32x16(intrinsics!({
                let p = _mm512_mul_epu32(v.0, m.0);
                let p = _mm512_shuffle_epi32::<0b00_01_10_11>(p);
                let w = _mm512_srli_epi64::<32>(v.0);
                _mm512_xor_si512(_mm512_xor_si512(p, w), k.0)
            }));
        }
        v
    }

    /// Blocks `first + b` (`b < 8 C`, wrapping) with counters `[first + b, c[0], c[1], c[2]]`,
    /// in output order (`philox::blocks_in_order`): element `[i][h]` holds blocks
    /// `8 i + 4 h .. 8 i + 4 h + 4`, one per 128-bit lane, its words in order. `C` independent
    /// chains of 8.
    ///
    /// The rounds are those above (a block per 64-bit lane, the counter's constant words
    /// splats, so nothing to spread), then four permutes per 8 blocks ([`chains_in_order`]),
    /// against 60 instructions for the rounds. Rounds kept in block order (one block per
    /// 128-bit lane, three instructions per round per 4 blocks) are slower: LLVM fuses their
    /// blend and shuffle into one `vpermt2d`, three cycles on every round's path.
    #[inline(always)]
    pub(super) fn in_order<const C: usize>(
        first: u32,
        c: [u32; 3],
        key: [u32; 2],
    ) -> [[U32x16; 2]; C] {
        let mut chains = [[zero(); 4]; C];
        for (i, chain) in chains.iter_mut().enumerate() {
            let first = first.wrapping_add(8 * i as u32);
            let w0: [u64; 8] = core::array::from_fn(|k| u64::from(first.wrapping_add(k as u32)));
            *chain = [u64s(w0), splat64(c[0]), splat64(c[1]), splat64(c[2])];
        }
        chains_in_order(chains, key)
    }

    /// Blocks `0 .. B` of the dropout main stream (counters `[b, 0, R as u32, (R >> 32) as u32]`)
    /// of the `32 / B` rows `R = row .. row + 32 / B` (wrapping), `B` = 4 or 8, in output order
    /// (see `U32s::rows_ahead`). Four chains of 8 blocks: 32 blocks at full throughput, where a
    /// row of 64 or 128 columns alone is one latency-bound chain of 4 or 8.
    #[inline(always)]
    pub(super) fn rows_ahead<const B: usize>(row: u64, key: [u32; 2]) -> [U32x16; 8] {
        let mut chains = [[zero(); 4]; 4];
        for (i, chain) in chains.iter_mut().enumerate() {
            let r: [u64; 8] =
                core::array::from_fn(|k| row.wrapping_add((8 / B * i + k / B) as u64));
            *chain = [
                u64s(core::array::from_fn(|k| (k % B) as u64)),
                zero(),
                u64s(r.map(|r| u64::from(r as u32))),
                u64s(r.map(|r| r >> 32)),
            ];
        }
        let [[a, b], [c, d], [e, f], [g, h]] = chains_in_order(chains, key);
        [a, b, c, d, e, f, g, h]
    }

    /// The rounds of `C` chains of 8 blocks, each chain's blocks then in output order, four per
    /// register (two `vpermt2d` pair words 0-1 and 2-3 of each block into 64-bit lanes, two
    /// `vpermt2q` put each block's two pairs in a 128-bit lane).
    #[inline(always)]
    fn chains_in_order<const C: usize>(chains: [Eight; C], key: [u32; 2]) -> [[U32x16; 2]; C] {
        let pair = i32s([0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30]);
        let lo = u64s([0, 8, 1, 9, 2, 10, 3, 11]);
        let hi = u64s([4, 12, 5, 13, 6, 14, 7, 15]);
        let mut out = [[U32x16(zero()); 2]; C];
        for (o, [w0, w1, w2, w3]) in out.iter_mut().zip(rounds(chains, key)) {
            *o = intrinsics!({
                let p01 = _mm512_permutex2var_epi32(w0, pair, w1);
                let p23 = _mm512_permutex2var_epi32(w2, pair, w3);
                [
                    U32x16(_mm512_permutex2var_epi64(p01, lo, p23)),
                    U32x16(_mm512_permutex2var_epi64(p01, hi, p23)),
                ]
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    /// The exponential's sweep (see `exp`'s tests) on this table's vectors, where the CPU has it.
    #[test]
    fn exp_matches_the_steps_and_exp() {
        if super::super::tests::runs("avx512", super::super::has_avx512()) {
            crate::exp::tests::sweep::<16, super::F32x16>();
        }
    }

    /// `tanh`'s sweep (see `tanh`'s tests) on this table's vectors, where the CPU has it.
    #[test]
    fn tanh_matches_the_steps_and_tanh() {
        if super::super::tests::runs("avx512", super::super::has_avx512()) {
            crate::tanh::tests::sweep::<16, super::F32x16>();
        }
    }

    /// Every `U32s` method against its scalar definition: the 64-bit-lane Philox (blocks in
    /// order, rows ahead, words 0), the byte comparisons from mask registers, the transpose.
    #[test]
    fn u32s_keep_their_contract() {
        if super::super::tests::runs("avx512", super::super::has_avx512()) {
            crate::lanes::tests::u32s_contract::<16, super::U32x16>();
        }
    }
}
