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
//! Plain scores (`s > 0`, no bias, no column mask, out of place, a band reaching the row's end)
//! skip storing `z`: pass 1 only reads `x` for its maximum (`max_j fl(s x_j) = fl(s max_j x_j)`,
//! rounding being monotone) and pass 2 recomputes `z_j` from `x`, with the same results.
//!
//! Short rows, of at most four vectors ([`sealed::Passes::SHORT`]: 64 columns with 16 lanes),
//! are done in registers instead: the same three steps without storing between them, the output
//! written once. There the passes' overheads (bounds, loop control, reductions between loops)
//! would cost more than the arithmetic. A matrix of them goes two rows at a time
//! ([`sealed::Passes::short_pair`], with AVX2 or AVX-512): a row alone is one chain of dependent
//! steps, two rows side by side keep the vector units busy.
//!
//! A matrix of longer rows is software-pipelined ([`forward_matrix`]): after pass 2 of an
//! ordinary row, pass 1 of the next row (when its band is not empty) runs before pass 3, so that
//! the reductions between passes overlap other work; after a special or empty row the next row
//! runs its own pass 1. In training, a row's first block of keep bits is generated before its
//! pass 2 (and, with AVX-512, rows of up to 64 columns eight at a time, of 65-128 four at a
//! time, their rare ties settled for the whole batch at once), so that the generator's chain of
//! dependent rounds overlaps the exponentials. Each row's result is exactly [`forward_row`]'s.
//!
//! Columns outside the band are zero-filled and never otherwise touched. Rows whose maximum is
//! NaN, `-inf` or `+inf` are finished by one shared routine, so their results are identical on
//! every path. Each variant implements only the passes: [`Scalar`] is the reference
//! (`libm::expf`, `f64` sum, the mask's scalar definition per element); the vector tables run
//! the passes of `vector`, written once over the `lanes` traits: [`Wide4`], [`Wide8`] and
//! [`Wide16`] on `wide` vectors, and on x86-64 the AVX2 and AVX-512 tables (`isa`). Each entry
//! point (`entry`) wraps its call in a job that the variant runs with its table's passes;
//! [`Best`] runs it with the table chosen at run time.

mod scalar;
pub(crate) mod vector;

use crate::dropout::{Dropout, DropoutKey, keep};
use crate::mask::Columns;
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

    /// The statistics of the union of two disjoint sets of columns (two chunks of a split row):
    /// `m = max(m1, m2)`, `S = S1 exp(m1 - m) + S2 exp(m2 - m)`, computed in `f64` and rounded
    /// once. Exact up to that rounding, associative and commutative up to it; special rows
    /// combine as the whole row would (an empty side is the identity, NaN wins, `+inf` counts add).
    pub fn merge(self, other: RowStats) -> RowStats {
        let (a, b) = (self, other);
        if a.max.is_nan() || b.max.is_nan() || a.sum.is_nan() || b.sum.is_nan() {
            return RowStats {
                max: f32::NAN,
                sum: f32::NAN,
            };
        }
        if a.max == f32::NEG_INFINITY {
            return b;
        }
        if b.max == f32::NEG_INFINITY {
            return a;
        }
        let m = if b.max > a.max { b.max } else { a.max };
        let part = |s: RowStats| -> f64 {
            if m == f32::INFINITY {
                // The limit: only the +inf columns count, each as 1.
                if s.max == f32::INFINITY {
                    f64::from(s.sum)
                } else {
                    0.0
                }
            } else {
                f64::from(s.sum) * libm::exp(f64::from(s.max) - f64::from(m))
            }
        };
        RowStats {
            max: m + 0.0,
            sum: (part(a) + part(b)) as f32,
        }
    }
}

pub(crate) mod sealed {
    use crate::dropout::{Dropout, DropoutKey};
    use crate::mask::Columns;

    /// A call into the kernels, run with one table's passes: the crate's entry points wrap their
    /// generic work in a job so that a [`Dispatch`] (for [`Best`](crate::Best), the run-time
    /// choice) instantiates it once per table.
    pub trait Job {
        /// What the call returns.
        type Out;
        /// The call with the passes of `K`.
        fn run<K: Passes>(self) -> Self::Out;
    }

    /// How a kernel variant runs a [`Job`]: with its own passes, or with the passes of the table
    /// chosen at run time.
    pub trait Dispatch {
        /// Runs `job`.
        fn dispatch<J: Job>(job: J) -> J::Out;
        /// Whether this CPU can run the variant.
        fn supported() -> bool;
    }

