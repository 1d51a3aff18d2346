//! The same answers on every build: digests of the results that are bit-identical by design, for
//! a fixed grid of cases, compared with one committed golden file, `tests/data/build_digests.txt`.
//!
//! CI runs the suite in three builds (the x86-64 baseline, `-C target-cpu=x86-64-v3` and
//! `-C target-cpu=native`), in which `wide` lowers the kernels to different instructions (SSE2,
//! AVX2 + FMA, AVX-512 where present); every build and every kernel variant must reproduce the
//! same file. The file is embedded with `include_str!`: a normal run reads nothing at run time.
//!
//! To regenerate it (only after a deliberate change of what these results are; see below):
//!
//! ```text
//! DROPMAX_BLESS=1 cargo test --test build_digests
//! ```
//!
//! then check that the other two builds agree with the new file:
//!
//! ```text
//! RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/ci-x86-64-v3 \
//!     cargo test --test build_digests
//! RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=target/ci-native \
//!     cargo test --test build_digests
//! ```
//!
//! # What is bit-identical, and what only within the bound
//!
//! Bit-identical on every kernel variant and every build (hence in the digests):
//!
//! - **the mask**: which outputs of a row are zero. The keep decisions are integer arithmetic
//!   (Philox, the exact threshold `D`), and the structural and per-column masks are index
//!   arithmetic. The rows here use logits and bias in `[-1, 1]` and scale 0.7, so every score is
//!   within 2.8 of the row maximum and no probability underflows: the zeros are exactly the masked
//!   and dropped columns. A change of these digests is a change of the mask layout.
//! - **special rows**, whose maximum score is NaN, `+inf` or `-inf` (a NaN, `+inf`, a finite
//!   logit overflowing `scale * x`, only `-inf`, fully masked): one shared routine finishes them
//!   on every path, from scores that are an IEEE multiply then add (never fused). Their outputs,
//!   statistics and `lse` are digested bit for bit.
//! - **dropout alone** (`Dropout::apply_with`): one IEEE multiply by the rounded rescale per kept
//!   element, so its outputs are digested bit for bit too.
//!
//! Only within the documented bound (crate docs, "Accuracy"), not in the digests: the values of
//! ordinary rows, in evaluation and training. The SIMD exponential uses `mul_add`, fused with FMA
//! (x86-64-v3, native) and rounded twice without it (baseline), and the sum's order depends on the
//! lane count, so the last bits differ between variants and builds.
//! [`ordinary_values_agree_within_the_bound`] checks that part against the f64 oracle instead.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dropmax::{Dropout, DropoutKey, Mask, RowKernel, RowStats, SoftmaxDropout};
use rand_core::Rng as _;

const GOLDEN: &str = include_str!("data/build_digests.txt");
const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/build_digests.txt");

const LENGTHS: [usize; 9] = [1, 15, 16, 17, 255, 256, 257, 1000, 4096];
const PS: [(&str, f64); 4] = [
    ("0.1", 0.1),
    ("1/3", 1.0 / 3.0),
    ("0.5", 0.5),
    ("0.999", 0.999),
];
/// `(name, key, first row)`: the global row ids are `offset + first_row + i`, wrapping.
const KEYS: [(&str, DropoutKey, u64); 4] = [
    ("zero", DropoutKey::new(0, 0), 0),
    ("pi", DropoutKey::new(0x243F_6A88_85A3_08D3, 1_000_003), 17),
    // Global row ids u64::MAX - 1, u64::MAX, 0: the offset wraps inside the matrix.
    ("wrap-offset", DropoutKey::new(u64::MAX, u64::MAX - 1), 0),
    // Row ids u64::MAX - 1, u64::MAX, 0 (wrapping in `first_row + i`), plus offset 5.
    ("wrap-row", DropoutKey::new(u64::MAX - 1, 5), u64::MAX - 1),
];
/// Rows per matrix call.
const ROWS: usize = 3;
const SCALE: f32 = 0.7;

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.u32(x.to_bits());
        }
    }
    fn stats(&mut self, st: &RowStats) {
        self.f32s(&[st.max, st.sum, st.lse()]);
    }
}

