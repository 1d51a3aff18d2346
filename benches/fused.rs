//! Throughput of the fused scale-mask-softmax-dropout kernel against its baselines.
//!
//! Every function runs over one whole row-major matrix of `rows x cols` logits with
//! [`SoftmaxDropout::forward_rows`] (out of place, `x -> y`, row statistics written to a buffer),
//! and criterion reports elements per second with `Throughput::Elements(rows * cols)`; divide to
//! get ns per element. Data: deterministic uniform logits in `[-4, 4)` (`Pcg64Mcg`), scale `1/8`,
//! dropout `p = 0.1`.
//!
//! Groups, named `ROWSxCOLS`: one per row length `cols` in {64, 256, 1024, 4096, 16384} with
//! `rows` chosen so that `x` is 1 MiB (`y` another 1 MiB, so about 2 MiB are touched: the L2 of
//! a recent x86 core), plus `8192x1024` (32 MiB each for `x` and `y`: out of L1/L2, though it may
//! still fit a large shared L3). In each group:
//!
//! - `eval_full`: evaluation, no mask;
//! - `train_full`: training with `p = 0.1`, no mask;
//! - `eval_causal`, `train_causal`: causal mask arranged so that the *average visible fraction of
//!   a row is 1/2* (exactly `1/2 + 1/(2 cols)`), so that "a causal row costs at most ~0.6x a full
//!   one" is a fair comparison. When `rows >= cols` the matrix is cut into square `cols x cols`
//!   blocks, each called with `Mask::causal(0)` (row `i` of a block sees `i + 1` columns). When
//!   `rows < cols` one call uses `Mask::causal(cols/2 - rows/2)`, so the rows see
//!   `cols/2 - rows/2 + 1 ..= cols/2 + rows/2` columns, averaging `cols/2 + 1/2`;
//! - `unfused_train_full`: the framework-style pipeline from the same primitives, three separate
//!   passes over the whole matrix: (1) `t = scale * x` into a temporary matrix, (2)
//!   `SoftmaxDropout::eval(1.0)` `t -> y`, (3) `Dropout::apply` row by row on `y`. All buffers
//!   are allocated outside the timed loop; the setup checks that it drops exactly the same
//!   elements as `train_full`;
//! - `softmax_only`: evaluation with scale 1, no mask: the softmax alone;
//! - `dropout_only`: `Dropout::apply` row by row on `y`, in place: dropout alone, the generator
//!   and one scaling pass (`y`'s values only grow or become zero, so no subnormal slows it);
//! - `mask_bits`: `Dropout::mask_bits` of every row into a packed bit buffer: the generator and
//!   the threshold test alone, no `f32` traffic;
//! - `copy`: `y.copy_from_slice(&x)`, the memory floor.
//!
//! The group `variants_256x1024_train_full` runs `train_full` on `256x1024` with each kernel
//! variant the CPU runs: the portable `Wide4`, `Wide8`, `Wide16`, the x86-64 tables `avx2` and
//! `avx512`, and `best` (the run-time choice; `Scalar` is too slow to be useful).
//!
//! The group `batch_2x4x32x1024` compares `AttentionBatch` (batch 2, 4 heads, 32 queries, 1024
//! keys, causal with 992 past keys, training) with `forward_rows` / `backward_rows` over the same
//! 256 rows: `batch_forward` against `rows_forward`, `batch_backward` against `rows_backward`
//! (the saved-`P` backward).
//!
//! The group `sink_256x1024` runs `eval_full` and `train_full` on `256x1024` without and with
//! an attention sink (`with_sink`, a logit near the rows' maxima): the sink's cost.
//!
//! The group `softcap_256x1024` runs `eval_full` and `train_full` on `256x1024` without and
//! with a soft-cap (`with_softcap(0.3)`: the scaled logits span `[-0.5, 0.5)`, so `s x / c`
//! reaches both of the `tanh`'s branches), and `libm::tanhf` over the same elements (one scalar
//! `tanh` per element, stored), as a yardstick for the cap's cost per element.
//!
//! The portable table's instructions depend on the build's target features, and the run-time
//! choice on the CPU: always quote figures with their `RUSTFLAGS` and `dropmax::isa()`, and take
//! ratios only between functions of the same run.

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use dropmax::{
    AttentionBatch, AttentionShape, Best, Dropout, DropoutKey, Mask, MatrixProbabilities,
    RowKernel, RowStats, SoftmaxDropout, Wide4, Wide8, Wide16,
};

