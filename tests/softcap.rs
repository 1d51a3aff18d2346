//! Logit soft-capping (`SoftmaxDropout::with_softcap`): `z_j = c tanh(s x_j / c) + b_j`. Checked
//! on every kernel variant against the exact (`f64`) formula, within the documented bound (the
//! row's bound plus `2 ((u_T + 3u) c + u max |b|)` relative); the special values; the backward pass against
//! the exact gradient through the cap and against central differences of the exact loss; the
//! saved-`P` backward refused; split rows; invalid caps refused.

mod common;

use common::*;
use dropmax::{
    Dropout, DropoutKey, Error, MAX_TANH_REL_ERROR, Mask, MatrixProbabilities, Probabilities,
    RowKernel, RowStats, SoftmaxDropout, keep,
};

const KEY: DropoutKey = DropoutKey::new(0x0C0F_FEE0_0000_0007, 11);
const U: f64 = 1.0 / 16_777_216.0;

/// The extra relative error a cap `c` allows (the docs' `2 ((u_T + 3u) c + u max |b|)`; the
/// bias here stays below 2, under `c`, so its term is folded in as one more `u c`).
fn cap_rel(c: f32) -> f64 {
    2.0 * (f64::from(MAX_TANH_REL_ERROR) + 4.0 * U) * f64::from(c)
}

/// The exact capped scores of a row (`-inf` for excluded columns), in `f64`.
fn capped(
    x: &[f32],
    bias: Option<&[f32]>,
    s: f32,
    c: f32,
    visible: impl Fn(usize) -> bool,
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(j, &v)| {
            let b = bias.map_or(0.0, |b| f64::from(b[j]));
            if !visible(j) || v == f32::NEG_INFINITY || b == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                f64::from(c) * (f64::from(s) * f64::from(v) / f64::from(c)).tanh() + b
            }
        })
        .collect()
}

/// The exact softmax of `z` (`f64` scores) and its `(m, S)`.
fn softmax(z: &[f64]) -> (Vec<f64>, f64, f64) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
    (z.iter().map(|v| (v - m).exp() / s).collect(), m, s)
}

/// Rows of many lengths, caps small and large, scales of both signs, with and without a bias,
/// causal or not, evaluation and training: every variant within the bound of the exact formula,
/// dropped columns exactly 0, the statistics those of the capped scores.
#[test]
fn capped_rows_match_the_exact_formula() {
    let mut r = rng(90);
    let d = Dropout::new(0.1).unwrap();
    for_each_kernel!(K => {
        for n in [1usize, 7, 16, 33, 64, 100, 257, 1024, 3000] {
            let rows = 3;
            let x = row(&mut r, rows * n, -40.0, 40.0);
            let bias = row(&mut r, n, -2.0, 2.0);
            for (c, s) in [(5.0f32, 0.5f32), (30.0, 1.0), (50.0, -0.7)] {
                for (train, with_bias, causal) in
                    [(false, false, false), (true, false, true), (false, true, true), (true, true, false)]
                {
                    let base = if train {
                        SoftmaxDropout::train(s, d, KEY).unwrap()
                    } else {
                        SoftmaxDropout::eval(s).unwrap()
                    };
                    let mut op = base.with_kernel::<K>().with_softcap(c).unwrap();
                    if with_bias {
                        op = op.with_bias(&bias);
                    }
                    if causal {
                        op = op.with_mask(Mask::causal(n / 2));
                    }
                    let mut y = vec![f32::NAN; rows * n];
                    let mut st = vec![RowStats::EMPTY; rows];
                    op.forward_rows(5, n, &x, &mut y, Some(&mut st)).unwrap();
                    let rescale = if train { 1.0 / d.keep_probability() } else { 1.0 };
                    for i in 0..rows {
                        let what = format!(
                            "{} n={n} c={c} s={s} train {train} bias {with_bias} causal {causal} row {i}",
                            K::NAME
                        );
                        let b = with_bias.then_some(&bias[..]);
                        let z = capped(&x[i * n..(i + 1) * n], b, s, c, |j| !causal || j <= n / 2 + i);
                        let (p, m, sum) = softmax(&z);
                        let tol_m = f64::from(c) * (f64::from(MAX_TANH_REL_ERROR) + 3.0 * U) + 4.0 * U * m.abs();
                        assert!((f64::from(st[i].max) - m).abs() <= tol_m, "{what}: max {} against {m}", st[i].max);
                        let tol_s = 2e-6 + cap_rel(c);
                        assert!((f64::from(st[i].sum) - sum).abs() <= tol_s * sum, "{what}: S {} against {sum}", st[i].sum);
                        let row_id = 5 + i as u64;
                        for j in 0..n {
                            let v = y[i * n + j];
                            let kept = !train || keep(&d, KEY, row_id, j as u32);
                            if z[j] == f64::NEG_INFINITY || !kept {
                                assert_eq!(v.to_bits(), 0, "{what}: column {j} is {v}, not +0");
                                continue;
                            }
                            let want = p[j] * rescale;
                            let rel = 1e-6 + U * (z[j] - m).abs() + cap_rel(c);
                            let tol = rel * want + f64::from(f32::MIN_POSITIVE) * rescale / sum;
                            assert!(
                                (f64::from(v) - want).abs() <= tol,
                                "{what}: column {j}: {v} against {want} (tol {tol:e})"
                            );
                        }
                    }
                }
            }
        }
    });
}

