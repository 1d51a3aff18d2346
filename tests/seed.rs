//! The seed's demonstrations (chapter 3 of "Build a Large Language Model (From Scratch)") as
//! tests: dropout at p = 0.5 on a 6x6 matrix of ones, and on the chapter's causal attention
//! weights. PyTorch draws its masks from another generator, so the particular zeros differ; what
//! carries over is the semantics: survivors scaled by exactly 2, about half dropped, masked
//! entries zero, nothing dropped in evaluation.

use dropmax::{Dropout, DropoutKey, Mask, SoftmaxDropout, keep};

const N: usize = 6;
const SEED: u64 = 123;

/// The causal attention weights the chapter prints before dropout (4 decimals).
const WEIGHTS: [[f32; N]; N] = [
    [1.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000],
    [0.5517, 0.4483, 0.0000, 0.0000, 0.0000, 0.0000],
    [0.3800, 0.3097, 0.3103, 0.0000, 0.0000, 0.0000],
    [0.2758, 0.2460, 0.2462, 0.2319, 0.0000, 0.0000],
    [0.2175, 0.1983, 0.1984, 0.1888, 0.1971, 0.0000],
    [0.1935, 0.1663, 0.1666, 0.1542, 0.1666, 0.1529],
];

/// Unmasked (lower-triangle) entries of the 6x6 causal matrix: 6 * 7 / 2.
const VISIBLE: usize = N * (N + 1) / 2;

fn half() -> Dropout {
    Dropout::new(0.5).unwrap()
}

/// Dropout at p = 0.5 on a 6x6 matrix of ones, row `i` with row id `i`; returns the matrix.
fn dropped_ones(key: DropoutKey) -> [[f32; N]; N] {
    let mut m = [[1.0f32; N]; N];
    for (i, row) in m.iter_mut().enumerate() {
        half().apply(key, i as u64, row).unwrap();
    }
    m
}

#[test]
fn ones_at_half_are_zero_or_exactly_two() {
    let key = DropoutKey::new(SEED, 0);
    let m = dropped_ones(key);
    let mut zeros = 0;
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            assert!(v == 0.0 || v == 2.0, "({i}, {j}) = {v}");
            // The mask is the documented function of (key, row, column).
            assert_eq!(
                v == 2.0,
                keep(&half(), key, i as u64, j as u32),
                "({i}, {j})"
            );
            zeros += usize::from(v == 0.0);
        }
    }
    // Zeros ~ Binomial(36, 0.5): mean 18, sd sqrt(36 * 0.5 * 0.5) = 3; 5 sd gives [3, 33].
    assert!((3..=33).contains(&zeros), "{zeros} zeros of 36");
}

#[test]
fn ones_at_half_drop_half_over_many_keys() {
    const KEYS: u64 = 4096;
    let mut zeros = 0usize;
    for seed in 0..KEYS {
        // Vary both parts of the key.
        let m = dropped_ones(DropoutKey::new(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            seed,
        ));
        zeros += m.iter().flatten().filter(|&&v| v == 0.0).count();
    }
    let trials = (KEYS as usize * N * N) as f64; // 147456
    let frac = zeros as f64 / trials;
    // The zero fraction of 147456 Bernoulli(0.5) trials has sd 0.5 / sqrt(147456) = 0.0013.
    let sd = 0.5 / trials.sqrt();
    assert!((frac - 0.5).abs() <= 5.0 * sd, "zero fraction {frac}");
}

/// The chapter's weights as logits: `ln w` on and below the diagonal, `above` elsewhere.
fn log_weights(above: f32) -> [f32; N * N] {
    core::array::from_fn(|k| {
        let (i, j) = (k / N, k % N);
        if j <= i { WEIGHTS[i][j].ln() } else { above }
    })
}

/// The exact softmax of `ln w` over a row: `w / sum(w)`, in f64.
fn renormalised(i: usize) -> [f64; N] {
    let s: f64 = WEIGHTS[i][..=i].iter().map(|&w| f64::from(w)).sum();
    core::array::from_fn(|j| {
        if j <= i {
            f64::from(WEIGHTS[i][j]) / s
        } else {
            0.0
        }
    })
}

/// The weights' forward pass, both ways: (a) the 6x6 matrix with `Mask::causal(0)` through
/// `forward_rows` (the upper triangle holds NaN, which the mask must ignore); (b) row by row with
/// no mask and `-inf` logits above the diagonal. Rows have ids 0..6 in both.
fn both_ways(op: SoftmaxDropout<'_>) -> [[f32; N * N]; 2] {
    let mut masked = [f32::NAN; N * N];
    op.with_mask(Mask::causal(0))
        .forward_rows(0, N, &log_weights(f32::NAN), &mut masked, None)
        .unwrap();
    let x = log_weights(f32::NEG_INFINITY);
    let mut by_row = [f32::NAN; N * N];
    for i in 0..N {
        let r = i * N..(i + 1) * N;
        op.forward(i as u64, &x[r.clone()], &mut by_row[r]).unwrap();
    }
    [masked, by_row]
}

