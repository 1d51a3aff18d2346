//! The C ABI of dropmax: fused scale-mask-softmax-dropout for C and C++ runtimes.
//!
//! Built as `libdropmax_capi.a` (staticlib) and `libdropmax_capi.so` (cdylib); the header
//! `capi/include/dropmax.h` is generated from this file by cbindgen and committed
//! (`capi/check.sh` fails if it drifts). The header's own documentation, generated from the doc
//! comments here, is the reference for C callers.
//!
//! # No panic crosses the boundary
//!
//! Every exported function validates its arguments and calls only dropmax's public API, which
//! reports every error as a value and never panics (dropmax's `tests/no_std_probe` proves after
//! fat LTO that no panic path is reachable from it). The code here indexes nothing, divides by
//! nothing that can be zero and unwraps nothing: slices are walked with iterators (chunks of at
//! least one element), sub-slices are taken with `get`, arithmetic on caller sizes is checked or
//! saturating. And should a panic happen anyway,
//! Rust (since 1.81, this workspace needs 1.89) aborts the process when a panic reaches an
//! `extern "C"` function: it never unwinds into C.
//!
//! # Why `std` is linked
//!
//! The code uses only `core` (`#![no_std]`), but links `std` for its panic handler: a `no_std`
//! `cdylib` needs `panic = "abort"`, which is a profile setting and the workspace's profiles
//! unwind. Linking the static library therefore needs `-lpthread -ldl -lm` on Linux (see the
//! header). A firmware build can drop `extern crate std` and add a `#[panic_handler]` under a
//! `panic = "abort"` profile.
//!
//! # Unsafe code
//!
//! `unsafe` serves only to turn the caller's raw pointers into slices: `slice::from_raw_parts`
//! (in the helpers `input` and `output`), the blocks that call those helpers (one per exported
//! function, and in `optional` and `RawConfig::get` for the struct and bias arguments, after `Region::new` has rejected NULL with a non-zero count, misalignment and byte
//! sizes that overflow, and `disjoint` has rejected outputs that overlap another buffer of the
//! call), and the exported functions that forward their pointers unchanged to another one. Each
//! block's `SAFETY:` comment names the part of the header's buffer contract it relies on.

#![no_std]
#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
#![warn(clippy::all, rust_2018_idioms)]

// Only for its panic handler (see the crate docs); nothing below names `std`.
extern crate std;

use core::ffi::{c_char, c_int};
use core::mem::size_of;
use core::slice;

use dropmax::{
    Dropout, DropoutKey, Error, Mask, MatrixProbabilities, Mode, RowStats, SoftmaxDropout,
};

// ---------------------------------------------------------------------------------------------
// Status codes
// ---------------------------------------------------------------------------------------------

/// Success.
pub const DROPMAX_OK: c_int = 0;
/// A pointer is NULL while its element count is not 0.
pub const DROPMAX_ERR_NULL: c_int = 1;
/// A buffer has the wrong number of elements (output vs. input, a matrix length that is not a
/// multiple of `cols`, a bias that does not hold `cols` entries, statistics that do not hold one
/// entry per row), or a count whose size in bytes overflows.
pub const DROPMAX_ERR_LENGTH: c_int = 2;
/// The logit scale is NaN or infinite.
pub const DROPMAX_ERR_SCALE: c_int = 3;
/// The dropout probability is NaN or outside [0, 1].
pub const DROPMAX_ERR_PROBABILITY: c_int = 4;
/// A training row (or exported mask) longer than 2^32 columns.
pub const DROPMAX_ERR_ROW_TOO_LONG: c_int = 5;
/// `DropmaxMask::kind` is not one of the `DROPMAX_MASK_*` values.
pub const DROPMAX_ERR_MASK_KIND: c_int = 6;
/// A pointer is not aligned for its element type.
pub const DROPMAX_ERR_ALIGNMENT: c_int = 7;
/// An output buffer overlaps another buffer of the same call.
pub const DROPMAX_ERR_OVERLAP: c_int = 8;
/// An error this version of the C API does not know (a newer dropmax).
pub const DROPMAX_ERR_UNKNOWN: c_int = 9;
/// `options->softcap` is neither 0 (none) nor finite and positive.
pub const DROPMAX_ERR_SOFTCAP: c_int = 10;
/// The backward of a soft-capped operation needs the logits: use `dropmax_backward_recompute`.
pub const DROPMAX_ERR_LOGITS_REQUIRED: c_int = 11;

// ---------------------------------------------------------------------------------------------
// Masks
// ---------------------------------------------------------------------------------------------

/// `DropmaxMask::kind`: every column is visible (up to `key_len`).
pub const DROPMAX_MASK_NONE: c_int = 0;
/// `DropmaxMask::kind`: causal, row `i` sees columns `0 ..= query_pos + i`.
pub const DROPMAX_MASK_CAUSAL: c_int = 1;
/// `DropmaxMask::kind`: causal sliding window, row `i` with `q = query_pos + i` sees columns
/// `q - window < j <= q` (a window of 0 masks everything).
pub const DROPMAX_MASK_WINDOW: c_int = 2;
/// `DropmaxMask::kind`: band, row `i` with `q = query_pos + i` sees columns
/// `q - before <= j <= q + after`.
pub const DROPMAX_MASK_BAND: c_int = 3;
/// "No limit", for `DropmaxMask::before`, `after` and `key_len`: `SIZE_MAX`.
// The cast is for cbindgen, which writes `(size_t)~0` (`usize::MAX` is beyond its evaluator).
#[allow(clippy::unnecessary_cast)]
pub const DROPMAX_UNBOUNDED: usize = (!0) as usize;

/// Which columns of each row take part in the softmax. Fields the kind does not use are ignored.
///
/// Column `j` of row `i` of a call is visible when the kind's band contains it (with query
/// position `q = query_pos + i`) and `j < key_len`. Masked columns get output 0 whatever the
/// input holds. Build one with `dropmax_mask_none`, `dropmax_mask_causal`,
/// `dropmax_mask_window` or `dropmax_mask_band`, then set `key_len` if needed: a zeroed struct
/// has `key_len = 0`, which masks every column.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropmaxMask {
    /// One of `DROPMAX_MASK_NONE`, `_CAUSAL`, `_WINDOW`, `_BAND`.
    pub kind: c_int,
    /// The query position of the call's first row (`CAUSAL`, `WINDOW`, `BAND`); row `i` has
    /// `query_pos + i`. For new queries after `past` cached keys (KV cache), `query_pos = past`.
    pub query_pos: usize,
    /// `BAND`: visible columns before the query position (`DROPMAX_UNBOUNDED` = all).
    pub before: usize,
    /// `BAND`: visible columns after the query position (`DROPMAX_UNBOUNDED` = all).
    pub after: usize,
    /// `WINDOW`: the window width, the query position included.
    pub window: usize,
    /// Only columns `j < key_len` are visible (padding); `DROPMAX_UNBOUNDED` = no limit.
    pub key_len: usize,
}

