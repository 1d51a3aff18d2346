//! Split rows: per-chunk statistics, an exact merge, each chunk finished on its own. Masks are
//! bit-identical to the unsplit row, values within the documented bound.

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Error, Mask, RowKernel, RowStats, SoftmaxDropout};

fn split_matches_whole<K: RowKernel>() {
    let mut r = rng(41);
    let key = DropoutKey::new(0x1111, 9);
    for n in [1usize, 64, 65, 200, 1000, 4096, 5000] {
        let x = row(&mut r, n, -6.0, 6.0);
        for op in [
            SoftmaxDropout::eval(0.5).unwrap(),
            SoftmaxDropout::train(0.5, Dropout::new(0.1).unwrap(), key).unwrap(),
            SoftmaxDropout::train(0.5, Dropout::new(0.5).unwrap(), key)
                .unwrap()
                .with_mask(Mask::causal(n / 2)),
            SoftmaxDropout::train(0.5, Dropout::new(0.3).unwrap(), key)
                .unwrap()
                .with_mask(Mask::band(n / 2, 70, 100).with_key_len(n - n / 7)),
        ] {
            let op = op.with_kernel::<K>();
            let mut whole = vec![0.0; n];
            let want = op.forward(3, &x, &mut whole).unwrap();
            for chunk in [64usize, 128, 320, 4096] {
                let mut y = vec![f32::NAN; n];
                let mut stats = RowStats::EMPTY;
                for (c, (xc, yc)) in x.chunks(chunk).zip(y.chunks_mut(chunk)).enumerate() {
                    stats = stats.merge(op.chunk_stats(c * chunk, xc, yc).unwrap());
                }
                assert_eq!(stats.max, want.max, "{} n={n} chunk={chunk}", K::NAME);
                assert!(
                    (stats.sum - want.sum).abs() <= 2e-6 * want.sum,
                    "{} sum {} vs {}",
                    K::NAME,
                    stats.sum,
                    want.sum
                );
                // Finish the chunks in reverse order: they are independent.
                for (c, (xc, yc)) in x.chunks(chunk).zip(y.chunks_mut(chunk)).enumerate().rev() {
                    op.forward_chunk(3, c * chunk, stats, xc, yc).unwrap();
                }
                for j in 0..n {
                    assert_eq!(
                        y[j] == 0.0,
                        whole[j] == 0.0,
                        "{} n={n} chunk={chunk} j={j}: mask differs",
                        K::NAME
                    );
                    // Both within the bound of the exact result (|z - m| <= 12 here).
                    let tol = 2.0 * (1e-6 + 12.0 * 2f32.powi(-24)) * whole[j] + 1e-37;
                    assert!(
                        (y[j] - whole[j]).abs() <= tol,
                        "{} n={n} chunk={chunk} j={j}: {} vs {}",
                        K::NAME,
                        y[j],
                        whole[j]
                    );
                }
            }
        }
    }
}

#[test]
fn split_rows_match_the_whole_row() {
    for_each_kernel!(K => { split_matches_whole::<K>(); });
}

#[test]
fn merge_is_exact_and_handles_special_rows() {
    let a = RowStats { max: 2.0, sum: 3.0 };
    let b = RowStats { max: 5.0, sum: 1.5 };
    let m = a.merge(b);
    assert_eq!(m.max, 5.0);
    assert_eq!(m.sum, (3.0 * (-3.0f64).exp() + 1.5) as f32);
    assert_eq!(a.merge(b), b.merge(a));
    assert_eq!(a.merge(RowStats::EMPTY), a);
    assert_eq!(RowStats::EMPTY.merge(RowStats::EMPTY), RowStats::EMPTY);
    let inf = RowStats {
        max: f32::INFINITY,
        sum: 2.0,
    };
    assert_eq!(inf.merge(a), inf);
    assert_eq!(
        inf.merge(inf),
        RowStats {
            max: f32::INFINITY,
            sum: 4.0
        }
    );
    let nan = RowStats {
        max: f32::NAN,
        sum: f32::NAN,
    };
    assert!(a.merge(nan).max.is_nan() && nan.merge(a).sum.is_nan());
}

#[test]
fn special_values_in_one_chunk_reach_the_whole_row() {
    let mut x = vec![0.5f32; 256];
    x[200] = f32::NAN;
    let op = SoftmaxDropout::eval(1.0).unwrap();
    let mut y = vec![0.0; 256];
    let s = op
        .chunk_stats(0, &x[..128], &mut y[..128])
        .unwrap()
        .merge(op.chunk_stats(128, &x[128..], &mut y[128..]).unwrap());
    op.forward_chunk(0, 0, s, &x[..128], &mut y[..128]).unwrap();
    op.forward_chunk(0, 128, s, &x[128..], &mut y[128..])
        .unwrap();
    assert!(y.iter().all(|v| v.is_nan()));
    x[200] = f32::INFINITY;
    let s = op
        .chunk_stats(0, &x[..128], &mut y[..128])
        .unwrap()
        .merge(op.chunk_stats(128, &x[128..], &mut y[128..]).unwrap());
    assert_eq!(
        s,
        RowStats {
            max: f32::INFINITY,
            sum: 1.0
        }
    );
    op.forward_chunk(0, 0, s, &x[..128], &mut y[..128]).unwrap();
    op.forward_chunk(0, 128, s, &x[128..], &mut y[128..])
        .unwrap();
    assert!(
        y.iter()
            .enumerate()
            .all(|(j, &v)| v == if j == 200 { 1.0 } else { 0.0 })
    );
}

#[test]
fn misaligned_or_mismatched_chunks_are_errors() {
    let op = SoftmaxDropout::eval(1.0).unwrap();
    let x = [1.0f32; 10];
    let mut y = [7.0f32; 10];
    assert_eq!(op.chunk_stats(3, &x, &mut y), Err(Error::ChunkAlignment));
    assert_eq!(
        op.forward_chunk(0, 65, RowStats::EMPTY, &x, &mut y),
        Err(Error::ChunkAlignment)
    );
    assert!(
        op.forward_chunk(0, 64, RowStats::EMPTY, &x, &mut y[..9])
            .is_err()
    );
    assert_eq!(y, [7.0; 10]);
}
