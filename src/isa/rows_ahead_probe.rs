//! Tests only: the portable 16-lane table with its training keep bits taken rows ahead
//! ([`U32s::ROWS_AHEAD`]), as the AVX-512 table takes them. That path of the kernels
//! (`Prepared::refill` and its tie settling) otherwise runs only on AVX-512 CPUs; here it runs
//! on every machine, and must give the portable table's results bit for bit, since the two
//! tables differ in nothing else.

use crate::lanes::{F32s, U32s};
use core::ops::{Add, BitAnd, BitOr, BitXor, Div, Mul, Shl, Shr, Sub};
use wide::{f32x16, u32x16};

/// `wide`'s `f32x16`, whose bits are [`U`].
#[derive(Clone, Copy)]
pub(crate) struct F(f32x16);

/// `wide`'s `u32x16`, with rows ahead.
#[derive(Clone, Copy)]
pub(crate) struct U(u32x16);

/// The kernel variant of this table (`RowKernel`), for the tests below.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowsAhead;

macro_rules! delegate_op {
    ($t:ident, $inner:ty, $tr:ident, $f:ident) => {
        impl $tr for $t {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                Self(<$inner as $tr>::$f(self.0, o.0))
            }
        }
    };
}

delegate_op!(F, f32x16, Add, add);
delegate_op!(F, f32x16, Sub, sub);
delegate_op!(F, f32x16, Mul, mul);
delegate_op!(F, f32x16, Div, div);
delegate_op!(F, f32x16, BitAnd, bitand);
delegate_op!(F, f32x16, BitOr, bitor);
delegate_op!(U, u32x16, Add, add);
delegate_op!(U, u32x16, BitAnd, bitand);
delegate_op!(U, u32x16, BitXor, bitxor);

impl Shl<u32> for U {
    type Output = Self;
    #[inline(always)]
    fn shl(self, n: u32) -> Self {
        Self(<u32x16 as Shl<u32>>::shl(self.0, n))
    }
}

impl Shr<u32> for U {
    type Output = Self;
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        Self(<u32x16 as Shr<u32>>::shr(self.0, n))
    }
}

/// `<f32x16 as F32s<16>>` (the portable table).
type P = f32x16;
/// `<u32x16 as U32s<16>>`.
type Q = u32x16;

impl F32s<16> for F {
    type U = U;
    const PAIRS: bool = <P as F32s<16>>::PAIRS;
    const FUSED: bool = <P as F32s<16>>::FUSED;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self(<P as F32s<16>>::splat(v))
    }
    #[inline(always)]
    fn load(a: &[f32; 16]) -> Self {
        Self(<P as F32s<16>>::load(a))
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; 16]) {
        <P as F32s<16>>::store(self.0, a);
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(<P as F32s<16>>::mul_add(self.0, a.0, b.0))
    }
    #[inline(always)]
    fn max_fast(self, o: Self) -> Self {
        Self(<P as F32s<16>>::max_fast(self.0, o.0))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(<P as F32s<16>>::eq_mask(self.0, o.0))
    }
    #[inline(always)]
    fn lt_mask(self, o: Self) -> Self {
        Self(<P as F32s<16>>::lt_mask(self.0, o.0))
    }
    #[inline(always)]
    fn ne_mask(self, o: Self) -> Self {
        Self(<P as F32s<16>>::ne_mask(self.0, o.0))
    }
    #[inline(always)]
    fn select(mask: Self, t: Self, f: Self) -> Self {
        Self(<P as F32s<16>>::select(mask.0, t.0, f.0))
    }
    #[inline(always)]
    fn any(self) -> bool {
        <P as F32s<16>>::any(self.0)
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        <P as F32s<16>>::reduce_max(self.0)
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        <P as F32s<16>>::reduce_add(self.0)
    }
    #[inline(always)]
    fn to_bits(self) -> U {
        U(<P as F32s<16>>::to_bits(self.0))
    }
    #[inline(always)]
    fn from_bits(u: U) -> Self {
        Self(<P as F32s<16>>::from_bits(u.0))
    }
    #[inline(always)]
    fn kept(self, bits: u32) -> Self {
        Self(<P as F32s<16>>::kept(self.0, bits))
    }
    #[inline(always)]
    fn exp_finish(d: Self, vn: Self, n: Self, t: Self, p: Self) -> Self {
        Self(<P as F32s<16>>::exp_finish(d.0, vn.0, n.0, t.0, p.0))
    }
}

