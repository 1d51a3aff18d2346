//! Statistical tests of the dropout mask: keep rate, expectation, position bias, independence.
//!
//! Every test uses fixed keys and rows, so it is deterministic: it either always passes or always
//! fails. The thresholds are chosen so that a correct generator would fail a *random* key with
//! probability below about 1e-6 per assertion (about 1e-4 for the whole file), while the defects
//! they target (a wrong rate, a quantised threshold, a stream reused across columns, rows, offsets
//! or seeds) move the statistic far beyond them.
//!
//! Decisions are generated in bulk through the public kernels (`Dropout::apply` on rows of ones:
//! a kept element becomes `rescale > 0`, a dropped one 0), not with `keep()` per element, which
//! costs two Philox blocks per call. Throughput measured in a debug build: about 120 ns per
//! decision through `apply`, about 280 ns through `keep()`.
//!
//! Conventions: `q` is the exact keep probability `Dropout::keep_probability()`; a binomial count
//! is turned into `z = (k - N q) / sqrt(N q (1 - q))`, and `|z| < 5` is the acceptance region (a
//! two-sided normal tail of 5.7e-7; every count here has `N q (1 - q)` in the thousands, where the
//! normal approximation of the binomial is accurate far enough into the tail).

mod common;

use common::{rng, row};
use dropmax::{Dropout, DropoutKey, SoftmaxDropout, keep};

/// Row length for bulk generation: 16 groups of 256 columns.
const COLS: usize = 4096;

/// The keep decisions of one row of `n` columns, through the default kernel.
fn mask_row(d: &Dropout, key: DropoutKey, row: u64, n: usize) -> Vec<bool> {
    let mut v = vec![1.0f32; n];
    d.apply(key, row, &mut v).unwrap();
    v.iter().map(|&x| x != 0.0).collect()
}

/// Per-column keep counts over rows `first..first + rows`, each of `COLS` columns.
fn column_counts(d: &Dropout, key: DropoutKey, first: u64, rows: u64) -> Vec<u64> {
    let mut counts = vec![0u64; COLS];
    let mut v = vec![0.0f32; COLS];
    for r in first..first + rows {
        v.fill(1.0);
        d.apply(key, r, &mut v).unwrap();
        for (c, &x) in counts.iter_mut().zip(&v) {
            *c += u64::from(x != 0.0);
        }
    }
    counts
}

/// `z` of a binomial count `kept` out of `n` against keep probability `q`.
fn z_binomial(kept: u64, n: u64, q: f64) -> f64 {
    let n = n as f64;
    (kept as f64 - n * q) / (n * q * (1.0 - q)).sqrt()
}

/// Pearson's chi-square of a 2 x B contingency table (kept / dropped by bin), `B - 1` degrees of
/// freedom under the hypothesis that the keep rate does not depend on the bin. With the pooled
/// rate `q^ = K / N`: `sum_b (k_b - n_b q^)^2 / (n_b q^ (1 - q^))`. (Comparing the kept counts
/// alone against a uniform spread, `sum (k_b - K/B)^2 / (K/B)`, would be smaller by the factor
/// `1 - q` and so too lenient.)
fn chi2_bins(kept: &[u64], trials: &[u64]) -> f64 {
    let k: u64 = kept.iter().sum();
    let n: u64 = trials.iter().sum();
    let q = k as f64 / n as f64;
    kept.iter()
        .zip(trials)
        .map(|(&k, &n)| {
            let e = n as f64 * q;
            (k as f64 - e).powi(2) / (e * (1.0 - q))
        })
        .sum()
}

/// Rejection threshold for a chi-square statistic with `dof` degrees of freedom: the
/// Wilson-Hilferty approximation `(X / dof)^(1/3) ~ N(1 - a, a)`, `a = 2 / (9 dof)`, at 5 sigma:
/// `dof (1 - a + 5 sqrt(a))^3`. Checked against the exact chi-square tail (mpmath): the upper tail
/// beyond it is 1.9e-7 for 15 dof, 2.5e-7 for 63, 2.8e-7 for 255 (thresholds 60.7, 136.3, 384.5).
/// The naive `mean + 5 sd` would be too tight for small dof (tail 2e-4 at 15 dof) because the
/// chi-square is skewed to the right.
fn chi2_limit(dof: usize) -> f64 {
    let dof = dof as f64;
    let a = 2.0 / (9.0 * dof);
    dof * (1.0 - a + 5.0 * a.sqrt()).powi(3)
}