    /// Everything pass 1 needs to turn logits into scores.
    pub struct Scores<'a> {
        pub scale: f32,
        pub bias: Option<&'a [f32]>,
        pub columns: Columns<'a>,
        /// The sink logit, a score with no column that joins the row's maximum and sum;
        /// `-inf` for none.
        pub sink: f32,
        /// The soft-cap `c > 0` (`z = c tanh(s x / c) + b`), or 0 for none.
        pub cap: f32,
    }

    /// A dropout decision plan for one row, for `0 < D < 2^32`.
    pub struct DropPlan {
        /// `D >> 24` and `D & 0xFF_FFFF`.
        pub d_hi: u32,
        pub d_lo: u32,
        pub key: [u32; 2],
        pub row: [u32; 2],
        /// The row column of the slice's first element (a multiple of 64): chunks of a split
        /// row index the mask with their global columns.
        pub col0: usize,
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
                col0: 0,
            })
        }
    }

    /// The passes a variant implements. Preconditions, guaranteed by the callers:
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
        /// Also zeroes `zeros`, with stores interleaved with the exponentials.
        fn exp_sum(seg: &mut [f32], m: f32, zeros: &mut [f32]) -> f32;
        /// Pass 1 for plain scores, `z_j = s * x_j` with `s > 0`, no bias and no column mask,
        /// without storing them: `fl(s max_j x_j)`, which is `max_j fl(s x_j)` (rounding is
        /// monotone), as `+0` if zero; unspecified if an `x_j` is NaN. A variant without a
        /// plain path returns NaN (the default), sending the row to the general one.
        fn plain_max(x: &[f32], s: f32) -> f32 {
            let _ = (x, s);
            f32::NAN
        }
        /// Pass 2 for plain scores given `m` (finite, from [`plain_max`](Self::plain_max)):
        /// recomputes `z_j` from `x`, so `seg[j] = exp(z_j - m)` exactly as the two passes of
        /// the general path give it. Returns the sum, or `None` for a NaN score (`seg` then
        /// unspecified, for the general path to rewrite).
        fn plain_exp_sum(x: &[f32], s: f32, m: f32, seg: &mut [f32]) -> Option<f32> {
            let _ = (x, s, m, seg);
            None
        }
        /// Pass 3: `dst[j] *= factor` for `j` in `lo..hi`, or 0 where `plan` drops column `j`.
        /// `dst[..lo]` holds zeros, which a variant may rewrite (as zeros) to align its chunks.
        fn finish(dst: &mut [f32], lo: usize, hi: usize, factor: f32, plan: Option<&DropPlan>);
        /// Keep bits generated before a row's pass 2 (see [`prepare`](Self::prepare)), reused
        /// from row to row of a matrix.
        type Keep;
        /// An empty [`Keep`](Self::Keep).
        fn new_keep() -> Self::Keep;
        /// Generates into `keep` the first keep bits that [`finish`](Self::finish) of band
        /// `lo..hi` under `plan` needs, so that the generator's latency (a chain of ten
        /// dependent rounds) overlaps pass 2 instead of stalling pass 3. Does nothing by default.
        fn prepare(keep: &mut Self::Keep, plan: &DropPlan, lo: usize, hi: usize) {
            let _ = (keep, plan, lo, hi);
        }
        /// [`finish`](Self::finish) with `plan` after [`prepare`](Self::prepare) with the same
        /// plan and band; the same result.
        fn finish_prepared(
            dst: &mut [f32],
            lo: usize,
            hi: usize,
            factor: f32,
            plan: &DropPlan,
            keep: &mut Self::Keep,
        ) {
            let _ = keep;
            Self::finish(dst, lo, hi, factor, Some(plan));
        }
        /// Rows of at most this many columns may go to [`short_row`](Self::short_row)
        /// (0: never).
        const SHORT: usize = 0;
        /// A whole row (logits read from `src`, or from `dst` when `None`) of at most
        /// [`SHORT`](Self::SHORT) columns, band `lo < hi`, done in registers, its scores as
        /// [`scores`](Self::scores) gives them: the three passes without storing between them, `dst` written
        /// once, zeros outside the band. `y_j = e_j * (rescale / S)`, or 0 where `plan` drops
        /// column `j` (keep bits through `keep` when given, as [`prepare`](Self::prepare)
        /// would). Returns `(m, S)`, or `None`, having written nothing, when the row is special
        /// (a NaN, `+inf` or no finite visible score) or not short.
        #[allow(clippy::too_many_arguments)]
        fn short_row(
            src: Option<&[f32]>,
            sc: &Scores<'_>,
            dst: &mut [f32],
            span: (usize, usize),
            rescale: f32,
            plan: Option<&DropPlan>,
            keep: Option<&mut Self::Keep>,
        ) -> Option<(f32, f32)> {
            let _ = (src, sc, dst, span, rescale, plan, keep);
            None
        }
        /// Whether a matrix's rows in registers go two at a time ([`short_pair`](Self::short_pair),
        /// [`short_pair_train`](Self::short_pair_train)), and longer rows whose band ends within
        /// [`SHORT`](Self::SHORT) columns go in registers too (see `short_row`).
        const PAIRS: bool = false;
        /// Two rows of [`short_row`](Self::short_row) without a plan, the same length, each
        /// with its own source and band, done together: the same results as two calls.
        /// `None`, having written nothing, when either row is special or the variant does not
        /// pair rows (the default).
        fn short_pair(
            src: [Option<&[f32]>; 2],
            sc: &Scores<'_>,
            dst: [&mut [f32]; 2],
            span: [(usize, usize); 2],
            rescale: f32,
        ) -> Option<[(f32, f32); 2]> {
            let _ = (src, sc, dst, span, rescale);
            None
        }
        /// [`short_pair`](Self::short_pair) for two training rows with their plans, keep bits
        /// through `keep` as [`short_row`](Self::short_row) takes them.
        #[allow(clippy::too_many_arguments)]
        fn short_pair_train(
            src: [Option<&[f32]>; 2],
            sc: &Scores<'_>,
            dst: [&mut [f32]; 2],
            span: [(usize, usize); 2],
            rescale: f32,
            plan: [&DropPlan; 2],
            keep: &mut Self::Keep,
        ) -> Option<[(f32, f32); 2]> {
            let _ = (src, sc, dst, span, rescale, plan, keep);
            None
        }
        /// `dst[..] = +0`, as plain vector stores: a `memset` call (what `fill` becomes) is a
        /// burst the core cannot overlap with the compute around it.
        fn zero(dst: &mut [f32]);
        /// The keep bits of columns `first + 64 i ..` (bit `k` of `words[i]`), `first` a multiple
        /// of 4096, for a row of `end` columns (bits at or past `end` are unspecified).
        fn keep_words(plan: &DropPlan, first: usize, words: &mut [u64; 64], end: usize);
        /// Backward: `dx[j] = scale * P_j * (G_j - sum_k P_k G_k)` for `j` in `lo..hi`, with
        /// `G_j = dy[j] * rescale` where `plan` keeps `j` (every `j` without a plan), else 0.
        /// `P_j` is `p[j]`, or `dx[j]` itself when `p` is `None`. `dy` (and `p`) cover `dx`.
        /// Returns `D = sum_k P_k G_k` as the row used it (the sink gradient is `-P_sink D`).
        #[allow(clippy::too_many_arguments)]
        fn grad(
            p: Option<&[f32]>,
            dy: &[f32],
            dx: &mut [f32],
            lo: usize,
            hi: usize,
            rescale: f32,
            plan: Option<&DropPlan>,
            scale: f32,
        ) -> f32;
        /// The soft-cap's chain rule: `dx[j] *= 1 - t_j^2 = sech^2(x[j] * s_over_c)` for `j` in
        /// `lo..hi` where `dx[j] != 0` (zeros stay, whatever `x[j]` holds); `x` covers `dx`.
        fn cap_grad(x: &[f32], dx: &mut [f32], lo: usize, hi: usize, s_over_c: f32);
    }
}

/// A row-kernel variant (sealed): the run-time choice [`Best`], the scalar reference
/// [`Scalar`], a portable table ([`Wide4`], [`Wide8`], [`Wide16`]) or, on x86-64, a table
/// forced regardless of what [`Best`] would pick ([`Avx2`](crate::Avx2),
/// [`Avx512`](crate::Avx512)).
///
/// Every variant computes the same function: masks bit-identical, values within the error bound
/// of the [crate docs](crate#accuracy). Pick one with
/// [`SoftmaxDropout::with_kernel`](crate::SoftmaxDropout::with_kernel); the default is [`Best`].
pub trait RowKernel: sealed::Dispatch {
    /// A short name, for benchmarks and test messages.
    const NAME: &'static str;

    /// Whether this CPU can run the variant. Calls through one it cannot run return
    /// [`Error::UnsupportedKernel`](crate::Error::UnsupportedKernel) and write nothing.
    fn is_supported() -> bool {
        <Self as sealed::Dispatch>::supported()
    }
}

/// The scalar reference: `libm::expf`, an `f64` sum, and [`keep`] per element.
/// Slow, obviously right; the oracle for every other variant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;
/// The portable table at 4 lanes (`wide`'s `f32x4`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide4;
/// The portable table at 8 lanes (`wide`'s `f32x8`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide8;
/// The portable table at 16 lanes (`wide`'s `f32x16`): what [`Best`] runs where no x86-64
/// table is available.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wide16;

/// The default variant: the table [`isa`](fn@crate::isa) names, chosen at run time:
/// [`Avx2`](crate::Avx2) on x86-64 CPUs with AVX2 and FMA, else [`Wide16`]. No build flags are
/// needed: every x86-64 build carries the x86-64 tables and picks one when first called.
#[derive(Clone, Copy, Debug, Default)]
pub struct Best;

/// Implements [`RowKernel`] and the dispatch for a variant that is one table, runnable where
/// `$supported` holds.
macro_rules! one_table {
    ($kernel:ty, $name:literal, $supported:expr) => {
        impl $crate::kernel::sealed::Dispatch for $kernel {
            #[inline(always)]
            fn dispatch<J: $crate::kernel::sealed::Job>(job: J) -> J::Out {
                job.run::<Self>()
            }
            #[inline(always)]
            fn supported() -> bool {
                $supported
            }
        }
        impl $crate::kernel::RowKernel for $kernel {
            const NAME: &'static str = $name;
        }
    };
}
one_table!(Scalar, "scalar", true);
one_table!(Wide4, "wide4", true);
one_table!(Wide8, "wide8", true);
one_table!(Wide16, "wide16", true);