/// The data of one row length: logits, bias and per-column bits, all deterministic.
struct Data {
    n: usize,
    x: Vec<f32>,
    bias: Vec<f32>,
    bits: Vec<u8>,
}

impl Data {
    fn new(n: usize) -> Self {
        let mut r = common::rng(0xD16E_5700 + n as u64);
        let x = common::row(&mut r, ROWS * n, -1.0, 1.0);
        let bias = common::row(&mut r, n, -1.0, 1.0);
        let bits = (0..n.div_ceil(8))
            .map(|_| (r.next_u32() | r.next_u32()) as u8) // ~75% visible
            .collect();
        Self { n, x, bias, bits }
    }

    /// The four masks of the grid, for the first row of a matrix call, and whether the case
    /// uses the bias. The window starts mid-vector and moves with the row.
    fn masks(&self) -> [(&'static str, Mask<'_>, bool); 4] {
        let n = self.n;
        [
            ("none", Mask::none(), false),
            ("causal", Mask::causal(n / 3), false),
            ("window", Mask::sliding_window(n / 2 + 1, n / 4 + 3), true),
            ("bits", Mask::none().with_column_bits(&self.bits), true),
        ]
    }
}

/// The digest lines of one kernel variant, `key -> digest`.
fn digests<K: RowKernel>() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in LENGTHS {
        let d = Data::new(n);
        keep_digests::<K>(&d, &mut out);
        apply_digests::<K>(&d, &mut out);
        special_digests::<K>(&d, &mut out);
    }
    out
}

/// (a) The keep pattern: which outputs are zero, per `(n, key, mask)` over every `p`. Also checks
/// that the pattern is the mask's definition (`keep` and the mask rule), so that a blessed file
/// can not record a wrong mask.
fn keep_digests<K: RowKernel>(d: &Data, out: &mut BTreeMap<String, String>) {
    let n = d.n;
    let mut y = vec![0.0f32; d.x.len()];
    for (key_name, key, first_row) in KEYS {
        for (mask_name, mask, with_bias) in d.masks() {
            let mut h = Fnv::new();
            for (_, p) in PS {
                let dropout = Dropout::new(p).unwrap();
                let mut op = SoftmaxDropout::train(SCALE, dropout, key)
                    .unwrap()
                    .with_mask(mask)
                    .with_kernel::<K>();
                if with_bias {
                    op = op.with_bias(&d.bias);
                }
                op.forward_rows(first_row, n, &d.x, &mut y, None).unwrap();
                for (i, yr) in y.chunks_exact(n).enumerate() {
                    let row = first_row.wrapping_add(i as u64);
                    for (j, &v) in yr.iter().enumerate() {
                        let visible = visible(mask_name, d, i, j);
                        let kept = visible && dropmax::keep(&dropout, key, row, j as u32);
                        assert_eq!(
                            v != 0.0,
                            kept,
                            "{}: n={n} key={key_name} mask={mask_name} p={p} row {i} col {j}: {v}",
                            K::NAME
                        );
                        assert!(v.is_finite() && v >= 0.0);
                    }
                    let pattern: Vec<u8> = yr.iter().map(|&v| u8::from(v != 0.0)).collect();
                    h.bytes(&pattern);
                }
            }
            out.insert(
                format!("keep n={n} key={key_name} mask={mask_name}"),
                format!("{:016x}", h.0),
            );
        }
    }
}

/// Whether column `j` of row `i` of a matrix call is visible under the named grid mask.
fn visible(mask_name: &str, d: &Data, i: usize, j: usize) -> bool {
    let n = d.n;
    match mask_name {
        "none" => true,
        "causal" => j <= n / 3 + i,
        "window" => {
            let q = n / 2 + 1 + i;
            j <= q && j + (n / 4 + 3) > q
        }
        "bits" => d.bits[j / 8] >> (j % 8) & 1 == 1,
        _ => unreachable!(),
    }
}

