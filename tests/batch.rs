//! The attention batch API ([`AttentionBatch`]) against the row API it is defined by.
//!
//! Every row `r = (b * heads + h) * q_len + i` of a batch call must be bit-identical to
//! `op.with_mask(mask).forward(first_row + r, x_row, y_row)` (and likewise `backward`) with the
//! mask written out here from the documented formula: `Mask::causal(past_len + i)` (or the
//! sliding window, or none) `.with_key_len(key_lengths[b])`. Also: the same bits as
//! `forward_rows` per dense `(b, h)` block; the padding columns between `k_len` and the row
//! stride and anything after the last row are never written (sentinels) nor read (NaN there
//! would turn a row NaN); errors write nothing; KV-cache decoding; no allocation; and with the
//! `rayon` feature, `par_forward`/`par_backward` bit-identical to the sequential calls for 1, 2,
//! 3 and 8 threads.

mod common;

use common::{bits, stats_bits};

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dropmax::{
    AttentionBatch, AttentionShape, Best, Dropout, DropoutKey, Error, Mask, MatrixProbabilities,
    Mode, Probabilities, RowKernel, RowStats, Scalar, SoftmaxDropout,
};

/// Written into outputs before a call: must survive wherever the call may not write.
const OUT_SENTINEL: u32 = 0x7FC0_DEAD;
/// Written into the padding of inputs: a NaN, so that reading it would change the row.
const IN_SENTINEL: u32 = 0x7FC0_BEEF;
/// Elements after the last row of every buffer.
const TAIL: usize = 5;

/// Counting allocator: counts allocations made on a thread while that thread has counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(Cell::get)
}

/// The band of a test configuration.
#[derive(Clone, Copy, Debug)]
enum Band {
    Full,
    Causal(usize),
    Window(usize, usize),
}

/// One configuration of the batch API.
#[derive(Clone, Debug)]
struct Case {
    shape: AttentionShape,
    band: Band,
    key_lengths: Option<Vec<usize>>,
    mode: Mode,
    bias: Option<Vec<f32>>,
    first_row: u64,
}

impl Case {
    fn rows(&self) -> usize {
        self.shape.rows().unwrap()
    }
    /// Buffer length: every row plus a tail.
    fn len(&self) -> usize {
        self.shape.min_len().unwrap() + TAIL
    }
    fn op<K: RowKernel>(&self) -> SoftmaxDropout<'_, K> {
        let op = SoftmaxDropout::new(0.375, self.mode).unwrap();
        let op = match &self.bias {
            Some(b) => op.with_bias(b),
            None => op,
        };
        op.with_kernel::<K>()
    }
    fn batch<K: RowKernel>(&self) -> AttentionBatch<'_, K> {
        let batch = AttentionBatch::new(self.op::<K>(), self.shape);
        let batch = match self.band {
            Band::Full => batch,
            Band::Causal(past) => batch.causal(past),
            Band::Window(past, w) => batch.sliding_window(past, w),
        };
        match &self.key_lengths {
            Some(k) => batch.with_key_lengths(k),
            None => batch,
        }
    }
    /// The documented mask of query `i` of batch entry `b`.
    fn mask(&self, b: usize, i: usize) -> Mask<'static> {
        let m = match self.band {
            Band::Full => Mask::none(),
            Band::Causal(past) => Mask::causal(past + i),
            Band::Window(past, w) => Mask::sliding_window(past + i, w),
        };
        match &self.key_lengths {
            Some(k) => m.with_key_len(k[b]),
            None => m,
        }
    }
    /// `(r, b, h, i)` for every row, in row order.
    fn rows_bhi(&self) -> Vec<(usize, usize, usize, usize)> {
        let s = self.shape;
        let mut v = Vec::new();
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.q_len {
                    v.push(((b * s.heads + h) * s.q_len + i, b, h, i));
                }
            }
        }
        v
    }
    /// Element range of row `r`.
    fn range(&self, r: usize) -> std::ops::Range<usize> {
        r * self.shape.row_stride..r * self.shape.row_stride + self.shape.k_len
    }
    /// Whether element `e` of a buffer lies in some row.
    fn in_row(&self, e: usize) -> bool {
        let s = self.shape;
        e < s.min_len().unwrap() && e % s.row_stride.max(1) < s.k_len
    }
    /// A buffer with uniform values in `[lo, hi)` in the rows and `IN_SENTINEL` elsewhere.
    fn input(&self, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
        let mut r = common::rng(seed);
        (0..self.len())
            .map(|e| {
                let v = common::uniform(&mut r, lo, hi);
                if self.in_row(e) {
                    v
                } else {
                    f32::from_bits(IN_SENTINEL)
                }
            })
            .collect()
    }
}

