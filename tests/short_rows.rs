//! Matrices of short rows (at most 64 columns: done in registers, two rows at a time, with the
//! keep bits of 8 rows and their ties settled together on AVX-512) against the same rows done one
//! call at a time, and against the f64 oracle with the exact `keep` formula:
//!
//! - every column count from 1 to 66, so every chunk count and ragged tail, and the first
//!   lengths past the in-register path;
//! - even and odd row counts, and first rows not aligned to the 8-row batches, with row ids
//!   that wrap past `u64::MAX`;
//! - evaluation, and training with ties to settle (`d_lo != 0`) and without (`d_lo == 0`);
//! - no mask, a causal band, a bias (the general scores path), in place;
//! - special rows (NaN, all `-inf`, `+inf`, a masked-out row) as either row of a pair.
//!
//! Bit for bit against the row calls: both go through the same arithmetic, so any difference is
//! a pairing, batching or tie-settling error, not rounding.

mod common;

use common::*;
use dropmax::{Best, Dropout, DropoutKey, Mask, RowStats, SoftmaxDropout};

/// Logits for `rows x cols`, with the special rows listed in `special` as `(row, kind)`.
fn logits(rows: usize, cols: usize, seed: u64, special: &[(usize, u8)]) -> Vec<f32> {
    let mut r = rng(seed);
    let mut x = row(&mut r, rows * cols, -6.0, 6.0);
    for &(i, kind) in special {
        if i >= rows {
            continue;
        }
        let seg = &mut x[i * cols..(i + 1) * cols];
        match kind {
            0 => seg[cols / 2] = f32::NAN,
            1 => seg.fill(f32::NEG_INFINITY),
            _ => seg[cols - 1] = f32::INFINITY,
        }
    }
    x
}

/// The matrix call against row calls (each with its own query position in the mask), in
/// place too, bit for bit, statistics included.
fn check(
    op: SoftmaxDropout<'_, Best>,
    causal: Option<usize>,
    first_row: u64,
    cols: usize,
    x: &[f32],
) {
    let rows = x.len() / cols;
    let mask = causal.map_or(Mask::none(), |q| Mask::causal(q).with_key_len(cols));
    let mut y = vec![f32::NAN; x.len()];
    let mut st = vec![RowStats::EMPTY; rows];
    op.with_mask(mask)
        .forward_rows(first_row, cols, x, &mut y, Some(&mut st))
        .unwrap();
    let mut xy = x.to_vec();
    op.with_mask(mask)
        .forward_rows_in_place(first_row, cols, &mut xy, None)
        .unwrap();
    assert_eq!(bits(&xy), bits(&y), "in place, {cols} columns, {rows} rows");
    for i in 0..rows {
        let shifted = causal.map_or(Mask::none(), |q| Mask::causal(q + i).with_key_len(cols));
        let mut yr = vec![f32::NAN; cols];
        let sr = op
            .with_mask(shifted)
            .forward(
                first_row.wrapping_add(i as u64),
                &x[i * cols..(i + 1) * cols],
                &mut yr,
            )
            .unwrap();
        let what = format!("row {i} of {rows} x {cols}, first row {first_row}");
        assert_eq!(bits(&y[i * cols..(i + 1) * cols]), bits(&yr), "{what}");
        assert_eq!(stats_bits(&st[i..=i]), stats_bits(&[sr]), "{what}");
    }
}

fn modes() -> Vec<(SoftmaxDropout<'static, Best>, &'static str)> {
    let key = DropoutKey::new(0x0DDB_A11C_AFE5_0001, u64::MAX - 5);
    vec![
        (SoftmaxDropout::eval(0.5).unwrap(), "eval"),
        // p = 0.1: D & 0xFFFFFF != 0, ties need their tie-break words.
        (
            SoftmaxDropout::train(0.5, Dropout::new(0.1).unwrap(), key).unwrap(),
            "p 0.1",
        ),
        // p = 0.25: D = 2^30, no tie-break word is ever needed.
        (
            SoftmaxDropout::train(0.5, Dropout::new(0.25).unwrap(), key).unwrap(),
            "p 0.25",
        ),
    ]
}

