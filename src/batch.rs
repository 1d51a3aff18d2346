//! Attention batches: the fused row operation over a `[batch, heads, q_len, k_len]` score tensor.

use crate::error::Error;
use crate::kernel::{Best, Probabilities, RowKernel, RowStats};
use crate::mask::Mask;
use crate::softmax::{MatrixProbabilities, SoftmaxDropout};

/// The layout of an attention score tensor `[batch, heads, q_len, k_len]`: row-major, rows of
/// `k_len` scores `row_stride >= k_len` elements apart (padded buffers).
///
/// Row `r` is query `i` of head `h` of batch entry `b`, and element `(b, h, i, j)` lies at
///
/// ```text
/// r      = (b * heads + h) * q_len + i                 0 <= r < rows = batch * heads * q_len
/// offset = r * row_stride + j                          0 <= j < k_len
/// ```
///
/// A buffer must hold at least [`min_len`](Self::min_len) `= (rows - 1) * row_stride + k_len`
/// elements (0 when there are no rows): the last row need not be padded. The padding columns
/// `k_len..row_stride` of each row, and anything past `min_len`, are never read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttentionShape {
    /// Batch entries (sequences).
    pub batch: usize,
    /// Attention heads per batch entry.
    pub heads: usize,
    /// Query rows per head.
    pub q_len: usize,
    /// Keys per row: the row length.
    pub k_len: usize,
    /// Elements from the start of one row to the start of the next, at least `k_len`.
    pub row_stride: usize,
}

impl AttentionShape {
    /// A dense shape: `row_stride = k_len`.
    pub const fn new(batch: usize, heads: usize, q_len: usize, k_len: usize) -> Self {
        Self {
            batch,
            heads,
            q_len,
            k_len,
            row_stride: k_len,
        }
    }

    /// The same shape with rows `row_stride` elements apart.
    pub const fn with_row_stride(self, row_stride: usize) -> Self {
        Self { row_stride, ..self }
    }

    /// `batch * heads * q_len`, or `None` if that overflows `usize`.
    pub const fn rows(&self) -> Option<usize> {
        match self.batch.checked_mul(self.heads) {
            Some(bh) => bh.checked_mul(self.q_len),
            None => None,
        }
    }

    /// The shortest buffer that holds every row: `(rows - 1) * row_stride + k_len`, 0 without
    /// rows; `None` if that overflows `usize`.
    pub const fn min_len(&self) -> Option<usize> {
        match self.rows() {
            Some(0) => Some(0),
            Some(rows) => match (rows - 1).checked_mul(self.row_stride) {
                Some(v) => v.checked_add(self.k_len),
                None => None,
            },
            None => None,
        }
    }
}

/// The band of every row, relative to its query position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Band {
    Full,
    Causal,
    Window(usize),
}

