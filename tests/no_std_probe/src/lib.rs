//! The no_std / no-alloc / no-panic probe of dropmax (see `check.sh` for how it is used).
//!
//! Every `extern "C"` function below takes its inputs as arguments, so the optimiser can assume
//! nothing about them: every public kernel and function of dropmax is called on opaque inputs,
//! in every mode, with every mask kind, with and without a bias, through every kernel variant.
//!
//! - **No `std`**: this crate is `#![no_std]` and defines the `panic_impl` lang item (the
//!   `#[panic_handler]` below). If any crate in the graph links `std`, std's own `panic_impl`
//!   collides with it: rustc stops with `error[E0152]: found duplicate lang item `panic_impl``.
//! - **No `alloc`**: there is no `#[global_allocator]`. If any crate in the graph links `alloc`,
//!   rustc refuses to produce the staticlib: `error: no global memory allocator found but one is
//!   required`. `check.sh` also rejects allocator, `std::` and `alloc::` symbols in the output
//!   and any alloc/std source file in its line tables (in case some dependency brings an
//!   allocator along).
//! - **No reachable panic**: the panic handler calls `dropmax_probe_panic_reached`, which is
//!   declared here and defined nowhere. Built with fat LTO, `opt-level = 3` and one codegen unit,
//!   only code reachable from the exports below survives; if any panic call survives, so does the
//!   call to the undefined symbol, and linking the staticlib into a C program fails.

#![no_std]
#![no_main]
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
// The firmware builds export only their own entry points; the others' helpers go unused.
#![cfg_attr(feature = "firmware", allow(dead_code, unused_imports, unused_macros))]

#[cfg(feature = "canary-alloc")]
extern crate alloc;
#[cfg(feature = "canary-std")]
extern crate std;

use core::panic::PanicInfo;
use core::slice;

use dropmax::philox::{
    Philox4x32, philox4x32_10, philox4x32_10_x4, philox4x32_10_x8, philox4x32_10_x16,
};
use dropmax::wide::{u32x4, u32x8, u32x16};
use dropmax::{
    AttentionBatch, AttentionShape, Best, Dropout, DropoutKey, Mask, MatrixProbabilities, Mode,
    Probabilities, RowKernel, RowStats, Scalar, SoftmaxDropout, Wide4, Wide8, Wide16, keep,
    mask_uniform,
};
use rand_core::{Rng, SeedableRng};

// The C side passes `RowStats` as pairs of floats.
const _: () = assert!(size_of::<RowStats>() == 8 && align_of::<RowStats>() <= 4);

unsafe extern "C" {
    /// Declared, never defined: a program that links this probe fails to link if any call to the
    /// panic handler survives optimisation.
    fn dropmax_probe_panic_reached() -> !;
}

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    // SAFETY: never defined, so never called: the link fails first.
    unsafe { dropmax_probe_panic_reached() }
}

/// A slice from a C pointer and length (empty for a null pointer).
unsafe fn view<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() {
        &[]
    } else {
        // SAFETY: the C caller passes a valid buffer of `len` elements.
        unsafe { slice::from_raw_parts(ptr, len) }
    }
}

/// A mutable slice from a C pointer and length (empty for a null pointer).
unsafe fn view_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if ptr.is_null() {
        &mut []
    } else {
        // SAFETY: the C caller passes a valid, unaliased buffer of `len` elements.
        unsafe { slice::from_raw_parts_mut(ptr, len) }
    }
}

/// A row's mask chosen at run time: every constructor and combinator of [`Mask`].
fn mask<'a>(
    kind: u32,
    query_pos: usize,
    a: usize,
    b: usize,
    bools: &'a [bool],
    bits: &'a [u8],
) -> Mask<'a> {
    match kind {
        0 => Mask::none(),
        1 => Mask::causal(query_pos),
        2 => Mask::sliding_window(query_pos, a),
        3 => Mask::band(query_pos, a, b),
        4 => Mask::key_len(a),
        5 => Mask::causal(query_pos).with_key_len(a),
        6 => Mask::none().with_columns(bools),
        7 => Mask::band(query_pos, a, b).with_column_bits(bits),
        8 => Mask::sliding_window(query_pos, a).with_columns(bools),
        _ => Mask::default().with_column_bits(bits),
    }
}

