//! Contract §1's special values, on every kernel variant, at every position relative to the lane
//! boundaries: the results must be identical (bit for bit) across variants.

mod common;

use common::bits;

use dropmax::{Dropout, DropoutKey, Error, Mask, RowKernel, RowStats, SoftmaxDropout};

const LENGTHS: [usize; 9] = [1, 3, 4, 5, 15, 16, 17, 33, 70];

fn ops() -> [SoftmaxDropout<'static>; 3] {
    let key = DropoutKey::new(7, 3);
    [
        SoftmaxDropout::eval(0.5).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(0.5).unwrap(), key).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(0.1).unwrap(), key).unwrap(),
    ]
}

fn run<K: RowKernel>(op: SoftmaxDropout<'_>, x: &[f32]) -> (Vec<f32>, RowStats) {
    let mut y = vec![123.0; x.len()];
    let st = op.with_kernel::<K>().forward(11, x, &mut y).unwrap();
    let mut z = x.to_vec();
    let st2 = op.with_kernel::<K>().forward_in_place(11, &mut z).unwrap();
    assert_eq!(bits(&y), bits(&z), "{}: in place differs", K::NAME);
    assert_eq!(format!("{st:?}"), format!("{st2:?}"));
    (y, st)
}

/// Runs every variant and returns the scalar result. Special rows (non-finite max) must agree
/// bit for bit; ordinary rows must have the same zeros and values within 2e-6 (the per-variant
/// accuracy is tested in tests/accuracy.rs).
fn all_agree(op: SoftmaxDropout<'_>, x: &[f32]) -> (Vec<f32>, RowStats) {
    let (want, st) = run::<dropmax::Scalar>(op, x);
    for_each_kernel!(K => {
        let (got, gst) = run::<K>(op, x);
        if st.max.is_finite() {
            assert_eq!(gst.max, st.max);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(*g == 0.0, *w == 0.0, "{}: zeros differ on {x:?}", K::NAME);
                assert!((g - w).abs() <= 2e-6 * w.abs(), "{}: {g} vs {w} on {x:?}", K::NAME);
            }
        } else {
            assert_eq!(bits(&got), bits(&want), "{} differs from scalar on {x:?}", K::NAME);
            assert_eq!(format!("{gst:?}"), format!("{st:?}"));
        }
    });
    (want, st)
}

#[test]
fn fully_masked_rows_are_zero_with_lse_minus_inf() {
    for n in LENGTHS {
        let x: Vec<f32> = (0..n).map(|j| j as f32 - 3.0).collect();
        for op in ops() {
            for mask in [Mask::key_len(0), Mask::sliding_window(5, 0)] {
                let (y, st) = all_agree(op.with_mask(mask), &x);
                assert!(y.iter().all(|&v| v.to_bits() == 0), "n={n}: {y:?}");
                assert_eq!(st, RowStats::EMPTY);
                assert_eq!(st.lse(), f32::NEG_INFINITY);
            }
            let all_neg_inf = vec![f32::NEG_INFINITY; n];
            let (y, st) = all_agree(op, &all_neg_inf);
            assert!(y.iter().all(|&v| v.to_bits() == 0));
            assert_eq!(st, RowStats::EMPTY);
            // A zero-length row too.
            let (y, st) = all_agree(op, &[]);
            assert!(y.is_empty());
            assert_eq!(st, RowStats::EMPTY);
        }
    }
}

#[test]
fn minus_inf_logit_or_bias_behaves_like_a_masked_column() {
    for n in LENGTHS.into_iter().filter(|&n| n > 1) {
        for pos in 0..n {
            let x: Vec<f32> = (0..n).map(|j| (j as f32 * 0.37).sin()).collect();
            let mut x_inf = x.clone();
            x_inf[pos] = f32::NEG_INFINITY;
            let mut visible = vec![true; n];
            visible[pos] = false;
            let mut bias = vec![0.0f32; n];
            bias[pos] = f32::NEG_INFINITY;
            // Negative and zero scales too: -inf stays excluded (no +inf, no NaN from 0 * inf).
            for scale in [0.5f32, -2.0, 0.0] {
                let op = SoftmaxDropout::eval(scale).unwrap();
                let (want, _) = all_agree(op.with_mask(Mask::none().with_columns(&visible)), &x);
                let (a, _) = all_agree(op, &x_inf);
                let (b, _) = all_agree(op.with_bias(&bias), &x);
                assert_eq!(a[pos], 0.0);
                assert_eq!(
                    bits(&a),
                    bits(&want),
                    "x=-inf at {pos}, n={n}, scale={scale}"
                );
                // The bias path adds 0.0 to the other columns: identical values.
                assert_eq!(
                    bits(&b),
                    bits(&want),
                    "bias=-inf at {pos}, n={n}, scale={scale}"
                );
            }
        }
    }
}

