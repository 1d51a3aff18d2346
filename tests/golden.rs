//! Golden vectors that pin the dropout mask layout (the formula in `dropmax::dropout`'s docs).
//!
//! `tests/data/golden_mask.txt` is produced by `tests/data/mask_reference.py`, an independent
//! plain-Python implementation of Philox4x32-10 (checked against Random123's known answers) and of
//! the documented mask formula; it never runs the Rust code. Regenerate it with
//!
//! ```text
//! python3 tests/data/mask_reference.py > tests/data/golden_mask.txt
//! ```
//!
//! A change to this file's expectations is a change of the mask layout (every saved mask, GPU port
//! and reference implementation would have to follow), never a routine update.
//!
//! The file is embedded with `include_str!`, so the tests read nothing at run time.

mod common;

use dropmax::{
    Dropout, DropoutKey, Scalar, SoftmaxDropout, Wide4, Wide8, Wide16, keep, mask_uniform,
    philox::philox4x32_10,
};

const GOLDEN: &str = include_str!("data/golden_mask.txt");

/// Known-answer Philox block: rounds, counter, key, output.
struct Kat {
    rounds: u32,
    counter: [u32; 4],
    key: [u32; 2],
    out: [u32; 4],
}

/// One `(seed, offset, row, p)` case of the golden file.
struct Case {
    name: String,
    key: DropoutKey,
    row: u64,
    p: f64,
    threshold: u64,
    /// `(column, kept)` for consecutive columns.
    bits: Vec<(u32, bool)>,
    /// `(column, U, kept)`.
    uniforms: Vec<(u32, u32, bool)>,
}

impl Case {
    fn dropout(&self) -> Dropout {
        Dropout::new(self.p).unwrap()
    }

    /// Every `(column, kept)` the case records.
    fn decisions(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.bits
            .iter()
            .copied()
            .chain(self.uniforms.iter().map(|&(j, _, k)| (j, k)))
    }
}

struct Golden {
    kats: Vec<Kat>,
    /// `(p, D)`.
    thresholds: Vec<(f64, u64)>,
    cases: Vec<Case>,
}

fn hex32(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap()
}

fn hex64(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

fn parse() -> Golden {
    let mut g = Golden {
        kats: Vec::new(),
        thresholds: Vec::new(),
        cases: Vec::new(),
    };
    let mut open: Option<Case> = None;
    for line in GOLDEN.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            ["kat", rounds, rest @ ..] => {
                assert_eq!(rest.len(), 10, "{line}");
                g.kats.push(Kat {
                    rounds: rounds.parse().unwrap(),
                    counter: core::array::from_fn(|i| hex32(rest[i])),
                    key: core::array::from_fn(|i| hex32(rest[4 + i])),
                    out: core::array::from_fn(|i| hex32(rest[6 + i])),
                });
            }
            ["threshold", p, d] => {
                g.thresholds
                    .push((f64::from_bits(hex64(p)), d.parse().unwrap()));
            }
            ["case", name, seed, offset, row, p, d] => {
                assert!(open.is_none(), "unterminated case before {line}");
                open = Some(Case {
                    name: (*name).to_owned(),
                    key: DropoutKey::new(hex64(seed), hex64(offset)),
                    row: hex64(row),
                    p: f64::from_bits(hex64(p)),
                    threshold: d.parse().unwrap(),
                    bits: Vec::new(),
                    uniforms: Vec::new(),
                });
            }
            ["bits", first, s] => {
                let c = open.as_mut().expect("bits outside a case");
                let first: u32 = first.parse().unwrap();
                for (i, b) in s.bytes().enumerate() {
                    assert!(b == b'0' || b == b'1', "{line}");
                    c.bits.push((first + i as u32, b == b'1'));
                }
            }
            ["u", col, u, k] => {
                let c = open.as_mut().expect("u outside a case");
                c.uniforms.push((col.parse().unwrap(), hex32(u), *k == "1"));
            }
            ["end"] => g.cases.push(open.take().expect("end outside a case")),
            _ => panic!("unrecognised golden line: {line}"),
        }
    }
    assert!(open.is_none(), "unterminated last case");
    g
}