fn out_buffer(len: usize) -> Vec<f32> {
    vec![f32::from_bits(OUT_SENTINEL); len]
}

/// Checks that every element outside the rows still holds `OUT_SENTINEL`.
fn assert_padding_untouched(case: &Case, out: &[f32], what: &str) {
    for (e, v) in out.iter().enumerate() {
        if !case.in_row(e) {
            assert_eq!(
                v.to_bits(),
                OUT_SENTINEL,
                "{what}: element {e} outside the rows was written ({case:?})"
            );
        }
    }
}

fn train(p: f64, seed: u64, offset: u64) -> Mode {
    Mode::Train {
        dropout: Dropout::new(p).unwrap(),
        key: DropoutKey::new(seed, offset),
    }
}

/// A spread of configurations: padded and dense strides, every band, ragged key lengths (with 0
/// and `k_len`), evaluation and training, with and without a bias, decoding shapes.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let shapes = [
        AttentionShape::new(2, 3, 5, 37).with_row_stride(40),
        AttentionShape::new(1, 2, 4, 4),
        AttentionShape::new(3, 2, 1, 300).with_row_stride(301),
        AttentionShape::new(2, 2, 7, 64),
        AttentionShape::new(2, 1, 9, 131).with_row_stride(160),
        AttentionShape::new(1, 1, 3, 4500).with_row_stride(4608),
    ];
    let mut rng = common::rng(99);
    for (n, &shape) in shapes.iter().enumerate() {
        let k = shape.k_len;
        let q = shape.q_len;
        let past = k.saturating_sub(q);
        let bands = [
            Band::Full,
            Band::Causal(past),
            Band::Causal(0),
            Band::Window(past, 3),
            Band::Window(past, 0),
        ];
        let ragged: Vec<usize> = (0..shape.batch)
            .map(|b| match b % 3 {
                0 => k,
                1 => (rng.next_u32_below(k as u32 + 1)) as usize,
                _ => 0,
            })
            .collect();
        let modes = [
            Mode::Eval,
            train(0.1, 7 + n as u64, 3),
            train(0.5, 11, u64::MAX - 2),
        ];
        for (bi, &band) in bands.iter().enumerate() {
            for (mi, &mode) in modes.iter().enumerate() {
                let key_lengths = ((bi + mi) % 2 == 1).then(|| ragged.clone());
                let bias = (mi == 1).then(|| {
                    let mut b = common::row(&mut rng, k, -1.0, 1.0);
                    if k > 2 {
                        b[k / 2] = f32::NEG_INFINITY;
                    }
                    b
                });
                cases.push(Case {
                    shape,
                    band,
                    key_lengths,
                    mode,
                    bias,
                    first_row: [0, 1000, u64::MAX - 3][(bi + mi) % 3],
                });
            }
        }
    }
    cases
}

trait BelowExt {
    fn next_u32_below(&mut self, n: u32) -> u32;
}
impl BelowExt for rand_pcg::Pcg64Mcg {
    fn next_u32_below(&mut self, n: u32) -> u32 {
        use rand_core::Rng;
        self.next_u32() % n
    }
}

/// The forward by the formula: one `forward` call per row. Returns outputs and statistics.
fn forward_by_rows<K: RowKernel>(case: &Case, x: &[f32]) -> (Vec<f32>, Vec<RowStats>) {
    let mut y = out_buffer(case.len());
    let mut stats = vec![RowStats::EMPTY; case.rows()];
    for (r, b, _h, i) in case.rows_bhi() {
        let range = case.range(r);
        stats[r] = case
            .op::<K>()
            .with_mask(case.mask(b, i))
            .forward(
                case.first_row.wrapping_add(r as u64),
                &x[range.clone()],
                &mut y[range],
            )
            .unwrap();
    }
    (y, stats)
}

