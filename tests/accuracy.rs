//! Accuracy against an f64 oracle, for every variant.
//!
//! The oracle takes the kernel's own f32 scores `z_j = s * x_j + b_j` (a multiply then an add,
//! exactly as the contract defines them) and computes the softmax and dropout in f64. The bound
//! checked per element is the one the crate documents:
//!
//! `|Y_j - Y*_j| <= (REL + 2^-24 |z_j - m|) * Y*_j + 2^-126 * rescale / S`
//!
//! with REL = 1e-6 for rows up to 4096 visible columns and 2e-6 up to 16384.

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Mask, RowKernel, SoftmaxDropout};

/// The kernel's scores, recomputed the way the contract defines them.
fn scores(
    x: &[f32],
    scale: f32,
    bias: Option<&[f32]>,
    visible: impl Fn(usize) -> bool,
) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(j, &v)| {
            let b = bias.map_or(0.0, |b| b[j]);
            if !visible(j) || v == f32::NEG_INFINITY || b == f32::NEG_INFINITY {
                f32::NEG_INFINITY
            } else if bias.is_some() {
                scale * v + b
            } else {
                scale * v
            }
        })
        .collect()
}

struct Worst {
    rel: f64,
}

fn check_row<K: RowKernel>(
    x: &[f32],
    scale: f32,
    mask: Mask<'_>,
    q: usize,
    train: bool,
    rel: f64,
    worst: &mut Worst,
) {
    let n = x.len();
    let key = DropoutKey::new(0x5EED, 1);
    let dropout = Dropout::new(0.1).unwrap();
    let op = if train {
        SoftmaxDropout::train(scale, dropout, key).unwrap()
    } else {
        SoftmaxDropout::eval(scale).unwrap()
    }
    .with_mask(mask)
    .with_kernel::<K>();
    let mut y = vec![f32::NAN; n];
    let row = 3;
    let st = op.forward(row, x, &mut y).unwrap();
    let causal = mask == Mask::causal(q);
    let z = scores(x, scale, None, |j| !causal || j <= q);
    let (want, m) = oracle(&z, train.then_some((&dropout, key, row)));
    assert_eq!(st.max as f64, m);
    let rescale = if train { dropout.rescale() as f64 } else { 1.0 };
    let sum = exact_sum(&z);
    for j in 0..n {
        if z[j] == f32::NEG_INFINITY {
            assert_eq!(
                y[j].to_bits(),
                0,
                "{} n={n} j={j}: excluded column must be +0",
                K::NAME
            );
            continue;
        }
        let b = bound(want[j], z[j], m, rescale, sum, rel);
        let err = (y[j] as f64 - want[j]).abs();
        assert!(
            err <= b,
            "{} n={n} j={j} z-m={} got {} want {} err {err:e} bound {b:e}",
            K::NAME,
            z[j] as f64 - m,
            y[j],
            want[j]
        );
        if want[j] > 0.0 && (z[j] as f64 - m) > -16.0 {
            worst.rel = worst.rel.max(err / want[j]);
        }
    }
}

fn accuracy<K: RowKernel>() {
    let mut r = rng(7);
    let mut worst = Worst { rel: 0.0 };
    let lengths = (0..=130).chain([255, 256, 257, 1000, 1023, 1024, 1025, 4096]);
    for n in lengths {
        // Ranges: ordinary logits, wide logits, and [80, 100] where a naive exp overflows.
        for (lo, hi, scale) in [
            (-4.0, 4.0, 1.0),
            (-30.0, 30.0, 0.125),
            (80.0, 100.0, 1.0),
            (-100.0, 100.0, 1.0),
        ] {
            let x = row(&mut r, n, lo, hi);
            for train in [false, true] {
                check_row::<K>(&x, scale, Mask::none(), 0, train, 1e-6, &mut worst);
                check_row::<K>(
                    &x,
                    scale,
                    Mask::causal(n / 2),
                    n / 2,
                    train,
                    1e-6,
                    &mut worst,
                );
            }
        }
    }
    for n in [8192, 16384] {
        let x = row(&mut r, n, -10.0, 10.0);
        check_row::<K>(&x, 1.0, Mask::none(), 0, false, 2e-6, &mut worst);
        check_row::<K>(&x, 1.0, Mask::none(), 0, true, 2e-6, &mut worst);
    }
    println!(
        "{}: worst relative error (|z - m| <= 16): {:e}",
        K::NAME,
        worst.rel
    );
}

#[test]
fn scalar_within_bound() {
    accuracy::<dropmax::Scalar>();
}
#[test]
fn wide4_within_bound() {
    accuracy::<dropmax::Wide4>();
}
#[test]
fn wide8_within_bound() {
    accuracy::<dropmax::Wide8>();
}
#[test]
fn wide16_within_bound() {
    accuracy::<dropmax::Wide16>();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_within_bound() {
    if common::runnable::<dropmax::Avx2>() {
        accuracy::<dropmax::Avx2>();
    }
}
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_within_bound() {
    if common::runnable::<dropmax::Avx512>() {
        accuracy::<dropmax::Avx512>();
    }
}

/// Eval rows sum to 1 within the bound summed over the row.
#[test]
fn eval_rows_sum_to_one() {
    let mut r = rng(8);
    for_each_kernel!(K => {
        for n in [1usize, 17, 100, 1024, 4096] {
            let x = row(&mut r, n, -6.0, 6.0);
            let mut y = vec![0.0; n];
            SoftmaxDropout::eval(1.0).unwrap().with_kernel::<K>().forward(0, &x, &mut y).unwrap();
            let s: f64 = y.iter().map(|&v| v as f64).sum();
            // Each element within (1e-6 + 12 * 2^-24) relative (|z - m| <= 12 here).
            assert!((s - 1.0).abs() <= 1e-6 + 12.0 * 2f64.powi(-24), "{} n={n}: sum {s}", K::NAME);
        }
    });
}