impl sealed::Dispatch for Best {
    #[inline(always)]
    fn dispatch<J: sealed::Job>(job: J) -> J::Out {
        crate::isa::run_best(job)
    }
    #[inline(always)]
    fn supported() -> bool {
        true
    }
}
impl RowKernel for Best {
    const NAME: &'static str = "best";
}

/// How a row is finished: evaluation, or training with a dropout and key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finish {
    Eval,
    Train(Dropout, DropoutKey),
}

/// One row, every case: the shared orchestration of the three passes and the special rows.
/// `span` is the row's structural band; `row` its id for the mask (before the key's offset).
#[inline(always)]
fn forward_row_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    src: Option<&[f32]>,
    dst: &mut [f32],
) -> RowStats {
    forward_row_with::<K>(sc, finish, span, row, src, dst, None, || (), None)
}

/// What pass 1 of a row with a non-empty band leaves for the rest of it.
#[derive(Clone, Copy)]
enum Pass1 {
    /// Plain scores, not stored: their maximum, finite.
    Plain(f32),
    /// Scores stored in the band: their maximum (`+0` for zeros) and whether one is NaN.
    Stored(f32, bool),
}

/// Pass 1 of a row whose band `lo < hi` is not empty.
///
/// Plain scores skip storing `z`, but only in rows without a masked tail: there the tail's zero
/// stores already crowd pass 2 with write misses, and pass 1's stores take the row's own.
/// Measured (benches/ab, rows of 1024, before rows were pipelined and before the tail's memset
/// went): full rows eval 9-15 % and train 5-10 % faster than with pass 1 storing `z`; causal
/// rows through this path: training 5-10 % slower, evaluation within 3 % either way; zeroing
/// their tail after it instead, slower still. Not re-measured since.
#[inline(always)]
fn pass1<K: sealed::Passes>(
    sc: &Scores<'_>,
    (lo, hi): (usize, usize),
    src: Option<&[f32]>,
    dst: &mut [f32],
) -> Pass1 {
    if plain_scores(sc)
        && hi == dst.len()
        && let Some(x) = src.and_then(|s| s.get(lo..hi))
    {
        let m = K::plain_max(x, sc.scale);
        if m.is_finite() {
            return Pass1::Plain(m);
        }
    }
    let (m, has_nan) = K::scores(sc, src, dst, lo, hi);
    // Which zero a maximum of zeros is depends on the variant's max; make it +0 everywhere.
    Pass1::Stored(m + 0.0, has_nan)
}

/// [`forward_row`], given pass 1's result when it has already run, calling `between` after
/// pass 2 of an ordinary row, before pass 3 (see [`forward_matrix`]); `between` is not called
/// for an empty band or a special row (NaN, `-inf` or `+inf` maximum).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_row_with<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    src: Option<&[f32]>,
    dst: &mut [f32],
    ahead: Option<Pass1>,
    between: impl FnOnce(),
    mut keep: Option<&mut K::Keep>,
) -> RowStats {
    let (lo, hi) = span;
    if ahead.is_none()
        && let Some(stats) = short_row::<K>(sc, finish, span, row, src, dst, keep.as_deref_mut())
    {
        return stats;
    }
    let (head, rest) = dst.split_at_mut(lo.min(dst.len()));
    if !head.is_empty() {
        K::zero(head);
    }
    if lo >= hi {
        K::zero(rest);
        return sink_only(sc.sink);
    }
    let (m, has_nan) = match ahead.unwrap_or_else(|| pass1::<K>(sc, span, src, dst)) {
        Pass1::Plain(m) => {
            if let Some(x) = src.and_then(|s| s.get(lo..hi))
                && let Some(seg) = dst.get_mut(lo..hi)
                && let Some(sum) = K::plain_exp_sum(x, sc.scale, m, seg)
            {
                between();
                return finish_row::<K>(finish, dst, span, row, m, sum, sc.sink);
            }
            // A NaN score: the general path finds it.
            let (m, has_nan) = K::scores(sc, src, dst, lo, hi);
            (m + 0.0, has_nan)
        }
        Pass1::Stored(m, has_nan) => (m, has_nan),
    };
    // A NaN sink makes the row a NaN row (no plain path runs with one: see `plain_scores`).
    let has_nan = has_nan || sc.sink.is_nan();
    let (seg, tail) = match dst
        .get_mut(lo..)
        .and_then(|r| r.split_at_mut_checked((hi - lo).min(r.len())))
    {
        Some(parts) => parts,
        None => return RowStats::EMPTY,
    };
    if has_nan || !m.is_finite() {
        K::zero(tail);
    }
    if has_nan {
        nan_row(seg);
        return RowStats {
            max: f32::NAN,
            sum: f32::NAN,
        };
    }
    if m == f32::NEG_INFINITY {
        seg.fill(0.0);
        return sink_only(sc.sink);
    }
    if m == f32::INFINITY {
        // A `+inf` sink shares the probability as one more infinite score.
        let k = seg.iter().filter(|&&z| z == f32::INFINITY).count() as f32
            + f32::from(u8::from(sc.sink == f32::INFINITY));
        infinite_row(seg, lo, k, finish, row);
        return RowStats {
            max: f32::INFINITY,
            sum: k,
        };
    }
    // With `keep`, the keep bits are generated before pass 2.
    let prepared = keep.and_then(|keep| Some((prepare_row::<K>(finish, row, span, keep)?, keep)));
    // The masked tail is zeroed by stores spread through the exponentials' loop, where they
    // cost nothing, rather than in a burst before it.
    let sum = K::exp_sum(seg, m, tail);
    between();
    match prepared {
        Some((ready, keep)) => finish_prepared_row::<K>(dst, span, m, sum, sc.sink, ready, keep),
        None => finish_row::<K>(finish, dst, span, row, m, sum, sc.sink),
    }
}

/// Whether rows of `n` columns go to [`short_row`] first.
#[inline(always)]
fn is_short<K: sealed::Passes>(n: usize) -> bool {
    n <= K::SHORT
}

/// A row in registers ([`sealed::Passes::short_row`]), or `None` (nothing written) when it is
/// special or neither short nor banded within [`sealed::Passes::SHORT`] columns. A longer row
/// whose band ends within the first `K::SHORT` columns (the first rows of a causal block) is done
/// as the row of its first `K::SHORT` columns, the rest zeros: the same result, since columns
/// outside the band only ever get zeros.
#[inline(always)]
fn short_row<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    src: Option<&[f32]>,
    dst: &mut [f32],
    keep: Option<&mut K::Keep>,
) -> Option<RowStats> {
    let w = short_width::<K>(dst.len(), span.1)?;
    let (rescale, plan) = match finish {
        Finish::Eval => (1.0, None),
        // Every output `+0 = 0 * e_j`, the statistics those of evaluation.
        Finish::Train(d, _) if d.drops_all() => (0.0, None),
        Finish::Train(d, key) => (d.rescale(), DropPlan::new(&d, key, row)),
    };
    let (head, tail) = dst.split_at_mut_checked(w)?;
    // `src` covers `dst` (or the kernel sees the mismatch and declines).
    let src = src.map(|x| x.get(..w).unwrap_or(x));
    let (max, sum) = K::short_row(src, sc, head, span, rescale, plan.as_ref(), keep)?;
    if !tail.is_empty() {
        K::zero(tail);
    }
    Some(RowStats { max, sum })
}