#[test]
fn matrices_of_short_rows_equal_their_rows() {
    let special = [(3, 0), (4, 1), (9, 2), (12, 1), (13, 0)];
    for cols in (1..=66).chain([100, 127, 128, 129]) {
        for (rows, first_row) in [(1, 0), (2, 7), (9, 0), (17, 5), (16, u64::MAX - 2)] {
            let x = logits(rows, cols, cols as u64 * 31 + rows as u64, &special);
            for (op, _) in modes() {
                check(op, None, first_row, cols, &x);
                check(op, Some(cols / 2), first_row, cols, &x);
            }
        }
    }
}

/// Longer rows whose band ends within the first 64 columns (the first rows of a causal block)
/// are done in registers on those columns, the rest zeros: in a matrix as alone, in place too,
/// and next to rows of wider bands on the ordinary path.
#[test]
fn rows_banded_within_64_columns_equal_their_rows() {
    let special = [(3, 0), (4, 1), (70, 2)];
    for cols in [65, 100, 128, 129, 200, 1024] {
        for (rows, first_row, q) in [(80, 0, 0), (9, 3, 40), (33, u64::MAX - 4, 63), (5, 0, 64)] {
            let x = logits(rows, cols, cols as u64 + q as u64, &special);
            for (op, _) in modes() {
                check(op, Some(q), first_row, cols, &x);
            }
        }
    }
}

#[test]
fn short_rows_with_a_bias_equal_their_rows() {
    let mut r = rng(99);
    for cols in [16, 17, 33, 48, 63, 64] {
        let bias = row(&mut r, cols, -2.0, 2.0);
        let x = logits(11, cols, cols as u64, &[(5, 0)]);
        for (op, _) in modes() {
            check(op.with_bias(&bias), None, 3, cols, &x);
        }
    }
}

/// Every row of long runs of rows of 64, 100 and 128 columns (about 1 tie per 4 rows of 64, and
/// batches with many) against the f64 oracle: the keep pattern exactly as `dropmax::keep`
/// defines it, the values within the documented bound.
#[test]
fn short_rows_follow_the_oracle_through_many_ties() {
    for cols in [64, 100, 128] {
        follow_the_oracle(1001, cols);
    }
}

fn follow_the_oracle(rows: usize, cols: usize) {
    let x = logits(rows, cols, 5, &[]);
    let scale = 0.5f32;
    for (op, name) in modes() {
        let mut y = vec![0.0; x.len()];
        op.forward_rows(u64::MAX - 500, cols, &x, &mut y, None)
            .unwrap();
        let (d, key) = match op.mode() {
            dropmax::Mode::Train { dropout, key } => (Some(dropout), key),
            dropmax::Mode::Eval => (None, DropoutKey::new(0, 0)),
        };
        let mut ties = 0;
        for i in 0..rows {
            let row_id = (u64::MAX - 500).wrapping_add(i as u64);
            let z: Vec<f32> = x[i * cols..(i + 1) * cols]
                .iter()
                .map(|&v| v * scale)
                .collect();
            let (want, m) = oracle(&z, d.as_ref().map(|d| (d, key, row_id)));
            let rescale = d.map_or(1.0, |d| 1.0 / d.keep_probability());
            let sum = exact_sum(&z);
            for j in 0..cols {
                let got = f64::from(y[i * cols + j]);
                assert_eq!(got == 0.0, want[j] == 0.0, "{name}: keep, row {i} col {j}");
                let b = bound(want[j], z[j], m, rescale, sum, 1e-6);
                assert!(
                    (got - want[j]).abs() <= b,
                    "{name}: row {i} col {j}: {got} vs {}",
                    want[j]
                );
                if let Some(d) = d {
                    let u = dropmax::mask_uniform(key, row_id, j as u32);
                    ties += usize::from(u >> 24 == (d.threshold() >> 24) as u32);
                }
            }
        }
        // At least 64064 elements, a tie with probability 1/256 each: about 250 or more, and
        // fewer than 100 with probability below 1e-20 (a binomial tail).
        if d.is_some() {
            assert!(ties > 100, "{name}: only {ties} ties exercised");
        }
    }
}
