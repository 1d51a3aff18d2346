//! The `forward` target: the fused row kernel through its public API, every kernel variant, every
//! mask kind, bias, in place and not, one row and `forward_rows`, and dropout alone
//! (`Dropout::apply`), against an independent model of the crate's documented semantics.
//!
//! Shared with `tests/fuzz_regressions.rs` (see `value.rs`). Checks, for every call:
//!
//! - construction: `SoftmaxDropout` fails iff the scale is not finite, `Dropout::new` iff `p` is
//!   NaN or outside `[0, 1]`; the threshold is `round(p 2^32)` and the rescale `1/q` rounded once;
//! - an error is returned exactly when a length is wrong (output, bias, column mask, matrix,
//!   statistics), by every variant, and then every output buffer is bit-for-bit untouched;
//! - masked columns are exactly `+0`; the special rows (NaN, only `-inf`, `+inf`) are exactly as
//!   documented, statistics included, bit-identical on every variant;
//! - an ordinary row: outputs `+0` or finite positive and `<= rescale (1 + 1e-6)`; a nonzero
//!   output only where the column is visible, its score finite and `keep(r, j)` holds, and a zero
//!   output where those hold and `z_j - m >= -87` (well above the flush at `-87.336`); `max` is
//!   the model's `m`, `sum` within the bound of the exact one; every output within the documented
//!   bound of the exact (`f64`) softmax-dropout; in evaluation the row sums to 1 within the bound;
//! - every table this CPU runs (see [`variants`]: the portable `Wide*`, on x86-64 `Avx2` and
//!   `Avx512` where supported) and `Best` against `Scalar`: the same zeros, values within twice the
//!   documented bound; in place equals out of place bit for bit;
//! - `forward_rows` equals `forward` row by row (masks at query position `q + i`) bit for bit;
//! - `Dropout::apply`: `y_j = keep ? x_j * rescale : 0`, bit for bit, on every variant.

use crate::value::{F32Bits, F64Bits};
use dropmax::{Best, Dropout, DropoutKey, Error, Mask, RowKernel, RowStats, SoftmaxDropout, keep};

/// The longest row the target builds (17 groups of 256 columns).
pub const MAX_LEN: usize = 4352;
/// What an output buffer holds before a call: a quiet NaN with a payload no kernel writes.
pub(crate) const SENTINEL: f32 = f32::from_bits(0x7FC0_BEEF);
/// `2^32`.
pub(crate) const TWO_POW_32: f64 = 4_294_967_296.0;

fuzz_enum! {
    /// The row length (columns).
    pub enum Len {
        /// `v` columns.
        Short(u8),
        /// `v % (MAX_LEN + 1)` columns.
        Long(u16),
    }
}

fuzz_enum! {
    /// A named special value.
    pub enum Special {
        Nan,
        NegNan,
        Inf,
        NegInf,
        Zero,
        NegZero,
        MinSubnormal,
        MaxSubnormal,
        MinPositive,
        Max,
        Lowest,
        One,
        /// 88.5: `exp` of it overflows `f32`.
        Big,
    }
}

fuzz_enum! {
    /// One `f32`.
    pub enum Val {
        /// Any bit pattern: every NaN payload, infinities, subnormals, `-0.0`.
        Bits(F32Bits),
        /// `v / 256`.
        Small(i16),
        Special(Special),
    }
}

fuzz_struct! {
    /// Uniform noise added to the finite values of a fill.
    pub struct Noise {
        pub seed: u32,
        /// Amplitude `amp / 8`.
        pub amp: u8,
    }
}

fuzz_struct! {
    /// The values of a slice: `pattern` repeated (zeros if empty), noise added to the finite
    /// ones, then each patch `(position % len, value)` written over.
    pub struct Fill {
        pub pattern: Vec<Val>,
        pub noise: Option<Noise>,
        pub patches: Vec<(u16, Val)>,
    }
}

fuzz_enum! {
    /// A slice's length relative to the one the call needs.
    pub enum LenAdj {
        Right,
        /// `need + d`, clamped at 0; `d = 0` means `need + 1`.
        Wrong(i8),
    }
}

fuzz_enum! {
    /// The logit scale.
    pub enum ScaleIn {
        /// An entry of `COMMON_SCALES`.
        Common(u8),
        /// `v / 1024`.
        Small(i16),
        /// Any bit pattern (non-finite ones must be refused).
        Bits(F32Bits),
    }
}

fuzz_enum! {
    /// The dropout probability.
    pub enum PIn {
        /// An entry of `COMMON_PS`.
        Common(u8),
        /// `(v >> 11) 2^-53`, uniform in `[0, 1)`.
        Unit(u64),
        /// `(k + 0.5 h) / 2^32`: an exact threshold, or a rounding tie.
        Threshold((u32, bool)),
        /// `1 - k 2^-40`.
        NearOne(u32),
        /// Any bit pattern (NaN and values outside `[0, 1]` must be refused).
        Bits(F64Bits),
    }
}

fuzz_struct! {
    /// Training parameters.
    pub struct TrainIn {
        pub p: PIn,
        pub seed: u64,
        pub offset: u64,
    }
}

fuzz_enum! {
    /// Evaluation or training.
    pub enum ModeIn {
        Eval,
        Train(TrainIn),
    }
}

fuzz_enum! {
    /// A query position.
    pub enum Pos {
        /// `v % (n + 17)`.
        Near(u16),
        /// `usize::MAX - v`.
        Huge(u16),
    }
}

fuzz_enum! {
    /// How far a band reaches on one side.
    pub enum Reach {
        /// `usize::MAX`.
        Unbounded,
        /// `v % (n + 17)`.
        To(u16),
        /// `usize::MAX - 1 - v`.
        Huge(u16),
    }
}

fuzz_enum! {
    /// The structural part of the mask.
    pub enum BandIn {
        None,
        Causal(Pos),
        /// Window `w % (n + 17)`.
        Window((Pos, u16)),
        /// `(q, before, after)`.
        Band((Pos, (Reach, Reach))),
        /// `Mask::key_len(v % (n + 17))`.
        KeyLen(u16),
    }
}

fuzz_struct! {
    /// A per-column mask: bit `j % 8` of byte `j / 8` of `bytes` repeated (all visible if empty).
    pub struct ColPattern {
        pub bytes: Vec<u8>,
        pub len: LenAdj,
    }
}

