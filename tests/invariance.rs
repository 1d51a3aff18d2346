//! The result does not depend on how the work is split: one call, row by row, arbitrary row
//! ranges, in place or not; and a row's mask does not depend on its length or on the variant.

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Mask, RowKernel, RowStats, SoftmaxDropout};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn split_invariance<K: RowKernel>() {
    let mut r = rng(21);
    let (rows, cols) = (37usize, 45usize);
    let x = row(&mut r, rows * cols, -5.0, 5.0);
    let bias = row(&mut r, cols, -1.0, 1.0);
    let key = DropoutKey::new(u64::MAX - 3, u64::MAX - 10); // row ids wrap inside the matrix
    let first_row = 4;
    for mask in [
        Mask::none(),
        Mask::causal(3),
        Mask::sliding_window(20, 7).with_key_len(40),
    ] {
        let op = SoftmaxDropout::train(0.3, Dropout::new(0.2).unwrap(), key)
            .unwrap()
            .with_mask(mask)
            .with_bias(&bias)
            .with_kernel::<K>();
        let mut whole = vec![0.0; x.len()];
        let mut st_whole = vec![RowStats::EMPTY; rows];
        op.forward_rows(first_row, cols, &x, &mut whole, Some(&mut st_whole))
            .unwrap();

        let mut in_place = x.clone();
        op.forward_rows_in_place(first_row, cols, &mut in_place, None)
            .unwrap();
        assert_eq!(bits(&in_place), bits(&whole), "{}: in place", K::NAME);

        // Arbitrary row ranges: each range's mask starts at its own first query position.
        let mut pieces = vec![0.0; x.len()];
        let cuts = [0usize, 1, 2, 10, 11, 30, 37];
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let shifted = match mask {
                m if m == Mask::none() => m,
                m if m == Mask::causal(3) => Mask::causal(3 + a),
                _ => Mask::sliding_window(20 + a, 7).with_key_len(40),
            };
            let op = op.with_mask(shifted);
            op.forward_rows(
                first_row + a as u64,
                cols,
                &x[a * cols..b * cols],
                &mut pieces[a * cols..b * cols],
                None,
            )
            .unwrap();
        }
        assert_eq!(bits(&pieces), bits(&whole), "{}: row ranges", K::NAME);

        // Row by row through the single-row API.
        for i in 0..rows {
            let shifted = match mask {
                m if m == Mask::none() => m,
                m if m == Mask::causal(3) => Mask::causal(3 + i),
                _ => Mask::sliding_window(20 + i, 7).with_key_len(40),
            };
            let mut y = vec![0.0; cols];
            let st = op
                .with_mask(shifted)
                .forward(first_row + i as u64, &x[i * cols..(i + 1) * cols], &mut y)
                .unwrap();
            assert_eq!(
                bits(&y),
                bits(&whole[i * cols..(i + 1) * cols]),
                "{}: row {i}",
                K::NAME
            );
            assert_eq!(format!("{st:?}"), format!("{:?}", st_whole[i]));
        }
    }
}

#[test]
fn splitting_rows_never_changes_a_bit() {
    for_each_kernel!(K => { split_invariance::<K>(); });
}

/// The kept pattern of columns `0..k` is the same for a row of any length `>= k`, any mask that
/// leaves them visible, and every variant (logits in [-1, 1]: no probability underflows, so the
/// zeros are exactly the dropped elements).
#[test]
fn mask_is_independent_of_row_length_and_variant() {
    let mut r = rng(22);
    let full = row(&mut r, 1100, -1.0, 1.0);
    let key = DropoutKey::new(0xDEAD_BEEF, 17);
    let dropout = Dropout::new(1.0 / 3.0).unwrap();
    let reference: Vec<bool> = (0..full.len() as u32)
        .map(|j| dropmax::keep(&dropout, key, 9, j))
        .collect();
    for_each_kernel!(K => {
        for n in [1usize, 7, 16, 63, 64, 255, 256, 257, 700, 1100] {
            let op = SoftmaxDropout::train(1.0, dropout, key).unwrap().with_kernel::<K>();
            let mut y = vec![0.0; n];
            op.forward(9, &full[..n], &mut y).unwrap();
            let kept: Vec<bool> = y.iter().map(|&v| v != 0.0).collect();
            assert_eq!(kept, reference[..n], "{} n={n}", K::NAME);
            // A causal band that starts mid-row keeps the same decisions inside it.
            let op = op.with_mask(Mask::band(n / 2, n / 4, 0));
            op.forward(9, &full[..n], &mut y).unwrap();
            let lo = n / 2 - n / 4;
            let kept: Vec<bool> = y[lo..=n / 2].iter().map(|&v| v != 0.0).collect();
            assert_eq!(kept, reference[lo..=n / 2], "{} band n={n}", K::NAME);
            assert!(y[..lo].iter().chain(&y[n / 2 + 1..]).all(|&v| v.to_bits() == 0));
        }
        // Dropout alone uses the same mask.
        let mut ones = vec![1.0f32; full.len()];
        dropout.apply_with::<K>(key, 9, &mut ones).unwrap();
        let kept: Vec<bool> = ones.iter().map(|&v| v != 0.0).collect();
        assert_eq!(kept, reference, "{} apply", K::NAME);
        assert!(ones.iter().all(|&v| v == 0.0 || v == dropout.rescale()));
    });
}

