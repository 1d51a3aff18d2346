//! Attention sinks (`SoftmaxDropout::with_sink`): the sink logit joins each row's maximum and
//! sum without a column. Checked on every kernel variant against the exact (`f64`) softmax of
//! the row's scores with the sink appended, within the rows' documented bound; `-inf` is no sink
//! bit for bit; the special rows; split rows; the backward pass with the sink's statistics.

mod common;

use common::*;
use dropmax::{
    Dropout, DropoutKey, Mask, MatrixProbabilities, Probabilities, RowKernel, RowStats,
    SoftmaxDropout, keep,
};

const KEY: DropoutKey = DropoutKey::new(0x5151_5151_0000_0001, 3);
const SCALE: f32 = 0.5;

/// The operations under test, and whether each has the causal band `0..=n/3 + i` (row `i`):
/// evaluation, training, training with the band.
fn ops(n: usize) -> Vec<(SoftmaxDropout<'static>, bool)> {
    let train = SoftmaxDropout::train(SCALE, Dropout::new(0.1).unwrap(), KEY).unwrap();
    vec![
        (SoftmaxDropout::eval(SCALE).unwrap(), false),
        (train, false),
        (train.with_mask(Mask::causal(n / 3)), true),
    ]
}

/// Within the bound of the exact softmax of `z` with `sink` appended; the kept pattern is
/// `keep` exactly; masked columns `+0`; the statistics `(m, S)` of the row with its sink.
fn check_row(
    what: &str,
    z: &[f32],
    sink: f32,
    y: &[f32],
    st: RowStats,
    train: Option<(&Dropout, u64)>,
) {
    let mut zs = z.to_vec();
    zs.push(sink);
    let (want, m) = oracle(&zs, train.map(|(d, r)| (d, KEY, r)));
    let s = exact_sum(&zs);
    let rescale = train.map_or(1.0, |(d, _)| 1.0 / d.keep_probability());
    assert_eq!(st.max as f64, m, "{what}: max");
    let rel_s = (st.sum as f64 - s).abs() / s;
    assert!(rel_s <= 2e-6, "{what}: S = {} against {s}", st.sum);
    for (j, (&v, &w)) in y.iter().zip(&want).enumerate() {
        if z[j] == f32::NEG_INFINITY {
            assert_eq!(v.to_bits(), 0, "{what}: masked column {j} is {v}");
            continue;
        }
        if let Some((d, r)) = train
            && !keep(d, KEY, r, j as u32)
        {
            assert_eq!(v.to_bits(), 0, "{what}: dropped column {j} is {v}");
            continue;
        }
        let b = bound(w, z[j], m, rescale, s, 1e-6);
        assert!(
            (v as f64 - w).abs() <= b,
            "{what}: column {j}: {v} against {w} (bound {b:e})"
        );
    }
}

/// Rows of many lengths, with sinks far below, below, near, above and far above their
/// maximum: every variant within the bound, one row at a time and as a matrix.
#[test]
fn rows_with_a_sink_are_the_softmax_with_the_sink() {
    let mut r = rng(77);
    for_each_kernel!(K => {
        for n in [1usize, 7, 16, 33, 64, 65, 128, 200, 1024, 4100] {
            let rows = 5;
            let x = row(&mut r, rows * n, -6.0, 6.0);
            for (op, causal) in ops(n) {
                let op = op.with_kernel::<K>();
                let train = match op.mode() {
                    dropmax::Mode::Train { dropout, .. } => Some(dropout),
                    dropmax::Mode::Eval => None,
                };
                for dz in [-100.0f32, -2.0, 0.0, 0.3, 3.0, 40.0, 95.0] {
                    let mut y = vec![f32::NAN; rows * n];
                    let mut st = vec![RowStats::EMPTY; rows];
                    // The sink relative to the first row's maximum score.
                    let m0 = x[..n].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * SCALE;
                    let sink = m0 + dz;
                    let op = op.with_sink(sink);
                    op.forward_rows(11, n, &x, &mut y, Some(&mut st)).unwrap();
                    for i in 0..rows {
                        let xr = &x[i * n..(i + 1) * n];
                        let z: Vec<f32> = xr
                            .iter()
                            .enumerate()
                            .map(|(j, &v)| {
                                if causal && j > n / 3 + i {
                                    f32::NEG_INFINITY
                                } else {
                                    SCALE * v
                                }
                            })
                            .collect();
                        let what = format!("{} n={n} row {i} sink {dz:+} causal {causal}", K::NAME);
                        let row_id = 11 + i as u64;
                        check_row(&what, &z, sink, &y[i * n..(i + 1) * n], st[i],
                            train.as_ref().map(|d| (d, row_id)));
                        // One row alone, out of place and in place: the matrix's row bit for bit.
                        let one = op.with_mask(match causal {
                            true => Mask::causal(n / 3 + i),
                            false => Mask::none(),
                        });
                        let mut y1 = vec![f32::NAN; n];
                        let s1 = one.forward(row_id, xr, &mut y1).unwrap();
                        assert_eq!(bits(&y1), bits(&y[i * n..(i + 1) * n]), "{what}: forward");
                        assert_eq!(stats_bits(&[s1]), stats_bits(&[st[i]]), "{what}: stats");
                    }
                }
            }
        }
    });
}

