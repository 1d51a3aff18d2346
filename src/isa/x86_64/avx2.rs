//! The AVX2 table: vectors of 16 lanes held in two `ymm` registers, with FMA.
//!
//! Sixteen lanes rather than eight: the passes' loops then run two registers per step with no
//! change to the generic code, and rows of up to 64 columns fit the in-register path
//! (`SHORT_CHUNKS` vectors), as on the AVX-512 table. The 8-lane types below are its halves,
//! and run the tie-break blocks (8 at a time) on their own.
//!
//! Needs AVX2, FMA, BMI1, BMI2, F16C, LZCNT and POPCNT (x86-64-v3); [`Avx2`]'s microkernels
//! check them before they run (see the parent module).

use super::has_avx2;
use crate::lanes::{F32s, U32s, exp_finish_portable, kept_portable};
use crate::philox::{portable_in_order, portable_in_order_x2, portable_x1};
use core::arch::x86_64::*;
use core::ops::{Add, BitAnd, BitOr, BitXor, Div, Mul, Shl, Shr, Sub};

/// The kernel of the AVX2 table: AVX2 and FMA, 16 lanes in two registers, chosen at run time.
///
/// On a CPU without those features every call through it returns
/// [`Error::UnsupportedKernel`](crate::Error::UnsupportedKernel); [`Best`](crate::Best) picks
/// it wherever it can run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Avx2;

/// The target features of the table's microkernels.
macro_rules! avx2_microkernel {
    ($($f:tt)*) => {
        microkernel!(
            "avx2,fma,bmi1,bmi2,f16c,lzcnt,popcnt",
            has_avx2,
            crate::Wide16,
            $($f)*
        );
    };
}

table_kernel!(
    Avx2,
    "avx2",
    "avx2,fma,bmi1,bmi2,f16c,lzcnt,popcnt",
    has_avx2,
    crate::Wide16
);
crate::kernel::vector::vector_passes!(Avx2, 16, F32x16, avx2_microkernel);

/// 8 `f32` lanes. Comparison results are lane masks (all bits set or clear).
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

/// 8 `u32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct U32x8(__m256i);

binary!(F32x8, Add, add, _mm256_add_ps);
binary!(F32x8, Sub, sub, _mm256_sub_ps);
binary!(F32x8, Mul, mul, _mm256_mul_ps);
binary!(F32x8, Div, div, _mm256_div_ps);
binary!(F32x8, BitAnd, bitand, _mm256_and_ps);
binary!(F32x8, BitOr, bitor, _mm256_or_ps);
binary!(U32x8, Add, add, _mm256_add_epi32);
binary!(U32x8, BitAnd, bitand, _mm256_and_si256);
binary!(U32x8, BitXor, bitxor, _mm256_xor_si256);

shifts!(U32x8, _mm256_sll_epi32, _mm256_srl_epi32);

impl F32s<8> for F32x8 {
    type U = U32x8;
    const PAIRS: bool = true;
    #[cfg(test)]
    const FUSED: bool = true;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self(intrinsics!(_mm256_set1_ps(v)))
    }
    #[inline(always)]
    fn load(a: &[f32; 8]) -> Self {
        Self(intrinsics!(_mm256_loadu_ps(a.as_ptr())))
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; 8]) {
        intrinsics!(_mm256_storeu_ps(a.as_mut_ptr(), self.0))
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(intrinsics!(_mm256_fmadd_ps(self.0, a.0, b.0)))
    }
    #[inline(always)]
    fn max_fast(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_max_ps(self.0, o.0)))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, o.0)))
    }
    #[inline(always)]
    fn lt_mask(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0)))
    }
    #[inline(always)]
    fn ne_mask(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_cmp_ps::<_CMP_NEQ_UQ>(self.0, o.0)))
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        Self(intrinsics!(_mm256_blendv_ps(f.0, t.0, mask.0)))
    }
    #[inline(always)]
    fn any(self) -> bool {
        intrinsics!(_mm256_movemask_ps(self.0)) != 0
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let v = self.0;
        intrinsics!({
            let q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let e = _mm_max_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_max_ss(e, _mm_movehdup_ps(e)))
        })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let v = self.0;
        intrinsics!({
            let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let e = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(e, _mm_movehdup_ps(e)))
        })
    }
    #[inline(always)]
    fn to_bits(self) -> U32x8 {
        U32x8(intrinsics!(_mm256_castps_si256(self.0)))
    }
    #[inline(always)]
    fn from_bits(u: U32x8) -> Self {
        Self(intrinsics!(_mm256_castsi256_ps(u.0)))
    }
    #[inline(always)]
    fn kept(self, bits: u32) -> Self {
        kept_portable::<8, Self>(self, bits)
    }
    #[inline(always)]
    fn exp_finish(d: Self, vn: Self, n: Self, t: Self, p: Self) -> Self {
        exp_finish_portable::<8, Self>(d, vn, n, t, p)
    }
}