/// The fused operation of a [`SoftmaxDropout`] applied to every row of an attention score tensor
/// laid out as an [`AttentionShape`], each row with its own row id and mask.
///
/// For the row `r = (b * heads + h) * q_len + i` (query `i` of head `h` of batch entry `b`) of a
/// call with `first_row`:
///
/// ```text
/// row id          first_row + r                  (wrapping u64; the dropout key adds its offset)
/// query position  past_len + i                   (causal and sliding-window bands)
/// key length      key_lengths[b]                 (columns j >= key_lengths[b] masked)
/// mask            Mask::causal(past_len + i)                 with causal(past_len)
///                 Mask::sliding_window(past_len + i, w)      with sliding_window(past_len, w)
///                 Mask::none()                               otherwise
///                 then .with_key_len(key_lengths[b])         with with_key_lengths
/// ```
///
/// and the row is exactly `op.with_mask(mask).forward(first_row + r, x_row, y_row)` (likewise
/// for the backward): bit-identical, whatever the kernel variant. Equivalently, for a dense
/// `(b, h)` block, it is `op.with_mask(Mask::causal(past_len).with_key_len(key_lengths[b]))
/// .forward_rows(first_row + (b * heads + h) * q_len, k_len, ..)`, since
/// [`forward_rows`](SoftmaxDropout::forward_rows) gives its row `i` the row id `first_row + i`
/// and query position `query_pos + i`. The row ids of a call are consecutive, so calls for other
/// tensors (layers, steps) stay disjoint when their `first_row` ranges, or their
/// [`DropoutKey`](crate::DropoutKey)s, are.
///
/// `past_len` is the number of cached keys before the first query: the causal row `i` sees keys
/// `0..=past_len + i`. Prefill of a square score matrix uses `past_len = 0`; a block of `q_len`
/// new queries after `past_len` cached keys has typically `k_len = past_len + q_len`; one
/// decoding step is `q_len = 1, past_len = k_len - 1` (the row sees every key, and the key
/// lengths mask the right padding of shorter sequences). `past_len` is shared by the whole batch:
/// a ragged batch is right-padded, its true lengths given by [`with_key_lengths`].
///
/// Any mask set on `op` with [`with_mask`](SoftmaxDropout::with_mask) is replaced by the rows'
/// masks above; its scale, mode (dropout probability and key), bias (one entry per key, the same
/// for every row), attention sink (unless [`with_sinks`](Self::with_sinks) gives one per head)
/// and kernel variant are used as they are.
///
/// Every call validates all its arguments before it writes anything; on error nothing is
/// written. [`forward`](Self::forward) and [`backward`](Self::backward) never allocate or panic.
/// With the `rayon` feature (which brings `std`), `par_forward` and `par_backward` run the rows
/// on rayon's current thread pool, with outputs bit-identical to the sequential calls for any
/// number of threads: each row is computed by the same call, on the same inputs, whichever
/// thread runs it. (Rayon's scheduling allocates, and rayon panics if it cannot start the
/// threads of its global pool.)
///
/// [`with_key_lengths`]: Self::with_key_lengths
///
/// ```
/// use dropmax::{AttentionBatch, AttentionShape, Dropout, DropoutKey, SoftmaxDropout};
///
/// // 2 sequences, 2 heads, 3 new queries after 1 cached key: rows of 4 keys, padded to 8.
/// let shape = AttentionShape::new(2, 2, 3, 4).with_row_stride(8);
/// let n = shape.min_len().unwrap();
/// let scores = vec![0.5f32; n];
/// let mut probs = vec![0.0f32; n];
/// let op = SoftmaxDropout::train(0.125, Dropout::new(0.1)?, DropoutKey::new(7, 0))?;
/// let lengths = [4, 3]; // the second sequence has one key less
/// let batch = AttentionBatch::new(op, shape).causal(1).with_key_lengths(&lengths);
/// batch.forward(0, &scores, &mut probs, None)?;
/// // Query 0 of batch entry 1, head 0 (row 6) sees keys 0 and 1 only.
/// assert_eq!(&probs[6 * 8 + 2..6 * 8 + 4], &[0.0, 0.0]);
/// # Ok::<(), dropmax::Error>(())
/// ```
#[derive(Debug)]
pub struct AttentionBatch<'a, K: RowKernel = Best> {
    op: SoftmaxDropout<'a, K>,
    shape: AttentionShape,
    band: Band,
    past_len: usize,
    key_lengths: Option<&'a [usize]>,
    sinks: Option<&'a [f32]>,
}

// Manual impls, as for `SoftmaxDropout`: the kernel is a marker.
impl<K: RowKernel> Clone for AttentionBatch<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: RowKernel> Copy for AttentionBatch<'_, K> {}

impl<'a, K: RowKernel> AttentionBatch<'a, K> {
    /// `op` over tensors of shape `shape`: no band (every key visible), no key lengths.
    pub fn new(op: SoftmaxDropout<'a, K>, shape: AttentionShape) -> Self {
        Self {
            op,
            shape,
            band: Band::Full,
            past_len: 0,
            key_lengths: None,
            sinks: None,
        }
    }