/// The columns a row of `n` columns whose band ends at `hi` is done on in registers: all of
/// them when `n <= K::SHORT`, the first `K::SHORT` when the band ends there; `None` otherwise.
#[inline(always)]
fn short_width<K: sealed::Passes>(n: usize, hi: usize) -> Option<usize> {
    if is_short::<K>(n) {
        Some(n)
    } else if K::PAIRS && K::SHORT > 0 && hi <= K::SHORT {
        Some(K::SHORT)
    } else {
        None
    }
}

/// What a training row's pass 3 needs after [`prepare_row`]: its plan and rescale.
type Ready = (DropPlan, f32);

/// Generates a training row's first keep bits for band `span` into `keep`, ahead of its pass 2
/// ([`sealed::Passes::prepare`]); `None` in evaluation or when no decision needs the generator.
#[inline(always)]
fn prepare_row<K: sealed::Passes>(
    finish: Finish,
    row: u64,
    (lo, hi): (usize, usize),
    keep: &mut K::Keep,
) -> Option<Ready> {
    let Finish::Train(d, key) = finish else {
        return None;
    };
    let plan = DropPlan::new(&d, key, row)?;
    K::prepare(keep, &plan, lo, hi);
    Some((plan, d.rescale()))
}

/// [`finish_row`] after [`prepare_row`]: the same result.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish_prepared_row<K: sealed::Passes>(
    dst: &mut [f32],
    (lo, hi): (usize, usize),
    m: f32,
    sum: f32,
    sink: f32,
    (plan, rescale): Ready,
    keep: &mut K::Keep,
) -> RowStats {
    let (stats, factor) = join_sink(m, sum, sink, rescale);
    K::finish_prepared(dst, lo, hi, factor, &plan, keep);
    stats
}

/// Whether scores are plain, `z_j = s * x_j` with `s > 0`: see `Passes::plain_max`.
#[inline(always)]
fn plain_scores(sc: &Scores<'_>) -> bool {
    sc.scale > 0.0
        && sc.bias.is_none()
        && matches!(sc.columns, Columns::All)
        && !sc.sink.is_nan()
        && sc.cap == 0.0
}

/// The rows `x.chunks(cols)` into `y.chunks_mut(cols)` (in place without `x`), row `i` with
/// band `span(i)` and id `first_row + i` (wrapping), each exactly as [`forward_row`] computes
/// it; `record` gets their statistics in order. `x` and `y` hold the same whole number of rows.
///
/// Software-pipelined: pass 1 of the next row runs between this row's exponentials (pass 2) and
/// its finish (pass 3), whose multiplies wait for the sum's reduction and the division; the
/// maximum's own reduction then hides behind that finish. Row by row, each row pays both
/// latencies with little to overlap them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_matrix_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: impl Fn(usize) -> (usize, usize),
    first_row: u64,
    cols: usize,
    x: Option<&[f32]>,
    y: &mut [f32],
    record: impl FnMut(RowStats),
) {
    // Training rows generate their keep bits before pass 2; the evaluation loop carries none of
    // that code.
    match finish {
        Finish::Train(d, _) if !d.keeps_all() && !d.drops_all() => {
            rows::<K, true>(sc, finish, span, first_row, cols, x, y, record);
        }
        _ => rows::<K, false>(sc, finish, span, first_row, cols, x, y, record),
    }
}

/// [`forward_matrix`]; with `PREPARE` (training), each ordinary row generates the keep bits of
/// its first block before pass 2 ([`sealed::Passes::prepare`]) into one `Keep` reused for the
/// whole call (its block mask zeroed once, not per row).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows<K: sealed::Passes, const PREPARE: bool>(
    sc: &Scores<'_>,
    finish: Finish,
    span: impl Fn(usize) -> (usize, usize),
    first_row: u64,
    cols: usize,
    x: Option<&[f32]>,
    y: &mut [f32],
    mut record: impl FnMut(RowStats),
) {
    let mut keep = K::new_keep();
    let c = cols.max(1);
    if is_short::<K>(cols) {
        let (w, k) = (c, &mut keep);
        return short_rows::<K, PREPARE>(sc, finish, &span, first_row, c, w, x, y, k, &mut record);
    }
    // The first rows whose bands end within `K::SHORT` columns (the top of a causal block):
    // in registers, in pairs, as `short_row` would do them one at a time.
    let lead = match K::SHORT {
        _ if !K::PAIRS => 0,
        0 => 0,
        w => (0..y.len() / c).take_while(|&i| span(i).1 <= w).count(),
    };
    let (x_lead, x) = match x.map(|x| x.split_at_checked(lead * c)) {
        Some(Some((a, b))) => (Some(a), Some(b)),
        Some(None) => return debug_assert!(false, "x shorter than y"),
        None => (None, None),
    };
    let Some((y_lead, y)) = y.split_at_mut_checked(lead * c) else {
        return debug_assert!(false, "lead rows past y");
    };
    if lead > 0 {
        let (w, k) = (K::SHORT, &mut keep);
        short_rows::<K, PREPARE>(
            sc,
            finish,
            &span,
            first_row,
            c,
            w,
            x_lead,
            y_lead,
            k,
            &mut record,
        );
    }
    let (mut xs, mut ys) = (x, y);
    let mut ahead = None;
    let mut i = lead;
    let mut here = span(lead);
    while let Some((yr, y_next)) = ys.split_at_mut_checked(c) {
        // In place (`x` is `None`), each row is its own input.
        // (`x`, when given, holds as many rows as `y`.)
        let (xr, x_next) = match xs.map(|x| x.split_at_checked(c)) {
            Some(Some((xr, rest))) => (Some(xr), Some(rest)),
            Some(None) => return debug_assert!(false, "x shorter than y"),
            None => (None, None),
        };
        let next = span(i + 1);
        if cols >= PREFETCH_COLS {
            let far = span(i + PREFETCH_ROWS);
            if far != (0, cols) {
                // Row `i + PREFETCH_ROWS` starts `PREFETCH_ROWS - 1` rows into `x_next`.
                let at = (PREFETCH_ROWS - 1) * c;
                prefetch_lines(x_next.and_then(|x| x.get(at + far.0..at + far.1.min(c))));
            }
        }
        let mut next_ahead = None;
        let mut look_ahead = || {
            let xn = x_next.map(|x| x.get(..c));
            // A next row for registers (see `short_row`) runs no pass 1 here, as alone.
            if next.0 < next.1
                && short_width::<K>(c, next.1).is_none()
                && xn != Some(None)
                && let Some(yn) = y_next.get_mut(..c)
            {
                next_ahead = Some(pass1::<K>(sc, next, xn.flatten(), yn));
            }
        };
        let row = first_row.wrapping_add(i as u64);
        // Whole rows of plain scores inline, the rest through the general orchestration: short
        // rows pay for every branch of the general one (see `benches/README.md`).
        let whole = here == (0, cols);
        let plain = match ahead {
            Some(Pass1::Plain(m)) if whole => Some(m),
            None if whole && plain_scores(sc) => xr
                .map(|x| K::plain_max(x, sc.scale))
                .filter(|m| m.is_finite()),
            _ => None,
        };
        let prepared = match plain {
            Some(_) if PREPARE => prepare_row::<K>(finish, row, here, &mut keep),
            _ => None,
        };
        if let (Some(m), Some(xr)) = (plain, xr)
            && let Some(sum) = K::plain_exp_sum(xr, sc.scale, m, yr)
        {
            look_ahead();
            record(match prepared {
                Some(ready) => {
                    finish_prepared_row::<K>(yr, here, m, sum, sc.sink, ready, &mut keep)
                }
                None => finish_row::<K>(finish, yr, here, row, m, sum, sc.sink),
            });
        } else {
            record(forward_row_with::<K>(
                sc,
                finish,
                here,
                row,
                xr,
                yr,
                ahead,
                look_ahead,
                PREPARE.then_some(&mut keep),
            ));
        }
        (xs, ys, ahead, here, i) = (x_next, y_next, next_ahead, next, i + 1);
    }
}

