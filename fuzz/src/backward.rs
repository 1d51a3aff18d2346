//! The `backward` target: the training APIs through their public surface, every kernel variant,
//! against an independent model of the documented semantics (contract section 4):
//! `SoftmaxDropout::backward` (saved `P` and `P` recomputed from the logits and the forward's
//! statistics), `backward_rows`, the split-row APIs (`chunk_stats`, `RowStats::merge`,
//! `forward_chunk`) and `Dropout::mask_bits`.
//!
//! Shared with `tests/fuzz_regressions.rs` (see `value.rs`); the row, mask, bias, scale and mode
//! inputs and their model are the `forward` target's. Checks, for every call:
//!
//! - an error is returned exactly when a length is wrong (gradients, saved `P` or logits, bias,
//!   column mask, matrix shape, statistics) or a chunk is misaligned (`Error::ChunkAlignment`) or
//!   ends past the training limit, by every variant, and then every output is bit-for-bit
//!   untouched;
//! - backward: masked columns are exactly `+0`; with `p = 1` every `dx` is `+0`; a row whose
//!   `sum_k P_k G_k` is NaN is NaN at every visible column; otherwise, when no `f32` overflow is
//!   possible, each `dx_j` is within the bound derived below of the `f64` reference
//!   `s P_j (G_j - sum_k P_k G_k)`, `G_j = keep(r, j) ? dy_j / q : 0` taken from [`keep`] (rows of
//!   up to [`KEEP_LIMIT`] columns; `G = dy` in evaluation), and every variant is within twice
//!   that bound of [`Scalar`];
//! - `backward_rows` equals `backward` row by row (row ids `first + i`, query positions `q + i`)
//!   bit for bit;
//! - split rows: the merged chunk statistics have the unsplit forward's `max` exactly (special
//!   rows: both statistics exactly) and its `sum` within the derived bound; merging in reverse
//!   order agrees; `forward_chunk` gives exactly the unsplit row's zeros and values within the
//!   documented bound of the exact result (so within twice it of the unsplit row); special rows
//!   bit for bit; chunks far out (near column `2^32` and `usize::MAX`) carry the mask of their
//!   global columns;
//! - `Dropout::mask_bits` equals [`keep`] bit for bit, whatever the buffer held.
//!
//! # The backward bound
//!
//! With `u = 2^-24`, the kernel computes `g_j = fl(dy_j rescale)`, within `2.01 u |G_j|` of
//! `G_j` (`rescale` is `1/q` rounded once); `D' = fl(sum_k P'_k g_k)` over the `K` columns of the
//! band, in any order, with or without FMA, within `(gamma_{K+2} + 3u) A` of `D`, where
//! `A = sum_k |P'_k| |G_k|` (the classic bound for any summation order, so it holds for every
//! variant and any future one); then `t_j = fl(g_j - D')` (one more `u`) and
//! `dx_j = fl(fl(s P'_j) t_j)` (two more). Recomputing, `P'_j` differs from the exact
//! `exp(z_j - m) / S` of the given statistics by at most the forward's documented bound
//! `(rel + u |z_j - m|) P_j + 2^-126 / S`, which enters through `P'_j` and through `D'`.
//! Subnormal results add at most `2^-150` per operation (a subnormal `g_k`'s, times `|P'_k|` in
//! the sum). The reference check applies only when every quantity stays below `2^120` (no
//! overflow), and when the row is within the contract: statistics from the forward, a saved `P`
//! that is 0 where the forward leaves 0 (masked columns), and no non-finite `dy` where `P_k = 0`
//! (whether `0 * inf` poisons the sum is not documented).

use crate::forward::{
    Band, BandIn, BiasIn, Cols, ColsIn, Ctx, Expect, Fill, Kind, Len, LenAdj, MAX_LEN, MIN_NORMAL,
    MaskIn, ModeIn, SENTINEL, ScaleIn, Tamper, TrainIn, U24, Val, adjust, bits_equal, each_kernel,
    exact_and_bound, fill, model, p_of, rel, scale_of, stats_bits, val, variants,
};
use crate::value::F32Bits;
use dropmax::{
    Best, Dropout, DropoutKey, Error, MatrixProbabilities, Probabilities, RowKernel, RowStats,
    SoftmaxDropout, keep,
};

/// Training rows up to this many columns get the reference gradient (two Philox blocks per
/// column for [`keep`]); longer ones are checked against [`Scalar`] with `|G_j| <= |dy_j| / q`.
pub const KEEP_LIMIT: usize = 384;

/// `2^-149`, twice the largest error of one subnormal result.
const TINY: f64 = 1.401_298_464_324_817e-45;

/// Below this every intermediate is a finite `f32` (`2^120`).
const HUGE: f64 = 1.329_227_995_784_916e36;

fuzz_enum! {
    /// Where the backward pass gets `P`.
    pub enum ProbsIn {
        /// Saved: an evaluation forward ([`Best`]) of the same rows.
        Forward,
        /// Saved: a fill, 0 at masked columns as a forward leaves them; with `true` not even that
        /// (outside the contract: errors, no crash, masked `+0`).
        Fill((Fill, bool)),
        /// Recomputed from the logits and the statistics of a forward ([`Best`]) in the op's mode.
        Recompute,
        /// Recomputed with arbitrary statistics `(max, sum)` (outside the contract: errors, no
        /// crash, masked `+0`).
        Stats((F32Bits, F32Bits)),
    }
}

fuzz_struct! {
    /// Buffer lengths of a backward call against the ones it needs.
    pub struct Lens {
        pub dx: LenAdj,
        pub dy: LenAdj,
        /// The saved `P` or the logits.
        pub p: LenAdj,
    }
}

fuzz_struct! {
    /// A `backward` call.
    pub struct RowIn {
        pub probs: ProbsIn,
        pub lens: Lens,
    }
}

fuzz_struct! {
    /// A `backward_rows` call.
    pub struct RowsIn {
        pub probs: ProbsIn,
        /// Rows `v % 9` (`v % 3` for rows over 1024 columns).
        pub rows: u8,
        /// Against `rows * n`.
        pub lens: Lens,
        /// The statistics slice (recomputing) against one entry per row of `dx`.
        pub stats: LenAdj,
    }
}

fuzz_enum! {
    /// Where a split row's column 0 lies.
    pub enum Origin {
        /// Column 0: compared with the unsplit row.
        Zero,
        /// `2^32 - 64 (v % 8)`: training chunks past column `2^32 - 1` are refused.
        Near32(u8),
        /// `usize::MAX - 63 - 64 (v % 8)`: a chunk whose end overflows is refused.
        Top(u8),
    }
}

