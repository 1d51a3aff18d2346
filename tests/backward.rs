//! The backward pass and the mask export: every variant against the scalar reference, gradient
//! checks against f64 finite differences (evaluation) and an explicit-mask reference (training).

mod common;

use common::*;
use dropmax::{
    Dropout, DropoutKey, Mask, MatrixProbabilities, Probabilities, RowKernel, RowStats, Scalar,
    SoftmaxDropout,
};

/// f64 softmax of `s x + b` over the visible columns (`None` = masked).
fn softmax64(x: &[f64], s: f64, visible: &dyn Fn(usize) -> bool) -> Vec<f64> {
    let z: Vec<Option<f64>> = x
        .iter()
        .enumerate()
        .map(|(j, &v)| visible(j).then_some(s * v))
        .collect();
    let m = z
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| v.map_or(0.0, |v| (v - m).exp())).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Evaluation: dx against central differences of L(x) = sum_j dy_j Y_j(x), in f64.
#[test]
fn eval_gradient_matches_finite_differences() {
    let mut r = rng(31);
    for n in [1usize, 2, 7, 16, 33, 100, 257] {
        for (mask, q) in [(Mask::none(), usize::MAX), (Mask::causal(n / 2), n / 2)] {
            let visible = move |j: usize| q == usize::MAX || j <= q;
            let x = row(&mut r, n, -3.0, 3.0);
            let dy = row(&mut r, n, -1.0, 1.0);
            let s = 0.7f32;
            let op = SoftmaxDropout::eval(s).unwrap().with_mask(mask);
            let mut p = vec![0.0; n];
            let stats = op.forward(0, &x, &mut p).unwrap();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let loss = |x: &[f64]| -> f64 {
                softmax64(x, s as f64, &visible)
                    .iter()
                    .zip(&dy)
                    .map(|(y, &d)| y * d as f64)
                    .sum()
            };
            for probs in [
                Probabilities::Saved(&p),
                Probabilities::Recompute { logits: &x, stats },
            ] {
                for_each_kernel!(K => {
                    let mut dx = vec![f32::NAN; n];
                    op.with_kernel::<K>().backward(0, probs, &dy, &mut dx).unwrap();
                    let scale = dx.iter().fold(1e-3f64, |a, &v| a.max((v as f64).abs()));
                    for i in 0..n {
                        let h = 1e-5;
                        let (mut xp, mut xm) = (x64.clone(), x64.clone());
                        xp[i] += h;
                        xm[i] -= h;
                        let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
                        // f32 gradient vs f64 central difference (truncation error O(h^2) ~ 1e-10):
                        // the f32 arithmetic and P's own error dominate, ~1e-6 of the largest entry.
                        assert!(
                            (dx[i] as f64 - fd).abs() <= 2e-5 * scale,
                            "{} n={n} i={i}: {} vs {fd}", K::NAME, dx[i]
                        );
                        if !visible(i) {
                            assert_eq!(dx[i].to_bits(), 0);
                        }
                    }
                });
            }
        }
    }
}

