//! Adversarial inputs, on every kernel variant, against exact expectations or the f64 oracle:
//! rows of length 0 and 1; sub-slices at every start offset 1..15 (input and output at different
//! offsets); the extreme dropout probabilities; keys and row ids at the top of `u64`; extreme
//! logit scales; `-inf` in the bias; and contract §1's special values at every position around
//! the 4-, 8- and 16-lane boundaries, combined with bands that start mid-vector, tails, a bias,
//! in-place calls and matrix calls.
//!
//! `tests/special_values.rs` covers the special values on unmasked rows of a few lengths (and
//! `-inf` against a per-column mask); this file adds the combinations it does not, and checks each
//! result against an expectation computed here from the documented rules (crate docs, "What a row
//! computes" and "Special values"), not only against the scalar kernel.

mod common;

use common::{bits, bound, exact_sum, oracle, rng, row, uniform};
use dropmax::{
    Dropout, DropoutKey, Mask, RowKernel, RowStats, Scalar, SoftmaxDropout, keep, mask_uniform,
};

fn stat_bits(st: &RowStats) -> [u32; 2] {
    [st.max.to_bits(), st.sum.to_bits()]
}

/// Which columns a test mask shows: a band `[lo, hi)` and optionally a per-column part. Built
/// here independently of the crate, then turned into a [`Mask`].
#[derive(Clone, Debug)]
struct Vis {
    lo: usize,
    hi: usize,
    cols: Option<Vec<bool>>,
}

impl Vis {
    fn all(n: usize) -> Self {
        Self {
            lo: 0,
            hi: n,
            cols: None,
        }
    }

    fn band(lo: usize, hi: usize) -> Self {
        Self { lo, hi, cols: None }
    }

    fn visible(&self, j: usize) -> bool {
        self.lo <= j && j < self.hi && self.cols.as_ref().is_none_or(|c| c[j])
    }

    /// The band as a crate mask: `band(hi - 1, hi - 1 - lo, 0)`, or an empty band past the row.
    fn mask(&self, n: usize) -> Mask<'_> {
        let m = if self.lo >= self.hi.min(n) {
            Mask::band(n + 5, 2, 0) // lo = n + 3 > n: nothing visible
        } else {
            Mask::band(self.hi - 1, self.hi - 1 - self.lo, 0)
        };
        match &self.cols {
            Some(c) => m.with_columns(c),
            None => m,
        }
    }
}

/// The documented scores: `-inf` when masked or when the logit or the bias is `-inf`, else a
/// multiply then an add.
fn scores(x: &[f32], bias: Option<&[f32]>, vis: &Vis, scale: f32) -> Vec<f32> {
    (0..x.len())
        .map(|j| {
            let b = bias.map(|b| b[j]);
            if !vis.visible(j) || x[j] == f32::NEG_INFINITY || b == Some(f32::NEG_INFINITY) {
                f32::NEG_INFINITY
            } else {
                match b {
                    Some(b) => scale * x[j] + b,
                    None => scale * x[j],
                }
            }
        })
        .collect()
}

/// What the documented rules say a row's result is, computed once per row from its scores.
enum Expected {
    /// A NaN score: NaN wherever the score is not `-inf`, 0 there; statistics NaN.
    Nan(Vec<f32>),
    /// No finite or `+inf` score: zeros, `RowStats::EMPTY`.
    Empty,
    /// `k` scores of `+inf`: exactly these outputs.
    Inf(Vec<f32>, usize),
    /// An ordinary row: the f64 oracle, its maximum, the rescale, the scores.
    Ordinary(Vec<f64>, f64, f64, Vec<f32>),
}

impl Expected {
    fn new(z: &[f32], train: Option<(&Dropout, DropoutKey, u64)>) -> Self {
        let rescale = train.map_or(1.0, |(d, _, _)| f64::from(d.rescale()));
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if z.iter().any(|v| v.is_nan()) {
            Expected::Nan(z.to_vec())
        } else if m == f32::NEG_INFINITY {
            Expected::Empty
        } else if m == f32::INFINITY {
            let k = z.iter().filter(|&&v| v == f32::INFINITY).count();
            let share = (rescale / k as f64) as f32;
            let want = z
                .iter()
                .enumerate()
                .map(|(j, &zj)| {
                    let kept = train.is_none_or(|(d, key, r)| keep(d, key, r, j as u32));
                    if zj == f32::INFINITY && kept {
                        share
                    } else {
                        0.0
                    }
                })
                .collect();
            Expected::Inf(want, k)
        } else {
            let (want, om) = oracle(z, train);
            Expected::Ordinary(want, om, rescale, z.to_vec())
        }
    }

    /// Special rows exactly; ordinary rows within the documented bound of the oracle, with exact
    /// zeros where masked or dropped.
    fn check(&self, ctx: &str, y: &[f32], st: &RowStats) {
        match self {
            Expected::Nan(z) => {
                assert_eq!(y.len(), z.len(), "{ctx}");
                assert!(st.max.is_nan() && st.sum.is_nan(), "{ctx}: {st:?}");
                for (j, (&zj, &yj)) in z.iter().zip(y).enumerate() {
                    if zj == f32::NEG_INFINITY {
                        assert_eq!(yj.to_bits(), 0, "{ctx}: excluded col {j} of a NaN row");
                    } else {
                        assert!(yj.is_nan(), "{ctx}: col {j} of a NaN row is {yj}");
                    }
                }
            }
            Expected::Empty => {
                assert_eq!(stat_bits(st), stat_bits(&RowStats::EMPTY), "{ctx}");
                assert_eq!(st.lse(), f32::NEG_INFINITY, "{ctx}");
                assert!(y.iter().all(|v| v.to_bits() == 0), "{ctx}: {y:?}");
            }
            Expected::Inf(want, k) => {
                assert_eq!((st.max, st.sum), (f32::INFINITY, *k as f32), "{ctx}");
                assert_eq!(bits(y), bits(want), "{ctx}: a +inf row");
            }
            Expected::Ordinary(want, om, rescale, z) => {
                assert_eq!(y.len(), z.len(), "{ctx}");
                assert_eq!(f64::from(st.max), *om, "{ctx}: max");
                let sum = exact_sum(z);
                for (j, (&g, &w)) in y.iter().zip(want).enumerate() {
                    if w == 0.0 {
                        assert_eq!(g.to_bits(), 0, "{ctx}: col {j} is masked or dropped: {g}");
                    } else {
                        let tol = bound(w, z[j], *om, *rescale, sum, 1e-6);
                        assert!(
                            (f64::from(g) - w).abs() <= tol,
                            "{ctx}: col {j}: {g} vs {w} (tol {tol})"
                        );
                    }
                }
            }
        }
    }
}

