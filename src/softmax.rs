//! The public fused operation: scale, mask, softmax, dropout.

use core::marker::PhantomData;

use crate::dropout::{Dropout, DropoutKey};
use crate::error::Error;
use crate::kernel::{
    Best, Finish, Probabilities, RowKernel, RowStats, Scores, backward_matrix, backward_row,
    dropout_row, forward_matrix, forward_row,
};
use crate::kernel::{chunk_stats as kernel_chunk_stats, forward_chunk as kernel_forward_chunk};
use crate::mask::Mask;

/// Evaluation or training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `Y = P`: no dropout, the generator is never run.
    Eval,
    /// `Y_j = keep(r, j) ? P_j / q : 0`.
    Train {
        /// The drop probability, as an exact threshold.
        dropout: Dropout,
        /// The key the mask is drawn from.
        key: DropoutKey,
    },
}

/// The fused row operation `Y = dropout(softmax(scale * x + bias, mask))`, configured once and
/// applied to rows.
///
/// For a row `x[0..n)` with id `r`:
///
/// ```text
/// z_j = scale * x_j + b_j                      (visible j; -inf when x_j or b_j is -inf)
/// m   = max_j z_j,   S = sum_j exp(z_j - m),   P_j = exp(z_j - m) / S
/// Y_j = P_j                                     Mode::Eval
/// Y_j = keep(r, j) ? P_j * rescale : 0          Mode::Train (see `Dropout`, `keep`)
/// Y_j = 0                                       masked j, whatever x_j holds
/// ```
///
/// Each call returns the row's [`RowStats`] `(m, S)`. Special rows (a NaN, `+inf` or only `-inf`
/// scores) are described in the [crate docs](crate#special-values). Cost per row: three passes
/// over the visible band (read x, write z; exp and sum; scale and mask), rows of up to four
/// vectors in registers; about 0.3 ns per visible element in evaluation and 0.45 in training on
/// AVX-512 with rows of 1024 in cache, 0.37 and 0.7 with rows of 64; masked columns cost one
/// store (see the README's performance section).
///
/// `K` is the kernel variant, [`Best`] unless chosen with [`with_kernel`](Self::with_kernel).
#[derive(Debug)]
pub struct SoftmaxDropout<'a, K: RowKernel = Best> {
    scale: f32,
    mode: Mode,
    mask: Mask<'a>,
    bias: Option<&'a [f32]>,
    sink: f32,
    /// The soft-cap `c`, or 0 for none.
    cap: f32,
    kernel: PhantomData<K>,
}

// Manual impls: the kernel is a marker, so copying never needs `K: Copy`.
impl<K: RowKernel> Clone for SoftmaxDropout<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: RowKernel> Copy for SoftmaxDropout<'_, K> {}

impl<'a> SoftmaxDropout<'a, Best> {
    /// A fused operation with logit scale `scale` (e.g. `1/sqrt(d_k)`), no mask and no bias.
    ///
    /// # Errors
    /// [`Error::NonFiniteScale`] if `scale` is NaN or infinite.
    pub fn new(scale: f32, mode: Mode) -> Result<Self, Error> {
        if !scale.is_finite() {
            return Err(Error::NonFiniteScale);
        }
        Ok(Self {
            scale,
            mode,
            mask: Mask::none(),
            bias: None,
            sink: f32::NEG_INFINITY,
            cap: 0.0,
            kernel: PhantomData,
        })
    }

    /// Evaluation mode: `Y = softmax(scale * x + bias)`.
    ///
    /// # Errors
    /// [`Error::NonFiniteScale`] if `scale` is NaN or infinite.
    pub fn eval(scale: f32) -> Result<Self, Error> {
        Self::new(scale, Mode::Eval)
    }

    /// Training mode with dropout `dropout` drawn from `key`.
    ///
    /// # Errors
    /// [`Error::NonFiniteScale`] if `scale` is NaN or infinite.
    pub fn train(scale: f32, dropout: Dropout, key: DropoutKey) -> Result<Self, Error> {
        Self::new(scale, Mode::Train { dropout, key })
    }
}

impl<'a, K: RowKernel> SoftmaxDropout<'a, K> {
    /// The same operation with another mask.
    pub fn with_mask(self, mask: Mask<'a>) -> Self {
        Self { mask, ..self }
    }