#[test]
fn golden_file_is_complete() {
    let g = parse();
    // Guards against a truncated or partly regenerated file: the counts the script writes.
    assert_eq!(g.kats.len(), 5);
    assert_eq!(g.thresholds.len(), 16);
    assert_eq!(g.cases.len(), 9);
    for c in &g.cases {
        assert_eq!(c.bits.len(), 301, "{}", c.name);
        assert!(c.uniforms.len() >= 20 + 12, "{}", c.name);
    }
}

#[test]
fn philox_matches_known_answers() {
    let g = parse();
    let mut checked = 0;
    for k in g.kats.iter().filter(|k| k.rounds == 10) {
        assert_eq!(philox4x32_10(k.counter, k.key), k.out, "{:08x?}", k.counter);
        checked += 1;
    }
    // The 7-round vector only validates the Python reference; the other four pin the crate.
    assert_eq!(checked, 4);
}

#[test]
fn thresholds_round_ties_away_exactly() {
    for (p, d) in parse().thresholds {
        let dr = Dropout::new(p).unwrap();
        assert_eq!(dr.threshold(), d, "p = {p:e}");
        assert_eq!(
            dr.keep_probability(),
            ((1u64 << 32) - d) as f64 / 2f64.powi(32),
            "p = {p:e}"
        );
        assert_eq!(dr.keeps_all(), d == 0, "p = {p:e}");
        assert_eq!(dr.drops_all(), d == 1 << 32, "p = {p:e}");
    }
}

#[test]
fn keep_and_mask_uniform_match_reference() {
    let g = parse();
    let mut ties = [0usize; 2];
    for c in &g.cases {
        let d = c.dropout();
        assert_eq!(d.threshold(), c.threshold, "{}", c.name);
        for &(j, want) in &c.bits {
            assert_eq!(keep(&d, c.key, c.row, j), want, "{} column {j}", c.name);
        }
        for &(j, u, want) in &c.uniforms {
            assert_eq!(mask_uniform(c.key, c.row, j), u, "{} column {j}: U", c.name);
            assert_eq!(keep(&d, c.key, c.row, j), want, "{} column {j}", c.name);
            // The file is self-consistent: keep <=> U >= D.
            assert_eq!(u64::from(u) >= c.threshold, want, "{} column {j}", c.name);
            if u >> 24 == (c.threshold >> 24) as u32 && c.threshold & 0xFF_FFFF != 0 {
                ties[usize::from(want)] += 1;
            }
        }
    }
    // The tie-break word decided some recorded columns both ways.
    assert!(
        ties[0] >= 10 && ties[1] >= 10,
        "ties (dropped, kept): {ties:?}"
    );
}

/// The fused kernel on equal logits (`P_j = 1/n`) with the case's key and row: `Y_j` is 0 exactly
/// on the dropped columns and `rescale / n` on the kept ones.
fn check_fused<K: dropmax::RowKernel>(c: &Case, n: usize) {
    let d = c.dropout();
    let x = vec![0.0f32; n];
    let op = SoftmaxDropout::train(1.0, d, c.key)
        .unwrap()
        .with_kernel::<K>();
    let kept_value = d.rescale() / n as f32;
    let check = |y: &[f32], how: &str| {
        for &(j, want) in c.bits.iter().filter(|(j, _)| (*j as usize) < n) {
            let v = y[j as usize];
            if want {
                assert!(
                    (v - kept_value).abs() <= 1e-5 * kept_value,
                    "{} {} {how}: column {j} kept but {v}",
                    K::NAME,
                    c.name
                );
            } else {
                assert_eq!(v, 0.0, "{} {} {how}: column {j} dropped", K::NAME, c.name);
            }
        }
    };

    let mut y = vec![f32::NAN; n];
    op.forward(c.row, &x, &mut y).unwrap();
    check(&y, "forward");

    let mut xy = x.clone();
    op.forward_in_place(c.row, &mut xy).unwrap();
    check(&xy, "forward_in_place");

    // As the second row of a two-row matrix whose first row id is `row - 1`.
    let xx = vec![0.0f32; 2 * n];
    let mut yy = vec![f32::NAN; 2 * n];
    op.forward_rows(c.row.wrapping_sub(1), n, &xx, &mut yy, None)
        .unwrap();
    check(&yy[n..], "forward_rows");

    // Dropout alone on ones: kept values are exactly the rescale.
    let mut v = vec![1.0f32; n];
    d.apply_with::<K>(c.key, c.row, &mut v).unwrap();
    for &(j, want) in c.bits.iter().filter(|(j, _)| (*j as usize) < n) {
        let expect = if want { d.rescale() } else { 0.0 };
        assert_eq!(
            v[j as usize],
            expect,
            "{} {} apply: column {j}",
            K::NAME,
            c.name
        );
    }
}

