//! The tie-breaks of the dropout mask, aimed at the SIMD kernels' tie queue.
//!
//! A column is *tied* when its 8-bit main byte `B` equals `D >> 24`; only then does its 24-bit
//! tie-break word `T` (a separate Philox counter) decide it. The wide kernels find ties while
//! generating the keep bits of a block of 4096 columns, queue them and settle them eight at a
//! time; in the forward pass the block's last ties are deferred and patched into the output after
//! the apply loop, and a 64-column word with several ties takes an out-of-line path. Ties are rare
//! (1 in 256 columns), so ordinary tests meet few of them, and hardly ever a block with more than
//! eight or sixteen, or a word with two.
//!
//! Here every case is a long row (4096 to 16384 columns: 16 ties expected per block) under a
//! threshold with a nonzero low part, checked column by column against [`keep`] on every kernel
//! variant: `Dropout::apply_with`, the fused forward (whole rows, a matrix of banded rows whose
//! visible band starts past column 0 and ends inside a block, and rows split into chunks), the
//! backward's regenerated mask and `Dropout::mask_bits`. Each test also counts the ties, the
//! words with two or more and the blocks with more than 8 and more than 16 ties that its cases
//! contain, and asserts a lower bound on each derived from their distribution (see
//! [`Coverage::check`]), so that the test cannot silently stop exercising them.

mod common;

use common::{rng, row, uniform};
use dropmax::philox::philox4x32_10;
use dropmax::{
    Dropout, DropoutKey, Mask, MatrixProbabilities, Probabilities, RowKernel, RowStats,
    SoftmaxDropout, keep, mask_uniform,
};
use std::cmp::Ordering;
use std::ops::Range;

/// Dropout probabilities. The first four have `D >> 24` = 25, 85, 179 and 255 and a tie dropped
/// with probability `(D & 0xFF_FFFF) / 2^24` = 0.60, 0.33, 0.20 and 0.74; `1e-9` has `D = 4`, so
/// `D >> 24 = 0`: every byte is kept or tied, and a tie is dropped only when `T < 4`.
const PS: [f64; 5] = [0.1, 1.0 / 3.0, 0.7, 0.999, 1e-9];

/// Keys: the second one's offset wraps the global row id past `2^64` for the first row id.
const KEYS: [DropoutKey; 2] = [
    DropoutKey::new(0x9E37_79B9_7F4A_7C15, 0),
    DropoutKey::new(0xD1B5_4A32_D192_ED03, u64::MAX - 40),
];

/// Row lengths, cycled through the row ids: one block, one column past it, one short of two,
/// four, a partial word past one block, and three blocks and a partial one.
const LENGTHS: [usize; 6] = [4096, 4097, 8191, 16384, 4096 + 63, 12345];

/// Row ids per (key, p): 8 rows of each length.
const ROWS: usize = 48;

/// Columns per block of keep bits in the wide kernels (16 groups of 256).
const BLOCK: usize = 4096;

/// Row id `i` of a case set: spread out, most above `2^32` (both counter words vary).
fn row_id(i: usize) -> u64 {
    3 + i as u64 * 0x9E37_79B9
}

/// One row: a dropout, a key, a row id and a length.
#[derive(Clone, Copy, Debug)]
struct Case {
    d: Dropout,
    key: DropoutKey,
    row: u64,
    n: usize,
    /// Index of the case in its set, to seed its data.
    index: usize,
}

impl Case {
    fn describe(&self) -> String {
        format!(
            "p={} (D={:#x}) key=({:#x}, {:#x}) row={} n={}",
            self.d.p(),
            self.d.threshold(),
            self.key.seed,
            self.key.offset,
            self.row,
            self.n
        )
    }
}

/// Every key and probability with the first `rows` row ids; row `i` has length
/// `LENGTHS[i % 6]`, so any `rows >= 6` covers every length.
fn cases(rows: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for key in KEYS {
        for p in PS {
            let d = Dropout::new(p).unwrap();
            for i in 0..rows {
                out.push(Case {
                    d,
                    key,
                    row: row_id(i),
                    n: LENGTHS[i % LENGTHS.len()],
                    index: out.len(),
                });
            }
        }
    }
    out
}