/// Checks one row's result against the documented rules (see [`Expected`]).
fn check_expected(
    ctx: &str,
    z: &[f32],
    train: Option<(&Dropout, DropoutKey, u64)>,
    y: &[f32],
    st: &RowStats,
) {
    Expected::new(z, train).check(ctx, y, st);
}

/// `forward` into a fresh buffer, and `forward_in_place`, which must agree bit for bit.
fn run<K: RowKernel>(op: SoftmaxDropout<'_>, row: u64, x: &[f32]) -> (Vec<f32>, RowStats) {
    let op = op.with_kernel::<K>();
    let mut y = vec![f32::from_bits(0x7FA5_A5A5); x.len()];
    let st = op.forward(row, x, &mut y).unwrap();
    let mut z = x.to_vec();
    let st2 = op.forward_in_place(row, &mut z).unwrap();
    assert_eq!(bits(&y), bits(&z), "{}: in place differs", K::NAME);
    assert_eq!(
        stat_bits(&st),
        stat_bits(&st2),
        "{}: in place stats",
        K::NAME
    );
    (y, st)
}

fn train_of(op: &SoftmaxDropout<'_>) -> Option<(Dropout, DropoutKey)> {
    match op.mode() {
        dropmax::Mode::Eval => None,
        dropmax::Mode::Train { dropout, key } => Some((dropout, key)),
    }
}

/// Runs `op` on every variant; checks each against the documented expectation, and special rows
/// bit for bit against the scalar kernel. Returns the scalar result.
fn check_all(
    ctx: &str,
    op: SoftmaxDropout<'_>,
    row: u64,
    x: &[f32],
    bias: Option<&[f32]>,
    vis: &Vis,
    scale: f32,
) -> (Vec<f32>, RowStats) {
    let z = scores(x, bias, vis, scale);
    let train = train_of(&op);
    let expected = Expected::new(&z, train.as_ref().map(|(d, k)| (d, *k, row)));
    let mut scalar: Option<(Vec<f32>, RowStats)> = None;
    for_each_kernel!(K => {
        let (y, st) = run::<K>(op, row, x);
        expected.check(&format!("{} {ctx}", K::NAME), &y, &st);
        match &scalar {
            None => scalar = Some((y, st)), // Scalar runs first
            Some((want, wst)) => {
                if !st.max.is_finite() {
                    let ctx = format!("{} {ctx}", K::NAME);
                    assert_eq!(bits(&y), bits(want), "{ctx}: special row differs from scalar");
                    assert_eq!(stat_bits(&st), stat_bits(wst), "{ctx}: special stats");
                }
            }
        }
    });
    let (want, wst) = scalar.unwrap();
    (want, wst)
}

// ---------------------------------------------------------------------------------------------
// Rows of length 0 and 1.

#[test]
fn empty_rows() {
    let key = DropoutKey::new(u64::MAX, u64::MAX);
    let ops = [
        SoftmaxDropout::eval(0.5).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(0.5).unwrap(), key).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(1.0).unwrap(), key).unwrap(),
    ];
    let empty_bools: [bool; 0] = [];
    let empty_bits: [u8; 0] = [];
    for op in ops {
        for_each_kernel!(K => {
            for mask in [
                Mask::none(),
                Mask::causal(0),
                Mask::sliding_window(3, 0),
                Mask::none().with_columns(&empty_bools),
                Mask::none().with_column_bits(&empty_bits),
            ] {
                let op = op.with_mask(mask).with_bias(&[]).with_kernel::<K>();
                assert_eq!(op.forward(u64::MAX, &[], &mut []), Ok(RowStats::EMPTY));
                assert_eq!(op.forward_in_place(0, &mut []), Ok(RowStats::EMPTY));
                // Zero rows of zero columns.
                let mut st: [RowStats; 0] = [];
                assert_eq!(op.forward_rows(0, 0, &[], &mut [], Some(&mut st)), Ok(()));
                assert_eq!(op.forward_rows_in_place(u64::MAX, 0, &mut [], Some(&mut st)), Ok(()));
                // Zero-length rows can not make a non-empty matrix.
                assert!(op.forward_rows(0, 0, &[1.0], &mut [0.0], None).is_err());
                // The empty bias and column masks describe rows of 0 columns, not of 5.
                assert!(op.forward_rows(0, 5, &[], &mut [], None).is_err());
            }
            // Zero rows of five columns.
            let op5 = op.with_mask(Mask::causal(2)).with_kernel::<K>();
            let mut st: [RowStats; 0] = [];
            assert_eq!(op5.forward_rows(0, 5, &[], &mut [], Some(&mut st)), Ok(()));
            assert_eq!(op5.forward_rows_in_place(0, 5, &mut [], None), Ok(()));
            for p in [0.0, 0.5, 1.0] {
                assert_eq!(Dropout::new(p).unwrap().apply_with::<K>(key, 0, &mut []), Ok(()));
            }
        });
    }
}