fuzz_enum! {
    /// The per-column part of the mask.
    pub enum ColsIn {
        All,
        /// `Mask::with_columns`, one `bool` per column.
        Bools(ColPattern),
        /// `Mask::with_column_bits`, `ceil(n / 8)` bytes.
        Bits(ColPattern),
    }
}

fuzz_struct! {
    /// The whole mask.
    pub struct MaskIn {
        pub band: BandIn,
        /// `with_key_len(v % (n + 17))` on top of the band.
        pub key_len: Option<u16>,
        pub columns: ColsIn,
    }
}

fuzz_struct! {
    /// An additive bias.
    pub struct BiasIn {
        pub fill: Fill,
        pub len: LenAdj,
    }
}

fuzz_struct! {
    /// A `forward_rows` call.
    pub struct RowsIn {
        /// Rows `v % 9` (`v % 3` for rows over 1024 columns).
        pub rows: u8,
        /// The matrix length against `rows * n`.
        pub x_len: LenAdj,
        pub y_len: LenAdj,
        /// The statistics slice, if any, against one entry per row.
        pub stats: Option<LenAdj>,
    }
}

fuzz_enum! {
    /// Which entry point.
    pub enum CallIn {
        /// `forward` (output length `LenAdj`) and `forward_in_place`.
        Row(LenAdj),
        /// `forward_rows` and `forward_rows_in_place`.
        Rows(RowsIn),
        /// `Dropout::apply_with` on the logits.
        Apply,
    }
}

fuzz_struct! {
    /// One input of the `forward` target.
    pub struct ForwardInput {
        pub len: Len,
        /// The row starts at `start % 64` in its buffer, the output at `y_start % 64`.
        pub start: u8,
        pub y_start: u8,
        pub scale: ScaleIn,
        pub mode: ModeIn,
        /// Row id (first row id for `forward_rows`).
        pub row: u64,
        pub mask: MaskIn,
        pub bias: Option<BiasIn>,
        pub call: CallIn,
        pub data: Fill,
        /// The attention sink logit (`with_sink`); none (`-inf`) when left out.
        pub sink: Option<Val>,
        /// The soft-cap (`with_softcap`): refused unless finite and positive; none when left
        /// out.
        pub softcap: Option<Val>,
    }
}

const COMMON_SCALES: [f32; 16] = [
    1.0,
    0.0,
    -0.0,
    -1.0,
    0.125,
    0.5,
    2.0,
    -3.5,
    1e30,
    -1e30,
    1e-40,
    f32::MAX,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MIN_POSITIVE,
];

const COMMON_PS: [f64; 16] = [
    0.0,
    1.0,
    0.1,
    0.5,
    1e-10,
    1.0 - 1e-7,
    0.9,
    1.0 / 8_589_934_592.0,       // 2^-33: a rounding tie, D = 1
    1.0 - 1.0 / 8_589_934_592.0, // D = 2^32: drops all
    1.0 - 1.0 / 4_294_967_296.0, // D = 2^32 - 1: rescale 2^32
    -0.0,
    -1e-300,
    1.0 + f64::EPSILON,
    f64::NAN,
    f64::INFINITY,
    0.25,
];

fn special(s: &Special) -> f32 {
    match s {
        Special::Nan => f32::NAN,
        Special::NegNan => -f32::NAN,
        Special::Inf => f32::INFINITY,
        Special::NegInf => f32::NEG_INFINITY,
        Special::Zero => 0.0,
        Special::NegZero => -0.0,
        Special::MinSubnormal => f32::from_bits(1),
        Special::MaxSubnormal => f32::from_bits(0x007F_FFFF),
        Special::MinPositive => f32::MIN_POSITIVE,
        Special::Max => f32::MAX,
        Special::Lowest => f32::MIN,
        Special::One => 1.0,
        Special::Big => 88.5,
    }
}

pub(crate) fn val(v: &Val) -> f32 {
    match v {
        Val::Bits(b) => b.get(),
        Val::Small(s) => f32::from(*s) / 256.0,
        Val::Special(s) => special(s),
    }
}

/// SplitMix64: noise for fills.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn fill(f: &Fill, out: &mut [f32]) {
    let mut state = f.noise.as_ref().map_or(0, |n| u64::from(n.seed));
    for (j, o) in out.iter_mut().enumerate() {
        *o = if f.pattern.is_empty() {
            0.0
        } else {
            val(&f.pattern[j % f.pattern.len()])
        };
        if let Some(n) = &f.noise
            && o.is_finite()
        {
            let u = (splitmix(&mut state) >> 40) as f32 / (1u32 << 24) as f32; // [0, 1)
            *o += (2.0 * u - 1.0) * f32::from(n.amp) / 8.0;
        }
    }
    if !out.is_empty() {
        let len = out.len();
        for (pos, v) in &f.patches {
            out[usize::from(*pos) % len] = val(v);
        }
    }
}

pub(crate) fn adjust(need: usize, adj: &LenAdj) -> usize {
    match adj {
        LenAdj::Right => need,
        LenAdj::Wrong(0) => need + 1,
        LenAdj::Wrong(d) => need.saturating_add_signed(isize::from(*d)),
    }
}

fn near(v: u16, n: usize) -> usize {
    usize::from(v) % (n + 17)
}

/// The structural band, resolved: `q - before <= j <= q + after`, `j < key_len`
/// (`usize::MAX` = unbounded), or nothing visible (a window of 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Band {
    q: usize,
    before: usize,
    after: usize,
    /// The window width, for a sliding window.
    window: usize,
    /// `key_len` of `BandIn::KeyLen`, and of `with_key_len`.
    kind_key_len: usize,
    extra_key_len: Option<usize>,
    empty: bool,
}