impl DropmaxMask {
    const NONE: DropmaxMask = DropmaxMask {
        kind: DROPMAX_MASK_NONE,
        query_pos: 0,
        before: DROPMAX_UNBOUNDED,
        after: DROPMAX_UNBOUNDED,
        window: 0,
        key_len: DROPMAX_UNBOUNDED,
    };

    /// The dropmax mask of the row `rows` rows after the call's first one.
    fn to_mask(self, rows: usize) -> Result<Mask<'static>, c_int> {
        let q = self.query_pos.saturating_add(rows);
        let mask = match self.kind {
            DROPMAX_MASK_NONE => Mask::none(),
            DROPMAX_MASK_CAUSAL => Mask::causal(q),
            DROPMAX_MASK_WINDOW => Mask::sliding_window(q, self.window),
            DROPMAX_MASK_BAND => Mask::band(q, self.before, self.after),
            _ => return Err(DROPMAX_ERR_MASK_KIND),
        };
        Ok(mask.with_key_len(self.key_len))
    }
}

/// A mask that shows every column (`key_len = DROPMAX_UNBOUNDED`).
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_mask_none() -> DropmaxMask {
    DropmaxMask::NONE
}

/// A causal mask: row `i` sees columns `0 ..= query_pos + i`.
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_mask_causal(query_pos: usize) -> DropmaxMask {
    DropmaxMask {
        kind: DROPMAX_MASK_CAUSAL,
        query_pos,
        ..DropmaxMask::NONE
    }
}

/// A causal sliding window of `window` columns: row `i` with `q = query_pos + i` sees
/// `q - window < j <= q`.
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_mask_window(query_pos: usize, window: usize) -> DropmaxMask {
    DropmaxMask {
        kind: DROPMAX_MASK_WINDOW,
        query_pos,
        window,
        ..DropmaxMask::NONE
    }
}

/// A band: row `i` with `q = query_pos + i` sees `q - before <= j <= q + after`
/// (`DROPMAX_UNBOUNDED` = no limit on that side).
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_mask_band(query_pos: usize, before: usize, after: usize) -> DropmaxMask {
    DropmaxMask {
        kind: DROPMAX_MASK_BAND,
        query_pos,
        before,
        after,
        ..DropmaxMask::NONE
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout and statistics
// ---------------------------------------------------------------------------------------------

/// Training-mode dropout: drop probability `p` and the key the mask is drawn from.
///
/// Element `(r, j)` of row id `r` is kept when `U(offset + r, j) >= round(p * 2^32)`, `U` the
/// Philox4x32-10 uniform of dropmax's mask definition (a pure function of `seed`, the global
/// row id and the column; see `dropmax::dropout`). Survivors are multiplied by `1/q`,
/// `q = (2^32 - round(p * 2^32)) / 2^32` the exact keep probability, computed in double and
/// rounded once to float. A backward pass regenerates the forward's mask from the same values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropmaxDropout {
    /// The probability of zeroing an element, in [0, 1].
    pub p: f64,
    /// The Philox key: low 32 bits first word, high 32 bits second word.
    pub seed: u64,
    /// Added (wrapping) to every row id: the global row id is `offset + row`.
    pub offset: u64,
}

impl DropmaxDropout {
    /// No dropout: keeps every element.
    const NONE: DropmaxDropout = DropmaxDropout {
        p: 0.0,
        seed: 0,
        offset: 0,
    };

    fn parts(&self) -> Result<(Dropout, DropoutKey), c_int> {
        let dropout = Dropout::new(self.p).map_err(status)?;
        Ok((dropout, DropoutKey::new(self.seed, self.offset)))
    }
}

/// A row's statistics, as the forward returns them and the recomputing backward takes them:
/// `max = m = max_j z_j` and `sum = S = sum_j exp(z_j - m)` over the visible columns, with
/// `z_j = scale * x_j + bias_j`; `lse = m + log(S)`. A row with no visible column (or only
/// `-inf` scores) has `max = -INFINITY, sum = 0`; a row with a NaN score has both NaN; a row
/// with `k` scores of `+inf` has `max = +INFINITY, sum = k`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropmaxRowStats {
    /// The row maximum `m`.
    pub max: f32,
    /// `S = sum_j exp(z_j - m)`.
    pub sum: f32,
}

impl From<RowStats> for DropmaxRowStats {
    fn from(s: RowStats) -> Self {
        Self {
            max: s.max,
            sum: s.sum,
        }
    }
}

impl From<DropmaxRowStats> for RowStats {
    fn from(s: DropmaxRowStats) -> Self {
        RowStats {
            max: s.max,
            sum: s.sum,
        }
    }
}

/// Options of the operation beyond scale, dropout, mask and bias; pass NULL for none, or start
/// from `dropmax_options_none()` and set the fields wanted (fields may be added: a caller that
/// starts from `dropmax_options_none()` keeps compiling and gets their defaults).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropmaxOptions {
    /// The attention sink logit: a score with no output column that joins every row's maximum
    /// and sum, `m = max(sink, max_j z_j)`, `S = exp(sink - m) + sum_j exp(z_j - m)` (the
    /// statistics include it). `-INFINITY` for none; a NaN sink makes every row NaN.
    pub sink: f32,
    /// Logit soft-capping: `z_j = softcap * tanh(scale * x_j / softcap) + bias_j` (a `-INFINITY`
    /// logit stays masked, `+INFINITY` caps to `softcap`). 0 for none; otherwise finite and
    /// positive (else `DROPMAX_ERR_SOFTCAP`). Its backward needs the logits:
    /// `dropmax_backward_recompute` (`dropmax_backward` gives `DROPMAX_ERR_LOGITS_REQUIRED`).
    pub softcap: f32,
}

