//! The backward pass against the forward on the same rows (criterion).
//!
//! 256 rows of 1024 logits, scale 1/8, dropout p = 0.1, in cache; `Throughput::Elements`, so
//! criterion reports elements per second. Quote figures with their flags, e.g.
//! `RUSTFLAGS="-C target-cpu=native" cargo bench --bench backward`, and compare only within one run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dropmax::{Dropout, DropoutKey, MatrixProbabilities, RowStats, SoftmaxDropout};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

const ROWS: usize = 256;
const COLS: usize = 1024;

fn bench(c: &mut Criterion) {
    let mut r = Pcg64Mcg::seed_from_u64(7);
    let mut data = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (r.next_u32() >> 8) as f32 / (1 << 24) as f32 * 8.0 - 4.0)
            .collect()
    };
    let x = data(ROWS * COLS);
    let dy = data(ROWS * COLS);
    let mut y = vec![0.0f32; ROWS * COLS];
    let mut p = vec![0.0f32; ROWS * COLS];
    let mut dx = vec![0.0f32; ROWS * COLS];
    let mut stats = vec![RowStats::EMPTY; ROWS];
    let train =
        SoftmaxDropout::train(0.125, Dropout::new(0.1).unwrap(), DropoutKey::new(3, 0)).unwrap();
    SoftmaxDropout::eval(0.125)
        .unwrap()
        .forward_rows(0, COLS, &x, &mut p, None)
        .unwrap();
    train
        .forward_rows(0, COLS, &x, &mut y, Some(&mut stats))
        .unwrap();

    let mut g = c.benchmark_group(format!("{ROWS}x{COLS}"));
    g.throughput(Throughput::Elements((ROWS * COLS) as u64));
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("forward_train", |b| {
        b.iter(|| {
            train
                .forward_rows(0, COLS, black_box(&x), &mut y, Some(&mut stats))
                .unwrap()
        })
    });
    g.bench_function("backward_train_saved_p", |b| {
        b.iter(|| {
            train
                .backward_rows(
                    0,
                    COLS,
                    MatrixProbabilities::Saved(black_box(&p)),
                    &dy,
                    &mut dx,
                )
                .unwrap()
        })
    });
    g.bench_function("backward_train_recompute", |b| {
        let probs = MatrixProbabilities::Recompute {
            logits: &x,
            stats: &stats,
        };
        b.iter(|| {
            train
                .backward_rows(0, COLS, black_box(probs), &dy, &mut dx)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