impl U32s<16> for U {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        Self(<Q as U32s<16>>::splat(v))
    }
    fn to_array(self) -> [u32; 16] {
        <Q as U32s<16>>::to_array(self.0)
    }
    #[inline(always)]
    fn from_array(a: [u32; 16]) -> Self {
        Self(<Q as U32s<16>>::from_array(a))
    }
    #[inline(always)]
    fn mul_lo_hi(self, o: Self) -> (Self, Self) {
        let (lo, hi) = <Q as U32s<16>>::mul_lo_hi(self.0, o.0);
        (Self(lo), Self(hi))
    }
    #[inline(always)]
    fn gt_mask_i32(self, o: Self) -> Self {
        Self(<Q as U32s<16>>::gt_mask_i32(self.0, o.0))
    }
    #[inline(always)]
    fn eq_mask(self, o: Self) -> Self {
        Self(<Q as U32s<16>>::eq_mask(self.0, o.0))
    }
    #[inline(always)]
    fn bytes_gt(self, gt: u8) -> u64 {
        <Q as U32s<16>>::bytes_gt(self.0, gt)
    }
    #[inline(always)]
    fn bytes_eq(self, eq: u8) -> u64 {
        <Q as U32s<16>>::bytes_eq(self.0, eq)
    }
    #[inline(always)]
    fn transpose_quarters(w: [Self; 4]) -> [Self; 4] {
        <Q as U32s<16>>::transpose_quarters(w.map(|u| u.0)).map(Self)
    }
    #[inline(always)]
    fn blocks_in_order(first: u32, c: [u32; 3], key: [u32; 2], regs: usize) -> [Self; 4] {
        <Q as U32s<16>>::blocks_in_order(first, c, key, regs).map(Self)
    }
    #[inline(always)]
    fn blocks_in_order_x2(first: u32, c: [u32; 3], key: [u32; 2]) -> ([Self; 4], [Self; 4]) {
        let (a, b) = <Q as U32s<16>>::blocks_in_order_x2(first, c, key);
        (a.map(Self), b.map(Self))
    }
    #[inline(always)]
    fn philox_x1(a: [Self; 4], key: [u32; 2]) -> [Self; 4] {
        <Q as U32s<16>>::philox_x1(a.map(|u| u.0), key).map(Self)
    }
    const ROWS_AHEAD: bool = true;
    /// From the portable blocks in order: register `e` is the first register of the blocks
    /// `4 (e % (B / 4)) ..` of row `row + e / (B / 4)`'s main stream.
    fn rows_ahead<const B: usize>(row: u64, key: [u32; 2]) -> [Self; 8] {
        let per_row = B / 4;
        core::array::from_fn(|e| {
            let id = row.wrapping_add((e / per_row) as u64);
            let first = 4 * (e % per_row) as u32;
            let c = [0, id as u32, (id >> 32) as u32];
            Self(<Q as U32s<16>>::blocks_in_order(first, c, key, 1)[0])
        })
    }
}

impl crate::kernel::sealed::Dispatch for RowsAhead {
    fn dispatch<J: crate::kernel::sealed::Job>(job: J) -> J::Out {
        job.run::<Self>()
    }
    fn supported() -> bool {
        true
    }
}

impl crate::RowKernel for RowsAhead {
    const NAME: &'static str = "rows-ahead-probe";
}

macro_rules! as_is {
    ($($f:tt)*) => {
        $($f)*
    };
}

crate::kernel::vector::vector_passes!(RowsAhead, 16, F, as_is);

mod tests {
    extern crate std;
    use super::RowsAhead;
    use crate::{Dropout, DropoutKey, Mask, RowStats, SoftmaxDropout, Wide16};
    use std::vec::Vec;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Training rows of every short length the rows-ahead path takes (and some it does not),
    /// full and causal, at keep rates with many ties: bit-identical to the portable table.
    #[test]
    fn rows_ahead_match_the_portable_table() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 12.0 - 6.0
        };
        let mut compared = 0;
        for cols in [
            1usize, 15, 16, 17, 33, 48, 63, 64, 65, 96, 127, 128, 129, 200, 256,
        ] {
            for rows in [1, 2, 3, 7, 8, 9, 31, 32, 33, 41] {
                let x: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
                for p in [0.1, 0.5, 1.0 - 1.0 / 256.0, 0.3] {
                    for (offset, causal) in [(0u64, false), (u64::MAX - 5, false), (77, true)] {
                        let d = Dropout::new(p).expect("valid p");
                        let key = DropoutKey::new(0xD15E_A5E5 ^ cols as u64, offset);
                        let mut op = SoftmaxDropout::train(0.5, d, key).expect("finite scale");
                        if causal {
                            op = op.with_mask(Mask::causal(cols.saturating_sub(rows)));
                        }
                        let run = |first: u64, ahead: bool| {
                            let mut y = std::vec![f32::NAN; x.len()];
                            let mut st = std::vec![RowStats::EMPTY; rows];
                            let r = if ahead {
                                op.with_kernel::<RowsAhead>().forward_rows(
                                    first,
                                    cols,
                                    &x,
                                    &mut y,
                                    Some(&mut st),
                                )
                            } else {
                                op.with_kernel::<Wide16>().forward_rows(
                                    first,
                                    cols,
                                    &x,
                                    &mut y,
                                    Some(&mut st),
                                )
                            };
                            r.expect("valid lengths");
                            (y, st)
                        };
                        for first in [0u64, 5, u64::MAX - 2] {
                            let (ya, sa) = run(first, true);
                            let (yw, sw) = run(first, false);
                            let what = std::format!("{rows} x {cols}, p {p}, first {first}");
                            assert_eq!(bits(&ya), bits(&yw), "{what}");
                            let sbits = |s: &[RowStats]| {
                                s.iter()
                                    .map(|s| (s.max.to_bits(), s.sum.to_bits()))
                                    .collect::<Vec<_>>()
                            };
                            assert_eq!(sbits(&sa), sbits(&sw), "{what}: stats");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 1000);
    }
}