/// The backward by the formula: one `backward` call per row.
fn backward_by_rows<K: RowKernel>(
    case: &Case,
    p: &[f32],
    stats: Option<&[RowStats]>,
    dy: &[f32],
) -> Vec<f32> {
    let mut dx = out_buffer(case.len());
    for (r, b, _h, i) in case.rows_bhi() {
        let range = case.range(r);
        let probs = match stats {
            Some(s) => Probabilities::Recompute {
                logits: &p[range.clone()],
                stats: s[r],
            },
            None => Probabilities::Saved(&p[range.clone()]),
        };
        case.op::<K>()
            .with_mask(case.mask(b, i))
            .backward(
                case.first_row.wrapping_add(r as u64),
                probs,
                &dy[range.clone()],
                &mut dx[range],
            )
            .unwrap();
    }
    dx
}

fn check_forward<K: RowKernel>(case: &Case) {
    let x = case.input(1, -6.0, 6.0);
    let (y_ref, stats_ref) = forward_by_rows::<K>(case, &x);
    let mut y = out_buffer(case.len());
    let mut stats = vec![RowStats::EMPTY; case.rows()];
    case.batch::<K>()
        .forward(case.first_row, &x, &mut y, Some(&mut stats))
        .unwrap();
    assert_eq!(bits(&y), bits(&y_ref), "forward ({}) {case:?}", K::NAME);
    assert_eq!(stats_bits(&stats), stats_bits(&stats_ref), "{case:?}");
    assert!(y.iter().all(|v| !v.is_nan() || v.to_bits() == OUT_SENTINEL));
    assert_padding_untouched(case, &y, "forward");
    // Without statistics: the same outputs.
    let mut y2 = out_buffer(case.len());
    case.batch::<K>()
        .forward(case.first_row, &x, &mut y2, None)
        .unwrap();
    assert_eq!(bits(&y2), bits(&y_ref));
}

fn check_backward<K: RowKernel>(case: &Case) {
    let x = case.input(2, -6.0, 6.0);
    let dy = case.input(3, -1.0, 1.0);
    // Saved P: the softmax before dropout, i.e. the evaluation forward of the same rows.
    let eval = Case {
        mode: Mode::Eval,
        ..case.clone()
    };
    let (p, _) = forward_by_rows::<K>(&eval, &x);
    let p: Vec<f32> = p
        .iter()
        .map(|&v| {
            if v.to_bits() == OUT_SENTINEL {
                f32::from_bits(IN_SENTINEL)
            } else {
                v
            }
        })
        .collect();
    let (_, stats) = forward_by_rows::<K>(case, &x);

    let dx_ref = backward_by_rows::<K>(case, &p, None, &dy);
    let mut dx = out_buffer(case.len());
    case.batch::<K>()
        .backward(case.first_row, MatrixProbabilities::Saved(&p), &dy, &mut dx)
        .unwrap();
    assert_eq!(
        bits(&dx),
        bits(&dx_ref),
        "backward saved ({}) {case:?}",
        K::NAME
    );
    assert_padding_untouched(case, &dx, "backward saved");

    let dx_ref = backward_by_rows::<K>(case, &x, Some(&stats), &dy);
    let mut dx = out_buffer(case.len());
    let probs = MatrixProbabilities::Recompute {
        logits: &x,
        stats: &stats,
    };
    case.batch::<K>()
        .backward(case.first_row, probs, &dy, &mut dx)
        .unwrap();
    assert_eq!(bits(&dx), bits(&dx_ref), "backward recompute {case:?}");
    assert_padding_untouched(case, &dx, "backward recompute");
}

#[test]
fn forward_is_the_row_formula() {
    for case in cases() {
        check_forward::<Best>(&case);
        check_forward::<Scalar>(&case);
    }
}

#[test]
fn backward_is_the_row_formula() {
    for case in cases() {
        check_backward::<Best>(&case);
        check_backward::<Scalar>(&case);
    }
}