    /// Causal rows: query `i` sees keys `0..=past_len + i`, `past_len` the number of cached keys
    /// before the first query (0 for a square prefill).
    pub fn causal(self, past_len: usize) -> Self {
        Self {
            band: Band::Causal,
            past_len,
            ..self
        }
    }

    /// Causal sliding-window rows of `window` keys: query `i` sees the keys `j` with
    /// `past_len + i - window < j <= past_len + i` (none for a window of 0).
    pub fn sliding_window(self, past_len: usize, window: usize) -> Self {
        Self {
            band: Band::Window(window),
            past_len,
            ..self
        }
    }

    /// Per-batch key lengths (padding masks): in every row of batch entry `b`, the keys
    /// `j >= key_lengths[b]` are masked. One entry per batch entry, each at most `k_len`.
    pub fn with_key_lengths(self, key_lengths: &'a [usize]) -> Self {
        Self {
            key_lengths: Some(key_lengths),
            ..self
        }
    }

    /// Per-head attention sinks ([`SoftmaxDropout::with_sink`]): every row of head `h` has the
    /// sink logit `sinks[h]`, in place of `op`'s own sink. One entry per head.
    pub fn with_sinks(self, sinks: &'a [f32]) -> Self {
        Self {
            sinks: Some(sinks),
            ..self
        }
    }

    /// The tensor shape.
    pub fn shape(&self) -> AttentionShape {
        self.shape
    }

    /// Forward of every row: `y = op(x)` row by row, as the [type docs](Self) define the rows.
    /// `x` and `y` have the layout of the shape; `stats`, when given, receives the statistics of
    /// row `r` at index `r` (dense: one entry per row, no stride).
    ///
    /// # Errors
    /// Nothing is written on error.
    /// - [`Error::LengthMismatch`]: `row_stride < k_len` (`expected` is `k_len`); `x` or `y`
    ///   shorter than [`AttentionShape::min_len`] (`expected: usize::MAX` when that overflows);
    ///   key lengths not one per batch entry, or one above `k_len`; `stats` not one per row; the
    ///   bias of `op` not `k_len` long.
    /// - [`Error::RowTooLong`]: training rows of more than 2^32 keys.
    pub fn forward(
        &self,
        first_row: u64,
        x: &[f32],
        y: &mut [f32],
        stats: Option<&mut [RowStats]>,
    ) -> Result<(), Error> {
        self.validate(&[x.len(), y.len()], stats.as_deref().map(<[_]>::len))?;
        // (Rows of no column go row by row: a matrix of them has no row count.)
        if self.shape.row_stride == self.shape.k_len && self.shape.k_len > 0 {
            return self.forward_blocks(first_row, x, y, stats);
        }
        let mut stats = stats.map(|s| s.iter_mut());
        let mut r = 0;
        for b in 0..self.shape.batch {
            for _ in 0..self.shape.heads {
                for i in 0..self.shape.q_len {
                    let yr = y.get_mut(self.range(r)).ok_or(UNREACHABLE)?;
                    let st = self.forward_one(first_row, r, b, i, x, yr)?;
                    if let Some(slot) = stats.as_mut().and_then(Iterator::next) {
                        *slot = st;
                    }
                    r += 1;
                }
            }
        }
        Ok(())
    }

    /// Backward of every row (contract §4): `dx = dL/dx` from `dy = dL/dY`, row `r` exactly
    /// [`SoftmaxDropout::backward`] with the row id and mask of its forward (the dropout mask is
    /// regenerated from the key). `probs` is the saved `P` tensor (the softmax before dropout,
    /// e.g. the output of an evaluation forward; same layout), or the forward's logits (same
    /// layout) with its statistics, one per row, dense as [`forward`](Self::forward) writes them.
    ///
    /// # Errors
    /// As [`forward`](Self::forward), for `dy`, `dx`, the saved `P` or logits and the statistics;
    /// [`Error::LogitsRequired`] for saved `P` with a soft-cap. Nothing is written on error.
    pub fn backward(
        &self,
        first_row: u64,
        probs: MatrixProbabilities<'_>,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<(), Error> {
        let (p, stats) = split(probs);
        self.validate(&[p.len(), dy.len(), dx.len()], stats.map(<[_]>::len))?;
        self.backward_heads(first_row, p, stats, dy, dx, None)
    }