/// Pearson's chi-square of the 2 x 2 table of paired decisions `(a, b)`: `N (n11 n00 - n10 n01)^2
/// / (r1 r0 c1 c0)`, i.e. `N phi^2`. Under independence it is chi-square with 1 degree of freedom,
/// the square of a standard normal, so `chi2 < 25` is `|z| < 5` (tail 5.7e-7). Overlapping pairs
/// (lag-L pairs along one row share elements) keep that limit: for i.i.d. decisions the lag-L
/// sample correlation is asymptotically normal with variance `1/N`.
fn chi2_pairs(pairs: impl Iterator<Item = (bool, bool)>) -> f64 {
    let mut n = [[0u64; 2]; 2];
    for (a, b) in pairs {
        n[usize::from(a)][usize::from(b)] += 1;
    }
    let f = |i: usize, j: usize| n[i][j] as f64;
    let total = f(0, 0) + f(0, 1) + f(1, 0) + f(1, 1);
    let (r0, r1) = (f(0, 0) + f(0, 1), f(1, 0) + f(1, 1));
    let (c0, c1) = (f(0, 0) + f(1, 0), f(0, 1) + f(1, 1));
    total * (f(1, 1) * f(0, 0) - f(1, 0) * f(0, 1)).powi(2) / (r0 * r1 * c0 * c1)
}

/// The 1-dof acceptance limit: `|z| < 5`.
const CHI2_1_LIMIT: f64 = 25.0;

#[test]
fn keep_rate_matches_exact_probability() {
    let key = DropoutKey::new(0x5EED_0000_0000_0001, 0);
    // 1024 rows of 4096 columns: N = 2^22 decisions per p. For p = 0.999 that still gives
    // N q ~ 4194 kept elements, enough for the normal approximation at 5 sigma.
    let rows = 1024;
    let n = rows * COLS as u64;
    for p in [0.1, 1.0 / 3.0, 0.5, 0.9, 0.999] {
        let d = Dropout::new(p).unwrap();
        let q = d.keep_probability();
        let kept: u64 = column_counts(&d, key, 0, rows).iter().sum();
        let z = z_binomial(kept, n, q);
        assert!(
            z.abs() < 5.0,
            "p = {p}: kept {kept} of {n}, expected {:.1}, z = {z:.2}",
            n as f64 * q
        );
    }
}

#[test]
fn keep_rate_of_keep_function() {
    // The definition itself on a smaller sample: 64 rows x 4096 columns = 2^18 decisions, the
    // columns scattered over the whole 32-bit range (j -> j * odd is a bijection of u32) so that
    // far groups and large tie-break counters are exercised. p = 0.3: D = 0x4CCCCCCD, so the
    // tie-break decides 1/256 of these.
    let d = Dropout::new(0.3).unwrap();
    let q = d.keep_probability();
    let key = DropoutKey::new(0xFEED_FACE_CAFE_BEEF, 1 << 40);
    let mut kept = 0u64;
    let mut n = 0u64;
    for r in 0..64u64 {
        for j in 0..COLS as u32 {
            kept += u64::from(keep(&d, key, r, j.wrapping_mul(0x9E37_79B1)));
            n += 1;
        }
    }
    let z = z_binomial(kept, n, q);
    assert!(z.abs() < 5.0, "kept {kept} of {n}: z = {z:.2}");
}