/// `forward_rows` with plain scores (no bias, positive scale) runs its rows software-pipelined
/// (the next row's maximum taken before this row's finish). Rows of every kind are mixed so that
/// the look-ahead meets each: special rows (NaN early and late, all `-inf`, `+inf`, huge values,
/// zeros) before and after ordinary ones, and bands under which rows go from banded (general
/// path) to whole and, for a window, back to banded. The result must be bit-identical to the
/// single-row API and to the in-place call (which never takes the plain path).
fn pipelined_rows<K: RowKernel>() {
    let mut r = rng(23);
    let cols = 70;
    let mut rows: Vec<Vec<f32>> = (0..24).map(|_| row(&mut r, cols, -6.0, 6.0)).collect();
    rows[1][0] = f32::NAN;
    rows[2][cols - 1] = f32::NAN;
    rows[5] = vec![f32::NEG_INFINITY; cols];
    rows[6][3] = f32::INFINITY;
    rows[9] = vec![0.0; cols];
    rows[10][17] = 3.0e38;
    rows[13][cols - 1] = f32::NAN;
    rows[14][40] = f32::NEG_INFINITY;
    rows[23][0] = f32::NAN;
    let x: Vec<f32> = rows.concat();
    let n_rows = rows.len();
    let key = DropoutKey::new(99, u64::MAX - 5);
    // Rows 9-14 of the window are whole, those before and after it banded.
    for band in [None, Some((60, usize::MAX)), Some((60, 74))] {
        let mask_at = |i: usize| band.map_or(Mask::none(), |(q, b)| Mask::band(q + i, b, 0));
        let mask = mask_at(0);
        for op in [
            SoftmaxDropout::eval(0.125).unwrap(),
            SoftmaxDropout::train(0.125, Dropout::new(0.1).unwrap(), key).unwrap(),
        ] {
            let op = op.with_mask(mask).with_kernel::<K>();
            let mut whole = vec![f32::NAN; x.len()];
            let mut st = vec![RowStats::EMPTY; n_rows];
            op.forward_rows(7, cols, &x, &mut whole, Some(&mut st))
                .unwrap();
            let mut in_place = x.clone();
            op.forward_rows_in_place(7, cols, &mut in_place, None)
                .unwrap();
            assert_eq!(bits(&in_place), bits(&whole), "{}: in place", K::NAME);
            for i in 0..n_rows {
                let mut y = vec![f32::NAN; cols];
                let one = op.with_mask(mask_at(i));
                let st_one = one
                    .forward(7 + i as u64, &x[i * cols..(i + 1) * cols], &mut y)
                    .unwrap();
                let got = &whole[i * cols..(i + 1) * cols];
                assert_eq!(bits(&y), bits(got), "{}: row {i}", K::NAME);
                assert_eq!(format!("{st_one:?}"), format!("{:?}", st[i]));
            }
            // The special rows came out as special rows, not as silently ordinary ones.
            assert!(whole[cols + 14..cols + 60].iter().all(|v| v.is_nan()));
            assert!(whole[5 * cols..6 * cols].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn pipelined_plain_rows_match_row_by_row() {
    for_each_kernel!(K => { pipelined_rows::<K>(); });
}