    /// The same operation with an additive bias `b[0..n)` (ALiBi, relative positions, a float
    /// mask), added after scaling; one entry per column.
    pub fn with_bias(self, bias: &'a [f32]) -> Self {
        Self {
            bias: Some(bias),
            ..self
        }
    }

    /// The same operation with an attention sink (gpt-oss, StreamingLLM): a logit `sink`, in
    /// the units of the scores `z_j` (after scale and bias), that joins every row's softmax
    /// without a column of its own:
    ///
    /// ```text
    /// m = max(sink, max_j z_j),   S = exp(sink - m) + sum_j exp(z_j - m),   P_j = exp(z_j - m) / S
    /// ```
    ///
    /// so the row's outputs sum to `1 - exp(sink - m) / S` (before dropout), and the
    /// [`RowStats`] returned, saved and merged describe the row with its sink. `-inf` (the
    /// default) is no sink, bit for bit. A row with no finite visible score puts all its
    /// probability on the sink: zeros, statistics `(sink, 1)`. A NaN sink makes every row a NaN
    /// row; a `+inf` sink takes all the probability from finite scores (zeros, `(+inf, 1)`) and
    /// shares it with `+inf` scores as one of them. Of a split row, the chunk at column 0
    /// carries the sink in its [`chunk_stats`](Self::chunk_stats). The backward pass needs no
    /// change: with the forward's statistics (or its saved `P`) it gives `dx` of the row with
    /// its sink; [`backward_sink`](Self::backward_sink) also returns the sink's gradient.
    /// Cost: one `expf` per row; error: the row's bound plus a few ulp in `S`.
    pub fn with_sink(self, sink: f32) -> Self {
        Self { sink, ..self }
    }

    /// The same operation with logit soft-capping (Gemma 2): the scores become
    ///
    /// ```text
    /// z_j = c * tanh(scale * x_j / c) + b_j        (visible j; -inf when x_j or b_j is -inf)
    /// ```
    ///
    /// the cap applied to the scaled logit, before the bias and the mask, so `|z_j - b_j| <= c`.
    /// Computed as `fl(c * T(fl(x_j * fl(scale / c))))` (then `+ b_j`), `T` the kernels' vector
    /// `tanh` (relative error at most [`MAX_TANH_REL_ERROR`](crate::MAX_TANH_REL_ERROR)). A
    /// `+inf` logit caps to `c` (to `-c` for a negative scale); a `-inf` logit stays a masked
    /// column, as without the cap; NaN stays NaN (a NaN row). The statistics describe the capped
    /// scores. Error of `Y_j` against the exact formula: the row's bound with `|z_j - m|` as
    /// usual, plus `2 ((u_T + 3 u) c + u max_k |b_k|)` relative (`u = 2^-24`, `u_T` the `tanh`
    /// bound), from the capped scores' own rounding. Cost: one `tanh` (a polynomial, an exponential and a division) per visible
    /// element, on every kernel; the plain and in-register paths are not used with a cap.
    ///
    /// The backward pass multiplies `dx_j` by the cap's derivative
    /// `1 - ((z_j - b_j) / c)^2 = sech^2(scale x_j / c)` (computed as `4 e / (1 + e)^2`,
    /// `e = exp(-2 |scale x_j / c|)`, without cancellation where the cap saturates), so it needs
    /// the logits: [`Probabilities::Recompute`] (saved `P` is
    /// [`Error::LogitsRequired`]).
    ///
    /// # Errors
    /// [`Error::InvalidSoftcap`] unless `c` is finite and positive and `scale / c` finite (a
    /// subnormal cap with a large scale overflows it).
    pub fn with_softcap(self, c: f32) -> Result<Self, Error> {
        // `scale / c` must be finite too: an infinite one would make `0 * inf` of a zero logit.
        if !(c.is_finite() && c > 0.0 && (self.scale / c).is_finite()) {
            return Err(Error::InvalidSoftcap);
        }
        Ok(Self { cap: c, ..self })
    }