/// `+inf` logits cap to `c` (to `-c` with a negative scale), `-inf` logits stay masked, NaN
/// makes a NaN row; a cap changes nothing about which columns are dropped.
#[test]
fn special_values_through_the_cap() {
    let c = 8.0f32;
    for_each_kernel!(K => {
        for n in [3usize, 20, 70] {
            let mut x: Vec<f32> = (0..n).map(|j| (j as f32) * 0.37 - 3.0).collect();
            x[1] = f32::INFINITY;
            x[2] = f32::NEG_INFINITY;
            for s in [1.5f32, -1.5] {
                let op = SoftmaxDropout::eval(s).unwrap().with_kernel::<K>().with_softcap(c).unwrap();
                let mut y = vec![f32::NAN; n];
                let st = op.forward(0, &x, &mut y).unwrap();
                let z = capped(&x, None, s, c, |_| true);
                assert_eq!(z[1], f64::from(c) * s.signum() as f64);
                let (p, m, _) = softmax(&z);
                assert_eq!(y[2].to_bits(), 0, "{}: a -inf logit is masked", K::NAME);
                assert!(st.max.is_finite() && (f64::from(st.max) - m).abs() < 1e-5);
                for j in 0..n {
                    let tol = (1e-5 + cap_rel(c)) * p[j] + 1e-30;
                    assert!((f64::from(y[j]) - p[j]).abs() <= tol, "{} s={s} column {j}", K::NAME);
                }
                let mut xn = x.clone();
                xn[0] = f32::NAN;
                let st = op.forward(0, &xn, &mut y).unwrap();
                assert!(st.max.is_nan() && st.sum.is_nan(), "{}: NaN row stats", K::NAME);
                for (j, &v) in y.iter().enumerate() {
                    if j == 2 {
                        assert_eq!(v.to_bits(), 0, "{} n={n} s={s}: NaN row, -inf column", K::NAME);
                    } else {
                        assert!(v.is_nan(), "{}: NaN row column {j} is {v}", K::NAME);
                    }
                }
            }
        }
        // Dropout decisions do not depend on the scores.
        let d = Dropout::new(0.3).unwrap();
        let x: Vec<f32> = (0..300).map(|j| (j as f32).sin() * 20.0).collect();
        let plain = SoftmaxDropout::train(1.0, d, KEY).unwrap().with_kernel::<K>();
        let capped_op = plain.with_softcap(3.0).unwrap();
        let (mut y0, mut y1) = (vec![0.0; 300], vec![0.0; 300]);
        plain.forward(9, &x, &mut y0).unwrap();
        capped_op.forward(9, &x, &mut y1).unwrap();
        for j in 0..300 {
            assert_eq!(y0[j] == 0.0, y1[j] == 0.0, "{}: column {j} kept differently", K::NAME);
        }
    });
}