/// A fold of everything a call returns, so that no result is dead.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn add(&mut self, v: u64) {
        self.0 = self.0.rotate_left(7) ^ v;
    }
    fn stats(&mut self, s: RowStats) {
        self.add(u64::from(s.max.to_bits()) << 32 | u64::from(s.sum.to_bits()));
        self.add(u64::from(s.lse().to_bits()));
    }
    fn result<T>(&mut self, r: Result<T, dropmax::Error>) -> Option<T> {
        match r {
            Ok(v) => {
                self.add(1);
                Some(v)
            }
            Err(e) => {
                self.add(match e {
                    dropmax::Error::NonFiniteScale => 2,
                    dropmax::Error::InvalidProbability => 3,
                    dropmax::Error::LengthMismatch { expected, found } => {
                        (expected as u64) << 8 ^ found as u64
                    }
                    dropmax::Error::RowTooLong => 5,
                    _ => 6,
                });
                None
            }
        }
    }
}

/// The four row entry points of one configured operation.
fn run_rows<K: RowKernel>(
    op: SoftmaxDropout<'_, K>,
    row: u64,
    cols: usize,
    x: &[f32],
    y: &mut [f32],
    stats: Option<&mut [RowStats]>,
    d: &mut Digest,
) {
    d.add(matches!(op.mode(), Mode::Eval) as u64);
    if let Some(s) = d.result(op.forward(row, x, y)) {
        d.stats(s);
    }
    if let Some(s) = d.result(op.forward_in_place(row, y)) {
        d.stats(s);
    }
    let mut stats = stats;
    d.result(op.forward_rows(row, cols, x, y, stats.as_deref_mut()));
    if let Some(s) = stats.as_deref() {
        for st in s {
            d.stats(*st);
        }
    }
    // Backward with saved and recomputed probabilities, one row and a matrix; split rows.
    let st = RowStats {
        max: x.first().copied().unwrap_or(0.0),
        sum: cols as f32,
    };
    let (dy, dx) = (x, y);
    d.result(op.backward(row, Probabilities::Saved(dy), dy, dx));
    d.result(op.backward(
        row,
        Probabilities::Recompute {
            logits: dy,
            stats: st,
        },
        dy,
        dx,
    ));
    d.result(op.backward_rows(row, cols, MatrixProbabilities::Saved(dy), dy, dx));
    if let Some(g) = d.result(op.backward_sink(row, Probabilities::Saved(dy), st, dy, dx)) {
        d.add(g.to_bits().into());
    }
    if let Some(s) = stats.as_deref() {
        let probs = MatrixProbabilities::Saved(dy);
        if let Some(g) = d.result(op.backward_rows_sink(row, cols, probs, s, dy, dx)) {
            d.add(g.to_bits().into());
        }
        d.result(op.backward_rows(
            row,
            cols,
            MatrixProbabilities::Recompute {
                logits: dy,
                stats: s,
            },
            dy,
            dx,
        ));
    }
    if let Some(s) = d.result(op.chunk_stats(cols, dy, dx)) {
        d.stats(s.merge(st));
        d.result(op.forward_chunk(row, cols, s.merge(st), dy, dx));
    }
    d.result(op.forward_rows_in_place(row, cols, dx, stats));
}