/// The main bytes `B(r, j)` of columns `0..n`, straight from the formula in the crate docs: the
/// row's main stream, blocks `0, 1, 2, ...` one after the other, each block's words as
/// little-endian bytes.
fn main_bytes(key: DropoutKey, row: u64, n: usize) -> Vec<u8> {
    let k = [key.seed as u32, (key.seed >> 32) as u32];
    let r = key.offset.wrapping_add(row);
    let mut bytes: Vec<u8> = (0..n.div_ceil(16) as u32)
        .flat_map(|block| philox4x32_10([block, 0, r as u32, (r >> 32) as u32], k))
        .flat_map(u32::to_le_bytes)
        .collect();
    bytes.truncate(n);
    bytes
}

/// The expected decisions of a row's first `n` columns, and its tied columns.
struct Truth {
    keep: Vec<bool>,
    /// Tied columns, ascending.
    ties: Vec<usize>,
}

impl Truth {
    fn is_tie(&self, j: usize) -> bool {
        self.ties.binary_search(&j).is_ok()
    }

    /// `j` described for a failure message.
    fn col(&self, j: usize) -> String {
        let tie = if self.is_tie(j) {
            let in_block = self
                .ties
                .iter()
                .filter(|&&t| t / BLOCK == j / BLOCK && t <= j)
                .count();
            format!(
                "tie #{in_block} of its block ({} in block)",
                self.ties
                    .iter()
                    .filter(|&&t| t / BLOCK == j / BLOCK)
                    .count()
            )
        } else {
            "not a tie".to_string()
        };
        format!("j={j} ({tie}, keep={})", self.keep[j])
    }
}

/// `keep` for columns `0..n` of a case. Untied columns are decided by their main byte alone
/// (`B > D >> 24` kept, `B < D >> 24` dropped, whatever `T` is); every tied column asks
/// [`keep`] itself, and a sample of the others checks both `B` and the decision against
/// [`mask_uniform`] and [`keep`].
fn truth(c: &Case, n: usize) -> Truth {
    let th = c.d.threshold();
    assert!(th > 0 && th < 1 << 32, "{}: needs a tie path", c.describe());
    assert_ne!(
        th & 0xFF_FFFF,
        0,
        "{}: D & 0xFFFFFF must be nonzero",
        c.describe()
    );
    let d_hi = th >> 24;
    let bytes = main_bytes(c.key, c.row, n);
    let mut decisions = Vec::with_capacity(n);
    let mut ties = Vec::new();
    for (j, &b) in bytes.iter().enumerate() {
        let col = j as u32;
        let kept = match u64::from(b).cmp(&d_hi) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                ties.push(j);
                keep(&c.d, c.key, c.row, col)
            }
        };
        if u64::from(b) == d_hi || j % 61 == (c.index % 61) {
            let u = mask_uniform(c.key, c.row, col);
            assert_eq!(u >> 24, u32::from(b), "{} j={j}: main byte", c.describe());
            assert_eq!(
                keep(&c.d, c.key, c.row, col),
                kept,
                "{} j={j}: keep",
                c.describe()
            );
            assert_eq!(u64::from(u) >= th, kept, "{} j={j}: U >= D", c.describe());
        }
        decisions.push(kept);
    }
    Truth {
        keep: decisions,
        ties,
    }
}

/// Panics if `bad` (failure descriptions) is not empty.
fn expect_none(bad: &[String], what: &str, c: &Case) {
    assert!(
        bad.is_empty(),
        "{what}, {}: {} wrong columns, first: {:#?}",
        c.describe(),
        bad.len(),
        &bad[..bad.len().min(6)]
    );
}