    /// [`backward`](Self::backward) of rows with attention sinks ([`with_sinks`], or `op`'s own
    /// sink for every head), writing also `dsinks[h] = dL/dsink_h`: the sum over the rows of head
    /// `h` (every batch entry and query) of each row's
    /// [`SoftmaxDropout::backward_sink`] term `-P_sink sum_j P_j G_j`, added in `f64` and rounded
    /// once. `stats` holds the forward's statistics, one per row (dense, as
    /// [`forward`](Self::forward) writes them); `dx` is bit-identical to
    /// [`backward`](Self::backward)'s.
    ///
    /// [`with_sinks`]: Self::with_sinks
    ///
    /// # Errors
    /// As [`backward`](Self::backward), and [`Error::LengthMismatch`] if `stats` does not hold
    /// one entry per row or `dsinks` one per head. Nothing is written on error.
    pub fn backward_sinks(
        &self,
        first_row: u64,
        probs: MatrixProbabilities<'_>,
        stats: &[RowStats],
        dy: &[f32],
        dx: &mut [f32],
        dsinks: &mut [f32],
    ) -> Result<(), Error> {
        let (p, recompute) = split(probs);
        self.validate(&[p.len(), dy.len(), dx.len()], recompute.map(<[_]>::len))?;
        self.validate(&[], Some(stats.len()))?;
        if dsinks.len() != self.shape.heads {
            return Err(Error::LengthMismatch {
                expected: self.shape.heads,
                found: dsinks.len(),
            });
        }
        self.backward_heads(first_row, p, recompute, dy, dx, Some((stats, dsinks)))
    }

    /// Checks the shape, the buffer lengths, the key lengths, the statistics and the operation
    /// itself for rows of `k_len`.
    fn validate(&self, lens: &[usize], stats: Option<usize>) -> Result<(), Error> {
        let s = self.shape;
        if s.row_stride < s.k_len {
            return Err(Error::LengthMismatch {
                expected: s.k_len,
                found: s.row_stride,
            });
        }
        let (Some(rows), Some(min_len)) = (s.rows(), s.min_len()) else {
            return Err(Error::LengthMismatch {
                expected: usize::MAX,
                found: lens.first().copied().unwrap_or(0),
            });
        };
        for &len in lens {
            if len < min_len {
                return Err(Error::LengthMismatch {
                    expected: min_len,
                    found: len,
                });
            }
        }
        if let Some(k) = self.key_lengths {
            if k.len() != s.batch {
                return Err(Error::LengthMismatch {
                    expected: s.batch,
                    found: k.len(),
                });
            }
            if let Some(&l) = k.iter().find(|&&l| l > s.k_len) {
                return Err(Error::LengthMismatch {
                    expected: s.k_len,
                    found: l,
                });
            }
        }
        if let Some(h) = self.sinks
            && h.len() != s.heads
        {
            return Err(Error::LengthMismatch {
                expected: s.heads,
                found: h.len(),
            });
        }
        if let Some(n) = stats
            && n != rows
        {
            return Err(Error::LengthMismatch {
                expected: rows,
                found: n,
            });
        }
        // What depends on the operation (bias length, training row length): a call without rows
        // validates rows of `k_len` and writes nothing. Every row of the tensor then passes the
        // same checks, since the rows' masks carry no per-column part.
        self.op
            .with_mask(Mask::none())
            .forward_rows(0, s.k_len, &[], &mut [], None)
    }

    /// The elements of row `r` (within `min_len` for a validated `r < rows`: then
    /// `r * row_stride + k_len <= min_len`, which `validate` found to fit `usize`).
    fn range(&self, r: usize) -> core::ops::Range<usize> {
        let start = r * self.shape.row_stride;
        start..start + self.shape.k_len
    }