/// The fused operation: `mode` 0 = `eval`, 1 = `train`, 2 = `new(Mode::Train)`,
/// other = `new(Mode::Eval)`; `kernel` 0 = default ([`Best`]), 1..=7 = `with_kernel` Scalar, Wide4, Wide8, Wide16, Avx2,
/// Avx512 (x86-64), Best;
/// `mask_kind` as in [`mask`]; a null `bias` means no bias; a null `stats` means none.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_softmax(
    kernel: u32,
    mode: u32,
    scale: f32,
    p: f64,
    seed: u64,
    offset: u64,
    row: u64,
    mask_kind: u32,
    query_pos: usize,
    mask_a: usize,
    mask_b: usize,
    bools: *const bool,
    bools_len: usize,
    bits: *const u8,
    bits_len: usize,
    bias: *const f32,
    bias_len: usize,
    cols: usize,
    x: *const f32,
    y: *mut f32,
    len: usize,
    stats: *mut RowStats,
    stats_len: usize,
) -> u64 {
    // SAFETY: the C caller passes valid buffers; `x` and `y` do not overlap.
    let (bools, bits, bias_s, x, y) = unsafe {
        (
            view(bools, bools_len),
            view(bits, bits_len),
            view(bias, bias_len),
            view(x, len),
            view_mut(y, len),
        )
    };
    let stats = if stats.is_null() {
        None
    } else {
        // SAFETY: as above.
        Some(unsafe { view_mut(stats, stats_len) })
    };
    let mut d = Digest(0);
    let key = DropoutKey::new(seed, offset);
    let op = match mode {
        0 => SoftmaxDropout::eval(scale),
        1 => Dropout::new(p).and_then(|dr| SoftmaxDropout::train(scale, dr, key)),
        2 => Dropout::new(p)
            .and_then(|dropout| SoftmaxDropout::new(scale, Mode::Train { dropout, key })),
        _ => SoftmaxDropout::new(scale, Mode::Eval),
    };
    let Some(op) = d.result(op) else {
        return d.0;
    };
    let op = op.with_mask(mask(mask_kind, query_pos, mask_a, mask_b, bools, bits));
    let op = if bias.is_null() {
        op
    } else {
        op.with_bias(bias_s)
    };
    // Any sink, from the arguments (`-inf`, NaN and `+inf` included).
    let op = op.with_sink(f32::from_bits((seed >> 32) as u32));
    // Any soft-cap from the arguments: a valid one is taken, the others refused.
    let op = op.with_softcap(f32::from_bits(seed as u32)).unwrap_or(op);
    match kernel {
        0 => run_rows(op, row, cols, x, y, stats, &mut d),
        1 => run_rows(op.with_kernel::<Scalar>(), row, cols, x, y, stats, &mut d),
        2 => run_rows(op.with_kernel::<Wide4>(), row, cols, x, y, stats, &mut d),
        3 => run_rows(op.with_kernel::<Wide8>(), row, cols, x, y, stats, &mut d),
        4 => run_rows(op.with_kernel::<Wide16>(), row, cols, x, y, stats, &mut d),
        #[cfg(target_arch = "x86_64")]
        5 => run_rows(
            op.with_kernel::<dropmax::Avx2>(),
            row,
            cols,
            x,
            y,
            stats,
            &mut d,
        ),
        #[cfg(target_arch = "x86_64")]
        6 => run_rows(
            op.with_kernel::<dropmax::Avx512>(),
            row,
            cols,
            x,
            y,
            stats,
            &mut d,
        ),
        _ => run_rows(op.with_kernel::<Best>(), row, cols, x, y, stats, &mut d),
    }
    d.0
}

/// Dropout alone and the mask's definition: `Dropout::new` and its accessors, `apply`,
/// `apply_with` (kernel as in [`dropmax_probe_softmax`]), `keep`, `mask_uniform`.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_dropout(
    kernel: u32,
    p: f64,
    seed: u64,
    offset: u64,
    row: u64,
    col: u32,
    values: *mut f32,
    len: usize,
) -> u64 {
    // SAFETY: the C caller passes a valid buffer.
    let values = unsafe { view_mut(values, len) };
    let mut d = Digest(0);
    let key = DropoutKey::new(seed, offset);
    d.add(u64::from(mask_uniform(key, row, col)));
    let Some(dr) = d.result(Dropout::new(p)) else {
        return d.0;
    };
    d.add(dr.p().to_bits() ^ dr.threshold() ^ dr.keep_probability().to_bits());
    d.add(u64::from(dr.rescale().to_bits()) ^ dr.keeps_all() as u64 ^ (dr.drops_all() as u64) << 1);
    d.add(keep(&dr, key, row, col) as u64);
    // The packed mask export, over the values' bytes.
    let bytes = len.min(64);
    let mut packed = [0u8; 64];
    if let Some(out) = packed.get_mut(..bytes) {
        d.result(dr.mask_bits(key, row, out));
    }
    d.add(
        packed
            .iter()
            .fold(0u64, |a, &b| a.rotate_left(5) ^ u64::from(b)),
    );
    let r = match kernel {
        0 => dr.apply(key, row, values),
        1 => dr.apply_with::<Scalar>(key, row, values),
        2 => dr.apply_with::<Wide4>(key, row, values),
        3 => dr.apply_with::<Wide8>(key, row, values),
        4 => dr.apply_with::<Wide16>(key, row, values),
        #[cfg(target_arch = "x86_64")]
        5 => dr.apply_with::<dropmax::Avx2>(key, row, values),
        #[cfg(target_arch = "x86_64")]
        6 => dr.apply_with::<dropmax::Avx512>(key, row, values),
        _ => dr.apply_with::<Best>(key, row, values),
    };
    d.result(r);
    d.0
}

/// `RowStats::lse` (and `RowStats::EMPTY`).
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_probe_lse(max: f32, sum: f32, empty: bool) -> f32 {
    let s = if empty {
        RowStats::EMPTY
    } else {
        RowStats { max, sum }
    };
    s.lse()
}