impl Band {
    pub(crate) fn resolve(m: &MaskIn, n: usize) -> Self {
        let pos = |p: &Pos| match p {
            Pos::Near(v) => near(*v, n),
            Pos::Huge(v) => usize::MAX - usize::from(*v),
        };
        let reach = |r: &Reach| match r {
            Reach::Unbounded => usize::MAX,
            Reach::To(v) => near(*v, n),
            Reach::Huge(v) => usize::MAX - 1 - usize::from(*v),
        };
        let mut b = Band {
            q: 0,
            before: usize::MAX,
            after: usize::MAX,
            window: 0,
            kind_key_len: usize::MAX,
            extra_key_len: m.key_len.map(|k| near(k, n)),
            empty: false,
        };
        match &m.band {
            BandIn::None => {}
            BandIn::Causal(p) => (b.q, b.after) = (pos(p), 0),
            BandIn::Window((p, w)) => {
                let w = near(*w, n);
                b.window = w;
                b.q = pos(p);
                b.after = 0;
                if w == 0 {
                    b.empty = true;
                } else {
                    b.before = w - 1;
                }
            }
            BandIn::Band((p, (before, after))) => {
                (b.q, b.before, b.after) = (pos(p), reach(before), reach(after));
            }
            BandIn::KeyLen(k) => b.kind_key_len = near(*k, n),
        }
        b
    }

    /// The library's `Mask` for row `i` of a call: query position `q + i` (saturating, as the
    /// rows helpers do), the same key length and per-column mask.
    pub(crate) fn mask<'a>(&self, kind: &BandIn, i: usize, cols: &'a Cols) -> Mask<'a> {
        let q = self.q.saturating_add(i);
        let mut m = match kind {
            BandIn::None => Mask::none(),
            BandIn::Causal(_) => Mask::causal(q),
            BandIn::Window(_) => Mask::sliding_window(q, self.window),
            BandIn::Band(_) => Mask::band(q, self.before, self.after),
            BandIn::KeyLen(_) => Mask::key_len(self.kind_key_len),
        };
        if let Some(k) = self.extra_key_len {
            m = m.with_key_len(k);
        }
        match cols {
            Cols::All => m,
            Cols::Bools(b) => m.with_columns(b),
            Cols::Bits(b) => m.with_column_bits(b),
        }
    }

    /// Column `j` of row `i` passes the band (the model, written from the docs).
    pub(crate) fn visible(&self, i: usize, j: usize) -> bool {
        let key_len = self
            .kind_key_len
            .min(self.extra_key_len.unwrap_or(usize::MAX));
        if self.empty || j >= key_len {
            return false;
        }
        // Query position q + i; the library saturates at usize::MAX (undocumented corner).
        let q = self.q.saturating_add(i) as u128;
        let j = j as u128;
        let lo_ok = self.before == usize::MAX || j + self.before as u128 >= q;
        let hi_ok = self.after == usize::MAX || j <= q + self.after as u128;
        lo_ok && hi_ok
    }
}

/// The per-column mask data, resolved.
#[derive(Debug)]
pub(crate) enum Cols {
    All,
    Bools(Vec<bool>),
    Bits(Vec<u8>),
}

impl Cols {
    pub(crate) fn resolve(c: &ColsIn, n: usize) -> Self {
        let bit = |p: &ColPattern, j: usize| {
            p.bytes.is_empty() || p.bytes[(j / 8) % p.bytes.len()] >> (j % 8) & 1 == 1
        };
        match c {
            ColsIn::All => Cols::All,
            ColsIn::Bools(p) => Cols::Bools((0..adjust(n, &p.len)).map(|j| bit(p, j)).collect()),
            ColsIn::Bits(p) => Cols::Bits(
                (0..adjust(n.div_ceil(8), &p.len))
                    .map(|k| {
                        if p.bytes.is_empty() {
                            0xFF
                        } else {
                            p.bytes[k % p.bytes.len()]
                        }
                    })
                    .collect(),
            ),
        }
    }

    pub(crate) fn length_ok(&self, n: usize) -> bool {
        match self {
            Cols::All => true,
            Cols::Bools(b) => b.len() == n,
            Cols::Bits(b) => b.len() == n.div_ceil(8),
        }
    }

    pub(crate) fn visible(&self, j: usize) -> bool {
        match self {
            Cols::All => true,
            Cols::Bools(b) => b[j],
            Cols::Bits(b) => b[j / 8] >> (j % 8) & 1 == 1,
        }
    }
}

/// A hook that alters each output row before it is checked (name of the variant, the row); the
/// fuzz target passes one that does nothing, the replay test uses others to show the checks bite.
pub type Tamper<'t> = &'t dyn Fn(&str, &mut [f32]);

/// Everything resolved from an input that the model needs.
pub(crate) struct Ctx<'a> {
    pub(crate) n: usize,
    pub(crate) scale: f32,
    pub(crate) train: Option<(Dropout, DropoutKey)>,
    pub(crate) row: u64,
    pub(crate) band: Band,
    pub(crate) cols: &'a Cols,
    pub(crate) bias: Option<&'a [f32]>,
    /// The sink logit, `-inf` for none.
    pub(crate) sink: f32,
    /// The soft-cap `c`, 0 for none.
    pub(crate) cap: f32,
    pub(crate) tamper: Tamper<'a>,
}

impl Ctx<'_> {
    /// A one-line summary for failure messages.
    pub(crate) fn describe(&self) -> String {
        let cols = match self.cols {
            Cols::All => "all".to_string(),
            Cols::Bools(b) => format!("{} bools", b.len()),
            Cols::Bits(b) => format!("{} bytes of bits", b.len()),
        };
        format!(
            "n={} scale={:?} train={:?} row={} band={:?} cols={} bias_len={:?} sink={:?} cap={:?}",
            self.n,
            self.scale,
            self.train
                .map(|(d, k)| (d.p(), d.threshold(), d.rescale(), k)),
            self.row,
            self.band,
            cols,
            self.bias.map(<[f32]>::len),
            self.sink,
            self.cap,
        )
    }

    pub(crate) fn rescale(&self) -> f32 {
        self.train.map_or(1.0, |(d, _)| d.rescale())
    }

    pub(crate) fn kept(&self, row: u64, j: usize) -> bool {
        self.train
            .is_none_or(|(d, key)| keep(&d, key, row, j as u32))
    }

    /// Whether the bias and the column mask have the lengths a row of `n` needs.
    pub(crate) fn lengths_ok(&self) -> bool {
        self.bias.is_none_or(|b| b.len() == self.n) && self.cols.length_ok(self.n)
    }
}

/// What the model says of one row.
pub(crate) enum Kind {
    /// A NaN score: visible columns NaN, except `-inf` scores (0).
    Nan,
    /// No visible column, or only `-inf` scores: all zeros.
    Empty,
    /// `k` scores of `+inf` share the probability.
    Inf(usize),
    /// Everything else; `s` is the exact (`f64`) sum of `exp(z_j - m)` (the sink included).
    Ordinary { m: f32, s: f64, visible: usize },
}