impl DropmaxOptions {
    /// No options.
    const NONE: DropmaxOptions = DropmaxOptions {
        sink: f32::NEG_INFINITY,
        softcap: 0.0,
    };
}

/// No options: `sink = -INFINITY`, `softcap = 0`. The same as passing NULL.
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_options_none() -> DropmaxOptions {
    DropmaxOptions::NONE
}

/// The status code of a dropmax error.
fn status(e: Error) -> c_int {
    match e {
        Error::NonFiniteScale => DROPMAX_ERR_SCALE,
        Error::InvalidProbability => DROPMAX_ERR_PROBABILITY,
        Error::LengthMismatch { .. } => DROPMAX_ERR_LENGTH,
        Error::RowTooLong => DROPMAX_ERR_ROW_TOO_LONG,
        Error::InvalidSoftcap => DROPMAX_ERR_SOFTCAP,
        Error::LogitsRequired => DROPMAX_ERR_LOGITS_REQUIRED,
        _ => DROPMAX_ERR_UNKNOWN,
    }
}

/// A `Result` as a status code.
fn code(r: Result<(), c_int>) -> c_int {
    match r {
        Ok(()) => DROPMAX_OK,
        Err(c) => c,
    }
}

/// A short English description of a status code (a static string; never NULL).
#[unsafe(no_mangle)]
pub extern "C" fn dropmax_status_message(status: c_int) -> *const c_char {
    let s = match status {
        DROPMAX_OK => c"ok",
        DROPMAX_ERR_NULL => c"NULL pointer with a non-zero element count",
        DROPMAX_ERR_LENGTH => c"buffer length mismatch or size overflow",
        DROPMAX_ERR_SCALE => c"logit scale is not finite",
        DROPMAX_ERR_PROBABILITY => c"dropout probability is NaN or outside [0, 1]",
        DROPMAX_ERR_ROW_TOO_LONG => c"training row longer than 2^32 columns",
        DROPMAX_ERR_MASK_KIND => c"unknown mask kind",
        DROPMAX_ERR_ALIGNMENT => c"misaligned pointer",
        DROPMAX_ERR_OVERLAP => c"an output buffer overlaps another buffer",
        DROPMAX_ERR_SOFTCAP => c"soft-cap is not finite and positive",
        DROPMAX_ERR_LOGITS_REQUIRED => c"the backward of a soft-capped operation needs the logits",
        DROPMAX_ERR_UNKNOWN => c"unknown dropmax error",
        _ => c"not a dropmax status code",
    };
    s.as_ptr()
}

// ---------------------------------------------------------------------------------------------
// Raw buffers
// ---------------------------------------------------------------------------------------------

/// The address range of a caller's buffer, checked: `[addr, addr + bytes)`, empty when the
/// element count is 0 (the pointer is then never used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Region {
    addr: usize,
    bytes: usize,
}

impl Region {
    /// Checks `ptr` and `len` elements of `T`: NULL with `len > 0`, misalignment, a byte size
    /// over `isize::MAX` or a range that wraps the address space are errors.
    fn new<T>(ptr: *const T, len: usize) -> Result<Region, c_int> {
        if len == 0 {
            return Ok(Region::default());
        }
        if ptr.is_null() {
            return Err(DROPMAX_ERR_NULL);
        }
        if !ptr.is_aligned() {
            return Err(DROPMAX_ERR_ALIGNMENT);
        }
        let addr = ptr.addr();
        let bytes = len
            .checked_mul(size_of::<T>())
            .filter(|&b| isize::try_from(b).is_ok() && addr.checked_add(b).is_some())
            .ok_or(DROPMAX_ERR_LENGTH)?;
        Ok(Region { addr, bytes })
    }

    fn overlaps(self, other: Region) -> bool {
        self.bytes != 0
            && other.bytes != 0
            && self.addr < other.addr.saturating_add(other.bytes)
            && other.addr < self.addr.saturating_add(self.bytes)
    }
}

/// Fails with `DROPMAX_ERR_OVERLAP` if an output overlaps another output or any input.
fn disjoint(outputs: &[Region], inputs: &[Region]) -> Result<(), c_int> {
    for (i, out) in outputs.iter().enumerate() {
        let later_outputs = outputs.iter().skip(i + 1);
        if later_outputs.chain(inputs).any(|r| out.overlaps(*r)) {
            return Err(DROPMAX_ERR_OVERLAP);
        }
    }
    Ok(())
}

/// The caller's input buffer as a slice (empty when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// `Region::new(ptr, len)` succeeded, and unless `len` is 0, `ptr` points to `len` initialized
/// values of `T` that nothing writes while the returned slice lives.
unsafe fn input<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: `ptr` is non-null, aligned, and `len * size_of::<T>()` fits in `isize` without
    // wrapping the address space (checked by `Region::new`); the caller guarantees that it points
    // to `len` initialized values that are not written during the call (the header's buffer
    // contract).
    unsafe { slice::from_raw_parts(ptr, len) }
}

/// The caller's output buffer as a mutable slice (empty when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// `Region::new(ptr, len)` succeeded, the region overlaps no other buffer turned into a slice
/// while this one lives (checked with [`disjoint`]), and unless `len` is 0, `ptr` points to `len`
/// initialized values of `T` that nothing else reads or writes while the returned slice lives.
unsafe fn output<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: `ptr` is non-null, aligned, and `len * size_of::<T>()` fits in `isize` without
    // wrapping the address space (checked by `Region::new`); no other slice of this call
    // overlaps it (checked by `disjoint`); the caller guarantees that it points to `len`
    // initialized values that nothing else accesses during the call (the header's buffer
    // contract).
    unsafe { slice::from_raw_parts_mut(ptr, len) }
}

// ---------------------------------------------------------------------------------------------
// The operation
// ---------------------------------------------------------------------------------------------

/// Rows per call to dropmax when statistics are converted through a stack buffer.
const CHUNK: usize = 64;

/// Everything but the data buffers, as the exported functions receive it.
#[derive(Clone, Copy)]
struct Config<'a> {
    scale: f32,
    train: Option<DropmaxDropout>,
    mask: DropmaxMask,
    options: DropmaxOptions,
    bias: Option<&'a [f32]>,
    first_row: u64,
    cols: usize,
}