/// [`rows`] of `c` columns done in registers on their first `w` columns, two at a time
/// ([`sealed::Passes::short_pair`]; one at a time without [`sealed::Passes::PAIRS`]), the other
/// columns zeros: rows of `c = w <= K::SHORT`
/// columns, or the first rows of a longer matrix whose bands end within `w = K::SHORT` columns.
/// One at a time where a pair cannot be done so (a special row, the last row of an odd count).
/// Nothing to pipeline, and no pass 1 may run ahead (it would store scores over a row in place).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn short_rows<K: sealed::Passes, const PREPARE: bool>(
    sc: &Scores<'_>,
    finish: Finish,
    span: impl Fn(usize) -> (usize, usize),
    first_row: u64,
    c: usize,
    w: usize,
    x: Option<&[f32]>,
    y: &mut [f32],
    keep: &mut K::Keep,
    record: &mut impl FnMut(RowStats),
) {
    let rescale = match finish {
        Finish::Eval => 1.0,
        // Every output `+0 = 0 * e_j`, the statistics those of evaluation.
        Finish::Train(d, _) if d.drops_all() => 0.0,
        Finish::Train(d, _) => d.rescale(),
    };
    if !K::PAIRS {
        return one_by_one::<K, PREPARE>(sc, finish, &span, first_row, 0, c, x, y, keep, record);
    }
    // Never 0 (`c >= 1`), written so that no panic path is left for the no-panic probe.
    let two = c.saturating_mul(2).max(2);
    let odd = |len: usize| len.checked_rem(two).unwrap_or(0);
    let whole = y.len() - odd(y.len());
    let Some((y, yr)) = y.split_at_mut_checked(whole) else {
        return debug_assert!(false, "whole <= y.len()");
    };
    let mut xs = x.map(|x| chunks_of(x, two));
    let mut i = 0;
    for yp in chunks_of_mut(y, two) {
        let (x0, x1) = match xs.as_mut().map(Iterator::next) {
            Some(Some(xp)) => match xp.split_at_checked(c) {
                Some((a, b)) => (Some(a), Some(b)),
                None => return debug_assert!(false, "a pair of rows is 2 c long"),
            },
            Some(None) => return debug_assert!(false, "x shorter than y"),
            None => (None, None),
        };
        let Some((y0, y1)) = yp.split_at_mut_checked(c) else {
            return debug_assert!(false, "a pair of rows is 2 c long");
        };
        let rows = [i, i + 1].map(|i| first_row.wrapping_add(i as u64));
        let spans = [span(i), span(i + 1)];
        let pair = match (y0.split_at_mut_checked(w), y1.split_at_mut_checked(w)) {
            (Some((h0, t0)), Some((h1, t1))) => {
                let src = [x0, x1].map(|x| x.map(|x| x.get(..w).unwrap_or(x)));
                let stats =
                    short_pair::<K, PREPARE>(finish, src, sc, [h0, h1], spans, rescale, rows, keep);
                if stats.is_some() {
                    for t in [t0, t1] {
                        if !t.is_empty() {
                            K::zero(t);
                        }
                    }
                }
                stats
            }
            _ => None,
        };
        if let Some(stats) = pair {
            for (max, sum) in stats {
                record(RowStats { max, sum });
            }
        } else {
            record(one_short::<K, PREPARE>(
                sc, finish, spans[0], rows[0], x0, y0, keep,
            ));
            record(one_short::<K, PREPARE>(
                sc, finish, spans[1], rows[1], x1, y1, keep,
            ));
        }
        i += 2;
    }
    // The last row of an odd count.
    let xr = x.map(|x| x.get(x.len() - odd(x.len())..).unwrap_or_default());
    one_by_one::<K, PREPARE>(sc, finish, &span, first_row, i, c, xr, yr, keep, record);
}

/// `s.chunks_exact(n)` (nothing for `n = 0`) without `chunks_exact`'s assertion `n != 0`, which
/// survives where `chunks_exact` is not inlined (x86-64 at opt-level "z"): a panic path for the
/// no-panic probe, whatever the caller proved about `n`.
#[inline(always)]
fn chunks_of(s: &[f32], n: usize) -> impl Iterator<Item = &[f32]> {
    let mut rest = if n == 0 { &[][..] } else { s };
    core::iter::from_fn(move || {
        let (chunk, next) = rest.split_at_checked(n)?;
        rest = next;
        Some(chunk)
    })
}

/// [`chunks_of`] for a mutable slice: `s.chunks_exact_mut(n)` without the assertion.
#[inline(always)]
fn chunks_of_mut(s: &mut [f32], n: usize) -> impl Iterator<Item = &mut [f32]> {
    let mut rest = if n == 0 { &mut [][..] } else { s };
    core::iter::from_fn(move || {
        let (chunk, next) = core::mem::take(&mut rest).split_at_mut_checked(n)?;
        rest = next;
        Some(chunk)
    })
}

/// Rows `i0 ..` of [`short_rows`] (`c` columns each), one at a time ([`one_short`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn one_by_one<K: sealed::Passes, const PREPARE: bool>(
    sc: &Scores<'_>,
    finish: Finish,
    span: impl Fn(usize) -> (usize, usize),
    first_row: u64,
    i0: usize,
    c: usize,
    x: Option<&[f32]>,
    y: &mut [f32],
    keep: &mut K::Keep,
    record: &mut impl FnMut(RowStats),
) {
    let mut xs = x.map(|x| chunks_of(x, c.max(1)));
    for (i, yr) in (i0..).zip(chunks_of_mut(y, c.max(1))) {
        let xr = match xs.as_mut().map(Iterator::next) {
            Some(None) => return debug_assert!(false, "x shorter than y"),
            xr => xr.flatten(),
        };
        let row = first_row.wrapping_add(i as u64);
        record(one_short::<K, PREPARE>(
            sc,
            finish,
            span(i),
            row,
            xr,
            yr,
            keep,
        ));
    }
}

/// A pair of [`short_rows`] through the variant's pair kernels: `None` as they return it, or when
/// a training row needs no generator (then each row goes alone).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn short_pair<K: sealed::Passes, const PREPARE: bool>(
    finish: Finish,
    src: [Option<&[f32]>; 2],
    sc: &Scores<'_>,
    dst: [&mut [f32]; 2],
    spans: [(usize, usize); 2],
    rescale: f32,
    rows: [u64; 2],
    keep: &mut K::Keep,
) -> Option<[(f32, f32); 2]> {
    match finish {
        Finish::Train(d, key) if PREPARE => {
            let p0 = DropPlan::new(&d, key, rows[0])?;
            let p1 = DropPlan::new(&d, key, rows[1])?;
            K::short_pair_train(src, sc, dst, spans, rescale, [&p0, &p1], keep)
        }
        _ if PREPARE => None,
        _ => K::short_pair(src, sc, dst, spans, rescale),
    }
}

