//! Multi-core scaling of the attention batch forward ([`AttentionBatch`]).
//!
//! Two tensors of shape `[batch, heads, q_len, k_len]`, each in its own group:
//!
//! - `forward_train_causal_4x8x256x1024`: 8192 rows, 32 MiB of logits in and 32 MiB of outputs
//!   (far beyond the per-core L2);
//! - `forward_train_causal_1x8x64x1024`: 512 rows, 2 MiB in and 2 MiB out (cache-resident).
//!
//! Both in training with dropout `p = 0.1`, scale `1/8`, causal with `past_len = k_len - q_len`
//! (a block of `q_len` new queries after `past_len` cached keys; rows see `past_len + 1 ..=
//! k_len` keys), row statistics written to a buffer. Criterion reports elements per second with
//! `Throughput::Elements(rows * k_len)`.
//!
//! Functions in each group:
//!
//! - `sequential`: [`AttentionBatch::forward`] on the calling thread;
//! - `rayon_threads_N` (feature `rayon`): [`AttentionBatch::par_forward`] inside a rayon pool of
//!   `N` threads, for `N` = 1, 2 and, when the machine has more, its available parallelism.
//!
//! Every parallel output is checked bit-identical to the sequential one before timing. Run with
//!
//! ```text
//! RUSTFLAGS="-C target-cpu=native" cargo bench --features rayon --bench scaling
//! ```
//!
//! and compare functions of the same run only (the build flags pick the SIMD code).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dropmax::{AttentionBatch, AttentionShape, Dropout, DropoutKey, RowStats, SoftmaxDropout};

#[path = "workload/mod.rs"]
mod workload;
use workload::logits;

/// The tensors: the large one of the issue, and a cache-resident one.
const SHAPES: [AttentionShape; 2] = [
    AttentionShape::new(4, 8, 256, 1024),
    AttentionShape::new(1, 8, 64, 1024),
];

fn scaling(c: &mut Criterion) {
    for shape in SHAPES {
        group(c, shape);
    }
}

fn group(c: &mut Criterion, shape: AttentionShape) {
    let len = shape.min_len().expect("shape fits");
    let rows = shape.rows().expect("shape fits");
    let x = logits(len, 1);
    let mut y = vec![0.0f32; len];
    let mut stats = vec![RowStats::EMPTY; rows];
    let op = SoftmaxDropout::train(
        0.125,
        Dropout::new(0.1).expect("valid p"),
        DropoutKey::new(0x5EED, 0),
    )
    .expect("finite scale");
    let batch = AttentionBatch::new(op, shape).causal(shape.k_len - shape.q_len);

    let AttentionShape {
        batch: b,
        heads: h,
        q_len: q,
        k_len: k,
        ..
    } = shape;
    let mut group = c.benchmark_group(format!("forward_train_causal_{b}x{h}x{q}x{k}"));
    group
        .throughput(Throughput::Elements((rows * k) as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    group.bench_function("sequential", |bench| {
        bench.iter(|| {
            batch
                .forward(0, black_box(&x), &mut y, Some(&mut stats))
                .expect("valid call");
            black_box(&y);
        })
    });

    #[cfg(feature = "rayon")]
    {
        let reference = y.clone();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut threads = vec![1, 2];
        if cores > 2 {
            threads.push(cores);
        }
        for t in threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool");
            y.fill(0.0);
            pool.install(|| batch.par_forward(0, &x, &mut y, Some(&mut stats)))
                .expect("valid call");
            assert!(
                y.iter()
                    .zip(&reference)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "par_forward with {t} threads differs from forward"
            );
            group.bench_function(format!("rayon_threads_{t}"), |bench| {
                bench.iter(|| {
                    pool.install(|| batch.par_forward(0, black_box(&x), &mut y, Some(&mut stats)))
                        .expect("valid call");
                    black_box(&y);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, scaling);
criterion_main!(benches);