fuzz_struct! {
    /// A call on one chunk with altered arguments: it must fail exactly when one is wrong.
    pub struct BadChunk {
        /// Which chunk (`v % chunks`).
        pub chunk: u8,
        /// Added to its first column (`v % 64`).
        pub shift: u8,
        /// The scratch or output length.
        pub out: LenAdj,
        pub bias: LenAdj,
        pub cols: LenAdj,
        /// `forward_chunk` rather than `chunk_stats`.
        pub finish: bool,
    }
}

fuzz_struct! {
    /// A split row (the bias and column mask always have the row's length here).
    pub struct SplitIn {
        /// Chunk widths `64 (w % 9)` in order (0: an empty chunk); the rest of the row is the
        /// last chunk.
        pub widths: Vec<u8>,
        pub origin: Origin,
        pub bad: Vec<BadChunk>,
        /// `forward_chunk` with these statistics `(max, sum)` rather than the merged ones (outside
        /// the contract: errors and no crash only).
        pub stats: Option<(F32Bits, F32Bits)>,
    }
}

fuzz_struct! {
    /// A `Dropout::mask_bits` call.
    pub struct MaskBitsIn {
        pub train: TrainIn,
        /// `v % 1100` bytes (8 columns each).
        pub bytes: u16,
        /// What the buffer holds before the call.
        pub junk: u8,
    }
}

fuzz_enum! {
    /// Which entry point.
    pub enum CallIn {
        Row(RowIn),
        Rows(RowsIn),
        Split(SplitIn),
        MaskBits(MaskBitsIn),
    }
}

fuzz_struct! {
    /// One input of the `backward` target.
    pub struct BackwardInput {
        pub len: Len,
        /// Start offsets (`% 64`) of the logits or saved `P`, of `dy` and of `dx` in their
        /// buffers.
        pub starts: [u8; 3],
        pub scale: ScaleIn,
        pub mode: ModeIn,
        /// Row id (first row id for `backward_rows`).
        pub row: u64,
        pub mask: MaskIn,
        pub bias: Option<BiasIn>,
        pub call: CallIn,
        /// The logits.
        pub data: Fill,
        pub dy: Fill,
        /// The attention sink logit (`with_sink`); none (`-inf`) when left out, and for split
        /// rows far from column 0 (whose chunks do not carry it).
        pub sink: Option<Val>,
    }
}

/// Runs every check on one input.
pub fn check(input: &BackwardInput) {
    check_with(input, &|_, _| {});
}

/// [`check`], with each gradient row and split output passed through `tamper` before it is
/// checked.
pub fn check_with(input: &BackwardInput, tamper: Tamper<'_>) {
    if let CallIn::MaskBits(m) = &input.call {
        return check_mask_bits(m, input.row);
    }
    let n = match input.len {
        Len::Short(v) => usize::from(v),
        Len::Long(v) => usize::from(v) % (MAX_LEN + 1),
    };
    let scale = scale_of(&input.scale);
    // Construction is the forward target's business: here only valid operations.
    let train = match &input.mode {
        ModeIn::Eval => None,
        ModeIn::Train(t) => match Dropout::new(p_of(&t.p)) {
            Ok(d) => Some((d, DropoutKey::new(t.seed, t.offset))),
            Err(_) => return,
        },
    };
    let base = match train {
        None => SoftmaxDropout::eval(scale),
        Some((d, key)) => SoftmaxDropout::train(scale, d, key),
    };
    let far = matches!(&input.call, CallIn::Split(s) if !matches!(s.origin, Origin::Zero));
    let sink = match &input.sink {
        Some(v) if !far => val(v),
        _ => f32::NEG_INFINITY,
    };
    let Ok(base) = base else { return };
    let Ok(eval) = SoftmaxDropout::eval(scale) else {
        return;
    };
    let (base, eval) = (base.with_sink(sink), eval.with_sink(sink));

    // A split row's bias and column mask have the row's length (its probes alter them).
    let split = matches!(input.call, CallIn::Split(_));
    let mut mask = input.mask.clone();
    let mut bias_in = input.bias.clone();
    if split {
        if let ColsIn::Bools(p) | ColsIn::Bits(p) = &mut mask.columns {
            p.len = LenAdj::Right;
        }
        if let Some(b) = &mut bias_in {
            b.len = LenAdj::Right;
        }
    }
    let band = Band::resolve(&mask, n);
    let cols = Cols::resolve(&mask.columns, n);
    let bias: Option<Vec<f32>> = bias_in.as_ref().map(|b: &BiasIn| {
        let mut v = vec![0.0; adjust(n, &b.len)];
        fill(&b.fill, &mut v);
        v
    });
    let ctx = Ctx {
        n,
        scale,
        train,
        row: input.row,
        band,
        cols: &cols,
        bias: bias.as_deref(),
        sink,
        cap: 0.0,
        tamper,
    };
    let ops = Ops {
        base,
        eval,
        kind: &mask.band,
        ctx: &ctx,
    };
    match &input.call {
        CallIn::Row(r) => check_row_call(&ops, input, r),
        CallIn::Rows(r) => check_rows_call(&ops, input, r),
        CallIn::Split(s) => check_split(&ops, input, s),
        CallIn::MaskBits(_) => unreachable!(),
    }
}

/// The operations of an input and the model's context.
struct Ops<'a> {
    base: SoftmaxDropout<'a, Best>,
    eval: SoftmaxDropout<'a, Best>,
    kind: &'a BandIn,
    ctx: &'a Ctx<'a>,
}

impl<'a> Ops<'a> {
    /// The op (training or evaluation) of row `i` of a call: query position `q + i`, the bias.
    fn row_op(&self, op: SoftmaxDropout<'a, Best>, i: usize) -> SoftmaxDropout<'a, Best> {
        let op = op.with_mask(self.ctx.band.mask(self.kind, i, self.ctx.cols));
        match self.ctx.bias {
            Some(b) => op.with_bias(b),
            None => op,
        }
    }

    fn visible(&self, i: usize, j: usize) -> bool {
        self.ctx.band.visible(i, j) && self.ctx.cols.visible(j)
    }
}

/// `v` cut or padded with `pad` to `len`.
fn resized<T: Copy>(v: &[T], len: usize, pad: T) -> Vec<T> {
    let mut out: Vec<T> = v.iter().copied().take(len).collect();
    out.resize(len, pad);
    out
}

/// `v` at `start` in a buffer of NaN guards.
fn placed(v: &[f32], start: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; start + v.len() + 3];
    buf[start..start + v.len()].copy_from_slice(v);
    buf
}

