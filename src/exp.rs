//! `exp_rr2_p5`: the softmax's exponential, for arguments `d = z - max <= 0`.
//!
//! rr2: range reduction with a two-constant Cody-Waite split of ln 2,
//! `d = n ln2 + t`, `n = round(d / ln2)`, `|t| <= ln2/2`; p5: a degree-5 polynomial for `e^t`
//! (minimax for relative error on `[-ln2/2, ln2/2]`, derived for this crate); the result is
//! `2^n * p(t)` with `2^n` built by shifting `n + 127` into the exponent field (a magic-bias
//! rounding leaves it in the low mantissa bits), or in the AVX-512 table applied by `vscalefps`
//! (the same rounding wherever `t 2^n` is normal). Each table supplies that last step
//! (`F32s::exp_finish`).
//!
//! Unlike a general `exp` it handles only `d <= 0` (the softmax never needs more), needs no
//! overflow path, and flushes results below `2^-126` (`d < -87.336`) to zero instead of producing
//! subnormals. Measured over every `f32` in `[-87.336, 0]` (the shifting form): see
//! [`MAX_REL_ERROR`]; the unit tests sample every 613th `f32` on every table.

use crate::lanes::F32s;

/// `log2(e)`.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `1.5 * 2^23 + 127`: adding it rounds to an integer and leaves `n + 127` in the low bits.
const MAGIC_BIAS: f32 = 12_583_039.0;
/// `ln 2` split so that `n * LN2_HI` is exact for `|n| <= 128`.
const LN2_HI: f32 = f32::from_bits(0x3F31_7200); // 0x1.62E400p-1: low 9 mantissa bits zero
const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E); // 0x1.7F7D1Cp-20 = ln 2 - LN2_HI
/// Polynomial: `e^t ~ 1 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * C5))))`.
/// Minimax for relative error on `[-0.3466, 0.3466]` (Remez with `c0 = 1` pinned, then rounded
/// to f32 one coefficient at a time, re-fitting the rest); the real-valued error is 9.2e-8.
const C1: f32 = f32::from_bits(0x3F7F_FFFB); // 0x1.FFFFF6p-1 = 0.999999702
const C2: f32 = f32::from_bits(0x3EFF_FEE2); // 0x1.FFFDC4p-2 = 0.499991477
const C3: f32 = f32::from_bits(0x3E2A_AD45); // 0x1.555A8Ap-3 = 0.166676596
const C4: f32 = f32::from_bits(0x3D2B_9D6A); // 0x1.573AD4p-5 = 0.0418981686
const C5: f32 = f32::from_bits(0x3C07_CC64); // 0x1.0F98C8p-7 = 0.00828847662
/// Below this, `e^d < 2^-126`: flushed to zero.
pub(crate) const CUTOFF: f32 = -87.336_54;

/// The largest relative error of the kernels' exponential against `exp`, over every `f32`
/// argument in `[-87.336, 0]`: 1.64e-7 (1.99 ulp) measured exhaustively with FMA (all 1.1e9
/// arguments); builds without FMA round each polynomial step twice, and the crate's tests hold
/// them to the same row-level bound.
pub const MAX_REL_ERROR: f32 = 1.65e-7;