/// One Philox block: `out[0..4] = philox4x32_10(counter[0..4], key[0..2])`.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_philox(
    counter: *const [u32; 4],
    key: *const [u32; 2],
    out: *mut [u32; 4],
) {
    // SAFETY: the C caller passes valid arrays.
    unsafe { *out = philox4x32_10(*counter, *key) }
}

/// Reads `4 * N` words, word-major (`ctr[w * N + lane]`), as four vectors.
macro_rules! lanes_probe {
    ($name:ident, $f:ident, $v:ident, $n:literal) => {
        /// `N` Philox blocks at once; counters and output word-major (`[w * N + lane]`).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            counter: *const [u32; 4 * $n],
            key: *const [u32; 2],
            out: *mut [u32; 4 * $n],
        ) {
            // SAFETY: the C caller passes valid arrays.
            let (c, k) = unsafe { (&*counter, *key) };
            let ctr: [$v; 4] = core::array::from_fn(|w| {
                $v::new(core::array::from_fn(|l| c[(w * $n + l) % (4 * $n)]))
            });
            let r = $f(ctr, k);
            // SAFETY: as above.
            let out = unsafe { &mut *out };
            for (w, v) in r.iter().enumerate() {
                for (l, x) in v.to_array().into_iter().enumerate() {
                    out[(w * $n + l) % (4 * $n)] = x;
                }
            }
        }
    };
}

#[cfg(not(feature = "firmware"))]
lanes_probe!(dropmax_probe_philox_x4, philox4x32_10_x4, u32x4, 4);
#[cfg(not(feature = "firmware"))]
lanes_probe!(dropmax_probe_philox_x8, philox4x32_10_x8, u32x8, 8);
#[cfg(not(feature = "firmware"))]
lanes_probe!(dropmax_probe_philox_x16, philox4x32_10_x16, u32x16, 16);

/// The sequential generator: constructed by `how` (0 = `new`, 1 = `from_seed`,
/// 2 = `seed_from_u64`, other = `from_rng` of a `new` stream), then `next_u32`, `next_u64`,
/// `fill_bytes(dst)`, `counter`, `key`, `clone`, `==`.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_rng(
    how: u32,
    key: *const [u32; 2],
    counter: *const [u32; 4],
    seed_bytes: *const [u8; 24],
    seed: u64,
    dst: *mut u8,
    dst_len: usize,
) -> u64 {
    // SAFETY: the C caller passes valid buffers.
    let (key, counter, seed_bytes, dst) =
        unsafe { (*key, *counter, *seed_bytes, view_mut(dst, dst_len)) };
    let mut rng = match how {
        0 => Philox4x32::new(key, counter),
        1 => Philox4x32::from_seed(seed_bytes),
        2 => Philox4x32::seed_from_u64(seed),
        _ => Philox4x32::from_rng(&mut Philox4x32::new(key, counter)),
    };
    let mut d = Digest(u64::from(rng.next_u32()));
    d.add(rng.next_u64());
    rng.fill_bytes(dst);
    let c = rng.counter();
    let k = rng.key();
    d.add(u64::from(c[0] ^ c[1] ^ c[2] ^ c[3] ^ k[0] ^ k[1]));
    let copy = rng.clone();
    d.add((copy == rng) as u64);
    d.0
}

/// A `core::fmt::Write` into a fixed buffer (truncating).
struct Text<'a>(&'a mut [u8], usize);

impl core::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if let Some(d) = self.0.get_mut(self.1) {
                *d = b;
                self.1 += 1;
            }
        }
        Ok(())
    }
}

/// `Display` of every `Error` variant: the error of `Dropout::new(p)`, of
/// `SoftmaxDropout::eval(scale)`, or a `LengthMismatch` / `RowTooLong` from the arguments.
/// Writes the message into `dst` (truncated) and returns its length.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_error_display(
    which: u32,
    p: f64,
    scale: f32,
    expected: usize,
    dst: *mut u8,
    len: usize,
) -> usize {
    use core::fmt::Write;
    // SAFETY: the C caller passes a valid buffer.
    let mut out = Text(unsafe { view_mut(dst, len) }, 0);
    let e = match which {
        0 => Dropout::new(p).err(),
        1 => SoftmaxDropout::eval(scale).err(),
        2 => Some(dropmax::Error::LengthMismatch {
            expected,
            found: len,
        }),
        _ => Some(dropmax::Error::RowTooLong),
    };
    if let Some(e) = e {
        let _ = write!(out, "{e}");
    }
    out.1
}