pub(crate) struct Expect {
    pub(crate) z: Vec<f32>,
    pub(crate) visible: Vec<bool>,
    pub(crate) kind: Kind,
    /// How far the kernels' scores may lie from `z` (absolute; 0 without a soft-cap, where they
    /// are bit-identical).
    pub(crate) zerr: f64,
}

/// The model of row `i` of a call on logits `x`, written from the crate docs.
pub(crate) fn model(ctx: &Ctx<'_>, x: &[f32], i: usize) -> Expect {
    let visible: Vec<bool> = (0..x.len())
        .map(|j| ctx.band.visible(i, j) && ctx.cols.visible(j))
        .collect();
    let z: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(j, &x)| {
            let b = ctx.bias.map(|b| b[j]);
            if !visible[j] || x == f32::NEG_INFINITY || b == Some(f32::NEG_INFINITY) {
                f32::NEG_INFINITY
            } else if ctx.cap != 0.0 {
                // The capped score: the kernel's f32 argument, `c tanh` exactly, rounded once,
                // then the bias added in f32 as the kernel does.
                let a = x * (ctx.scale / ctx.cap);
                let zc = (f64::from(ctx.cap) * f64::from(a).tanh()) as f32;
                b.map_or(zc, |b| zc + b)
            } else {
                // IEEE multiply then add; no bias: no add (so -0.0 stays -0.0).
                let sx = ctx.scale * x;
                b.map_or(sx, |b| sx + b)
            }
        })
        .collect();
    // The sink is one more score, with no column.
    let sink = ctx.sink;
    let kind = if z.iter().any(|v| v.is_nan()) || sink.is_nan() {
        Kind::Nan
    } else {
        let m = z.iter().copied().fold(sink, f32::max);
        if m == f32::NEG_INFINITY {
            Kind::Empty
        } else if m == f32::INFINITY {
            let k = z.iter().chain([&sink]).filter(|&&v| v == f32::INFINITY);
            Kind::Inf(k.count())
        } else {
            let s = z
                .iter()
                .chain([&sink])
                .map(|&v| (f64::from(v) - f64::from(m)).exp())
                .sum();
            Kind::Ordinary {
                m,
                s,
                visible: visible.iter().filter(|&&v| v).count(),
            }
        }
    };
    // How far a capped score may lie from the model's: the `tanh`'s error and two roundings,
    // times `c`, and one ulp of the score where the bias's addition rounds the two apart.
    let zerr = if ctx.cap == 0.0 {
        0.0
    } else {
        let zmax = z
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0f64, |a, v| a.max(f64::from(v.abs())));
        f64::from(ctx.cap) * (f64::from(dropmax::MAX_TANH_REL_ERROR) + 2.0 * U24) + 2.0 * U24 * zmax
    };
    Expect {
        z,
        visible,
        kind,
        zerr,
    }
}

/// The documented relative term for a row of `visible` columns.
pub(crate) fn rel(visible: usize) -> f64 {
    if visible <= 4096 { 1e-6 } else { 2e-6 }
}

/// `2^-24`, `2^-126`.
pub(crate) const U24: f64 = 1.0 / 16_777_216.0;
pub(crate) const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;

/// The exact output `Y*_j` of an ordinary row and its documented bound
/// `(rel + 2^-24 |z_j - m|) Y*_j + 2^-126 rescale / S`.
pub(crate) fn exact_and_bound(ctx: &Ctx<'_>, e: &Expect, row: u64, j: usize) -> (f64, f64) {
    let Kind::Ordinary { m, s, visible } = e.kind else {
        unreachable!("only for ordinary rows")
    };
    let abs = MIN_NORMAL * f64::from(ctx.rescale()) / s;
    if e.z[j] == f32::NEG_INFINITY {
        return (0.0, abs);
    }
    let d = f64::from(e.z[j]) - f64::from(m);
    let q = ctx.train.map_or(1.0, |(dr, _)| dr.keep_probability());
    let y = if ctx.kept(row, j) {
        d.exp() / s / q
    } else {
        0.0
    };
    // A capped score is within `cap_err` of the model's, which moves `Y_j` by up to twice that,
    // relatively (its own exponent and the sum's).
    let cap = 2.0 * e.zerr + 4.0 * e.zerr * e.zerr;
    (y, (rel(visible) + d.abs() * U24 + cap) * y + abs)
}

