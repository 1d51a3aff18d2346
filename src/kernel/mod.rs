//! The row kernel: one orchestration, three passes, one implementation per instruction-set
//! variant.
//!
//! A row is done in three passes over the visible band `[lo, hi)` of its output slice, which
//! stays in L1 for rows up to several thousand columns:
//!
//! 1. scores: `z_j = s * x_j + b_j` (a multiply then an add, never fused, so `z` is bit-identical
//!    on every path and build), `-inf` for excluded columns; the row maximum and a NaN flag;
//! 2. exponentials: `e_j = exp(z_j - m)` written back, and their sum `S`;
//! 3. finish: `y_j = e_j * (rescale / S)` for kept elements, 0 for dropped ones.
//!
//! Columns outside the band are zero-filled and never otherwise touched. Rows whose maximum is
//! NaN, `-inf` or `+inf` are finished by one shared routine, so their results are identical on
//! every path. Each variant implements only the three passes: [`Scalar`] is the reference
//! (`libm::expf`, `f64` sum, the mask's scalar definition per element); [`Wide4`], [`Wide8`] and
//! [`Wide16`] run the same passes on `wide` vectors of 4, 8 and 16 lanes; [`Best`] is the one
//! suited to the build's target features.

mod scalar;
mod wide_lanes;

use crate::dropout::{Dropout, DropoutKey, keep};
pub(crate) use sealed::{DropPlan, Scores};

/// A row's statistics, enough to finish a split row or recompute its probabilities in a backward
/// pass: `max = m = max_j z_j` and `sum = S = sum_j exp(z_j - m)` over the visible columns
/// (before dropout).
///
/// Special rows: no visible column (or all `-inf`): `max = -inf`, `sum = 0`; a NaN score:
/// both NaN; `k` scores of `+inf`: `max = +inf`, `sum = k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowStats {
    /// The row maximum `m` of the scores `z_j`.
    pub max: f32,
    /// `S = sum_j exp(z_j - m)`, at least 1 for an ordinary row.
    pub sum: f32,
}

impl RowStats {
    /// Statistics of a row with no visible column.
    pub const EMPTY: RowStats = RowStats {
        max: f32::NEG_INFINITY,
        sum: 0.0,
    };

    /// `lse = m + ln S`, the log of the softmax denominator; `-inf` for an empty row.
    pub fn lse(&self) -> f32 {
        self.max + libm::logf(self.sum)
    }
}

pub(crate) mod sealed {
    use crate::dropout::{Dropout, DropoutKey};
    use crate::mask::Columns;

    /// Everything pass 1 needs to turn logits into scores.
    pub struct Scores<'a> {
        pub scale: f32,
        pub bias: Option<&'a [f32]>,
        pub columns: Columns<'a>,
    }

    /// A dropout decision plan for one row, for `0 < D < 2^32`.
    pub struct DropPlan {
        /// `D >> 24` and `D & 0xFF_FFFF`.
        pub d_hi: u32,
        pub d_lo: u32,
        pub key: [u32; 2],
        pub row: [u32; 2],
    }

    impl DropPlan {
        /// The plan for a row, or `None` when no decision needs the generator.
        pub fn new(dropout: &Dropout, key: DropoutKey, row: u64) -> Option<Self> {
            if dropout.keeps_all() || dropout.drops_all() {
                return None;
            }
            let d = dropout.threshold() as u32;
            Some(Self {
                d_hi: d >> 24,
                d_lo: d & 0x00FF_FFFF,
                key: key.philox_key(),
                row: key.row_words(row),
            })
        }

        /// `keep` from the 8-bit main slice `b`, running the tie-break only when it is needed.
        #[inline]
        pub fn keep_byte(&self, b: u32, col: u32) -> bool {
            b > self.d_hi
                || (b == self.d_hi
                    && crate::dropout::tie_break(self.key, self.row, col) >= self.d_lo)
        }
    }

    /// The three passes a variant implements. Preconditions, guaranteed by the callers:
    /// `lo <= hi <= dst.len()`, `src` (when given) and the bias and column mask cover `dst`.
    pub trait Passes {
        /// Pass 1: `dst[j] = z_j` for `j` in `lo..hi`, reading `src[j]`, or `dst[j]` when `src`
        /// is `None`. Returns the maximum of those `z_j` (unspecified if one is NaN) and whether
        /// one is NaN.
        fn scores(
            sc: &Scores<'_>,
            src: Option<&[f32]>,
            dst: &mut [f32],
            lo: usize,
            hi: usize,
        ) -> (f32, bool);
        /// Pass 2: `seg[j] = exp(seg[j] - m)`, returning the sum. `seg` holds no NaN, `m` is
        /// finite and no `seg[j]` exceeds it.
        fn exp_sum(seg: &mut [f32], m: f32) -> f32;
        /// Pass 3: `dst[j] *= factor` for `j` in `lo..hi`, or 0 where `plan` drops column `j`.
        /// `dst[..lo]` holds zeros, which a variant may rewrite (as zeros) to align its chunks.
        fn finish(dst: &mut [f32], lo: usize, hi: usize, factor: f32, plan: Option<&DropPlan>);
    }
}