#[test]
fn causal_weights_in_evaluation() {
    // softmax(ln w) = w / sum(w). The printed rows sum to 1 within 1e-4 (rows 3, 4, 5 sum to
    // 0.9999, 1.0001, 1.0001), so the output is compared both with the renormalised rows (tightly:
    // only f32 rounding) and with the printed weights themselves (to 1e-4, which absorbs the
    // printing's rounding).
    let op = SoftmaxDropout::eval(1.0).unwrap();
    for y in both_ways(op) {
        for i in 0..N {
            let want = renormalised(i);
            for j in 0..N {
                let got = y[i * N + j];
                if j > i {
                    assert_eq!(got.to_bits(), 0.0f32.to_bits(), "masked ({i}, {j}) = {got}");
                    continue;
                }
                assert!(got > 0.0, "({i}, {j}) dropped in evaluation");
                assert!(
                    (f64::from(got) - want[j]).abs() <= 1e-6 * want[j],
                    "({i}, {j}): {got} vs {}",
                    want[j]
                );
                assert!(
                    (got - WEIGHTS[i][j]).abs() <= 1e-4,
                    "({i}, {j}): {got} vs printed {}",
                    WEIGHTS[i][j]
                );
            }
        }
    }
}

#[test]
fn causal_weights_in_training_are_zero_or_exactly_doubled() {
    let key = DropoutKey::new(SEED, 0);
    let eval = both_ways(SoftmaxDropout::eval(1.0).unwrap());
    let train = both_ways(SoftmaxDropout::train(1.0, half(), key).unwrap());
    for (e, t) in eval.iter().zip(&train) {
        let mut kept = 0;
        for i in 0..N {
            for j in 0..N {
                let (ev, tv) = (e[i * N + j], t[i * N + j]);
                if j > i {
                    assert_eq!(tv.to_bits(), 0.0f32.to_bits(), "masked ({i}, {j}) = {tv}");
                    continue;
                }
                let kept_here = keep(&half(), key, i as u64, j as u32);
                if kept_here {
                    // Bit-exact: the rescale is exactly 2.0, the kernel folds it into 2 / S
                    // (exactly twice 1 / S), and doubling an f32 is exact.
                    assert_eq!(
                        tv.to_bits(),
                        (2.0 * ev).to_bits(),
                        "({i}, {j}): {tv} vs {ev}"
                    );
                    kept += 1;
                } else {
                    assert_eq!(tv.to_bits(), 0.0f32.to_bits(), "dropped ({i}, {j}) = {tv}");
                }
            }
        }
        // Kept ~ Binomial(21, 0.5): mean 10.5, sd sqrt(21) / 2 = 2.29, so 5 sd ([-0.96, 21.96])
        // excludes nothing. Use 4 sd instead, [10.5 - 9.17, 10.5 + 9.17] -> [2, 19]: a fair mask
        // falls outside with probability 2 * P(X <= 1) = 2 * 22 / 2^21 = 2.1e-5.
        assert!((2..=19).contains(&kept), "kept {kept} of {VISIBLE}");
    }
    // The two ways draw the same mask: it depends only on (key, row, column).
    let zeros = |y: &[f32; N * N]| y.map(|v| v == 0.0);
    assert_eq!(zeros(&train[0]), zeros(&train[1]));
}

#[test]
fn causal_weights_keep_half_over_many_keys() {
    const KEYS: u64 = 4096;
    let x = log_weights(f32::NAN);
    let mut kept = 0usize;
    let mut y = [0.0f32; N * N];
    for seed in 0..KEYS {
        let key = DropoutKey::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5, 3 * seed);
        SoftmaxDropout::train(1.0, half(), key)
            .unwrap()
            .with_mask(Mask::causal(0))
            .forward_rows(0, N, &x, &mut y, None)
            .unwrap();
        kept += y.iter().filter(|&&v| v != 0.0).count();
    }
    let trials = (KEYS as usize * VISIBLE) as f64; // 86016
    let frac = kept as f64 / trials;
    // sd of the kept fraction: 0.5 / sqrt(86016) = 0.0017; allow 5 sd.
    let sd = 0.5 / trials.sqrt();
    assert!((frac - 0.5).abs() <= 5.0 * sd, "kept fraction {frac}");
}
