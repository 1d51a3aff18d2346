//! One version of dropmax timed alone (see `separate.sh`): the same four calls as `main.rs`
//! (eval and train with `p = 0.1`, no mask and causal, scale 1/8, `forward_rows` out of place),
//! each repeated for a quarter of `SECONDS`, best call kept. Prints one line:
//! `eval TRAIN eval_causal train_causal` in ns per element.
//!
//! Usage: `one ROWS COLS SECONDS`. Built once per version, each in its own binary, so that the
//! two versions' code is not laid out together (as it is in `main.rs`).

#[path = "workload.rs"]
mod workload;

use std::hint::black_box;
use std::time::Instant;

fn arg<T: std::str::FromStr>(i: usize) -> T {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .expect("usage: one ROWS COLS SECONDS")
}

fn main() {
    let (rows, cols, secs): (usize, usize, f64) = (arg(1), arg(2), arg(3));
    let n = rows * cols;
    let x = workload::logits(n);
    let mut y = vec![0.0f32; n];
    let (q, block) = workload::causal(rows, cols);
    let key = dropmax::DropoutKey::new(0x5EED_D12C_0FFE_E000, 0);
    let eval = dropmax::SoftmaxDropout::eval(0.125).expect("finite scale");
    let dropout = dropmax::Dropout::new(0.1).expect("valid p");
    let train = dropmax::SoftmaxDropout::train(0.125, dropout, key).expect("finite scale");
    let ops = [
        eval,
        train,
        eval.with_mask(dropmax::Mask::causal(q)),
        train.with_mask(dropmax::Mask::causal(q)),
    ];
    let mut line = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let calls = if i < 2 { n } else { block };
        let mut call = |x: &[f32], y: &mut [f32]| {
            workload::in_calls(x, y, calls, cols, |r, x, y| {
                op.forward_rows(r, cols, x, y, None).expect("valid shapes");
            });
        };
        call(&x, &mut y);
        let start = Instant::now();
        let mut best = f64::MAX;
        while start.elapsed().as_secs_f64() < secs / 4.0 {
            let t = Instant::now();
            call(black_box(&x), black_box(&mut y));
            best = best.min(t.elapsed().as_secs_f64());
        }
        line.push(format!("{:.4}", best * 1e9 / n as f64));
    }
    println!("{}", line.join(" "));
}