/// `-inf` is no sink, bit for bit, on every variant and path.
#[test]
fn a_sink_of_minus_infinity_is_no_sink() {
    let mut r = rng(78);
    for_each_kernel!(K => {
        for n in [1usize, 16, 64, 100, 1024] {
            let x = row(&mut r, 9 * n, -8.0, 8.0);
            for (op, _) in ops(n) {
                let op = op.with_kernel::<K>();
                let mut a = vec![0.0; x.len()];
                let mut b = vec![0.0; x.len()];
                let (mut sa, mut sb) = (vec![RowStats::EMPTY; 9], vec![RowStats::EMPTY; 9]);
                op.forward_rows(0, n, &x, &mut a, Some(&mut sa)).unwrap();
                op.with_sink(f32::NEG_INFINITY)
                    .forward_rows(0, n, &x, &mut b, Some(&mut sb))
                    .unwrap();
                assert_eq!(bits(&a), bits(&b), "{} n={n}", K::NAME);
                assert_eq!(stats_bits(&sa), stats_bits(&sb));
            }
        }
    });
}

/// Special rows: no visible column, only `-inf` scores, a NaN or `+inf` sink, `+inf` scores.
#[test]
fn special_rows_with_a_sink() {
    for_each_kernel!(K => {
        for n in [3usize, 64, 300] {
            let eval = SoftmaxDropout::eval(1.0).unwrap().with_kernel::<K>();
            let x: Vec<f32> = (0..n).map(|j| (j % 7) as f32 - 3.0).collect();
            let what = |s: &str| format!("{} n={n}: {s}", K::NAME);
            // All scores -inf: the sink takes everything.
            let minus = vec![f32::NEG_INFINITY; n];
            let mut y = vec![f32::NAN; n];
            let st = eval.with_sink(2.5).forward(0, &minus, &mut y).unwrap();
            assert!(y.iter().all(|v| v.to_bits() == 0), "{}", what("all -inf"));
            assert_eq!((st.max, st.sum), (2.5, 1.0), "{}", what("all -inf stats"));
            // No visible column (a key length of 0): the same.
            let st = eval
                .with_mask(Mask::none().with_key_len(0))
                .with_sink(-1.0)
                .forward(0, &x, &mut y)
                .unwrap();
            assert!(y.iter().all(|v| v.to_bits() == 0), "{}", what("no visible column"));
            assert_eq!((st.max, st.sum), (-1.0, 1.0), "{}", what("no visible column stats"));
            // A NaN sink: a NaN row (every finite score NaN, -inf scores 0).
            let mut xn = x.clone();
            xn[n / 2] = f32::NEG_INFINITY;
            let st = eval.with_sink(f32::NAN).forward(0, &xn, &mut y).unwrap();
            assert!(st.max.is_nan() && st.sum.is_nan(), "{}", what("NaN sink stats"));
            for (j, &v) in y.iter().enumerate() {
                if j == n / 2 {
                    assert_eq!(v.to_bits(), 0, "{}", what("NaN sink, -inf score"));
                } else {
                    assert!(v.is_nan(), "{}", what("NaN sink, finite score"));
                }
            }
            // A +inf sink: zeros, (+inf, 1); with two +inf scores, each gets 1/3.
            let st = eval.with_sink(f32::INFINITY).forward(0, &x, &mut y).unwrap();
            assert!(y.iter().all(|v| v.to_bits() == 0), "{}", what("+inf sink"));
            assert_eq!((st.max, st.sum), (f32::INFINITY, 1.0), "{}", what("+inf sink stats"));
            let mut xi = x.clone();
            xi[0] = f32::INFINITY;
            xi[n - 1] = f32::INFINITY;
            let st = eval.with_sink(f32::INFINITY).forward(0, &xi, &mut y).unwrap();
            assert_eq!((st.max, st.sum), (f32::INFINITY, 3.0), "{}", what("+inf both stats"));
            assert_eq!((y[0], y[n - 1]), (1.0 / 3.0, 1.0 / 3.0), "{}", what("+inf both"));
            // +inf scores and a finite sink: the sink gets nothing.
            let st = eval.with_sink(50.0).forward(0, &xi, &mut y).unwrap();
            assert_eq!((st.max, st.sum), (f32::INFINITY, 2.0), "{}", what("+inf scores"));
            assert_eq!((y[0], y[n - 1]), (0.5, 0.5), "{}", what("+inf scores"));
        }
    });
}

