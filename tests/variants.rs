//! Every kernel variant against the scalar reference and the f64 oracle.

mod common;

use common::*;
use dropmax::{Dropout, DropoutKey, Mask, RowKernel, Scalar, SoftmaxDropout, Wide4, Wide8, Wide16};

fn check_variant<K: RowKernel>() {
    let mut r = rng(1);
    let key = DropoutKey::new(0x1234_5678_9ABC_DEF0, 99);
    for n in (0..=130).chain([255, 256, 257, 1000, 1024, 4096]) {
        let x = row(&mut r, n, -8.0, 8.0);
        for train in [false, true] {
            let base = if train {
                SoftmaxDropout::train(0.7, Dropout::new(0.1).unwrap(), key).unwrap()
            } else {
                SoftmaxDropout::eval(0.7).unwrap()
            };
            for mask in [Mask::none(), Mask::causal(n / 3)] {
                let op = base.with_mask(mask);
                let mut want = vec![f32::NAN; n];
                let mut got = vec![f32::NAN; n];
                let sw = op
                    .with_kernel::<Scalar>()
                    .forward(5, &x, &mut want)
                    .unwrap();
                let sg = op.with_kernel::<K>().forward(5, &x, &mut got).unwrap();
                assert_eq!(sw.max, sg.max);
                for j in 0..n {
                    assert_eq!(
                        want[j] == 0.0,
                        got[j] == 0.0,
                        "{} n={n} j={j} train={train}",
                        K::NAME
                    );
                    let tol = 2e-6 * want[j].abs() + 1e-30;
                    assert!(
                        (want[j] - got[j]).abs() <= tol,
                        "{} n={n} j={j}: {} vs {}",
                        K::NAME,
                        want[j],
                        got[j]
                    );
                }
            }
        }
    }
}

#[test]
fn wide4_matches_scalar() {
    check_variant::<Wide4>();
}
#[test]
fn wide8_matches_scalar() {
    check_variant::<Wide8>();
}
#[test]
fn wide16_matches_scalar() {
    check_variant::<Wide16>();
}