impl<'a> Config<'a> {
    /// The dropmax operation for the rows starting `rows` rows after the call's first one.
    fn op(&self, rows: usize) -> Result<SoftmaxDropout<'a>, c_int> {
        let mode = match &self.train {
            None => Mode::Eval,
            Some(d) => {
                let (dropout, key) = d.parts()?;
                Mode::Train { dropout, key }
            }
        };
        let op = SoftmaxDropout::new(self.scale, mode).map_err(status)?;
        let op = op
            .with_mask(self.mask.to_mask(rows)?)
            .with_sink(self.options.sink);
        let op = if self.options.softcap == 0.0 {
            op
        } else {
            op.with_softcap(self.options.softcap).map_err(status)?
        };
        Ok(match self.bias {
            Some(b) => op.with_bias(b),
            None => op,
        })
    }

    /// The row id of the row `rows` rows after the call's first one.
    fn row(&self, rows: usize) -> u64 {
        self.first_row.wrapping_add(rows as u64)
    }

    /// The number of rows of a matrix of `len` elements, validating the whole configuration
    /// (scale, probability, mask kind, bias length, row length) with a zero-row call, so that
    /// later calls on consistent shapes cannot fail after some rows were written.
    fn rows(&self, len: usize) -> Result<usize, c_int> {
        let rows = match len.checked_div(self.cols) {
            Some(rows) if len.checked_rem(self.cols) == Some(0) => rows,
            None if len == 0 => 0,
            _ => return Err(DROPMAX_ERR_LENGTH),
        };
        self.op(0)?
            .forward_rows(self.first_row, self.cols, &[], &mut [], None)
            .map_err(status)?;
        Ok(rows)
    }

    /// Forward of a matrix, `src = None` in place in `dst`.
    fn forward(
        &self,
        src: Option<&[f32]>,
        dst: &mut [f32],
        stats: Option<&mut [DropmaxRowStats]>,
    ) -> Result<(), c_int> {
        if src.is_some_and(|x| x.len() != dst.len()) {
            return Err(DROPMAX_ERR_LENGTH);
        }
        let rows = self.rows(dst.len())?;
        let Some(stats) = stats else {
            let op = self.op(0)?;
            let r = match src {
                Some(x) => op.forward_rows(self.first_row, self.cols, x, dst, None),
                None => op.forward_rows_in_place(self.first_row, self.cols, dst, None),
            };
            return r.map_err(status);
        };
        if stats.len() != rows {
            return Err(DROPMAX_ERR_LENGTH);
        }
        // dropmax's RowStats is not `repr(C)`: go through a stack buffer, CHUNK rows at a time,
        // each call with its first row id and query position. The result is bit-identical to one
        // call (dropmax documents any split into row ranges as such).
        let step = CHUNK.saturating_mul(self.cols.max(1)); // `chunks(0)` would panic
        let mut buf = [RowStats::EMPTY; CHUNK];
        let src_chunks = src.map(|x| x.chunks(step));
        let mut src_chunks = src_chunks.into_iter().flatten();
        let chunks = dst.chunks_mut(step).zip(stats.chunks_mut(CHUNK));
        for (k, (d, s)) in chunks.enumerate() {
            let done = k.saturating_mul(CHUNK);
            let op = self.op(done)?;
            let b = buf.get_mut(..s.len()).unwrap_or_default();
            let (row, cols) = (self.row(done), self.cols);
            let r = match src_chunks.next() {
                Some(x) => op.forward_rows(row, cols, x, d, Some(&mut *b)),
                None => op.forward_rows_in_place(row, cols, d, Some(&mut *b)),
            };
            r.map_err(status)?;
            for (out, st) in s.iter_mut().zip(b.iter()) {
                *out = (*st).into();
            }
        }
        Ok(())
    }

    /// Backward of a matrix from the saved probabilities or from the logits and statistics;
    /// returns the sink's gradient (with statistics; 0 without).
    fn backward(
        &self,
        probs: &[f32],
        stats: Option<&[DropmaxRowStats]>,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<f32, c_int> {
        if probs.len() != dx.len() || dy.len() != dx.len() {
            return Err(DROPMAX_ERR_LENGTH);
        }
        let rows = self.rows(dx.len())?;
        let Some(stats) = stats else {
            self.op(0)?
                .backward_rows(
                    self.first_row,
                    self.cols,
                    MatrixProbabilities::Saved(probs),
                    dy,
                    dx,
                )
                .map_err(status)?;
            return Ok(0.0);
        };
        if stats.len() != rows {
            return Err(DROPMAX_ERR_LENGTH);
        }
        let step = CHUNK.saturating_mul(self.cols.max(1)); // `chunks(0)` would panic
        let mut buf = [RowStats::EMPTY; CHUNK];
        let mut total = 0.0f64;
        let chunks = dx
            .chunks_mut(step)
            .zip(dy.chunks(step))
            .zip(probs.chunks(step))
            .zip(stats.chunks(CHUNK));
        for (k, (((dxc, dyc), logits), s)) in chunks.enumerate() {
            let done = k.saturating_mul(CHUNK);
            let b = buf.get_mut(..s.len()).unwrap_or_default();
            for (dst, st) in b.iter_mut().zip(s) {
                *dst = (*st).into();
            }
            let probs = MatrixProbabilities::Recompute { logits, stats: b };
            let g = self
                .op(done)?
                .backward_rows_sink(self.row(done), self.cols, probs, b, dyc, dxc)
                .map_err(status)?;
            total += f64::from(g);
        }
        Ok(total as f32)
    }
}

/// The region of an optional struct argument: empty when NULL.
fn optional_region<T>(ptr: *const T) -> Result<Region, c_int> {
    Region::new(ptr, usize::from(!ptr.is_null()))
}

/// An optional struct argument, copied: NULL = `None`.
///
/// # Safety
/// `optional_region(ptr)` succeeded, and a non-NULL `ptr` points to an initialized `T` that
/// nothing writes during the call.
unsafe fn optional<T: Copy>(ptr: *const T) -> Option<T> {
    // SAFETY: `optional_region` checked `Region::new(ptr, 1)` for a non-NULL `ptr` (count 0, not
    // read, when NULL); the caller guarantees that it points to an initialized `T` not written
    // during the call.
    let value = unsafe { input(ptr, usize::from(!ptr.is_null())) };
    value.first().copied()
}