/// A split row with a sink: the chunk at column 0 carries it; masks bit-identical to the
/// whole row, values within the bound, the merged statistics the whole row's.
#[test]
fn split_rows_carry_the_sink_once() {
    let mut r = rng(79);
    for_each_kernel!(K => {
        for n in [64usize, 200, 1000, 4096] {
            let x = row(&mut r, n, -6.0, 6.0);
            for sink in [-3.0f32, 2.0, 9.0] {
                for (op, _) in ops(n) {
                    let op = op.with_kernel::<K>().with_sink(sink);
                    let mut whole = vec![0.0; n];
                    let want = op.forward(4, &x, &mut whole).unwrap();
                    for chunk in [64usize, 192, 4096] {
                        let mut y = vec![f32::NAN; n];
                        let mut stats = RowStats::EMPTY;
                        let mut scratch = vec![0.0; chunk];
                        for (c, xc) in x.chunks(chunk).enumerate() {
                            let s = op.chunk_stats(c * chunk, xc, &mut scratch[..xc.len()]);
                            stats = stats.merge(s.unwrap());
                        }
                        let what = format!("{} n={n} sink {sink} chunk {chunk}", K::NAME);
                        assert_eq!(stats.max, want.max, "{what}");
                        assert!((stats.sum / want.sum - 1.0).abs() <= 2e-6, "{what}: S");
                        for (c, (xc, yc)) in x.chunks(chunk).zip(y.chunks_mut(chunk)).enumerate() {
                            op.forward_chunk(4, c * chunk, stats, xc, yc).unwrap();
                        }
                        for (j, (&a, &b)) in y.iter().zip(&whole).enumerate() {
                            assert_eq!(a == 0.0, b == 0.0, "{what}: column {j} zero pattern");
                            assert!((a - b).abs() <= 4e-6 * b.abs() + 1e-37, "{what}: {j}");
                        }
                    }
                }
            }
        }
    });
}

