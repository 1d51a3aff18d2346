//! Property tests over shapes, parameters and inputs, special values included.

mod common;

use dropmax::{
    Dropout, DropoutKey, Mask, RowKernel, RowStats, Scalar, SoftmaxDropout, Wide4, Wide8, Wide16,
};
use proptest::prelude::*;

/// Logits: mostly ordinary, sometimes large ([80, 100], where a naive exp overflows), sometimes
/// special values or arbitrary bit patterns.
fn logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -10.0f32..10.0,
        2 => 80.0f32..100.0,
        1 => Just(f32::NEG_INFINITY),
        1 => prop::sample::select(vec![f32::INFINITY, f32::NAN, -0.0, f32::MIN_POSITIVE / 4.0, f32::MAX]),
        1 => any::<u32>().prop_map(f32::from_bits),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    x: Vec<f32>,
    scale: f32,
    p: f64,
    train: bool,
    seed: u64,
    offset: u64,
    row: u64,
    q: usize,
    mask_kind: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(logit(), 0..300),
        prop_oneof![Just(1.0f32), -4.0f32..4.0, Just(0.0)],
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        0usize..320,
        0u8..4,
    )
        .prop_map(
            |(x, scale, p, train, seed, offset, row, q, mask_kind)| Case {
                x,
                scale,
                p,
                train,
                seed,
                offset,
                row,
                q,
                mask_kind,
            },
        )
}

fn op_for(c: &Case) -> SoftmaxDropout<'static> {
    let base = if c.train {
        SoftmaxDropout::train(
            c.scale,
            Dropout::new(c.p).unwrap(),
            DropoutKey::new(c.seed, c.offset),
        )
        .unwrap()
    } else {
        SoftmaxDropout::eval(c.scale).unwrap()
    };
    base.with_mask(match c.mask_kind {
        0 => Mask::none(),
        1 => Mask::causal(c.q),
        2 => Mask::sliding_window(c.q, 33),
        _ => Mask::key_len(c.q),
    })
}

fn run<K: RowKernel>(c: &Case) -> (Vec<f32>, RowStats) {
    let mut y = vec![f32::NAN; c.x.len()];
    let st = op_for(c)
        .with_kernel::<K>()
        .forward(c.row, &c.x, &mut y)
        .unwrap();
    (y, st)
}

fn visible(c: &Case, j: usize) -> bool {
    match c.mask_kind {
        0 => true,
        1 => j <= c.q,
        2 => j <= c.q && j + 33 > c.q,
        _ => j < c.q,
    }
}

fn agree<K: RowKernel>(c: &Case, want: &[f32], st: RowStats) -> Result<(), TestCaseError> {
    let (got, gst) = run::<K>(c);
    if st.max.is_finite() {
        prop_assert_eq!(gst.max, st.max);
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            prop_assert_eq!(*g == 0.0, *w == 0.0, "{} j={}", K::NAME, j);
            // |z - m| can reach 2 * 4 * 100 here; both sides are within the bound.
            let tol = 2.0 * (1e-6 + (2.0 * c.scale.abs() * 100.0 + 1.0) * 2f32.powi(-24)) * w.abs()
                + 1e-30;
            prop_assert!((g - w).abs() <= tol, "{} j={}: {} vs {}", K::NAME, j, g, w);
        }
    } else {
        let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(gb, wb, "{}: special row differs", K::NAME);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn kernels_agree_and_keep_the_contract(c in case()) {
        let (want, st) = run::<Scalar>(&c);
        agree::<Wide4>(&c, &want, st)?;
        agree::<Wide8>(&c, &want, st)?;
        agree::<Wide16>(&c, &want, st)?;
        #[cfg(target_arch = "x86_64")]
        if common::runnable::<dropmax::Avx2>() {
            agree::<dropmax::Avx2>(&c, &want, st)?;
        }
        #[cfg(target_arch = "x86_64")]
        if common::runnable::<dropmax::Avx512>() {
            agree::<dropmax::Avx512>(&c, &want, st)?;
        }

        let rescale = if c.train { Dropout::new(c.p).unwrap().rescale() } else { 1.0 };
        for (j, &y) in want.iter().enumerate() {
            if !visible(&c, j) {
                prop_assert_eq!(y.to_bits(), 0, "masked column {} is not +0", j);
            } else if !st.max.is_nan() {
                // 0 or a probability times the rescale (rounding allows a hair above).
                prop_assert!(y == 0.0 || (y > 0.0 && y <= rescale * (1.0 + 1e-6)), "j={}: {}", j, y);
            }
        }
        if !c.train && st.max.is_finite() {
            let s: f64 = want.iter().map(|&v| v as f64).sum();
            // Per element (1e-6 + 2^-24 |z - m|) relative, |z - m| <= 801 here.
            prop_assert!((s - 1.0).abs() <= 1e-6 + 801.0 * 2f64.powi(-24), "sum {}", s);
        }
    }

    #[test]
    fn errors_write_nothing(n in 0usize..100, extra in 1usize..5, scale in -3.0f32..3.0) {
        let x = vec![1.0f32; n];
        let mut y = vec![7.0f32; n + extra];
        let op = SoftmaxDropout::eval(scale).unwrap();
        prop_assert!(op.forward(0, &x, &mut y).is_err());
        prop_assert!(y.iter().all(|&v| v == 7.0));
        let bias = vec![0.0f32; n + extra];
        let mut y = vec![7.0f32; n];
        prop_assert!(op.with_bias(&bias).forward(0, &x, &mut y).is_err());
        prop_assert!(y.iter().all(|&v| v == 7.0));
    }
}