    /// The operation of row `r`: `op` with its head's sink, where sinks are given.
    fn op_of(&self, r: usize) -> SoftmaxDropout<'a, K> {
        let s = self.shape;
        let h = r.checked_div(s.q_len).and_then(|t| t.checked_rem(s.heads));
        match (self.sinks, h) {
            (Some(sinks), Some(h)) => match sinks.get(h) {
                Some(&sink) => self.op.with_sink(sink),
                None => self.op,
            },
            _ => self.op,
        }
    }

    /// The mask of query `i` of batch entry `b`.
    fn mask(&self, b: usize, i: usize) -> Mask<'static> {
        let q = self.past_len.saturating_add(i);
        let m = match self.band {
            Band::Full => Mask::none(),
            Band::Causal => Mask::causal(q),
            Band::Window(w) => Mask::sliding_window(q, w),
        };
        match self.key_lengths.and_then(|k| k.get(b)) {
            Some(&len) => m.with_key_len(len),
            None => m,
        }
    }

    /// [`forward`](Self::forward) (validated) of unpadded rows: each `(b, h)` block of `q_len`
    /// contiguous rows is one matrix call, software-pipelined like
    /// [`SoftmaxDropout::forward_rows`], with the block's first row's mask (row `i` of the block
    /// then has query position `past_len + i`, as [`mask`](Self::mask) gives it) and the same
    /// results bit for bit as the row-by-row loop.
    fn forward_blocks(
        &self,
        first_row: u64,
        x: &[f32],
        y: &mut [f32],
        mut stats: Option<&mut [RowStats]>,
    ) -> Result<(), Error> {
        let (q, k) = (self.shape.q_len, self.shape.k_len);
        let mut r = 0;
        for b in 0..self.shape.batch {
            for _ in 0..self.shape.heads {
                let at = r * k..(r + q) * k;
                let xb = x.get(at.clone()).ok_or(UNREACHABLE)?;
                let yb = y.get_mut(at).ok_or(UNREACHABLE)?;
                let sb = match stats.as_deref_mut() {
                    Some(s) => Some(s.get_mut(r..r + q).ok_or(UNREACHABLE)?),
                    None => None,
                };
                self.op_of(r).with_mask(self.mask(b, 0)).forward_rows(
                    first_row.wrapping_add(r as u64),
                    k,
                    xb,
                    yb,
                    sb,
                )?;
                r += q;
            }
        }
        Ok(())
    }

    /// The backward (validated) head by head: for head `h`, the rows of every batch entry.
    /// Unpadded rows go as one [`SoftmaxDropout::backward_rows`] call per `(b, h)` block of
    /// `q_len` rows, as [`forward_blocks`](Self::forward_blocks) numbers and masks them (the
    /// same results bit for bit as row by row); padded rows one by one. With `sink`, each row's
    /// sink gradient (from its forward statistics) is added into head `h`'s `f64` total, stored
    /// in `dsinks[h]` once the head is done.
    fn backward_heads(
        &self,
        first_row: u64,
        p: &[f32],
        stats: Option<&[RowStats]>,
        dy: &[f32],
        dx: &mut [f32],
        mut sink: Option<(&[RowStats], &mut [f32])>,
    ) -> Result<(), Error> {
        let s = self.shape;
        let (q, k) = (s.q_len, s.k_len);
        let dense = s.row_stride == k && k > 0;
        // No rows: every head's gradient is 0 (and no loop over heads of empty batches).
        if s.rows() == Some(0) {
            if let Some((_, dsinks)) = sink {
                dsinks.fill(0.0);
            }
            return Ok(());
        }
        for h in 0..s.heads {
            let mut total = 0.0f64;
            for b in 0..s.batch {
                let r0 = (b * s.heads + h) * q;
                let op = self.op_of(r0);
                let forward_stats = match &sink {
                    Some((st, _)) => Some(st.get(r0..r0 + q).ok_or(UNREACHABLE)?),
                    None => None,
                };
                let mut add = |i: usize, dot: f32| {
                    if let Some(st) = forward_stats.and_then(|st| st.get(i)) {
                        total += f64::from(op.sink_gradient(*st, dot));
                    }
                };
                if dense {
                    let at = r0 * k..(r0 + q) * k;
                    let pb = p.get(at.clone()).ok_or(UNREACHABLE)?;
                    let probs = match stats {
                        Some(st) => MatrixProbabilities::Recompute {
                            logits: pb,
                            stats: st.get(r0..r0 + q).ok_or(UNREACHABLE)?,
                        },
                        None => MatrixProbabilities::Saved(pb),
                    };
                    let mut i = 0;
                    op.with_mask(self.mask(b, 0)).backward_rows_with(
                        first_row.wrapping_add(r0 as u64),
                        k,
                        probs,
                        dy.get(at.clone()).ok_or(UNREACHABLE)?,
                        dx.get_mut(at).ok_or(UNREACHABLE)?,
                        |dot| {
                            add(i, dot);
                            i += 1;
                        },
                    )?;
                } else {
                    for i in 0..q {
                        let dxr = dx.get_mut(self.range(r0 + i)).ok_or(UNREACHABLE)?;
                        let dot = self.backward_one(first_row, r0 + i, b, i, p, stats, dy, dxr)?;
                        add(i, dot);
                    }
                }
            }
            if let Some((_, dsinks)) = sink.as_mut()
                && let Some(d) = dsinks.get_mut(h)
            {
                *d = total as f32;
            }
        }
        Ok(())
    }

    /// Forward of row `r` (batch entry `b`, query `i`) into `yr`.
    fn forward_one(
        &self,
        first_row: u64,
        r: usize,
        b: usize,
        i: usize,
        x: &[f32],
        yr: &mut [f32],
    ) -> Result<RowStats, Error> {
        let xr = x.get(self.range(r)).ok_or(UNREACHABLE)?;
        self.op_of(r)
            .with_mask(self.mask(b, i))
            .forward(first_row.wrapping_add(r as u64), xr, yr)
    }

    /// Backward of row `r` (batch entry `b`, query `i`) into `dxr`, returning the row's
    /// `sum_j P_j G_j`.
    #[allow(clippy::too_many_arguments)]
    fn backward_one(
        &self,
        first_row: u64,
        r: usize,
        b: usize,
        i: usize,
        p: &[f32],
        stats: Option<&[RowStats]>,
        dy: &[f32],
        dxr: &mut [f32],
    ) -> Result<f32, Error> {
        let range = self.range(r);
        let pr = p.get(range.clone()).ok_or(UNREACHABLE)?;
        let dyr = dy.get(range).ok_or(UNREACHABLE)?;
        let probs = match stats {
            Some(s) => Probabilities::Recompute {
                logits: pr,
                stats: *s.get(r).ok_or(UNREACHABLE)?,
            },
            None => Probabilities::Saved(pr),
        };
        self.op_of(r).with_mask(self.mask(b, i)).backward_dot(
            first_row.wrapping_add(r as u64),
            probs,
            dyr,
            dxr,
        )
    }
}