/// Binomial(`n`, `p`) probabilities of `0..=n`.
fn binomial(n: usize, p: f64) -> Vec<f64> {
    let mut pmf = vec![(1.0 - p).powi(n as i32)];
    for k in 0..n {
        let next = pmf[k] * (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
        pmf.push(next);
    }
    pmf
}

/// How much tie handling a set of cases exercises.
#[derive(Debug, Default)]
struct Coverage {
    /// Columns checked, summed over the cases.
    columns: usize,
    ties: usize,
    /// Whole 64-column words, and those with at least 2 ties.
    words: usize,
    words_2: usize,
    /// Whole 4096-column blocks, those with 9 to 15 ties, and those with more than 16.
    blocks: usize,
    blocks_9_15: usize,
    blocks_17: usize,
    /// The most ties seen in one word and in one block.
    max_word: usize,
    max_block: usize,
}

impl Coverage {
    /// Counts the ties of columns `0..n` of a row.
    fn add(&mut self, t: &Truth, n: usize) {
        self.add_range(t, 0..n);
    }

    /// Counts the ties of columns `range` of a row, and its words and blocks that lie wholly
    /// inside it.
    fn add_range(&mut self, t: &Truth, range: Range<usize>) {
        self.columns += range.len();
        self.ties += t.ties.iter().filter(|&&j| range.contains(&j)).count();
        let count = |size: usize, i: usize| {
            t.ties
                .iter()
                .filter(|&&j| j >= size * i && j < size * (i + 1))
                .count()
        };
        for w in range.start.div_ceil(64)..range.end / 64 {
            let k = count(64, w);
            self.words += 1;
            self.words_2 += usize::from(k >= 2);
            self.max_word = self.max_word.max(k);
        }
        for b in range.start.div_ceil(BLOCK)..range.end / BLOCK {
            let k = count(BLOCK, b);
            self.blocks += 1;
            self.blocks_9_15 += usize::from((9..=15).contains(&k));
            self.blocks_17 += usize::from(k >= 17);
            self.max_block = self.max_block.max(k);
        }
    }

    /// Asserts that the cases hold at least as many ties, multi-tie words and crowded blocks as
    /// their distribution all but guarantees.
    ///
    /// Each main byte is uniform on `0..256` and the bytes are independent (Philox4x32-10 is a
    /// pseudorandom function of distinct counters), so a column is tied with probability
    /// `1/256`. For one probability the number of ties among `C` columns is Binomial(C, 1/256),
    /// mean `C/256`; the same row under several probabilities ties on disjoint byte values, and
    /// multinomial counts are negatively associated, so over the whole set the variance is still
    /// at most that of independent cases. Likewise a whole word (64 columns) holds 2 or more ties
    /// with probability `pi_2 = 1 - P(0) - P(1)` of Binomial(64, 1/256), about 0.0262, and a
    /// whole block (4096 columns, 16 ties expected) holds 9 to 15 with probability about 0.45
    /// (all of them still queued when the block ends: the queue is settled early only once 16
    /// wait) and 17 or more with about 0.43 (at least one settle inside the block, and more than
    /// 8 left for a chunk of 8). Each count `X` of `M` trials with probability `pi` must reach
    /// `M pi - 5 sqrt(M pi (1 - pi))`; with these means (tens to thousands) a Binomial
    /// falls below its mean minus 5 sigma with probability of the order of the normal tail,
    /// 3e-7, and the fixed seeds make the result deterministic anyway: the bounds guard the
    /// test's coverage, not the generator. Each bound must be at
    /// least 1, so every case set holds a tie, a word with two and blocks of both kinds.
    fn check(&self, what: &str) {
        let word = binomial(64, 1.0 / 256.0);
        let block = binomial(BLOCK, 1.0 / 256.0);
        let pi_2 = 1.0 - word[0] - word[1];
        let pi_9_15: f64 = block[9..=15].iter().sum();
        let pi_17 = 1.0 - block[..=16].iter().sum::<f64>();
        let min = |trials: usize, pi: f64| {
            let mean = trials as f64 * pi;
            (mean - 5.0 * (mean * (1.0 - pi)).sqrt()).floor()
        };
        eprintln!("{what}: {self:?}");
        for (name, found, trials, pi) in [
            ("ties", self.ties, self.columns, 1.0 / 256.0),
            ("words with 2+ ties", self.words_2, self.words, pi_2),
            (
                "blocks with 9..=15 ties",
                self.blocks_9_15,
                self.blocks,
                pi_9_15,
            ),
            ("blocks with 17+ ties", self.blocks_17, self.blocks, pi_17),
        ] {
            let bound = min(trials, pi);
            assert!(
                bound >= 1.0,
                "{what}: too few cases for {name}: bound {bound} ({trials} trials, pi {pi})"
            );
            assert!(
                found as f64 >= bound,
                "{what}: only {found} {name} in {trials} (bound {bound}, mean {})",
                trials as f64 * pi
            );
        }
    }
}

/// Values to drop out: signed, of every size, with `-0.0`, subnormals and infinities.
fn values(seed: usize, n: usize) -> Vec<f32> {
    let mut r = rng(0x7135 + seed as u64);
    (0..n)
        .map(|j| match j % 53 {
            0 => -0.0,
            1 => -f32::INFINITY,
            2 => f32::INFINITY,
            3 => -f32::from_bits(0x0000_1234),
            4 => f32::MIN_POSITIVE / 3.0,
            5 => -3.0e37,
            _ => {
                let v = uniform(&mut r, -1.0, 1.0);
                v * 2f32.powi((j % 41) as i32 - 20)
            }
        })
        .collect()
}

/// `Dropout::apply_with::<K>`: dropped columns exactly `+0.0`, kept ones exactly `x * rescale`.
fn check_apply<K: RowKernel>(c: &Case, t: &Truth, x: &[f32]) {
    let mut y = x.to_vec();
    c.d.apply_with::<K>(c.key, c.row, &mut y).unwrap();
    let r = c.d.rescale();
    let bad: Vec<String> = (0..c.n)
        .filter_map(|j| {
            let want = if t.keep[j] { x[j] * r } else { 0.0 };
            (y[j].to_bits() != want.to_bits())
                .then(|| format!("{}: x={:e} got {:e}, want {want:e}", t.col(j), x[j], y[j]))
        })
        .collect();
    expect_none(&bad, &format!("{} apply", K::NAME), c);
}

/// Columns `range` of a forward output against the truth: kept ones positive and finite,
/// dropped ones zero; outside `range`, zero.
fn check_forward_row(what: &str, c: &Case, t: &Truth, y: &[f32], range: Range<usize>) {
    let bad: Vec<String> = (0..y.len())
        .filter_map(|j| {
            let v = y[j];
            let ok = if !range.contains(&j) {
                v == 0.0
            } else if t.keep[j] {
                v > 0.0 && v.is_finite()
            } else {
                v == 0.0
            };
            let band = if range.contains(&j) { "" } else { " (masked)" };
            (!ok).then(|| format!("{}{band}: got {v:e}", t.col(j)))
        })
        .collect();
    expect_none(&bad, what, c);
}

/// The backward's mask: with `P_j = 2^-30` and `dy_j = 1`, `dx_j = P_j (G_j - sum_k P_k G_k)`
/// with `G_j = rescale` (kept) or 0 (dropped). The sum is at most `2^-30 * 1000 * 16384 < 1`
/// and `rescale >= 1`, so `dx_j > 0` exactly on the kept columns of `range`; 0 outside it.
fn check_backward_row(what: &str, c: &Case, t: &Truth, dx: &[f32], range: Range<usize>) {
    let bad: Vec<String> = (0..dx.len())
        .filter_map(|j| {
            let v = dx[j];
            let ok = if !range.contains(&j) {
                v == 0.0
            } else {
                (v > 0.0) == t.keep[j] && v.is_finite()
            };
            (!ok).then(|| format!("{}: got dx={v:e}", t.col(j)))
        })
        .collect();
    expect_none(&bad, what, c);
}

/// Tiny saved probabilities for [`check_backward_row`].
const P_TINY: f32 = 1.0 / (1u32 << 30) as f32;

/// One whole row through `forward`, the backward, and a split into chunks that start at
/// multiples of 64 inside groups and blocks.
fn check_row<K: RowKernel>(c: &Case, t: &Truth, x: &[f32]) {
    let op = SoftmaxDropout::train(1.0, c.d, c.key)
        .unwrap()
        .with_kernel::<K>();
    let n = c.n;
    let mut y = vec![f32::NAN; n];
    op.forward(c.row, x, &mut y).unwrap();
    check_forward_row(&format!("{} forward", K::NAME), c, t, &y, 0..n);

    let p = vec![P_TINY; n];
    let dy = vec![1.0f32; n];
    let mut dx = vec![f32::NAN; n];
    op.backward(c.row, Probabilities::Saved(&p), &dy, &mut dx)
        .unwrap();
    check_backward_row(&format!("{} backward", K::NAME), c, t, &dx, 0..n);

    // Chunks from columns 1984 (= 31 * 64, mid-group), 4160 (a word into the second block),
    // 9024 and 12352, as far as the row goes.
    let cuts: Vec<usize> = [0, 1984, 4160, 9024, 12352]
        .into_iter()
        .filter(|&k| k < n)
        .chain([n])
        .collect();
    let mut stats = RowStats::EMPTY;
    let mut scratch = vec![0.0f32; n];
    for w in cuts.windows(2) {
        let part = op
            .chunk_stats(w[0], &x[w[0]..w[1]], &mut scratch[w[0]..w[1]])
            .unwrap();
        stats = stats.merge(part);
    }
    let mut y = vec![f32::NAN; n];
    for w in cuts.windows(2).rev() {
        op.forward_chunk(c.row, w[0], stats, &x[w[0]..w[1]], &mut y[w[0]..w[1]])
            .unwrap();
    }
    check_forward_row(&format!("{} split {cuts:?}", K::NAME), c, t, &y, 0..n);
}

/// Banded masks for the matrix test, as `(name, mask, lo(i), hi(i))` for row `i` (the band
/// `lo..hi`): three start past column 0, and every band ends inside a block.
fn banded(rows: usize) -> Vec<(&'static str, Mask<'static>, Vec<Range<usize>>)> {
    let band = |lo: fn(usize) -> usize, hi: fn(usize) -> usize| {
        (0..rows).map(|i| lo(i)..hi(i)).collect::<Vec<_>>()
    };
    vec![
        // Query position 9000 + i, window 7000: columns 2001 + i ..= 9000 + i.
        (
            "sliding_window(9000, 7000)",
            Mask::sliding_window(9000, 7000),
            band(|i| 2001 + i, |i| 9001 + i),
        ),
        // 6000 + i - 3500 ..= 6000 + i + 4200.
        (
            "band(6000, 3500, 4200)",
            Mask::band(6000, 3500, 4200),
            band(|i| 2500 + i, |i| 10201 + i),
        ),
        // 300 + i - 237 ..= 300 + i + 7900: from inside the first word.
        (
            "band(300, 237, 7900)",
            Mask::band(300, 237, 7900),
            band(|i| 63 + i, |i| 8201 + i),
        ),
        (
            "causal(4200)",
            Mask::causal(4200),
            band(|_| 0, |i| 4201 + i),
        ),
    ]
}

#[test]
fn apply_matches_keep_on_every_variant() {
    let all = cases(ROWS);
    let mut cov = Coverage::default();
    for c in &all {
        let t = truth(c, c.n);
        cov.add(&t, c.n);
        let x = values(c.index, c.n);
        for_each_kernel!(K => {
            // The scalar kernel is the definition itself and has no tie queue: one row of each
            // length per (key, p) is enough there.
            if K::NAME != "scalar" || c.index % ROWS < LENGTHS.len() {
                check_apply::<K>(c, &t, &x);
            }
        });
    }
    cov.check("apply");
}

#[test]
fn forward_and_backward_rows_match_keep_on_every_variant() {
    // One row of each length per (key, p).
    let some = cases(LENGTHS.len());
    let mut cov = Coverage::default();
    for c in &some {
        let t = truth(c, c.n);
        cov.add(&t, c.n);
        // Logits in [-4, 4): every probability is at least e^-8 / n, so a kept output is never 0.
        let x = row(&mut rng(0xF0 + c.index as u64), c.n, -4.0, 4.0);
        for_each_kernel!(K => {
            // The scalar kernel on half of them, alternating lengths between (key, p) pairs.
            if K::NAME != "scalar" || (c.index + c.index / LENGTHS.len()).is_multiple_of(2) {
                check_row::<K>(c, &t, &x);
            }
        });
    }
    cov.check("forward rows");
}

/// The cases and expected decisions of the rows of a matrix: `c0`'s key and probability, row
/// ids `first_row ..`, `cols` columns each.
fn matrix_cases(c0: &Case, first_row: u64, rows: usize, cols: usize) -> (Vec<Case>, Vec<Truth>) {
    let cases: Vec<Case> = (0..rows)
        .map(|i| Case {
            row: first_row + i as u64,
            n: cols,
            ..*c0
        })
        .collect();
    let truths = cases.iter().map(|c| truth(c, cols)).collect();
    (cases, truths)
}

#[test]
fn banded_matrices_match_keep_on_every_variant() {
    let (rows, cols) = (4, 12345);
    // Row ids 2^32 - 2 .. 2^32 + 2: the global row id's high word changes inside the matrix.
    let first_row = (1u64 << 32) - 2;
    let mut cov = Coverage::default();
    for (ci, c0) in cases(1).iter().enumerate() {
        let masks = banded(rows);
        let (name, mask, bands) = &masks[ci % masks.len()];
        let x = row(&mut rng(0xBA + ci as u64), rows * cols, -4.0, 4.0);
        let (rows_cases, truths) = matrix_cases(c0, first_row, rows, cols);
        for (i, t) in truths.iter().enumerate() {
            cov.add_range(t, bands[i].clone());
        }
        for_each_kernel!(K => {
            let op = SoftmaxDropout::train(1.0, c0.d, c0.key)
                .unwrap()
                .with_mask(*mask)
                .with_kernel::<K>();
            let mut y = vec![f32::NAN; rows * cols];
            op.forward_rows(first_row, cols, &x, &mut y, None).unwrap();
            let p = vec![P_TINY; rows * cols];
            let dy = vec![1.0f32; rows * cols];
            let mut dx = vec![f32::NAN; rows * cols];
            op.backward_rows(first_row, cols, MatrixProbabilities::Saved(&p), &dy, &mut dx)
                .unwrap();
            for i in 0..rows {
                let (c, t, band) = (&rows_cases[i], &truths[i], bands[i].clone());
                let part = i * cols..(i + 1) * cols;
                let what = format!("{} forward_rows {name} row {i} band {band:?}", K::NAME);
                check_forward_row(&what, c, t, &y[part.clone()], band.clone());
                let what = format!("{} backward_rows {name} row {i} band {band:?}", K::NAME);
                check_backward_row(&what, c, t, &dx[part], band);
            }
        });
    }
    cov.check("banded matrices");
}

#[test]
fn whole_row_matrices_match_keep_on_every_variant() {
    // Whole rows of plain scores: `forward_rows` generates each row's first 4096 columns of keep
    // bits before its exponentials (`Passes::prepare`), the rest block by block in pass 3.
    let (rows, cols) = (4, 12345);
    let first_row = (1u64 << 32) - 2;
    let mut cov = Coverage::default();
    for (ci, c0) in cases(1).iter().enumerate() {
        let x = row(&mut rng(0xD0 + ci as u64), rows * cols, -4.0, 4.0);
        let (rows_cases, truths) = matrix_cases(c0, first_row, rows, cols);
        for t in &truths {
            cov.add(t, cols);
        }
        for_each_kernel!(K => {
            let op = SoftmaxDropout::train(0.5, c0.d, c0.key).unwrap().with_kernel::<K>();
            let mut y = vec![f32::NAN; rows * cols];
            op.forward_rows(first_row, cols, &x, &mut y, None).unwrap();
            for i in 0..rows {
                let what = format!("{} forward_rows whole row {i}", K::NAME);
                let part = i * cols..(i + 1) * cols;
                check_forward_row(&what, &rows_cases[i], &truths[i], &y[part], 0..cols);
            }
        });
    }
    cov.check("whole-row matrices");
}

#[test]
fn short_row_matrices_match_keep_on_every_variant() {
    // Rows of at most 128 columns in a matrix: with AVX-512, their main streams are generated
    // eight rows (up to 64 columns) or four rows (65-128) at a time ahead of need. Forty rows
    // cross several such batches and, from row id 2^32 - 20, the global row id's high word; the
    // second key's offset wraps it past 2^64.
    let first_row = (1u64 << 32) - 20;
    // (rows, columns, causal query position of the first row)
    let shapes: [(usize, usize, Option<usize>); 6] = [
        (40, 64, None),
        (40, 50, None),
        (40, 128, None),
        (40, 100, None),
        // Row i sees columns 0..=i (rows 63 and up: every column).
        (80, 64, Some(0)),
        // Row i sees columns 0..=i+3: rows of up to 64 visible columns (a batch of eight rows
        // ends past the last of them), then of 65-128.
        (140, 128, Some(3)),
    ];
    let (mut ties, mut columns) = (0, 0);
    for (ci, c0) in cases(1).iter().enumerate() {
        for (si, &(rows, cols, causal)) in shapes.iter().enumerate() {
            let x = row(
                &mut rng(0xE0 + (3 * ci + si) as u64),
                rows * cols,
                -4.0,
                4.0,
            );
            let mask = causal.map_or(Mask::none(), Mask::causal);
            let band = |i: usize| 0..causal.map_or(cols, |q| (q + i + 1).min(cols));
            let (rows_cases, truths) = matrix_cases(c0, first_row, rows, cols);
            for (i, t) in truths.iter().enumerate() {
                ties += t.ties.iter().filter(|&&j| band(i).contains(&j)).count();
                columns += band(i).len();
            }
            for_each_kernel!(K => {
                let op = SoftmaxDropout::train(0.5, c0.d, c0.key)
                    .unwrap()
                    .with_mask(mask)
                    .with_kernel::<K>();
                let mut y = vec![f32::NAN; rows * cols];
                op.forward_rows(first_row, cols, &x, &mut y, None).unwrap();
                for i in 0..rows {
                    let what = format!("{} forward_rows {rows}x{cols} {mask:?} row {i}", K::NAME);
                    let part = i * cols..(i + 1) * cols;
                    check_forward_row(&what, &rows_cases[i], &truths[i], &y[part], band(i));
                }
            });
        }
    }
    // Ties are Binomial(columns, 1/256) (see `Coverage::check`): at least the mean less 5 sigma.
    let mean = columns as f64 / 256.0;
    let bound = (mean - 5.0 * (mean * (1.0 - 1.0 / 256.0)).sqrt()).floor();
    assert!(
        bound >= 1.0 && ties as f64 >= bound,
        "{ties} ties in {columns} columns"
    );
}

/// Rows whose first 4096 columns hold more ties than the tie queue (32 entries): among row ids
/// `row_id(i)`, `i < 100000` (about 2 million blocks under the four probabilities with
/// `D >> 24 > 0`), blocks with 33 to 36 ties, about 1 block in 10^5. They were chosen under the
/// mask's earlier layout, where they also clustered so as to fill the queue within one batch;
/// the current layout decides the same 4096 columns from the same 256 main blocks, so each still
/// holds 33-36 ties (asserted below) and the block masks of 4096 columns (whole rows of a
/// matrix, the backward, `mask_bits`) settle the queue several times in one block, but the
/// ties' order changed and a full queue within one batch (`BlockMask::queue_rest` finding 32
/// queued) is no longer reached: a panic put in that branch did not fire, nor did a counter in
/// a search of 3 million row ids (2026-11-28); `kernel::wide_lanes::tests` drives that branch
/// directly instead.
/// As `(key, p, i)`.
const CROWDED: [(usize, f64, usize); 10] = [
    (0, 0.1, 37241),
    (0, 0.1, 43527),
    (0, 0.1, 62587),
    (0, 0.999, 94638),
    (1, 0.7, 37381),
    (1, 0.999, 54338),
    (1, 0.999, 58859),
    (1, 0.1, 84144),
    (1, 0.1, 84916),
    (1, 0.1, 97766),
];

#[test]
fn crowded_blocks_match_keep_on_every_variant() {
    for (index, &(k, p, i)) in CROWDED.iter().enumerate() {
        // The crowded block, then one column into the next.
        let c = Case {
            d: Dropout::new(p).unwrap(),
            key: KEYS[k],
            row: row_id(i),
            n: BLOCK + 1,
            index,
        };
        let t = truth(&c, c.n);
        let crowd = t.ties.iter().filter(|&&j| j < BLOCK).count();
        assert!(crowd > 32, "{}: only {crowd} ties in block 0", c.describe());
        let x = values(index, c.n);
        let logits = row(&mut rng(0xC0 + index as u64), c.n, -4.0, 4.0);
        for_each_kernel!(K => {
            check_apply::<K>(&c, &t, &x);
            check_row::<K>(&c, &t, &logits);
        });
        let mut out = vec![0u8; c.n.div_ceil(8)];
        c.d.mask_bits(c.key, c.row, &mut out).unwrap();
        let bad: Vec<String> = (0..c.n)
            .filter(|&j| (out[j / 8] >> (j % 8) & 1 == 1) != t.keep[j])
            .map(|j| t.col(j))
            .collect();
        expect_none(&bad, "mask_bits", &c);
    }
}

#[test]
fn mask_bits_match_keep() {
    let all = cases(ROWS);
    let mut cov = Coverage::default();
    for c in &all {
        // Whole bytes: the columns up to the next multiple of 8 are exported too.
        let bytes = c.n.div_ceil(8);
        let t = truth(c, 8 * bytes);
        cov.add(&t, 8 * bytes);
        let mut out = vec![0xA5u8; bytes];
        c.d.mask_bits(c.key, c.row, &mut out).unwrap();
        let bad: Vec<String> = (0..8 * bytes)
            .filter(|&j| (out[j / 8] >> (j % 8) & 1 == 1) != t.keep[j])
            .map(|j| t.col(j))
            .collect();
        expect_none(&bad, "mask_bits", c);
    }
    cov.check("mask_bits");
}