/// Dropout alone: one multiply per kept element, so every output bit is reproducible.
fn apply_digests<K: RowKernel>(d: &Data, out: &mut BTreeMap<String, String>) {
    let n = d.n;
    for (key_name, key, first_row) in KEYS {
        let mut h = Fnv::new();
        for (_, p) in PS {
            let dropout = Dropout::new(p).unwrap();
            for (i, xr) in d.x.chunks_exact(n).enumerate() {
                let mut v = xr.to_vec();
                let row = first_row.wrapping_add(i as u64);
                dropout.apply_with::<K>(key, row, &mut v).unwrap();
                for (j, (&got, &x)) in v.iter().zip(xr).enumerate() {
                    let want = if dropmax::keep(&dropout, key, row, j as u32) {
                        x * dropout.rescale()
                    } else {
                        0.0
                    };
                    assert_eq!(got.to_bits(), want.to_bits(), "{}: apply", K::NAME);
                }
                h.f32s(&v);
            }
        }
        out.insert(
            format!("apply n={n} key={key_name}"),
            format!("{:016x}", h.0),
        );
    }
}

/// A special-row case: name, logits, scale, mask, bias.
type SpecialCase<'a> = (&'a str, &'a [f32], f32, Mask<'a>, Option<&'a [f32]>);

/// (b) Special rows, bit for bit: outputs, statistics and `lse`, in evaluation and in training
/// with every `p` of the grid, through `forward_rows` (three rows, so the wrapped row ids too).
fn special_digests<K: RowKernel>(d: &Data, out: &mut BTreeMap<String, String>) {
    let n = d.n;
    let (_, key, first_row) = KEYS[2];
    let all_masked_bits = vec![0u8; n.div_ceil(8)];
    let neg_inf_bias = vec![f32::NEG_INFINITY; n];
    // Each case: name, logits, scale, mask, bias. Column 0 is visible in every row of every mask
    // used with a NaN or +inf there, so every row of every case is special.
    let with = |f: &dyn Fn(usize, usize, f32) -> f32| -> Vec<f32> {
        d.x.chunks_exact(n)
            .enumerate()
            .flat_map(|(i, r)| r.iter().enumerate().map(move |(j, &v)| (i, j, v)))
            .map(|(i, j, v)| f(i, j, v))
            .collect()
    };
    let nan = with(&|i, j, v| {
        if j == 0 || j == (n / 2 + i) % n {
            f32::from_bits(0x7FC0_0000 | (j as u32 + 1)) // NaNs with payloads
        } else {
            v
        }
    });
    let plus_inf_one = with(&|_, j, v| if j == 0 { f32::INFINITY } else { v });
    let plus_inf_many = with(&|i, j, v| {
        if j % 7 == i % 7 || j == 0 {
            f32::INFINITY
        } else if j % 5 == 1 {
            f32::NEG_INFINITY
        } else {
            v
        }
    });
    // Finite logits that overflow `1e30 * x` to +inf (and others to -inf).
    let overflow = with(&|_, j, v| match j % 4 {
        _ if j == 0 => 1e9,
        1 => -1e9,
        2 => 1e9,
        _ => v,
    });
    let neg_inf = vec![f32::NEG_INFINITY; d.x.len()];
    // A NaN in a column outside the causal band: ignored.
    let inf_and_masked_nan = with(&|_, j, v| match j {
        0 => f32::INFINITY,
        _ if j == n - 1 && n > 1 => f32::NAN,
        _ => v,
    });
    // +inf and NaN logits where the bias is -inf: excluded (only column 0 stays +inf).
    let inf_nan_under_neg_inf_bias = with(&|_, j, v| match j % 3 {
        0 | 1 => f32::INFINITY,
        _ => f32::NAN,
    } + 0.0 * v);
    let bias_neg_inf_but_0: Vec<f32> = d
        .bias
        .iter()
        .enumerate()
        .map(|(j, &b)| if j == 0 { b } else { f32::NEG_INFINITY })
        .collect();
    let causal = Mask::causal(n.saturating_sub(2).min(n / 2));
    let cases: [SpecialCase<'_>; 11] = [
        ("nan", &nan, SCALE, Mask::none(), None),
        ("nan-causal-bias", &nan, SCALE, causal, Some(&d.bias)),
        ("inf-one", &plus_inf_one, SCALE, Mask::none(), Some(&d.bias)),
        ("inf-many", &plus_inf_many, SCALE, Mask::none(), None),
        (
            "inf-many-causal",
            &plus_inf_many,
            SCALE,
            causal,
            Some(&d.bias),
        ),
        ("overflow", &overflow, 1e30, Mask::none(), None),
        ("inf-masked-nan", &inf_and_masked_nan, SCALE, causal, None),
        (
            "inf-nan-neg-inf-bias",
            &inf_nan_under_neg_inf_bias,
            SCALE,
            Mask::none(),
            Some(&bias_neg_inf_but_0),
        ),
        ("all-neg-inf", &neg_inf, SCALE, Mask::none(), Some(&d.bias)),
        (
            "masked-bits",
            &d.x,
            SCALE,
            Mask::none().with_column_bits(&all_masked_bits),
            None,
        ),
        (
            "neg-inf-bias",
            &d.x,
            SCALE,
            Mask::none(),
            Some(&neg_inf_bias),
        ),
    ];
    let mut y = vec![0.0f32; d.x.len()];
    let mut stats = [RowStats::EMPTY; ROWS];
    for (name, x, scale, mask, bias) in cases {
        let mut h = Fnv::new();
        let modes = std::iter::once(None).chain(PS.iter().map(|&(_, p)| Some(p)));
        for p in modes {
            let mut op = match p {
                None => SoftmaxDropout::eval(scale).unwrap(),
                Some(p) => SoftmaxDropout::train(scale, Dropout::new(p).unwrap(), key).unwrap(),
            }
            .with_mask(mask)
            .with_kernel::<K>();
            if let Some(b) = bias {
                op = op.with_bias(b);
            }
            op.forward_rows(first_row, n, x, &mut y, Some(&mut stats))
                .unwrap();
            for st in &stats {
                assert!(
                    !st.max.is_finite(),
                    "{}: case {name} n={n} is not a special row: {st:?}",
                    K::NAME
                );
                h.stats(st);
            }
            h.f32s(&y);
        }
        out.insert(
            format!("special n={n} case={name}"),
            format!("{:016x}", h.0),
        );
    }
}