/// The model checks of one output row `y` with statistics `st` (row id `row`).
fn check_output(ctx: &Ctx<'_>, e: &Expect, row: u64, y: &[f32], st: RowStats, what: &str) {
    let fail = |msg: String| -> ! { panic!("{what}: {msg}\n  {}", ctx.describe()) };
    for (j, &v) in y.iter().enumerate() {
        if !e.visible[j] && v.to_bits() != 0 {
            fail(format!("masked column {j} is {v:?}, not +0"));
        }
    }
    match e.kind {
        Kind::Nan => {
            if !st.max.is_nan() || !st.sum.is_nan() {
                fail(format!("NaN row: stats {st:?}"));
            }
            for (j, &v) in y.iter().enumerate() {
                let ok = if e.z[j] == f32::NEG_INFINITY {
                    v.to_bits() == 0
                } else {
                    v.is_nan()
                };
                if !ok {
                    fail(format!("NaN row: column {j} (z = {:?}) is {v:?}", e.z[j]));
                }
            }
        }
        Kind::Empty => {
            if st.max != f32::NEG_INFINITY || st.sum.to_bits() != 0 {
                fail(format!("empty row: stats {st:?}"));
            }
            if let Some(j) = y.iter().position(|v| v.to_bits() != 0) {
                fail(format!("empty row: column {j} is {:?}", y[j]));
            }
        }
        Kind::Inf(k) => {
            if st.max != f32::INFINITY || st.sum != k as f32 {
                fail(format!("+inf row with {k} infinite scores: stats {st:?}"));
            }
            let share = (f64::from(ctx.rescale()) / k as f64) as f32;
            for (j, &v) in y.iter().enumerate() {
                let want = if e.z[j] == f32::INFINITY && ctx.kept(row, j) {
                    share
                } else {
                    0.0
                };
                if v.to_bits() != want.to_bits() {
                    fail(format!("+inf row: column {j} is {v:?}, want {want:?}"));
                }
            }
        }
        Kind::Ordinary { m, s, visible } => {
            let cap = e.zerr;
            if (ctx.cap == 0.0 && st.max != m)
                || (f64::from(st.max) - f64::from(m)).abs() > cap + 2.0 * U24 * f64::from(m).abs()
            {
                fail(format!("max {:?}, want {m:?}", st.max));
            }
            let sum_tol = (rel(visible) + 87.4 * U24 + 3.0 * cap + 9.0 * cap * cap) * s;
            if (f64::from(st.sum) - s).abs() > sum_tol {
                fail(format!("sum {:?}, exact {s:?}", st.sum));
            }
            let rescale = ctx.rescale();
            let (mut total, mut total_bound) = (0.0f64, 1e-12);
            for (j, &v) in y.iter().enumerate() {
                if !e.visible[j] {
                    continue;
                }
                if !(v.to_bits() == 0 || (v.is_finite() && v > 0.0)) {
                    fail(format!("column {j} is {v:?}: not +0 or finite positive"));
                }
                if f64::from(v) > f64::from(rescale) * (1.0 + 1e-6) {
                    fail(format!("column {j} is {v:?} > rescale {rescale:?}"));
                }
                let (z, kept) = (e.z[j], ctx.kept(row, j));
                if v != 0.0 && (z == f32::NEG_INFINITY || !kept) {
                    fail(format!("column {j} is {v:?} but z = {z:?}, kept = {kept}"));
                }
                if v == 0.0
                    && kept
                    && z > f32::NEG_INFINITY
                    && f64::from(z - m) >= -87.0 + 4.0 * cap
                {
                    fail(format!("column {j} is 0 but kept with z - m = {:?}", z - m));
                }
                let (exact, bound) = exact_and_bound(ctx, e, row, j);
                if (f64::from(v) - exact).abs() > bound {
                    fail(format!(
                        "column {j} is {v:?}, exact {exact:?}, error {:e} > bound {bound:e}",
                        f64::from(v) - exact
                    ));
                }
                total += f64::from(v);
                total_bound += bound;
            }
            // The columns' share: all but the sink's.
            let share = 1.0 - (f64::from(ctx.sink) - f64::from(m)).exp() / s;
            if ctx.train.is_none() && (total - share).abs() > total_bound {
                fail(format!(
                    "eval row sums to {total:?}, want {share:?}, bound {total_bound:e}"
                ));
            }
        }
    }
}

/// A variant's output row `g` against the scalar reference `w`: special rows bit-identical,
/// ordinary rows with the same zeros and values within twice the documented bound.
#[allow(clippy::too_many_arguments)]
fn check_against_scalar(
    ctx: &Ctx<'_>,
    e: &Expect,
    row: u64,
    (w, ws): (&[f32], RowStats),
    (g, gs): (&[f32], RowStats),
    what: &str,
) {
    let fail = |msg: String| -> ! { panic!("{what} vs scalar: {msg}\n  {}", ctx.describe()) };
    match e.kind {
        Kind::Ordinary { m, s, visible } => {
            // With a cap the tables' `tanh`s differ within their bound: so do the maxima, and
            // zeros may differ where `z - m` is within that of the flush to 0 at -87.34.
            let cap = e.zerr;
            if (ctx.cap == 0.0 && gs.max != ws.max)
                || (f64::from(gs.max) - f64::from(ws.max)).abs()
                    > 2.0 * cap + 4.0 * U24 * f64::from(m).abs()
            {
                fail(format!("max {:?} vs {:?}", gs.max, ws.max));
            }
            let sum_tol = 2.0 * (rel(visible) + 87.4 * U24 + 3.0 * cap + 9.0 * cap * cap) * s;
            if (f64::from(gs.sum) - f64::from(ws.sum)).abs() > sum_tol {
                fail(format!("sum {:?} vs {:?}", gs.sum, ws.sum));
            }
            for j in 0..w.len() {
                let near_cutoff = f64::from(e.z[j] - m) < -87.0 + 4.0 * cap;
                if (w[j] == 0.0) != (g[j] == 0.0) && !(ctx.cap != 0.0 && near_cutoff) {
                    fail(format!(
                        "column {j}: zeros differ ({:?} vs {:?})",
                        g[j], w[j]
                    ));
                }
                let (_, bound) = exact_and_bound(ctx, e, row, j);
                if (f64::from(g[j]) - f64::from(w[j])).abs() > 2.0 * bound {
                    fail(format!("column {j}: {:?} vs {:?}", g[j], w[j]));
                }
            }
        }
        _ => {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if bits(g) != bits(w)
                || (gs.max.to_bits(), gs.sum.to_bits()) != (ws.max.to_bits(), ws.sum.to_bits())
            {
                fail(format!("special row differs: {gs:?} vs {ws:?}"));
            }
        }
    }
}

pub(crate) fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

pub(crate) fn stats_bits(s: &[RowStats]) -> Vec<(u32, u32)> {
    s.iter()
        .map(|s| (s.max.to_bits(), s.sum.to_bits()))
        .collect()
}

pub(crate) fn scale_of(s: &ScaleIn) -> f32 {
    match s {
        ScaleIn::Common(i) => COMMON_SCALES[usize::from(*i) % COMMON_SCALES.len()],
        ScaleIn::Small(v) => f32::from(*v) / 1024.0,
        ScaleIn::Bits(b) => b.get(),
    }
}

pub(crate) fn p_of(p: &PIn) -> f64 {
    match p {
        PIn::Common(i) => COMMON_PS[usize::from(*i) % COMMON_PS.len()],
        PIn::Unit(v) => (v >> 11) as f64 / 9_007_199_254_740_992.0,
        PIn::Threshold((k, half)) => (f64::from(*k) + if *half { 0.5 } else { 0.0 }) / TWO_POW_32,
        PIn::NearOne(k) => 1.0 - f64::from(*k) / 1_099_511_627_776.0,
        PIn::Bits(b) => b.get(),
    }
}