/// The row ids and query positions are those of `forward_rows` called once per dense `(b, h)`
/// block with `first_row + (b * heads + h) * q_len` and `Mask::causal(past_len)`.
#[test]
fn forward_equals_forward_rows_per_block() {
    for case in cases() {
        let Band::Causal(past) = case.band else {
            continue;
        };
        let s = case.shape;
        let x = case.input(4, -6.0, 6.0);
        let mut y = out_buffer(case.len());
        let mut stats = vec![RowStats::EMPTY; case.rows()];
        case.batch::<Best>()
            .forward(case.first_row, &x, &mut y, Some(&mut stats))
            .unwrap();
        for b in 0..s.batch {
            for h in 0..s.heads {
                let r0 = (b * s.heads + h) * s.q_len;
                let xb: Vec<f32> = (0..s.q_len)
                    .flat_map(|i| x[case.range(r0 + i)].to_vec())
                    .collect();
                let mut yb = vec![0.0; xb.len()];
                let mut sb = vec![RowStats::EMPTY; s.q_len];
                let mask = match &case.key_lengths {
                    Some(k) => Mask::causal(past).with_key_len(k[b]),
                    None => Mask::causal(past),
                };
                case.op::<Best>()
                    .with_mask(mask)
                    .forward_rows(
                        case.first_row.wrapping_add(r0 as u64),
                        s.k_len,
                        &xb,
                        &mut yb,
                        Some(&mut sb),
                    )
                    .unwrap();
                for i in 0..s.q_len {
                    assert_eq!(
                        bits(&y[case.range(r0 + i)]),
                        bits(&yb[i * s.k_len..(i + 1) * s.k_len]),
                        "block ({b}, {h}) row {i} {case:?}"
                    );
                }
                assert_eq!(
                    stats_bits(&stats[r0..r0 + s.q_len]),
                    stats_bits(&sb),
                    "block ({b}, {h}) {case:?}"
                );
            }
        }
    }
}

/// Key lengths and the causal band really mask: zeros there, a distribution elsewhere.
#[test]
fn masks_are_applied() {
    let shape = AttentionShape::new(3, 2, 4, 10).with_row_stride(12);
    let lengths = [10, 6, 0];
    let case = Case {
        shape,
        band: Band::Causal(6),
        key_lengths: Some(lengths.to_vec()),
        mode: Mode::Eval,
        bias: None,
        first_row: 0,
    };
    let x = case.input(5, -2.0, 2.0);
    let mut y = out_buffer(case.len());
    let mut stats = vec![RowStats::EMPTY; case.rows()];
    case.batch::<Best>()
        .forward(0, &x, &mut y, Some(&mut stats))
        .unwrap();
    for (r, b, _h, i) in case.rows_bhi() {
        let row = &y[case.range(r)];
        let visible = (6 + i + 1).min(lengths[b]);
        assert!(row[visible..].iter().all(|&v| v == 0.0), "row {r}");
        if visible == 0 {
            assert_eq!(stats[r].lse(), f32::NEG_INFINITY);
            assert!(row.iter().all(|&v| v == 0.0));
        } else {
            assert!(row[..visible].iter().all(|&v| v > 0.0), "row {r}");
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {r}: {sum}");
        }
    }
}

/// A mask set on the operation is replaced by the rows' masks.
#[test]
fn the_ops_own_mask_is_replaced() {
    let shape = AttentionShape::new(2, 2, 3, 16).with_row_stride(20);
    let x: Vec<f32> = (0..shape.min_len().unwrap())
        .map(|e| (e % 7) as f32)
        .collect();
    let op = SoftmaxDropout::eval(0.5).unwrap();
    let mut y1 = vec![0.0; x.len()];
    let mut y2 = vec![0.0; x.len()];
    AttentionBatch::new(op, shape)
        .causal(2)
        .forward(0, &x, &mut y1, None)
        .unwrap();
    AttentionBatch::new(op.with_mask(Mask::key_len(1)), shape)
        .causal(2)
        .forward(0, &x, &mut y2, None)
        .unwrap();
    assert_eq!(bits(&y1), bits(&y2));
}