/// Caps that are not finite and positive are refused.
#[test]
fn invalid_caps_are_refused() {
    let op = SoftmaxDropout::eval(1.0).unwrap();
    for c in [
        0.0f32,
        -0.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ] {
        assert_eq!(
            op.with_softcap(c).err(),
            Some(Error::InvalidSoftcap),
            "c = {c}"
        );
    }
    assert!(op.with_softcap(f32::MIN_POSITIVE).is_ok());
    // `scale / c` overflows: refused (a zero logit would give `0 * inf`).
    assert_eq!(op.with_softcap(1e-45).err(), Some(Error::InvalidSoftcap));
    let big = SoftmaxDropout::eval(1e30).unwrap();
    assert_eq!(big.with_softcap(1e-10).err(), Some(Error::InvalidSoftcap));
    assert!(big.with_softcap(1.0).is_ok());
}

/// The exact gradient of `L = sum_j dy_j Y_j` through the cap:
/// `dx_j = s (1 - t_j^2) P_j (G_j - sum_k P_k G_k)`, `t_j = tanh(s x_j / c)`.
fn exact_grad(x: &[f32], dy: &[f32], s: f32, c: f32, kept: &[f64]) -> Vec<f64> {
    let z = capped(x, None, s, c, |_| true);
    let (p, _, _) = softmax(&z);
    let g: Vec<f64> = dy
        .iter()
        .zip(kept)
        .map(|(&d, k)| f64::from(d) * k)
        .collect();
    let dot: f64 = p.iter().zip(&g).map(|(p, g)| p * g).sum();
    (0..x.len())
        .map(|j| {
            // 1 - t^2 as sech^2: no cancellation in f64 either where `t` nears 1.
            let a = f64::from(s) * f64::from(x[j]) / f64::from(c);
            f64::from(s) / a.cosh().powi(2) * p[j] * (g[j] - dot)
        })
        .collect()
}