/// The bias argument: NULL with count 0 = no bias (`None`).
fn bias_region(bias: *const f32, bias_len: usize) -> Result<Option<Region>, c_int> {
    if bias.is_null() && bias_len == 0 {
        Ok(None)
    } else {
        Region::new(bias, bias_len).map(Some)
    }
}

/// The arguments every matrix function shares, as the caller passed them.
#[derive(Clone, Copy)]
struct RawConfig {
    scale: f32,
    dropout: *const DropmaxDropout,
    mask: *const DropmaxMask,
    options: *const DropmaxOptions,
    bias: *const f32,
    bias_len: usize,
    first_row: u64,
    cols: usize,
}

impl RawConfig {
    /// Checks the pointers; returns the regions of the (input) dropout, mask, options and bias.
    fn regions(&self) -> Result<([Region; 4], bool), c_int> {
        let bias = bias_region(self.bias, self.bias_len)?;
        let regions = [
            optional_region(self.dropout)?,
            optional_region(self.mask)?,
            optional_region(self.options)?,
            bias.unwrap_or_default(),
        ];
        Ok((regions, bias.is_some()))
    }

    /// The configuration, its structs copied and its bias a slice.
    ///
    /// # Safety
    /// `regions()` succeeded, and the pointers follow the header's buffer contract.
    unsafe fn get<'a>(&self, has_bias: bool) -> Config<'a> {
        // SAFETY: `regions()` checked every pointer with `Region::new`; the caller guarantees the
        // header's buffer contract (initialized, not written during the call).
        let (train, mask, options, bias) = unsafe {
            (
                optional(self.dropout),
                optional(self.mask),
                optional(self.options),
                has_bias.then(|| input(self.bias, self.bias_len)),
            )
        };
        Config {
            scale: self.scale,
            train,
            mask: mask.unwrap_or(DropmaxMask::NONE),
            options: options.unwrap_or(DropmaxOptions::NONE),
            bias,
            first_row: self.first_row,
            cols: self.cols,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exported functions
// ---------------------------------------------------------------------------------------------

/// Forward of a row-major matrix of `rows = x_len / cols` rows:
///
/// ```text
/// z_j = scale * x_j + bias_j                  (-inf if x_j or bias_j is -inf)
/// P_j = exp(z_j - m) / S,  m = max z, S = sum exp(z - m)      over visible j
/// y_j = P_j                                    dropout == NULL (evaluation)
/// y_j = keep(r, j) ? P_j / q : 0               training, r = first_row + i for row i
/// y_j = 0                                      masked j
/// ```
///
/// - `dropout`: NULL for evaluation, else the training dropout and key.
/// - `mask`: NULL for no mask; row `i` uses query position `mask->query_pos + i`.
/// - `options`: NULL for none, else the options of `DropmaxOptions` (an attention sink: then
///   `m` and `S` include `sink`, `S = exp(sink - m) + sum exp(z - m)`).
/// - `bias`, `bias_len`: NULL and 0 for no bias, else `cols` entries added to every row.
/// - `x`, `x_len` and `y`, `y_len`: the logits and the output, the same length, a multiple of
///   `cols` (`cols = 0` only with empty matrices). `x == y` runs in place; any other overlap of
///   `y` with an input is `DROPMAX_ERR_OVERLAP`.
/// - `stats`, `stats_len`: NULL and 0 if not wanted, else one entry per row, written.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn dropmax_forward(
    scale: f32,
    dropout: *const DropmaxDropout,
    mask: *const DropmaxMask,
    options: *const DropmaxOptions,
    bias: *const f32,
    bias_len: usize,
    first_row: u64,
    cols: usize,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
    stats: *mut DropmaxRowStats,
    stats_len: usize,
) -> c_int {
    let raw = RawConfig {
        scale,
        dropout,
        mask,
        options,
        bias,
        bias_len,
        first_row,
        cols,
    };
    code((|| {
        let ([d, m, o, b], has_bias) = raw.regions()?;
        let xr = Region::new(x, x_len)?;
        let yr = Region::new(y.cast_const(), y_len)?;
        let sr = Region::new(stats.cast_const(), stats_len)?;
        if x_len != y_len {
            return Err(DROPMAX_ERR_LENGTH);
        }
        // The same buffer for x and y: in place, only `y` is used.
        let in_place = xr == yr;
        let xr = if in_place { Region::default() } else { xr };
        disjoint(&[yr, sr], &[xr, d, m, o, b])?;
        // SAFETY: every pointer passed the checks of `Region::new` and the outputs (`y`,
        // `stats`) overlap no other buffer of the call (`disjoint`; when `x == y` only `y` is
        // used, in place); the caller guarantees the rest of the header's buffer contract: each
        // non-NULL pointer with a non-zero count points to that many initialized elements,
        // inputs are not written and outputs not otherwise accessed during the call.
        let (config, x, y, stats) = unsafe {
            (
                raw.get(has_bias),
                (!in_place).then(|| input(x, x_len)),
                output(y, y_len),
                (!stats.is_null()).then(|| output(stats, stats_len)),
            )
        };
        config.forward(x, y, stats)
    })())
}

/// `dropmax_forward` in place: `xy` holds the logits on entry and the output on return.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn dropmax_forward_in_place(
    scale: f32,
    dropout: *const DropmaxDropout,
    mask: *const DropmaxMask,
    options: *const DropmaxOptions,
    bias: *const f32,
    bias_len: usize,
    first_row: u64,
    cols: usize,
    xy: *mut f32,
    xy_len: usize,
    stats: *mut DropmaxRowStats,
    stats_len: usize,
) -> c_int {
    // SAFETY: `dropmax_forward` with `x == y` runs in place, reading and writing `xy` only
    // through `y`; the caller's contract covers every pointer, `xy` for reads and writes.
    unsafe {
        dropmax_forward(
            scale,
            dropout,
            mask,
            options,
            bias,
            bias_len,
            first_row,
            cols,
            xy.cast_const(),
            xy_len,
            xy,
            xy_len,
            stats,
            stats_len,
        )
    }
}

/// Backward of a row-major matrix from the saved probabilities: with the forward's `scale`,
/// `dropout`, `mask`, `bias`, `first_row` and `cols`, given `dy = dL/dy` and the softmax
/// probabilities `P` before dropout (an evaluation forward of the same logits), writes
/// `dx = dL/dx`:
///
/// ```text
/// G_j  = keep(r, j) ? dy_j / q : 0        (G = dy in evaluation)
/// dx_j = scale * P_j * (G_j - sum_k P_k G_k)      (0 for masked j)
/// ```
///
/// The dropout mask is regenerated from the key, never stored. `probs`, `dy` and `dx` have the
/// same length, a multiple of `cols`; `dx` may not overlap any input. The gradient with respect
/// to an additive bias is `dx_j / scale`.
/// With a sink (`options`), `P` is the forward's (normalised over the columns and the sink) and
/// `dx` is exact as above; the sink's own gradient needs the statistics: see
/// `dropmax_backward_recompute`.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn dropmax_backward(
    scale: f32,
    dropout: *const DropmaxDropout,
    mask: *const DropmaxMask,
    options: *const DropmaxOptions,
    bias: *const f32,
    bias_len: usize,
    first_row: u64,
    cols: usize,
    probs: *const f32,
    probs_len: usize,
    dy: *const f32,
    dy_len: usize,
    dx: *mut f32,
    dx_len: usize,
) -> c_int {
    let raw = RawConfig {
        scale,
        dropout,
        mask,
        options,
        bias,
        bias_len,
        first_row,
        cols,
    };
    // SAFETY: forwarded unchanged, without statistics; the caller's contract covers every
    // pointer.
    unsafe {
        backward(
            raw,
            (probs, probs_len),
            (core::ptr::null(), 0),
            false,
            (dy, dy_len),
            (dx, dx_len),
            core::ptr::null_mut(),
        )
    }
}