/// `Dropout`'s documented arithmetic.
pub(crate) fn check_dropout(d: &Dropout, p: f64) {
    let t = (p * TWO_POW_32).round() as u64;
    assert_eq!(d.threshold(), t, "threshold of p = {p:?}");
    let kept = (1u64 << 32) - t;
    assert_eq!(
        d.keep_probability(),
        kept as f64 / TWO_POW_32,
        "q of p = {p:?}"
    );
    let rescale = if kept == 0 {
        f32::INFINITY
    } else {
        (TWO_POW_32 / kept as f64) as f32
    };
    assert_eq!(
        d.rescale().to_bits(),
        rescale.to_bits(),
        "rescale of p = {p:?}"
    );
    assert_eq!(d.keeps_all(), t == 0);
    assert_eq!(d.drops_all(), t == 1 << 32);
    assert_eq!(d.p().to_bits(), p.to_bits());
}

/// Runs every check on one input.
pub fn check(input: &ForwardInput) {
    check_with(input, &|_, _| {});
}

/// [`check`], with each output row passed through `tamper` before it is checked.
pub fn check_with(input: &ForwardInput, tamper: Tamper<'_>) {
    let n = match input.len {
        Len::Short(v) => usize::from(v),
        Len::Long(v) => usize::from(v) % (MAX_LEN + 1),
    };
    let start = usize::from(input.start) % 64;
    let y_start = usize::from(input.y_start) % 64;
    let scale = scale_of(&input.scale);

    let train = match &input.mode {
        ModeIn::Eval => None,
        ModeIn::Train(t) => {
            let p = p_of(&t.p);
            match Dropout::new(p) {
                Ok(d) => {
                    assert!((0.0..=1.0).contains(&p), "Dropout::new({p:?}) accepted");
                    check_dropout(&d, p);
                    Some((d, DropoutKey::new(t.seed, t.offset)))
                }
                Err(e) => {
                    assert!(!(0.0..=1.0).contains(&p), "Dropout::new({p:?}) refused");
                    assert_eq!(e, Error::InvalidProbability);
                    return;
                }
            }
        }
    };

    let band = Band::resolve(&input.mask, n);
    let cols = Cols::resolve(&input.mask.columns, n);
    let bias: Option<Vec<f32>> = input.bias.as_ref().map(|b| {
        let mut v = vec![0.0; adjust(n, &b.len)];
        fill(&b.fill, &mut v);
        v
    });
    let ctx = Ctx {
        n,
        scale,
        train,
        row: input.row,
        band,
        cols: &cols,
        bias: bias.as_deref(),
        sink: input.sink.as_ref().map_or(f32::NEG_INFINITY, val),
        cap: input.softcap.as_ref().map_or(0.0, val),
        tamper,
    };

    if let CallIn::Apply = input.call {
        return check_apply(&ctx, input, start);
    }

    let base = match train {
        None => SoftmaxDropout::eval(scale),
        Some((d, key)) => SoftmaxDropout::train(scale, d, key),
    };
    let base = match base {
        Ok(op) => {
            assert!(scale.is_finite(), "scale {scale:?} accepted");
            op
        }
        Err(e) => {
            assert!(!scale.is_finite(), "scale {scale:?} refused");
            assert_eq!(e, Error::NonFiniteScale);
            return;
        }
    };
    let mut op = base
        .with_mask(band.mask(&input.mask.band, 0, &cols))
        .with_sink(ctx.sink);
    if input.softcap.is_some() {
        // The documented condition: finite, positive, and `scale / c` finite.
        let valid_cap = ctx.cap.is_finite() && ctx.cap > 0.0 && (scale / ctx.cap).is_finite();
        match op.with_softcap(ctx.cap) {
            Ok(capped) => {
                assert!(valid_cap, "cap {:?} accepted", ctx.cap);
                // Where `c tanh(.) + b` can reach f32's overflow, whether a score rounds to
                // `+inf` depends on the last bit of the `tanh`, which the model (within the
                // bound, not bit for bit) cannot say: such inputs are left to the no-panic
                // check of the calls below with the cap's extremes tested elsewhere.
                let huge = 2f32.powi(100);
                if ctx.cap > huge || ctx.bias.is_some_and(|b| b.iter().any(|v| v.abs() > huge)) {
                    let mut y = vec![0.0; ctx.n];
                    let x = logits(&input.data, 0, ctx.n);
                    let _ = capped.forward(ctx.row, &x[..ctx.n], &mut y);
                    return;
                }
                op = capped;
            }
            Err(e) => {
                assert!(!valid_cap, "cap {:?} refused", ctx.cap);
                assert_eq!(e, Error::InvalidSoftcap);
                return;
            }
        }
    }
    if let Some(b) = ctx.bias {
        op = op.with_bias(b);
    }
    match &input.call {
        CallIn::Row(adj) => check_row_call(&ctx, &op, input, start, y_start, adjust(n, adj)),
        CallIn::Rows(r) => check_rows_call(&ctx, &op, input, r, start, y_start),
        CallIn::Apply => unreachable!(),
    }
}

/// The logits buffer: `len` values at `start`, guards of NaN around them.
pub(crate) fn logits(data: &Fill, start: usize, len: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; start + len + 5];
    fill(data, &mut buf[start..start + len]);
    buf
}

/// The result of one variant on a `forward` / `forward_in_place` pair.
struct RowRun {
    res: Result<RowStats, Error>,
    ybuf: Vec<f32>,
    ip_res: Result<RowStats, Error>,
    ipbuf: Vec<f32>,
}

fn run_row<K: RowKernel>(
    op: &SoftmaxDropout<'_, Best>,
    row: u64,
    xbuf: &[f32],
    (start, n): (usize, usize),
    (y_start, y_len): (usize, usize),
) -> RowRun {
    let op = op.with_kernel::<K>();
    let mut ybuf = vec![SENTINEL; y_start + y_len + 3];
    let res = op.forward(
        row,
        &xbuf[start..start + n],
        &mut ybuf[y_start..y_start + y_len],
    );
    let mut ipbuf = xbuf.to_vec();
    let ip_res = op.forward_in_place(row, &mut ipbuf[start..start + n]);
    RowRun {
        res,
        ybuf,
        ip_res,
        ipbuf,
    }
}

/// The name of every kernel table this CPU runs, in the order of [`each_kernel!`]: the scalar
/// oracle first, then the portable tables, the x86-64 tables the CPU supports (a forced table
/// the CPU lacks answers `Error::UnsupportedKernel`, which is tested in the main crate), and the
/// run-time choice last.
pub(crate) fn variants() -> Vec<&'static str> {
    let mut v = vec!["scalar", "wide4", "wide8", "wide16"];
    #[cfg(target_arch = "x86_64")]
    {
        if <dropmax::Avx2 as RowKernel>::is_supported() {
            v.push("avx2");
        }
        if <dropmax::Avx512 as RowKernel>::is_supported() {
            v.push("avx512");
        }
    }
    v.push("best");
    v
}