fn render(d: &BTreeMap<String, String>) -> String {
    let mut s = String::from(
        "# Digests of the bit-identical results of tests/build_digests.rs (FNV-1a 64).\n\
         # Every kernel variant and every build (x86-64 baseline, x86-64-v3, native) must\n\
         # reproduce this file. Regenerate: DROPMAX_BLESS=1 cargo test --test build_digests\n",
    );
    for (k, v) in d {
        writeln!(s, "{k} {v}").unwrap();
    }
    s
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("a line is `case digest`");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Compares the variant's digests with the golden ones; returns the differences, described.
fn differences(
    name: &str,
    got: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, v) in got {
        match want.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{name}: {k}: got {v}, golden {w}")),
            None => diffs.push(format!("{name}: {k}: not in the golden file")),
        }
    }
    for k in want.keys().filter(|k| !got.contains_key(*k)) {
        diffs.push(format!("{name}: {k}: in the golden file, not computed"));
    }
    diffs
}

#[test]
fn every_variant_reproduces_the_golden_digests() {
    let mut per_variant = Vec::new();
    for_each_kernel!(K => {
        per_variant.push((K::NAME, digests::<K>()));
    });
    let scalar = per_variant[0].1.clone();
    // The variants agree with each other whatever the file says.
    let mut diffs = Vec::new();
    for (name, d) in &per_variant {
        diffs.extend(differences(name, d, &scalar));
    }
    assert!(
        diffs.is_empty(),
        "variants disagree with scalar:\n{}",
        diffs.join("\n")
    );

    if std::env::var_os("DROPMAX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(GOLDEN_PATH, render(&scalar)).unwrap();
        eprintln!("wrote {} lines to {GOLDEN_PATH}", scalar.len());
        return;
    }
    let golden = parse(GOLDEN);
    assert!(
        !golden.is_empty(),
        "{GOLDEN_PATH} is empty: generate it with DROPMAX_BLESS=1 cargo test --test build_digests"
    );
    for (name, d) in &per_variant {
        diffs.extend(differences(name, d, &golden));
    }
    assert!(
        diffs.is_empty(),
        "{} digests differ from {GOLDEN_PATH} (this build: {}):\n{}",
        diffs.len(),
        build_description(),
        diffs.join("\n")
    );
}