/// Backward of a row-major matrix recomputing the probabilities: as `dropmax_backward`, with
/// `P_j = exp(z_j - m) / S` recomputed from the forward's logits `logits` (the same scale,
/// bias, mask and options applied) and the statistics the forward returned, one entry per row.
///
/// `dsink`: NULL if not wanted, else receives the gradient of the loss with respect to the
/// sink logit (`options->sink`), summed over the rows (which share the sink):
///
/// ```text
/// dL/dsink = sum_i -P_sink,i * sum_j P_ij G_ij,    P_sink,i = exp(sink - m_i) / S_i
/// ```
///
/// (`P_j` depends on the sink through `S` alone, `dP_j/dsink = -P_j P_sink`.) Rows are added
/// in `f64`, 64 at a time, each group rounded to `float` and the groups added in `f64`; 0 without
/// a sink.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn dropmax_backward_recompute(
    scale: f32,
    dropout: *const DropmaxDropout,
    mask: *const DropmaxMask,
    options: *const DropmaxOptions,
    bias: *const f32,
    bias_len: usize,
    first_row: u64,
    cols: usize,
    logits: *const f32,
    logits_len: usize,
    stats: *const DropmaxRowStats,
    stats_len: usize,
    dy: *const f32,
    dy_len: usize,
    dx: *mut f32,
    dx_len: usize,
    dsink: *mut f32,
) -> c_int {
    let raw = RawConfig {
        scale,
        dropout,
        mask,
        options,
        bias,
        bias_len,
        first_row,
        cols,
    };
    // SAFETY: forwarded unchanged; the caller's contract covers every pointer.
    unsafe {
        backward(
            raw,
            (logits, logits_len),
            (stats, stats_len),
            true,
            (dy, dy_len),
            (dx, dx_len),
            dsink,
        )
    }
}

/// The two backward entry points: `recompute` says whether `probs` holds logits (with `stats`)
/// or saved probabilities (`stats` unused); `dsink` (recomputing only) is NULL or receives the
/// sink's gradient.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
unsafe fn backward(
    raw: RawConfig,
    (probs, probs_len): (*const f32, usize),
    (stats, stats_len): (*const DropmaxRowStats, usize),
    recompute: bool,
    (dy, dy_len): (*const f32, usize),
    (dx, dx_len): (*mut f32, usize),
    dsink: *mut f32,
) -> c_int {
    code((|| {
        let ([d, m, o, b], has_bias) = raw.regions()?;
        let p = Region::new(probs, probs_len)?;
        let g = Region::new(dy, dy_len)?;
        let out = Region::new(dx.cast_const(), dx_len)?;
        let st = if recompute {
            Region::new(stats, stats_len)?
        } else {
            Region::default()
        };
        let ds = optional_region(dsink.cast_const())?;
        disjoint(&[out, ds], &[p, g, st, d, m, o, b])?;
        // SAFETY: every pointer passed the checks of `Region::new` and the outputs `dx` and
        // `dsink` (NULL: an empty slice) overlap each other and no input (`disjoint`); the caller
        // guarantees the rest of the header's buffer contract: each non-NULL pointer with a
        // non-zero count points to that many initialized elements (a non-NULL `dsink` to one
        // float), inputs are not written and outputs not otherwise accessed during the call.
        let (config, probs, stats, dy, dx, dsink) = unsafe {
            (
                raw.get(has_bias),
                input(probs, probs_len),
                recompute.then(|| input(stats, stats_len)),
                input(dy, dy_len),
                output(dx, dx_len),
                output(dsink, usize::from(!dsink.is_null())),
            )
        };
        let g = config.backward(probs, stats, dy, dx)?;
        for d in dsink.iter_mut() {
            *d = g;
        }
        Ok(())
    })())
}

/// The most columns of a training row, or of an exported mask: the mask layout indexes
/// columns with 32 bits.
const MAX_ROW: u64 = 1 << 32;

/// The longest exported mask, in bytes: [`MAX_ROW`] columns, 8 a byte.
const MAX_MASK_BYTES: u64 = MAX_ROW / 8;

/// Whether a caller's count exceeds `max` (compared in `u64`, where no `usize` count wraps).
fn exceeds(count: usize, max: u64) -> bool {
    u64::try_from(count).ok().is_none_or(|n| n > max)
}