fn filled(f: &Fill, len: usize) -> Vec<f32> {
    let mut v = vec![0.0; len];
    fill(f, &mut v);
    v
}

/// `|err| <= tol`, false for a NaN error.
fn within(err: f64, tol: f64) -> bool {
    err.abs() <= tol
}

fn untouched(buf: &[f32]) -> bool {
    buf.iter().all(|v| v.to_bits() == SENTINEL.to_bits())
}

/// The probabilities of one row as the backward pass gets them.
#[derive(Clone, Debug)]
enum RowProbs {
    /// Saved; `in_contract` when 0 wherever the forward leaves 0.
    Saved(Vec<f32>, bool),
    /// Recomputed with these statistics; `in_contract` when they are the forward's.
    Recompute(RowStats, bool),
}

/// What the model knows of `P'` (the probabilities the kernel uses) on one row.
struct PModel {
    /// `P_j`: the saved value, or the exact recomputation from the statistics.
    p: Vec<f64>,
    /// A bound on `|P'_j - P_j|`.
    dp: Vec<f64>,
}

fn p_model(e: &Expect, probs: &RowProbs) -> PModel {
    let n = e.z.len();
    match probs {
        RowProbs::Saved(p, _) => PModel {
            p: p.iter().map(|&v| f64::from(v)).collect(),
            dp: vec![0.0; n],
        },
        RowProbs::Recompute(st, _) => {
            let (m, s) = (st.max, st.sum);
            let mut pm = PModel {
                p: vec![0.0; n],
                dp: vec![0.0; n],
            };
            let visible = e.visible.iter().filter(|&&v| v).count();
            for j in 0..n {
                let z = e.z[j];
                if z == f32::NEG_INFINITY {
                    continue; // masked, or a -inf score: exactly 0
                }
                if m.is_nan() || s.is_nan() {
                    pm.p[j] = f64::NAN;
                } else if m == f32::INFINITY {
                    if z == f32::INFINITY {
                        pm.p[j] = 1.0 / f64::from(s);
                        pm.dp[j] = U24 * pm.p[j];
                    }
                } else if m != f32::NEG_INFINITY {
                    let d = f64::from(z) - f64::from(m);
                    pm.p[j] = d.exp() / f64::from(s);
                    pm.dp[j] = (rel(visible) + U24 * d.abs()) * pm.p[j] + MIN_NORMAL / f64::from(s);
                }
            }
            pm
        }
    }
}

/// What the model claims of one row's gradients.
enum Claim {
    /// Outside the contract, or an `f32` overflow possible: masked `+0` only.
    Nothing,
    /// Every `dx` is `+0` (`p = 1`).
    Zeros,
    /// Every visible `dx` is NaN.
    Nan,
    /// Every visible `dx` within `tol[j]` of `want[j]` (when known), and of [`Scalar`]'s within
    /// `2 tol[j]`.
    Near {
        want: Option<Vec<f64>>,
        tol: Vec<f64>,
    },
}

