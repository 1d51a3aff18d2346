//! Every SIMD variant against the scalar reference, one shared test for all of them: every
//! length 0..=130 and long rows, every mask kind, bias, eval and train, in place and not, on
//! sub-slices at every alignment. Masks must be bit-exact (the same zeros), values within twice
//! the documented bound (both sides are within the bound of the exact result).

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Mask, RowKernel, Scalar, SoftmaxDropout};

fn masks<'a>(n: usize, bools: &'a [bool], bits: &'a [u8]) -> Vec<(&'static str, Mask<'a>)> {
    vec![
        ("none", Mask::none()),
        ("causal", Mask::causal(n / 3)),
        ("causal-past", Mask::causal(n + 5)),
        ("window", Mask::sliding_window(n / 2, 19)),
        ("band", Mask::band(n / 2, 3, 20)),
        ("key_len", Mask::key_len(n.saturating_sub(n / 5))),
        (
            "causal+key_len",
            Mask::causal(n / 2).with_key_len(n / 3 + 1),
        ),
        ("bools", Mask::none().with_columns(bools)),
        (
            "bits+causal",
            Mask::causal(2 * n / 3).with_column_bits(bits),
        ),
    ]
}

fn compare<K: RowKernel>(n: usize, offset: usize, r: &mut rand_pcg::Pcg64Mcg) {
    let big = row(r, n + 32, -9.0, 9.0);
    let x = &big[offset..offset + n];
    let bias = row(r, n, -2.0, 2.0);
    let bools: Vec<bool> = (0..n).map(|_| uniform(r, 0.0, 1.0) < 0.8).collect();
    let mut bits = vec![0u8; n.div_ceil(8)];
    for (j, &b) in bools.iter().enumerate() {
        bits[j / 8] |= u8::from(b) << (j % 8);
    }
    let key = DropoutKey::new(0x1234_5678_9ABC_DEF0, 99);
    let modes = [
        SoftmaxDropout::eval(0.7).unwrap(),
        SoftmaxDropout::train(0.7, Dropout::new(0.1).unwrap(), key).unwrap(),
        SoftmaxDropout::train(0.7, Dropout::new(0.5).unwrap(), key).unwrap(),
    ];
    for (mi, base) in modes.into_iter().enumerate() {
        for (name, mask) in masks(n, &bools, &bits) {
            for with_bias in [false, true] {
                let mut op = base.with_mask(mask);
                if with_bias {
                    op = op.with_bias(&bias);
                }
                let mut want = vec![f32::NAN; n];
                let sw = op.with_kernel::<Scalar>().forward(5, x, &mut want).unwrap();
                // Out of place into an unaligned slice, and in place on another one.
                let mut out = vec![f32::NAN; n + 32];
                let got = &mut out[31 - offset..31 - offset + n];
                let sg = op.with_kernel::<K>().forward(5, x, got).unwrap();
                let mut inplace = big.clone();
                let sp = op
                    .with_kernel::<K>()
                    .forward_in_place(5, &mut inplace[offset..offset + n])
                    .unwrap();
                assert_eq!(sg.max, sw.max);
                assert_eq!(sp.max, sw.max);
                let ctx = || {
                    format!(
                        "{} n={n} off={offset} mode={mi} mask={name} bias={with_bias}",
                        K::NAME
                    )
                };
                assert!(
                    (sg.sum - sw.sum).abs() <= 2e-6 * sw.sum,
                    "{}: sum {} vs {}",
                    ctx(),
                    sg.sum,
                    sw.sum
                );
                for j in 0..n {
                    let (w, g, p) = (want[j], got[j], inplace[offset + j]);
                    assert_eq!(
                        g.to_bits(),
                        p.to_bits(),
                        "{} j={j}: in place differs",
                        ctx()
                    );
                    assert_eq!(
                        w == 0.0,
                        g == 0.0,
                        "{} j={j}: mask differs ({w} vs {g})",
                        ctx()
                    );
                    // Twice the bound (1e-6 + 2^-24 |z - m|, |z - m| <= 2 * 0.7 * 9 + 4 < 17).
                    let tol = 2.0 * (1e-6 + 17.0 * 2f32.powi(-24)) * w.abs() + 1e-37;
                    assert!((w - g).abs() <= tol, "{} j={j}: {w} vs {g}", ctx());
                }
            }
        }
    }
}

fn all_lengths<K: RowKernel>() {
    let mut r = rng(1);
    for n in 0..=130 {
        compare::<K>(n, n % 16, &mut r);
    }
    for n in [255, 256, 257, 1000, 1024, 1031, 4096, 16384] {
        compare::<K>(n, 7, &mut r);
    }
}

#[test]
fn wide4_matches_scalar() {
    all_lengths::<dropmax::Wide4>();
}
#[test]
fn wide8_matches_scalar() {
    all_lengths::<dropmax::Wide8>();
}
#[test]
fn wide16_matches_scalar() {
    all_lengths::<dropmax::Wide16>();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_matches_scalar() {
    if common::runnable::<dropmax::Avx2>() {
        all_lengths::<dropmax::Avx2>();
    }
}
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_matches_scalar() {
    if common::runnable::<dropmax::Avx512>() {
        all_lengths::<dropmax::Avx512>();
    }
}
