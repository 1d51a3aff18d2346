//! The result does not depend on how the work is split: one call, row by row, arbitrary row
//! ranges, in place or not; and a row's mask does not depend on its length or on the variant.

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Mask, RowKernel, RowStats, SoftmaxDropout};
use rand_core::Rng;

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

/// A randomized differential of the matrix calls against the single-row calls, for the paths
/// the pipelined loop chooses between (plain or stored pass 1 ahead, special and empty rows,
/// rows under a chunk and multiples of one): 3000 matrices of 1-12 rows and 1-140 columns with
/// random special rows, seven masks (an empty window among them), bias or none, scales of both
/// signs and 1e30, p in {0, 0.1, 0.5, 1}, wrapping row ids. Out of place, in place and the
/// single-row API must agree bit for bit, statistics included. (Written from a review's scratch
/// test, 2026-11-28.)
fn matrix_calls_match_single_rows<K: RowKernel>() {
    let mut r = rng(777);
    let mut pick = |n: usize| (r.next_u32() as usize) % n;
    let mut data = rng(778);
    for iter in 0..3000usize {
        let cols = match iter % 5 {
            0 => 1 + pick(5),
            1 => 1 + pick(20),
            2 => 15 + pick(56),
            3 => 16 * (1 + pick(5)),
            _ => 60 + pick(81),
        };
        let rows = 1 + pick(12);
        let mut x = row(&mut data, rows * cols, -8.0, 8.0);
        for xr in x.chunks_exact_mut(cols) {
            let j = pick(cols);
            match pick(12) {
                0 => xr[j] = f32::NAN,
                1 => xr.fill(f32::NEG_INFINITY),
                2 => xr[j] = f32::INFINITY,
                3 => xr.fill(0.0),
                4 => xr[j] = f32::NEG_INFINITY,
                5 => xr[j] = 3.0e38,
                6 => xr.fill(-0.0),
                _ => {}
            }
        }
        let bias = row(&mut data, cols, -1.0, 1.0);
        let visible: Vec<bool> = (0..cols).map(|_| pick(4) != 0).collect();
        let (q, kind) = (pick(cols + 3), pick(7));
        let mask_at = |i: usize| match kind {
            0 => Mask::none(),
            1 => Mask::causal(q + i),
            2 => Mask::sliding_window(q + i, 1 + iter % 9),
            3 => Mask::band(q + i, 3, 2),
            4 => Mask::causal(q + i).with_key_len(cols / 2),
            5 => Mask::sliding_window(q + i, 0),
            _ => Mask::none().with_columns(&visible),
        };
        let key = DropoutKey::new(iter as u64, u64::MAX - 2);
        let first_row = if iter % 3 == 0 {
            u64::MAX - 3
        } else {
            iter as u64
        };
        let scale = [0.125, -0.5, 1.0e30, 1.0][iter % 4];
        let p = [0.0, 0.1, 1.0, 0.5][(iter / 4) % 4];
        for op in [
            SoftmaxDropout::eval(scale).unwrap(),
            SoftmaxDropout::train(scale, Dropout::new(p).unwrap(), key).unwrap(),
        ] {
            let mut op = op.with_mask(mask_at(0)).with_kernel::<K>();
            if iter % 7 == 0 {
                op = op.with_bias(&bias);
            }
            let mut whole = vec![f32::NAN; x.len()];
            let mut st = vec![RowStats::EMPTY; rows];
            op.forward_rows(first_row, cols, &x, &mut whole, Some(&mut st))
                .unwrap();
            let mut in_place = x.clone();
            let mut st_in_place = vec![RowStats::EMPTY; rows];
            op.forward_rows_in_place(first_row, cols, &mut in_place, Some(&mut st_in_place))
                .unwrap();
            for i in 0..rows {
                let one = op.with_mask(mask_at(i));
                let id = first_row.wrapping_add(i as u64);
                let cells = i * cols..(i + 1) * cols;
                let mut y = vec![f32::NAN; cols];
                let s = one.forward(id, &x[cells.clone()], &mut y).unwrap();
                let ctx = format!("{} iter {iter} mask {kind} row {i}", K::NAME);
                assert_eq!(bits(&y), bits(&whole[cells.clone()]), "{ctx}: out of place");
                assert_eq!(bits(&y), bits(&in_place[cells]), "{ctx}: in place");
                for got in [st[i], st_in_place[i]] {
                    assert_eq!(
                        (s.max.to_bits(), s.sum.to_bits()),
                        (got.max.to_bits(), got.sum.to_bits()),
                        "{ctx}: stats"
                    );
                }
            }
        }
    }
}

#[test]
fn random_matrix_calls_match_single_rows() {
    for_each_kernel!(K => { matrix_calls_match_single_rows::<K>(); });
}