/// The model of row `i` (id `row`) of a backward call: logits `x` (for the scores), its
/// probabilities and `dy`.
fn claim(ops: &Ops<'_>, i: usize, row: u64, x: &[f32], probs: &RowProbs, dy: &[f32]) -> Claim {
    let ctx = ops.ctx;
    let n = ctx.n;
    let in_contract = match probs {
        RowProbs::Saved(_, c) | RowProbs::Recompute(_, c) => *c,
    };
    if ctx.train.is_some_and(|(d, _)| d.drops_all()) {
        return Claim::Zeros;
    }
    if !in_contract {
        return Claim::Nothing;
    }
    let e = model(ctx, x, i);
    let pm = p_model(&e, probs);
    let q = ctx.train.map_or(1.0, |(d, _)| d.keep_probability());
    // G_j when known (evaluation, p = 0, short rows), else only |G_j| <= |dy_j| / q.
    let g: Option<Vec<f64>> = match ctx.train {
        Some((d, _)) if !d.keeps_all() && n > KEEP_LIMIT => None,
        _ => Some(
            (0..n)
                .map(|j| {
                    if ctx.kept(row, j) {
                        f64::from(dy[j]) / q
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
    };
    let gabs: Vec<f64> = match &g {
        Some(g) => g.iter().map(|v| v.abs()).collect(),
        None => dy.iter().map(|&v| f64::from(v).abs() / q).collect(),
    };
    let band: Vec<usize> = (0..n).filter(|&j| ctx.band.visible(i, j)).collect();
    // Whether 0 * inf would enter the sum (undocumented: no claim).
    if band.iter().any(|&k| pm.p[k] == 0.0 && !gabs[k].is_finite()) {
        return Claim::Nothing;
    }
    let nan = match &g {
        Some(g) => band
            .iter()
            .map(|&k| if pm.p[k] == 0.0 { 0.0 } else { pm.p[k] * g[k] })
            .sum::<f64>()
            .is_nan(),
        None => band.iter().any(|&k| pm.p[k].is_nan()),
    };
    if nan {
        return Claim::Nan;
    }
    if band
        .iter()
        .any(|&k| !pm.p[k].is_finite() || !gabs[k].is_finite())
    {
        return Claim::Nothing;
    }
    let s = f64::from(ctx.scale).abs();
    let u = U24;
    let pmax: Vec<f64> = (0..n).map(|j| pm.p[j].abs() + pm.dp[j]).collect();
    let a: f64 = band.iter().map(|&k| pmax[k] * gabs[k]).sum();
    let dpg: f64 = band.iter().map(|&k| pm.dp[k] * gabs[k]).sum();
    let terms = band.len() as f64 + 2.0;
    let gamma = terms * u / (1.0 - terms * u);
    // A subnormal g_k is off by up to 2^-150 absolutely, which P'_k multiplies; each product and
    // sum adds up to 2^-150 more.
    let under: f64 = band.iter().map(|&k| (pmax[k] + 1.0) * TINY).sum();
    let err_d = (gamma + 3.0 * u) * a + dpg + under + 2.0 * TINY;
    let d_exact: Option<f64> = g
        .as_ref()
        .map(|g| band.iter().map(|&k| pm.p[k] * g[k]).sum());
    if a >= HUGE
        || band
            .iter()
            .any(|&j| gabs[j] >= HUGE || s * pmax[j] * (gabs[j] + a) >= HUGE || s * pmax[j] >= HUGE)
    {
        return Claim::Nothing;
    }
    let mut tol = vec![0.0; n];
    let mut want = g.as_ref().map(|_| vec![0.0; n]);
    for &j in &band {
        // |G_j - D|, or a bound of it.
        let t = match (&g, d_exact) {
            (Some(g), Some(d)) => (g[j] - d).abs(),
            _ => gabs[j] + a,
        };
        let err_t = 2.01 * u * gabs[j] + err_d + 1.01 * u * (t + 2.01 * u * gabs[j] + err_d) + TINY;
        tol[j] = 1.01
            * (s * (pm.dp[j] * t + pmax[j] * (err_t + 2.01 * u * (t + err_t)))
                + TINY * (2.0 + t + err_t));
        if let (Some(w), Some(g), Some(d)) = (&mut want, &g, d_exact) {
            w[j] = f64::from(ctx.scale) * pm.p[j] * (g[j] - d);
        }
    }
    Claim::Near { want, tol }
}

/// The checks of one gradient row: `outs` holds every variant's `dx` (in [`variants`] order).
#[allow(clippy::too_many_arguments)]
fn check_grads(
    ops: &Ops<'_>,
    i: usize,
    row: u64,
    x: &[f32],
    probs: &RowProbs,
    dy: &[f32],
    outs: &mut [Vec<f32>],
    what: &str,
) {
    let ctx = ops.ctx;
    let fail =
        |msg: String| -> ! { panic!("{what}: {msg}\n  probs {probs:?}\n  {}", ctx.describe()) };
    for (name, dx) in variants().iter().zip(outs.iter_mut()) {
        (ctx.tamper)(name, dx);
        for (j, &v) in dx.iter().enumerate() {
            if !ops.visible(i, j) && v.to_bits() != 0 {
                fail(format!("{name}: masked column {j} is {v:?}, not +0"));
            }
        }
    }
    match claim(ops, i, row, x, probs, dy) {
        Claim::Nothing => {}
        Claim::Zeros => {
            for (name, dx) in variants().iter().zip(outs.iter()) {
                if let Some(j) = dx.iter().position(|v| v.to_bits() != 0) {
                    fail(format!(
                        "{name}: p = 1 but column {j} is {:?}, not +0",
                        dx[j]
                    ));
                }
            }
        }
        Claim::Nan => {
            for (name, dx) in variants().iter().zip(outs.iter()) {
                for (j, &v) in dx.iter().enumerate() {
                    if ops.visible(i, j) && !v.is_nan() {
                        fail(format!("{name}: NaN row but visible column {j} is {v:?}"));
                    }
                }
            }
        }
        Claim::Near { want, tol } => {
            let scalar = &outs[0];
            for (name, dx) in variants().iter().zip(outs.iter()) {
                for (j, &v) in dx.iter().enumerate() {
                    if !ops.visible(i, j) {
                        continue;
                    }
                    let v64 = f64::from(v);
                    if let Some(w) = &want
                        && !within(v64 - w[j], tol[j])
                    {
                        fail(format!(
                            "{name}: column {j} is {v:?}, reference {:?}, error {:e} > bound {:e}",
                            w[j],
                            v64 - w[j],
                            tol[j]
                        ));
                    }
                    if !within(v64 - f64::from(scalar[j]), 2.0 * tol[j]) {
                        fail(format!(
                            "{name}: column {j} is {v:?}, scalar {:?}, bound {:e}",
                            scalar[j],
                            2.0 * tol[j]
                        ));
                    }
                }
            }
        }
    }
}

fn run_backward<K: RowKernel>(
    op: &SoftmaxDropout<'_, Best>,
    row: u64,
    probs: Probabilities<'_>,
    dy: &[f32],
    (start, len): (usize, usize),
) -> (Result<(), Error>, Vec<f32>) {
    let mut buf = vec![SENTINEL; start + len + 3];
    let res = op
        .with_kernel::<K>()
        .backward(row, probs, dy, &mut buf[start..start + len]);
    (res, buf)
}

/// The result of one variant on a `backward_rows` call, and (when it succeeded) `backward` of
/// each row alone.
struct RowsRun {
    res: Result<(), Error>,
    buf: Vec<f32>,
    by_row: Vec<Vec<f32>>,
}

fn run_rows<K: RowKernel>(
    ops: &Ops<'_>,
    probs: MatrixProbabilities<'_>,
    dy: &[f32],
    (start, len): (usize, usize),
) -> RowsRun {
    let (n, first) = (ops.ctx.n, ops.ctx.row);
    let op = ops.row_op(ops.base, 0).with_kernel::<K>();
    let mut buf = vec![SENTINEL; start + len + 3];
    let res = op.backward_rows(first, n, probs, dy, &mut buf[start..start + len]);
    let mut by_row = Vec::new();
    if res.is_ok() && n > 0 {
        for i in 0..len / n {
            let (a, b) = (i * n, (i + 1) * n);
            let probs_i = match probs {
                MatrixProbabilities::Saved(p) => Probabilities::Saved(&p[a..b]),
                MatrixProbabilities::Recompute { logits, stats } => Probabilities::Recompute {
                    logits: &logits[a..b],
                    stats: stats[i],
                },
            };
            let mut dx = vec![SENTINEL; n];
            ops.row_op(ops.base, i)
                .with_kernel::<K>()
                .backward(first.wrapping_add(i as u64), probs_i, &dy[a..b], &mut dx)
                .expect("backward of one row of a valid matrix");
            by_row.push(dx);
        }
    }
    RowsRun { res, buf, by_row }
}

/// Every variant's `backward` on one row (in [`variants`] order).
fn backward_all(
    op: &SoftmaxDropout<'_, Best>,
    row: u64,
    probs: Probabilities<'_>,
    dy: &[f32],
    at: (usize, usize),
) -> Vec<(Result<(), Error>, Vec<f32>)> {
    each_kernel!(run_backward(op, row, probs, dy, at))
}

/// The saved `P` matrix of `rows` rows of logits `x` (row `i` with query position `q + i`), or
/// the statistics, as `probs` asks; `None` when the forward refuses the row (wrong lengths).
fn make_probs(
    ops: &Ops<'_>,
    probs: &ProbsIn,
    x: &[f32],
    rows: usize,
) -> Option<(Vec<f32>, Vec<RowProbs>)> {
    let ctx = ops.ctx;
    let n = ctx.n;
    if !ctx.lengths_ok() {
        return None;
    }
    let mut p = vec![0.0; rows * n];
    let mut out = Vec::new();
    for i in 0..rows {
        let xr = &x[i * n..(i + 1) * n];
        let pr = &mut p[i * n..(i + 1) * n];
        let row = ctx.row.wrapping_add(i as u64);
        match probs {
            ProbsIn::Forward => {
                ops.row_op(ops.eval, i)
                    .forward(row, xr, pr)
                    .expect("evaluation forward of a valid row");
                out.push(RowProbs::Saved(pr.to_vec(), true));
            }
            ProbsIn::Fill((f, raw)) => {
                fill(f, pr);
                if !raw {
                    for (j, v) in pr.iter_mut().enumerate() {
                        if !ops.visible(i, j) {
                            *v = 0.0;
                        }
                    }
                }
                out.push(RowProbs::Saved(pr.to_vec(), !raw));
            }
            ProbsIn::Recompute => {
                let mut y = vec![0.0; n];
                let st = ops
                    .row_op(ops.base, i)
                    .forward(row, xr, &mut y)
                    .expect("forward of a valid row");
                out.push(RowProbs::Recompute(st, true));
            }
            ProbsIn::Stats((m, s)) => {
                let st = RowStats {
                    max: m.get(),
                    sum: s.get(),
                };
                out.push(RowProbs::Recompute(st, false));
            }
        }
    }
    Some((p, out))
}

fn check_row_call(ops: &Ops<'_>, input: &BackwardInput, r: &RowIn) {
    let ctx = ops.ctx;
    let n = ctx.n;
    let [s_p, s_dy, s_dx] = input.starts.map(|s| usize::from(s) % 64);
    let (dx_len, dy_len, p_len) = (
        adjust(n, &r.lens.dx),
        adjust(n, &r.lens.dy),
        adjust(n, &r.lens.p),
    );
    let x = filled(&input.data, n);
    let dy = filled(&input.dy, n);
    let made = make_probs(ops, &r.probs, &x, 1);
    // The saved P (or the logits) as passed, at its length.
    let (p_row, probs_row) = match &made {
        Some((p, pr)) => (p.clone(), Some(pr[0].clone())),
        None => (vec![0.25; n], None),
    };
    let recompute = matches!(r.probs, ProbsIn::Recompute | ProbsIn::Stats(_));
    let stats = match (&probs_row, &r.probs) {
        (Some(RowProbs::Recompute(st, _)), _) => *st,
        (_, ProbsIn::Stats((m, s))) => RowStats {
            max: m.get(),
            sum: s.get(),
        },
        _ => RowStats::EMPTY,
    };
    let src = if recompute { &x } else { &p_row };
    let pbuf = placed(&resized(src, p_len, 0.5), s_p);
    let dybuf = placed(&resized(&dy, dy_len, 0.5), s_dy);
    let pv = &pbuf[s_p..s_p + p_len];
    let probs = if recompute {
        Probabilities::Recompute { logits: pv, stats }
    } else {
        Probabilities::Saved(pv)
    };
    let dyv = &dybuf[s_dy..s_dy + dy_len];
    let op = ops.row_op(ops.base, 0);
    let runs = backward_all(&op, ctx.row, probs, dyv, (s_dx, dx_len));
    let lengths_ok = ctx.bias.is_none_or(|b| b.len() == dx_len) && ctx.cols.length_ok(dx_len);
    let err = dy_len != dx_len || p_len != dx_len || !lengths_ok;
    let what = format!("backward (dx {dx_len}, dy {dy_len}, p {p_len})");
    let mut outs = Vec::new();
    for (name, (res, buf)) in variants().iter().zip(runs) {
        assert_eq!(
            res.is_err(),
            err,
            "{name} {what}: {res:?}\n  {}",
            ctx.describe()
        );
        if let Err(e) = res {
            assert!(
                matches!(e, Error::LengthMismatch { .. }),
                "{name} {what}: {e:?}"
            );
            assert!(untouched(&buf), "{name} {what}: error {e:?} but dx written");
            continue;
        }
        let dx = buf[s_dx..s_dx + dx_len].to_vec();
        if dx_len != n {
            // A valid call on a row of another length: only the mask applies.
            for (j, &v) in dx.iter().enumerate() {
                assert!(
                    ops.visible(0, j) || v.to_bits() == 0,
                    "{name} {what}: masked column {j} is {v:?}"
                );
            }
            continue;
        }
        outs.push(dx);
    }
    if let (false, Some(probs_row)) = (outs.is_empty(), &probs_row) {
        check_grads(ops, 0, ctx.row, &x, probs_row, &dy, &mut outs, &what);
    }
}

fn check_rows_call(ops: &Ops<'_>, input: &BackwardInput, r: &RowsIn) {
    let ctx = ops.ctx;
    let n = ctx.n;
    let [s_p, s_dy, s_dx] = input.starts.map(|s| usize::from(s) % 64);
    let rows = usize::from(r.rows) % if n > 1024 { 3 } else { 9 };
    let need = rows * n;
    let (dx_len, dy_len, p_len) = (
        adjust(need, &r.lens.dx),
        adjust(need, &r.lens.dy),
        adjust(need, &r.lens.p),
    );
    let need_rows = dx_len.checked_div(n).unwrap_or(0);
    let recompute = matches!(r.probs, ProbsIn::Recompute | ProbsIn::Stats(_));
    let stats_len = adjust(need_rows, &r.stats);
    let x = filled(&input.data, need);
    let dy = filled(&input.dy, need);
    let made = make_probs(ops, &r.probs, &x, rows);
    let (p_mat, per_row) = match made {
        Some((p, pr)) => (p, Some(pr)),
        None => (vec![0.25; need], None),
    };
    let mut stats: Vec<RowStats> = match (&per_row, &r.probs) {
        (Some(pr), _) => pr
            .iter()
            .map(|p| match p {
                RowProbs::Recompute(st, _) => *st,
                RowProbs::Saved(..) => RowStats::EMPTY,
            })
            .collect(),
        (None, ProbsIn::Stats((m, s))) => vec![
            RowStats {
                max: m.get(),
                sum: s.get(),
            };
            rows
        ],
        _ => vec![RowStats::EMPTY; rows],
    };
    stats.resize(stats_len, RowStats::EMPTY);
    let src = if recompute { &x } else { &p_mat };
    let pbuf = placed(&resized(src, p_len, 0.5), s_p);
    let dybuf = placed(&resized(&dy, dy_len, 0.5), s_dy);
    let pv = &pbuf[s_p..s_p + p_len];
    let probs = if recompute {
        MatrixProbabilities::Recompute {
            logits: pv,
            stats: &stats,
        }
    } else {
        MatrixProbabilities::Saved(pv)
    };
    let dyv = &dybuf[s_dy..s_dy + dy_len];
    let first = ctx.row;
    let at = (s_dx, dx_len);
    let runs = each_kernel!(run_rows(ops, probs, dyv, at));
    let shape_ok = dx_len.is_multiple_of(n.max(1)) && (n > 0 || dx_len == 0);
    let err = !ctx.lengths_ok()
        || !shape_ok
        || dy_len != dx_len
        || p_len != dx_len
        || (recompute && stats_len != need_rows);
    let what = format!(
        "backward_rows ({rows} rows, dx {dx_len}, dy {dy_len}, p {p_len}, stats {stats_len})"
    );
    // Per variant, the rows of dx.
    let mut by_variant: Vec<Vec<Vec<f32>>> = Vec::new();
    for (name, r) in variants().iter().zip(runs) {
        assert_eq!(
            r.res.is_err(),
            err,
            "{name} {what}: {:?}\n  {}",
            r.res,
            ctx.describe()
        );
        if let Err(e) = r.res {
            assert!(
                matches!(e, Error::LengthMismatch { .. }),
                "{name} {what}: {e:?}"
            );
            assert!(
                untouched(&r.buf),
                "{name} {what}: error {e:?} but dx written"
            );
            continue;
        }
        let dx = &r.buf[s_dx..s_dx + dx_len];
        for (i, single) in r.by_row.iter().enumerate() {
            assert!(
                bits_equal(&dx[i * n..(i + 1) * n], single),
                "{name} {what} row {i}: differs from backward row by row\n  {}",
                ctx.describe()
            );
        }
        by_variant.push(r.by_row);
    }
    let Some(per_row) = per_row else { return };
    if by_variant.is_empty() || need_rows != rows {
        return;
    }
    for (i, probs_i) in per_row.iter().enumerate() {
        let mut outs: Vec<Vec<f32>> = by_variant.iter().map(|v| v[i].clone()).collect();
        let (a, b) = (i * n, (i + 1) * n);
        check_grads(
            ops,
            i,
            first.wrapping_add(i as u64),
            &x[a..b],
            probs_i,
            &dy[a..b],
            &mut outs,
            &format!("{what} row {i}"),
        );
    }
}

/// The errors a chunk call may return, given what is wrong with it (empty: it must succeed).
fn chunk_errors(
    train: bool,
    col0: usize,
    len: usize,
    out_len: usize,
    other_lengths_ok: bool,
) -> Vec<Error> {
    let mismatch = Error::LengthMismatch {
        expected: 0,
        found: 0,
    };
    let mut errs = Vec::new();
    if out_len != len || !other_lengths_ok {
        errs.push(mismatch);
    }
    if !col0.is_multiple_of(64) {
        errs.push(Error::ChunkAlignment);
    }
    match col0.checked_add(len) {
        None => errs.push(Error::RowTooLong),
        Some(end) if train && end.saturating_sub(1) > u32::MAX as usize => {
            errs.push(Error::RowTooLong);
        }
        Some(_) => {}
    }
    errs
}

fn same_error(a: &Error, b: &Error) -> bool {
    core::mem::discriminant(a) == core::mem::discriminant(b)
}

/// A chunk's column mask: the row's, cut at `c0 .. c0 + len`, its length adjusted by `adj`.
fn chunk_cols(cols: &Cols, c0: usize, len: usize, adj: &LenAdj) -> Cols {
    match cols {
        Cols::All => Cols::All,
        Cols::Bools(b) => {
            let rest = b.get(c0..).unwrap_or(&[]);
            Cols::Bools(resized(rest, adjust(len, adj), true))
        }
        Cols::Bits(b) => {
            let rest = b.get(c0 / 8..).unwrap_or(&[]);
            Cols::Bits(resized(rest, adjust(len.div_ceil(8), adj), 0xFF))
        }
    }
}

/// A chunk's bias: the row's, cut at `c0 .. c0 + len`, its length adjusted by `adj`.
fn chunk_bias(bias: Option<&[f32]>, c0: usize, len: usize, adj: &LenAdj) -> Option<Vec<f32>> {
    bias.map(|b| resized(b.get(c0..).unwrap_or(&[]), adjust(len, adj), 0.0))
}

/// The chunk op of variant `K`: the row's band at global columns, the chunk's bias and columns.
fn chunk_op<'a, K: RowKernel>(
    ops: &Ops<'a>,
    cols: &'a Cols,
    bias: Option<&'a [f32]>,
) -> SoftmaxDropout<'a, K> {
    let op = ops
        .base
        .with_mask(ops.ctx.band.mask(ops.kind, 0, cols))
        .with_kernel::<K>();
    match bias {
        Some(b) => op.with_bias(b),
        None => op,
    }
}

/// The results of one variant on a split row.
struct SplitRun {
    /// The unsplit forward (origin 0 only).
    whole: Option<(Vec<f32>, RowStats)>,
    /// `chunk_stats` of each chunk.
    stats: Vec<Result<RowStats, Error>>,
    merged: RowStats,
    merged_rev: RowStats,
    /// `forward_chunk` of each chunk, and the row they make.
    finish: Vec<Result<(), Error>>,
    y: Vec<f32>,
    /// Each probe: its result and whether its buffer is untouched.
    probes: Vec<(Result<(), Error>, bool)>,
}

/// A split row's layout: global first column and chunks `(c0, len)` of the row.
struct Layout {
    base: usize,
    chunks: Vec<(usize, usize)>,
}

fn run_split<K: RowKernel>(
    ops: &Ops<'_>,
    s: &SplitIn,
    lay: &Layout,
    x: &[f32],
    chunk_parts: &[(Cols, Option<Vec<f32>>)],
) -> SplitRun {
    let ctx = ops.ctx;
    let n = ctx.n;
    let whole = (lay.base == 0).then(|| {
        let mut y = vec![SENTINEL; n];
        let op = ops.row_op(ops.base, 0).with_kernel::<K>();
        let st = op
            .forward(ctx.row, x, &mut y)
            .expect("forward of a valid row");
        (y, st)
    });
    let mut stats = Vec::new();
    for (&(c0, len), (cols, bias)) in lay.chunks.iter().zip(chunk_parts) {
        let op = chunk_op::<K>(ops, cols, bias.as_deref());
        let mut scratch = vec![SENTINEL; len];
        let col0 = lay.base + c0;
        stats.push(op.chunk_stats(col0, &x[c0..c0 + len], &mut scratch));
    }
    let ok: Vec<RowStats> = stats.iter().filter_map(|r| r.ok()).collect();
    let merged = ok.iter().fold(RowStats::EMPTY, |a, &b| a.merge(b));
    let merged_rev = ok.iter().rev().fold(RowStats::EMPTY, |a, &b| b.merge(a));
    let use_stats = s.stats.map_or(merged, |(m, sum)| RowStats {
        max: m.get(),
        sum: sum.get(),
    });
    let mut y = vec![SENTINEL; n];
    let mut finish = vec![Ok(()); lay.chunks.len()];
    // Finished in reverse order: the chunks are independent.
    for (k, (&(c0, len), (cols, bias))) in lay.chunks.iter().zip(chunk_parts).enumerate().rev() {
        let op = chunk_op::<K>(ops, cols, bias.as_deref());
        let col0 = lay.base + c0;
        finish[k] = op.forward_chunk(
            ctx.row,
            col0,
            use_stats,
            &x[c0..c0 + len],
            &mut y[c0..c0 + len],
        );
    }
    let mut probes = Vec::new();
    for b in &s.bad {
        let k = usize::from(b.chunk) % lay.chunks.len();
        let (c0, len) = lay.chunks[k];
        let cols = chunk_cols(ctx.cols, c0, len, &b.cols);
        let bias = chunk_bias(ctx.bias, c0, len, &b.bias);
        let op = chunk_op::<K>(ops, &cols, bias.as_deref());
        let col0 = (lay.base + c0).saturating_add(usize::from(b.shift) % 64);
        let mut out = vec![SENTINEL; adjust(len, &b.out)];
        let xc = &x[c0..c0 + len];
        let res = if b.finish {
            op.forward_chunk(ctx.row, col0, merged, xc, &mut out)
        } else {
            op.chunk_stats(col0, xc, &mut out).map(|_| ())
        };
        let clean = untouched(&out);
        probes.push((res, clean));
    }
    SplitRun {
        whole,
        stats,
        merged,
        merged_rev,
        finish,
        y,
        probes,
    }
}

fn check_split(ops: &Ops<'_>, input: &BackwardInput, s: &SplitIn) {
    let ctx = ops.ctx;
    let n = ctx.n;
    let train = ctx.train.is_some();
    let base = match s.origin {
        Origin::Zero => 0,
        // Where `usize` has 32 bits, 2^32 itself is past `usize::MAX`: the last column that
        // starts a chunk (a multiple of 64) stands in for it.
        Origin::Near32(v) => {
            usize::try_from((1u64 << 32) - 64 * u64::from(v % 8)).unwrap_or(usize::MAX - 63)
        }
        Origin::Top(v) => (usize::MAX - 63) - 64 * usize::from(v % 8),
    };
    let mut chunks = Vec::new();
    let mut c0 = 0;
    for w in &s.widths {
        let len = 64 * usize::from(w % 9);
        if c0 + len >= n {
            break;
        }
        chunks.push((c0, len));
        c0 += len;
    }
    chunks.push((c0, n - c0));
    // Chunks whose first column would pass usize::MAX do not exist.
    chunks.retain(|&(c0, _)| base.checked_add(c0).is_some());
    let lay = Layout { base, chunks };
    let x = filled(&input.data, n);
    let parts: Vec<(Cols, Option<Vec<f32>>)> = lay
        .chunks
        .iter()
        .map(|&(c0, len)| {
            (
                chunk_cols(ctx.cols, c0, len, &LenAdj::Right),
                chunk_bias(ctx.bias, c0, len, &LenAdj::Right),
            )
        })
        .collect();
    let runs = each_kernel!(run_split(ops, s, &lay, &x, &parts));
    let e = (base == 0).then(|| model(ctx, &x, 0));
    for (name, mut r) in variants().into_iter().zip(runs) {
        let what = format!(
            "{name} split row (origin {base:#x}, chunks {:?})",
            lay.chunks
        );
        let fail = |msg: String| -> ! { panic!("{what}: {msg}\n  {}", ctx.describe()) };
        // Errors: exactly when a chunk is misaligned, too far or of the wrong length.
        let mut all_ok = true;
        for (k, &(c0, len)) in lay.chunks.iter().enumerate() {
            let col0 = base + c0;
            let errs = chunk_errors(train, col0, len, len, true);
            for (call, res) in [
                ("chunk_stats", r.stats[k].map(|_| ())),
                ("forward_chunk", r.finish[k]),
            ] {
                match (&res, errs.first()) {
                    (Ok(()), None) => {}
                    (Err(e), Some(_)) if errs.iter().any(|w| same_error(w, e)) => {}
                    _ => fail(format!(
                        "{call} of chunk {k} at {col0:#x}: {res:?}, want {errs:?}"
                    )),
                }
                all_ok &= res.is_ok();
            }
            if r.finish[k].is_err() && !untouched(&r.y[c0..c0 + len]) {
                fail(format!("forward_chunk of chunk {k}: error but written"));
            }
        }
        for (b, (res, clean)) in s.bad.iter().zip(&r.probes) {
            let k = usize::from(b.chunk) % lay.chunks.len();
            let (c0, len) = lay.chunks[k];
            let col0 = (base + c0).saturating_add(usize::from(b.shift) % 64);
            let bias_ok = ctx.bias.is_none() || adjust(len, &b.bias) == len;
            let cols_ok = match ctx.cols {
                Cols::All => true,
                Cols::Bools(_) => adjust(len, &b.cols) == len,
                Cols::Bits(_) => adjust(len.div_ceil(8), &b.cols) == len.div_ceil(8),
            };
            let errs = chunk_errors(train, col0, len, adjust(len, &b.out), bias_ok && cols_ok);
            match (res, errs.first()) {
                (Ok(()), None) => {}
                (Err(e), Some(_)) if errs.iter().any(|w| same_error(w, e)) => {
                    if !clean {
                        fail(format!("probe {b:?}: error {e:?} but written"));
                    }
                }
                _ => fail(format!("probe {b:?} at {col0:#x}: {res:?}, want {errs:?}")),
            }
        }
        if !all_ok || s.stats.is_some() {
            continue;
        }
        (ctx.tamper)(name, &mut r.y);
        check_merge(&r, lay.chunks.len(), &what);
        match (&e, &r.whole) {
            (Some(e), Some(whole)) => check_split_whole(ctx, e, &r, whole, &what),
            _ => check_split_far(ops, &lay, &x, &r, &what),
        }
    }
}

/// Merging in reverse order: the same statistics up to one rounding per merge.
fn check_merge(r: &SplitRun, chunks: usize, what: &str) {
    let (a, b) = (r.merged, r.merged_rev);
    let ok = if a.max.is_nan() || b.max.is_nan() {
        a.max.is_nan() && b.max.is_nan() && a.sum.is_nan() && b.sum.is_nan()
    } else if a.max.is_finite() {
        a.max == b.max
            && (f64::from(a.sum) - f64::from(b.sum)).abs()
                <= 2.01 * chunks as f64 * U24 * f64::from(a.sum)
    } else {
        stats_bits(&[a]) == stats_bits(&[b])
    };
    assert!(ok, "{what}: merged {a:?}, in reverse order {b:?}");
}

/// A split row from column 0 against the unsplit forward and the model.
fn check_split_whole(
    ctx: &Ctx<'_>,
    e: &Expect,
    r: &SplitRun,
    (w, ws): &(Vec<f32>, RowStats),
    what: &str,
) {
    let fail = |msg: String| -> ! { panic!("{what}: {msg}\n  {}", ctx.describe()) };
    let (st, y) = (r.merged, &r.y);
    for (j, &v) in y.iter().enumerate() {
        if !e.visible[j] && v.to_bits() != 0 {
            fail(format!("masked column {j} is {v:?}, not +0"));
        }
    }
    match e.kind {
        Kind::Ordinary { m, visible, .. } => {
            if st.max != ws.max {
                fail(format!("merged max {:?}, unsplit {:?}", st.max, ws.max));
            }
            // Each sum within the documented error of its exponentials, `rel + u |z_j - m|`
            // relative each, of the exact one; the merge and the final roundings add `u` each.
            let mut tol = 4.0 * U24 * f64::from(ws.sum) + visible as f64 * MIN_NORMAL;
            for (j, &z) in e.z.iter().enumerate() {
                if e.visible[j] && z > f32::NEG_INFINITY {
                    let d = (f64::from(z) - f64::from(m)).abs();
                    tol += 2.0 * (rel(visible) + U24 * d) * (-d).exp();
                }
            }
            if (f64::from(st.sum) - f64::from(ws.sum)).abs() > tol {
                fail(format!(
                    "merged sum {:?}, unsplit {:?}, difference {:e} > {tol:e}",
                    st.sum,
                    ws.sum,
                    f64::from(st.sum) - f64::from(ws.sum)
                ));
            }
            for j in 0..y.len() {
                // The same e_j = exp(z_j - m) (the same z, m and variant) decide the zeros: the
                // flush below 2^-126, the mask, -inf scores; e_j rescale / S >= 2^-126 / 4352
                // never underflows to 0. So the zeros are the unsplit row's exactly.
                if (y[j] == 0.0) != (w[j] == 0.0) {
                    fail(format!(
                        "column {j}: {:?}, unsplit {:?}: zeros differ",
                        y[j], w[j]
                    ));
                }
                let (exact, bound) = exact_and_bound(ctx, e, ctx.row, j);
                let v = f64::from(y[j]);
                if !within(v - exact, bound) {
                    fail(format!(
                        "column {j} is {:?}, exact {exact:?}, error {:e} > bound {bound:e}",
                        y[j],
                        v - exact
                    ));
                }
                if !within(v - f64::from(w[j]), 2.0 * bound) {
                    fail(format!("column {j}: {:?}, unsplit {:?}", y[j], w[j]));
                }
            }
        }
        _ => {
            // Special rows: statistics and outputs as the whole row gives them, bit for bit
            // (NaN rows: the same NaN columns).
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            if !same(st.max, ws.max) || !same(st.sum, ws.sum) {
                fail(format!("special row: merged {st:?}, unsplit {ws:?}"));
            }
            if let Some(j) = (0..y.len()).find(|&j| !same(y[j], w[j])) {
                fail(format!(
                    "special row: column {j} is {:?}, unsplit {:?}",
                    y[j], w[j]
                ));
            }
        }
    }
}

/// A split row far out: the mask of the global columns (no unsplit row to compare with).
fn check_split_far(ops: &Ops<'_>, lay: &Layout, x: &[f32], r: &SplitRun, what: &str) {
    let ctx = ops.ctx;
    let st = r.merged;
    for &(c0, len) in &lay.chunks {
        let cols = chunk_cols(ctx.cols, c0, len, &LenAdj::Right);
        let bias = chunk_bias(ctx.bias, c0, len, &LenAdj::Right);
        for k in 0..len {
            let (j, v) = (c0 + k, r.y[c0 + k]);
            let col = lay.base + j;
            let visible = ctx.band.visible(0, col) && cols.visible(k);
            let fail = |msg: &str| -> ! {
                panic!(
                    "{what}: column {j} (global {col:#x}) is {v:?}: {msg}\n  {}",
                    ctx.describe()
                )
            };
            if !visible {
                if v.to_bits() != 0 {
                    fail("masked, not +0");
                }
                continue;
            }
            let b = bias.as_ref().map(|b| b[k]);
            let z = if x[j] == f32::NEG_INFINITY || b == Some(f32::NEG_INFINITY) {
                f32::NEG_INFINITY
            } else {
                b.map_or(ctx.scale * x[j], |b| ctx.scale * x[j] + b)
            };
            let kept = ctx
                .train
                .is_none_or(|(d, key)| keep(&d, key, ctx.row, col as u32));
            if st.max.is_nan() {
                if z != f32::NEG_INFINITY && !v.is_nan() {
                    fail("NaN row");
                }
            } else if st.max.is_finite() {
                if v != 0.0 && !(kept && z > f32::NEG_INFINITY) {
                    fail(&format!("nonzero, but z = {z:?}, kept = {kept}"));
                }
                if v == 0.0 && kept && z > f32::NEG_INFINITY && z - st.max >= -87.0 {
                    fail(&format!("zero, but kept with z - m = {:?}", z - st.max));
                }
            }
        }
    }
}

fn check_mask_bits(m: &MaskBitsIn, row: u64) {
    let Ok(d) = Dropout::new(p_of(&m.train.p)) else {
        return;
    };
    let key = DropoutKey::new(m.train.seed, m.train.offset);
    let bytes = usize::from(m.bytes) % 1100;
    let mut out = vec![m.junk; bytes];
    d.mask_bits(key, row, &mut out)
        .expect("mask_bits of a short row");
    for j in 0..bytes * 8 {
        let bit = out[j / 8] >> (j % 8) & 1 == 1;
        let want = keep(&d, key, row, j as u32);
        assert_eq!(
            bit,
            want,
            "mask_bits: column {j} of {bytes} bytes (junk {:#04x}): {bit}, keep says {want}; \
             p = {:?}, threshold {}, key {key:?}, row {row}",
            m.junk,
            d.p(),
            d.threshold()
        );
    }
}
