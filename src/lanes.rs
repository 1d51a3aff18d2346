//! The few vector operations the kernels need, as one trait pair.
//!
//! The kernels are written once over these traits and instantiated for each instruction-set
//! table: `wide`'s 4-, 8- and 16-lane types (`isa::portable`), and on x86-64 the AVX2 and
//! AVX-512 registers (`isa::x86_64`). One shared test runs every table against the scalar
//! reference.

use crate::exp::CUTOFF;
use core::ops::{Add, BitAnd, BitOr, BitXor, Div, Mul, Shl, Shr, Sub};
use wide::u32x8;

/// `N` lanes of `f32`. Comparison results are lane masks of the same type (all bits set or clear).
/// The arithmetic operators are IEEE lane by lane (correctly rounded; `Div` is `tanh`'s one
/// division).
pub(crate) trait F32s<const N: usize>:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
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
    /// The lanes, in order (tests only).
    #[cfg(test)]
    fn to_array(self) -> [u32; N];
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

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::U32s;
    use crate::philox::philox4x32_10;

    /// A value generator for the tests: splitmix64, so that nothing depends on `U` itself.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn u32(&mut self) -> u32 {
            self.next() as u32
        }
        fn lanes<const N: usize>(&mut self) -> [u32; N] {
            core::array::from_fn(|_| self.u32())
        }
    }

    /// The words `0..` of the blocks with counters `[first + b, c[0], c[1], c[2]]`, block by
    /// block (the stream `blocks_in_order` lays out).
    fn stream(first: u32, c: [u32; 3], key: [u32; 2], words: usize) -> std::vec::Vec<u32> {
        (0..words.div_ceil(4) as u32)
            .flat_map(|b| philox4x32_10([first.wrapping_add(b), c[0], c[1], c[2]], key))
            .take(words)
            .collect()
    }

    /// Every `U32s` method of a table against its definition in scalar code (Philox against
    /// `philox4x32_10`), on counters and row ids that wrap. Each table runs it: the portable
    /// widths below, the x86-64 tables in their own tests where the CPU has them.
    pub(crate) fn u32s_contract<const N: usize, U: U32s<N>>() {
        let mut g = Mix(N as u64);
        for round in 0..40 {
            let key = [g.u32(), g.u32()];
            let (a, b) = (g.lanes::<N>(), g.lanes::<N>());
            let (ua, ub) = (U::from_array(a), U::from_array(b));
            assert_eq!(ua.to_array(), a);
            // Arithmetic, products, comparisons, shifts.
            let (lo, hi) = ua.mul_lo_hi(ub);
            for l in 0..N {
                let p = u64::from(a[l]) * u64::from(b[l]);
                assert_eq!(lo.to_array()[l], p as u32, "mul_lo_hi low, lane {l}");
                assert_eq!(
                    hi.to_array()[l],
                    (p >> 32) as u32,
                    "mul_lo_hi high, lane {l}"
                );
                let (ia, ib) = (a[l] >> 1, b[l] >> 1); // below 2^31, as callers keep them
                let gt = U::from_array([ia; N]).gt_mask_i32(U::from_array([ib; N]));
                assert_eq!(
                    gt.to_array()[l],
                    if ia > ib { !0 } else { 0 },
                    "gt_mask_i32"
                );
                let eq = ua.eq_mask(U::from_array(core::array::from_fn(|k| {
                    if k % 2 == 0 { a[k] } else { b[k] }
                })));
                let want = l % 2 == 0 || a[l] == b[l];
                assert_eq!(eq.to_array()[l], if want { !0 } else { 0 }, "eq_mask");
                assert_eq!((ua + ub).to_array()[l], a[l].wrapping_add(b[l]));
                assert_eq!((ua ^ ub).to_array()[l], a[l] ^ b[l]);
                assert_eq!((ua & ub).to_array()[l], a[l] & b[l]);
                assert_eq!((ua << 7).to_array()[l], a[l] << 7);
                assert_eq!((ua >> 9).to_array()[l], a[l] >> 9);
            }
            // Bytes: little-endian lanes, bit i for byte i.
            let bytes: std::vec::Vec<u8> = a.iter().flat_map(|w| w.to_le_bytes()).collect();
            let t = bytes[round % bytes.len()];
            let (want_gt, want_eq) = bytes
                .iter()
                .enumerate()
                .fold((0u64, 0u64), |(g, e), (i, &x)| {
                    (g | u64::from(x > t) << i, e | u64::from(x == t) << i)
                });
            assert_eq!(ua.bytes_gt(t), want_gt, "bytes_gt");
            assert_eq!(ua.bytes_eq(t), want_eq, "bytes_eq");
            // The 4x4 transpose of each quarter.
            let w: [[u32; N]; 4] = core::array::from_fn(|_| g.lanes::<N>());
            let tr = U::transpose_quarters(w.map(U::from_array)).map(U::to_array);
            for (i, r) in tr.iter().enumerate() {
                for q in 0..N / 4 {
                    for k in 0..4 {
                        assert_eq!(r[4 * q + k], w[k][4 * q + i], "transpose_quarters");
                    }
                }
            }
            // Philox: lane by lane, in order, twice in order, words 0.
            let out = U::philox_x1(w.map(U::from_array), key).map(U::to_array);
            for l in 0..N {
                let want = philox4x32_10([w[0][l], w[1][l], w[2][l], w[3][l]], key);
                for (k, o) in out.iter().enumerate() {
                    assert_eq!(o[l], want[k], "philox_x1, word {k}, lane {l}");
                }
            }
            // Near the top of the counter, so that `first + b` wraps.
            let first = if round % 3 == 0 {
                u32::MAX - 2
            } else {
                g.u32()
            };
            let c = [g.u32(), g.u32(), g.u32()];
            let want = stream(first, c, key, 8 * N);
            for regs in 1..=4 {
                let got = U::blocks_in_order(first, c, key, regs).map(U::to_array);
                for (i, r) in got.iter().enumerate().take(regs) {
                    assert_eq!(
                        r[..],
                        want[N * i..N * (i + 1)],
                        "blocks_in_order reg {i}/{regs}"
                    );
                }
            }
            let (x0, x1) = U::blocks_in_order_x2(first, c, key);
            let got: std::vec::Vec<u32> = x0.iter().chain(&x1).flat_map(|r| r.to_array()).collect();
            assert_eq!(got, want, "blocks_in_order_x2");
            let c0 = g.lanes::<8>();
            let w0 = U::word0_x8(c0, c, key);
            let rows: [u64; 8] = core::array::from_fn(|_| g.next());
            let c1 = g.u32();
            let w0r = U::word0_x8_rows(c0, c1, rows, key);
            for l in 0..8 {
                assert_eq!(
                    w0[l],
                    philox4x32_10([c0[l], c[0], c[1], c[2]], key)[0],
                    "word0_x8"
                );
                let r = [rows[l] as u32, (rows[l] >> 32) as u32];
                let want = philox4x32_10([c0[l], c1, r[0], r[1]], key)[0];
                assert_eq!(w0r[l], want, "word0_x8_rows");
            }
            // Rows ahead: register `e` holds the main-stream bytes of columns
            // `64 (e % (B / 4)) ..` of row `row + e / (B / 4)`.
            if U::ROWS_AHEAD {
                let row = if round % 4 == 0 {
                    u64::MAX - 3
                } else {
                    g.next()
                };
                rows_ahead_match::<N, U, 4>(row, key);
                rows_ahead_match::<N, U, 8>(row, key);
            }
        }
    }

    fn rows_ahead_match<const N: usize, U: U32s<N>, const B: usize>(row: u64, key: [u32; 2]) {
        let per_row = B / 4;
        let got = U::rows_ahead::<B>(row, key).map(U::to_array);
        for (e, r) in got.iter().enumerate() {
            let id = row.wrapping_add((e / per_row) as u64);
            let words = stream(0, [0, id as u32, (id >> 32) as u32], key, 16 * per_row);
            let at = 16 * (e % per_row);
            assert_eq!(
                r[..],
                words[at..at + N.min(16)],
                "rows_ahead::<{B}> register {e}"
            );
        }
    }

    #[test]
    fn portable_u32s_keep_their_contract() {
        u32s_contract::<4, wide::u32x4>();
        u32s_contract::<8, wide::u32x8>();
        u32s_contract::<16, wide::u32x16>();
    }
}