#[test]
fn nan_in_a_visible_column_makes_the_visible_row_nan() {
    for n in LENGTHS {
        for pos in 0..n {
            let mut x: Vec<f32> = (0..n).map(|j| j as f32 * 0.1).collect();
            x[pos] = f32::from_bits(0x7FC0_1234); // a NaN with a payload
            for op in ops() {
                let (y, st) = all_agree(op, &x);
                assert!(y.iter().all(|v| v.is_nan()), "n={n} pos={pos}: {y:?}");
                assert!(st.max.is_nan() && st.sum.is_nan());
                // Masked columns stay exactly 0 even next to a NaN.
                let q = pos.saturating_sub(1);
                let (y, _) = all_agree(op.with_mask(Mask::causal(q)), &x);
                for (j, v) in y.iter().enumerate() {
                    if j > q {
                        assert_eq!(v.to_bits(), 0, "masked j={j}");
                    } else if pos <= q {
                        assert!(v.is_nan());
                    }
                }
            }
        }
    }
}

/// Long rows, a NaN early in them: a vector maximum may drop a NaN (`maxps` returns one operand
/// when either is NaN), so the row must be found NaN some other way (for plain scores, by its
/// sum: the kernels' `exp` passes NaN through).
#[test]
fn nan_early_in_a_long_row_makes_it_nan() {
    for n in [64, 65, 200, 1024, 1030] {
        for pos in [0, 1, 15, 16, 70 % n, n / 2, n - 1] {
            let mut x: Vec<f32> = (0..n).map(|j| (j as f32 * 0.37).sin()).collect();
            x[pos] = f32::from_bits(0xFFC0_0001);
            for op in ops() {
                let (y, st) = all_agree(op, &x);
                assert!(y.iter().all(|v| v.is_nan()), "n={n} pos={pos}");
                assert!(
                    st.max.is_nan() && st.sum.is_nan(),
                    "n={n} pos={pos}: {st:?}"
                );
            }
        }
    }
}

/// Long rows through the plain-scores path (out of place, `s > 0`, no bias or column mask), which
/// skips storing the scores: every variant and the in-place (general) path must agree bit for bit
/// on rows whose maximum is -0.0 or +0.0, whose scores are subnormal, that are all -inf, or that
/// hold +inf.
#[test]
fn plain_rows_with_signed_zero_subnormal_and_infinite_scores() {
    let tiny = f32::from_bits(1); // s * x subnormal for s = 0.5 at 1 ulp: rounds to 0 or 2^-149
    for n in [64, 65, 200, 1030] {
        let cases: [(&str, Vec<f32>); 6] = [
            (
                "max -0.0",
                (0..n)
                    .map(|j| {
                        if j == n / 3 {
                            -0.0
                        } else {
                            -1.0 - j as f32 * 0.01
                        }
                    })
                    .collect(),
            ),
            (
                "max +0.0 beside -0.0",
                (0..n).map(|j| [-0.0, 0.0, -2.0][j % 3]).collect(),
            ),
            (
                "subnormal",
                (0..n).map(|j| tiny * (j % 7) as f32 - tiny).collect(),
            ),
            ("all -inf", vec![f32::NEG_INFINITY; n]),
            (
                "one +inf",
                (0..n)
                    .map(|j| if j == n - 2 { f32::INFINITY } else { j as f32 })
                    .collect(),
            ),
            (
                "-inf and values",
                (0..n)
                    .map(|j| if j % 5 == 0 { f32::NEG_INFINITY } else { 0.5 })
                    .collect(),
            ),
        ];
        for (name, x) in cases {
            for op in ops() {
                let (y, st) = all_agree(op, &x);
                if name == "all -inf" {
                    assert_eq!(st, RowStats::EMPTY, "n={n}");
                    assert!(y.iter().all(|&v| v.to_bits() == 0));
                }
                if name.starts_with("max") {
                    assert_eq!(st.max.to_bits(), 0, "n={n} {name}: the maximum is +0");
                }
                if name == "one +inf" {
                    assert_eq!(st.max, f32::INFINITY, "n={n}");
                }
            }
        }
    }
}

