//! The seed's two demonstrations (chapter 3 of "Build a Large Language Model (From Scratch)"):
//! dropout at p = 0.5 on a 6x6 matrix of ones, then on causal attention weights.
//!
//! Run with `cargo run --release --example seed`. The output is deterministic: every mask is a
//! pure function of the dropout key, the row id and the column.

use dropmax::{Dropout, DropoutKey, Mask, SoftmaxDropout};

/// The dropout key used throughout (123, as the chapter's `torch.manual_seed(123)`).
const SEED: u64 = 123;
const OFFSET: u64 = 0;

/// "Your journey starts with one step", embedded in 3 dimensions.
const TOKENS: [&str; 6] = ["Your", "journey", "starts", "with", "one", "step"];
const INPUTS: [[f32; 3]; 6] = [
    [0.43, 0.15, 0.89],
    [0.55, 0.87, 0.66],
    [0.57, 0.85, 0.64],
    [0.22, 0.58, 0.33],
    [0.77, 0.25, 0.10],
    [0.05, 0.80, 0.55],
];
const N: usize = TOKENS.len();

fn fmt_row(row: &[f32]) -> String {
    let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
    format!("[{}]", cells.join(", "))
}

fn main() -> Result<(), dropmax::Error> {
    let key = DropoutKey::new(SEED, OFFSET);
    let dropout = Dropout::new(0.5)?;
    println!("dropout key: seed {SEED}, offset {OFFSET}; row i of each matrix has row id i");
    println!(
        "p = 0.5: threshold D = {}, survivors scaled by {}\n",
        dropout.threshold(),
        dropout.rescale()
    );

    // (a) Dropout on a 6x6 matrix of ones.
    println!("(a) dropout(p = 0.5) on a 6x6 matrix of ones:");
    let mut zeros = 0;
    for i in 0..N {
        let mut row = [1.0f32; N];
        dropout.apply(key, i as u64, &mut row)?;
        zeros += row.iter().filter(|&&v| v == 0.0).count();
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.0}.")).collect();
        println!("    [{}]", cells.join(", "));
    }
    println!("    {zeros} of {} values zeroed\n", N * N);

    // (b) Causal self-attention weights: scores = inputs @ inputs^T / sqrt(3), masked, softmax.
    let mut scores = [0.0f32; N * N];
    for (k, s) in scores.iter_mut().enumerate() {
        let (q, t) = (INPUTS[k / N], INPUTS[k % N]);
        *s = q.iter().zip(t).map(|(a, b)| a * b).sum();
    }
    let scale = 1.0 / 3f32.sqrt();
    let mask = Mask::causal(0); // row i sees columns 0..=i
    let mut eval = [0.0f32; N * N];
    let mut train = [0.0f32; N * N];
    SoftmaxDropout::eval(scale)?
        .with_mask(mask)
        .forward_rows(0, N, &scores, &mut eval, None)?;
    SoftmaxDropout::train(scale, dropout, key)?
        .with_mask(mask)
        .forward_rows(0, N, &scores, &mut train, None)?;

    println!("(b) \"Your journey starts with one step\": causal softmax(x x^T / sqrt(3)), p = 0.5");
    println!("    {:<8} {:<50} training", "", "evaluation");
    for (i, token) in TOKENS.iter().enumerate() {
        let r = i * N..(i + 1) * N;
        let (e, t) = (fmt_row(&eval[r.clone()]), fmt_row(&train[r]));
        println!("    {token:<8} {e:<50} {t}");
    }
    let kept = train.iter().filter(|&&v| v != 0.0).count();
    println!("    kept {kept} of {} unmasked weights", N * (N + 1) / 2);
    println!("    (same key and row ids as (a), so the same positions are dropped)");
    Ok(())
}
