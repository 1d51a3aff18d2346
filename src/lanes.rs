//! The few vector operations the kernels need, over `wide`'s 4-, 8- and 16-lane types.
//!
//! One trait pair, implemented once per width by a macro, lets every kernel be written once and
//! instantiated at each width: the widths then differ only in how `wide` lowers them for the
//! build's target features, and one shared test runs all of them against the scalar reference.

use crate::exp::CUTOFF;
use core::ops::{Add, BitAnd, BitOr, BitXor, Mul, Shl, Shr, Sub};
use wide::{f32x4, f32x8, f32x16, i32x4, i32x8, i32x16, u8x16, u8x32, u8x64, u32x4, u32x8, u32x16};

/// `N` lanes of `f32`. Comparison results are lane masks of the same type (all bits set or clear).
pub(crate) trait F32s<const N: usize>:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
{
    /// The matching `u32` vector.
    type U: U32s<N>;
    fn splat(v: f32) -> Self;
    fn load(a: &[f32; N]) -> Self;
    fn store(self, a: &mut [f32; N]);
    /// `self * a + b`, fused where the build has FMA (so not bit-identical across builds).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Lane maximum; which operand wins when one is NaN is unspecified (callers track NaN apart).
    fn max_fast(self, o: Self) -> Self;
    fn eq_mask(self, o: Self) -> Self;
    fn lt_mask(self, o: Self) -> Self;
    fn ne_mask(self, o: Self) -> Self;
    /// `mask ? t : f`, lane by lane.
    fn select(mask: Self, t: Self, f: Self) -> Self;
    fn any(self) -> bool;
    fn reduce_max(self) -> f32;
    fn reduce_add(self) -> f32;
    fn to_bits(self) -> Self::U;
    fn from_bits(u: Self::U) -> Self;
    /// Lane `l` of `self` where bit `l` of `bits` is set, +0 elsewhere.
    fn kept(self, bits: u32) -> Self;
    /// The last step of [`exp_rr2_p5`](crate::exp): `2^n (1 + t p)`, +0 where `d` is below
    /// [`CUTOFF`], NaN where `d` is NaN. `n` is an integer-valued float, `vn` the same `n` magic-biased (`n + 127`
    /// in its low mantissa bits), for whichever form the build's instructions need.
    fn exp_finish(d: Self, vn: Self, n: Self, t: Self, p: Self) -> Self;
}

/// `N` lanes of `u32`.
pub(crate) trait U32s<const N: usize>:
    Copy
    + Add<Output = Self>
    + BitAnd<Output = Self>
    + BitXor<Output = Self>
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
{
    fn splat(v: u32) -> Self;
    fn from_array(a: [u32; N]) -> Self;
    /// The low and high halves of the 64-bit products, lane by lane.
    fn mul_lo_hi(self, o: Self) -> (Self, Self);
    /// Lanes where `self > o`, both read as `i32` (callers keep values below 2^31).
    fn gt_mask_i32(self, o: Self) -> Self;
    fn eq_mask(self, o: Self) -> Self;
    /// The `4 N` bytes of the lanes in little-endian order (byte `i` = bits `8 (i % 4)..` of lane
    /// `i / 4`) compared with `gt`: bit `i` of the result is `byte_i > gt`.
    fn bytes_gt(self, gt: u8) -> u64;
    /// As [`Self::bytes_gt`], for `byte_i == eq`.
    fn bytes_eq(self, eq: u8) -> u64;
    /// The 4x4 transpose of each 128-bit quarter: lane `4 q + k` of result `i` is lane
    /// `4 q + i` of `w[k]`.
    fn transpose_quarters(w: [Self; 4]) -> [Self; 4];
    /// See [`blocks_in_order`](crate::philox::blocks_in_order).
    fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4];
    /// See [`blocks_in_order_x2`](crate::philox::blocks_in_order_x2).
    fn blocks_in_order_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([Self; 4], [Self; 4]);
    /// Philox4x32-10 over one batch of `N` blocks (see
    /// [`philox_lanes`](crate::philox::philox_lanes)).
    fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4];
}