/// Returned where validation has already excluded the case (never in practice): keeps the row
/// loops free of panics without a second copy of the checks.
const UNREACHABLE: Error = Error::LengthMismatch {
    expected: 0,
    found: 0,
};

/// The saved `P` or logits tensor, and the statistics when recomputing.
fn split(probs: MatrixProbabilities<'_>) -> (&[f32], Option<&[RowStats]>) {
    match probs {
        MatrixProbabilities::Saved(p) => (p, None),
        MatrixProbabilities::Recompute { logits, stats } => (logits, Some(stats)),
    }
}

#[cfg(feature = "rayon")]
mod par {
    use rayon::prelude::*;

    use super::{AttentionBatch, UNREACHABLE, split};
    use crate::error::Error;
    use crate::kernel::{RowKernel, RowStats};
    use crate::softmax::MatrixProbabilities;

    /// Rows per rayon task at least: about 16K elements, so that short rows are not scheduled
    /// one by one.
    fn min_rows(k_len: usize) -> usize {
        (16384 / k_len.max(1)).max(1)
    }

    impl<K: RowKernel + Sync> AttentionBatch<'_, K> {
        /// [`forward`](Self::forward) with the rows spread over rayon's current thread pool
        /// (feature `rayon`, which brings `std`). Bit-identical to [`forward`](Self::forward) for
        /// any number of threads.
        ///
        /// # Errors
        /// As [`forward`](Self::forward); nothing is written on error.
        pub fn par_forward(
            &self,
            first_row: u64,
            x: &[f32],
            y: &mut [f32],
            stats: Option<&mut [RowStats]>,
        ) -> Result<(), Error> {
            let s = self.shape;
            if s.k_len == 0 {
                // Empty rows: only statistics, and no chunks to split `y` into.
                return self.forward(first_row, x, y, stats);
            }
            self.validate(&[x.len(), y.len()], stats.as_deref().map(<[_]>::len))?;
            let min_len = s.min_len().ok_or(UNREACHABLE)?;
            let y = y.get_mut(..min_len).ok_or(UNREACHABLE)?;
            let q_len = s.q_len;
            // At most `rows` when `batch > 0`; unused when `batch = 0` (no rows, no chunks),
            // where `heads * q_len` alone may overflow.
            let bh_rows = s.heads.saturating_mul(q_len);
            let row = |r: usize, yr: &mut [f32]| {
                let (b, i) = (r / bh_rows, r % q_len);
                let yr = yr.get_mut(..s.k_len).ok_or(UNREACHABLE)?;
                self.forward_one(first_row, r, b, i, x, yr)
            };
            // `min_len = (rows - 1) * row_stride + k_len` with `0 < k_len <= row_stride`: exactly
            // one chunk per row (the last one unpadded). Without rows there are no chunks, so the
            // divisions below never see a zero.
            let chunks = y
                .par_chunks_mut(s.row_stride)
                .with_min_len(min_rows(s.k_len));
            match stats {
                Some(stats) => {
                    chunks
                        .zip(stats.par_iter_mut())
                        .enumerate()
                        .try_for_each(|(r, (yr, slot))| {
                            *slot = row(r, yr)?;
                            Ok(())
                        })
                }
                None => chunks
                    .enumerate()
                    .try_for_each(|(r, yr)| row(r, yr).map(|_| ())),
            }
        }