#[test]
fn single_column_rows() {
    let key = DropoutKey::new(0x5EED, u64::MAX - 20);
    let half = Dropout::new(0.5).unwrap();
    let logits = [
        0.3f32,
        -7.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE / 8.0,
        1e30,
    ];
    for_each_kernel!(K => {
        for &x in &logits {
            // One visible finite score: probability exactly 1 (exp(0) = 1, S = 1).
            let op = SoftmaxDropout::eval(0.5).unwrap().with_kernel::<K>();
            let mut y = [9.0f32];
            let st = op.forward(0, &[x], &mut y).unwrap();
            assert_eq!(y, [1.0], "{} x={x}", K::NAME);
            assert_eq!((st.max, st.sum), (0.5 * x, 1.0), "{} x={x}", K::NAME);
            // Training at p = 0.5: exactly the rescale 2 where kept, for 40 row ids around the
            // wrap of the offset.
            let op = SoftmaxDropout::train(0.5, half, key).unwrap().with_kernel::<K>();
            for r in 0..40u64 {
                let mut y = [9.0f32];
                op.forward(r, &[x], &mut y).unwrap();
                let want = if keep(&half, key, r, 0) { 2.0 } else { 0.0 };
                assert_eq!(y[0].to_bits(), f32::to_bits(want), "{} x={x} r={r}", K::NAME);
            }
        }
        // Masked, or excluded by -inf: zero and EMPTY.
        let op = SoftmaxDropout::eval(1.0).unwrap().with_kernel::<K>();
        let hidden = [false];
        let hidden_bits = [0xFEu8]; // bits past the row end do not count
        for op in [
            op.with_mask(Mask::key_len(0)),
            op.with_mask(Mask::band(3, 1, 0)),
            op.with_mask(Mask::sliding_window(0, 0)),
            op.with_mask(Mask::none().with_columns(&hidden)),
            op.with_mask(Mask::none().with_column_bits(&hidden_bits)),
            op.with_bias(&[f32::NEG_INFINITY]),
        ] {
            let mut y = [f32::NAN];
            assert_eq!(op.forward(0, &[f32::NAN], &mut y), Ok(RowStats::EMPTY));
            assert_eq!(y[0].to_bits(), 0);
        }
        // The special values alone.
        let mut y = [0.0f32];
        let st = op.forward(0, &[f32::NAN], &mut y).unwrap();
        assert!(y[0].is_nan() && st.max.is_nan() && st.sum.is_nan());
        let st = op.forward(0, &[f32::INFINITY], &mut y).unwrap();
        assert_eq!((y[0], st.max, st.sum), (1.0, f32::INFINITY, 1.0));
        let st = op.forward(0, &[f32::NEG_INFINITY], &mut y).unwrap();
        assert_eq!((y[0].to_bits(), st), (0, RowStats::EMPTY));
        // A column of one-element rows: row i is query position i, so causal(0) shows column 0
        // to every row; each row matches its single-row call.
        let xs: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
        let op = SoftmaxDropout::train(1.0, half, key).unwrap().with_mask(Mask::causal(0));
        let mut ys = vec![0.0f32; 40];
        let mut sts = vec![RowStats::EMPTY; 40];
        op.with_kernel::<K>().forward_rows(u64::MAX - 3, 1, &xs, &mut ys, Some(&mut sts)).unwrap();
        for i in 0..40 {
            let r = (u64::MAX - 3).wrapping_add(i as u64);
            let want = if keep(&half, key, r, 0) { 2.0f32 } else { 0.0 };
            assert_eq!(ys[i].to_bits(), want.to_bits(), "{} row {i}", K::NAME);
            assert_eq!((sts[i].max, sts[i].sum), (xs[i], 1.0));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Sub-slices at every start offset.

#[test]
fn every_start_offset_into_larger_buffers() {
    let mut r = rng(0xA11C);
    let key = DropoutKey::new(0xFEED_F00D, 1 << 40);
    let lengths = [
        1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 257,
    ];
    for n in lengths {
        let big = row(&mut r, n + 48, -9.0, 9.0);
        let bias = row(&mut r, n, -2.0, 2.0);
        let cols: Vec<bool> = (0..n).map(|_| uniform(&mut r, 0.0, 1.0) < 0.7).collect();
        let visions = [
            Vis::all(n),
            Vis::band(n / 3, n - n / 4),
            Vis {
                lo: 0,
                hi: n,
                cols: Some(cols.clone()),
            },
        ];
        for in_off in 1..16usize {
            // The output starts at another offset (and another alignment class).
            let out_off = (in_off * 5 + 3) % 16;
            let x = &big[in_off..in_off + n];
            for vis in &visions {
                for with_bias in [false, true] {
                    let b = with_bias.then_some(&bias[..]);
                    for p in [None, Some(0.3)] {
                        let mut op = match p {
                            None => SoftmaxDropout::eval(0.7).unwrap(),
                            Some(p) => {
                                SoftmaxDropout::train(0.7, Dropout::new(p).unwrap(), key).unwrap()
                            }
                        }
                        .with_mask(vis.mask(n));
                        if let Some(b) = b {
                            op = op.with_bias(b);
                        }
                        let z = scores(x, b, vis, 0.7);
                        let train = train_of(&op);
                        let train_ref = train.as_ref().map(|(d, k)| (d, *k, 3u64));
                        for_each_kernel!(K => {
                            let ctx = format!(
                                "{} n={n} in={in_off} out={out_off} vis={vis:?} \
                                 bias={with_bias} p={p:?}",
                                K::NAME
                            );
                            let op = op.with_kernel::<K>();
                            let sentinel = f32::from_bits(0x7FB0_0BAD);
                            let mut out = vec![sentinel; n + 48];
                            let st = op.forward(3, x, &mut out[out_off..out_off + n]).unwrap();
                            let y = &out[out_off..out_off + n];
                            check_expected(&ctx, &z, train_ref, y, &st);
                            // Nothing outside the output slice is written.
                            let untouched = |v: &f32| v.to_bits() == sentinel.to_bits();
                            assert!(out[..out_off].iter().all(untouched), "{ctx}");
                            assert!(out[out_off + n..].iter().all(untouched), "{ctx}");
                            // In place on the input's (misaligned) sub-slice: the same bits.
                            let mut inplace = big.clone();
                            let window = in_off..in_off + n;
                            let st2 = op.forward_in_place(3, &mut inplace[window.clone()]).unwrap();
                            assert_eq!(bits(&inplace[window]), bits(y), "{ctx}: in place");
                            assert_eq!(stat_bits(&st2), stat_bits(&st), "{ctx}");
                            assert_eq!(bits(&inplace[..in_off]), bits(&big[..in_off]), "{ctx}");
                            let after = in_off + n..;
                            assert_eq!(bits(&inplace[after.clone()]), bits(&big[after]), "{ctx}");
                        });
                    }
                }
            }
        }
        // A matrix on a misaligned sub-slice: each row equals its single-row call (row ids and
        // query positions advance by one per row).
        for in_off in 1..16usize {
            let rows = (n + 47 - in_off) / n;
            let rows = rows.min(4);
            if rows == 0 {
                continue;
            }
            let x = &big[in_off..in_off + rows * n];
            let op = SoftmaxDropout::train(0.7, Dropout::new(0.25).unwrap(), key)
                .unwrap()
                .with_bias(&bias)
                .with_mask(Mask::causal(n / 2));
            for_each_kernel!(K => {
                let op = op.with_kernel::<K>();
                let out_off = 16 - in_off;
                let mut out = vec![0.0f32; rows * n + 16];
                op.forward_rows(u64::MAX - 1, n, x, &mut out[out_off..out_off + rows * n], None)
                    .unwrap();
                for i in 0..rows {
                    let mut y = vec![0.0f32; n];
                    let rid = (u64::MAX - 1).wrapping_add(i as u64);
                    op.with_mask(Mask::causal(n / 2 + i))
                        .forward(rid, &x[i * n..(i + 1) * n], &mut y)
                        .unwrap();
                    let got = &out[out_off + i * n..out_off + (i + 1) * n];
                    assert_eq!(bits(got), bits(&y), "{} n={n} off={in_off} row {i}", K::NAME);
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout probabilities 0, 1e-10, 0.5, 1 - 1e-7 and 1.

#[test]
fn extreme_dropout_probabilities() {
    let mut r = rng(0xD809);
    let key = DropoutKey::new(u64::MAX - 7, u64::MAX - 1);
    // 1e-10 * 2^32 = 0.43 rounds to D = 0: the same as p = 0. 1 - 1e-7 gives D = 2^32 - 429.
    assert_eq!(Dropout::new(1e-10).unwrap().threshold(), 0);
    assert!(Dropout::new(1e-10).unwrap().keeps_all());
    let near_one = Dropout::new(1.0 - 1e-7).unwrap();
    assert_eq!(near_one.threshold(), (1u64 << 32) - 429);
    assert!(!near_one.drops_all());
    assert_eq!(near_one.rescale(), ((1u64 << 32) as f64 / 429.0) as f32);
    for n in [1usize, 5, 16, 17, 100, 1000, 4095] {
        let x = row(&mut r, n, -5.0, 5.0);
        let bias = row(&mut r, n, -1.0, 1.0);
        let cols: Vec<bool> = (0..n).map(|j| j % 5 != 2).collect();
        let visions = [
            Vis::all(n),
            Vis::band(n / 4, n - n / 3),
            Vis {
                lo: 0,
                hi: n,
                cols: Some(cols.clone()),
            },
        ];
        for vis in &visions {
            let base = SoftmaxDropout::eval(0.9)
                .unwrap()
                .with_mask(vis.mask(n))
                .with_bias(&bias);
            let z = scores(&x, Some(&bias), vis, 0.9);
            for_each_kernel!(K => {
                let ctx = format!("{} n={n} vis={vis:?}", K::NAME);
                for row in [0u64, 1, u64::MAX] {
                    let (eval, est) = run::<K>(base, row, &x);
                    check_expected(&ctx, &z, None, &eval, &est);
                    let train = |p: f64| {
                        let d = Dropout::new(p).unwrap();
                        let op = SoftmaxDropout::train(0.9, d, key)
                            .unwrap()
                            .with_mask(vis.mask(n))
                            .with_bias(&bias);
                        let (y, st) = run::<K>(op, row, &x);
                        (d, y, st)
                    };
                    // p = 0 and p = 1e-10 (D = 0): q = 1 exactly and the rescale is exactly 1, so
                    // the training result is the evaluation result, bit for bit.
                    for p in [0.0, 1e-10] {
                        let (d, y, st) = train(p);
                        assert_eq!(d.rescale(), 1.0);
                        assert_eq!(bits(&y), bits(&eval), "{ctx} p={p}");
                        assert_eq!(stat_bits(&st), stat_bits(&est), "{ctx} p={p}");
                    }
                    // p = 0.5: the rescale is 2, so kept outputs are exactly twice the evaluation
                    // outputs (a power-of-two factor commutes with every rounding here).
                    let (d, y, st) = train(0.5);
                    assert_eq!(stat_bits(&st), stat_bits(&est), "{ctx} p=0.5");
                    check_expected(&ctx, &z, Some((&d, key, row)), &y, &st);
                    for j in 0..n {
                        let kept = vis.visible(j) && keep(&d, key, row, j as u32);
                        let want = if kept { 2.0 * eval[j] } else { 0.0 };
                        assert_eq!(y[j].to_bits(), want.to_bits(), "{ctx} p=0.5 j={j}");
                    }
                    // p = 1 - 1e-7: almost everything dropped; exactly the `keep` decisions; the
                    // statistics are still the softmax's.
                    let (d, y, st) = train(1.0 - 1e-7);
                    assert_eq!(stat_bits(&st), stat_bits(&est), "{ctx} p=1-1e-7");
                    check_expected(&ctx, &z, Some((&d, key, row)), &y, &st);
                    // p = 1: every output +0.0; the statistics are still the softmax's.
                    let (_, y, st) = train(1.0);
                    assert!(y.iter().all(|v| v.to_bits() == 0), "{ctx} p=1: {y:?}");
                    assert_eq!(stat_bits(&st), stat_bits(&est), "{ctx} p=1");
                }
            });
        }
    }
    // Special rows at p = 1: a NaN row stays NaN (dropped columns too, as documented); a +inf
    // row is all zeros with the statistics of the limit.
    let all = Dropout::new(1.0).unwrap();
    for_each_kernel!(K => {
        let op = SoftmaxDropout::train(1.0, all, key).unwrap().with_kernel::<K>();
        let mut y = [0.0f32; 19];
        let mut x = [0.5f32; 19];
        x[17] = f32::NAN;
        let st = op.forward(0, &x, &mut y).unwrap();
        assert!(y.iter().all(|v| v.is_nan()) && st.max.is_nan(), "{}", K::NAME);
        x[17] = f32::INFINITY;
        x[3] = f32::INFINITY;
        let st = op.forward(0, &x, &mut y).unwrap();
        assert!(y.iter().all(|v| v.to_bits() == 0), "{}", K::NAME);
        assert_eq!((st.max, st.sum), (f32::INFINITY, 2.0));
    });
    // Dropout alone: p = 0 and 1e-10 leave values bit for bit (-0.0, subnormals and huge values
    // included); p = 1 zeroes everything; 1 - 1e-7 keeps exactly what `keep` keeps.
    let values: Vec<f32> = (0..300)
        .map(|j| match j % 6 {
            0 => -0.0,
            1 => f32::MIN_POSITIVE / 3.0,
            2 => f32::MAX,
            _ => j as f32 - 150.5,
        })
        .collect();
    for_each_kernel!(K => {
        for p in [0.0, 1e-10] {
            let mut v = values.clone();
            Dropout::new(p).unwrap().apply_with::<K>(key, 9, &mut v).unwrap();
            assert_eq!(bits(&v), bits(&values), "{} p={p}", K::NAME);
        }
        let mut v = values.clone();
        Dropout::new(1.0).unwrap().apply_with::<K>(key, 9, &mut v).unwrap();
        assert!(v.iter().all(|x| x.to_bits() == 0), "{}", K::NAME);
        let mut v = values.clone();
        near_one.apply_with::<K>(key, 9, &mut v).unwrap();
        for (j, (&g, &x)) in v.iter().zip(&values).enumerate() {
            let want = if keep(&near_one, key, 9, j as u32) { x * near_one.rescale() } else { 0.0 };
            assert_eq!(g.to_bits(), want.to_bits(), "{} j={j}", K::NAME);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Seeds and offsets near u64::MAX: row ids wrap.

#[test]
fn keys_and_row_ids_wrap_at_u64_max() {
    let seeds = [u64::MAX, u64::MAX - 1, 1 << 63, 0xFFFF_FFFF, 1 << 32];
    let offsets = [u64::MAX, u64::MAX - 2, (1 << 63) - 1];
    // The documented row id: offset + r, wrapping.
    for seed in seeds {
        for offset in offsets {
            for r in [0u64, 1, 2, 3, u64::MAX] {
                let global = offset.wrapping_add(r);
                for j in [0u32, 1, 15, 16, 255, 256, 1000, u32::MAX] {
                    let u = mask_uniform(DropoutKey::new(seed, offset), r, j);
                    assert_eq!(u, mask_uniform(DropoutKey::new(seed, 0), global, j));
                    assert_eq!(u, mask_uniform(DropoutKey::new(seed, global), 0, j));
                }
            }
        }
    }
    let mut rr = rng(0x0FF5);
    let cols = 67;
    let rows = 6;
    let x = row(&mut rr, rows * cols, -1.0, 1.0);
    for seed in seeds {
        for offset in offsets {
            let key = DropoutKey::new(seed, offset);
            for first_row in [0u64, u64::MAX - 2] {
                for p in [0.1, 0.5] {
                    let d = Dropout::new(p).unwrap();
                    let op = SoftmaxDropout::train(1.0, d, key).unwrap();
                    for_each_kernel!(K => {
                        let op = op.with_kernel::<K>();
                        let ctx = format!(
                            "{} seed={seed:#x} offset={offset:#x} first={first_row:#x} p={p}",
                            K::NAME
                        );
                        let mut whole = vec![0.0f32; x.len()];
                        op.forward_rows(first_row, cols, &x, &mut whole, None).unwrap();
                        for i in 0..rows {
                            let r = first_row.wrapping_add(i as u64);
                            let xr = &x[i * cols..(i + 1) * cols];
                            let got = &whole[i * cols..(i + 1) * cols];
                            // The matrix crossing the wrap equals the per-row calls, bit for bit.
                            let mut y = vec![0.0f32; cols];
                            op.forward(r, xr, &mut y).unwrap();
                            assert_eq!(bits(got), bits(&y), "{ctx} row {i}");
                            // ... and the same row through a key whose offset absorbed the row id.
                            let moved_key = DropoutKey::new(seed, offset.wrapping_add(r));
                            let moved = SoftmaxDropout::train(1.0, d, moved_key)
                                .unwrap()
                                .with_kernel::<K>();
                            let mut y2 = vec![0.0f32; cols];
                            moved.forward(0, xr, &mut y2).unwrap();
                            assert_eq!(bits(&y2), bits(&y), "{ctx} row {i}: offset + r");
                            // Zeros are exactly the dropped columns (no probability underflows).
                            for (j, &g) in got.iter().enumerate() {
                                let kept = keep(&d, key, r, j as u32);
                                assert_eq!(g != 0.0, kept, "{ctx} row {i} col {j}");
                            }
                            // Dropout alone draws the same mask.
                            let mut ones = vec![1.0f32; cols];
                            d.apply_with::<K>(key, r, &mut ones).unwrap();
                            for (j, (&o, &g)) in ones.iter().zip(got).enumerate() {
                                assert_eq!(o != 0.0, g != 0.0, "{ctx} apply row {i} col {j}");
                            }
                        }
                        // Rows on either side of the wrap do not share a mask.
                        let pattern = |i: usize| -> Vec<bool> {
                            whole[i * cols..(i + 1) * cols].iter().map(|&v| v != 0.0).collect()
                        };
                        assert!((1..rows).any(|i| pattern(i) != pattern(0)), "{ctx}");
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scales 0, negative, 1e30 and subnormal.

#[test]
fn extreme_scales() {
    let mut r = rng(0x5CA1E);
    let key = DropoutKey::new(77, u64::MAX);
    let half = Dropout::new(0.5).unwrap();
    for n in [1usize, 3, 4, 16, 17, 33, 40, 100] {
        // Finite logits of every magnitude, subnormals and -0.0 included.
        let x: Vec<f32> = (0..n)
            .map(|j| match j % 5 {
                0 => uniform(&mut r, -1.0, 1.0),
                1 => f32::MAX * uniform(&mut r, -1.0, 1.0),
                2 => f32::MIN_POSITIVE / 5.0,
                3 => -0.0,
                _ => uniform(&mut r, -1e30, 1e30),
            })
            .collect();
        let cols: Vec<bool> = (0..n).map(|j| j % 4 != 1).collect();
        for vis in [
            Vis::all(n),
            Vis::band(n / 3, n),
            Vis {
                lo: 0,
                hi: n,
                cols: Some(cols.clone()),
            },
        ] {
            let k = (0..n).filter(|&j| vis.visible(j)).count();
            // Scale 0 and -0.0: every visible score is ±0, so each visible column gets exactly
            // 1/k (S = k exactly), whatever the logit's magnitude.
            for scale in [0.0f32, -0.0] {
                let op = SoftmaxDropout::eval(scale).unwrap().with_mask(vis.mask(n));
                let ctx = format!("n={n} vis={vis:?} scale={scale}");
                let (y, st) = check_all(&ctx, op, 0, &x, None, &vis, scale);
                let share = (1.0 / k as f64) as f32;
                for (j, v) in y.iter().enumerate() {
                    let want = if vis.visible(j) { share } else { 0.0 };
                    assert_eq!(v.to_bits(), want.to_bits(), "{ctx} j={j}");
                }
                if k > 0 {
                    assert_eq!((st.max, st.sum), (0.0, k as f32), "{ctx}");
                }
                let op = SoftmaxDropout::train(scale, half, key)
                    .unwrap()
                    .with_mask(vis.mask(n));
                check_all(&ctx, op, 5, &x, None, &vis, scale);
                // 0 * inf is NaN: a visible +inf logit makes the row NaN; -inf stays excluded.
                if n > 2 {
                    let mut xi = x.clone();
                    xi[n - 1] = f32::INFINITY;
                    xi[0] = f32::NEG_INFINITY;
                    let (y, st) = check_all(&ctx, op, 5, &xi, None, &vis, scale);
                    assert_eq!(st.max.is_nan(), vis.visible(n - 1), "{ctx}: {y:?}");
                }
            }
            // Subnormal scale: the scores are subnormal or zero, their differences round away in
            // exp, so within the bound of the uniform distribution.
            let scale = f32::MIN_POSITIVE / 8.0;
            let op = SoftmaxDropout::eval(scale).unwrap().with_mask(vis.mask(n));
            let ctx = format!("n={n} vis={vis:?} subnormal scale");
            check_all(&ctx, op, 0, &x, None, &vis, scale);
            let op = SoftmaxDropout::train(scale, half, key)
                .unwrap()
                .with_mask(vis.mask(n));
            check_all(&ctx, op, 3, &x, None, &vis, scale);
            // 1e30: most scores overflow to ±inf (a +inf row), the others are one-hot.
            let op = SoftmaxDropout::eval(1e30).unwrap().with_mask(vis.mask(n));
            check_all(
                &format!("n={n} vis={vis:?} scale=1e30"),
                op,
                0,
                &x,
                None,
                &vis,
                1e30,
            );
            let small: Vec<f32> = (0..n).map(|_| uniform(&mut r, -1.0, 1.0)).collect();
            let (y, st) = check_all(
                &format!("n={n} vis={vis:?} scale=1e30 small"),
                op,
                0,
                &small,
                None,
                &vis,
                1e30,
            );
            if k > 0 {
                // Distinct logits at least 2^-24 apart differ by >= 6e22 in score: one-hot.
                let arg = (0..n)
                    .filter(|&j| vis.visible(j))
                    .max_by(|&a, &b| small[a].total_cmp(&small[b]))
                    .unwrap();
                assert_eq!((y[arg], st.sum), (1.0, 1.0), "n={n} vis={vis:?}");
            }
            // Negative scales: s * x == (-s) * (-x) exactly, so the results are bit-identical to
            // the mirrored row with the positive scale, on every variant.
            for s in [-0.7f32, -1e30, -(f32::MIN_POSITIVE / 8.0)] {
                let neg: Vec<f32> = x.iter().map(|v| -v).collect();
                for_each_kernel!(K => {
                    let op = SoftmaxDropout::eval(s).unwrap().with_mask(vis.mask(n));
                    let a = run::<K>(op, 0, &x);
                    let op = SoftmaxDropout::eval(-s).unwrap().with_mask(vis.mask(n));
                    let b = run::<K>(op, 0, &neg);
                    assert_eq!(bits(&a.0), bits(&b.0), "{} n={n} s={s}", K::NAME);
                    let op = SoftmaxDropout::train(s, half, key).unwrap().with_mask(vis.mask(n));
                    let a = run::<K>(op, 9, &x);
                    let op = SoftmaxDropout::train(-s, half, key).unwrap().with_mask(vis.mask(n));
                    let b = run::<K>(op, 9, &neg);
                    assert_eq!(bits(&a.0), bits(&b.0), "{} n={n} s={s} train", K::NAME);
                });
                let op = SoftmaxDropout::eval(s).unwrap().with_mask(vis.mask(n));
                check_all(
                    &format!("n={n} vis={vis:?} s={s}"),
                    op,
                    0,
                    &x,
                    None,
                    &vis,
                    s,
                );
            }
        }
    }
    // With a negative scale, a -inf logit is still excluded (not +inf), and a +inf logit
    // becomes a -inf score: both behave like a masked column, not like the mirrored row.
    for_each_kernel!(K => {
        let op = SoftmaxDropout::eval(-1.0).unwrap();
        let x = [f32::NEG_INFINITY, 0.0, 1.0, f32::INFINITY, 2.0];
        let (y, st) = run::<K>(op, 0, &x);
        let visible = [false, true, true, false, true];
        let masked = op.with_mask(Mask::none().with_columns(&visible));
        let (want, wst) = run::<K>(masked, 0, &[7.0, 0.0, 1.0, 7.0, 2.0]);
        assert_eq!(bits(&y), bits(&want), "{}", K::NAME);
        assert_eq!(stat_bits(&st), stat_bits(&wst));
        assert_eq!(st.max, 0.0);
    });
}

// ---------------------------------------------------------------------------------------------
// Bias with -inf entries.

/// A named set of columns: `true` where the bias is `-inf`.
type Pattern = (&'static str, Box<dyn Fn(usize) -> bool>);

#[test]
fn bias_with_minus_infinity() {
    let mut r = rng(0xB1A5);
    let key = DropoutKey::new(0xB1A5, 0);
    let ops = [
        SoftmaxDropout::eval(0.8).unwrap(),
        SoftmaxDropout::train(0.8, Dropout::new(0.4).unwrap(), key).unwrap(),
    ];
    for n in (1..=40).chain([100, 257]) {
        let x = row(&mut r, n, -3.0, 3.0);
        let finite = row(&mut r, n, -1.0, 1.0);
        // Patterns of -inf: every other, every third from 1, one run across a lane boundary,
        // all but the last, all.
        let patterns: [Pattern; 5] = [
            ("even", Box::new(|j| j % 2 == 0)),
            ("thirds", Box::new(|j| j % 3 == 1)),
            (
                "run",
                Box::new(|j| (6..=17).contains(&j) || (30..=33).contains(&j)),
            ),
            ("all-but-last", Box::new(move |j| j + 1 != n)),
            ("all", Box::new(|_| true)),
        ];
        for (pname, pat) in &patterns {
            let bias: Vec<f32> = (0..n)
                .map(|j| if pat(j) { f32::NEG_INFINITY } else { finite[j] })
                .collect();
            // The same columns hidden by a per-column mask instead, with a finite bias there.
            let shown: Vec<bool> = (0..n).map(|j| !pat(j)).collect();
            for vis in [Vis::all(n), Vis::band(n / 5, n - n / 6)] {
                for op in ops {
                    let ctx = format!("n={n} pattern={pname} vis={vis:?} mode={:?}", op.mode());
                    let op_b = op.with_mask(vis.mask(n)).with_bias(&bias);
                    let (y, st) = check_all(&ctx, op_b, 4, &x, Some(&bias), &vis, 0.8);
                    let mut vis2 = vis.clone();
                    vis2.cols = Some(shown.clone());
                    let op_m = op.with_mask(vis2.mask(n)).with_bias(&finite);
                    for_each_kernel!(K => {
                        let (a, ast) = run::<K>(op_b, 4, &x);
                        let (b, bst) = run::<K>(op_m, 4, &x);
                        assert_eq!(bits(&a), bits(&b), "{} {ctx}: -inf bias vs mask", K::NAME);
                        assert_eq!(stat_bits(&ast), stat_bits(&bst));
                    });
                    if *pname == "all" {
                        assert_eq!(stat_bits(&st), stat_bits(&RowStats::EMPTY), "{ctx}");
                    }
                    if *pname == "all-but-last"
                        && vis.visible(n - 1)
                        && op.mode() == dropmax::Mode::Eval
                    {
                        assert_eq!(y[n - 1], 1.0, "{ctx}");
                    }
                    // NaN and +inf logits under a -inf bias are excluded too: the row does not
                    // change.
                    let mut xs = x.clone();
                    for (j, v) in xs.iter_mut().enumerate() {
                        if pat(j) {
                            *v = if j % 2 == 0 { f32::NAN } else { f32::INFINITY };
                        }
                    }
                    let (y2, st2) = check_all(&ctx, op_b, 4, &xs, Some(&bias), &vis, 0.8);
                    assert_eq!(bits(&y2), bits(&y), "{ctx}: special logits under -inf bias");
                    assert_eq!(stat_bits(&st2), stat_bits(&st));
                    // A +inf bias on a visible column makes a +inf row; NaN bias a NaN row.
                    if let Some(j) = (0..n).find(|&j| !pat(j) && vis.visible(j)) {
                        for special in [f32::INFINITY, f32::NAN] {
                            let mut b2 = bias.clone();
                            b2[j] = special;
                            let op2 = op.with_mask(vis.mask(n)).with_bias(&b2);
                            let (_, st3) = check_all(&ctx, op2, 4, &x, Some(&b2), &vis, 0.8);
                            assert!(!st3.max.is_finite(), "{ctx}");
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contract §1's special values at every position around the lane boundaries.

/// Positions 0..=17 and 30..=33: both sides of the 4-, 8-, 16- and 32-column boundaries.
fn lane_positions(n: usize) -> impl Iterator<Item = usize> {
    (0..=17).chain(30..=33).filter(move |&p| p < n)
}

/// Bands whose start and end fall mid-vector (and a few aligned), for rows of length `n`.
fn bands(n: usize) -> Vec<Vis> {
    let mut v = vec![Vis::all(n)];
    for (lo, hi) in [
        (1, n),
        (3, n.saturating_sub(2)),
        (5, 21),
        (7, 9),
        (13, 34),
        (15, 17),
        (17, 40),
        (31, 33),
    ] {
        let hi = hi.min(n);
        if lo < hi {
            v.push(Vis::band(lo, hi));
        }
    }
    v
}

/// Every special value at every lane position of rows of length 1..=40, in every band of
/// [`bands`]; `train` picks the configuration: evaluation without bias, or training with a bias
/// and a second `+inf` in the tail.
fn special_values_at_lane_boundaries(train: bool) {
    let mut r = rng(0x1A4E);
    let key = DropoutKey::new(0xC0FFEE, u64::MAX - 2);
    let modes = [
        SoftmaxDropout::eval(0.5).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(0.3).unwrap(), key).unwrap(),
    ];
    let specials: [(&str, f32); 3] = [
        ("nan", f32::from_bits(0xFFC0_0042)), // a negative NaN with a payload
        ("+inf", f32::INFINITY),
        ("-inf", f32::NEG_INFINITY),
    ];
    for n in 1..=40usize {
        let base = row(&mut r, n, -4.0, 4.0);
        let bias = row(&mut r, n, -1.0, 1.0);
        for vis in bands(n) {
            for pos in lane_positions(n) {
                for (sname, s) in specials {
                    // The second +inf: two infinite columns share the probability; with a NaN
                    // the row stays NaN.
                    let (op, b, second) = if train {
                        (modes[1], Some(&bias[..]), (pos != n - 1).then_some(n - 1))
                    } else {
                        (modes[0], None, None)
                    };
                    {
                        let mut x = base.clone();
                        x[pos] = s;
                        if let Some(q) = second {
                            x[q] = f32::INFINITY;
                        }
                        let mut op = op.with_mask(vis.mask(n));
                        if let Some(b) = b {
                            op = op.with_bias(b);
                        }
                        let ctx = format!(
                            "n={n} {sname}@{pos} second={second:?} vis={vis:?} bias={} mode={:?}",
                            b.is_some(),
                            op.mode()
                        );
                        check_all(&ctx, op, 7, &x, b, &vis, 0.5);
                        // -inf (or a masked special) behaves like a masked column: the same bits
                        // as hiding the column with the per-column mask.
                        if s == f32::NEG_INFINITY || !vis.visible(pos) {
                            let mut vis2 = vis.clone();
                            vis2.cols = Some((0..n).map(|j| j != pos).collect());
                            let op2 = op.with_mask(vis2.mask(n));
                            let mut x2 = x.clone();
                            x2[pos] = 0.25;
                            for_each_kernel!(K => {
                                let (a, ast) = run::<K>(op, 7, &x);
                                let (c, cst) = run::<K>(op2, 7, &x2);
                                let what = "not like a masked column";
                                assert_eq!(bits(&a), bits(&c), "{} {ctx}: {what}", K::NAME);
                                assert_eq!(stat_bits(&ast), stat_bits(&cst), "{ctx}");
                            });
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn special_values_at_lane_boundaries_eval() {
    special_values_at_lane_boundaries(false);
}

#[test]
fn special_values_at_lane_boundaries_train_with_bias_and_two_specials() {
    special_values_at_lane_boundaries(true);
}

/// A fully masked case: name, logits, mask, bias.
type MaskedCase<'a> = (&'a str, &'a [f32], Mask<'a>, Option<&'a [f32]>);

#[test]
fn fully_masked_rows_at_every_length() {
    let key = DropoutKey::new(3, 3);
    for n in 1..=40usize {
        let x: Vec<f32> = (0..n).map(|j| (j as f32).sin()).collect();
        let mut nan_outside = vec![f32::NEG_INFINITY; n];
        // Only -inf in the band, NaN and +inf outside it.
        let (lo, hi) = (n / 3, n - n / 4);
        for (j, v) in nan_outside.iter_mut().enumerate() {
            if j < lo || j >= hi {
                *v = if j % 2 == 0 { f32::NAN } else { f32::INFINITY };
            }
        }
        let none = vec![false; n];
        let no_bits = vec![0u8; n.div_ceil(8)];
        let neg_bias = vec![f32::NEG_INFINITY; n];
        let band_empty = Mask::band(n + 5, 2, 0);
        let cases: [MaskedCase<'_>; 8] = [
            ("key_len(0)", &x, Mask::key_len(0), None),
            ("window 0", &x, Mask::sliding_window(n / 2, 0), None),
            ("band past the end", &x, band_empty, None),
            (
                "causal past key_len",
                &x,
                Mask::causal(n).with_key_len(0),
                None,
            ),
            ("no columns", &x, Mask::none().with_columns(&none), None),
            (
                "no bits",
                &x,
                Mask::causal(n).with_column_bits(&no_bits),
                None,
            ),
            ("bias all -inf", &x, Mask::none(), Some(&neg_bias)),
            (
                "-inf in band, specials outside",
                &nan_outside,
                Mask::band(hi - 1, hi - 1 - lo, 0),
                None,
            ),
        ];
        for (name, xs, mask, bias) in cases {
            for op in [
                SoftmaxDropout::eval(2.0).unwrap(),
                SoftmaxDropout::train(2.0, Dropout::new(0.5).unwrap(), key).unwrap(),
                SoftmaxDropout::train(2.0, Dropout::new(1.0).unwrap(), key).unwrap(),
            ] {
                let mut op = op.with_mask(mask);
                if let Some(b) = bias {
                    op = op.with_bias(b);
                }
                for_each_kernel!(K => {
                    let (y, st) = run::<K>(op, 1, xs);
                    let ctx = format!("{} n={n} {name}", K::NAME);
                    assert!(y.iter().all(|v| v.to_bits() == 0), "{ctx}: {y:?}");
                    assert_eq!(stat_bits(&st), stat_bits(&RowStats::EMPTY), "{ctx}");
                    assert_eq!(st.lse(), f32::NEG_INFINITY);
                });
            }
        }
    }
}

#[test]
fn special_rows_in_matrix_calls_match_single_rows() {
    // A matrix whose rows carry different special values at different lane positions, under a
    // causal mask whose band grows by one column per row, and a bias; in place and not.
    let mut r = rng(0x3A7);
    let key = DropoutKey::new(u64::MAX, u64::MAX - 5);
    let cols = 37;
    let rows = 24;
    let mut x = row(&mut r, rows * cols, -2.0, 2.0);
    let bias = row(&mut r, cols, -1.0, 1.0);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    for i in 0..rows {
        let pos = [0, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 36][i % 12];
        x[i * cols + pos] = specials[i % 3];
        if i % 4 == 1 {
            x[i * cols + (pos + 9) % cols] = f32::INFINITY;
        }
    }
    for op in [
        SoftmaxDropout::eval(0.6).unwrap(),
        SoftmaxDropout::train(0.6, Dropout::new(0.2).unwrap(), key).unwrap(),
    ] {
        let q0 = 5;
        let op = op.with_bias(&bias).with_mask(Mask::causal(q0));
        let mut want = vec![0.0f32; x.len()];
        let mut want_st = vec![RowStats::EMPTY; rows];
        op.with_kernel::<Scalar>()
            .forward_rows(u64::MAX - 10, cols, &x, &mut want, Some(&mut want_st))
            .unwrap();
        for_each_kernel!(K => {
            let k = op.with_kernel::<K>();
            let mut y = vec![0.0f32; x.len()];
            let mut st = vec![RowStats::EMPTY; rows];
            k.forward_rows(u64::MAX - 10, cols, &x, &mut y, Some(&mut st)).unwrap();
            let mut yi = x.clone();
            let mut sti = vec![RowStats::EMPTY; rows];
            k.forward_rows_in_place(u64::MAX - 10, cols, &mut yi, Some(&mut sti)).unwrap();
            assert_eq!(bits(&yi), bits(&y), "{}: in place", K::NAME);
            for i in 0..rows {
                let rid = (u64::MAX - 10).wrapping_add(i as u64);
                let xr = &x[i * cols..(i + 1) * cols];
                let vis = Vis::band(0, q0 + i + 1);
                let ctx = format!("{} row {i}", K::NAME);
                let (single, sst) = run::<K>(op.with_mask(Mask::causal(q0 + i)), rid, xr);
                let got = &y[i * cols..(i + 1) * cols];
                assert_eq!(bits(got), bits(&single), "{ctx}: matrix vs single row");
                assert_eq!(stat_bits(&st[i]), stat_bits(&sst), "{ctx}");
                assert_eq!(stat_bits(&sti[i]), stat_bits(&sst), "{ctx}");
                let z = scores(xr, Some(&bias), &vis, 0.6);
                let train = train_of(&op);
                let train_ref = train.as_ref().map(|(d, kk)| (d, *kk, rid));
                check_expected(&ctx, &z, train_ref, got, &st[i]);
                if !st[i].max.is_finite() {
                    let scalar = &want[i * cols..(i + 1) * cols];
                    assert_eq!(bits(got), bits(scalar), "{ctx}: vs scalar");
                    assert_eq!(stat_bits(&st[i]), stat_bits(&want_st[i]), "{ctx}");
                }
            }
        });
    }
}