/// A row-kernel variant: [`Scalar`], [`Wide4`], [`Wide8`] or [`Wide16`] (sealed).
///
/// Every variant computes the same function: masks bit-identical, values within the error bound
/// of the [crate docs](crate#accuracy). Pick one with
/// [`SoftmaxDropout::with_kernel`](crate::SoftmaxDropout::with_kernel); the default is [`Best`].
pub trait RowKernel: sealed::Passes {
    /// A short name, for benchmarks and test messages.
    const NAME: &'static str;
}

/// The scalar reference: `libm::expf`, an `f64` sum, and [`keep`](crate::keep) per element.
/// Slow, obviously right; the oracle for every other variant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;
/// `wide` vectors of 4 lanes (`f32x4`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide4;
/// `wide` vectors of 8 lanes (`f32x8`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide8;
/// `wide` vectors of 16 lanes (`f32x16`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide16;

/// The variant for this build: [`Wide16`] (with AVX-512F, two 256-bit halves with AVX2, and
/// four 128-bit quarters on the x86-64 baseline, where the wider unroll measured faster).
pub type Best = Wide16;

impl RowKernel for Scalar {
    const NAME: &'static str = "scalar";
}
impl RowKernel for Wide4 {
    const NAME: &'static str = "wide4";
}
impl RowKernel for Wide8 {
    const NAME: &'static str = "wide8";
}
impl RowKernel for Wide16 {
    const NAME: &'static str = "wide16";
}

/// How a row is finished: evaluation, or training with a dropout and key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finish {
    Eval,
    Train(Dropout, DropoutKey),
}

/// One row, every case: the shared orchestration of the three passes and the special rows.
/// `span` is the row's structural band; `row` its id for the mask (before the key's offset).
pub(crate) fn forward_row<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    src: Option<&[f32]>,
    dst: &mut [f32],
) -> RowStats {
    let (lo, hi) = span;
    let (head, rest) = dst.split_at_mut(lo.min(dst.len()));
    head.fill(0.0);
    if let Some(tail) = rest.get_mut(hi.saturating_sub(lo)..) {
        tail.fill(0.0);
    }
    if lo >= hi {
        return RowStats::EMPTY;
    }
    let (m, has_nan) = K::scores(sc, src, dst, lo, hi);
    // Which zero a maximum of zeros is depends on the variant's max; make it +0 everywhere.
    let m = m + 0.0;
    let Some(seg) = dst.get_mut(lo..hi) else {
        return RowStats::EMPTY;
    };
    if has_nan {
        // Every column that takes part becomes NaN; excluded ones stay 0.
        for v in seg.iter_mut() {
            *v = if *v == f32::NEG_INFINITY {
                0.0
            } else {
                f32::NAN
            };
        }
        return RowStats {
            max: f32::NAN,
            sum: f32::NAN,
        };
    }
    if m == f32::NEG_INFINITY {
        seg.fill(0.0);
        return RowStats::EMPTY;
    }
    if m == f32::INFINITY {
        return infinite_row(seg, lo, finish, row);
    }
    let sum = K::exp_sum(seg, m);
    let (factor, plan) = match finish {
        Finish::Eval => (1.0 / f64::from(sum), None),
        Finish::Train(d, _) if d.drops_all() => {
            seg.fill(0.0);
            return RowStats { max: m, sum };
        }
        Finish::Train(d, key) => (
            f64::from(d.rescale()) / f64::from(sum),
            DropPlan::new(&d, key, row),
        ),
    };
    K::finish(dst, lo, hi, factor as f32, plan.as_ref());
    RowStats { max: m, sum }
}

/// A row whose maximum score is `+inf`: the limit of the softmax as those scores grow, i.e. the
/// `k` infinite columns share the probability equally, every other column gets 0.
fn infinite_row(seg: &mut [f32], lo: usize, finish: Finish, row: u64) -> RowStats {
    let k = seg.iter().filter(|&&z| z == f32::INFINITY).count() as f32;
    let share = match finish {
        Finish::Eval => 1.0 / f64::from(k),
        Finish::Train(d, _) => f64::from(d.rescale()) / f64::from(k),
    };
    for (j, v) in seg.iter_mut().enumerate() {
        let kept = match finish {
            Finish::Eval => true,
            Finish::Train(d, key) => keep(&d, key, row, (lo + j) as u32),
        };
        *v = if *v == f32::INFINITY && kept {
            share as f32
        } else {
            0.0
        };
    }
    RowStats {
        max: f32::INFINITY,
        sum: k,
    }
}

/// Dropout alone over a row: `y_j = keep(row, j) ? x_j * rescale : 0`, in place.
pub(crate) fn dropout_row<K: sealed::Passes>(
    dropout: &Dropout,
    key: DropoutKey,
    row: u64,
    values: &mut [f32],
) {
    if dropout.drops_all() {
        values.fill(0.0);
        return;
    }
    let plan = DropPlan::new(dropout, key, row);
    let n = values.len();
    K::finish(values, 0, n, dropout.rescale(), plan.as_ref());
}
