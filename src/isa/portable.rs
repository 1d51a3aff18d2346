//! The portable table: `wide`'s vectors of 4, 8 and 16 lanes, lowered to whatever the build's
//! target features allow (SSE2 in a default x86-64 build, AVX2 or AVX-512 with
//! `-C target-cpu=...`, NEON on aarch64, simd128 on wasm32 with it enabled, scalar code
//! elsewhere). The kernel types [`Wide4`](crate::Wide4), [`Wide8`](crate::Wide8) and
//! [`Wide16`](crate::Wide16) run on it.

use crate::lanes::{F32s, U32s, exp_finish_portable, kept_portable};
use crate::philox::{portable_in_order, portable_in_order_x2, portable_x1};
use wide::{f32x4, f32x8, f32x16, i32x4, i32x8, i32x16, u8x16, u8x32, u8x64, u32x4, u32x8, u32x16};

/// Whether the portable kernels of 8 and 16 lanes pair short rows (`F32s::PAIRS`): where `wide`
/// lowers them to AVX2 or wider. With SSE2 (a pair of rows of 64 columns needs 32 registers of
/// 4 lanes just to hold) pairs measured no faster, and the whole scheme slower on short rows and
/// on causal blocks of 128.
const PAIRS: bool = cfg!(target_feature = "avx2");

/// Whether `wide`'s `mul_add` is one fused operation: where the build's target features have FMA.
#[cfg(test)]
const FUSED: bool = cfg!(target_feature = "fma");

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

/// [`U32s::blocks_in_order`] for 16 lanes: only the blocks asked for, in narrower lanes (a row of
/// 64 columns needs 4 blocks, which 16 lanes would compute as 16).
#[inline(always)]
fn in_order16(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [u32x16; 4] {
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
        // Written out, not `[0, 1].map(..)`: at opt-level "s"/"z" the map's loop is not
        // unrolled and `h[k][j]` keeps its bounds check (a panic path).
        let t = [
            transpose4([h[0][0], h[1][0], h[2][0], h[3][0]]),
            transpose4([h[0][1], h[1][1], h[2][1], h[3][1]]),
        ];
        core::array::from_fn(|i| wide::bytemuck::cast([t[0][i], t[1][i]]))
    }
}

/// [`U32s::transpose_quarters`] for 16 lanes: per 256-bit half.
#[inline(always)]
fn transpose16(w: [u32x16; 4]) -> [u32x16; 4] {
    let h = w.map(wide::bytemuck::cast::<u32x16, [u32x8; 2]>);
    // Written out, as in `transpose8`: no bounds check at any opt-level.
    let t = [
        transpose8([h[0][0], h[1][0], h[2][0], h[3][0]]),
        transpose8([h[0][1], h[1][1], h[2][1], h[3][1]]),
    ];
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
        $pairs:expr,
        $kept:path,
        $transpose:path,
        $in_order:path,
        $in_order_x2:path,
        $philox_x1:path,
        $exp_finish:path
    ) => {
        impl F32s<$n> for $f {
            type U = $u;
            const PAIRS: bool = $pairs;
            #[cfg(test)]
            const FUSED: bool = FUSED;
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
            #[cfg(test)]
            fn to_array(self) -> [u32; $n] {
                $u::to_array(self)
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
    false,
    kept_portable::<4, Self>,
    transpose4,
    portable_in_order::<4, Self>,
    portable_in_order_x2::<4, Self>,
    portable_x1::<4, Self>,
    exp_finish_portable::<4, Self>
);
impl_lanes!(
    8,
    f32x8,
    u32x8,
    i32x8,
    u8x32,
    max8,
    PAIRS,
    kept_portable::<8, Self>,
    transpose8,
    portable_in_order::<8, Self>,
    portable_in_order_x2::<8, Self>,
    portable_x1::<8, Self>,
    exp_finish_portable::<8, Self>
);
impl_lanes!(
    16,
    f32x16,
    u32x16,
    i32x16,
    u8x64,
    max16,
    PAIRS,
    kept_portable::<16, Self>,
    transpose16,
    in_order16,
    portable_in_order_x2::<16, Self>,
    portable_x1::<16, Self>,
    exp_finish_portable::<16, Self>
);

/// The portable microkernels are the generic passes as they are.
macro_rules! as_is {
    ($($f:tt)*) => {
        $($f)*
    };
}

crate::kernel::vector::vector_passes!(crate::Wide4, 4, f32x4, as_is);
crate::kernel::vector::vector_passes!(crate::Wide8, 8, f32x8, as_is);
crate::kernel::vector::vector_passes!(crate::Wide16, 16, f32x16, as_is);