/// The attention batch API: forward, backward saved and recomputed.
#[cfg(not(feature = "firmware"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_batch(
    kernel: u32,
    mode: u32,
    dims: *const usize,
    band: u32,
    past_len: usize,
    window: usize,
    key_lengths: *const usize,
    key_lengths_len: usize,
    bias: *const f32,
    bias_len: usize,
    x: *const f32,
    y: *mut f32,
    len: usize,
    stats: *mut RowStats,
    stats_len: usize,
) -> u64 {
    // SAFETY: the C caller passes valid buffers; `x` and `y` do not overlap.
    let (dims, kl, bias_s, x, y, stats) = unsafe {
        (
            view(dims, 5),
            view(key_lengths, key_lengths_len),
            view(bias, bias_len),
            view(x, len),
            view_mut(y, len),
            view_mut(stats, stats_len),
        )
    };
    let g = |i: usize| dims.get(i).copied().unwrap_or(0);
    let shape = AttentionShape::new(g(0), g(1), g(2), g(3)).with_row_stride(g(4));
    let mut d = Digest(0);
    let Some(op) = d.result(match mode {
        0 => SoftmaxDropout::eval(0.5),
        _ => match Dropout::new(0.1) {
            Ok(dr) => SoftmaxDropout::train(0.5, dr, DropoutKey::new(1, 2)),
            Err(e) => Err(e),
        },
    }) else {
        return d.0;
    };
    let op = if bias.is_null() {
        op
    } else {
        op.with_bias(bias_s)
    };
    fn go<K: RowKernel>(
        b: AttentionBatch<'_, K>,
        x: &[f32],
        y: &mut [f32],
        stats: &mut [RowStats],
        d: &mut Digest,
    ) {
        d.result(b.forward(3, x, y, Some(stats)));
        d.result(b.forward(3, x, y, None));
        d.result(b.backward(3, MatrixProbabilities::Saved(x), x, y));
        d.result(b.backward(3, MatrixProbabilities::Recompute { logits: x, stats }, x, y));
    }
    let b = AttentionBatch::new(op, shape);
    let b = match band {
        0 => b,
        1 => b.causal(past_len),
        _ => b.sliding_window(past_len, window),
    };
    let b = if key_lengths.is_null() {
        b
    } else {
        b.with_key_lengths(kl)
    };
    // Per-head sinks from the bias argument (any length: a wrong one is an error).
    let b = if bias.is_null() {
        b
    } else {
        b.with_sinks(bias_s)
    };
    match kernel {
        0 => go(b, x, y, stats, &mut d),
        _ => {
            let b2 = AttentionBatch::new(op.with_kernel::<Scalar>(), shape).causal(past_len);
            go(b2, x, y, stats, &mut d)
        }
    }
    d.add(u64::from(y.first().map_or(0, |v| v.to_bits())));
    d.0
}

/// Deliberate panic path: must make the link fail (`check.sh` requires it to).
#[cfg(feature = "canary-panic")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_probe_canary_panic(x: *const f32, len: usize, i: usize) -> f32 {
    // SAFETY: the C caller passes a valid buffer.
    let x = unsafe { view(x, len) };
    x[i]
}

/// Deliberate allocation: the build must fail (no global allocator).
#[cfg(feature = "canary-alloc")]
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_probe_canary_alloc(n: usize) -> usize {
    alloc::vec![0u8; n].len()
}

/// Deliberate use of std: the build must fail (duplicate `panic_impl`).
#[cfg(feature = "canary-std")]
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_probe_canary_std(x: f32) -> f32 {
    std::hint::black_box(x)
}

/// The firmware configuration (features `firmware`, `firmware-train`): only the [`Scalar`]
/// kernel, as a firmware build that wants the smallest code selects it; `check.sh` requires that
/// nothing of the wide tables (`wide`'s code, `src/isa/portable.rs`, `src/kernel/vector.rs`)
/// is linked, and measures the code size against `size-budget.txt`.
#[cfg(feature = "firmware")]
mod firmware {
    use super::*;