impl U32s<8> for U32x8 {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        Self(intrinsics!(_mm256_set1_epi32(v as i32)))
    }
    #[cfg(test)]
    fn to_array(self) -> [u32; 8] {
        let mut a = [0u32; 8];
        intrinsics!(_mm256_storeu_si256(a.as_mut_ptr().cast(), self.0));
        a
    }
    #[inline(always)]
    fn from_array(a: [u32; 8]) -> Self {
        Self(intrinsics!(_mm256_loadu_si256(a.as_ptr().cast())))
    }
    #[inline(always)]
    fn mul_lo_hi(self, o: Self) -> (Self, Self) {
        intrinsics!({
            let even = _mm256_mul_epu32(self.0, o.0);
            let odd = _mm256_mul_epu32(
                _mm256_srli_epi64::<32>(self.0),
                _mm256_srli_epi64::<32>(o.0),
            );
            let lo = _mm256_blend_epi32::<0xAA>(even, _mm256_slli_epi64::<32>(odd));
            let hi = _mm256_blend_epi32::<0xAA>(_mm256_srli_epi64::<32>(even), odd);
            (Self(lo), Self(hi))
        })
    }
    #[inline(always)]
    fn gt_mask_i32(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_cmpgt_epi32(self.0, o.0)))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(intrinsics!(_mm256_cmpeq_epi32(self.0, o.0)))
    }
    /// Unsigned bytes compared as signed after flipping their top bits; the register's bytes in
    /// memory order are the lanes' little-endian bytes.
    #[inline(always)]
    fn bytes_gt(self, gt: u8) -> u64 {
        let m = intrinsics!({
            let flip = _mm256_set1_epi8(i8::MIN);
            let a = _mm256_xor_si256(self.0, flip);
            let b = _mm256_set1_epi8((gt ^ 0x80) as i8);
            _mm256_movemask_epi8(_mm256_cmpgt_epi8(a, b))
        });
        u64::from(m as u32)
    }
    #[inline(always)]
    fn bytes_eq(self, eq: u8) -> u64 {
        let m = intrinsics!(_mm256_movemask_epi8(_mm256_cmpeq_epi8(
            self.0,
            _mm256_set1_epi8(eq as i8)
        )));
        u64::from(m as u32)
    }
    /// Eight unpacks within the 128-bit lanes (no lane crossing).
    #[inline(always)]
    fn transpose_quarters(w: [Self; 4]) -> [Self; 4] {
        let [U32x8(a), U32x8(b), U32x8(c), U32x8(d)] = w;
        intrinsics!({
            let (t0, t1) = (_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
            let (t2, t3) = (_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
            [
                Self(_mm256_unpacklo_epi64(t0, t2)),
                Self(_mm256_unpackhi_epi64(t0, t2)),
                Self(_mm256_unpacklo_epi64(t1, t3)),
                Self(_mm256_unpackhi_epi64(t1, t3)),
            ]
        })
    }
    #[inline(always)]
    fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4] {
        portable_in_order::<8, Self>(first, c, key, regs)
    }
    #[inline(always)]
    fn blocks_in_order_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([Self; 4], [Self; 4]) {
        portable_in_order_x2::<8, Self>(first, c, key)
    }
    #[inline(always)]
    fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4] {
        portable_x1::<8, Self>(a, key)
    }
    #[inline(always)]
    fn word0_x8(c0: [u32; 8], c: [u32; 3], key: [u32; 2]) -> [u32; 8] {
        let ctr = [
            Self::from_array(c0),
            Self::splat(c[0]),
            Self::splat(c[1]),
            Self::splat(c[2]),
        ];
        words(portable_x1::<8, Self>(ctr, key)[0])
    }
    #[inline(always)]
    fn word0_x8_rows(c0: [u32; 8], c1: u32, rows: [u64; 8], key: [u32; 2]) -> [u32; 8] {
        let ctr = [
            Self::from_array(c0),
            Self::splat(c1),
            Self::from_array(rows.map(|r| r as u32)),
            Self::from_array(rows.map(|r| (r >> 32) as u32)),
        ];
        words(portable_x1::<8, Self>(ctr, key)[0])
    }
}