/// Exports the dropout mask of row id `row` (global row id `offset + row`): bit `j % 8` of
/// `out[j / 8]` (least significant first) is 1 when column `j` is kept, for the
/// `8 * out_len` columns `0 .. 8 * out_len` (numpy's `unpackbits(..., bitorder="little")`).
/// Exactly the keep decisions of the training forward and backward. `dropout == NULL` (no
/// dropout) keeps everything: all bits 1.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written. `out_len` over 2^29
/// (more than 2^32 columns) is `DROPMAX_ERR_ROW_TOO_LONG`, whatever the pointers.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_mask_bits(
    dropout: *const DropmaxDropout,
    row: u64,
    out: *mut u8,
    out_len: usize,
) -> c_int {
    code((|| {
        // 8 columns a byte, at most 2^32 columns. Checked first: a longer count is refused
        // before it reaches a slice (or `8 * out_len`), even where it fits the address space.
        if exceeds(out_len, MAX_MASK_BYTES) {
            return Err(DROPMAX_ERR_ROW_TOO_LONG);
        }
        let d = optional_region(dropout)?;
        let o = Region::new(out.cast_const(), out_len)?;
        disjoint(&[o], &[d])?;
        // SAFETY: both pointers passed the checks of `Region::new` and do not overlap
        // (`disjoint`); the caller guarantees that a non-NULL `dropout` points to an
        // initialized struct and `out` to `out_len` bytes not otherwise accessed during the call
        // (the header's buffer contract).
        let (d, out) = unsafe { (optional(dropout), output(out, out_len)) };
        let (dropout, key) = d.unwrap_or(DropmaxDropout::NONE).parts()?;
        dropout.mask_bits(key, row, out).map_err(status)
    })())
}

/// Dropout alone, in place, over `len` values of row id `row`:
/// `values_j = keep(row, j) ? values_j / q : 0`, with the same mask as the fused functions
/// (dropout after `attention @ V`, or an unfused pipeline). `dropout == NULL` leaves the values
/// unchanged.
///
/// Returns `DROPMAX_OK` or an error code; on error nothing is written. `len` over 2^32 is
/// `DROPMAX_ERR_ROW_TOO_LONG`, whatever the pointers.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_dropout_apply(
    dropout: *const DropmaxDropout,
    row: u64,
    values: *mut f32,
    len: usize,
) -> c_int {
    code((|| {
        // As in `dropmax_mask_bits`: refused before it reaches a slice.
        if exceeds(len, MAX_ROW) {
            return Err(DROPMAX_ERR_ROW_TOO_LONG);
        }
        let d = optional_region(dropout)?;
        let v = Region::new(values.cast_const(), len)?;
        disjoint(&[v], &[d])?;
        // SAFETY: both pointers passed the checks of `Region::new` and do not overlap
        // (`disjoint`); the caller guarantees that a non-NULL `dropout` points to an
        // initialized struct and `values` to `len` initialized floats not otherwise accessed
        // during the call (the header's buffer contract).
        let (d, values) = unsafe { (optional(dropout), output(values, len)) };
        let Some(d) = d else {
            return Ok(());
        };
        let (dropout, key) = d.parts()?;
        dropout.apply(key, row, values).map_err(status)
    })())
}