/// One row of [`short_rows`]: in registers, else through the general path.
#[inline(always)]
fn one_short<K: sealed::Passes, const PREPARE: bool>(
    sc: &Scores<'_>,
    finish: Finish,
    here: (usize, usize),
    row: u64,
    xr: Option<&[f32]>,
    yr: &mut [f32],
    keep: &mut K::Keep,
) -> RowStats {
    let mut keep = PREPARE.then_some(keep);
    match short_row::<K>(sc, finish, here, row, xr, yr, keep.as_deref_mut()) {
        Some(stats) => stats,
        None => forward_row_with::<K>(sc, finish, here, row, xr, yr, None, || (), keep),
    }
}

/// Banded rows (a mask) of at least [`PREFETCH_COLS`] columns have the first
/// [`PREFETCH_LINES`] cache lines of their visible logits prefetched [`PREFETCH_ROWS`] rows
/// ahead.
///
/// Why: a row of 1024 `f32` is a 4 KiB page, and the hardware prefetchers do not cross pages, so
/// each row restarts their streams; a full row reads enough of its page for them to catch up, a
/// banded row (half a page on average in causal blocks) mostly does not, and its pass 1 waited
/// on memory. Full rows are not prefetched (their streams catch up; prefetching them slowed
/// them), nor the whole visible range (it costs rows in cache more than it gains out of cache),
/// nor the output rows, nor rows of 128 columns (contiguous rows are one stream). The
/// measurements are in `benches/README.md`.
const PREFETCH_ROWS: usize = 4;

/// See [`PREFETCH_ROWS`].
const PREFETCH_COLS: usize = 1024;

/// See [`PREFETCH_ROWS`].
const PREFETCH_LINES: usize = 8;

/// Prefetches the first [`PREFETCH_LINES`] cache lines of `a` for reading.
#[inline(always)]
fn prefetch_lines(a: Option<&[f32]>) {
    for line in a.unwrap_or(&[]).iter().step_by(16).take(PREFETCH_LINES) {
        crate::lanes::prefetch_read(line);
    }
}

/// Pass 3 of an ordinary row, whose `dst[lo..hi]` holds `exp(z_j - m)` summing to `sum`, the
/// sink logit `sink` joining the softmax ([`join_sink`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_row<K: sealed::Passes>(
    finish: Finish,
    dst: &mut [f32],
    (lo, hi): (usize, usize),
    row: u64,
    m: f32,
    sum: f32,
    sink: f32,
) -> RowStats {
    let (rescale, plan) = match finish {
        Finish::Eval => (1.0, None),
        Finish::Train(d, _) if d.drops_all() => {
            if let Some(seg) = dst.get_mut(lo..hi) {
                seg.fill(0.0);
            }
            return join_sink(m, sum, sink, 0.0).0;
        }
        Finish::Train(d, key) => (d.rescale(), DropPlan::new(&d, key, row)),
    };
    let (stats, factor) = join_sink(m, sum, sink, rescale);
    K::finish(dst, lo, hi, factor, plan.as_ref());
    stats
}

/// A row whose visible scores have the finite maximum `m` and `sum = sum_j exp(z_j - m)`, with
/// the sink logit `sink` (`-inf` for none; never NaN here) joining the softmax: its statistics
/// `m' = max(m, sink)`, `S' = sum exp(z_j - m') + exp(sink - m')`, and the factor that turns
/// each `exp(z_j - m)` into its output before dropout, `rescale exp(m - m') / S'`.
///
/// Without a sink, `(m, sum)` and `rescale / sum`: one `f32` division, correctly rounded (an
/// `f64` one rounded to `f32` is the same but for rare double roundings, and its latency sits
/// between pass 2 and pass 3 of every row). With one, `exp(sink - m)` or `exp(m - sink)` in
/// `f32` (`libm::expf`, below 1 ulp), one more addition and, where the sink is the maximum, one
/// more multiplication: a few ulp more in `S'` and the factor, once per row. A `+inf` sink
/// (above a finite `m`) takes all the probability: `(+inf, 1)` and the factor 0.
#[inline(always)]
pub(crate) fn join_sink(m: f32, sum: f32, sink: f32, rescale: f32) -> (RowStats, f32) {
    if sink == f32::NEG_INFINITY {
        return (RowStats { max: m, sum }, rescale / sum);
    }
    if sink <= m {
        let sum = sum + libm::expf(sink - m);
        (RowStats { max: m, sum }, rescale / sum)
    } else {
        let c = libm::expf(m - sink);
        let sum = libm::fmaf(sum, c, 1.0);
        (
            RowStats {
                max: sink + 0.0,
                sum,
            },
            rescale * c / sum,
        )
    }
}

/// The statistics of a row with no finite visible score and the sink `sink`: [`RowStats::EMPTY`]
/// without one, else all its probability on the sink, `(sink, 1)` (NaN for a NaN sink).
#[inline(always)]
fn sink_only(sink: f32) -> RowStats {
    if sink == f32::NEG_INFINITY {
        RowStats::EMPTY
    } else if sink.is_nan() {
        RowStats {
            max: f32::NAN,
            sum: f32::NAN,
        }
    } else {
        RowStats {
            max: sink + 0.0,
            sum: 1.0,
        }
    }
}

/// A row whose maximum score is `+inf`: the limit of the softmax as those scores grow, i.e. the
/// `k` infinite columns share the probability equally (then dropout, at the global column
/// `first + j`), every other column gets 0. `seg` holds the scores.
fn infinite_row(seg: &mut [f32], first: usize, k: f32, finish: Finish, row: u64) {
    let share = match finish {
        Finish::Eval => 1.0 / f64::from(k),
        Finish::Train(d, _) => f64::from(d.rescale()) / f64::from(k),
    } as f32;
    for (j, v) in (first..).zip(seg.iter_mut()) {
        let kept = match finish {
            Finish::Eval => true,
            Finish::Train(d, key) => keep(&d, key, row, j as u32),
        };
        *v = if *v == f32::INFINITY && kept {
            share
        } else {
            0.0
        };
    }
}

/// A row with a NaN score: every column that takes part becomes NaN, excluded ones (`-inf`
/// scores) stay 0. `seg` holds the scores.
fn nan_row(seg: &mut [f32]) {
    for v in seg.iter_mut() {
        *v = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            f32::NAN
        };
    }
}

/// Finishes a row whose statistics are special (NaN, `-inf` or `+inf` maximum) from its scores
/// in `seg`, exactly as every path does; false for an ordinary row, left untouched.
fn special_row(seg: &mut [f32], first: usize, stats: RowStats, finish: Finish, row: u64) -> bool {
    if stats.max.is_nan() || stats.sum.is_nan() {
        nan_row(seg);
    } else if stats.max == f32::NEG_INFINITY {
        seg.fill(0.0);
    } else if stats.max == f32::INFINITY {
        infinite_row(seg, first, stats.sum, finish, row);
    } else {
        return false;
    }
    true
}

/// Where the backward pass gets the softmax probabilities `P` of a row.
#[derive(Clone, Copy, Debug)]
pub enum Probabilities<'a> {
    /// `P` as the caller saved it (the forward's softmax before dropout: for example an
    /// evaluation-mode forward of the same row), one entry per column.
    Saved(&'a [f32]),
    /// Recompute `P_j = exp(z_j - m) / S` from the forward's logits `x` and its [`RowStats`]
    /// (the same scale, mask and bias are applied to `x` as in the forward).
    Recompute {
        /// The forward's logits.
        logits: &'a [f32],
        /// The statistics the forward returned for this row.
        stats: RowStats,
    },
}