#[path = "workload/mod.rs"]
mod workload;
use workload::{causal_blocks, logits, visible_fraction};

/// Logit scale, `1/sqrt(64)`.
const SCALE: f32 = 0.125;
/// Dropout probability of the training benches.
const P: f64 = 0.1;
/// The dropout key of the training benches.
const KEY: DropoutKey = DropoutKey::new(0x5EED_D12C_0FFE_E000, 0);
/// Size of `x` for the in-cache groups.
const IN_CACHE_BYTES: usize = 1 << 20;
/// Row lengths of the in-cache groups.
const COLS: [usize; 5] = [64, 256, 1024, 4096, 16384];
/// The out-of-cache case, `rows x cols`.
const OUT_OF_CACHE: (usize, usize) = (8192, 1024);

/// One matrix and its buffers, allocated once per group.
struct Bufs {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    t: Vec<f32>,
    stats: Vec<RowStats>,
    bits: Vec<u8>,
}

impl Bufs {
    fn new(rows: usize, cols: usize) -> Self {
        let n = rows * cols;
        Self {
            rows,
            cols,
            x: logits(n, (rows as u64) << 32 | cols as u64),
            y: vec![0.0; n],
            t: vec![0.0; n],
            stats: vec![RowStats::EMPTY; rows],
            bits: vec![0; n.div_ceil(8)],
        }
    }
}

fn train_op() -> SoftmaxDropout<'static> {
    SoftmaxDropout::train(SCALE, Dropout::new(P).expect("valid p"), KEY).expect("finite scale")
}

/// The fused operation over the whole matrix, no mask.
fn fused_full<K: RowKernel>(op: &SoftmaxDropout<'_, K>, b: &mut Bufs) {
    op.forward_rows(
        0,
        b.cols,
        black_box(&b.x),
        black_box(&mut b.y),
        Some(&mut b.stats),
    )
    .expect("valid shapes");
}