/// KV-cache decoding: one query per head after `k_len - 1` cached keys, ragged lengths. The row
/// is the formula's row, and in evaluation it equals the last query row of the full prefill.
#[test]
fn kv_cache_decoding() {
    for k_len in [1usize, 5, 64, 300, 1025] {
        let (batch, heads) = (3, 4);
        let lengths = vec![k_len, k_len / 2, k_len.saturating_sub(1)];
        for mode in [Mode::Eval, train(0.1, 5, 0)] {
            let case = Case {
                shape: AttentionShape::new(batch, heads, 1, k_len).with_row_stride(k_len + 3),
                band: Band::Causal(k_len - 1),
                key_lengths: Some(lengths.clone()),
                mode,
                bias: None,
                first_row: 77,
            };
            check_forward::<Best>(&case);
            check_backward::<Best>(&case);
            if mode != Mode::Eval {
                continue;
            }
            // Prefill of the same keys: q_len = k_len, past_len = 0; its last query row sees
            // the same keys as the decoding row.
            let prefill = Case {
                shape: AttentionShape::new(batch, heads, k_len, k_len),
                band: Band::Causal(0),
                ..case.clone()
            };
            let x = case.input(6, -4.0, 4.0);
            let mut xp = vec![0.0; prefill.len()];
            for r in 0..batch * heads {
                let last = prefill.range(r * k_len + k_len - 1);
                xp[last].copy_from_slice(&x[case.range(r)]);
            }
            let mut y = out_buffer(case.len());
            let mut yp = out_buffer(prefill.len());
            case.batch::<Best>().forward(0, &x, &mut y, None).unwrap();
            prefill
                .batch::<Best>()
                .forward(0, &xp, &mut yp, None)
                .unwrap();
            for r in 0..batch * heads {
                assert_eq!(
                    bits(&y[case.range(r)]),
                    bits(&yp[prefill.range(r * k_len + k_len - 1)]),
                    "k_len {k_len}, row {r}"
                );
                let b = r / heads;
                assert!(y[case.range(r)][lengths[b]..].iter().all(|&v| v == 0.0));
            }
        }
    }
}

/// Shapes without rows or with empty rows.
#[test]
fn empty_shapes() {
    let op = SoftmaxDropout::train(1.0, Dropout::new(0.3).unwrap(), DropoutKey::new(1, 2)).unwrap();
    for shape in [
        AttentionShape::new(0, 4, 4, 8),
        AttentionShape::new(2, 0, 4, 8),
        AttentionShape::new(2, 4, 0, 8),
        AttentionShape::new(2, 3, 4, 0),
        AttentionShape::new(2, 3, 4, 0).with_row_stride(3),
    ] {
        let rows = shape.rows().unwrap();
        let len = shape.min_len().unwrap();
        let x = vec![1.0; len];
        let mut y = vec![f32::from_bits(OUT_SENTINEL); len];
        let mut stats = vec![RowStats { max: 1.0, sum: 1.0 }; rows];
        let batch = AttentionBatch::new(op, shape).causal(0);
        batch.forward(0, &x, &mut y, Some(&mut stats)).unwrap();
        assert!(
            stats
                .iter()
                .all(|s| s.max == f32::NEG_INFINITY && s.sum == 0.0)
        );
        assert!(y.iter().all(|v| v.to_bits() == OUT_SENTINEL));
        let mut dx = y.clone();
        batch
            .backward(0, MatrixProbabilities::Saved(&x), &x, &mut dx)
            .unwrap();
        assert!(dx.iter().all(|v| v.to_bits() == OUT_SENTINEL));
    }
    assert_eq!(AttentionShape::new(0, 4, 4, 8).min_len(), Some(0));
    assert_eq!(AttentionShape::new(2, 3, 4, 0).min_len(), Some(0));
    assert_eq!(
        AttentionShape::new(2, 3, 4, 0).with_row_stride(3).min_len(),
        Some(69)
    );
}