/// The maximum of the lanes by halving the vector: `log2 N` steps, a short dependency chain
/// between the passes (a lane-by-lane fold with NaN checks is a chain of `3 N`). Which operand
/// wins for a NaN is unspecified, as for [`F32s::max_fast`].
#[inline(always)]
fn max16(v: f32x16) -> f32 {
    let [a, b]: [f32x8; 2] = wide::bytemuck::cast(v);
    max8(a.fast_max(b))
}

#[inline(always)]
fn max8(v: f32x8) -> f32 {
    let [a, b]: [f32x4; 2] = wide::bytemuck::cast(v);
    max4(a.fast_max(b))
}

#[inline(always)]
fn max4(v: f32x4) -> f32 {
    let [a, b, c, d] = v.to_array();
    let (x, y) = (if b > a { b } else { a }, if d > c { d } else { c });
    if y > x { y } else { x }
}

/// [`F32s::kept`] from portable operations: broadcast, test, select.
#[inline(always)]
fn kept_portable<const N: usize, V: F32s<N>>(v: V, bits: u32) -> V {
    let lane_bits = V::U::from_array(core::array::from_fn(|l| 1u32 << l));
    let keep = V::from_bits((V::U::splat(bits) & lane_bits).eq_mask(lane_bits));
    V::select(keep, v, V::splat(0.0))
}

/// [`F32s::exp_finish`]: `2^n` built by shifting the magic-biased `vn` into the exponent field.
#[inline(always)]
fn exp_finish_portable<const N: usize, V: F32s<N>>(d: V, vn: V, _n: V, t: V, p: V) -> V {
    let s = V::from_bits(vn.to_bits() << 23);
    let f = (t * s).mul_add(p, s);
    V::select(d.lt_mask(V::splat(CUTOFF)), V::splat(0.0), f)
}

/// [`F32s::exp_finish`] for 16 lanes: `vscalefps` with AVX-512.
#[inline(always)]
fn exp_finish16(d: f32x16, vn: f32x16, n: f32x16, t: f32x16, p: f32x16) -> f32x16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        let _ = vn;
        exp_finish_avx512(d, n, t, p)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    exp_finish_portable::<16, f32x16>(d, vn, n, t, p)
}

/// [`F32s::exp_finish`] in three instructions: a compare straight into a mask register (`NLT_UQ`,
/// so NaN lanes stay set), `q = 1 + t p` and a zero-masked `vscalefps` for `2^n q`. The portable
/// form spends a shift, a multiply, an FMA, a compare, a mask inversion and a masked FMA, one
/// ALU instruction in seven of the exponential's; in-process A/B (rows of 1024, 64 and 256 rows):
/// eval 7-8 % faster, train 4 %. The rounding is the same wherever `t 2^n` is normal (scaling by a
/// power of two is exact); below, this form is the more accurate. `safe_arch` has no `vscalefps`,
/// hence the crate's one `unsafe` block.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[allow(unsafe_code)]
#[inline(always)]
fn exp_finish_avx512(d: f32x16, n: f32x16, t: f32x16, p: f32x16) -> f32x16 {
    use core::arch::x86_64::{
        __m512, _CMP_NLT_UQ, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_maskz_scalef_ps,
    };
    let c = |v: f32x16| -> __m512 { wide::bytemuck::cast::<f32x16, safe_arch::m512>(v).0 };
    // SAFETY: these intrinsics are `unsafe` only because they need AVX-512F, which this function
    // is compiled only with (its `cfg`: the build's target features, so every CPU the binary may
    // run on has it). They touch no memory. Exercised by `exp::tests` in the native build.
    let r = unsafe {
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(c(d), c(f32x16::splat(CUTOFF)));
        let q = _mm512_fmadd_ps(c(t), c(p), c(f32x16::splat(1.0)));
        _mm512_maskz_scalef_ps(keep, q, c(n))
    };
    wide::bytemuck::cast(safe_arch::m512(r))
}