        /// [`backward`](Self::backward) with the rows spread over rayon's current thread pool
        /// (feature `rayon`, which brings `std`). Bit-identical to
        /// [`backward`](Self::backward) for any number of threads.
        ///
        /// # Errors
        /// As [`backward`](Self::backward); nothing is written on error.
        pub fn par_backward(
            &self,
            first_row: u64,
            probs: MatrixProbabilities<'_>,
            dy: &[f32],
            dx: &mut [f32],
        ) -> Result<(), Error> {
            let s = self.shape;
            if s.k_len == 0 {
                return self.backward(first_row, probs, dy, dx);
            }
            let (p, stats) = split(probs);
            self.validate(&[p.len(), dy.len(), dx.len()], stats.map(<[_]>::len))?;
            let min_len = s.min_len().ok_or(UNREACHABLE)?;
            let dx = dx.get_mut(..min_len).ok_or(UNREACHABLE)?;
            let q_len = s.q_len;
            // As in `par_forward`: unused when `heads * q_len` alone overflows.
            let bh_rows = s.heads.saturating_mul(q_len);
            let chunks = dx
                .par_chunks_mut(s.row_stride)
                .with_min_len(min_rows(s.k_len));
            chunks.enumerate().try_for_each(|(r, dxr)| {
                let (b, i) = (r / bh_rows, r % q_len);
                let dxr = dxr.get_mut(..s.k_len).ok_or(UNREACHABLE)?;
                self.backward_one(first_row, r, b, i, p, stats, dy, dxr)
                    .map(|_| ())
            })
        }
    }
}