#[test]
fn fused_kernels_zero_exactly_the_dropped_columns() {
    let g = parse();
    for c in &g.cases {
        // The full recorded prefix, and a length whose tail is not a multiple of any width.
        for n in [301, 37] {
            check_fused::<Scalar>(c, n);
            check_fused::<Wide4>(c, n);
            check_fused::<Wide8>(c, n);
            check_fused::<Wide16>(c, n);
            #[cfg(target_arch = "x86_64")]
            if common::runnable::<dropmax::Avx2>() {
                check_fused::<dropmax::Avx2>(c, n);
            }
            #[cfg(target_arch = "x86_64")]
            if common::runnable::<dropmax::Avx512>() {
                check_fused::<dropmax::Avx512>(c, n);
            }
        }
        // The default kernel.
        let d = c.dropout();
        let mut y = vec![0.0f32; 301];
        SoftmaxDropout::train(1.0, d, c.key)
            .unwrap()
            .forward(c.row, &[0.0; 301], &mut y)
            .unwrap();
        for &(j, want) in &c.bits {
            assert_eq!(y[j as usize] != 0.0, want, "best {}: column {j}", c.name);
        }
    }
}

/// The recorded columns below 65537 (group ends, 4095, 65535, 65536, and the tie columns from
/// 4096 on) through kernel `K` on one long row.
fn check_long_row<K: dropmax::RowKernel>(g: &Golden) {
    let n = 65537;
    let mut v = vec![0.0f32; n];
    for c in &g.cases {
        let d = c.dropout();
        v.fill(1.0);
        d.apply_with::<K>(c.key, c.row, &mut v).unwrap();
        let mut checked = 0;
        for (j, want) in c.decisions().filter(|(j, _)| (*j as usize) < n) {
            assert_eq!(
                v[j as usize] != 0.0,
                want,
                "{} {}: column {j}",
                K::NAME,
                c.name
            );
            checked += 1;
        }
        assert!(checked > 301 + 20, "{}", c.name);
    }
}

#[test]
fn apply_matches_reference_up_to_column_65536() {
    let g = parse();
    check_long_row::<Scalar>(&g);
    check_long_row::<Wide4>(&g);
    check_long_row::<Wide8>(&g);
    check_long_row::<Wide16>(&g);
    #[cfg(target_arch = "x86_64")]
    if common::runnable::<dropmax::Avx2>() {
        check_long_row::<dropmax::Avx2>(&g);
    }
    #[cfg(target_arch = "x86_64")]
    if common::runnable::<dropmax::Avx512>() {
        check_long_row::<dropmax::Avx512>(&g);
    }
}

/// The packed mask export reproduces the reference on every kernel variant: bit `j % 8` of byte
/// `j / 8` is column `j`'s decision (LSB first, whatever the target's byte order), for the
/// recorded columns below 65537.
#[test]
fn mask_bits_match_reference() {
    let g = parse();
    let n: usize = 65537;
    let mut out = vec![0u8; n.div_ceil(8)];
    for c in &g.cases {
        let d = c.dropout();
        for_each_kernel!(K => {
            out.fill(0xA5);
            d.mask_bits_with::<K>(c.key, c.row, &mut out).unwrap();
            for (j, want) in c.decisions().filter(|(j, _)| (*j as usize) < n) {
                let bit = out[j as usize / 8] >> (j % 8) & 1 == 1;
                assert_eq!(bit, want, "{} {} mask_bits: column {j}", <K as dropmax::RowKernel>::NAME, c.name);
            }
        });
    }
}