/// `vec![f::<K>(args), ...]` for every kernel `K` of [`variants`], in its order.
macro_rules! each_kernel {
    ($f:ident($($a:expr),* $(,)?)) => {{
        let mut v = vec![
            $f::<dropmax::Scalar>($($a),*),
            $f::<dropmax::Wide4>($($a),*),
            $f::<dropmax::Wide8>($($a),*),
            $f::<dropmax::Wide16>($($a),*),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if <dropmax::Avx2 as dropmax::RowKernel>::is_supported() {
                v.push($f::<dropmax::Avx2>($($a),*));
            }
            if <dropmax::Avx512 as dropmax::RowKernel>::is_supported() {
                v.push($f::<dropmax::Avx512>($($a),*));
            }
        }
        v.push($f::<dropmax::Best>($($a),*));
        v
    }};
}
pub(crate) use each_kernel;

fn check_row_call(
    ctx: &Ctx<'_>,
    op: &SoftmaxDropout<'_, Best>,
    input: &ForwardInput,
    start: usize,
    y_start: usize,
    y_len: usize,
) {
    let n = ctx.n;
    let xbuf = logits(&input.data, start, n);
    let at = (start, n);
    let yat = (y_start, y_len);
    let runs = each_kernel!(run_row(op, ctx.row, &xbuf, at, yat));
    let err_ip = !ctx.lengths_ok();
    let err = err_ip || y_len != n;
    let e = (!err_ip).then(|| model(ctx, &xbuf[start..start + n], 0));
    let mut outs: Vec<(Vec<f32>, RowStats)> = Vec::new();
    for (name, mut r) in variants().into_iter().zip(runs) {
        let what = format!("{name} forward (y_len {y_len})");
        assert_eq!(
            r.res.is_err(),
            err,
            "{what}: {:?}\n  {}",
            r.res,
            ctx.describe()
        );
        assert_eq!(r.ip_res.is_err(), err_ip, "{what} in place: {:?}", r.ip_res);
        if let Err(e) = r.res {
            assert!(matches!(e, Error::LengthMismatch { .. }), "{what}: {e:?}");
            assert!(
                r.ybuf.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
                "{what}: error {e:?} but the output was written\n  {}",
                ctx.describe()
            );
        }
        let (Ok(ip), Some(e)) = (r.ip_res, &e) else {
            assert!(
                bits_equal(&r.ipbuf, &xbuf),
                "{what} in place: error but written"
            );
            continue;
        };
        let y_ip = &mut r.ipbuf[start..start + n];
        (ctx.tamper)(name, y_ip);
        if let Ok(st) = r.res {
            let y = &mut r.ybuf[y_start..y_start + n];
            (ctx.tamper)(name, y);
            assert!(
                bits_equal(y, y_ip),
                "{what}: in place differs from out of place\n  {}",
                ctx.describe()
            );
            assert_eq!(
                stats_bits(&[st]),
                stats_bits(&[ip]),
                "{what}: in-place stats differ"
            );
        }
        check_output(ctx, e, ctx.row, y_ip, ip, &format!("{what} in place"));
        outs.push((y_ip.to_vec(), ip));
    }
    if let (Some(e), Some(((w, ws), rest))) = (&e, outs.split_first()) {
        for (name, (g, gs)) in variants()[1..].iter().zip(rest) {
            check_against_scalar(ctx, e, ctx.row, (w, *ws), (g, *gs), name);
        }
    }
}

/// The result of one variant on a `forward_rows` / `forward_rows_in_place` pair.
struct RowsRun {
    res: Result<(), Error>,
    ybuf: Vec<f32>,
    stats: Option<Vec<RowStats>>,
    ip_res: Result<(), Error>,
    ipbuf: Vec<f32>,
    ip_stats: Option<Vec<RowStats>>,
    /// `forward` row by row, when the call succeeded: outputs and statistics.
    by_row: Vec<(Vec<f32>, RowStats)>,
}

const NO_STATS: RowStats = RowStats {
    max: SENTINEL,
    sum: SENTINEL,
};

#[allow(clippy::too_many_arguments)]
fn run_rows<K: RowKernel>(
    ctx: &Ctx<'_>,
    op: &SoftmaxDropout<'_, Best>,
    kind: &BandIn,
    xbuf: &[f32],
    (start, x_len): (usize, usize),
    (y_start, y_len): (usize, usize),
    stats_len: Option<usize>,
) -> RowsRun {
    let (n, first) = (ctx.n, ctx.row);
    let op = op.with_kernel::<K>();
    let x = &xbuf[start..start + x_len];
    let mut ybuf = vec![SENTINEL; y_start + y_len + 3];
    let mut stats = stats_len.map(|l| vec![NO_STATS; l]);
    let res = op.forward_rows(
        first,
        n,
        x,
        &mut ybuf[y_start..y_start + y_len],
        stats.as_deref_mut(),
    );
    let mut ipbuf = xbuf.to_vec();
    let mut ip_stats = stats_len.map(|l| vec![NO_STATS; l]);
    let ip_res = op.forward_rows_in_place(
        first,
        n,
        &mut ipbuf[start..start + x_len],
        ip_stats.as_deref_mut(),
    );
    let mut by_row = Vec::new();
    if ip_res.is_ok() && n > 0 {
        for (i, xr) in x.chunks_exact(n).enumerate() {
            let mut o = op.with_mask(ctx.band.mask(kind, i, ctx.cols));
            if let Some(b) = ctx.bias {
                o = o.with_bias(b);
            }
            let mut y = vec![SENTINEL; n];
            let st = o
                .forward(first.wrapping_add(i as u64), xr, &mut y)
                .expect("forward of one row of a valid matrix");
            by_row.push((y, st));
        }
    }
    RowsRun {
        res,
        ybuf,
        stats,
        ip_res,
        ipbuf,
        ip_stats,
        by_row,
    }
}

