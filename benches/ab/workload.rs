//! The data and the calls that `src/main.rs` (both versions in one binary) and `one.rs` (one
//! version per binary) time alike.

/// `n` uniform logits in `[-4, 4)` from a fixed LCG.
pub fn logits(n: usize) -> Vec<f32> {
    let mut s = 0x1234_5678_9ABC_DEF0u64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            -4.0 + 8.0 * ((s >> 40) as f32 / (1u32 << 24) as f32)
        })
        .collect()
}

/// The causal mask's query position and the elements per call: one band whose rows see
/// `cols/2 +- rows/2` columns in one call, or square causal blocks of `cols` rows from query
/// position 0, one call per block (as benches/workload's `causal_blocks`).
pub fn causal(rows: usize, cols: usize) -> (usize, usize) {
    if rows >= cols {
        (0, cols * cols)
    } else {
        (cols / 2 - rows / 2, rows * cols)
    }
}

/// `f(first_row, x, y)` for each call of `len` elements over `x` and `y`, rows of `cols`.
pub fn in_calls(
    x: &[f32],
    y: &mut [f32],
    len: usize,
    cols: usize,
    mut f: impl FnMut(u64, &[f32], &mut [f32]),
) {
    for (k, (x, y)) in x.chunks(len).zip(y.chunks_mut(len)).enumerate() {
        f((k * len / cols) as u64, x, y);
    }
}