/// One row of the backward pass (contract §4): `G_j = keep(r, j) ? dY_j / q : 0` and
/// `dx_j = s P_j (G_j - sum_k P_k G_k)`, masked columns 0; the mask is regenerated from the key.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_row_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    probs: Probabilities<'_>,
    dy: &[f32],
    dx: &mut [f32],
) -> f32 {
    let (lo, hi) = span;
    zero_outside(dx, span);
    if lo >= hi {
        return 0.0;
    }
    let (rescale, plan) = match finish {
        Finish::Eval => (1.0, None),
        Finish::Train(d, _) if d.drops_all() => {
            // G = 0, so dx = s P (0 - 0) = 0.
            dx.fill(0.0);
            return 0.0;
        }
        Finish::Train(d, key) => (d.rescale(), DropPlan::new(&d, key, row)),
    };
    let saved = match probs {
        Probabilities::Saved(p) => Some(p),
        Probabilities::Recompute { logits, stats } => {
            recompute_probs::<K>(sc, span, logits, stats, dx);
            None
        }
    };
    let dot = K::grad(saved, dy, dx, lo, hi, rescale, plan.as_ref(), sc.scale);
    // Through the soft-cap (the callers pass the logits whenever there is one).
    if sc.cap != 0.0
        && let Probabilities::Recompute { logits, .. } = probs
    {
        K::cap_grad(logits, dx, lo, hi, sc.scale / sc.cap);
    }
    // Columns the per-column mask hides get no gradient, whatever P holds there.
    if !matches!(sc.columns, Columns::All)
        && let Some(seg) = dx.get_mut(lo..hi)
    {
        for (j, v) in (lo..).zip(seg.iter_mut()) {
            if !sc.columns.visible(j) {
                *v = 0.0;
            }
        }
    }
    dot
}

/// The rows `dx.chunks_mut(cols)` of a matrix's backward, row `i` with band `span(i)` and id
/// `first_row + i` (wrapping), each exactly as [`backward_row_on`] computes it: `p` holds the
/// saved `P` rows, or the logits rows when `stats` (one per row) asks to recompute `P`. `p`,
/// `dy` and `dx` hold the same whole number of rows (`stats` at least that many entries); one
/// dispatch for the whole matrix. `record` gets each row's `D = sum_k P_k G_k`, in order.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_matrix_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: impl Fn(usize) -> (usize, usize),
    first_row: u64,
    cols: usize,
    p: &[f32],
    stats: Option<&[RowStats]>,
    dy: &[f32],
    dx: &mut [f32],
    mut record: impl FnMut(f32),
) {
    let c = cols.max(1);
    let (mut dx, mut dy, mut p) = (dx, dy, p);
    // Rows split off one by one, not `chunks_exact`: at opt-level "z" its chunk-size assertion
    // is not always removed (a panic path). There are at most `len` rows.
    for i in 0..dx.len() {
        let (Some((dxr, dx_rest)), Some((dyr, dy_rest)), Some((pr, p_rest))) = (
            core::mem::take(&mut dx).split_at_mut_checked(c),
            dy.split_at_checked(c),
            p.split_at_checked(c),
        ) else {
            return;
        };
        (dx, dy, p) = (dx_rest, dy_rest, p_rest);
        let probs = match stats.map(|s| s.get(i)) {
            None => Probabilities::Saved(pr),
            Some(Some(&stats)) => Probabilities::Recompute { logits: pr, stats },
            Some(None) => return,
        };
        let row = first_row.wrapping_add(i as u64);
        record(backward_row_on::<K>(
            sc,
            finish,
            span(i),
            row,
            probs,
            dyr,
            dxr,
        ));
    }
}

/// `dx[lo..hi] = P` recomputed from the logits and the forward's statistics, special rows as in
/// the forward (a NaN row is NaN, an empty row 0, a `+inf` row shares `1/k`).
#[inline(always)]
fn recompute_probs<K: sealed::Passes>(
    sc: &Scores<'_>,
    span: (usize, usize),
    x: &[f32],
    stats: RowStats,
    dx: &mut [f32],
) {
    let (lo, hi) = span;
    let _ = K::scores(sc, Some(x), dx, lo, hi);
    let Some(seg) = dx.get_mut(lo..hi) else {
        return;
    };
    let m = stats.max + 0.0;
    if !special_row(
        seg,
        lo,
        RowStats {
            max: m,
            sum: stats.sum,
        },
        Finish::Eval,
        0,
    ) {
        let _ = K::exp_sum(seg, m, &mut []);
        K::finish(dx, lo, hi, 1.0 / stats.sum, None);
    }
}

/// Statistics of the visible columns of one chunk of a split row (`span` local to the chunk);
/// `scratch` receives intermediate values.
#[inline(always)]
fn chunk_stats_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    span: (usize, usize),
    x: &[f32],
    scratch: &mut [f32],
) -> RowStats {
    let (lo, hi) = span;
    if lo >= hi {
        return RowStats::EMPTY;
    }
    let (m, has_nan) = K::scores(sc, Some(x), scratch, lo, hi);
    let m = m + 0.0;
    let Some(seg) = scratch.get_mut(lo..hi) else {
        return RowStats::EMPTY;
    };
    if has_nan {
        RowStats {
            max: f32::NAN,
            sum: f32::NAN,
        }
    } else if m == f32::NEG_INFINITY {
        RowStats::EMPTY
    } else if m == f32::INFINITY {
        RowStats {
            max: m,
            sum: seg.iter().filter(|&&z| z == f32::INFINITY).count() as f32,
        }
    } else {
        RowStats {
            max: m,
            sum: K::exp_sum(seg, m, &mut []),
        }
    }
}

/// One chunk of a split row finished with the whole row's statistics: `y = dropout(exp(z - m) / S)`
/// with the mask at the chunk's global columns `col0 + j` (`col0` a multiple of 64).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_chunk_on<K: sealed::Passes>(
    sc: &Scores<'_>,
    finish: Finish,
    span: (usize, usize),
    row: u64,
    col0: usize,
    stats: RowStats,
    x: &[f32],
    y: &mut [f32],
) {
    let (lo, hi) = span;
    zero_outside(y, span);
    if lo >= hi {
        return;
    }
    let m = stats.max + 0.0;
    if !m.is_finite() || stats.sum.is_nan() {
        // Special rows exactly as the whole row gives them.
        let _ = K::scores(sc, Some(x), y, lo, hi);
        if let Some(seg) = y.get_mut(lo..hi) {
            special_row(
                seg,
                col0 + lo,
                RowStats {
                    max: m,
                    sum: stats.sum,
                },
                finish,
                row,
            );
        }
        return;
    }
    let (rescale, plan) = match finish {
        Finish::Eval => (1.0, None),
        Finish::Train(d, _) if d.drops_all() => {
            y.fill(0.0);
            return;
        }
        Finish::Train(d, key) => (
            d.rescale(),
            DropPlan::new(&d, key, row).map(|p| DropPlan { col0, ..p }),
        ),
    };
    let _ = K::scores(sc, Some(x), y, lo, hi);
    if let Some(seg) = y.get_mut(lo..hi) {
        let _ = K::exp_sum(seg, m, &mut []);
    }
    K::finish(y, lo, hi, rescale / stats.sum, plan.as_ref());
}