#[test]
fn tie_break_makes_the_rate_exact_beyond_8_bits() {
    // p = 128.5 / 256 sits exactly halfway between two multiples of 1/256, so D = 2^31 + 2^23
    // has nonzero low 24 bits and its top byte 128 is tied for 1/256 of the elements: those are
    // decided by the tie-break word T (kept iff T >= 2^23). Exact q = 1 - p = 0.498046875.
    //
    // Any 8-bit quantisation of the threshold (p rounded to 128/256 or 129/256, or ignoring T and
    // treating ties as all kept or all dropped) gives q' = 128/256 or 127/256, both at distance
    // delta = 2^-9 from q: the largest distance any p can have from the 1/256 grid, so this p
    // needs the fewest samples (p = 0.5 + 2^-10, at distance 2^-10, would need 4 times as many).
    //
    // With sigma = sqrt(q (1 - q) / N) ~ 0.5 / sqrt(N), separating q' by 10 sigma needs
    // sqrt(N) > 10 * 0.5 * 2^9 = 2560, N > 6.6e6. N = 2^23 = 8.4e6 (2048 rows of 4096) puts q'
    // at delta / sigma = 2^-9 * 2^12.5 = 11.3 sigma: with |z| < 5 against q, |z'| > 6.3 against
    // either q', so a quantised implementation cannot pass.
    let d = Dropout::new(128.5 / 256.0).unwrap();
    assert_eq!(d.threshold(), (1 << 31) + (1 << 23));
    let q = d.keep_probability();
    let key = DropoutKey::new(0x71E_B4EA_C000_0001, 77);
    let rows = 2048;
    let n = rows * COLS as u64;
    let kept: u64 = column_counts(&d, key, 0, rows).iter().sum();
    let z = z_binomial(kept, n, q);
    assert!(
        z.abs() < 5.0,
        "kept {kept} of {n}: z = {z:.2} against exact q"
    );
    for q8 in [127.0 / 256.0, 128.0 / 256.0] {
        let z8 = z_binomial(kept, n, q8);
        assert!(
            z8.abs() > 5.0,
            "the 8-bit rate {q8} is not rejected: z = {z8:.2}"
        );
    }
}

#[test]
fn dropout_preserves_expectation() {
    // A fixed softmax row P of 64 columns; training-mode outputs over R rows. Per column,
    // Y_j / P_j = (1/q) Bernoulli(q) (up to f32 roundings of relative size 1e-7, negligible
    // against sigma below), so its mean over R rows has mean 1 and standard deviation
    // sqrt((1 - q) / (q R)): 0.0078 for q = 0.5 and 0.0026 for q = 0.9 at R = 16384.
    //
    // 2 x 64 columns are tested at |z| < 5 each: by Bonferroni the chance that a correct kernel
    // fails any of them for a random key is below 128 * 5.7e-7 = 7.3e-5. The count behind each
    // column has R q (1 - q) >= 1474, so the normal tail is accurate.
    let n = 64;
    let x = row(&mut rng(11), n, -2.0, 2.0);
    let mut p_eval = vec![0.0f32; n];
    SoftmaxDropout::eval(1.0)
        .unwrap()
        .forward(0, &x, &mut p_eval)
        .unwrap();
    let rows = 16384u64;
    for p in [0.5, 0.1] {
        let d = Dropout::new(p).unwrap();
        let q = d.keep_probability();
        let key = DropoutKey::new(0xE7EC_7A71_0000_0000 | p.to_bits() >> 32, 1000);
        let op = SoftmaxDropout::train(1.0, d, key).unwrap();
        let mut sums = vec![0.0f64; n];
        let mut y = vec![0.0f32; n];
        for r in 0..rows {
            op.forward(r, &x, &mut y).unwrap();
            for (s, &v) in sums.iter_mut().zip(&y) {
                *s += f64::from(v);
            }
        }
        let sigma = ((1.0 - q) / (q * rows as f64)).sqrt();
        for j in 0..n {
            let ratio = sums[j] / rows as f64 / f64::from(p_eval[j]);
            let z = (ratio - 1.0) / sigma;
            assert!(
                z.abs() < 5.0,
                "p = {p}, column {j}: mean Y / P = {ratio:.5}, z = {z:.2}"
            );
        }
    }
}