/// Every invalid call returns its error and writes nothing.
#[test]
fn errors_write_nothing() {
    let shape = AttentionShape::new(2, 2, 3, 8).with_row_stride(10);
    let rows = shape.rows().unwrap();
    let len = shape.min_len().unwrap();
    assert_eq!((rows, len), (12, 118));
    let x = vec![0.5f32; len];
    let bias = [0.0f32; 8];
    let short_bias = [0.0f32; 7];
    let lengths = [8, 5];
    let op = SoftmaxDropout::train(1.0, Dropout::new(0.2).unwrap(), DropoutKey::new(3, 4)).unwrap();
    let mm = |expected, found| Error::LengthMismatch { expected, found };

    // (batch, x len, y len, stats len, expected error)
    let too_long_keys = [8, 9];
    let one_key = [8];
    let three_keys = [8, 8, 8];
    let cases: Vec<(AttentionBatch<'_>, usize, usize, usize, Error)> = vec![
        (
            AttentionBatch::new(op, shape.with_row_stride(7)),
            len,
            len,
            rows,
            mm(8, 7),
        ),
        (
            AttentionBatch::new(op, shape),
            len - 1,
            len,
            rows,
            mm(len, len - 1),
        ),
        (
            AttentionBatch::new(op, shape),
            len,
            len - 1,
            rows,
            mm(len, len - 1),
        ),
        (
            AttentionBatch::new(op, shape),
            len,
            len,
            rows - 1,
            mm(rows, rows - 1),
        ),
        (
            AttentionBatch::new(op, shape),
            len,
            len,
            rows + 1,
            mm(rows, rows + 1),
        ),
        (
            AttentionBatch::new(op, shape).with_key_lengths(&one_key),
            len,
            len,
            rows,
            mm(2, 1),
        ),
        (
            AttentionBatch::new(op, shape).with_key_lengths(&three_keys),
            len,
            len,
            rows,
            mm(2, 3),
        ),
        (
            AttentionBatch::new(op, shape).with_key_lengths(&too_long_keys),
            len,
            len,
            rows,
            mm(8, 9),
        ),
        (
            AttentionBatch::new(op.with_bias(&short_bias), shape).with_key_lengths(&lengths),
            len,
            len,
            rows,
            mm(8, 7),
        ),
        (
            AttentionBatch::new(op, AttentionShape::new(usize::MAX, 2, 1, 8)),
            len,
            len,
            rows,
            mm(usize::MAX, len),
        ),
        // `batch * heads` overflows (2^40 * 2^30 where `usize` has 64 bits, 2^20 * 2^15 where
        // it has 32) though each fits.
        (
            AttentionBatch::new(
                op,
                AttentionShape::new(
                    1 << (usize::BITS * 5 / 8),
                    1 << (usize::BITS * 15 / 32),
                    1,
                    1,
                ),
            ),
            len,
            len,
            rows,
            mm(usize::MAX, len),
        ),
    ];
    for (batch, x_len, y_len, s_len, expected) in cases {
        let mut y = vec![f32::from_bits(OUT_SENTINEL); y_len];
        let mut stats = vec![RowStats { max: 7.0, sum: 7.0 }; s_len];
        let untouched = |y: &[f32], stats: &[RowStats]| {
            y.iter().all(|v| v.to_bits() == OUT_SENTINEL)
                && stats.iter().all(|s| s.max == 7.0 && s.sum == 7.0)
        };
        assert_eq!(
            batch.forward(0, &x[..x_len], &mut y, Some(&mut stats)),
            Err(expected),
            "{batch:?}"
        );
        assert!(untouched(&y, &stats));
        // The backward checks the same things (statistics only when recomputing).
        let probs = MatrixProbabilities::Recompute {
            logits: &x[..x_len],
            stats: &stats,
        };
        let mut dx = vec![f32::from_bits(OUT_SENTINEL); y_len];
        assert_eq!(
            batch.backward(0, probs, &x[..x_len.min(y_len)], &mut dx),
            Err(expected),
            "{batch:?}"
        );
        assert!(untouched(&dx, &[]));
        #[cfg(feature = "rayon")]
        {
            assert_eq!(
                batch.par_forward(0, &x[..x_len], &mut y, Some(&mut stats)),
                Err(expected)
            );
            assert!(untouched(&y, &stats));
            let probs = MatrixProbabilities::Recompute {
                logits: &x[..x_len],
                stats: &stats,
            };
            assert_eq!(
                batch.par_backward(0, probs, &x[..x_len.min(y_len)], &mut dx),
                Err(expected)
            );
            assert!(untouched(&dx, &[]));
        }
    }

    // Backward-only length checks: dy, saved P.
    let batch = AttentionBatch::new(op.with_bias(&bias), shape);
    let mut dx = vec![f32::from_bits(OUT_SENTINEL); len];
    for (p_len, dy_len) in [(len - 1, len), (len, len - 1)] {
        assert_eq!(
            batch.backward(
                0,
                MatrixProbabilities::Saved(&x[..p_len]),
                &x[..dy_len],
                &mut dx
            ),
            Err(mm(len, len - 1))
        );
        assert!(dx.iter().all(|v| v.to_bits() == OUT_SENTINEL));
    }

    // A training row longer than 2^32 keys (no rows, so no buffer is needed to see it).
    #[cfg(target_pointer_width = "64")]
    {
        let huge = AttentionShape::new(0, 1, 1, 1 << 33);
        assert_eq!(
            AttentionBatch::new(op, huge).forward(0, &[], &mut [], None),
            Err(Error::RowTooLong)
        );
        let eval = SoftmaxDropout::eval(1.0).unwrap();
        assert_eq!(
            AttentionBatch::new(eval, huge).forward(0, &[], &mut [], None),
            Ok(())
        );
    }
}

