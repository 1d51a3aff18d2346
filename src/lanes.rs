//! The few vector operations the kernels need, as one trait pair.
//!
//! The kernels are written once over these traits and instantiated for each instruction-set
//! table: `wide`'s 4-, 8- and 16-lane types (`isa::portable`), and on x86-64 the AVX2 and
//! AVX-512 registers (`isa::x86_64`). One shared test runs every table against the scalar
//! reference.

use crate::exp::CUTOFF;
use core::ops::{Add, BitAnd, BitOr, BitXor, Mul, Shl, Shr, Sub};
use wide::u32x8;

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
    /// Whether a matrix's short rows go two at a time in registers, and longer rows banded
    /// within the short width in registers too (`Passes::PAIRS`): a table property, measured
    /// per instruction set.
    const PAIRS: bool;
    /// Whether [`Self::mul_add`] rounds once (FMA): the table's exponential is then bit-identical
    /// to the one-lane steps of `exp`'s tests, and otherwise within twice its error bound.
    #[cfg(test)]
    const FUSED: bool;
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
    /// Whether [`Self::rows_ahead`] is implemented: short training rows then take their keep
    /// bits from batches of rows (`Prepared::refill`).
    const ROWS_AHEAD: bool = false;
    /// Blocks `0 .. B` of the dropout main stream of the `32 / B` rows from global id `row`
    /// (`B` = 4 or 8), in output order: register `e` holds the bytes deciding columns
    /// `64 (e % (B / 4)) ..` of row `row + e / (B / 4)`. Only where [`Self::ROWS_AHEAD`].
    fn rows_ahead<const B: usize>(row: u64, key: [u32; 2]) -> [Self; 8] {
        let _ = (row, key);
        [Self::splat(0); 8]
    }
    /// Word 0 of Philox4x32-10 for the eight counters `[c0[l], c[0], c[1], c[2]]`.
    #[inline(always)]
    fn word0_x8(c0: [u32; 8], c: [u32; 3], key: [u32; 2]) -> [u32; 8] {
        let ctr = [
            u32x8::new(c0),
            u32x8::splat(c[0]),
            u32x8::splat(c[1]),
            u32x8::splat(c[2]),
        ];
        crate::philox::philox_lanes::<8, u32x8>(ctr, key)[0].to_array()
    }
    /// Word 0 of the eight blocks `[c0[l], c1, rows[l] as u32, (rows[l] >> 32) as u32]`.
    #[inline(always)]
    fn word0_x8_rows(c0: [u32; 8], c1: u32, rows: [u64; 8], key: [u32; 2]) -> [u32; 8] {
        let ctr = [
            u32x8::new(c0),
            u32x8::splat(c1),
            u32x8::new(rows.map(|r| r as u32)),
            u32x8::new(rows.map(|r| (r >> 32) as u32)),
        ];
        crate::philox::philox_lanes::<8, u32x8>(ctr, key)[0].to_array()
    }
}

/// [`F32s::kept`] from portable operations: broadcast, test, select.
#[inline(always)]
pub(crate) fn kept_portable<const N: usize, V: F32s<N>>(v: V, bits: u32) -> V {
    let lane_bits = V::U::from_array(core::array::from_fn(|l| 1u32 << l));
    let keep = V::from_bits((V::U::splat(bits) & lane_bits).eq_mask(lane_bits));
    V::select(keep, v, V::splat(0.0))
}

/// [`F32s::exp_finish`]: `2^n` built by shifting the magic-biased `vn` into the exponent field.
#[inline(always)]
pub(crate) fn exp_finish_portable<const N: usize, V: F32s<N>>(d: V, vn: V, _n: V, t: V, p: V) -> V {
    let s = V::from_bits(vn.to_bits() << 23);
    let f = (t * s).mul_add(p, s);
    V::select(d.lt_mask(V::splat(CUTOFF)), V::splat(0.0), f)
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