#[test]
fn no_position_bias() {
    // Keep counts per column over 1024 rows of 4096 columns (2^22 decisions), folded by column
    // mod 16 (lane), mod 64 (lane and word) and mod 256 (lane, word and byte: the position in the
    // group of 256 that decides which Philox block, word and byte serve a column), and unfolded
    // (all 4096 positions). Each is a 2 x B contingency test of B - 1 dof against the limit of
    // `chi2_limit` (tail ~2.5e-7 each; 8 tests in all).
    let key = DropoutKey::new(0xB1A5_0000_0000_0005, 3);
    for p in [0.5, 0.1] {
        let d = Dropout::new(p).unwrap();
        let counts = column_counts(&d, key, 0, 1024);
        for bins in [16, 64, 256, COLS] {
            let mut kept = vec![0u64; bins];
            for (j, &c) in counts.iter().enumerate() {
                kept[j % bins] += c;
            }
            let trials = vec![1024 * (COLS / bins) as u64; bins];
            let chi2 = chi2_bins(&kept, &trials);
            let limit = chi2_limit(bins - 1);
            assert!(
                chi2 < limit,
                "p = {p}, column mod {bins}: chi2 = {chi2:.1} >= {limit:.1} ({} dof)",
                bins - 1
            );
        }
    }
}

#[test]
fn no_correlation_between_columns_of_a_row() {
    // Pairs (keep(r, j), keep(r, j + lag)) over 256 rows of 4096 columns (~2^20 pairs per lag).
    // Lag 1: neighbouring Philox blocks (consecutive counters). Lag 16: the same block, the next
    // word. Lag 64: the same block and word, the next byte. Lag 256: the next group of blocks.
    // p = 0.1 also exercises the tie-break stream, whose counter is the column itself.
    let key = DropoutKey::new(0xC0_7700_0000_0009, 0);
    for (p, lags) in [(0.5, &[1usize, 16, 64, 256][..]), (0.1, &[1, 16, 64][..])] {
        let d = Dropout::new(p).unwrap();
        let rows: Vec<Vec<bool>> = (0..256).map(|r| mask_row(&d, key, r, COLS)).collect();
        for &lag in lags {
            let chi2 = chi2_pairs(
                rows.iter()
                    .flat_map(|m| m.iter().zip(&m[lag..]).map(|(&a, &b)| (a, b))),
            );
            assert!(chi2 < CHI2_1_LIMIT, "p = {p}, lag {lag}: chi2 = {chi2:.2}");
        }
    }
}

#[test]
fn no_correlation_between_adjacent_rows() {
    // Pairs (keep(r, j), keep(r + 1, j)) over 256 consecutive row pairs x 4096 columns (2^20
    // pairs): the rows differ only in counter word 2. The rows start at 2^32 - 128, so the pairs
    // also cross the carry into counter word 3.
    let key = DropoutKey::new(0xAD1A_CE47_0000_0002, 0);
    for p in [0.5, 0.1] {
        let d = Dropout::new(p).unwrap();
        let first = (1u64 << 32) - 128;
        let rows: Vec<Vec<bool>> = (first..first + 257)
            .map(|r| mask_row(&d, key, r, COLS))
            .collect();
        let chi2 = chi2_pairs(
            rows.windows(2)
                .flat_map(|w| w[0].iter().zip(&w[1]).map(|(&a, &b)| (a, b))),
        );
        assert!(chi2 < CHI2_1_LIMIT, "p = {p}: chi2 = {chi2:.2}");
    }
}

#[test]
fn offset_shifts_the_row_id_exactly() {
    // By definition the global row id is offset + r (wrapping), so
    // keep(key(s, o), r, j) == keep(key(s, o + 1), r - 1, j): consecutive offsets share all but
    // one row. A caller who advances the offset by 1 per step, with several rows per step, reuses
    // masks; it must advance by at least the number of rows. Asserted exactly, including the
    // wrap of o + r past 2^64.
    let d = Dropout::new(0.3).unwrap();
    let s = 0x0FF5_E700_0000_0003;
    for o in [0u64, 41, (1 << 32) - 1, u64::MAX - 1, u64::MAX] {
        for r in [1u64, 2, 1000, 1 << 33] {
            let a = DropoutKey::new(s, o);
            let b = DropoutKey::new(s, o.wrapping_add(1));
            assert_eq!(
                mask_row(&d, a, r, 600),
                mask_row(&d, b, r - 1, 600),
                "o = {o}, r = {r}"
            );
            for j in [0u32, 255, 65_536, u32::MAX] {
                assert_eq!(
                    keep(&d, a, r, j),
                    keep(&d, b, r - 1, j),
                    "o = {o} r = {r} j = {j}"
                );
            }
        }
    }
    // Row 1 at offset u64::MAX is global row 0.
    assert_eq!(
        mask_row(&d, DropoutKey::new(s, u64::MAX), 1, 600),
        mask_row(&d, DropoutKey::new(s, 0), 0, 600)
    );
}