#[test]
fn nan_in_a_masked_column_is_ignored() {
    for n in LENGTHS.into_iter().filter(|&n| n > 1) {
        for pos in 0..n {
            let x: Vec<f32> = (0..n).map(|j| j as f32 * 0.1).collect();
            let mut x_nan = x.clone();
            x_nan[pos] = f32::NAN;
            let mut visible = vec![true; n];
            visible[pos] = false;
            for op in ops() {
                let op = op.with_mask(Mask::none().with_columns(&visible));
                let (want, _) = all_agree(op, &x);
                let (got, st) = all_agree(op, &x_nan);
                assert_eq!(bits(&got), bits(&want));
                assert!(st.max.is_finite());
            }
        }
    }
}

#[test]
fn plus_inf_takes_the_softmax_limit() {
    for n in LENGTHS.into_iter().filter(|&n| n > 2) {
        for pos in 0..n {
            let mut x: Vec<f32> = (0..n).map(|j| j as f32).collect();
            x[pos] = f32::INFINITY;
            x[(pos + 2) % n] = f32::INFINITY;
            let (y, st) = all_agree(ops()[0], &x);
            assert_eq!(st.max, f32::INFINITY);
            assert_eq!(st.sum, 2.0);
            assert_eq!(st.lse(), f32::INFINITY);
            for (j, v) in y.iter().enumerate() {
                let want = if x[j] == f32::INFINITY { 0.5 } else { 0.0 };
                assert_eq!(*v, want, "n={n} pos={pos} j={j}");
            }
            // Training: each infinite column is 0.5 * 2 = 1 if kept, else 0.
            let (y, _) = all_agree(ops()[1], &x);
            for (j, v) in y.iter().enumerate() {
                assert!(*v == 0.0 || (x[j] == f32::INFINITY && *v == 1.0), "{y:?}");
            }
        }
    }
    // A finite logit that overflows `scale * x` is a +inf score.
    let (y, st) = all_agree(SoftmaxDropout::eval(1e30).unwrap(), &[1e30, 0.0, -1e30]);
    assert_eq!(
        (y.as_slice(), st.max, st.sum),
        ([1.0, 0.0, 0.0].as_slice(), f32::INFINITY, 1.0)
    );
}

#[test]
fn invalid_arguments_are_errors_and_write_nothing() {
    assert_eq!(
        SoftmaxDropout::eval(f32::NAN).err(),
        Some(Error::NonFiniteScale)
    );
    assert_eq!(
        SoftmaxDropout::eval(f32::INFINITY).err(),
        Some(Error::NonFiniteScale)
    );
    assert_eq!(
        SoftmaxDropout::eval(f32::NEG_INFINITY).err(),
        Some(Error::NonFiniteScale)
    );
    for p in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        assert_eq!(Dropout::new(p), Err(Error::InvalidProbability));
    }
    let x = [1.0f32; 8];
    let short = [0.0f32; 7];
    let bools = [true; 7];
    let packed = [0xFFu8; 2];
    for op in ops() {
        for_each_kernel!(K => {
            let op = op.with_kernel::<K>();
            let mut y = [9.0f32; 7];
            assert!(matches!(op.forward(0, &x, &mut y), Err(Error::LengthMismatch { expected: 8, found: 7 })));
            assert_eq!(y, [9.0; 7]);
            let mut y = [9.0f32; 8];
            assert!(op.with_bias(&short).forward(0, &x, &mut y).is_err());
            assert!(op.with_mask(Mask::none().with_columns(&bools)).forward(0, &x, &mut y).is_err());
            assert!(op.with_mask(Mask::none().with_column_bits(&packed)).forward(0, &x, &mut y).is_err());
            assert!(op.with_bias(&short).forward_in_place(0, &mut y).is_err());
            assert_eq!(y, [9.0; 8]);
            // Matrices: length not a multiple of cols, stats of the wrong length.
            let mut m = [9.0f32; 8];
            assert!(op.forward_rows(0, 3, &x, &mut m, None).is_err());
            assert!(op.forward_rows(0, 0, &x, &mut m, None).is_err());
            let mut st = [dropmax::RowStats::EMPTY; 3];
            assert!(op.forward_rows(0, 4, &x, &mut m, Some(&mut st)).is_err());
            assert!(op.forward_rows_in_place(0, 4, &mut m, Some(&mut st)).is_err());
            assert_eq!(m, [9.0; 8]);
            // Zero rows of zero columns is a valid, empty call.
            assert!(op.forward_rows(0, 0, &[], &mut [], None).is_ok());
        });
    }
}