/// Whether element `(row, col)` is kept: writes 1 or 0 to `*kept`. The mask's definition, one
/// element at a time (two Philox blocks each; for tests and spot checks). `dropout == NULL`
/// keeps everything.
///
/// Returns `DROPMAX_OK` or an error code (`kept` NULL: `DROPMAX_ERR_NULL`); on error nothing is
/// written.
///
/// # Safety
/// Every pointer follows the header's buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dropmax_keep(
    dropout: *const DropmaxDropout,
    row: u64,
    col: u32,
    kept: *mut u8,
) -> c_int {
    code((|| {
        let d = optional_region(dropout)?;
        let k = Region::new(kept.cast_const(), 1)?;
        disjoint(&[k], &[d])?;
        // SAFETY: both pointers passed the checks of `Region::new` (`kept` non-NULL) and do not
        // overlap (`disjoint`); the caller guarantees that a non-NULL `dropout` points to an
        // initialized struct and `kept` to one byte not otherwise accessed during the call (the
        // header's buffer contract).
        let (d, out) = unsafe { (optional(dropout), output(kept, 1)) };
        let (dropout, key) = d.unwrap_or(DropmaxDropout::NONE).parts()?;
        let k = dropmax::keep(&dropout, key, row, col);
        for o in out.iter_mut() {
            *o = u8::from(k);
        }
        Ok(())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        let v = [0f32; 8];
        let p = v.as_ptr();
        assert_eq!(Region::new(p, 0), Ok(Region { addr: 0, bytes: 0 }));
        assert_eq!(
            Region::new(core::ptr::null::<f32>(), 0),
            Ok(Region { addr: 0, bytes: 0 })
        );
        assert_eq!(
            Region::new(core::ptr::null::<f32>(), 1),
            Err(DROPMAX_ERR_NULL)
        );
        assert_eq!(
            Region::new(p.cast::<u8>().wrapping_add(1).cast::<f32>(), 1),
            Err(DROPMAX_ERR_ALIGNMENT)
        );
        assert_eq!(Region::new(p, usize::MAX / 2), Err(DROPMAX_ERR_LENGTH));
        let a = Region::new(p, 4).unwrap();
        let b = Region::new(p.wrapping_add(4), 4).unwrap();
        let c = Region::new(p.wrapping_add(3), 2).unwrap();
        assert!(!a.overlaps(b) && a.overlaps(c) && b.overlaps(c));
        assert_eq!(disjoint(&[a], &[b]), Ok(()));
        assert_eq!(disjoint(&[a, b], &[]), Ok(()));
        assert_eq!(disjoint(&[a], &[c]), Err(DROPMAX_ERR_OVERLAP));
        assert_eq!(disjoint(&[b, c], &[]), Err(DROPMAX_ERR_OVERLAP));
        // Empty regions overlap nothing, wherever they point.
        assert_eq!(disjoint(&[Region::new(p, 0).unwrap()], &[a]), Ok(()));
    }

    /// The exported functions called from Rust, mostly for Miri (`cargo miri test -p
    /// dropmax-capi`), which checks the pointer-to-slice conversions for aliasing violations;
    /// the C test (`check.sh`) checks the values.
    #[test]
    fn exported_functions() {
        const R: usize = 70; // more than CHUNK rows: two chunks
        const C: usize = 5;
        let x: [f32; R * C] = core::array::from_fn(|i| (i % 11) as f32 * 0.3 - 1.0);
        let dy: [f32; R * C] = core::array::from_fn(|i| (i % 7) as f32 * 0.1 - 0.3);
        let bias = [0.25f32; C];
        let d = DropmaxDropout {
            p: 0.25,
            seed: 3,
            offset: 1,
        };
        let mask = dropmax_mask_causal(0);
        let (mut y, mut xy, mut dx) = ([0f32; R * C], x, [0f32; R * C]);
        let mut st = [DropmaxRowStats { max: 0.0, sum: 0.0 }; R];
        let mut st2 = st;
        // SAFETY: every pointer addresses the stated number of initialized elements of live
        // local arrays, outputs distinct from inputs except for `xy` (x == y, in place).
        let codes = unsafe {
            [
                dropmax_forward(
                    0.5,
                    &d,
                    &mask,
                    core::ptr::null(),
                    bias.as_ptr(),
                    C,
                    2,
                    C,
                    x.as_ptr(),
                    R * C,
                    y.as_mut_ptr(),
                    R * C,
                    st.as_mut_ptr(),
                    R,
                ),
                dropmax_forward(
                    0.5,
                    &d,
                    &mask,
                    core::ptr::null(),
                    bias.as_ptr(),
                    C,
                    2,
                    C,
                    xy.as_ptr(),
                    R * C,
                    xy.as_mut_ptr(),
                    R * C,
                    st2.as_mut_ptr(),
                    R,
                ),
                dropmax_backward_recompute(
                    0.5,
                    &d,
                    &mask,
                    core::ptr::null(),
                    bias.as_ptr(),
                    C,
                    2,
                    C,
                    x.as_ptr(),
                    R * C,
                    st.as_ptr(),
                    R,
                    dy.as_ptr(),
                    R * C,
                    dx.as_mut_ptr(),
                    R * C,
                    core::ptr::null_mut(),
                ),
                dropmax_backward(
                    0.5,
                    &d,
                    &mask,
                    core::ptr::null(),
                    bias.as_ptr(),
                    C,
                    2,
                    C,
                    y.as_ptr(),
                    R * C,
                    dx.as_ptr(),
                    R * C,
                    dx.as_mut_ptr(),
                    R * C,
                ),
            ]
        };
        assert_eq!(codes, [0, 0, 0, DROPMAX_ERR_OVERLAP]);
        assert_eq!(y, xy);
        assert_eq!(st, st2);
        let mut bits = [0u8; 2];
        let mut kept = [0u8; 16];
        let mut v = [1f32; 16];
        // SAFETY: as above.
        let codes = unsafe {
            let mut codes = [
                dropmax_mask_bits(&d, 4, bits.as_mut_ptr(), 2),
                dropmax_dropout_apply(&d, 4, v.as_mut_ptr(), 16),
                dropmax_mask_bits(&d, 4, core::ptr::null_mut(), 0),
            ];
            for (j, k) in (0..).zip(kept.iter_mut()) {
                codes[2] |= dropmax_keep(&d, 4, j, k);
            }
            codes
        };
        assert_eq!(codes, [0, 0, 0]);
        for (j, (k, v)) in kept.iter().zip(v).enumerate() {
            assert_eq!(bits[j / 8] >> (j % 8) & 1, *k);
            assert_eq!(v, if *k == 1 { 4.0 / 3.0 } else { 0.0 });
        }
    }

    /// Counts past the row limit are refused with `DROPMAX_ERR_ROW_TOO_LONG` before any slice is
    /// formed, whatever the pointer (here a real 16-element buffer, which must stay untouched):
    /// `8 * out_len` would overflow for `out_len = 2^62`, and a slice of that length would claim
    /// memory the caller does not hold.
    #[test]
    fn huge_counts_are_refused_before_any_slice() {
        #[cfg(target_pointer_width = "64")]
        const HUGE: [usize; 4] = [1 << 62, (1 << 32) + 1, usize::MAX / 2, usize::MAX];
        #[cfg(not(target_pointer_width = "64"))]
        const HUGE: [usize; 2] = [usize::MAX / 2, usize::MAX];
        let d = DropmaxDropout {
            p: 0.25,
            seed: 3,
            offset: 1,
        };
        let mut bits = [0xA5u8; 16];
        let mut v = [1.5f32; 16];
        for dropout in [&d as *const DropmaxDropout, core::ptr::null()] {
            // One past the longest mask, 2^29 bytes, then the rest.
            for len in [(1 << 29) + 1].into_iter().chain(HUGE) {
                // SAFETY: `dropmax_mask_bits` refuses `len` before it touches either pointer;
                // `d` and `bits` are live locals.
                let code = unsafe { dropmax_mask_bits(dropout, 7, bits.as_mut_ptr(), len) };
                assert_eq!(
                    code, DROPMAX_ERR_ROW_TOO_LONG,
                    "mask_bits, out_len {len:#x}"
                );
            }
            for len in HUGE.into_iter().filter(|&n| n as u64 > 1 << 32) {
                // SAFETY: as above, for `dropmax_dropout_apply` and `v`.
                let code = unsafe { dropmax_dropout_apply(dropout, 7, v.as_mut_ptr(), len) };
                assert_eq!(
                    code, DROPMAX_ERR_ROW_TOO_LONG,
                    "dropout_apply, len {len:#x}"
                );
            }
        }
        assert_eq!(bits, [0xA5; 16]);
        assert_eq!(v, [1.5; 16]);
    }

    #[test]
    fn masks_and_statuses() {
        assert_eq!(dropmax_mask_causal(3).to_mask(2), Ok(Mask::causal(5)));
        assert_eq!(
            dropmax_mask_window(3, 2).to_mask(0),
            Ok(Mask::sliding_window(3, 2))
        );
        let band = DropmaxMask {
            key_len: 7,
            ..dropmax_mask_band(1, 2, 3)
        };
        assert_eq!(band.to_mask(1), Ok(Mask::band(2, 2, 3).with_key_len(7)));
        assert_eq!(dropmax_mask_none().to_mask(9), Ok(Mask::none()));
        let bad = DropmaxMask {
            kind: 17,
            ..dropmax_mask_none()
        };
        assert_eq!(bad.to_mask(0), Err(DROPMAX_ERR_MASK_KIND));
        assert_eq!(status(Error::RowTooLong), DROPMAX_ERR_ROW_TOO_LONG);
        assert_eq!(DROPMAX_UNBOUNDED, usize::MAX);
        for s in -1..=10 {
            assert!(!dropmax_status_message(s).is_null());
        }
    }
}