/// The backward pass through the cap, recomputing `P` from the logits, one row and as a matrix:
/// within a tolerance of the exact gradient on every variant; saved `P` is refused without
/// writing; and the exact gradient formula itself against central differences of the loss.
#[test]
fn backward_through_the_cap() {
    let mut r = rng(91);
    let d = Dropout::new(0.2).unwrap();
    for_each_kernel!(K => {
        for n in [5usize, 16, 100, 1030] {
            let rows = 2;
            let x = row(&mut r, rows * n, -30.0, 30.0);
            let dy = row(&mut r, rows * n, -1.0, 1.0);
            // (c = 2: `s x / c` reaches 15, where `1 - t^2` computed from `t` would cancel.)
            for (c, s, train) in [(10.0f32, 0.8f32, false), (30.0, -1.2, true), (2.0, 1.0, false)] {
                let base = if train {
                    SoftmaxDropout::train(s, d, KEY).unwrap()
                } else {
                    SoftmaxDropout::eval(s).unwrap()
                };
                let op = base.with_kernel::<K>().with_softcap(c).unwrap();
                let eval = SoftmaxDropout::eval(s).unwrap().with_kernel::<K>().with_softcap(c).unwrap();
                let mut p = vec![0.0; rows * n];
                let mut st = vec![RowStats::EMPTY; rows];
                eval.forward_rows(0, n, &x, &mut p, Some(&mut st)).unwrap();
                let mut dx = vec![f32::NAN; rows * n];
                let probs = MatrixProbabilities::Recompute { logits: &x, stats: &st };
                op.backward_rows(0, n, probs, &dy, &mut dx).unwrap();
                for i in 0..rows {
                    let at = i * n..(i + 1) * n;
                    let kept = kept_factors(train.then_some((&d, KEY)), i as u64, n);
                    let want = exact_grad(&x[at.clone()], &dy[at.clone()], s, c, &kept);
                    let z = capped(&x[at.clone()], None, s, c, |_| true);
                    let (pr, _, _) = softmax(&z);
                    let gmax = dy[at.clone()].iter().zip(&kept).fold(0.0f64, |a, (&v, k)| a.max((f64::from(v) * k).abs()));
                    for j in 0..n {
                        let t = (f64::from(s) * f64::from(x[i * n + j]) / f64::from(c)).tanh();
                        // |dx| <= |s| (1 - t^2) P (|G| + |dot|): relative 1e-5 + the cap's
                        // term of that scale (the derivative itself is accurate to a few ulp:
                        // relative, even where `1 - t^2` is tiny).
                        let scale = f64::from(s.abs()) * pr[j] * 2.0 * gmax;
                        let sech2 = 1.0 / (f64::from(s) * f64::from(x[i * n + j]) / f64::from(c)).cosh().powi(2);
                        let _ = t;
                        let tol = (1e-5 + 2.0 * cap_rel(c) + 16.0 * U) * sech2 * scale + 1e-37;
                        let v = f64::from(dx[i * n + j]);
                        assert!(
                            (v - want[j]).abs() <= tol,
                            "{} n={n} c={c} row {i} col {j}: {v} against {} (tol {tol:e})",
                            K::NAME, want[j]
                        );
                    }
                    // One row alone: the matrix's row bit for bit.
                    let mut dx1 = vec![0.0; n];
                    let probs = Probabilities::Recompute { logits: &x[at.clone()], stats: st[i] };
                    op.backward(i as u64, probs, &dy[at.clone()], &mut dx1).unwrap();
                    assert_eq!(bits(&dx1), bits(&dx[at.clone()]), "{} n={n} row {i}", K::NAME);
                }
                // Saved P: refused, nothing written.
                let mut dx2 = vec![f32::NAN; rows * n];
                assert_eq!(
                    op.backward_rows(0, n, MatrixProbabilities::Saved(&p), &dy, &mut dx2),
                    Err(Error::LogitsRequired)
                );
                assert_eq!(
                    op.backward(0, Probabilities::Saved(&p[..n]), &dy[..n], &mut dx2[..n]),
                    Err(Error::LogitsRequired)
                );
                assert!(dx2.iter().all(|v| v.is_nan()));
            }
        }
    });
    // The formula against central differences of the exact loss, in f64.
    let (s, c) = (0.9f32, 4.0f32);
    let x: Vec<f32> = (0..12).map(|j| (j as f32) * 1.7 - 9.0).collect();
    let dy: Vec<f32> = (0..12).map(|j| ((j * 7 % 5) as f32) * 0.3 - 0.6).collect();
    let kept = vec![1.0; 12];
    let g = exact_grad(&x, &dy, s, c, &kept);
    let loss = |xs: &[f64]| -> f64 {
        let z: Vec<f64> = xs
            .iter()
            .map(|&v| f64::from(c) * (f64::from(s) * v / f64::from(c)).tanh())
            .collect();
        let (p, _, _) = softmax(&z);
        p.iter().zip(&dy).map(|(p, &d)| p * f64::from(d)).sum()
    };
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for j in 0..12 {
        let h = 1e-5;
        let (mut a, mut b) = (x64.clone(), x64.clone());
        a[j] += h;
        b[j] -= h;
        let fd = (loss(&a) - loss(&b)) / (2.0 * h);
        assert!(
            (fd - g[j]).abs() <= 1e-7 + 1e-5 * g[j].abs(),
            "column {j}: {} against {fd}",
            g[j]
        );
    }
}

