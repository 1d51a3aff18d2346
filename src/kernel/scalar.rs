//! The scalar reference passes.

use super::sealed::Passes;
use super::{DropPlan, Scalar, Scores};
use crate::dropout::{main_byte, tie_break};
use crate::exp::CUTOFF;
use crate::tanh::tanh_scalar;

/// `z_j` for one column: the definition every variant reproduces, bit for bit without a soft-cap
/// (`cap == 0`), within the `tanh`'s bound with one: `s * x` or `c * tanh(x * fl(s / c))`, then
/// `+ b`; `-inf` where excluded.
#[inline(always)]
pub(crate) fn score(scale: f32, cap: f32, x: f32, b: Option<f32>, visible: bool) -> f32 {
    let b_val = b.unwrap_or(0.0);
    if !visible || x == f32::NEG_INFINITY || b_val == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    let sx = if cap == 0.0 {
        scale * x
    } else {
        cap * tanh_scalar(x * (scale / cap))
    };
    if b.is_some() { sx + b_val } else { sx }
}

impl Passes for Scalar {
    fn scores(
        sc: &Scores<'_>,
        src: Option<&[f32]>,
        dst: &mut [f32],
        lo: usize,
        hi: usize,
    ) -> (f32, bool) {
        let (mut m, mut nan) = (f32::NEG_INFINITY, false);
        for j in lo..hi {
            let x = match src {
                Some(s) => s.get(j).copied(),
                None => dst.get(j).copied(),
            }
            .unwrap_or(f32::NEG_INFINITY);
            let b = sc.bias.and_then(|b| b.get(j).copied());
            let z = score(sc.scale, sc.cap, x, b, sc.columns.visible(j));
            nan |= z.is_nan();
            m = m.max(z);
            if let Some(d) = dst.get_mut(j) {
                *d = z;
            }
        }
        (m, nan)
    }

    fn exp_sum(seg: &mut [f32], m: f32, zeros: &mut [f32]) -> f32 {
        zeros.fill(0.0);
        let mut sum = 0.0f64;
        for v in seg.iter_mut() {
            let d = *v - m;
            // The flush every variant shares: e below 2^-126 is 0, never subnormal.
            *v = if d < CUTOFF { 0.0 } else { libm::expf(d) };
            sum += f64::from(*v);
        }
        sum as f32
    }

    type Keep = ();

    fn new_keep() {}

    fn finish(dst: &mut [f32], lo: usize, hi: usize, factor: f32, plan: Option<&DropPlan>) {
        let Some(seg) = dst.get_mut(lo..hi) else {
            return;
        };
        for (j, v) in (lo..).zip(seg.iter_mut()) {
            // The definition itself: U = B << 24 | T, kept iff U >= D.
            let kept = plan.is_none_or(|p| {
                let col = (p.col0 + j) as u32;
                let u = main_byte(p.key, p.row, col) << 24 | tie_break(p.key, p.row, col);
                u >= (p.d_hi << 24 | p.d_lo)
            });
            *v = if kept { *v * factor } else { 0.0 };
        }
    }

    fn grad(
        p: Option<&[f32]>,
        dy: &[f32],
        dx: &mut [f32],
        lo: usize,
        hi: usize,
        rescale: f32,
        plan: Option<&DropPlan>,
        scale: f32,
    ) -> f32 {
        let g = |j: usize| -> f32 {
            let kept = plan.is_none_or(|p| {
                let col = j as u32;
                let u = main_byte(p.key, p.row, col) << 24 | tie_break(p.key, p.row, col);
                u >= (p.d_hi << 24 | p.d_lo)
            });
            if kept {
                dy.get(j).copied().unwrap_or(0.0) * rescale
            } else {
                0.0
            }
        };
        let prob = |dx: &[f32], j: usize| p.unwrap_or(dx).get(j).copied().unwrap_or(0.0);
        let mut dot = 0.0f64;
        for j in lo..hi {
            dot += f64::from(prob(dx, j)) * f64::from(g(j));
        }
        let dot = dot as f32;
        for j in lo..hi {
            let v = scale * prob(dx, j) * (g(j) - dot);
            if let Some(d) = dx.get_mut(j) {
                *d = v;
            }
        }
        dot
    }

    fn cap_grad(x: &[f32], dx: &mut [f32], lo: usize, hi: usize, s_over_c: f32) {
        for j in lo..hi {
            let (Some(&x), Some(d)) = (x.get(j), dx.get_mut(j)) else {
                return;
            };
            if *d != 0.0 {
                // sech^2 a = 4 e / (1 + e)^2, e = exp(-2 |a|): no cancellation near |t| = 1.
                let e = libm::expf(-2.0 * (x * s_over_c).abs());
                *d *= 4.0 * e / ((1.0 + e) * (1.0 + e));
            }
        }
    }

    fn keep_words(plan: &DropPlan, first: usize, words: &mut [u64; 64], end: usize) {
        for (i, w) in words.iter_mut().enumerate() {
            *w = 0;
            for b in 0..64 {
                let j = first + 64 * i + b;
                if j >= end {
                    break;
                }
                let col = j as u32;
                let u =
                    main_byte(plan.key, plan.row, col) << 24 | tie_break(plan.key, plan.row, col);
                if u >= (plan.d_hi << 24 | plan.d_lo) {
                    *w |= 1 << b;
                }
            }
        }
    }

    fn zero(dst: &mut [f32]) {
        dst.fill(0.0);
    }
}