/// [`F32s::kept`] for 16 lanes: a mask register with AVX-512.
#[inline(always)]
fn kept16(v: f32x16, bits: u32) -> f32x16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    return kept_avx512(v, bits);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    return kept_portable::<16, f32x16>(v, bits);
}

/// [`U32s::blocks_in_order`] for 16 lanes: with AVX-512, only the chains of the registers asked
/// for (a row of 64 columns needs 4 blocks, not 16).
#[inline(always)]
fn in_order16(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [u32x16; 4] {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use crate::philox::avx512::in_order;
        let z = u32x16::splat(0);
        if regs <= 1 {
            [crate::philox::avx512::in_order_4(first, c, key), z, z, z]
        } else if regs <= 2 {
            let [[a, b]] = in_order::<1>(first, c, key);
            [a, b, z, z]
        } else {
            let [[a, b], [d, e]] = in_order::<2>(first, c, key);
            [a, b, d, e]
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        use crate::philox::portable_in_order;
        // Only the blocks asked for, in narrower lanes: a row of 64 columns needs 4 blocks,
        // which 16 lanes would compute as 16 (rows of 64 columns on SSE2 spent ~3 ns/element).
        let z = u32x16::splat(0);
        let cast = wide::bytemuck::cast::<[u32x4; 4], u32x16>;
        if regs <= 1 {
            // Register `i` of 4 lanes is block `first + i`.
            [
                cast(portable_in_order::<4, u32x4>(first, c, key, 4)),
                z,
                z,
                z,
            ]
        } else if regs <= 2 {
            // Register `i` of 8 lanes is blocks `first + 2 i`, `first + 2 i + 1`.
            let [a, b, d, e] = portable_in_order::<8, u32x8>(first, c, key, 4);
            let half = wide::bytemuck::cast::<[u32x8; 2], u32x16>;
            [half([a, b]), half([d, e]), z, z]
        } else {
            portable_in_order::<16, u32x16>(first, c, key, regs)
        }
    }
}

/// [`U32s::blocks_in_order_x2`] for 16 lanes: four chains of 8 blocks with AVX-512. (Three
/// chains for rows that reach only 6 of the 8 registers measured no different, 2026-11-28.)
#[inline(always)]
fn in_order16_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([u32x16; 4], [u32x16; 4]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        let [[a0, a1], [a2, a3], [b0, b1], [b2, b3]] =
            crate::philox::avx512::in_order::<4>(first, c, key);
        ([a0, a1, a2, a3], [b0, b1, b2, b3])
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    return crate::philox::portable_in_order_x2::<16, u32x16>(first, c, key);
}

/// One Philox batch of 16 lanes in structure-of-arrays form: 64-bit-lane rounds with AVX-512
/// (see `philox::avx512`).
#[inline(always)]
fn philox16_x1(a: [u32x16; 4], key: [u32; 2]) -> [u32x16; 4] {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    return crate::philox::avx512::philox_x1(a, key);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    return crate::philox::portable_x1::<16, u32x16>(a, key);
}

/// [`F32s::kept`] with the bits as a mask register: a zero-masked move of all-ones, and an
/// `and`, where the portable form spends a broadcast, a test and a blend per vector. LLVM folds
/// it into the instruction before: pass 3's `(load * factor).kept(bits)` becomes one zero-masked
/// multiply from memory per chunk (`load.kept(bits) * factor` became a zero-masked load and a
/// multiply; 1 % slower training at 256 x 1024, medians of benches/ab, 2026-11-28).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
fn kept_avx512(v: f32x16, bits: u32) -> f32x16 {
    let mask: f32x16 = wide::bytemuck::cast(safe_arch::maskz_mov_i32_m512i(bits as u16));
    v & mask
}

/// A hint that the cache line holding `a` is about to be written (`prefetchw` on x86-64).
#[inline(always)]
pub(crate) fn prefetch_write<T>(a: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_et0(a);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = a;
}

/// A hint that the cache line holding `a` is about to be read (`prefetcht0` on x86-64).
#[inline(always)]
pub(crate) fn prefetch_read<T>(a: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(a);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = a;
}

/// [`U32s::transpose_quarters`] for 4 lanes: eight unpacks.
#[inline(always)]
fn transpose4(w: [u32x4; 4]) -> [u32x4; 4] {
    u32x4::transpose(w)
}

/// [`U32s::transpose_quarters`] for 8 lanes: eight unpacks within the 128-bit lanes of 256-bit
/// registers with AVX2 (no lane crossing), else per half.
#[inline(always)]
fn transpose8(w: [u32x8; 4]) -> [u32x8; 4] {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        use safe_arch::{
            m256i, unpack_high_i32_m256i as hi32, unpack_high_i64_m256i as hi64,
            unpack_low_i32_m256i as lo32, unpack_low_i64_m256i as lo64,
        };
        let [a, b, c, d] = w.map(wide::bytemuck::cast::<u32x8, m256i>);
        let (t0, t1, t2, t3) = (lo32(a, b), hi32(a, b), lo32(c, d), hi32(c, d));
        [lo64(t0, t2), hi64(t0, t2), lo64(t1, t3), hi64(t1, t3)].map(wide::bytemuck::cast)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    {
        let h = w.map(wide::bytemuck::cast::<u32x8, [u32x4; 2]>);
        let t = [0, 1].map(|j| transpose4([h[0][j], h[1][j], h[2][j], h[3][j]]));
        core::array::from_fn(|i| wide::bytemuck::cast([t[0][i], t[1][i]]))
    }
}

/// [`U32s::transpose_quarters`] for 16 lanes: per 256-bit half (AVX-512 builds generate their
/// keep bits in order and do not transpose).
#[inline(always)]
fn transpose16(w: [u32x16; 4]) -> [u32x16; 4] {
    let h = w.map(wide::bytemuck::cast::<u32x16, [u32x8; 2]>);
    let t = [0, 1].map(|j| transpose8([h[0][j], h[1][j], h[2][j], h[3][j]]));
    core::array::from_fn(|i| wide::bytemuck::cast([t[0][i], t[1][i]]))
}

/// The bytes of a `u32` vector in little-endian order, as a byte vector of type `$b`. A cast
/// reads them in memory order, which is the required order only on little-endian targets;
/// elsewhere they are shifted out of the lanes.
macro_rules! le_bytes {
    ($b:ident, $v:expr) => {{
        #[cfg(target_endian = "little")]
        let bytes: $b = wide::bytemuck::cast($v);
        #[cfg(not(target_endian = "little"))]
        let bytes = {
            let a = $v.to_array();
            $b::new(core::array::from_fn(|i| (a[i / 4] >> (8 * (i % 4))) as u8))
        };
        bytes
    }};
}

macro_rules! impl_lanes {
    (
        $n:literal,
        $f:ident,
        $u:ident,
        $i:ident,
        $b:ident,
        $max_halves:ident,
        $kept:path,
        $transpose:path,
        $in_order:path,
        $in_order_x2:path,
        $philox_x1:path,
        $exp_finish:path
    ) => {
        impl F32s<$n> for $f {
            type U = $u;
            #[inline(always)]
            fn splat(v: f32) -> Self {
                $f::splat(v)
            }
            #[inline(always)]
            fn load(a: &[f32; $n]) -> Self {
                $f::new(*a)
            }
            #[inline(always)]
            fn store(self, a: &mut [f32; $n]) {
                *a = self.to_array();
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                $f::mul_add(self, a, b)
            }
            #[inline(always)]
            fn exp_finish(d: Self, vn: Self, n: Self, t: Self, p: Self) -> Self {
                $exp_finish(d, vn, n, t, p)
            }
            #[inline(always)]
            fn max_fast(self, o: Self) -> Self {
                $f::fast_max(self, o)
            }
            #[inline(always)]
            fn eq_mask(self, o: Self) -> Self {
                self.simd_eq(o)
            }
            #[inline(always)]
            fn lt_mask(self, o: Self) -> Self {
                self.simd_lt(o)
            }
            #[inline(always)]
            fn ne_mask(self, o: Self) -> Self {
                self.simd_ne(o)
            }
            #[inline(always)]
            fn select(mask: Self, t: Self, f: Self) -> Self {
                mask.select(t, f)
            }
            #[inline(always)]
            fn any(self) -> bool {
                $f::any(self)
            }
            #[inline(always)]
            fn reduce_max(self) -> f32 {
                $max_halves(self)
            }
            #[inline(always)]
            fn reduce_add(self) -> f32 {
                $f::reduce_add(self)
            }
            #[inline(always)]
            fn to_bits(self) -> $u {
                wide::bytemuck::cast(self)
            }
            #[inline(always)]
            fn from_bits(u: $u) -> Self {
                wide::bytemuck::cast(u)
            }
            #[inline(always)]
            fn kept(self, bits: u32) -> Self {
                $kept(self, bits)
            }
        }

        impl U32s<$n> for $u {
            #[inline(always)]
            fn splat(v: u32) -> Self {
                $u::splat(v)
            }
            #[inline(always)]
            fn from_array(a: [u32; $n]) -> Self {
                $u::new(a)
            }
            #[inline(always)]
            fn mul_lo_hi(self, o: Self) -> (Self, Self) {
                self.mul_keep_low_high(o)
            }
            #[inline(always)]
            fn gt_mask_i32(self, o: Self) -> Self {
                let a: $i = wide::bytemuck::cast(self);
                let b: $i = wide::bytemuck::cast(o);
                wide::bytemuck::cast(a.simd_gt(b))
            }
            #[inline(always)]
            fn eq_mask(self, o: Self) -> Self {
                self.simd_eq(o)
            }
            #[inline(always)]
            fn bytes_gt(self, gt: u8) -> u64 {
                u64::from(le_bytes!($b, self).simd_gt($b::splat(gt)).to_bitmask())
            }
            #[inline(always)]
            fn bytes_eq(self, eq: u8) -> u64 {
                u64::from(le_bytes!($b, self).simd_eq($b::splat(eq)).to_bitmask())
            }
            #[inline(always)]
            fn transpose_quarters(w: [Self; 4]) -> [Self; 4] {
                $transpose(w)
            }
            #[inline(always)]
            fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4] {
                $in_order(first, c, key, regs)
            }
            #[inline(always)]
            fn blocks_in_order_x2(
                first: u32,
                c: [u32; 3],
                key: [u32; 2],
            ) -> ([Self; 4], [Self; 4]) {
                $in_order_x2(first, c, key)
            }
            #[inline(always)]
            fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4] {
                $philox_x1(a, key)
            }
        }
    };
}

impl_lanes!(
    4,
    f32x4,
    u32x4,
    i32x4,
    u8x16,
    max4,
    kept_portable::<4, Self>,
    transpose4,
    crate::philox::portable_in_order::<4, Self>,
    crate::philox::portable_in_order_x2::<4, Self>,
    crate::philox::portable_x1::<4, Self>,
    exp_finish_portable::<4, Self>
);
impl_lanes!(
    8,
    f32x8,
    u32x8,
    i32x8,
    u8x32,
    max8,
    kept_portable::<8, Self>,
    transpose8,
    crate::philox::portable_in_order::<8, Self>,
    crate::philox::portable_in_order_x2::<8, Self>,
    crate::philox::portable_x1::<8, Self>,
    exp_finish_portable::<8, Self>
);
impl_lanes!(
    16,
    f32x16,
    u32x16,
    i32x16,
    u8x64,
    max16,
    kept16,
    transpose16,
    in_order16,
    in_order16_x2,
    philox16_x1,
    exp_finish16
);