/// The lanes of `v`.
#[inline(always)]
fn words(v: U32x8) -> [u32; 8] {
    let mut out = [0u32; 8];
    intrinsics!(_mm256_storeu_si256(out.as_mut_ptr().cast(), v.0));
    out
}

/// 16 `f32` lanes as two halves of 8.
#[derive(Clone, Copy)]
pub(crate) struct F32x16([F32x8; 2]);

/// 16 `u32` lanes as two halves of 8.
#[derive(Clone, Copy)]
pub(crate) struct U32x16([U32x8; 2]);

macro_rules! halves {
    ($t:ident, $trait:ident, $method:ident) => {
        impl $trait for $t {
            type Output = Self;
            #[inline(always)]
            fn $method(self, o: Self) -> Self {
                let ([a0, a1], [b0, b1]) = (self.0, o.0);
                Self([a0.$method(b0), a1.$method(b1)])
            }
        }
    };
}

halves!(F32x16, Add, add);
halves!(F32x16, Sub, sub);
halves!(F32x16, Mul, mul);
halves!(F32x16, Div, div);
halves!(F32x16, BitAnd, bitand);
halves!(F32x16, BitOr, bitor);
halves!(U32x16, Add, add);
halves!(U32x16, BitAnd, bitand);
halves!(U32x16, BitXor, bitxor);

impl Shl<u32> for U32x16 {
    type Output = Self;
    #[inline(always)]
    fn shl(self, n: u32) -> Self {
        let [lo, hi] = self.0;
        Self([lo << n, hi << n])
    }
}

impl Shr<u32> for U32x16 {
    type Output = Self;
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        let [lo, hi] = self.0;
        Self([lo >> n, hi >> n])
    }
}

impl F32s<16> for F32x16 {
    type U = U32x16;
    const PAIRS: bool = true;
    #[cfg(test)]
    const FUSED: bool = true;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self([F32x8::splat(v); 2])
    }
    #[inline(always)]
    fn load(a: &[f32; 16]) -> Self {
        let p = a.as_ptr();
        Self(intrinsics!([
            F32x8(_mm256_loadu_ps(p)),
            F32x8(_mm256_loadu_ps(p.add(8)))
        ]))
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; 16]) {
        let p = a.as_mut_ptr();
        let [lo, hi] = self.0;
        intrinsics!({
            _mm256_storeu_ps(p, lo.0);
            _mm256_storeu_ps(p.add(8), hi.0);
        })
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        let ([s0, s1], [a0, a1], [b0, b1]) = (self.0, a.0, b.0);
        Self([s0.mul_add(a0, b0), s1.mul_add(a1, b1)])
    }
    #[inline(always)]
    fn max_fast(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.max_fast(b0), a1.max_fast(b1)])
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.eq_mask(b0), a1.eq_mask(b1)])
    }
    #[inline(always)]
    fn lt_mask(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.lt_mask(b0), a1.lt_mask(b1)])
    }
    #[inline(always)]
    fn ne_mask(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.ne_mask(b0), a1.ne_mask(b1)])
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        let ([m0, m1], [t0, t1], [f0, f1]) = (mask.0, t.0, f.0);
        Self([F32x8::select(m0, t0, f0), F32x8::select(m1, t1, f1)])
    }
    #[inline(always)]
    fn any(self) -> bool {
        let [lo, hi] = self.0;
        (lo | hi).any()
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let [lo, hi] = self.0;
        lo.max_fast(hi).reduce_max()
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let [lo, hi] = self.0;
        (lo + hi).reduce_add()
    }
    #[inline(always)]
    fn to_bits(self) -> U32x16 {
        let [lo, hi] = self.0;
        U32x16([lo.to_bits(), hi.to_bits()])
    }
    #[inline(always)]
    fn from_bits(u: U32x16) -> Self {
        let [lo, hi] = u.0;
        Self([F32x8::from_bits(lo), F32x8::from_bits(hi)])
    }
    #[inline(always)]
    fn kept(self, bits: u32) -> Self {
        let [lo, hi] = self.0;
        Self([lo.kept(bits), hi.kept(bits >> 8)])
    }
    #[inline(always)]
    fn exp_finish(d: Self, vn: Self, n: Self, t: Self, p: Self) -> Self {
        exp_finish_portable::<16, Self>(d, vn, n, t, p)
    }
}