#[test]
fn no_correlation_between_adjacent_offsets() {
    // (s, o, r) against (s, o + 1, r) for the same r: by the identity above these are the global
    // rows o + r and o + r + 1, different rows (the same relation as adjacent rows, reached
    // through the key). 256 rows x 4096 columns = 2^20 pairs per p; offsets chosen so that
    // o + r crosses 2^32 (counter words 2 and 3 both change) and 2^64 (wraps to 0).
    for (o, p) in [((1u64 << 32) - 100, 0.5), (u64::MAX - 100, 0.1)] {
        let d = Dropout::new(p).unwrap();
        let (a, b) = (
            DropoutKey::new(99, o),
            DropoutKey::new(99, o.wrapping_add(1)),
        );
        let chi2 = chi2_pairs((0..256u64).flat_map(|r| {
            let (ma, mb) = (mask_row(&d, a, r, COLS), mask_row(&d, b, r, COLS));
            ma.into_iter().zip(mb)
        }));
        assert!(chi2 < CHI2_1_LIMIT, "offset {o}, p = {p}: chi2 = {chi2:.2}");
    }
}

#[test]
fn no_correlation_between_adjacent_seeds() {
    // (s, o, r, j) against (s + 1, o, r, j): keys differing in the low key word only, and across
    // 2^32 - 1 -> 2^32, where both key words change. 128 rows x 4096 columns = 2^19 pairs each.
    for (s, p) in [
        (0u64, 0.5),
        ((1 << 32) - 1, 0.5),
        (0x9E37_79B9_7F4A_7C15, 0.5),
        (0x9E37_79B9_7F4A_7C15, 0.1),
    ] {
        let d = Dropout::new(p).unwrap();
        let (a, b) = (DropoutKey::new(s, 5), DropoutKey::new(s.wrapping_add(1), 5));
        let chi2 = chi2_pairs((0..128u64).flat_map(|r| {
            let (ma, mb) = (mask_row(&d, a, r, COLS), mask_row(&d, b, r, COLS));
            ma.into_iter().zip(mb)
        }));
        assert!(
            chi2 < CHI2_1_LIMIT,
            "seed {s:#x}, p = {p}: chi2 = {chi2:.2}"
        );
    }
}

#[test]
fn statistics_reject_emulated_defects() {
    // The helpers have power against the defects the tests above target, emulated on real masks
    // (2^20 decisions at p = 0.5).
    let d = Dropout::new(0.5).unwrap();
    let key = DropoutKey::new(0xDEFE_C700_0000_0001, 0);
    let rows: Vec<Vec<bool>> = (0..256).map(|r| mask_row(&d, key, r, COLS)).collect();

    // A byte served to two columns (column j + 64 reading column j's byte): chi2 = N.
    let reused = chi2_pairs(
        rows.iter()
            .flat_map(|m| m.iter().zip(&m[..COLS - 64]).map(|(&a, &b)| (a, b))),
    );
    assert!(reused > 1e5, "chi2 = {reused}");

    // One position of 256 whose keep rate is 2/3 instead of 1/2 (a third of its drops turned
    // into keeps): over its 4096 trials it adds about (4096 / 6)^2 / (4096 / 4) = 455 to a
    // statistic whose null mean is 255, well past the limit of 384.5.
    let mut kept = vec![0u64; 256];
    for (i, m) in rows.iter().enumerate() {
        for (j, &k) in m.iter().enumerate() {
            let k = k || (j % 256 == 17 && i % 3 == 0);
            kept[j % 256] += u64::from(k);
        }
    }
    let chi2 = chi2_bins(&kept, &vec![256 * 16; 256]);
    assert!(chi2 > chi2_limit(255), "chi2 = {chi2}");
}
