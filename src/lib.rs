//! # dropmax
//!
//! The step at the heart of transformer attention, fused into one call per row over
//! caller-provided slices: scale the scores, mask them, softmax each row, and apply dropout with
//! its `1/(1-p)` rescale.
//!
//! ## Which call you need
//!
//! - Inference: [`SoftmaxDropout::eval`], then [`forward_rows`](SoftmaxDropout::forward_rows)
//!   over a row-major matrix (or [`forward`](SoftmaxDropout::forward) for one row).
//! - Training: [`SoftmaxDropout::train`] with a [`Dropout`] and a [`DropoutKey`], the same
//!   calls, then [`backward_rows`](SoftmaxDropout::backward_rows), which regenerates the mask
//!   from the key instead of storing it.
//! - A `[batch, heads, q_len, k_len]` tensor: [`AttentionBatch`]. Masks ([`Mask`]: causal,
//!   sliding window, padding, per-column), an additive bias, an attention sink
//!   ([`with_sink`](SoftmaxDropout::with_sink)) and logit soft-capping
//!   ([`with_softcap`](SoftmaxDropout::with_softcap)) are options of the operation.
//! - Rows too long for one call or one thread: [`chunk_stats`](SoftmaxDropout::chunk_stats),
//!   [`RowStats::merge`], [`forward_chunk`](SoftmaxDropout::forward_chunk).
//! - Dropout alone, or the mask as bits: [`Dropout::apply`], [`Dropout::mask_bits`].
//!
//! No build flags are needed for speed: on x86-64 the kernels pick their instruction set when
//! first called ([`isa`](fn@crate::isa)).
//!
//! ```
//! use dropmax::{Dropout, DropoutKey, Mask, SoftmaxDropout};
//!
//! let scores = [0.3f32, -1.2, 2.0, 0.5];
//! let mut weights = [0.0f32; 4];
//! let op = SoftmaxDropout::train(0.5, Dropout::new(0.1)?, DropoutKey::new(42, 0))?
//!     .with_mask(Mask::causal(2)); // this row is query position 2: columns 0..=2
//! let stats = op.forward(7, &scores, &mut weights)?;
//! assert_eq!(weights[3], 0.0);
//! assert!(stats.lse().is_finite());
//! # Ok::<(), dropmax::Error>(())
//! ```
//!
//! No allocation, no `std`; errors are values and no public function panics. `unsafe` is
//! denied except in the x86-64 tables' module: four blocks, for reading XCR0 during CPU
//! detection, entering a table's code once detection confirmed its instructions, calling its
//! microkernels from there, and the intrinsics of its vector types.
//!
//! ## What a row computes
//!
//! For logits `x[0..n)`, scale `s`, optional bias `b`, a [`Mask`] and a [`Mode`]:
//!
//! ```text
//! z_j = s * x_j + b_j               (IEEE multiply then add; -inf if x_j or b_j is -inf)
//! m   = max_j z_j,   e_j = exp(z_j - m),   S = sum_j e_j               over visible j
//!                    (e_j = 0 when z_j - m < -87.336, where exp < 2^-126: never subnormal)
//! P_j = e_j / S
//! Y_j = P_j                          Mode::Eval
//! Y_j = keep(r, j) ? P_j / q : 0     Mode::Train, q the exact keep probability
//! Y_j = 0                            masked j, whatever x_j holds (NaN included)
//! ```
//!
//! Each call returns [`RowStats`] `(m, S)` (and `lse = m + ln S`).
//!
//! ## Special values
//!
//! The same on every kernel variant, lane width, tail length and build:
//!
//! - no visible column, or only `-inf` scores: all zeros, `max = -inf`, `sum = 0`, `lse = -inf`;
//! - `-inf` in a logit or in the bias: that column has probability 0, as if masked;
//! - NaN in a visible score (a NaN logit or bias, or `0 * inf`): every visible column of the row
//!   is NaN (dropped ones too), masked columns stay 0; `max = sum = NaN`;
//! - `+inf` scores (an infinite logit, or a finite one that overflows `s * x`): the limit of the
//!   softmax, the `k` infinite columns get `1/k` each (then dropout), every other column 0;
//!   `max = +inf`, `sum = k`;
//! - with an attention sink ([`SoftmaxDropout::with_sink`]): a row with no finite visible score
//!   is all zeros with `max = sink`, `sum = 1`; a NaN sink makes the row a NaN row; a `+inf`
//!   sink counts as one more `+inf` score (so finite scores get 0);
//! - with a soft-cap `c` ([`SoftmaxDropout::with_softcap`]): a `+inf` logit caps to `c` (`-c`
//!   for a negative scale), an ordinary score; `-inf` logits stay masked; NaN as above;
//! - a non-finite scale, a `p` outside `[0, 1]`, slices of mismatched length: an [`Error`], and
//!   nothing is written.
//!
//! ## Accuracy
//!
//! Against the exact softmax of the `f32` scores `z_j` (computed in `f64`), each output of an
//! ordinary row satisfies
//!
//! ```text
//! |Y_j - Y*_j| <= (1e-6 + 2^-24 |z_j - m|) * Y*_j  +  2^-126 * rescale / S
//! ```
//!
//! for rows up to 4096 visible columns on random data (tested; 2e-6 up to 16384). The terms: the
//! exponential's error ([`MAX_EXP_REL_ERROR`]), the `f32` rounding of `z_j - m` (relative error
//! `|z_j - m| 2^-24` in `exp`, unavoidable without wider arithmetic and shared by every `f32`
//! softmax), the sum's rounding, and the flush of `e_j` below `2^-126` to zero (on every path, so the
//! zeros of two paths always coincide). The sum is taken in blocks of 16 vectors, each
//! joining a compensated (Kahan) total, so a row dominated by one term, where a plain `f32` total
//! would lose the same fraction of an ulp at every block, stays within the bound too (a fuzz case
//! in `tests/data/fuzz/forward/` pins it). With a soft-cap `c`, the reference is the exact
//! `c tanh(s x_j / c) + b_j`, and the bound gains `2 ((u_T + 3u) c + u max_k |b_k|)` relative
//! (`u = 2^-24`, `u_T` the vector `tanh`'s [`MAX_TANH_REL_ERROR`]).
//!
//! What is bit-identical across kernel variants, lane widths and builds (baseline, x86-64-v3,
//! native; checked against committed digests in every CI build): every keep decision, hence
//! which outputs are zero; every special row (NaN, `+inf`, all `-inf`, fully masked) with its
//! statistics; [`Dropout::apply`]'s outputs (one multiply per kept element); and any split of a
//! matrix into rows or row ranges, in place or not, for a given variant and build. What is only
//! within the bound: the values of ordinary rows across variants or builds (FMA or not, lane
//! count and summation order differ). With a soft-cap the scores themselves differ across
//! variants within the `tanh`'s bound, so two variants' zeros may differ where `z_j - m` lies
//! that close to the flush at -87.34, and a score that `+ b_j` takes to `f32` overflow may be
//! `+inf` on one variant only; keep decisions stay bit-identical.
//!
//! ## Dropout and the mask layout
//!
//! [`Dropout`] holds the exact threshold `D = round(p 2^32)`; [`keep`] and [`mask_uniform`] are the
//! mask's definition, written out as a formula in [`dropout`]'s docs: a pure function of
//! `(seed, offset, row, column)` computed with [`philox`]'s Philox4x32-10 (bit-exact with
//! Random123), about 8 random bits per element.
//!
//! ## Attention batches
//!
//! [`AttentionBatch`] runs the operation over a `[batch, heads, q_len, k_len]` score tensor
//! ([`AttentionShape`], rows optionally padded to a stride), forward and backward, giving each
//! row its row id `first_row + (b * heads + h) * q_len + i`, its causal query position
//! `past_len + i` (KV-cache decoding) and its batch entry's key length (padding). With the
//! `rayon` feature, which brings `std`, `par_forward` and `par_backward` spread the rows over
//! threads, bit-identical to the sequential calls.
//!
//! ## Kernel variants and instruction sets
//!
//! The kernels are written once over a small vector trait and instantiated per instruction-set
//! table:
//!
//! - [`Best`], the default: the table [`isa`](fn@crate::isa) names, chosen at run time from CPUID (cached);
//!   today [`Avx2`] on x86-64 CPUs with AVX2 and FMA, else the portable [`Wide16`].
//! - [`Avx2`], [`Avx512`] (x86-64): compiled into every x86-64 build with their own target
//!   features, whatever the build's; forced with
//!   [`with_kernel`](SoftmaxDropout::with_kernel), and an [`Error::UnsupportedKernel`] on a CPU
//!   without them ([`RowKernel::is_supported`]).
//! - [`Wide4`], [`Wide8`], [`Wide16`]: the portable table on `wide` vectors, whose instructions
//!   the build's target features fix at compile time (NEON on aarch64, simd128 on wasm32 with
//!   it enabled, SSE2 on a default x86-64 build).
//! - [`Scalar`]: the reference and the tests' oracle.
//!
//! Every variant gives the same masks bit for bit and values within the bound above.

#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::all, rust_2018_idioms)]

mod batch;
pub mod dropout;
mod error;
mod exp;
mod isa;
mod kernel;
mod lanes;
mod mask;
pub mod philox;
mod softmax;
mod tanh;

pub use batch::{AttentionBatch, AttentionShape};
pub use dropout::{Dropout, DropoutKey, keep, mask_uniform};
pub use error::Error;
pub use exp::MAX_REL_ERROR as MAX_EXP_REL_ERROR;
#[cfg(target_arch = "x86_64")]
pub use isa::x86_64::{avx2::Avx2, avx512::Avx512};
pub use isa::{Isa, isa};
pub use kernel::{Best, Probabilities, RowKernel, RowStats, Scalar, Wide4, Wide8, Wide16};
pub use mask::Mask;
pub use softmax::{MatrixProbabilities, Mode, SoftmaxDropout};
pub use tanh::MAX_REL_ERROR as MAX_TANH_REL_ERROR;
/// The SIMD crate whose vector types appear in [`philox`]'s signatures.
pub use wide;

/// The README's code runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