/// The backward pass with a sink: `dx` from the saved `P` and from the logits with the sink's
/// statistics agree, and both match the exact gradient of the row with the sink,
/// `dx_j = s P_j (G_j - sum_k P_k G_k)` with `P` normalised over the columns and the sink.
#[test]
fn backward_with_a_sink() {
    let mut r = rng(80);
    for_each_kernel!(K => {
        for n in [16usize, 64, 300, 2048] {
            let rows = 3;
            let x = row(&mut r, rows * n, -5.0, 5.0);
            let dy = row(&mut r, rows * n, -1.0, 1.0);
            for sink in [-2.0f32, 1.5, 6.0] {
                let train = SoftmaxDropout::train(SCALE, Dropout::new(0.2).unwrap(), KEY)
                    .unwrap()
                    .with_kernel::<K>()
                    .with_sink(sink);
                let eval = SoftmaxDropout::eval(SCALE).unwrap().with_kernel::<K>().with_sink(sink);
                let mut p = vec![0.0; rows * n];
                let mut stats = vec![RowStats::EMPTY; rows];
                eval.forward_rows(0, n, &x, &mut p, Some(&mut stats)).unwrap();
                let mut dx_saved = vec![0.0; rows * n];
                train
                    .backward_rows(0, n, MatrixProbabilities::Saved(&p), &dy, &mut dx_saved)
                    .unwrap();
                let mut dx_re = vec![0.0; rows * n];
                let probs = MatrixProbabilities::Recompute { logits: &x, stats: &stats };
                train.backward_rows(0, n, probs, &dy, &mut dx_re).unwrap();
                let d = Dropout::new(0.2).unwrap();
                for i in 0..rows {
                    let xr = &x[i * n..(i + 1) * n];
                    let mut zs: Vec<f64> = xr.iter().map(|&v| f64::from(SCALE * v)).collect();
                    zs.push(f64::from(sink));
                    let m = zs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = zs.iter().map(|z| (z - m).exp()).sum();
                    let pr: Vec<f64> = zs[..n].iter().map(|z| (z - m).exp() / s).collect();
                    let g: Vec<f64> = (0..n)
                        .map(|j| {
                            if keep(&d, KEY, i as u64, j as u32) {
                                f64::from(dy[i * n + j]) / d.keep_probability()
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let dot: f64 = pr.iter().zip(&g).map(|(p, g)| p * g).sum();
                    let scale_g = g.iter().fold(0.0f64, |a, v| a.max(v.abs())) + dot.abs();
                    for j in 0..n {
                        let want = f64::from(SCALE) * pr[j] * (g[j] - dot);
                        // |dx| <= s P (|G| + |dot|): relative 1e-5 of that scale.
                        let tol = 1e-5 * f64::from(SCALE) * pr[j] * scale_g + 1e-30;
                        for (name, dx) in [("saved", &dx_saved), ("recompute", &dx_re)] {
                            let v = f64::from(dx[i * n + j]);
                            assert!(
                                (v - want).abs() <= tol,
                                "{} n={n} sink {sink} row {i} col {j} {name}: {v} against {want}",
                                K::NAME
                            );
                        }
                    }
                }
            }
        }
    });
}

/// The loss `L = sum_j dy_j Y_j` of one row as a function of its sink, exactly (`f64`): the
/// reference the sink's gradient is checked against by central differences.
fn loss(z: &[f64], sink: f64, dy: &[f64], kept: &[f64]) -> f64 {
    let m = z.iter().copied().fold(sink, f64::max);
    let s: f64 = z.iter().map(|v| (v - m).exp()).sum::<f64>() + (sink - m).exp();
    z.iter()
        .zip(dy)
        .zip(kept)
        .map(|((v, g), k)| g * k * (v - m).exp() / s)
        .sum()
}

/// `dL/dsink` from `backward_sink` and `backward_rows_sink`: against central differences of
/// the exact loss, on every variant, saved and recomputed `P`, evaluation and training.
#[test]
fn the_sink_gradient_is_the_derivative_of_the_loss() {
    let mut r = rng(81);
    let d = Dropout::new(0.25).unwrap();
    for_each_kernel!(K => {
        for n in [1usize, 16, 64, 129, 1500] {
            let rows = 4;
            let x = row(&mut r, rows * n, -4.0, 4.0);
            let dy = row(&mut r, rows * n, -1.0, 1.0);
            for sink in [-7.0f32, 0.0, 1.5, 5.0] {
                for training in [false, true] {
                    let base = if training {
                        SoftmaxDropout::train(SCALE, d, KEY).unwrap()
                    } else {
                        SoftmaxDropout::eval(SCALE).unwrap()
                    };
                    let op = base.with_kernel::<K>().with_sink(sink);
                    let eval = SoftmaxDropout::eval(SCALE).unwrap().with_kernel::<K>();
                    let eval = eval.with_sink(sink);
                    let mut p = vec![0.0; rows * n];
                    let mut stats = vec![RowStats::EMPTY; rows];
                    eval.forward_rows(0, n, &x, &mut p, Some(&mut stats)).unwrap();
                    let mut total = 0.0f64;
                    let mut scale_sum = 0.0f64;
                    for (i, &st) in stats.iter().enumerate() {
                        let at = i * n..(i + 1) * n;
                        let mut dx = vec![0.0; n];
                        let probs = Probabilities::Saved(&p[at.clone()]);
                        let g = op.backward_sink(i as u64, probs, st, &dy[at.clone()], &mut dx);
                        let g = g.unwrap();
                        let mut dx2 = vec![0.0; n];
                        let probs = Probabilities::Recompute { logits: &x[at.clone()], stats: st };
                        let g2 = op.backward_sink(i as u64, probs, st, &dy[at.clone()], &mut dx2);
                        let g2 = g2.unwrap();
                        // The reference: central differences of the exact loss.
                        let z: Vec<f64> = x[at.clone()].iter().map(|&v| f64::from(SCALE * v)).collect();
                        let dyr: Vec<f64> = dy[at.clone()].iter().map(|&v| f64::from(v)).collect();
                        let kept = kept_factors(training.then_some((&d, KEY)), i as u64, n);
                        let h = 1e-4;
                        let s0 = f64::from(sink);
                        let want = (loss(&z, s0 + h, &dyr, &kept) - loss(&z, s0 - h, &dyr, &kept))
                            / (2.0 * h);
                        // The scale of the terms: P_sink sum_j P_j |G_j|.
                        let m = z.iter().copied().fold(s0, f64::max);
                        let s: f64 = z.iter().map(|v| (v - m).exp()).sum::<f64>() + (s0 - m).exp();
                        let p_sink = (s0 - m).exp() / s;
                        let scale: f64 = p_sink
                            * z.iter()
                                .zip(&dyr)
                                .zip(&kept)
                                .map(|((v, g), k)| (v - m).exp() / s * (g * k).abs())
                                .sum::<f64>();
                        let tol = 1e-5 * scale + 1e-9;
                        let what = format!("{} n={n} sink {sink} train {training} row {i}", K::NAME);
                        assert!((f64::from(g) - want).abs() <= tol, "{what}: saved {g} against {want}");
                        assert!((f64::from(g2) - want).abs() <= tol, "{what}: recompute {g2} against {want}");
                        total += want;
                        scale_sum += scale;
                    }
                    let mut dx = vec![0.0; rows * n];
                    let g = op
                        .backward_rows_sink(0, n, MatrixProbabilities::Saved(&p), &stats, &dy, &mut dx)
                        .unwrap();
                    assert!(
                        (f64::from(g) - total).abs() <= 1e-5 * scale_sum + 1e-9,
                        "{} n={n} sink {sink}: rows {g} against {total}",
                        K::NAME
                    );
                }
            }
        }
    });
    // Without a sink the gradient is 0.
    let op = SoftmaxDropout::eval(1.0).unwrap();
    let (x, dy) = ([0.5f32, -1.0, 2.0], [1.0f32, 0.5, -0.25]);
    let mut p = [0.0; 3];
    let st = op.forward(0, &x, &mut p).unwrap();
    let mut dx = [0.0; 3];
    let g = op
        .backward_sink(0, Probabilities::Saved(&p), st, &dy, &mut dx)
        .unwrap();
    assert_eq!(g, 0.0);
}

/// `AttentionBatch::with_sinks`: row `r` of head `h` is `op.with_sink(sinks[h])` on that row,
/// bit for bit, forward and backward, dense (one matrix call per block) and padded (row by
/// row); `backward_sinks` sums each head's rows' sink gradients; a sinks slice not one per head
/// is an error that writes nothing.
#[test]
fn batch_rows_take_their_heads_sink() {
    use dropmax::{AttentionBatch, AttentionShape, Error};
    let mut r = rng(82);
    let op = SoftmaxDropout::train(SCALE, Dropout::new(0.2).unwrap(), KEY).unwrap();
    let sinks = [-1.0f32, 3.0, f32::NEG_INFINITY];
    for shape in [
        AttentionShape::new(2, 3, 4, 70),
        AttentionShape::new(2, 3, 4, 70).with_row_stride(72),
    ] {
        let n = shape.min_len().unwrap();
        let x = row(&mut r, n, -6.0, 6.0);
        let dy = row(&mut r, n, -1.0, 1.0);
        let batch = AttentionBatch::new(op, shape).causal(66).with_sinks(&sinks);
        let mut y = vec![f32::NAN; n];
        let mut st = vec![RowStats::EMPTY; 24];
        batch.forward(9, &x, &mut y, Some(&mut st)).unwrap();
        let mut dx = vec![f32::NAN; n];
        let probs = MatrixProbabilities::Recompute {
            logits: &x,
            stats: &st,
        };
        batch.backward(9, probs, &dy, &mut dx).unwrap();
        for (rr, &want) in st.iter().enumerate() {
            let (h, i) = ((rr / 4) % 3, rr % 4);
            let at = rr * shape.row_stride..rr * shape.row_stride + 70;
            let one = op.with_sink(sinks[h]).with_mask(Mask::causal(66 + i));
            let mut y1 = vec![0.0; 70];
            let s1 = one.forward(9 + rr as u64, &x[at.clone()], &mut y1).unwrap();
            assert_eq!(bits(&y1), bits(&y[at.clone()]), "row {rr}: forward");
            assert_eq!(stats_bits(&[s1]), stats_bits(&[want]), "row {rr}: stats");
            let mut dx1 = vec![0.0; 70];
            let probs = Probabilities::Recompute {
                logits: &x[at.clone()],
                stats: s1,
            };
            one.backward(9 + rr as u64, probs, &dy[at.clone()], &mut dx1)
                .unwrap();
            assert_eq!(bits(&dx1), bits(&dx[at]), "row {rr}: backward");
        }
        // Per-head sink gradients: `dx` as `backward`'s bit for bit, `dsinks[h]` the sum of
        // the rows' `backward_sink` terms (the same terms, added in f64 both ways).
        let mut dx3 = vec![f32::NAN; n];
        let mut dsinks = [f32::NAN; 3];
        let probs = MatrixProbabilities::Recompute {
            logits: &x,
            stats: &st,
        };
        batch
            .backward_sinks(9, probs, &st, &dy, &mut dx3, &mut dsinks)
            .unwrap();
        assert_eq!(bits(&dx3), bits(&dx), "backward_sinks: dx");
        let mut want = [0.0f64; 3];
        let mut scale = [0.0f64; 3];
        for (rr, &s1) in st.iter().enumerate() {
            let (h, i) = ((rr / 4) % 3, rr % 4);
            let at = rr * shape.row_stride..rr * shape.row_stride + 70;
            let one = op.with_sink(sinks[h]).with_mask(Mask::causal(66 + i));
            let mut dx1 = vec![0.0; 70];
            let probs = Probabilities::Recompute {
                logits: &x[at.clone()],
                stats: s1,
            };
            let g = one
                .backward_sink(9 + rr as u64, probs, s1, &dy[at], &mut dx1)
                .unwrap();
            want[h] += f64::from(g);
            scale[h] += f64::from(g.abs());
        }
        assert_eq!(dsinks[2], 0.0, "a head without a sink has no gradient");
        for h in 0..2 {
            assert!(scale[h] > 0.0);
            assert!(
                (f64::from(dsinks[h]) - want[h]).abs() <= 1e-6 * scale[h],
                "head {h}: dsink {} against the rows' {}",
                dsinks[h],
                want[h]
            );
        }
        // Wrong lengths: nothing written.
        let mut dx4 = vec![f32::NAN; n];
        let mut d4 = [f32::NAN; 2];
        let probs = MatrixProbabilities::Saved(&y);
        assert_eq!(
            batch.backward_sinks(9, probs, &st, &dy, &mut dx4, &mut d4),
            Err(Error::LengthMismatch {
                expected: 3,
                found: 2
            })
        );
        let mut d4 = [f32::NAN; 3];
        assert_eq!(
            batch.backward_sinks(9, probs, &st[1..], &dy, &mut dx4, &mut d4),
            Err(Error::LengthMismatch {
                expected: 24,
                found: 23
            })
        );
        assert!(dx4.iter().chain(&d4).all(|v| v.is_nan()));
        let short = AttentionBatch::new(op, shape).with_sinks(&sinks[..2]);
        let mut y2 = vec![f32::NAN; n];
        assert_eq!(
            short.forward(0, &x, &mut y2, None),
            Err(Error::LengthMismatch {
                expected: 3,
                found: 2
            })
        );
        assert!(y2.iter().all(|v| v.is_nan()));
    }
}