/// The build's relevant target features, for the failure message.
fn build_description() -> String {
    let mut s = String::new();
    for (f, on) in [
        ("sse4.1", cfg!(target_feature = "sse4.1")),
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
    ] {
        write!(s, "{}{f} ", if on { '+' } else { '-' }).unwrap();
    }
    s
}

/// The rest of the grid's results, ordinary rows' values, are not bit-identical (see the module
/// docs) but every variant is within the documented bound of the exact result, in evaluation and
/// in training.
#[test]
fn ordinary_values_agree_within_the_bound() {
    for n in LENGTHS {
        let d = Data::new(n);
        let (key_name, key, first_row) = KEYS[2];
        for (mask_name, mask, with_bias) in d.masks() {
            for p in [None, Some(1.0 / 3.0)] {
                let dropout = p.map(|p| Dropout::new(p).unwrap());
                let base = match dropout {
                    None => SoftmaxDropout::eval(SCALE).unwrap(),
                    Some(dr) => SoftmaxDropout::train(SCALE, dr, key).unwrap(),
                };
                let base = base.with_mask(mask);
                let base = if with_bias {
                    base.with_bias(&d.bias)
                } else {
                    base
                };
                let rescale = dropout.map_or(1.0, |dr| f64::from(dr.rescale()));
                for_each_kernel!(K => {
                    let mut y = vec![0.0f32; d.x.len()];
                    let mut stats = [RowStats::EMPTY; ROWS];
                    base.with_kernel::<K>()
                        .forward_rows(first_row, n, &d.x, &mut y, Some(&mut stats))
                        .unwrap();
                    for (i, (xr, yr)) in d.x.chunks_exact(n).zip(y.chunks_exact(n)).enumerate() {
                        // The scores exactly as the crate defines them: a multiply then an add.
                        let z: Vec<f32> = xr
                            .iter()
                            .enumerate()
                            .map(|(j, &x)| {
                                if !visible(mask_name, &d, i, j) {
                                    f32::NEG_INFINITY
                                } else if with_bias {
                                    SCALE * x + d.bias[j]
                                } else {
                                    SCALE * x
                                }
                            })
                            .collect();
                        let row = first_row.wrapping_add(i as u64);
                        let (want, m) =
                            common::oracle(&z, dropout.as_ref().map(|dr| (dr, key, row)));
                        assert_eq!(f64::from(stats[i].max), m);
                        let sum = common::exact_sum(&z);
                        for (j, (&g, &w)) in yr.iter().zip(&want).enumerate() {
                            if w == 0.0 {
                                // Masked or dropped (no probability underflows here).
                                assert_eq!(g.to_bits(), 0, "{}: n={n} row {i} col {j}", K::NAME);
                                continue;
                            }
                            let tol = common::bound(w, z[j], m, rescale, sum, 1e-6);
                            assert!(
                                (f64::from(g) - w).abs() <= tol,
                                "{}: n={n} key={key_name} mask={mask_name} p={p:?} \
                                 row {i} col {j}: {g} vs {w}",
                                K::NAME
                            );
                        }
                    }
                });
            }
        }
    }
}