    /// The same operation run by kernel variant `L`: every variant gives the same masks and values
    /// within the documented bound.
    pub fn with_kernel<L: RowKernel>(self) -> SoftmaxDropout<'a, L> {
        let Self {
            scale,
            mode,
            mask,
            bias,
            sink,
            cap,
            ..
        } = self;
        SoftmaxDropout {
            scale,
            mode,
            mask,
            bias,
            sink,
            cap,
            kernel: PhantomData,
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Checks everything a row of length `n` needs.
    fn validate(&self, n: usize) -> Result<(), Error> {
        if !K::is_supported() {
            return Err(Error::UnsupportedKernel);
        }
        if let Some(b) = self.bias
            && b.len() != n
        {
            return Err(Error::LengthMismatch {
                expected: n,
                found: b.len(),
            });
        }
        self.mask.validate(n)?;
        if matches!(self.mode, Mode::Train { .. }) && u32::try_from(n.saturating_sub(1)).is_err() {
            return Err(Error::RowTooLong);
        }
        Ok(())
    }

    fn scores(&self) -> Scores<'a> {
        Scores {
            scale: self.scale,
            bias: self.bias,
            columns: self.mask.columns(),
            sink: self.sink,
            cap: self.cap,
        }
    }

    fn finish(&self) -> Finish {
        match self.mode {
            Mode::Eval => Finish::Eval,
            Mode::Train { dropout, key } => Finish::Train(dropout, key),
        }
    }

    /// One row: `y = op(x)` for row id `row`. `x` and `y` must have the same length.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `y`, the bias or the column mask does not match `x`;
    /// [`Error::RowTooLong`] for a training row of more than 2^32 columns. Nothing is written.
    pub fn forward(&self, row: u64, x: &[f32], y: &mut [f32]) -> Result<RowStats, Error> {
        if x.len() != y.len() {
            return Err(Error::LengthMismatch {
                expected: x.len(),
                found: y.len(),
            });
        }
        self.validate(x.len())?;
        Ok(forward_row::<K>(
            &self.scores(),
            self.finish(),
            self.mask.span(0, x.len()),
            row,
            Some(x),
            y,
        ))
    }

