//! The workload every speed measurement shares: the logits, and the causal calls whose rows see
//! half the columns on average. Included with `#[path]` by `benches/fused.rs`,
//! `benches/scaling.rs` and `examples/peers.rs`, so that they time the same data and layouts.

#![allow(dead_code)] // each includer uses a part

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::ops::Range;

/// `n` deterministic uniform logits in `[-4, 4)`.
pub fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            -4.0 + 8.0 * u
        })
        .collect()
}

/// The causal calls over a `rows x cols` matrix whose average visible fraction is 1/2:
/// `(rows of the call, query position of its first row)`.
pub fn causal_blocks(rows: usize, cols: usize) -> Vec<(Range<usize>, usize)> {
    if rows >= cols {
        // Square blocks, each the top-left corner of a causal attention matrix.
        (0..rows)
            .step_by(cols)
            .map(|start| (start..(start + cols).min(rows), 0))
            .collect()
    } else {
        // One band of rows centred on the middle of the row length.
        vec![(0..rows, cols / 2 - rows / 2)]
    }
}

/// The average fraction of visible columns per row of [`causal_blocks`].
pub fn visible_fraction(rows: usize, cols: usize) -> f64 {
    let visible: usize = causal_blocks(rows, cols)
        .into_iter()
        .flat_map(|(range, q)| (0..range.len()).map(move |i| (q + i + 1).min(cols)))
        .sum();
    visible as f64 / (rows * cols) as f64
}