/// Contract §5: the sequential calls never allocate.
#[test]
fn no_allocation() {
    for case in cases().iter().step_by(5) {
        let x = case.input(8, -3.0, 3.0);
        let dy = case.input(9, -1.0, 1.0);
        let mut y = out_buffer(case.len());
        let mut dx = out_buffer(case.len());
        let mut stats = vec![RowStats::EMPTY; case.rows()];
        let short = vec![0.0f32; 1];
        let batch = case.batch::<Best>();
        let n = allocations(|| {
            batch
                .forward(case.first_row, &x, &mut y, Some(&mut stats))
                .unwrap();
            batch
                .backward(case.first_row, MatrixProbabilities::Saved(&y), &dy, &mut dx)
                .unwrap();
            let probs = MatrixProbabilities::Recompute {
                logits: &x,
                stats: &stats,
            };
            batch.backward(case.first_row, probs, &dy, &mut dx).unwrap();
            let _ = batch.forward(case.first_row, &short, &mut y, None);
        });
        assert_eq!(n, 0, "{case:?}");
    }
    // The counter counts.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
}

/// The parallel calls are bit-identical to the sequential ones for any number of threads.
#[cfg(feature = "rayon")]
#[test]
fn parallel_is_bit_identical_for_any_thread_count() {
    let mut cases = cases();
    // A larger tensor, so that every thread gets rows.
    cases.push(Case {
        shape: AttentionShape::new(2, 4, 64, 1000).with_row_stride(1024),
        band: Band::Causal(936),
        key_lengths: Some(vec![1000, 517]),
        mode: train(0.1, 42, 9),
        bias: None,
        first_row: 5,
    });
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2, 3, 8]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            (t, pool)
        })
        .collect();
    for case in &cases {
        let x = case.input(10, -6.0, 6.0);
        let dy = case.input(11, -1.0, 1.0);
        let batch = case.batch::<Best>();
        let mut y = out_buffer(case.len());
        let mut stats = vec![RowStats::EMPTY; case.rows()];
        batch
            .forward(case.first_row, &x, &mut y, Some(&mut stats))
            .unwrap();
        let mut dx_saved = out_buffer(case.len());
        batch
            .backward(
                case.first_row,
                MatrixProbabilities::Saved(&y),
                &dy,
                &mut dx_saved,
            )
            .unwrap();
        let recompute = MatrixProbabilities::Recompute {
            logits: &x,
            stats: &stats,
        };
        let mut dx_re = out_buffer(case.len());
        batch
            .backward(case.first_row, recompute, &dy, &mut dx_re)
            .unwrap();

        for (t, pool) in &pools {
            let mut py = out_buffer(case.len());
            let mut pstats = vec![RowStats::EMPTY; case.rows()];
            pool.install(|| batch.par_forward(case.first_row, &x, &mut py, Some(&mut pstats)))
                .unwrap();
            assert_eq!(bits(&py), bits(&y), "{t} threads {case:?}");
            assert_eq!(stats_bits(&pstats), stats_bits(&stats), "{t} threads");
            assert_padding_untouched(case, &py, "par_forward");
            let mut py2 = out_buffer(case.len());
            pool.install(|| batch.par_forward(case.first_row, &x, &mut py2, None))
                .unwrap();
            assert_eq!(bits(&py2), bits(&y), "{t} threads, no stats");

            let mut pdx = out_buffer(case.len());
            pool.install(|| {
                batch.par_backward(
                    case.first_row,
                    MatrixProbabilities::Saved(&y),
                    &dy,
                    &mut pdx,
                )
            })
            .unwrap();
            assert_eq!(bits(&pdx), bits(&dx_saved), "{t} threads, backward saved");
            assert_padding_untouched(case, &pdx, "par_backward");
            let mut pdx = out_buffer(case.len());
            pool.install(|| batch.par_backward(case.first_row, recompute, &dy, &mut pdx))
                .unwrap();
            assert_eq!(bits(&pdx), bits(&dx_re), "{t} threads, backward recompute");
        }
    }
}