    /// Inference only: the forward entry points of `SoftmaxDropout::eval` (one row, in place, a
    /// matrix, in place, split rows) and an attention batch's forward, with every mask kind and
    /// an optional bias. `batch_dims` as in `dropmax_probe_batch` (null: no batch call).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn dropmax_probe_fw_eval(
        scale: f32,
        row: u64,
        mask_kind: u32,
        query_pos: usize,
        mask_a: usize,
        mask_b: usize,
        bits: *const u8,
        bits_len: usize,
        bias: *const f32,
        bias_len: usize,
        cols: usize,
        x: *const f32,
        y: *mut f32,
        len: usize,
        stats: *mut RowStats,
        stats_len: usize,
        batch_dims: *const usize,
    ) -> u64 {
        // SAFETY: the C caller passes valid buffers; `x` and `y` do not overlap.
        let (bits, bias_s, x, y, stats, dims) = unsafe {
            (
                view(bits, bits_len),
                view(bias, bias_len),
                view(x, len),
                view_mut(y, len),
                view_mut(stats, stats_len),
                view(batch_dims, 5),
            )
        };
        let mut d = Digest(0);
        let Some(op) = d.result(SoftmaxDropout::eval(scale)) else {
            return d.0;
        };
        let op = op.with_kernel::<Scalar>().with_mask(mask(
            mask_kind,
            query_pos,
            mask_a,
            mask_b,
            &[],
            bits,
        ));
        let op = if bias.is_null() {
            op
        } else {
            op.with_bias(bias_s)
        };
        if let Some(s) = d.result(op.forward(row, x, y)) {
            d.stats(s);
        }
        if let Some(s) = d.result(op.forward_in_place(row, y)) {
            d.stats(s);
        }
        d.result(op.forward_rows(row, cols, x, y, Some(&mut *stats)));
        d.result(op.forward_rows_in_place(row, cols, y, None));
        if let Some(s) = d.result(op.chunk_stats(cols, x, y)) {
            d.stats(s);
            d.result(op.forward_chunk(row, cols, s, x, y));
        }
        if !dims.is_empty() {
            let g = |i: usize| dims.get(i).copied().unwrap_or(0);
            let shape = AttentionShape::new(g(0), g(1), g(2), g(3)).with_row_stride(g(4));
            let b = AttentionBatch::new(op, shape).causal(query_pos);
            d.result(b.forward(row, x, y, Some(stats)));
        }
        for s in stats.iter() {
            d.stats(*s);
        }
        d.0
    }

    /// Training as well: `SoftmaxDropout::train` on [`Scalar`] through every row entry point,
    /// forward and backward; `Dropout::apply_with` and `mask_bits_with` on [`Scalar`]; `keep`;
    /// an attention batch's forward and backward.
    #[cfg(feature = "firmware-train")]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn dropmax_probe_fw_train(
        scale: f32,
        p: f64,
        seed: u64,
        offset: u64,
        row: u64,
        mask_kind: u32,
        query_pos: usize,
        mask_a: usize,
        mask_b: usize,
        cols: usize,
        x: *const f32,
        y: *mut f32,
        len: usize,
        stats: *mut RowStats,
        stats_len: usize,
        packed: *mut u8,
        packed_len: usize,
        batch_dims: *const usize,
    ) -> u64 {
        // SAFETY: the C caller passes valid buffers; `x` and `y` do not overlap.
        let (x, y, stats, packed, dims) = unsafe {
            (
                view(x, len),
                view_mut(y, len),
                view_mut(stats, stats_len),
                view_mut(packed, packed_len),
                view(batch_dims, 5),
            )
        };
        let mut d = Digest(0);
        let key = DropoutKey::new(seed, offset);
        let Some(dr) = d.result(Dropout::new(p)) else {
            return d.0;
        };
        d.add(keep(&dr, key, row, cols as u32) as u64);
        d.result(dr.mask_bits_with::<Scalar>(key, row, packed));
        d.result(dr.apply_with::<Scalar>(key, row, y));
        let Some(op) = d.result(SoftmaxDropout::train(scale, dr, key)) else {
            return d.0;
        };
        let op = op.with_kernel::<Scalar>().with_mask(mask(
            mask_kind,
            query_pos,
            mask_a,
            mask_b,
            &[],
            &[],
        ));
        run_rows(op, row, cols, x, y, Some(&mut *stats), &mut d);
        if !dims.is_empty() {
            let g = |i: usize| dims.get(i).copied().unwrap_or(0);
            let shape = AttentionShape::new(g(0), g(1), g(2), g(3)).with_row_stride(g(4));
            let b = AttentionBatch::new(op, shape).causal(query_pos);
            d.result(b.forward(row, x, y, Some(&mut *stats)));
            d.result(b.backward(row, MatrixProbabilities::Saved(x), x, y));
        }
        d.0
    }
}