/// `e^d` lane by lane for `d <= 0` (or `-inf`); 0 below [`CUTOFF`]; NaN for NaN (relied on by
/// the plain-scores path, which finds a NaN score by its NaN sum).
#[inline(always)]
pub(crate) fn exp_rr2_p5<const N: usize, V: F32s<N>>(d: V) -> V {
    let vn = d.mul_add(V::splat(LOG2E), V::splat(MAGIC_BIAS));
    let n = vn - V::splat(MAGIC_BIAS);
    let t = n.mul_add(V::splat(-LN2_HI), d);
    let t = n.mul_add(V::splat(-LN2_LO), t);
    let p = V::splat(C5).mul_add(t, V::splat(C4));
    let p = p.mul_add(t, V::splat(C3));
    let p = p.mul_add(t, V::splat(C2));
    let p = p.mul_add(t, V::splat(C1));
    V::exp_finish(d, vn, n, t, p)
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;

    /// The same steps one lane at a time, written from the module docs: `2^n` by shifting the
    /// biased exponent, every `mul_add` fused; `None` where `t 2^n` is subnormal (`n <= -120`,
    /// `|t|` small), so rounded. Elsewhere the vector paths must equal it bit for bit with FMA:
    /// the AVX-512 finish computes `2^n (1 + t p)` with `vscalefps` instead of `2^n t p + 2^n`,
    /// the same rounding, as scaling by `2^n` is then exact.
    fn steps(d: f32) -> Option<f32> {
        let (e, ts) = one_lane(d, true);
        if ts != 0.0 && ts.abs() < f32::MIN_POSITIVE {
            return None;
        }
        Some(e)
    }

    /// The steps of the portable finish one lane at a time: `2^n` by shifting the biased
    /// exponent, `e = (t 2^n) p + 2^n` (0 below the cutoff), each `mul_add` fused where `fused`,
    /// else rounded twice as the portable table without FMA does. Returns `e` and `t 2^n`.
    pub(crate) fn one_lane(d: f32, fused: bool) -> (f32, f32) {
        let fma = |a: f32, b: f32, c: f32| {
            if fused {
                libm::fmaf(a, b, c)
            } else {
                a * b + c
            }
        };
        let vn = fma(d, LOG2E, MAGIC_BIAS);
        let s = f32::from_bits(vn.to_bits() << 23);
        let n = vn - MAGIC_BIAS;
        let t = fma(n, -LN2_LO, fma(n, -LN2_HI, d));
        let p = [C4, C3, C2, C1].iter().fold(C5, |p, &c| fma(p, t, c));
        let ts = t * s;
        (if d < CUTOFF { 0.0 } else { fma(ts, p, s) }, ts)
    }

    /// Every 613th `f32` in `[-88, 0]` (about 1.8 million, all exponents), the cutoff's
    /// neighbours, `-inf` and NaN, through the `N` lanes of one table's `V`: bit-identical to
    /// [`steps`] where the table's `mul_add` is fused, within [`MAX_REL_ERROR`] of `exp` (f64)
    /// then and within twice it otherwise (each step then rounds twice), 0 exactly below the
    /// cutoff, NaN for NaN. Every table runs it: the portable one below, the x86-64 ones in their
    /// own tests where the CPU has them.
    pub(crate) fn sweep<const N: usize, V: F32s<N>>() {
        let fused = V::FUSED;
        let bound = if fused {
            MAX_REL_ERROR
        } else {
            2.0 * MAX_REL_ERROR
        };
        let (lo, hi) = ((-88.0f32).to_bits(), (-0.0f32).to_bits());
        let mut args: std::vec::Vec<f32> = (hi..=lo).step_by(613).map(f32::from_bits).collect();
        let c = CUTOFF.to_bits();
        args.extend((c - 40..c + 40).map(f32::from_bits));
        args.extend([0.0, -0.0, f32::NEG_INFINITY, f32::NAN, -f32::NAN]);
        let mut worst = 0.0f64;
        let mut compared = 0;
        for chunk in args.chunks(N) {
            let mut a = [0.0f32; N];
            a[..chunk.len()].copy_from_slice(chunk);
            let mut e = [0.0f32; N];
            exp_rr2_p5::<N, V>(V::load(&a)).store(&mut e);
            for (&d, &e) in a.iter().zip(&e).take(chunk.len()) {
                if d.is_nan() {
                    assert!(e.is_nan(), "exp({d}) = {e}");
                    continue;
                }
                if d < CUTOFF {
                    assert_eq!(e.to_bits(), 0, "exp({d}) = {e}, not flushed");
                    continue;
                }
                let want = libm::exp(f64::from(d));
                let rel = (f64::from(e) - want).abs() / want;
                worst = worst.max(rel);
                assert!(rel <= f64::from(bound), "exp({d}) = {e}, rel {rel:e}");
                if let Some(s) = steps(d).filter(|_| fused) {
                    assert_eq!(e.to_bits(), s.to_bits(), "exp({d})");
                    compared += 1;
                }
            }
        }
        assert!(
            worst > 1e-8,
            "a sweep this wide must see rounding: {worst:e}"
        );
        assert!(
            !fused || compared > args.len() * 9 / 10,
            "{compared} compared bit for bit"
        );
    }

    /// [`sweep`] on the portable table's widest vector (fused or not, as the build has FMA).
    #[test]
    fn portable_lanes_match_the_steps_and_exp() {
        sweep::<16, wide::f32x16>();
    }
}