/// A column the bias masks (`-inf`) has no gradient even when its logit is NaN, with a cap as
/// without; the other columns within the bound of the exact gradient (the bias moves `P`, not
/// the cap's derivative).
#[test]
fn masked_columns_have_no_gradient_through_the_cap() {
    let mut r = rng(93);
    let (s, c) = (0.9f32, 3.0f32);
    for_each_kernel!(K => {
        for n in [9usize, 40, 130] {
            let mut x = row(&mut r, n, -10.0, 10.0);
            let mut bias = row(&mut r, n, -1.0, 1.0);
            bias[3] = f32::NEG_INFINITY;
            x[3] = f32::NAN;
            let dy = row(&mut r, n, -1.0, 1.0);
            let op = SoftmaxDropout::eval(s).unwrap().with_kernel::<K>().with_bias(&bias);
            let op = op.with_softcap(c).unwrap().with_mask(Mask::causal(n - 3));
            let mut p = vec![0.0; n];
            let st = op.forward(0, &x, &mut p).unwrap();
            let mut dx = vec![f32::NAN; n];
            let probs = Probabilities::Recompute { logits: &x, stats: st };
            op.backward(0, probs, &dy, &mut dx).unwrap();
            let visible = |j: usize| j <= n - 3;
            let z = capped(&x, Some(&bias), s, c, visible);
            let (pr, _, _) = softmax(&z);
            let dot: f64 = (0..n).filter(|&j| pr[j] > 0.0).map(|j| pr[j] * f64::from(dy[j])).sum();
            for j in 0..n {
                if z[j] == f64::NEG_INFINITY {
                    assert_eq!(dx[j], 0.0, "{} n={n}: masked column {j} is {}", K::NAME, dx[j]);
                    continue;
                }
                let a = f64::from(s) * f64::from(x[j]) / f64::from(c);
                let want = f64::from(s) / a.cosh().powi(2) * pr[j] * (f64::from(dy[j]) - dot);
                let tol = 1e-4 * f64::from(s) * pr[j] * 2.0 + 1e-30;
                assert!((f64::from(dx[j]) - want).abs() <= tol, "{} n={n} column {j}: {} against {want}", K::NAME, dx[j]);
            }
        }
    });
}

/// A split row with a cap: the chunks' merged statistics and finished values are the unsplit
/// row's, within the bound.
#[test]
fn split_rows_with_a_cap() {
    let mut r = rng(92);
    let (s, c) = (0.6f32, 12.0f32);
    for_each_kernel!(K => {
        let n = 300;
        let x = row(&mut r, n, -50.0, 50.0);
        let op = SoftmaxDropout::eval(s).unwrap().with_kernel::<K>().with_softcap(c).unwrap();
        let mut whole = vec![0.0; n];
        let st = op.forward(0, &x, &mut whole).unwrap();
        let mut scratch = vec![0.0; n];
        let a = op.chunk_stats(0, &x[..128], &mut scratch[..128]).unwrap();
        let b = op.chunk_stats(128, &x[128..], &mut scratch[128..]).unwrap();
        let merged = a.merge(b);
        assert_eq!(merged.max, st.max, "{}", K::NAME);
        assert!((merged.sum - st.sum).abs() <= 2e-6 * st.sum, "{}", K::NAME);
        let mut y = vec![0.0; n];
        op.forward_chunk(0, 0, merged, &x[..128], &mut y[..128]).unwrap();
        op.forward_chunk(0, 128, merged, &x[128..], &mut y[128..]).unwrap();
        let (p, _, _) = softmax(&capped(&x, None, s, c, |_| true));
        for j in 0..n {
            let tol = (2e-6 + cap_rel(c)) * p[j] + 1e-30;
            assert!((f64::from(y[j]) - p[j]).abs() <= tol, "{} column {j}", K::NAME);
        }
    });
}