impl U32s<16> for U32x16 {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        Self([U32x8::splat(v); 2])
    }
    #[cfg(test)]
    fn to_array(self) -> [u32; 16] {
        let [lo, hi] = self.0.map(U32s::to_array);
        core::array::from_fn(|l| if l < 8 { lo[l] } else { hi[l - 8] })
    }
    #[inline(always)]
    fn from_array(a: [u32; 16]) -> Self {
        let p = a.as_ptr();
        Self(intrinsics!([
            U32x8(_mm256_loadu_si256(p.cast())),
            U32x8(_mm256_loadu_si256(p.add(8).cast()))
        ]))
    }
    #[inline(always)]
    fn mul_lo_hi(self, o: Self) -> (Self, Self) {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        let ((l0, h0), (l1, h1)) = (a0.mul_lo_hi(b0), a1.mul_lo_hi(b1));
        (Self([l0, l1]), Self([h0, h1]))
    }
    #[inline(always)]
    fn gt_mask_i32(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.gt_mask_i32(b0), a1.gt_mask_i32(b1)])
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        let ([a0, a1], [b0, b1]) = (self.0, o.0);
        Self([a0.eq_mask(b0), a1.eq_mask(b1)])
    }
    #[inline(always)]
    fn bytes_gt(self, gt: u8) -> u64 {
        let [lo, hi] = self.0;
        lo.bytes_gt(gt) | hi.bytes_gt(gt) << 32
    }
    #[inline(always)]
    fn bytes_eq(self, eq: u8) -> u64 {
        let [lo, hi] = self.0;
        lo.bytes_eq(eq) | hi.bytes_eq(eq) << 32
    }
    /// Per half: the quarters of a half are its 128-bit lanes.
    #[inline(always)]
    fn transpose_quarters(w: [Self; 4]) -> [Self; 4] {
        let [
            U32x16([a0, a1]),
            U32x16([b0, b1]),
            U32x16([c0, c1]),
            U32x16([d0, d1]),
        ] = w;
        let [l0, l1, l2, l3] = U32x8::transpose_quarters([a0, b0, c0, d0]);
        let [h0, h1, h2, h3] = U32x8::transpose_quarters([a1, b1, c1, d1]);
        [
            Self([l0, h0]),
            Self([l1, h1]),
            Self([l2, h2]),
            Self([l3, h3]),
        ]
    }
    /// Only the blocks asked for: up to two registers (8 blocks, a row of up to 128 columns) in
    /// 8-lane halves, each half's register `i` then blocks `2 i, 2 i + 1`.
    #[inline(always)]
    fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4] {
        if regs <= 2 {
            let [a, b, d, e] = portable_in_order::<8, U32x8>(first, c, key, 4);
            let z = U32x8::splat(0);
            [Self([a, b]), Self([d, e]), Self([z, z]), Self([z, z])]
        } else {
            portable_in_order::<16, Self>(first, c, key, regs)
        }
    }
    #[inline(always)]
    fn blocks_in_order_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([Self; 4], [Self; 4]) {
        portable_in_order_x2::<16, Self>(first, c, key)
    }
    #[inline(always)]
    fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4] {
        portable_x1::<16, Self>(a, key)
    }
    #[inline(always)]
    fn word0_x8(c0: [u32; 8], c: [u32; 3], key: [u32; 2]) -> [u32; 8] {
        U32x8::word0_x8(c0, c, key)
    }
    #[inline(always)]
    fn word0_x8_rows(c0: [u32; 8], c1: u32, rows: [u64; 8], key: [u32; 2]) -> [u32; 8] {
        U32x8::word0_x8_rows(c0, c1, rows, key)
    }
}

#[cfg(test)]
mod tests {
    /// The exponential's sweep (see `exp`'s tests) on this table's vectors, where the CPU has it.
    #[test]
    fn exp_matches_the_steps_and_exp() {
        if super::super::tests::runs("avx2", super::super::has_avx2()) {
            crate::exp::tests::sweep::<16, super::F32x16>();
        }
    }

    /// `tanh`'s sweep (see `tanh`'s tests) on this table's vectors, where the CPU has it.
    #[test]
    fn tanh_matches_the_steps_and_tanh() {
        if super::super::tests::runs("avx2", super::super::has_avx2()) {
            crate::tanh::tests::sweep::<16, super::F32x16>();
        }
    }

    /// Every `U32s` method against its scalar definition, at both widths of this table.
    #[test]
    fn u32s_keep_their_contract() {
        if super::super::tests::runs("avx2", super::super::has_avx2()) {
            crate::lanes::tests::u32s_contract::<8, super::U32x8>();
            crate::lanes::tests::u32s_contract::<16, super::U32x16>();
        }
    }
}
