//! In-process A/B timing of two versions of dropmax (see `run.sh`): the same four calls as
//! `benches/fused.rs` (eval and train with `p = 0.1`, no mask and causal with an average visible
//! fraction of 1/2: square blocks, one call each, when rows >= cols; scale 1/8, `forward_rows`
//! out of place) for version `a` and version `b`, interleaved call by call, each call timed
//! alone after an untimed one of the same kind, the best of `CALLS` kept (and the median printed
//! too). Both versions share this binary, so code layout can favour one side: confirm gains
//! under 10 % with separate binaries (README, Performance).
//!
//! Usage: `dropmax-ab [ROWS [COLS [CALLS]]]` (default 64 1024 3000); `P` in the environment
//! overrides the dropout probability. Prints one line per version: ns per element and the ratios
//! that issue 2 asks about.

#[path = "../workload.rs"]
mod workload;

use std::hint::black_box;
use std::time::Instant;

/// The four operations of one version: eval, train, eval causal, train causal.
macro_rules! ops {
    ($m:ident, $p:expr, $q:expr) => {{
        let key = $m::DropoutKey::new(0x5EED_D12C_0FFE_E000, 0);
        let eval = $m::SoftmaxDropout::eval(0.125).expect("finite scale");
        let dropout = $m::Dropout::new($p).expect("valid p");
        let train = $m::SoftmaxDropout::train(0.125, dropout, key).expect("finite scale");
        let eval_causal = eval.with_mask($m::Mask::causal($q));
        let train_causal = train.with_mask($m::Mask::causal($q));
        [eval, train, eval_causal, train_causal]
    }};
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map_or(default, |s| s.parse().expect("a number"))
}

fn main() {
    let (rows, cols, calls) = (arg(1, 64), arg(2, 1024), arg(3, 3000));
    let p: f64 = std::env::var("P").map_or(0.1, |s| s.parse().expect("a probability"));
    let n = rows * cols;
    let x = workload::logits(n);
    let mut y = vec![0.0f32; n];
    let (q, block) = workload::causal(rows, cols);
    let a = ops!(a, p, q);
    let b = ops!(b, p, q);
    let mut best = [[f64::MAX; 4]; 2];
    let mut all: [[Vec<f64>; 4]; 2] = Default::default();
    // Each timed call follows an untimed one of the same operation and version, so that it
    // finds the caches as a run of identical calls leaves them (as criterion's do). Timing a call
    // right after a different one measured identical code up to 9 % apart: a causal call leaves
    // half the logits out of L2, so whichever side came next paid for them.
    let mut run = |op: &dyn Fn(&[f32], &mut [f32]), best: &mut f64, all: &mut Vec<f64>| {
        op(black_box(&x), black_box(&mut y));
        let t = Instant::now();
        op(black_box(&x), black_box(&mut y));
        let dt = t.elapsed().as_secs_f64();
        *best = best.min(dt);
        all.push(dt);
    };
    for _ in 0..calls {
        for i in 0..4 {
            run(
                &|x, y| {
                    workload::in_calls(x, y, if i < 2 { n } else { block }, cols, |r, x, y| {
                        a[i].forward_rows(r, cols, x, y, None)
                            .expect("valid shapes");
                    })
                },
                &mut best[0][i],
                &mut all[0][i],
            );
            run(
                &|x, y| {
                    workload::in_calls(x, y, if i < 2 { n } else { block }, cols, |r, x, y| {
                        b[i].forward_rows(r, cols, x, y, None)
                            .expect("valid shapes");
                    })
                },
                &mut best[1][i],
                &mut all[1][i],
            );
        }
    }
    for (name, times) in ["A", "B"].iter().zip(best) {
        let ns = times.map(|t| t * 1e9 / n as f64);
        println!(
            "{name}: eval {:.4} train {:.4} eval_causal {:.4} train_causal {:.4} | train/eval {:.3} \
             eval_causal/eval {:.3} train_causal/train {:.3}",
            ns[0],
            ns[1],
            ns[2],
            ns[3],
            ns[1] / ns[0],
            ns[2] / ns[0],
            ns[3] / ns[1]
        );
    }
    // Medians: a change can move the best call and the typical one differently.
    for (name, mut times) in ["A", "B"].iter().zip(all) {
        let med = times.each_mut().map(|t| {
            t.sort_by(f64::total_cmp);
            t.get(t.len() / 2).copied().unwrap_or(0.0) * 1e9 / n as f64
        });
        println!(
            "{name} median: eval {:.4} train {:.4} eval_causal {:.4} train_causal {:.4}",
            med[0], med[1], med[2], med[3]
        );
    }
}
