//! Shared helpers for the integration tests: deterministic data and the f64 oracle.
#![allow(dead_code)]

use dropmax::{Dropout, DropoutKey, keep};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// A deterministic generator for test data.
pub fn rng(seed: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed)
}

/// Uniform f32 in [lo, hi).
pub fn uniform(r: &mut Pcg64Mcg, lo: f32, hi: f32) -> f32 {
    let u = (r.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    lo + (hi - lo) * u
}

/// A row of n uniform logits in [lo, hi).
pub fn row(r: &mut Pcg64Mcg, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| uniform(r, lo, hi)).collect()
}

/// The exact (f64) softmax-dropout of already-computed f32 scores `z` (`-inf` = excluded), the
/// oracle the error bound is stated against. Returns the outputs and `m`.
pub fn oracle(z: &[f32], train: Option<(&Dropout, DropoutKey, u64)>) -> (Vec<f64>, f64) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if m == f64::NEG_INFINITY {
        return (vec![0.0; z.len()], m);
    }
    let e: Vec<f64> = z.iter().map(|&v| ((v as f64) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    let out = e
        .iter()
        .enumerate()
        .map(|(j, &e)| match train {
            None => e / s,
            Some((d, key, row)) => {
                if keep(d, key, row, j as u32) {
                    e / s / d.keep_probability()
                } else {
                    0.0
                }
            }
        })
        .collect();
    (out, m)
}

/// `S = sum_j exp(z_j - m)` of already-computed f32 scores (`-inf` = excluded), in f64 as the
/// [`oracle`] takes it: the `S` of the documented bound. 0 when every score is `-inf`.
pub fn exact_sum(z: &[f32]) -> f64 {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if m == f64::NEG_INFINITY {
        return 0.0;
    }
    z.iter().map(|&v| ((v as f64) - m).exp()).sum()
}

/// The documented bound for one element (the crate docs' "Accuracy", with `rel` for its 1e-6):
/// `(rel + 2^-24 |z - m|) * y* + 2^-126 * rescale / S`, `S` the row's [`exact_sum`].
pub fn bound(y_star: f64, z: f32, m: f64, rescale: f64, s: f64, rel: f64) -> f64 {
    let d = (z as f64 - m).abs();
    (rel + d * f64::from(2f32.powi(-24))) * y_star + f64::from(f32::MIN_POSITIVE) * rescale / s
}

/// The bits of each value: for comparisons that must hold bit for bit.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// The bits of each row's statistics `(m, S)`.
pub fn stats_bits(s: &[dropmax::RowStats]) -> Vec<(u32, u32)> {
    s.iter()
        .map(|s| (s.max.to_bits(), s.sum.to_bits()))
        .collect()
}

/// Whether the tests of kernel `K` run on this machine: when the CPU lacks its instructions
/// they are skipped, unless `DROPMAX_REQUIRE_KERNELS` (a comma-separated list of kernel names,
/// set by CI) names it, which fails the test instead of skipping it silently.
pub fn runnable<K: dropmax::RowKernel>() -> bool {
    if K::is_supported() {
        return true;
    }
    let required = std::env::var("DROPMAX_REQUIRE_KERNELS").unwrap_or_default();
    assert!(
        !required.split(',').any(|k| k.trim() == K::NAME),
        "kernel {} is required by DROPMAX_REQUIRE_KERNELS but this CPU cannot run it",
        K::NAME
    );
    false
}

/// Runs `$body` once per kernel variant this CPU supports (see [`runnable`]), with `$k` bound
/// to the variant type: the scalar reference, the portable tables, the x86-64 tables, and the
/// run-time choice.
#[macro_export]
macro_rules! for_each_kernel {
    ($k:ident => $body:block) => {{
        {
            type $k = dropmax::Scalar;
            $body
        }
        {
            type $k = dropmax::Wide4;
            $body
        }
        {
            type $k = dropmax::Wide8;
            $body
        }
        {
            type $k = dropmax::Wide16;
            $body
        }
        #[cfg(target_arch = "x86_64")]
        {
            type $k = dropmax::Avx2;
            if $crate::common::runnable::<$k>() $body
        }
        #[cfg(target_arch = "x86_64")]
        {
            type $k = dropmax::Avx512;
            if $crate::common::runnable::<$k>() $body
        }
        {
            type $k = dropmax::Best;
            $body
        }
    }};
}

/// Each column's factor on `G_j = dy_j * factor` in the backward of row `row`: 1 in evaluation
/// (`train` `None`), `1/q` where [`keep`] keeps the column, 0 where it drops it.
pub fn kept_factors(train: Option<(&Dropout, DropoutKey)>, row: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| match train {
            None => 1.0,
            Some((d, key)) if keep(d, key, row, j as u32) => 1.0 / d.keep_probability(),
            Some(_) => 0.0,
        })
        .collect()
}