/// The fused operation over the whole matrix with the causal calls of [`causal_blocks`].
fn fused_causal(ops: &[(Range<usize>, SoftmaxDropout<'_>)], b: &mut Bufs) {
    let (x, y, cols) = (black_box(&b.x), black_box(&mut b.y), b.cols);
    for (rows, op) in ops {
        let cells = rows.start * cols..rows.end * cols;
        op.forward_rows(
            rows.start as u64,
            cols,
            &x[cells.clone()],
            &mut y[cells],
            Some(&mut b.stats[rows.clone()]),
        )
        .expect("valid shapes");
    }
}

/// The three-pass pipeline: scale into `t`, softmax `t -> y`, dropout on `y`.
fn unfused_train(softmax: &SoftmaxDropout<'_>, dropout: &Dropout, b: &mut Bufs) {
    let x = black_box(&b.x);
    for (t, &v) in b.t.iter_mut().zip(x) {
        *t = SCALE * v;
    }
    softmax
        .forward_rows(0, b.cols, &b.t, &mut b.y, Some(&mut b.stats))
        .expect("valid shapes");
    for (i, row) in b.y.chunks_exact_mut(b.cols).enumerate() {
        dropout.apply(KEY, i as u64, row).expect("row fits");
    }
    black_box(&mut b.y);
}

/// Dropout alone, in place on `y`, row by row.
fn dropout_only(dropout: &Dropout, b: &mut Bufs) {
    for (i, row) in b.y.chunks_exact_mut(b.cols).enumerate() {
        dropout
            .apply(KEY, i as u64, black_box(row))
            .expect("row fits");
    }
    black_box(&mut b.y);
}

/// The packed keep bits of every row: the generator and the threshold test alone.
fn mask_only(dropout: &Dropout, b: &mut Bufs) {
    for (i, row) in b.bits.chunks_exact_mut(b.cols / 8).enumerate() {
        dropout
            .mask_bits(KEY, i as u64, black_box(row))
            .expect("row fits");
    }
    black_box(&mut b.bits);
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, b: &Bufs) {
    g.throughput(Throughput::Elements((b.rows * b.cols) as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
}

fn matrix_group(c: &mut Criterion, rows: usize, cols: usize) {
    let mut b = Bufs::new(rows, cols);
    let frac = visible_fraction(rows, cols);
    assert!(
        (frac - 0.5).abs() <= 0.5 / cols as f64 + 1e-12,
        "causal visible fraction {frac} for {rows}x{cols}"
    );

    let eval = SoftmaxDropout::eval(SCALE).expect("finite scale");
    let train = train_op();
    let softmax = SoftmaxDropout::eval(1.0).expect("finite scale");
    let dropout = Dropout::new(P).expect("valid p");
    let causal = |op: SoftmaxDropout<'static>| -> Vec<(Range<usize>, SoftmaxDropout<'static>)> {
        causal_blocks(rows, cols)
            .into_iter()
            .map(|(r, q)| (r, op.with_mask(Mask::causal(q))))
            .collect()
    };
    let eval_causal = causal(eval);
    let train_causal = causal(train);

    // The unfused pipeline must drop exactly the elements the fused kernel drops.
    fused_full(&train, &mut b);
    let fused_zeros: Vec<bool> = b.y.iter().map(|&v| v == 0.0).collect();
    unfused_train(&softmax, &dropout, &mut b);
    assert!(
        b.y.iter()
            .map(|&v| v == 0.0)
            .eq(fused_zeros.iter().copied()),
        "unfused and fused dropout masks differ"
    );
    mask_only(&dropout, &mut b);
    let kept = (0..rows * cols).map(|k| b.bits[k / 8] >> (k % 8) & 1 == 1);
    assert!(
        kept.eq(fused_zeros.iter().map(|&zero| !zero)),
        "mask_bits and the fused kernel's zeros differ"
    );

    let mut g = c.benchmark_group(format!("{rows}x{cols}"));
    configure(&mut g, &b);
    g.bench_function("eval_full", |bch| bch.iter(|| fused_full(&eval, &mut b)));
    g.bench_function("train_full", |bch| bch.iter(|| fused_full(&train, &mut b)));
    g.bench_function("eval_causal", |bch| {
        bch.iter(|| fused_causal(&eval_causal, &mut b))
    });
    g.bench_function("train_causal", |bch| {
        bch.iter(|| fused_causal(&train_causal, &mut b))
    });
    g.bench_function("unfused_train_full", |bch| {
        bch.iter(|| unfused_train(&softmax, &dropout, &mut b))
    });
    g.bench_function("softmax_only", |bch| {
        bch.iter(|| fused_full(&softmax, &mut b))
    });
    g.bench_function("dropout_only", |bch| {
        bch.iter(|| dropout_only(&dropout, &mut b))
    });
    g.bench_function("mask_bits", |bch| bch.iter(|| mask_only(&dropout, &mut b)));
    g.bench_function("copy", |bch| {
        bch.iter(|| {
            b.y.copy_from_slice(black_box(&b.x));
            black_box(&mut b.y);
        })
    });
    g.finish();
}

fn by_row_length(c: &mut Criterion) {
    for cols in COLS {
        matrix_group(c, IN_CACHE_BYTES / 4 / cols, cols);
    }
    let (rows, cols) = OUT_OF_CACHE;
    matrix_group(c, rows, cols);
}

fn variant<K: RowKernel>(g: &mut BenchmarkGroup<'_, WallTime>, b: &mut Bufs) {
    if !K::is_supported() {
        return;
    }
    let op = train_op().with_kernel::<K>();
    g.bench_function(K::NAME, |bch| bch.iter(|| fused_full(&op, b)));
}

fn variants(c: &mut Criterion) {
    let mut b = Bufs::new(256, 1024);
    let mut g = c.benchmark_group("variants_256x1024_train_full");
    configure(&mut g, &b);
    variant::<Wide4>(&mut g, &mut b);
    variant::<Wide8>(&mut g, &mut b);
    variant::<Wide16>(&mut g, &mut b);
    #[cfg(target_arch = "x86_64")]
    variant::<dropmax::Avx2>(&mut g, &mut b);
    #[cfg(target_arch = "x86_64")]
    variant::<dropmax::Avx512>(&mut g, &mut b);
    variant::<Best>(&mut g, &mut b);
    g.finish();
}

/// An attention sink's cost: the same matrix with and without one (see the module docs).
fn sink(c: &mut Criterion) {
    let mut b = Bufs::new(256, 1024);
    let mut g = c.benchmark_group("sink_256x1024");
    configure(&mut g, &b);
    let eval = SoftmaxDropout::eval(SCALE).expect("finite scale");
    let train = train_op();
    // A sink near the rows' maxima (logits in [-4, 4) scaled by 1/8), so that it sometimes
    // leads the row and sometimes not.
    for (name, op) in [
        ("eval", eval),
        ("eval_sink", eval.with_sink(0.45)),
        ("train", train),
        ("train_sink", train.with_sink(0.45)),
    ] {
        g.bench_function(name, |bch| bch.iter(|| fused_full(&op, &mut b)));
    }
    g.finish();
}

/// Soft-capping's cost: the same matrix with and without a cap, and a scalar `tanhf` per element
/// (see the module docs).
fn softcap(c: &mut Criterion) {
    let mut b = Bufs::new(256, 1024);
    let mut g = c.benchmark_group("softcap_256x1024");
    configure(&mut g, &b);
    let eval = SoftmaxDropout::eval(SCALE).expect("finite scale");
    let train = train_op();
    let cap = |op: SoftmaxDropout<'static>| op.with_softcap(0.3).expect("positive cap");
    for (name, op) in [
        ("eval", eval),
        ("eval_softcap", cap(eval)),
        ("train", train),
        ("train_softcap", cap(train)),
    ] {
        g.bench_function(name, |bch| bch.iter(|| fused_full(&op, &mut b)));
    }
    g.bench_function("tanhf_libm", |bch| {
        bch.iter(|| {
            for (y, &x) in b.y.iter_mut().zip(&b.x) {
                *y = libm::tanhf(x * (SCALE / 0.3));
            }
            black_box(&mut b.y);
        })
    });
    g.finish();
}

/// `AttentionBatch` against the matrix calls over the same rows (see the module docs).
fn batch(c: &mut Criterion) {
    let shape = AttentionShape::new(2, 4, 32, 1024);
    let past = shape.k_len - shape.q_len;
    let rows = shape.batch * shape.heads * shape.q_len;
    let mut b = Bufs::new(rows, shape.k_len);
    let op = train_op();
    let batch = AttentionBatch::new(op, shape).causal(past);
    let dy = logits(rows * shape.k_len, 11);
    let mut dx = vec![0.0f32; rows * shape.k_len];
    // The same rows as the batch: block `(b, h)` of `q_len` rows, query positions from `past`.
    let rows_forward = |b: &mut Bufs| {
        for (blk, (x, y)) in
            b.x.chunks(shape.q_len * shape.k_len)
                .zip(b.y.chunks_mut(shape.q_len * shape.k_len))
                .enumerate()
        {
            let first = (blk * shape.q_len) as u64;
            op.with_mask(Mask::causal(past))
                .forward_rows(first, shape.k_len, black_box(x), black_box(y), None)
                .expect("valid shapes");
        }
    };
    let mut check = b.y.clone();
    rows_forward(&mut b);
    batch
        .forward(0, &b.x, &mut check, None)
        .expect("valid shapes");
    assert!(
        check
            .iter()
            .zip(&b.y)
            .all(|(a, c)| a.to_bits() == c.to_bits()),
        "AttentionBatch and forward_rows differ"
    );
    let p = b.y.clone();
    let mut g = c.benchmark_group("batch_2x4x32x1024");
    configure(&mut g, &b);
    g.bench_function("rows_forward", |bch| bch.iter(|| rows_forward(&mut b)));
    g.bench_function("batch_forward", |bch| {
        bch.iter(|| {
            batch
                .forward(0, black_box(&b.x), black_box(&mut b.y), None)
                .expect("valid shapes")
        })
    });
    g.bench_function("rows_backward", |bch| {
        bch.iter(|| {
            for (blk, ((p, dy), dx)) in p
                .chunks(shape.q_len * shape.k_len)
                .zip(dy.chunks(shape.q_len * shape.k_len))
                .zip(dx.chunks_mut(shape.q_len * shape.k_len))
                .enumerate()
            {
                op.with_mask(Mask::causal(past))
                    .backward_rows(
                        (blk * shape.q_len) as u64,
                        shape.k_len,
                        MatrixProbabilities::Saved(black_box(p)),
                        black_box(dy),
                        black_box(dx),
                    )
                    .expect("valid shapes");
            }
        })
    });
    g.bench_function("batch_backward", |bch| {
        bch.iter(|| {
            batch
                .backward(
                    0,
                    MatrixProbabilities::Saved(black_box(&p)),
                    black_box(&dy),
                    black_box(&mut dx),
                )
                .expect("valid shapes")
        })
    });
    g.finish();
}

criterion_group!(benches, by_row_length, variants, batch, sink, softcap);
criterion_main!(benches);