    /// One row in place: `xy = op(xy)` for row id `row`.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_in_place(&self, row: u64, xy: &mut [f32]) -> Result<RowStats, Error> {
        self.validate(xy.len())?;
        Ok(forward_row::<K>(
            &self.scores(),
            self.finish(),
            self.mask.span(0, xy.len()),
            row,
            None,
            xy,
        ))
    }

    /// A row-major matrix of `x.len() / cols` rows: row `i` gets row id `first_row + i`
    /// (wrapping) and query position `query_pos + i` (see [`Mask`]); the bias and column mask
    /// apply to every row. Writes each row's statistics to `stats` when given.
    ///
    /// The result is bit-identical to calling [`forward`](Self::forward) row by row with the
    /// corresponding masks, and to any split of the matrix into row ranges with matching
    /// `first_row` and query positions. It is faster than that loop: the rows are
    /// software-pipelined, the next row's first pass overlapping this row's reductions (see the
    /// README's performance section for measurements).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `x.len()` is not a multiple of `cols` (or `cols` is 0 with a
    /// non-empty `x`), `y` differs from `x` in length, `stats` does not hold one entry per row, or
    /// the bias or column mask does not hold `cols` entries; [`Error::RowTooLong`] as for
    /// [`forward`](Self::forward). Nothing is written.
    pub fn forward_rows(
        &self,
        first_row: u64,
        cols: usize,
        x: &[f32],
        y: &mut [f32],
        stats: Option<&mut [RowStats]>,
    ) -> Result<(), Error> {
        if x.len() != y.len() {
            return Err(Error::LengthMismatch {
                expected: x.len(),
                found: y.len(),
            });
        }
        self.validate_rows(cols, x.len(), stats.as_deref())?;
        self.matrix(first_row, cols, Some(x), y, stats);
        Ok(())
    }

    /// [`forward_rows`](Self::forward_rows) in place.
    ///
    /// # Errors
    /// As [`forward_rows`](Self::forward_rows).
    pub fn forward_rows_in_place(
        &self,
        first_row: u64,
        cols: usize,
        xy: &mut [f32],
        stats: Option<&mut [RowStats]>,
    ) -> Result<(), Error> {
        self.validate_rows(cols, xy.len(), stats.as_deref())?;
        self.matrix(first_row, cols, None, xy, stats);
        Ok(())
    }

    /// [`forward_rows`](Self::forward_rows) (or in place without `x`) after validation.
    fn matrix(
        &self,
        first_row: u64,
        cols: usize,
        x: Option<&[f32]>,
        y: &mut [f32],
        stats: Option<&mut [RowStats]>,
    ) {
        let mut stats = stats.map(|s| s.iter_mut());
        forward_matrix::<K, _, _>(
            &self.scores(),
            self.finish(),
            |i| self.mask.span(i, cols),
            first_row,
            cols,
            x,
            y,
            |st| {
                if let Some(slot) = stats.as_mut().and_then(Iterator::next) {
                    *slot = st;
                }
            },
        );
    }

    /// The backward pass of one row (contract §4): given `dy = dL/dY`, writes `dx = dL/dx` for
    /// the logits,
    ///
    /// ```text
    /// G_j  = keep(r, j) ? dy_j * rescale : 0        (G = dy in evaluation)
    /// dx_j = scale * P_j * (G_j - sum_k P_k G_k)    (0 for masked j)
    /// ```
    ///
    /// with the same row id, key, mask, bias and scale as the forward. The dropout mask is
    /// regenerated from the key, never stored; `P` is either saved by the caller or recomputed
    /// from the logits and the forward's [`RowStats`] (see [`Probabilities`]). The gradient with
    /// respect to an additive bias is `dx_j / scale` without a soft-cap; with one
    /// ([`with_softcap`](Self::with_softcap)) it is `P_j (G_j - sum_k P_k G_k)`, which `dx` holds
    /// multiplied by `scale (1 - t_j^2)`. Cost: two passes over the row (plus one exponential per
    /// element when recomputing, and one more pass with a cap), the keep bits generated once for
    /// rows up to 4096 columns.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `dy`, `dx`, the saved `P` or logits, the bias or the column
    /// mask differ in length; [`Error::RowTooLong`] as for [`forward`](Self::forward);
    /// [`Error::LogitsRequired`] for saved `P` with a soft-cap. Nothing is written.
    pub fn backward(
        &self,
        row: u64,
        probs: Probabilities<'_>,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<(), Error> {
        self.backward_dot(row, probs, dy, dx).map(|_| ())
    }

    /// [`backward`](Self::backward), returning the row's `sum_j P_j G_j`.
    pub(crate) fn backward_dot(
        &self,
        row: u64,
        probs: Probabilities<'_>,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<f32, Error> {
        let n = dx.len();
        let p_len = match probs {
            Probabilities::Saved(_) if self.cap != 0.0 => return Err(Error::LogitsRequired),
            Probabilities::Saved(p) => p.len(),
            Probabilities::Recompute { logits, .. } => logits.len(),
        };
        for len in [dy.len(), p_len] {
            if len != n {
                return Err(Error::LengthMismatch {
                    expected: n,
                    found: len,
                });
            }
        }
        self.validate(n)?;
        Ok(backward_row::<K>(
            &self.scores(),
            self.finish(),
            self.mask.span(0, n),
            row,
            probs,
            dy,
            dx,
        ))
    }

    /// [`backward`](Self::backward) of a row with an attention sink
    /// ([`with_sink`](Self::with_sink)), returning also the gradient of the loss with respect
    /// to the sink logit:
    ///
    /// ```text
    /// dL/dsink = -P_sink * sum_j P_j G_j,    P_sink = exp(sink - m) / S
    /// ```
    ///
    /// with `(m, S)` the forward's `stats` of this row (which include the sink). Derivation:
    /// `P_j = exp(z_j) / (exp(sink) + sum_k exp(z_k))`, so `dP_j/dsink = -P_j P_sink`; the sink
    /// has no output of its own, and `Y_j` depends on the sink only through `P_j`, so
    /// `dL/dsink = sum_j G_j dP_j/dsink`. (Without a soft-cap, equivalently
    /// `-sum_j dx_j / scale`, as the softmax is unchanged when every score and the sink move
    /// together; that form cancels where `P_sink` is small, this one does not.) The sum `sum_j P_j G_j` is the one `dx` uses;
    /// error: that of `dx` (a few ulp relative to `|P_sink| sum_j |P_j G_j|`) plus one `expf`.
    /// Without a sink (`-inf`) it is 0; NaN statistics or a NaN sink give NaN.
    ///
    /// # Errors
    /// As [`backward`](Self::backward). Nothing is written.
    pub fn backward_sink(
        &self,
        row: u64,
        probs: Probabilities<'_>,
        stats: RowStats,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<f32, Error> {
        let dot = self.backward_dot(row, probs, dy, dx)?;
        Ok(self.sink_gradient(stats, dot))
    }

    /// The backward pass of a row-major matrix, row `i` with row id `first_row + i` and query
    /// position `query_pos + i`, as [`forward_rows`](Self::forward_rows) numbers them. `probs`
    /// holds the saved `P` matrix, or the logits matrix with one [`RowStats`] per row.
    ///
    /// # Errors
    /// As [`forward_rows`](Self::forward_rows) and [`backward`](Self::backward).
    pub fn backward_rows(
        &self,
        first_row: u64,
        cols: usize,
        probs: MatrixProbabilities<'_>,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<(), Error> {
        self.backward_rows_with(first_row, cols, probs, dy, dx, |_| ())
    }

    /// [`backward_rows`](Self::backward_rows) of rows with an attention sink, returning also
    /// the gradient with respect to the sink logit summed over the rows (one head's rows share
    /// its sink): `sum_i -P_sink,i sum_j P_ij G_ij`, each row's term as
    /// [`backward_sink`](Self::backward_sink) gives it, added in `f64` and rounded once.
    /// `stats` holds the forward's statistics, one per row.
    ///
    /// # Errors
    /// As [`backward_rows`](Self::backward_rows), and [`Error::LengthMismatch`] if `stats` does
    /// not hold one entry per row. Nothing is written.
    pub fn backward_rows_sink(
        &self,
        first_row: u64,
        cols: usize,
        probs: MatrixProbabilities<'_>,
        stats: &[RowStats],
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<f32, Error> {
        self.validate_rows(cols, dx.len(), Some(stats))?;
        let mut total = 0.0f64;
        let mut each = stats.iter();
        self.backward_rows_with(first_row, cols, probs, dy, dx, |dot| {
            if let Some(&st) = each.next() {
                total += f64::from(self.sink_gradient(st, dot));
            }
        })?;
        Ok(total as f32)
    }

    /// [`backward_rows`](Self::backward_rows), calling `record` with each row's
    /// `sum_j P_j G_j`, in row order, once the inputs are validated.
    pub(crate) fn backward_rows_with(
        &self,
        first_row: u64,
        cols: usize,
        probs: MatrixProbabilities<'_>,
        dy: &[f32],
        dx: &mut [f32],
        record: impl FnMut(f32),
    ) -> Result<(), Error> {
        let (p, stats) = match probs {
            MatrixProbabilities::Saved(_) if self.cap != 0.0 => return Err(Error::LogitsRequired),
            MatrixProbabilities::Saved(p) => (p, None),
            MatrixProbabilities::Recompute { logits, stats } => (logits, Some(stats)),
        };
        self.validate_rows(cols, dx.len(), stats)?;
        for len in [dy.len(), p.len()] {
            if len != dx.len() {
                return Err(Error::LengthMismatch {
                    expected: dx.len(),
                    found: len,
                });
            }
        }
        backward_matrix::<K, _, _>(
            &self.scores(),
            self.finish(),
            |i| self.mask.span(i, cols),
            first_row,
            cols,
            p,
            stats,
            dy,
            dx,
            record,
        );
        Ok(())
    }

    /// A row's `dL/dsink` from its forward statistics and its `sum_j P_j G_j`
    /// ([`backward_sink`](Self::backward_sink)).
    pub(crate) fn sink_gradient(&self, stats: RowStats, dot: f32) -> f32 {
        -sink_probability(self.sink, stats) * dot
    }

    /// Validates a chunk of a split row: its band within the row, in chunk coordinates.
    fn chunk_span(&self, col0: usize, n: usize) -> Result<(usize, usize), Error> {
        if !col0.is_multiple_of(64) {
            return Err(Error::ChunkAlignment);
        }
        let end = col0.checked_add(n).ok_or(Error::RowTooLong)?;
        self.validate(n)?;
        if matches!(self.mode, Mode::Train { .. }) && u32::try_from(end.saturating_sub(1)).is_err()
        {
            return Err(Error::RowTooLong);
        }
        let (lo, hi) = self.mask.span(0, end);
        let (lo, hi) = (lo.max(col0), hi.max(col0));
        Ok((lo - col0, (hi - col0).max(lo - col0)))
    }

    /// A split row, step 1: the statistics of the chunk `x` = columns `col0 .. col0 + x.len()`
    /// of row `row` (`col0` a multiple of 64). Combine the chunks' statistics with
    /// [`RowStats::merge`], then finish each chunk with [`forward_chunk`](Self::forward_chunk).
    /// The mask's band and key length apply at the chunk's global columns; the bias and the
    /// per-column mask, if any, are the chunk's own slices. `scratch` (the chunk's length)
    /// receives intermediate values; the chunk's output buffer will do.
    ///
    /// # Errors
    /// [`Error::ChunkAlignment`] if `col0` is not a multiple of 64; [`Error::LengthMismatch`]
    /// if `scratch`, the bias or the column mask differ from `x` in length;
    /// [`Error::RowTooLong`] for training columns past 2^32. Nothing is written.
    pub fn chunk_stats(
        &self,
        col0: usize,
        x: &[f32],
        scratch: &mut [f32],
    ) -> Result<RowStats, Error> {
        if x.len() != scratch.len() {
            return Err(Error::LengthMismatch {
                expected: x.len(),
                found: scratch.len(),
            });
        }
        let span = self.chunk_span(col0, x.len())?;
        let stats = kernel_chunk_stats::<K>(&self.scores(), span, x, scratch);
        // The sink joins the row once: with the chunk at column 0.
        Ok(if col0 == 0 && self.sink != f32::NEG_INFINITY {
            stats.merge(RowStats {
                max: self.sink,
                sum: 1.0,
            })
        } else {
            stats
        })
    }

    /// A split row, step 2: finishes the chunk `x` (columns `col0 ..` of row `row`) into `y`
    /// with the whole row's merged `stats`: `y_j = dropout(exp(z_j - m) / S)`, the dropout mask
    /// taken at the global columns, so the chunks together carry exactly the unsplit row's mask
    /// and its values within the documented bound. Chunks can be finished in any order, by any
    /// thread.
    ///
    /// # Errors
    /// As [`chunk_stats`](Self::chunk_stats) (with `y` for `scratch`). Nothing is written.
    pub fn forward_chunk(
        &self,
        row: u64,
        col0: usize,
        stats: RowStats,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), Error> {
        if x.len() != y.len() {
            return Err(Error::LengthMismatch {
                expected: x.len(),
                found: y.len(),
            });
        }
        let span = self.chunk_span(col0, x.len())?;
        kernel_forward_chunk::<K>(&self.scores(), self.finish(), span, row, col0, stats, x, y);
        Ok(())
    }

    /// Validates a matrix call; returns its number of rows.
    fn validate_rows(
        &self,
        cols: usize,
        len: usize,
        stats: Option<&[RowStats]>,
    ) -> Result<usize, Error> {
        let rows = len.checked_div(cols).unwrap_or(0);
        // `rows * cols <= len`: no overflow.
        if rows * cols != len {
            return Err(Error::LengthMismatch {
                expected: rows * cols,
                found: len,
            });
        }
        if let Some(s) = stats
            && s.len() != rows
        {
            return Err(Error::LengthMismatch {
                expected: rows,
                found: s.len(),
            });
        }
        self.validate(cols)?;
        Ok(rows)
    }
}

/// Where [`SoftmaxDropout::backward_rows`] gets the probabilities of a matrix.
#[derive(Clone, Copy, Debug)]
pub enum MatrixProbabilities<'a> {
    /// The saved `P` matrix, row-major like the gradients.
    Saved(&'a [f32]),
    /// The forward's logits matrix and its statistics, one entry per row.
    Recompute {
        /// The forward's logits, row-major.
        logits: &'a [f32],
        /// The statistics the forward returned, one per row.
        stats: &'a [RowStats],
    },
}

/// The longest output [`Dropout::mask_bits`] accepts: 2^32 columns, the mask layout's `u32`
/// column index, in bytes; where `usize` has fewer than 32 bits, `2^usize::BITS` columns, the
/// most the kernel's `usize` column indices reach. With at most this many bytes, every column
/// index `j < 8 * out.len()` fits both `u32` and `usize`, and so does every block start
/// `4096 b`; only the column count itself, `8 * out.len()`, may reach `2^usize::BITS` (exactly
/// at this bound, where `usize` has at most 32 bits).
const MAX_MASK_BYTES: usize = 1 << (COLUMN_BITS - 3);

/// Bits of a column index in [`Dropout::mask_bits`]: 32, or fewer where `usize` has fewer.
const COLUMN_BITS: u32 = if usize::BITS < 32 { usize::BITS } else { 32 };

impl Dropout {
    /// Writes the keep decisions of `n = out.len() * 8` columns of row `row` as packed bits: bit
    /// `j % 8` of byte `j / 8` (least significant first) is 1 when column `j` is kept, exactly
    /// [`keep`](crate::keep) for every `j` (numpy's `unpackbits(..., bitorder="little")` reads
    /// it). All ones when nothing is dropped, all zeros when everything is.
    ///
    /// # Errors
    /// [`Error::RowTooLong`] for more than 2^32 columns (`out.len() > 2^29`), or, where `usize`
    /// has 16 bits, more columns than it counts (`out.len() > 2^13`). Nothing is written.
    pub fn mask_bits(&self, key: DropoutKey, row: u64, out: &mut [u8]) -> Result<(), Error> {
        self.mask_bits_with::<Best>(key, row, out)
    }

    /// [`mask_bits`](Self::mask_bits) run by kernel variant `K`: the same bits on every
    /// variant. A firmware build that uses only [`Scalar`](crate::Scalar) calls
    /// `mask_bits_with::<Scalar>` so that none of the wide tables is linked.
    ///
    /// # Errors
    /// As [`mask_bits`](Self::mask_bits), and [`Error::UnsupportedKernel`] where the CPU lacks
    /// `K`'s instructions. Nothing is written.
    pub fn mask_bits_with<K: RowKernel>(
        &self,
        key: DropoutKey,
        row: u64,
        out: &mut [u8],
    ) -> Result<(), Error> {
        if !K::is_supported() {
            return Err(Error::UnsupportedKernel);
        }
        // Compared in bytes, not columns: `out.len() * 8` can overflow `usize` (on 32-bit
        // targets from 2^29 bytes on, on 64-bit ones from 2^61).
        if out.len() > MAX_MASK_BYTES {
            return Err(Error::RowTooLong);
        }
        crate::kernel::mask_bits::<K>(self, key, row, out);
        Ok(())
    }

    /// Dropout alone, in place: `v_j = keep(row, j) ? v_j * rescale : 0` with the same mask as
    /// the fused kernels (for dropout after `attention @ V`, or an unfused pipeline).
    ///
    /// # Errors
    /// [`Error::RowTooLong`] for more than 2^32 values. Nothing is written.
    pub fn apply(&self, key: DropoutKey, row: u64, values: &mut [f32]) -> Result<(), Error> {
        self.apply_with::<Best>(key, row, values)
    }

    /// [`apply`](Self::apply) run by kernel variant `K`.
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    pub fn apply_with<K: RowKernel>(
        &self,
        key: DropoutKey,
        row: u64,
        values: &mut [f32],
    ) -> Result<(), Error> {
        if !K::is_supported() {
            return Err(Error::UnsupportedKernel);
        }
        if u32::try_from(values.len().saturating_sub(1)).is_err() {
            return Err(Error::RowTooLong);
        }
        dropout_row::<K>(self, key, row, values);
        Ok(())
    }
}

/// `P_sink = exp(sink - m) / S` of a row with statistics `(m, S)` (which include the sink): 0
/// without a sink, `1 / S` where the sink is the maximum (`+inf` included), NaN for NaN.
fn sink_probability(sink: f32, stats: RowStats) -> f32 {
    if sink == f32::NEG_INFINITY {
        0.0
    } else if sink == stats.max {
        1.0 / stats.sum
    } else {
        libm::expf(sink - stats.max) / stats.sum
    }
}