/// Training: dx against `s P (G - P.G)` with `G_j = keep ? dy_j / q : 0` written out in f64.
#[test]
fn train_gradient_matches_explicit_mask_reference() {
    let mut r = rng(32);
    let key = DropoutKey::new(0xABCD, 77);
    for p_drop in [0.1, 0.5, 1.0 / 3.0] {
        let dropout = Dropout::new(p_drop).unwrap();
        for n in (0..=70).chain([255, 256, 1000, 4096, 5000]) {
            let x = row(&mut r, n, -4.0, 4.0);
            let dy = row(&mut r, n, -1.0, 1.0);
            let s = 0.125f32;
            let row_id = 12;
            for mask in [
                Mask::none(),
                Mask::causal(n / 3),
                Mask::sliding_window(n / 2, 40),
            ] {
                let train = SoftmaxDropout::train(s, dropout, key)
                    .unwrap()
                    .with_mask(mask);
                let mut p = vec![0.0; n];
                let stats = SoftmaxDropout::eval(s)
                    .unwrap()
                    .with_mask(mask)
                    .forward(row_id, &x, &mut p)
                    .unwrap();
                let q = dropout.keep_probability();
                let g: Vec<f64> = (0..n)
                    .map(|j| {
                        if dropmax::keep(&dropout, key, row_id, j as u32) {
                            dy[j] as f64 / q
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let dot: f64 = (0..n).map(|j| p[j] as f64 * g[j]).sum();
                let want: Vec<f64> = (0..n)
                    .map(|j| s as f64 * p[j] as f64 * (g[j] - dot))
                    .collect();
                let scale = want.iter().fold(1e-6f64, |a, &v| a.max(v.abs()));
                for probs in [
                    Probabilities::Saved(&p),
                    Probabilities::Recompute { logits: &x, stats },
                ] {
                    for_each_kernel!(K => {
                        let mut dx = vec![f32::NAN; n];
                        train.with_kernel::<K>().backward(row_id, probs, &dy, &mut dx).unwrap();
                        for j in 0..n {
                            // f32 sums of up to 5000 terms against f64: 1e-5 of the largest entry.
                            assert!((dx[j] as f64 - want[j]).abs() <= 1e-5 * scale, "{} p={p_drop} n={n} j={j}: {} vs {}", K::NAME, dx[j], want[j]);
                            if p[j] == 0.0 {
                                assert_eq!(dx[j], 0.0);
                            }
                        }
                    });
                }
            }
        }
    }
}

#[test]
fn backward_rows_equals_row_by_row_and_checks_lengths() {
    let mut r = rng(33);
    let (rows, cols) = (9usize, 37usize);
    let x = row(&mut r, rows * cols, -2.0, 2.0);
    let dy = row(&mut r, rows * cols, -1.0, 1.0);
    let op = SoftmaxDropout::train(0.5, Dropout::new(0.2).unwrap(), DropoutKey::new(5, 6))
        .unwrap()
        .with_mask(Mask::causal(2));
    let mut y = vec![0.0; x.len()];
    let mut stats = vec![RowStats::EMPTY; rows];
    op.forward_rows(3, cols, &x, &mut y, Some(&mut stats))
        .unwrap();
    let mut dx = vec![0.0; x.len()];
    op.backward_rows(
        3,
        cols,
        MatrixProbabilities::Recompute {
            logits: &x,
            stats: &stats,
        },
        &dy,
        &mut dx,
    )
    .unwrap();
    for i in 0..rows {
        let mut d = vec![0.0; cols];
        let probs = Probabilities::Recompute {
            logits: &x[i * cols..(i + 1) * cols],
            stats: stats[i],
        };
        op.with_mask(Mask::causal(2 + i))
            .backward(3 + i as u64, probs, &dy[i * cols..(i + 1) * cols], &mut d)
            .unwrap();
        assert_eq!(d, dx[i * cols..(i + 1) * cols]);
    }
    let before = dx.clone();
    assert!(
        op.backward_rows(
            3,
            cols,
            MatrixProbabilities::Recompute {
                logits: &x,
                stats: &stats[1..]
            },
            &dy,
            &mut dx
        )
        .is_err()
    );
    assert!(
        op.backward_rows(3, cols, MatrixProbabilities::Saved(&x[1..]), &dy, &mut dx)
            .is_err()
    );
    assert!(
        op.backward(
            0,
            Probabilities::Saved(&x[..cols]),
            &dy[..cols - 1],
            &mut dx[..cols]
        )
        .is_err()
    );
    assert_eq!(dx, before);
}

fn variants_agree<K: RowKernel>() {
    let mut r = rng(34);
    let key = DropoutKey::new(u64::MAX, 1);
    for n in (0..=130).chain([1023, 4097, 9000]) {
        let x = row(&mut r, n, -5.0, 5.0);
        let dy = row(&mut r, n, -1.0, 1.0);
        let bias = row(&mut r, n, -1.0, 1.0);
        let bools: Vec<bool> = (0..n).map(|j| j % 5 != 2).collect();
        let mut bits = vec![0u8; n.div_ceil(8)];
        for (j, &b) in bools.iter().enumerate() {
            bits[j / 8] |= u8::from(b) << (j % 8);
        }
        let train = SoftmaxDropout::train(0.3, Dropout::new(0.2).unwrap(), key).unwrap();
        for op in [
            train.with_mask(Mask::none().with_columns(&bools)),
            train.with_mask(Mask::sliding_window(n / 2, 50).with_column_bits(&bits)),
            train.with_mask(Mask::key_len(n / 2 + 1)),
            SoftmaxDropout::eval(0.3).unwrap(),
            SoftmaxDropout::train(0.3, Dropout::new(0.1).unwrap(), key)
                .unwrap()
                .with_mask(Mask::band(n / 2, 9, 30)),
            SoftmaxDropout::train(-0.3, Dropout::new(0.7).unwrap(), key)
                .unwrap()
                .with_bias(&bias)
                .with_mask(Mask::causal(n / 3)),
        ] {
            let mut y = vec![0.0; n];
            let stats = op.forward(8, &x, &mut y).unwrap();
            let (mut want, mut got) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let probs = Probabilities::Recompute { logits: &x, stats };
            op.with_kernel::<Scalar>()
                .backward(8, probs, &dy, &mut want)
                .unwrap();
            op.with_kernel::<K>()
                .backward(8, probs, &dy, &mut got)
                .unwrap();
            let scale = want.iter().fold(1e-6f32, |a, &v| a.max(v.abs()));
            for j in 0..n {
                assert_eq!(want[j] == 0.0, got[j] == 0.0, "{} n={n} j={j}", K::NAME);
                assert!(
                    (want[j] - got[j]).abs() <= 1e-5 * scale,
                    "{} n={n} j={j}: {} vs {}",
                    K::NAME,
                    got[j],
                    want[j]
                );
            }
        }
    }
}

#[test]
fn wide_backward_matches_scalar() {
    variants_agree::<dropmax::Wide4>();
    variants_agree::<dropmax::Wide8>();
    variants_agree::<dropmax::Wide16>();
    #[cfg(target_arch = "x86_64")]
    if common::runnable::<dropmax::Avx2>() {
        variants_agree::<dropmax::Avx2>();
    }
    #[cfg(target_arch = "x86_64")]
    if common::runnable::<dropmax::Avx512>() {
        variants_agree::<dropmax::Avx512>();
    }
}

#[test]
fn special_rows_backward() {
    let op = SoftmaxDropout::train(1.0, Dropout::new(0.5).unwrap(), DropoutKey::new(1, 2)).unwrap();
    let dy = [1.0f32, -1.0, 0.5, 2.0];
    for_each_kernel!(K => {
        let op = op.with_kernel::<K>();
        let mut dx = [9.0f32; 4];
        // Fully masked: zeros.
        op.with_mask(Mask::key_len(0)).backward(0, Probabilities::Recompute { logits: &[1.0; 4], stats: RowStats::EMPTY }, &dy, &mut dx).unwrap();
        assert_eq!(dx, [0.0; 4]);
        // A NaN row: the visible gradient is NaN.
        let x = [0.0, f32::NAN, 1.0, 2.0];
        let stats = op.forward(0, &x, &mut [0.0; 4]).unwrap();
        op.backward(0, Probabilities::Recompute { logits: &x, stats }, &dy, &mut dx).unwrap();
        assert!(dx.iter().all(|v| v.is_nan()));
        // p = 1: nothing survives, no gradient.
        let all = SoftmaxDropout::train(1.0, Dropout::new(1.0).unwrap(), DropoutKey::new(1, 2)).unwrap().with_kernel::<K>();
        all.backward(0, Probabilities::Saved(&[0.25; 4]), &dy, &mut dx).unwrap();
        assert_eq!(dx, [0.0; 4]);
    });
}

/// The exported mask is `keep` bit for bit, for lengths around every boundary.
#[test]
fn mask_bits_equal_keep() {
    let key = DropoutKey::new(0x5EED, u64::MAX - 2);
    for p in [0.0, 0.1, 0.5, 1.0 / 3.0, 1.0] {
        let d = Dropout::new(p).unwrap();
        for bytes in [0usize, 1, 7, 8, 9, 63, 64, 511, 512, 513, 1100] {
            let mut out = vec![0xA5u8; bytes];
            d.mask_bits(key, 4, &mut out).unwrap();
            for j in 0..bytes * 8 {
                let bit = out[j / 8] >> (j % 8) & 1 == 1;
                assert_eq!(
                    bit,
                    dropmax::keep(&d, key, 4, j as u32),
                    "p={p} bytes={bytes} j={j}"
                );
            }
        }
    }
}

/// `mask_bits_with` gives `mask_bits`'s bytes on every variant (a firmware build calls it with
/// `Scalar` so that nothing of the wide tables is linked).
#[test]
fn mask_bits_with_every_variant_equals_mask_bits() {
    let key = DropoutKey::new(0x5EED, 77);
    for p in [0.0, 0.1, 0.7, 1.0] {
        let d = Dropout::new(p).unwrap();
        for bytes in [0usize, 1, 9, 512, 513, 1100] {
            let mut want = vec![0u8; bytes];
            d.mask_bits(key, 9, &mut want).unwrap();
            for_each_kernel!(K => {
                let mut out = vec![0xA5u8; bytes];
                d.mask_bits_with::<K>(key, 9, &mut out).unwrap();
                assert_eq!(out, want, "{} p={p} bytes={bytes}", K::NAME);
            });
        }
    }
}
