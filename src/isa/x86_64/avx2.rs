//! The AVX2 table: 8 lanes in `ymm` registers, with FMA.
//!
//! Needs AVX2, FMA, BMI1, BMI2, F16C, LZCNT and POPCNT (x86-64-v3); [`Avx2`]'s microkernels
//! check them before they run (see the parent module).

use super::has_avx2;
use crate::lanes::{F32s, U32s, exp_finish_portable, kept_portable};
use crate::philox::{portable_in_order, portable_in_order_x2, portable_x1};
use core::arch::x86_64::*;
use core::ops::{Add, BitAnd, BitOr, BitXor, Mul, Shl, Shr, Sub};

/// The kernel of the AVX2 table: AVX2 and FMA, 8 lanes, chosen at run time.
///
/// On a CPU without those features every call through it returns
/// [`Error::UnsupportedKernel`](crate::Error::UnsupportedKernel); [`Best`](crate::Best) picks
/// it where AVX-512 is missing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Avx2;

/// The target features of the table's microkernels.
macro_rules! avx2_microkernel {
    ($($f:tt)*) => {
        microkernel!(
            "avx2,fma,bmi1,bmi2,f16c,lzcnt,popcnt",
            has_avx2,
            crate::Wide8,
            $($f)*
        );
    };
}

crate::kernel::one_table!(Avx2, "avx2", has_avx2());
crate::kernel::vector::vector_passes!(Avx2, 8, F32x8, avx2_microkernel);

/// 8 `f32` lanes. Comparison results are lane masks (all bits set or clear).
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

/// 8 `u32` lanes.
#[derive(Clone, Copy)]
pub(crate) struct U32x8(__m256i);

macro_rules! binary {
    ($t:ident, $trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for $t {
            type Output = Self;
            #[inline(always)]
            fn $method(self, o: Self) -> Self {
                Self(intrinsics!($intrinsic(self.0, o.0)))
            }
        }
    };
}

binary!(F32x8, Add, add, _mm256_add_ps);
binary!(F32x8, Sub, sub, _mm256_sub_ps);
binary!(F32x8, Mul, mul, _mm256_mul_ps);
binary!(F32x8, BitAnd, bitand, _mm256_and_ps);
binary!(F32x8, BitOr, bitor, _mm256_or_ps);
binary!(U32x8, Add, add, _mm256_add_epi32);
binary!(U32x8, BitAnd, bitand, _mm256_and_si256);
binary!(U32x8, BitXor, bitxor, _mm256_xor_si256);

impl Shl<u32> for U32x8 {
    type Output = Self;
    #[inline(always)]
    fn shl(self, n: u32) -> Self {
        Self(intrinsics!(_mm256_sll_epi32(
            self.0,
            _mm_cvtsi32_si128(n as i32)
        )))
    }
}

impl Shr<u32> for U32x8 {
    type Output = Self;
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        Self(intrinsics!(_mm256_srl_epi32(
            self.0,
            _mm_cvtsi32_si128(n as i32)
        )))
    }
}

impl F32s<8> for F32x8 {
    type U = U32x8;
    const PAIRS: bool = true;
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
        let [a, b, c, d] = w.map(|v| v.0);
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