/// The packed keep bits of a row (see [`Dropout::mask_bits`]), 4096 columns at a time.
///
/// `out` holds at most `MAX_MASK_BYTES` bytes (checked by the caller), so every column index
/// `j < 8 * out.len()` fits `u32` and `usize`, and so does every block start `4096 b`.
#[inline(always)]
fn mask_bits_on<K: sealed::Passes>(dropout: &Dropout, key: DropoutKey, row: u64, out: &mut [u8]) {
    if dropout.drops_all() || dropout.keeps_all() {
        out.fill(if dropout.keeps_all() { 0xFF } else { 0 });
        return;
    }
    let Some(plan) = DropPlan::new(dropout, key, row) else {
        return;
    };
    // The row's end, `8 * out.len()`, is `2^usize::BITS` for the longest output where `usize`
    // has at most 32 bits: one past `usize::MAX`. Then `end = usize::MAX` leaves out only the
    // last column, `usize::MAX` itself (bits at or past `end` are unspecified), decided below.
    let (end, last_left_out) = match out.len().checked_mul(8) {
        Some(end) => (end, false),
        None => (usize::MAX, true),
    };
    let mut words = [0u64; 64];
    for (b, bytes) in out.chunks_mut(512).enumerate() {
        // `4096 b < 8 * out.len()`, a column index: no overflow (see above).
        K::keep_words(&plan, b * 4096, &mut words, end);
        // A word's bytes at a time: a byte-by-byte copy took a fifth of the export's time.
        // (Whole words as arrays: `copy_from_slice`'s length check survived at opt-level "z".)
        let (whole, rest) = bytes.as_chunks_mut::<8>();
        for (d, w) in whole.iter_mut().zip(words) {
            *d = w.to_le_bytes();
        }
        if let Some(w) = words.get(whole.len()) {
            for (d, s) in rest.iter_mut().zip(w.to_le_bytes()) {
                *d = s;
            }
        }
    }
    if last_left_out && let Some(last) = out.last_mut() {
        // Column `usize::MAX`, bit 7 of the last byte; it fits `u32` (see above).
        let kept = keep(
            dropout,
            key,
            row,
            u32::try_from(usize::MAX).unwrap_or(u32::MAX),
        );
        *last = (*last & 0x7F) | u8::from(kept) << 7;
    }
}

/// Zeroes the columns of `dst` outside the band `span = (lo, hi)`.
#[inline(always)]
fn zero_outside(dst: &mut [f32], span: (usize, usize)) {
    let (lo, hi) = span;
    let (head, rest) = dst.split_at_mut(lo.min(dst.len()));
    head.fill(0.0);
    if let Some(tail) = rest.get_mut(hi.saturating_sub(lo)..) {
        tail.fill(0.0);
    }
}

/// Dropout alone over a row: `y_j = keep(row, j) ? x_j * rescale : 0`, in place.
#[inline(always)]
fn dropout_row_on<K: sealed::Passes>(
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

/// Declares the entry points into the kernels. Each `fn name<'a, G..>(args) -> Out = on;`
/// becomes `pub(crate) fn name<'a, K: Dispatch, G..>(args) -> Out`, which packs its arguments
/// into a [`Job`](sealed::Job) whose `run::<P>` is `on::<P>(args)`, and has table `K` dispatch
/// it: the job then runs whole (driver and microkernels) on the table's instruction set. The
/// doc of each entry is that of its `on` function. Bounds on the `G..` go in `where [..]`.
macro_rules! entries {
    ($(
        $(#[$attr:meta])*
        fn $name:ident<'a $(, $g:ident)*>($($arg:ident: $ty:ty),* $(,)?) -> $out:ty = $on:ident
            $(where [$($w:tt)*])?;
    )*) => {$(
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name<'a, K: Dispatch $(, $g)*>($($arg: $ty),*) -> $out
        $(where $($w)*)?
        {
            struct Call<'a $(, $g)*> {
                $($arg: $ty),*
            }
            impl<'a $(, $g)*> Job for Call<'a $(, $g)*>
            $(where $($w)*)?
            {
                type Out = $out;
                #[inline(always)]
                fn run<P: Passes>(self) -> $out {
                    let Call { $($arg),* } = self;
                    $on::<P>($($arg),*)
                }
            }
            K::dispatch(Call { $($arg),* })
        }
    )*};
}

/// The crate's entry points into the kernels: each wraps its call in a [`sealed::Job`] that the
/// variant `K` runs with its table's passes ([`Best`]: the table chosen at run time).
mod entry {
    use super::sealed::{Dispatch, Job, Passes};
    use super::*;

    entries! {
        /// [`forward_row_on`].
        fn forward_row<'a>(
            sc: &'a Scores<'a>,
            finish: Finish,
            span: (usize, usize),
            row: u64,
            src: Option<&'a [f32]>,
            dst: &'a mut [f32],
        ) -> RowStats = forward_row_on;

        /// [`forward_matrix_on`].
        fn forward_matrix<'a, S, R>(
            sc: &'a Scores<'a>,
            finish: Finish,
            span: S,
            first_row: u64,
            cols: usize,
            x: Option<&'a [f32]>,
            y: &'a mut [f32],
            record: R,
        ) -> () = forward_matrix_on
            where [S: Fn(usize) -> (usize, usize), R: FnMut(RowStats)];

        /// [`backward_row_on`].
        fn backward_row<'a>(
            sc: &'a Scores<'a>,
            finish: Finish,
            span: (usize, usize),
            row: u64,
            probs: Probabilities<'a>,
            dy: &'a [f32],
            dx: &'a mut [f32],
        ) -> f32 = backward_row_on;

        /// [`backward_matrix_on`].
        fn backward_matrix<'a, S, R>(
            sc: &'a Scores<'a>,
            finish: Finish,
            span: S,
            first_row: u64,
            cols: usize,
            p: &'a [f32],
            stats: Option<&'a [RowStats]>,
            dy: &'a [f32],
            dx: &'a mut [f32],
            record: R,
        ) -> () = backward_matrix_on
            where [S: Fn(usize) -> (usize, usize), R: FnMut(f32)];

        /// [`chunk_stats_on`].
        fn chunk_stats<'a>(
            sc: &'a Scores<'a>,
            span: (usize, usize),
            x: &'a [f32],
            scratch: &'a mut [f32],
        ) -> RowStats = chunk_stats_on;

        /// [`forward_chunk_on`].
        fn forward_chunk<'a>(
            sc: &'a Scores<'a>,
            finish: Finish,
            span: (usize, usize),
            row: u64,
            col0: usize,
            stats: RowStats,
            x: &'a [f32],
            y: &'a mut [f32],
        ) -> () = forward_chunk_on;

        /// [`dropout_row_on`].
        fn dropout_row<'a>(
            dropout: &'a Dropout,
            key: DropoutKey,
            row: u64,
            values: &'a mut [f32],
        ) -> () = dropout_row_on;

        /// [`mask_bits_on`].
        fn mask_bits<'a>(
            dropout: &'a Dropout,
            key: DropoutKey,
            row: u64,
            out: &'a mut [u8],
        ) -> () = mask_bits_on;
    }
}
pub(crate) use entry::{
    backward_matrix, backward_row, chunk_stats, dropout_row, forward_chunk, forward_matrix,
    forward_row, mask_bits,
};
