//! dropmax's side of the peer comparison in `benches/peers/` (ONNX Runtime, JAX and numpy run the
//! same task in `benches/peers/peers.py`; `benches/peers/run.sh` runs both and prints the table).
//!
//! ```text
//! RUSTFLAGS="-C target-cpu=native" cargo run --release --example peers [-- REPS]
//! ```
//!
//! The task: logits of shape `rows x cols`, scale 1/8, softmax over each row, dropout `p = 0.1`
//! with its rescale, out of place (`x -> y`, row statistics written to a buffer), one thread.
//! Five functions per shape:
//!
//! - `eval_full`: evaluation, no mask; `train_full`: training, no mask;
//! - `eval_causal`, `train_causal`: causal mask with an average visible fraction of 1/2, set up as
//!   in `benches/fused.rs`: when `rows >= cols`, square `cols x cols` blocks each called with
//!   `Mask::causal(0)`; otherwise one call with `Mask::causal(cols/2 - rows/2)`;
//! - `copy`: `y.copy_from_slice(&x)`, the memory floor.
//!
//! Shapes: `8192 x 1024` (32 MiB of logits) and one 1 MiB matrix per row length
//! 64, 128, ..., 16384 (`256 x 1024` among them). Each function runs 3 times untimed, then at
//! least `REPS` times (default 20) and for at least 0.2 s, each call timed alone; the JSON on
//! stdout gives the number of timed calls, their minimum and their median in ns per element of
//! the matrix (masked elements count). The figures depend on the build's
//! target features (listed in the output): quote them with their `RUSTFLAGS`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dropmax::{Dropout, DropoutKey, Mask, RowStats, SoftmaxDropout};

#[path = "../benches/workload/mod.rs"]
mod workload;
use workload::{causal_blocks, logits};

const SCALE: f32 = 0.125;
const P: f64 = 0.1;
const KEY: DropoutKey = DropoutKey::new(0x5EED_D12C_0FFE_E000, 0);
const WARMUP: usize = 3;
/// Short functions are called until this much time has passed, so that the best of many calls
/// filters out the other work of a shared machine.
const MIN_TIMED: Duration = Duration::from_millis(200);
const MAX_CALLS: usize = 10_000;
/// Elements of the 1 MiB matrices of the row-length sweep.
const SWEEP_ELEMENTS: usize = 1 << 18;
const SWEEP_COLS: [usize; 9] = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const OUT_OF_CACHE: (usize, usize) = (8192, 1024);

/// Runs `f` `WARMUP` times, then timed calls until there have been at least `reps` of them and
/// `MIN_TIMED` has passed (at most `MAX_CALLS`): `(calls, min, median)`, in ns per element.
fn time(reps: usize, elements: usize, mut f: impl FnMut()) -> (usize, f64, f64) {
    for _ in 0..WARMUP {
        f();
    }
    let mut ns = Vec::new();
    let start = Instant::now();
    while ns.len() < MAX_CALLS && (ns.len() < reps || start.elapsed() < MIN_TIMED) {
        let t = Instant::now();
        f();
        ns.push(t.elapsed().as_nanos() as f64 / elements as f64);
    }
    ns.sort_by(f64::total_cmp);
    let n = ns.len();
    (n, ns[0], (ns[(n - 1) / 2] + ns[n / 2]) / 2.0)
}

/// The process's transparent huge pages in KiB (Linux): which page size the buffers got (numpy
/// asks for huge pages for the peers' arrays unless told not to; see `benches/peers/run.sh`).
fn huge_pages_kib() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Times the five functions on one `rows x cols` matrix; one JSON object per function.
fn measure(rows: usize, cols: usize, reps: usize) -> Result<Vec<String>, dropmax::Error> {
    let n = rows * cols;
    let x = logits(n, (rows as u64) << 32 | cols as u64);
    let mut y = vec![0.0f32; n];
    let mut stats = vec![RowStats::EMPTY; rows];

    let eval = SoftmaxDropout::eval(SCALE)?;
    let train = SoftmaxDropout::train(SCALE, Dropout::new(P)?, KEY)?;
    let mut run = |op: SoftmaxDropout<'_>, causal: bool| -> Result<_, dropmax::Error> {
        // Validate once outside the timed loop, so that the loop can ignore the `Result`.
        op.forward_rows(0, cols, &x, &mut y, Some(&mut stats))?;
        let calls = if causal {
            causal_blocks(rows, cols)
        } else {
            vec![(0..rows, 0)]
        };
        Ok(time(reps, n, || {
            for (r, q) in &calls {
                let cells = r.start * cols..r.end * cols;
                let op = if causal {
                    op.with_mask(Mask::causal(*q))
                } else {
                    op
                };
                let _ = op.forward_rows(
                    r.start as u64,
                    cols,
                    black_box(&x[cells.clone()]),
                    black_box(&mut y[cells]),
                    Some(&mut stats[r.clone()]),
                );
            }
        }))
    };
    let results = [
        ("eval_full", run(eval, false)?),
        ("train_full", run(train, false)?),
        ("eval_causal", run(eval, true)?),
        ("train_causal", run(train, true)?),
        ("copy", time(reps, n, || y.copy_from_slice(black_box(&x)))),
    ];
    let huge = huge_pages_kib().map_or("null".to_string(), |k| k.to_string());
    Ok(results
        .iter()
        .map(|(task, (calls, min, median))| {
            format!(
                concat!(
                    r#"{{"impl": "dropmax", "task": "{}", "rows": {}, "cols": {}, "calls": {}, "#,
                    r#""min_ns": {:.4}, "median_ns": {:.4}, "huge_pages_kib": {}}}"#
                ),
                task, rows, cols, calls, min, median, huge
            )
        })
        .collect())
}

/// The SIMD target features this build was compiled with (`wide` picks its code from them).
fn target_features() -> Vec<&'static str> {
    [
        ("sse2", cfg!(target_feature = "sse2")),
        ("sse4.1", cfg!(target_feature = "sse4.1")),
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
        ("avx512bw", cfg!(target_feature = "avx512bw")),
        ("neon", cfg!(target_feature = "neon")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

fn main() -> Result<(), dropmax::Error> {
    let reps = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 20,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("usage: peers [REPS]  (REPS > 0, default 20)");
            std::process::exit(2);
        }
    };
    let mut shapes: Vec<(usize, usize)> = SWEEP_COLS
        .iter()
        .map(|&c| (SWEEP_ELEMENTS / c, c))
        .collect();
    shapes.push(OUT_OF_CACHE);

    let mut results = Vec::new();
    for (rows, cols) in shapes {
        results.extend(measure(rows, cols, reps)?);
    }
    let features: Vec<String> = target_features()
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect();
    println!("{{");
    println!(r#"  "impl": "dropmax","#);
    println!(r#"  "version": "{}","#, env!("CARGO_PKG_VERSION"));
    println!(r#"  "target_features": [{}],"#, features.join(", "));
    println!(r#"  "results": ["#);
    println!("    {}", results.join(",\n    "));
    println!("  ]");
    println!("}}");
    Ok(())
}