fn check_rows_call(
    ctx: &Ctx<'_>,
    op: &SoftmaxDropout<'_, Best>,
    input: &ForwardInput,
    r: &RowsIn,
    start: usize,
    y_start: usize,
) {
    let n = ctx.n;
    let rows = usize::from(r.rows) % if n > 1024 { 3 } else { 9 };
    let x_len = adjust(rows * n, &r.x_len);
    let y_len = adjust(x_len, &r.y_len);
    let need_rows = x_len.checked_div(n).unwrap_or(0);
    let stats_len = r.stats.as_ref().map(|a| adjust(need_rows, a));
    let xbuf = logits(&input.data, start, x_len);
    let shape_ok = x_len.is_multiple_of(n); // cols = 0: only an empty matrix
    let err_ip = !ctx.lengths_ok() || !shape_ok || stats_len.is_some_and(|l| l != need_rows);
    let err = err_ip || y_len != x_len;
    let kind = &input.mask.band;
    let at = (start, x_len);
    let yat = (y_start, y_len);
    let runs = each_kernel!(run_rows(ctx, op, kind, &xbuf, at, yat, stats_len));
    let models: Vec<Expect> = if err_ip || n == 0 {
        Vec::new()
    } else {
        xbuf[start..start + x_len]
            .chunks_exact(n)
            .enumerate()
            .map(|(i, xr)| model(ctx, xr, i))
            .collect()
    };
    let mut outs: Vec<Vec<(Vec<f32>, RowStats)>> = Vec::new();
    for (name, mut r) in variants().into_iter().zip(runs) {
        let what = format!(
            "{name} forward_rows ({rows} rows, x_len {x_len}, y_len {y_len}, stats {stats_len:?})"
        );
        assert_eq!(
            r.res.is_err(),
            err,
            "{what}: {:?}\n  {}",
            r.res,
            ctx.describe()
        );
        assert_eq!(
            r.ip_res.is_err(),
            err_ip,
            "{what} in place: {:?}\n  {}",
            r.ip_res,
            ctx.describe()
        );
        if let Err(e) = r.res {
            assert!(matches!(e, Error::LengthMismatch { .. }), "{what}: {e:?}");
            assert!(
                r.ybuf.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
                "{what}: error but written"
            );
            assert!(
                r.stats
                    .iter()
                    .flatten()
                    .all(|s| stats_bits(&[*s]) == stats_bits(&[NO_STATS])),
                "{what}: error but stats written"
            );
        }
        if let Err(e) = r.ip_res {
            assert!(matches!(e, Error::LengthMismatch { .. }), "{what}: {e:?}");
            assert!(
                bits_equal(&r.ipbuf, &xbuf),
                "{what} in place: error but written"
            );
            assert!(
                r.ip_stats
                    .iter()
                    .flatten()
                    .all(|s| stats_bits(&[*s]) == stats_bits(&[NO_STATS])),
                "{what} in place: error but stats written"
            );
            continue;
        }
        if let Some(s) = &r.ip_stats {
            assert_eq!(s.len(), r.by_row.len());
        }
        let mut rows_out = Vec::new();
        for (i, (yr, st)) in r.by_row.iter_mut().enumerate() {
            let y_ip = &mut r.ipbuf[start + i * n..start + (i + 1) * n];
            (ctx.tamper)(name, y_ip);
            (ctx.tamper)(name, yr);
            let row_what = format!("{what} row {i}");
            assert!(
                bits_equal(y_ip, yr),
                "{row_what}: in place differs from forward row by row\n  {}",
                ctx.describe()
            );
            if let Some(s) = &r.ip_stats {
                assert_eq!(
                    stats_bits(&[s[i]]),
                    stats_bits(&[*st]),
                    "{row_what}: in-place stats differ from forward"
                );
            }
            if r.res.is_ok() {
                let y = &mut r.ybuf[y_start + i * n..y_start + (i + 1) * n];
                (ctx.tamper)(name, y);
                assert!(
                    bits_equal(y, yr),
                    "{row_what}: differs from forward row by row\n  {}",
                    ctx.describe()
                );
                if let Some(s) = &r.stats {
                    assert_eq!(
                        stats_bits(&[s[i]]),
                        stats_bits(&[*st]),
                        "{row_what}: stats differ from forward"
                    );
                }
            }
            let row_id = ctx.row.wrapping_add(i as u64);
            check_output(ctx, &models[i], row_id, yr, *st, &row_what);
            rows_out.push((yr.clone(), *st));
        }
        outs.push(rows_out);
    }
    if let Some((w, rest)) = outs.split_first() {
        for (name, g) in variants()[1..].iter().zip(rest) {
            for (i, e) in models.iter().enumerate() {
                let row_id = ctx.row.wrapping_add(i as u64);
                let what = format!("{name} forward_rows row {i}");
                check_against_scalar(ctx, e, row_id, (&w[i].0, w[i].1), (&g[i].0, g[i].1), &what);
            }
        }
    }
}

fn run_apply<K: RowKernel>(d: &Dropout, key: DropoutKey, row: u64, x: &[f32]) -> Vec<f32> {
    let mut v = x.to_vec();
    d.apply_with::<K>(key, row, &mut v)
        .expect("apply on a short row");
    v
}

/// `Dropout::apply`: `y_j = keep(row, j) ? x_j * rescale : 0`, bit for bit, every variant.
fn check_apply(ctx: &Ctx<'_>, input: &ForwardInput, start: usize) {
    let Some((d, key)) = ctx.train else {
        return;
    };
    let n = ctx.n;
    let xbuf = logits(&input.data, start, n);
    let x = &xbuf[start..start + n];
    let row = ctx.row;
    let mut runs = each_kernel!(run_apply(&d, key, row, x));
    // The default entry (`apply`, no kernel named) stands for `best`.
    if let Some(best) = runs.last_mut() {
        best.copy_from_slice(x);
        d.apply(key, row, best).expect("apply on a short row");
    }
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(j, &v)| {
            if keep(&d, key, row, j as u32) {
                v * d.rescale()
            } else {
                0.0
            }
        })
        .collect();
    for (name, mut y) in variants().into_iter().zip(runs) {
        (ctx.tamper)(name, &mut y);
        if let Some(j) = (0..n).find(|&j| y[j].to_bits() != want[j].to_bits()) {
            panic!(
                "{name} Dropout::apply: column {j} is {:?}, want {:?} (x = {:?})\n  {}",
                y[j],
                want[j],
                x[j],
                ctx.describe()
            );
        }
    }
}
