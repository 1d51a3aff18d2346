//! The three passes on vectors of `N` lanes, written once for every width and instruction-set
//! table (see `lanes` for the vector traits and `isa` for the tables).
//!
//! Loops take chunks in pairs with two accumulators: a single `max` or `add` chain would cost
//! its full latency per chunk. Rows that do not fill a chunk are finished through a padded
//! copy, so every lane count runs the same arithmetic on every element.

use super::{DropPlan, Scores, join_sink};
use crate::dropout::{GROUP, main_counter};
use crate::exp::exp_rr2_p5;
use crate::lanes::{F32s, U32s};
use crate::mask::Columns;
use crate::philox::{blocks_in_order, blocks_in_order_x2};
use crate::tanh::tanh_p15o_rr2p5_div;
use wide::{i32x8, u32x8};

/// How many pairs ahead of its zero store a chunk of the masked tail is fetched for writing.
const AHEAD: usize = 4;

/// Pairs of chunks summed into one partial vector before it joins the running total: keeps the
/// longest chain of `f32` additions near `SUM_BLOCK + n / (2 N SUM_BLOCK)` instead of `n / N`.
const SUM_BLOCK: usize = 8;

/// `N` values from `src` (shorter than `N`), the other lanes `fill`.
#[inline(always)]
fn load_padded<const N: usize, V: F32s<N>>(src: &[f32], fill: f32) -> V {
    let mut a = [fill; N];
    for (d, s) in a.iter_mut().zip(src) {
        *d = *s;
    }
    V::load(&a)
}

/// The first `dst.len()` (at most `N`) lanes of `v` into `dst`.
#[inline(always)]
fn store_partial<const N: usize, V: F32s<N>>(v: V, dst: &mut [f32]) {
    let mut a = [0.0; N];
    v.store(&mut a);
    for (d, s) in dst.iter_mut().zip(a) {
        *d = s;
    }
}

/// Running maximum and NaN flag of pass 1.
#[derive(Clone, Copy)]
struct MaxAcc<V> {
    max: V,
    nan: V,
}

impl<V> MaxAcc<V> {
    #[inline(always)]
    fn add<const N: usize>(self, z: V) -> Self
    where
        V: F32s<N>,
    {
        Self {
            max: self.max.max_fast(z),
            nan: self.nan | z.ne_mask(z),
        }
    }
}

/// `z` for one chunk, bit-identical to `scalar::score`: `s * x (+ b)`, `-inf` where `x` or `b`
/// is `-inf` (`FIX`; unnecessary when `s > 0` and there is no bias, as then `s * -inf = -inf`).
#[inline(always)]
fn score_chunk<const N: usize, V: F32s<N>, const BIAS: bool, const FIX: bool>(
    s: V,
    x: V,
    b: V,
) -> V {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let sx = x * s;
    let z = if BIAS { sx + b } else { sx };
    if !FIX {
        return z;
    }
    let excluded = if BIAS {
        x.eq_mask(neg_inf) | b.eq_mask(neg_inf)
    } else {
        x.eq_mask(neg_inf)
    };
    V::select(excluded, neg_inf, z)
}

/// Pass 1 into `seg`, reading the logits from `x` (`OUT`) or from `seg` itself (in place,
/// `x` empty). Excluded columns are already `-inf` in the logits.
///
/// A row whose length is not a multiple of `N` ends with an overlapping chunk, computed from the
/// original logits before the main loop and stored after it (the overlap gets the same values
/// twice; the maximum does not mind), so no element goes through a scalar or padded path.
#[inline(always)]
pub(crate) fn score_loop<
    const N: usize,
    V: F32s<N>,
    const OUT: bool,
    const BIAS: bool,
    const FIX: bool,
>(
    x: &[f32],
    seg: &mut [f32],
    bias: &[f32],
    scale: f32,
) -> (f32, bool) {
    let s = V::splat(scale);
    let zero = V::splat(0.0);
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let init = MaxAcc {
        max: neg_inf,
        nan: zero,
    };
    let (mut acc0, mut acc1) = (init, init);
    let ragged = !seg.len().is_multiple_of(N);
    let last_x = if OUT {
        x.last_chunk::<N>()
    } else {
        seg.last_chunk::<N>()
    };
    let last = match (last_x, bias.last_chunk::<N>()) {
        (Some(x), b) if ragged => {
            let b = if BIAS { b.map_or(zero, V::load) } else { zero };
            Some(score_chunk::<N, V, BIAS, FIX>(s, V::load(x), b))
        }
        _ => None,
    };
    let (x_chunks, x_tail) = x.as_chunks::<N>();
    let (x_pairs, x_odd) = x_chunks.as_chunks::<2>();
    let mut x_iter = x_pairs.iter();
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let (pairs, odd) = chunks.as_chunks_mut::<2>();
    let (b_chunks, _) = bias.as_chunks::<N>();
    let (b_pairs, b_odd) = b_chunks.as_chunks::<2>();
    let mut b_iter = b_pairs.iter();
    for [c0, c1] in pairs.iter_mut() {
        let (b0, b1) = match b_iter.next() {
            Some([b0, b1]) if BIAS => (V::load(b0), V::load(b1)),
            _ => (zero, zero),
        };
        let (x0, x1) = match x_iter.next() {
            Some([x0, x1]) if OUT => (V::load(x0), V::load(x1)),
            _ => (V::load(c0), V::load(c1)),
        };
        let z0 = score_chunk::<N, V, BIAS, FIX>(s, x0, b0);
        let z1 = score_chunk::<N, V, BIAS, FIX>(s, x1, b1);
        acc0 = acc0.add(z0);
        acc1 = acc1.add(z1);
        z0.store(c0);
        z1.store(c1);
    }
    for c in odd.iter_mut() {
        let b = if BIAS {
            b_odd.first().map_or(zero, V::load)
        } else {
            zero
        };
        let xv = match x_odd.first() {
            Some(x) if OUT => V::load(x),
            _ => V::load(c),
        };
        let z = score_chunk::<N, V, BIAS, FIX>(s, xv, b);
        acc0 = acc0.add(z);
        z.store(c);
    }
    if let Some(z) = last {
        acc0 = acc0.add(z);
        if let Some(c) = seg.last_chunk_mut::<N>() {
            z.store(c);
        }
    } else if !tail.is_empty() {
        // Shorter than one chunk: through a padded copy.
        let x = load_padded::<N, V>(if OUT { x_tail } else { tail }, f32::NEG_INFINITY);
        let b = if BIAS {
            load_padded::<N, V>(bias, 0.0)
        } else {
            zero
        };
        let z = score_chunk::<N, V, BIAS, FIX>(s, x, b);
        acc0 = acc0.add(z);
        store_partial(z, tail);
    }
    let m = acc0.max.max_fast(acc1.max).reduce_max();
    (m, (acc0.nan | acc1.nan).any())
}

#[inline(always)]
pub(crate) fn scores<const N: usize, V: F32s<N>>(
    sc: &Scores<'_>,
    src: Option<&[f32]>,
    dst: &mut [f32],
    lo: usize,
    hi: usize,
) -> (f32, bool) {
    let Some(seg) = dst.get_mut(lo..hi) else {
        return (f32::NEG_INFINITY, false);
    };
    let mut x = src
        .and_then(|s| s.get(lo..hi))
        .filter(|x| x.len() == seg.len());
    // A column the mask hides is a -inf logit from here on (rare: done on a copy, in place).
    if !matches!(sc.columns, Columns::All) {
        if let Some(x) = x.take() {
            // Element by element: `copy_from_slice`'s length check is not always proven at
            // opt-level "z" (its out-of-line copy keeps the panic).
            for (d, s) in seg.iter_mut().zip(x) {
                *d = *s;
            }
        }
        for (j, v) in (lo..).zip(seg.iter_mut()) {
            if !sc.columns.visible(j) {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    let bias = sc.bias.and_then(|b| b.get(lo..hi));
    let s = sc.scale;
    if sc.cap != 0.0 {
        return capped_scores::<N, V>(x, seg, bias, s / sc.cap, sc.cap);
    }
    match (x, bias) {
        (Some(x), Some(b)) => score_loop::<N, V, true, true, true>(x, seg, b, s),
        (Some(x), None) if s > 0.0 => score_loop::<N, V, true, false, false>(x, seg, &[], s),
        (Some(x), None) => score_loop::<N, V, true, false, true>(x, seg, &[], s),
        (None, Some(b)) => score_loop::<N, V, false, true, true>(&[], seg, b, s),
        (None, None) if s > 0.0 => score_loop::<N, V, false, false, false>(&[], seg, &[], s),
        (None, None) => score_loop::<N, V, false, false, true>(&[], seg, &[], s),
    }
}

/// One chunk of soft-capped scores, `scalar::score` with the vector `tanh` (so within
/// its bound of the scalar kernel's, not bit-identical): `c * tanh(x * s_over_c) (+ b)`, `-inf`
/// where `x` or `b` is `-inf`.
#[inline(always)]
fn capped_chunk<const N: usize, V: F32s<N>, const BIAS: bool>(x: V, b: V, s_over_c: V, c: V) -> V {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let t = tanh_p15o_rr2p5_div::<N, V>(x * s_over_c);
    let z = c * t;
    let (z, excluded) = if BIAS {
        (z + b, x.eq_mask(neg_inf) | b.eq_mask(neg_inf))
    } else {
        (z, x.eq_mask(neg_inf))
    };
    V::select(excluded, neg_inf, z)
}

/// Pass 1 with a soft-cap into `seg` (from `x`, or in place when `x` is `None`): whole chunks,
/// then the tail through a padded copy (`-inf` logits, excluded from the maximum).
#[inline(always)]
fn capped_scores<const N: usize, V: F32s<N>>(
    x: Option<&[f32]>,
    seg: &mut [f32],
    bias: Option<&[f32]>,
    s_over_c: f32,
    c: f32,
) -> (f32, bool) {
    let (vsc, vc) = (V::splat(s_over_c), V::splat(c));
    let zero = V::splat(0.0);
    let mut acc = MaxAcc {
        max: V::splat(f32::NEG_INFINITY),
        nan: zero,
    };
    let n = seg.len();
    let mut j = 0;
    while j < n {
        let src: &[f32] = match x {
            Some(x) => x.get(j..).unwrap_or(&[]),
            None => seg.get(j..).unwrap_or(&[]),
        };
        let xv = match src.first_chunk::<N>() {
            Some(c) => V::load(c),
            None => load_padded::<N, V>(src, f32::NEG_INFINITY),
        };
        let z = match bias.map(|b| b.get(j..).unwrap_or(&[])) {
            Some(b) => {
                let bv = match b.first_chunk::<N>() {
                    Some(c) => V::load(c),
                    None => load_padded::<N, V>(b, 0.0),
                };
                capped_chunk::<N, V, true>(xv, bv, vsc, vc)
            }
            None => capped_chunk::<N, V, false>(xv, zero, vsc, vc),
        };
        acc = acc.add(z);
        if let Some(rest) = seg.get_mut(j..) {
            match rest.first_chunk_mut::<N>() {
                Some(c) => z.store(c),
                None => store_partial(z, rest),
            }
        }
        j += N;
    }
    (acc.max.reduce_max(), acc.nan.any())
}

/// `sech^2 a = 1 - tanh^2 a` lane by lane, as `4 e / (1 + e)^2` with `e = exp(-2 |a|)`: no
/// cancellation where `tanh a` nears 1 (relative error a few ulp everywhere; 0 from `|a| > 43.67`,
/// where it is below `2^-125`).
#[inline(always)]
fn sech2<const N: usize, V: F32s<N>>(a: V) -> V {
    let abs = V::from_bits(a.to_bits() & V::U::splat(0x7FFF_FFFF));
    let e = exp_rr2_p5::<N, V>(abs * V::splat(-2.0));
    let one_e = V::splat(1.0) + e;
    (e * V::splat(4.0)) / (one_e * one_e)
}

/// `dx[j] *= 1 - t_j^2` where `dx[j] != 0`, `t_j = tanh(x[j] * s_over_c)`, for `j` in `lo..hi`:
/// the soft-cap's chain rule (see `Passes::cap_grad`). A zero stays `+-0` whatever `x[j]` holds
/// (a column masked by the bias may have a NaN logit).
#[inline(always)]
pub(crate) fn cap_grad<const N: usize, V: F32s<N>>(
    x: &[f32],
    dx: &mut [f32],
    lo: usize,
    hi: usize,
    s_over_c: f32,
) {
    let (Some(x), Some(dx)) = (x.get(lo..hi), dx.get_mut(lo..hi)) else {
        return;
    };
    let vsc = V::splat(s_over_c);
    let (xc, xt) = x.as_chunks::<N>();
    let (dc, dt) = dx.as_chunks_mut::<N>();
    for (x, d) in xc.iter().zip(dc.iter_mut()) {
        cap_grad_chunk::<N, V>(V::load(x), V::load(d), vsc).store(d);
    }
    if !dt.is_empty() {
        let d = load_padded::<N, V>(dt, 0.0);
        store_partial(
            cap_grad_chunk::<N, V>(load_padded::<N, V>(xt, 0.0), d, vsc),
            dt,
        );
    }
}

/// One chunk of [`cap_grad`]: `d * sech^2(x * s_over_c)`, zeros kept. (A function, not a
/// closure: see [`max4`].)
#[inline(always)]
fn cap_grad_chunk<const N: usize, V: F32s<N>>(x: V, d: V, s_over_c: V) -> V {
    V::select(d.eq_mask(V::splat(0.0)), d, d * sech2::<N, V>(x * s_over_c))
}

/// Zeroes the last `dst.len() % N` elements of `dst`, whose whole chunks are zeroed elsewhere:
/// one overlapping chunk store, or single stores of the opaque `zero` when `dst` is shorter than
/// a chunk. (A loop storing the constant 0.0 becomes a `memset` call, which cost causal rows of
/// 1024 columns about 5 % of their time.)
#[inline(always)]
fn zero_remainder<const N: usize, V: F32s<N>>(dst: &mut [f32], zero: V) {
    if dst.len().is_multiple_of(N) {
        return;
    }
    if let Some(c) = dst.last_chunk_mut::<N>() {
        zero.store(c);
    } else {
        let z = core::hint::black_box(0.0f32);
        for v in dst.iter_mut() {
            *v = z;
        }
    }
}

/// Lanes `l >= N - r` set: the last `r` lanes of an overlapping final chunk are new.
#[inline(always)]
fn last_lanes<const N: usize, V: F32s<N>>(r: usize) -> V {
    let iota = V::U::from_array(core::array::from_fn(|l| l as u32));
    V::from_bits(iota.gt_mask_i32(V::U::splat((N - r - 1) as u32)))
}

/// `acc[i] = max(acc[i], q[i])`: one step of [`max_loop`]. (Functions, not closures, for every
/// step that runs vector code: a closure that LLVM leaves out of line is compiled without the
/// table's target features.)
#[inline(always)]
fn max4<const N: usize, V: F32s<N>>(acc: &mut [V; 4], q: &[[f32; N]; 4]) {
    for (a, c) in acc.iter_mut().zip(q) {
        *a = a.max_fast(V::load(c));
    }
}

/// A chunk of plain scores `fl(s x)`, as pass 1 defines them (see [`score_chunk`]).
#[inline(always)]
fn plain_score<const N: usize, V: F32s<N>>(vs: V, x: &[f32; N]) -> V {
    score_chunk::<N, V, false, false>(vs, V::load(x), V::splat(0.0))
}

/// Pass 1 of plain scores (see `Passes::plain_max`): the maximum of `x`, read only, with
/// four accumulators (a `max` costs a cycle's issue but several of latency); unspecified if an
/// `x_j` is NaN. The row ends with an overlapping quad of chunks rather than a loop over the
/// 0-3 left over: rows of varying length would mispredict its exit.
#[inline(always)]
pub(crate) fn max_loop<const N: usize, V: F32s<N>>(x: &[f32]) -> f32 {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let mut acc = [neg_inf; 4];
    let (chunks, tail) = x.as_chunks::<N>();
    let (quads, rest) = chunks.as_chunks::<4>();
    for q in quads {
        max4::<N, V>(&mut acc, q);
    }
    // (Copied into an array: the same through `rchunks_exact` and `try_from` kept `acc` on the
    // stack, and rows of 64 columns took 1.9x as long, measured.)
    match x.rchunks(4 * N).next().map(<[f32]>::as_chunks::<N>) {
        Some(([c0, c1, c2, c3], [])) => max4::<N, V>(&mut acc, &[*c0, *c1, *c2, *c3]),
        _ => {
            for (a, c) in acc.iter_mut().zip(rest) {
                *a = a.max_fast(V::load(c));
            }
            if !tail.is_empty() {
                acc[3] = acc[3].max_fast(match x.last_chunk::<N>() {
                    Some(c) => V::load(c),
                    None => load_padded::<N, V>(tail, f32::NEG_INFINITY),
                });
            }
        }
    }
    let [a0, a1, a2, a3] = acc;
    a0.max_fast(a1).max_fast(a2.max_fast(a3)).reduce_max()
}

/// Pass 2: `seg[j] = exp(z_j - m)` and their sum, `z_j` read from `seg` or, when `SCALED`,
/// recomputed as `fl(s x_j)` from `x` (which then covers `seg`).
#[inline(always)]
pub(crate) fn exp_sum<const N: usize, V: F32s<N>, const SCALED: bool>(
    x: &[f32],
    s: f32,
    seg: &mut [f32],
    m: f32,
    zeros: &mut [f32],
) -> f32 {
    let vm = V::splat(m);
    let vs = V::splat(s);
    let zero = V::splat(0.0);
    // Pass 1's own definition of the scores (`plain_score`), so that they are the same bits.
    // Masked columns to zero: one chunk per pair of exponentials while both last.
    let (zero_chunks, _) = zeros.as_chunks_mut::<N>();
    let pairs_total = seg.len() / (2 * N);
    // The chunks left for after the loop are fetched for writing meanwhile, one a pair from
    // a line apart, so that their stores then hit L1 instead of queueing on L2 in a burst.
    let (now, later) = zero_chunks.split_at_mut(pairs_total.min(zero_chunks.len()));
    let mut fetch = later.iter().step_by((64 / (4 * N)).max(1));
    for z in now.iter().take(AHEAD) {
        crate::lanes::prefetch_write(z);
    }
    let mut k = 0;
    let r = seg.len() % N;
    // The overlapping last chunk (see `score_loop`), its already-counted lanes left out of the sum.
    let last_z = match (SCALED, x.last_chunk::<N>(), seg.last_chunk::<N>()) {
        (true, Some(x), _) => Some(plain_score::<N, V>(vs, x)),
        (false, _, Some(z)) => Some(V::load(z)),
        _ => None,
    };
    let last = match last_z {
        Some(z) if r != 0 => Some(exp_rr2_p5::<N, V>(z - vm)),
        _ => None,
    };
    let (x_chunks, x_tail) = x.as_chunks::<N>();
    let (x_pairs, x_odd) = x_chunks.as_chunks::<2>();
    let mut x_iter = x_pairs.iter();
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let (pairs, odd) = chunks.as_chunks_mut::<2>();
    let mut total = zero;
    // What `total` has lost to rounding so far, subtracted from each block's partial before it
    // joins (Kahan's compensated summation, once per block).
    let mut lost = zero;
    for block in pairs.chunks_mut(SUM_BLOCK) {
        let mut acc = [zero; 2];
        for [c0, c1] in block.iter_mut() {
            let (z0, z1) = match x_iter.next() {
                Some([x0, x1]) if SCALED => {
                    (plain_score::<N, V>(vs, x0), plain_score::<N, V>(vs, x1))
                }
                _ => (V::load(c0), V::load(c1)),
            };
            let e0 = exp_rr2_p5::<N, V>(z0 - vm);
            let e1 = exp_rr2_p5::<N, V>(z1 - vm);
            e0.store(c0);
            e1.store(c1);
            acc[0] = acc[0] + e0;
            acc[1] = acc[1] + e1;
            if let Some(z) = now.get_mut(k) {
                zero.store(z);
            }
            if let Some(f) = now.get(k + AHEAD) {
                crate::lanes::prefetch_write(f);
            }
            if let Some(f) = fetch.next() {
                crate::lanes::prefetch_write(f);
            }
            k += 1;
        }
        // Compensated: an `f32` total holding the row's largest term (1, from the maximum)
        // would round every block's small partial to its ulp, by the same amount each time when
        // the small terms are alike (a fuzz case: one score far above 3838 equal ones, `2.2e-6`
        // relative error in `S` with 4 lanes, against the documented `1e-6`). Now a lane rounds
        // at most `SUM_BLOCK + 1` times at that magnitude, within its block. Plain `f64` totals
        // instead measured 24 % slower in evaluation (256 x 1024); this costs 4 additions per
        // block of `2 SUM_BLOCK` exponentials.
        let part = (acc[0] + acc[1]) - lost;
        let t = total + part;
        lost = (t - total) - part;
        total = t;
    }
    for c in odd.iter_mut() {
        let z = match x_odd.first() {
            Some(x) if SCALED => plain_score::<N, V>(vs, x),
            _ => V::load(c),
        };
        let e = exp_rr2_p5::<N, V>(z - vm);
        e.store(c);
        total = total + e;
    }
    for z in now.iter_mut().skip(k).chain(later.iter_mut()) {
        zero.store(z);
    }
    zero_remainder::<N, V>(zeros, zero);
    if let Some(e) = last {
        total = total + V::select(last_lanes::<N, V>(r), e, zero);
        if let Some(c) = seg.last_chunk_mut::<N>() {
            e.store(c);
        }
    } else if !tail.is_empty() {
        let z = if SCALED {
            score_chunk::<N, V, false, false>(
                vs,
                load_padded::<N, V>(x_tail, f32::NEG_INFINITY),
                zero,
            )
        } else {
            load_padded::<N, V>(tail, f32::NEG_INFINITY)
        };
        let e = exp_rr2_p5::<N, V>(z - vm);
        store_partial(e, tail);
        total = total + e;
    }
    // In `f32`: `log2 N` more roundings at most at the sum's magnitude. (The lanes summed in
    // `f64` put a chain of `N` additions between this pass and the next: 4 % slower.)
    (total - lost).reduce_add()
}

/// `Passes::plain_exp_sum`: a NaN score shows as a NaN sum (`exp_rr2_p5` passes NaN through).
#[inline(always)]
pub(crate) fn plain_exp_sum<const N: usize, V: F32s<N>>(
    x: &[f32],
    s: f32,
    m: f32,
    seg: &mut [f32],
) -> Option<f32> {
    // (`seg` always matches `x` from the callers; checked because pass 2 would otherwise read
    // `seg`'s stale values for the chunks `x` lacks.)
    if seg.len() != x.len() {
        return None;
    }
    let sum = exp_sum::<N, V, true>(x, s, seg, m, &mut []);
    (!sum.is_nan()).then_some(sum)
}

/// Chunks of `N` columns in a row that [`short_row`] does in registers.
pub(crate) const SHORT_CHUNKS: usize = 4;

/// `Passes::short_row`: rows of `N ..= 4 N` columns in registers, dispatched on their number
/// of chunks, so that a matrix of them runs one loop without branches on the length.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn short_row<const N: usize, V: F32s<N>>(
    src: Option<&[f32]>,
    sc: &Scores<'_>,
    dst: &mut [f32],
    span: (usize, usize),
    rescale: f32,
    plan: Option<&DropPlan>,
    keep: Option<&mut Prepared<N>>,
) -> Option<(f32, f32)> {
    let n = dst.len();
    if src.is_some_and(|x| x.len() != n) || n < N || span.0 >= span.1 || span.1 > n {
        return None;
    }
    if sc.bias.is_some_and(|b| b.len() < n) || sc.cap != 0.0 {
        return None;
    }
    let row = (src, sc, dst, span, rescale, plan, keep);
    match n.div_ceil(N) {
        1 => in_registers::<N, V, 1>(row),
        2 => in_registers::<N, V, 2>(row),
        3 => in_registers::<N, V, 3>(row),
        4 => in_registers::<N, V, 4>(row),
        _ => None,
    }
}

/// `Passes::short_pair`: two evaluation rows (or training rows without a generator) in
/// registers.
#[inline(always)]
pub(crate) fn short_pair<const N: usize, V: F32s<N>>(
    src: [Option<&[f32]>; 2],
    sc: &Scores<'_>,
    dst: [&mut [f32]; 2],
    span: [(usize, usize); 2],
    rescale: f32,
) -> Option<[(f32, f32); 2]> {
    pair_of_rows::<N, V, _>((src, sc, dst, span, rescale), AllKept)
}

/// `Passes::short_pair_train`: two training rows in registers, their keep bits prepared in
/// `keep` (see [`Prepared::prepare_short`]).
#[inline(always)]
pub(crate) fn short_pair_train<const N: usize, V: F32s<N>>(
    src: [Option<&[f32]>; 2],
    sc: &Scores<'_>,
    dst: [&mut [f32]; 2],
    span: [(usize, usize); 2],
    rescale: f32,
    plan: [&DropPlan; 2],
    keep: &mut Prepared<N>,
) -> Option<[(f32, f32); 2]> {
    pair_of_rows::<N, V, _>((src, sc, dst, span, rescale), (plan, keep))
}

/// The rows of a pair (`short_pair` without its keep bits).
type Pair<'a> = (
    [Option<&'a [f32]>; 2],
    &'a Scores<'a>,
    [&'a mut [f32]; 2],
    [(usize, usize); 2],
    f32,
);

/// Where a pair of short rows gets its keep bits: [`AllKept`] (evaluation), or the plans and
/// the matrix's [`Prepared`] (training). Static, so that evaluation carries no training code
/// (one function choosing at run time was slower on evaluation pairs: `benches/README.md`).
trait PairKeep<const N: usize> {
    /// Generates the keep bits of both rows, bands `span`, before their arithmetic.
    fn prepare<U: U32s<N>>(&mut self, span: [(usize, usize); 2]);
    /// Columns `0..64` of each row (bit `j`), ties kept.
    fn bits(&self) -> [u64; 2];
    /// Zeroes the dropped columns among the ties that [`Self::bits`] kept, after the stores.
    fn fix_up<U: U32s<N>>(&mut self, dst: [&mut [f32]; 2]);
}

/// No dropout: every column kept.
struct AllKept;

impl<const N: usize> PairKeep<N> for AllKept {
    #[inline(always)]
    fn prepare<U: U32s<N>>(&mut self, _: [(usize, usize); 2]) {}
    #[inline(always)]
    fn bits(&self) -> [u64; 2] {
        [u64::MAX; 2]
    }
    #[inline(always)]
    fn fix_up<U: U32s<N>>(&mut self, _: [&mut [f32]; 2]) {}
}

impl<const N: usize> PairKeep<N> for ([&DropPlan; 2], &mut Prepared<N>) {
    #[inline(always)]
    fn prepare<U: U32s<N>>(&mut self, [(lo0, hi0), (lo1, hi1)]: [(usize, usize); 2]) {
        let ([p0, p1], keep) = self;
        keep.prepare_short::<U, false>(p0, lo0, hi0);
        keep.prepare_short::<U, true>(p1, lo1, hi1);
    }
    #[inline(always)]
    fn bits(&self) -> [u64; 2] {
        let keep = &self.1;
        [keep.mask.bits[0], keep.second.bits[0]]
    }
    #[inline(always)]
    fn fix_up<U: U32s<N>>(&mut self, [d0, d1]: [&mut [f32]; 2]) {
        let ([p0, p1], keep) = self;
        if keep.mask.ties.len > 0 {
            keep.mask.fix_up::<U>(p0, d0, 0);
        }
        if keep.second.ties.len > 0 {
            keep.second.fix_up::<U>(p1, d1, 0);
        }
    }
}

/// Two rows of `N ..= 4 N` columns, the same length, in registers: each exactly as
/// [`in_registers`] does it alone, their steps interleaved. A row alone is one chain of
/// dependent steps (two horizontal reductions, the exponentials between them, a division)
/// that leaves most of the core idle; two independent chains fill it. `None`, having written
/// nothing, when either row is special (see [`short_row`]) or the rows do not fit.
#[inline(always)]
fn pair_of_rows<const N: usize, V: F32s<N>, K: PairKeep<N>>(
    (src, sc, dst, span, rescale): Pair<'_>,
    keep: K,
) -> Option<[(f32, f32); 2]> {
    let n = dst[0].len();
    for i in 0..2 {
        let (lo, hi) = span[i];
        if dst[i].len() != n || src[i].is_some_and(|x| x.len() != n) || lo >= hi || hi > n {
            return None;
        }
    }
    if n < N || sc.bias.is_some_and(|b| b.len() < n) || sc.cap != 0.0 {
        return None;
    }
    let pair = (src, sc, dst, span, rescale);
    match n.div_ceil(N) {
        1 => pair_in_registers::<N, V, 1, K>(pair, keep),
        2 => pair_in_registers::<N, V, 2, K>(pair, keep),
        3 => pair_in_registers::<N, V, 3, K>(pair, keep),
        4 => pair_in_registers::<N, V, 4, K>(pair, keep),
        _ => None,
    }
}

/// [`pair_of_rows`] with `C` chunks a row.
// Index loops on purpose: see the comment on the first.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn pair_in_registers<const N: usize, V: F32s<N>, const C: usize, K: PairKeep<N>>(
    (src, sc, [d0, d1], span, rescale): Pair<'_>,
    mut keep: K,
) -> Option<[(f32, f32); 2]> {
    let n = d0.len();
    let base = |k: usize| (k * N).min(n - N);
    // The keep bits first, as for a row alone.
    keep.prepare::<V::U>(span);
    let z = [
        row_scores::<N, V, C>(src[0].unwrap_or(d0), sc, span[0]),
        row_scores::<N, V, C>(src[1].unwrap_or(d1), sc, span[1]),
    ];
    // Index loops, row inside: LLVM kept the closures of `map` out of line, and this order
    // puts the two rows' independent operations next to each other.
    let mut vm = [z[0][0], z[1][0]];
    for k in 1..C {
        for r in 0..2 {
            vm[r] = vm[r].max_fast(z[r][k]);
        }
    }
    let m = [vm[0].reduce_max(), vm[1].reduce_max()];
    let vm = [V::splat(m[0]), V::splat(m[1])];
    let mut e = z;
    for k in 0..C {
        for r in 0..2 {
            e[r][k] = exp_rr2_p5::<N, V>(e[r][k] - vm[r]);
        }
    }
    let mut total = [e[0][0], e[1][0]];
    for k in 1..C {
        for r in 0..2 {
            total[r] = total[r] + e[r][k];
        }
    }
    let sum = [total[0].reduce_add(), total[1].reduce_add()];
    // A NaN score, `+inf` (`inf - inf`) or no finite visible score (`-inf - -inf`).
    if sum[0].is_nan() || sum[1].is_nan() {
        return None;
    }
    let (s0, f0) = join_sink(m[0], sum[0], sc.sink, rescale);
    let (s1, f1) = join_sink(m[1], sum[1], sc.sink, rescale);
    // A NaN sink: the general path makes the NaN rows.
    if s0.sum.is_nan() || s1.sum.is_nan() {
        return None;
    }
    let bits = keep.bits();
    let factor = [V::splat(f0), V::splat(f1)];
    let mut y = e;
    for k in 0..C {
        for r in 0..2 {
            y[r][k] = (e[r][k] * factor[r]).kept((bits[r] >> base(k)) as u32);
        }
    }
    store_short::<N, V, C>(d0, y[0]);
    store_short::<N, V, C>(d1, y[1]);
    keep.fix_up::<V::U>([d0, d1]);
    Some([(s0.max + 0.0, s0.sum), (s1.max + 0.0, s1.sum)])
}

/// The scores of a short row as [`in_registers`] takes them: `C` chunks (the last one ending at
/// the row's end), `-inf` outside the band `lo..hi`.
#[inline(always)]
fn row_scores<const N: usize, V: F32s<N>, const C: usize>(
    x: &[f32],
    sc: &Scores<'_>,
    (lo, hi): (usize, usize),
) -> [V; C] {
    match plain_chunks::<N, V, C>(x, sc, lo, hi) {
        Some(z) => z,
        None => {
            let base = |k: usize| (k * N).min(x.len().saturating_sub(N));
            let mut z = [V::splat(f32::NEG_INFINITY); C];
            for (k, z) in z.iter_mut().enumerate() {
                *z = visible_scores::<N, V>(x, sc, base(k), lo.max(k * N), hi);
            }
            z
        }
    }
}

/// Stores the `C` chunks `y[k]` of a short row as [`in_registers`] lays them out. (Values, not a
/// closure: a closure that LLVM leaves out of line is compiled without the table's target
/// features.)
#[inline(always)]
fn store_short<const N: usize, V: F32s<N>, const C: usize>(dst: &mut [f32], y: [V; C]) {
    let n = dst.len();
    let base = |k: usize| (k * N).min(n.saturating_sub(N));
    match dst.as_chunks_mut::<N>() {
        (chunks, []) if chunks.len() == C => {
            for (y, d) in y.into_iter().zip(chunks.iter_mut()) {
                y.store(d);
            }
        }
        _ => {
            // The last chunk first: when it overlaps the one before, that one's stores win.
            for k in (0..C).rev() {
                let (b, y) = (base(k), y[k]);
                if let Some(c) = dst
                    .get_mut(b..b + N)
                    .and_then(|c| c.as_chunks_mut::<N>().0.first_mut())
                {
                    y.store(c);
                }
            }
        }
    }
}

/// The arguments of [`short_row`].
type ShortRow<'a, 'b, const N: usize> = (
    Option<&'a [f32]>,
    &'a Scores<'a>,
    &'a mut [f32],
    (usize, usize),
    f32,
    Option<&'a DropPlan>,
    Option<&'b mut Prepared<N>>,
);

/// A row of `(C - 1) N < n <= C N` columns, `n >= N`, as `C` chunks: chunk `k` holds the
/// columns from `k N`, except that a last chunk past the row's end holds its last `N` columns
/// (those of the chunk before it masked out). Masked lanes are `-inf` scores, so exactly 0.
#[inline(always)]
fn in_registers<const N: usize, V: F32s<N>, const C: usize>(
    (src, sc, dst, (lo, hi), rescale, plan, keep): ShortRow<'_, '_, N>,
) -> Option<(f32, f32)> {
    let n = dst.len();
    let base = |k: usize| (k * N).min(n - N);
    // The keep bits first: the generator's chain of rounds then overlaps the arithmetic below.
    let mut local = None;
    let mask = match (plan, keep) {
        (Some(plan), Some(keep)) => {
            keep.prepare_short::<V::U, false>(plan, lo, hi);
            Some(Keep::Reused(&mut keep.mask))
        }
        (Some(plan), None) => {
            let mask = local.insert(BlockMask::<N, 4>::new());
            mask.fill::<V::U, true>(plan, 0, hi);
            Some(Keep::Local(mask))
        }
        (None, _) => None,
    };
    let z = row_scores::<N, V, C>(src.unwrap_or(dst), sc, (lo, hi));
    let mut vm = z[0];
    for &z in z.iter().skip(1) {
        vm = vm.max_fast(z);
    }
    let m = vm.reduce_max();
    let vm = V::splat(m);
    let mut e = z;
    for e in e.iter_mut() {
        *e = exp_rr2_p5::<N, V>(*e - vm);
    }
    let mut total = e[0];
    for &e in e.iter().skip(1) {
        total = total + e;
    }
    let sum = total.reduce_add();
    // A NaN score, `+inf` (`inf - inf`) or no finite visible score (`-inf - -inf`).
    if sum.is_nan() {
        return None;
    }
    let (stats, f) = join_sink(m, sum, sc.sink, rescale);
    // A NaN sink: the general path makes the NaN row.
    if stats.sum.is_nan() {
        return None;
    }
    let factor = V::splat(f);
    let bits = mask.as_ref().map_or(u64::MAX, Keep::bits);
    let mut y = e;
    for (k, y) in y.iter_mut().enumerate() {
        *y = (*y * factor).kept((bits >> base(k)) as u32);
    }
    store_short::<N, V, C>(dst, y);
    if let (Some(plan), Some(mut mask)) = (plan, mask)
        && mask.tied()
    {
        mask.fix_up::<V::U>(plan, dst);
    }
    Some((stats.max + 0.0, stats.sum))
}

/// The scores of a row of exactly `C N` plain scores (see `Passes::plain_max`), `-inf` outside
/// `lo..hi`; `None` for any other row. The common case, without the bounds checks and branches
/// per chunk of [`visible_scores`], which cost more instructions than the chunk's arithmetic.
#[inline(always)]
fn plain_chunks<const N: usize, V: F32s<N>, const C: usize>(
    x: &[f32],
    sc: &Scores<'_>,
    lo: usize,
    hi: usize,
) -> Option<[V; C]> {
    if sc.scale <= 0.0 || sc.bias.is_some() || !matches!(sc.columns, Columns::All) || sc.cap != 0.0
    {
        return None;
    }
    let (chunks, []) = x.as_chunks::<N>() else {
        return None;
    };
    let chunks = <&[[f32; N]; C]>::try_from(chunks).ok()?;
    let vs = V::splat(sc.scale);
    let zero = V::splat(0.0);
    let mut z = [zero; C];
    for (z, c) in z.iter_mut().zip(chunks) {
        *z = score_chunk::<N, V, false, false>(vs, V::load(c), zero);
    }
    if lo > 0 || hi < C * N {
        // As i32 comparisons: `lo - 1 < j < hi` (`-1 < j` when `lo` is 0).
        let mut j = V::U::from_array(core::array::from_fn(|l| l as u32));
        let (from, to) = (
            V::U::splat((lo as u32).wrapping_sub(1)),
            V::U::splat(hi as u32),
        );
        let neg_inf = V::splat(f32::NEG_INFINITY);
        for z in z.iter_mut() {
            let visible = j.gt_mask_i32(from) & to.gt_mask_i32(j);
            *z = V::select(V::from_bits(visible), *z, neg_inf);
            j = j + V::U::splat(N as u32);
        }
    }
    Some(z)
}

/// The scores of the `N` columns from `b` that are visible (`from <= j < hi` and the column mask),
/// `-inf` elsewhere, as pass 1 defines them (see `scores`), so that they are the same bits.
#[inline(always)]
fn visible_scores<const N: usize, V: F32s<N>>(
    x: &[f32],
    sc: &Scores<'_>,
    b: usize,
    from: usize,
    hi: usize,
) -> V {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let Some(c) = chunk_at::<N>(x, b) else {
        return neg_inf;
    };
    let (xv, vs, zero) = (V::load(c), V::splat(sc.scale), V::splat(0.0));
    let z = match sc.bias.and_then(|bias| chunk_at::<N>(bias, b)) {
        Some(bias) => score_chunk::<N, V, true, true>(vs, xv, V::load(bias)),
        None if sc.scale <= 0.0 => score_chunk::<N, V, false, true>(vs, xv, zero),
        None => score_chunk::<N, V, false, false>(vs, xv, zero),
    };
    // As i32 comparisons: `from - 1 < j < hi` (`-1 < j` when `from` is 0).
    let j = V::U::from_array(core::array::from_fn(|l| (b + l) as u32));
    let from = V::U::splat((from as u32).wrapping_sub(1));
    let mut visible = j.gt_mask_i32(from) & V::U::splat(hi as u32).gt_mask_i32(j);
    if !matches!(sc.columns, Columns::All) {
        let lane_bits = V::U::from_array(core::array::from_fn(|l| 1 << l));
        let shown = (0..N).fold(0, |a, l| a | u32::from(sc.columns.visible(b + l)) << l);
        visible = visible & (V::U::splat(shown) & lane_bits).eq_mask(lane_bits);
    }
    V::select(V::from_bits(visible), z, neg_inf)
}

/// The block mask of a short row: the matrix's, or one of its own.
enum Keep<'a, const N: usize> {
    Reused(&'a mut BlockMask<N, LONG_SLOTS>),
    Local(&'a mut BlockMask<N, 4>),
}

impl<const N: usize> Keep<'_, N> {
    #[inline(always)]
    fn bits(&self) -> u64 {
        match self {
            Keep::Reused(m) => m.bits[0],
            Keep::Local(m) => m.bits[0],
        }
    }

    /// Whether ties wait for [`Self::fix_up`] (one row in four of 64 columns).
    #[inline(always)]
    fn tied(&self) -> bool {
        match self {
            Keep::Reused(m) => m.ties.len > 0,
            Keep::Local(m) => m.ties.len > 0,
        }
    }

    #[inline(always)]
    fn fix_up<U: U32s<N>>(&mut self, plan: &DropPlan, out: &mut [f32]) {
        match self {
            Keep::Reused(m) => m.fix_up::<U>(plan, out, 0),
            Keep::Local(m) => m.fix_up::<U>(plan, out, 0),
        }
    }
}

/// Slots of 64 columns whose keep bits a row's pass 3 generates together when its block mask
/// is made per row: 1024 columns, 64 main blocks (a larger array, zeroed per row, costs the
/// medium causal rows more than it saves).
const FORWARD_SLOTS: usize = 16;
/// Slots of a block mask made once per call and reused: the whole rows of a matrix
/// (`Passes::prepare`; rows of 4096 columns 2-5 % faster than in blocks of 1024), the backward
/// pass (so that the bits of rows up to 4096 columns are generated once for both of its
/// passes) and the mask export.
pub(crate) const LONG_SLOTS: usize = 64;

/// Room in the tie queue. The first tie of a register is appended with no room check, so the
/// queue always keeps room for 8 (the registers of a pair of jobs): it is settled when it holds
/// 16 or more after a pair, and when it holds `QUEUE - 8` or more after a register's extra ties
/// (which are appended with a check, [`BlockMask::queue_rest`]).
const QUEUE: usize = 32;

/// Tie-break blocks generated together: a row of 1024 columns has about 4 ties.
const TIE_LANES: usize = 8;

/// Keep decisions of up to `64 S` consecutive columns, groups `first .. first + S / 4`, as bits:
/// bit `i` of `bits[s]` decides column `256 first + 64 s + i` (see the layout in `dropout`).
///
/// Generating a block before applying it keeps the generator's work out of the loop that
/// applies it (which then costs a shift, a broadcast and a compare per chunk), lets several
/// Philox chains run in flight, turns each register of main-stream bytes into `4 N` decisions
/// with one byte comparison, generates only the blocks a short row reaches (4 per 64 columns on
/// AVX-512), and gathers the rare ties (1/256 per element) into full vectors for their
/// tie-break words.
pub struct BlockMask<const N: usize, const S: usize> {
    first: usize,
    bits: [u64; S],
    /// Tied columns, kept in `bits` until settled, as offsets from column `256 first`.
    ties: Ties,
}

/// Tied columns waiting for their tie-break words (the first `len` of `cols`).
#[derive(Clone, Copy)]
struct Ties {
    cols: [u32; QUEUE],
    len: usize,
}

impl Ties {
    const EMPTY: Ties = Ties {
        cols: [0; QUEUE],
        len: 0,
    };
}

/// What a matrix call prepares row by row (see `Passes::prepare`): one block mask reused for
/// every row, and, where the table generates rows ahead (`U32s::ROWS_AHEAD`), the main streams of the rows ahead when they need at most 64
/// columns: such a row alone is one latency-bound chain of 4 blocks, eight rows together four
/// chains at full throughput.
pub struct Prepared<const N: usize> {
    mask: BlockMask<N, LONG_SLOTS>,
    /// The keep bits of the second row of a pair done in registers ([`short_pair_train`]).
    second: BlockMask<N, 4>,
    /// The final keep bits of the rows with global ids `ahead_row .. ahead_row + ahead_len`
    /// ([`Self::refill`]): columns 0-63 of 8 rows, one word each, or columns 0-127 of 4 rows,
    /// two words each.
    ahead_bits: [u64; 8],
    ahead_row: u64,
    ahead_len: u64,
}

impl<const N: usize> Prepared<N> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            mask: BlockMask::new(),
            second: BlockMask::new(),
            ahead_bits: [0; 8],
            ahead_row: 0,
            ahead_len: 0,
        }
    }

    /// The block mask reused for every row.
    #[inline(always)]
    pub(crate) fn mask(&mut self) -> &mut BlockMask<N, LONG_SLOTS> {
        &mut self.mask
    }

    /// The first block of keep bits of band `lo..hi` (see `Passes::prepare`).
    #[inline(always)]
    pub(crate) fn prepare<U: U32s<N>>(&mut self, plan: &DropPlan, lo: usize, hi: usize) {
        if U::ROWS_AHEAD && plan.col0 == 0 && (65..=128).contains(&hi) {
            return self.prepare_128::<U>(plan);
        }
        self.prepare_short::<U, false>(plan, lo, hi);
    }

    /// [`Self::prepare`] without the case of rows of 65-128 columns, for rows done in registers.
    /// (One routine generic over both kinds of batch, inlined here or not, made them 10-13 %
    /// slower: benches/ab, 1024 x 64 training.)
    #[inline(always)]
    fn prepare_short<U: U32s<N>, const SECOND: bool>(
        &mut self,
        plan: &DropPlan,
        lo: usize,
        hi: usize,
    ) {
        if U::ROWS_AHEAD && plan.col0 == 0 && hi <= 64 {
            let row = u64::from(plan.row[0]) | u64::from(plan.row[1]) << 32;
            let mut k = row.wrapping_sub(self.ahead_row);
            if k >= self.ahead_len || self.ahead_len != 8 {
                self.refill::<U, 4>(row, plan);
                k = 0;
            }
            let bits = [self.ahead_bits.get(k as usize % 8).copied().unwrap_or(0), 0];
            if SECOND {
                self.second.set_first(bits);
            } else {
                self.mask.set_first(bits);
            }
            return;
        }
        let (g, end) = (first_group(plan, lo), plan.col0 + hi);
        if SECOND {
            self.second.fill::<U, true>(plan, g, end);
        } else {
            self.mask.fill::<U, true>(plan, g, end);
        }
    }
}

impl<const N: usize> Prepared<N> {
    /// The final keep bits of the `32 / B` rows from global id `row`, `B = 4` (columns 0-63 of
    /// 8 rows) or `B = 8` (columns 0-127 of 4 rows), into `ahead_bits` (the row `r` of the batch
    /// in words `r B / 4 ..`): their main-stream bytes (`U32s::rows_ahead`) compared
    /// with `d_hi`, then the ties (a byte equal to `d_hi`, about 2 in the batch's 512 bytes)
    /// settled together, 8 at a time, by their tie-break words. A row then needs no fix-up after
    /// its stores, where a fix-up per row with ties (one in four rows of 64 columns) waits for a
    /// latency-bound Philox block.
    #[inline(always)]
    fn refill<U: U32s<N>, const B: usize>(&mut self, row: u64, plan: &DropPlan) {
        let regs = U::rows_ahead::<B>(row, plan.key);
        let per_row = B / 4;
        // Kept or tied: `byte >= d_hi`, as `byte > d_hi - 1`, every byte when d_hi = 0.
        let gt = plan.d_hi.wrapping_sub(1) as u8;
        let all = if plan.d_hi == 0 { u64::MAX } else { 0 };
        let mut ties = [0u64; 8];
        for ((bits, tied), reg) in self.ahead_bits.iter_mut().zip(&mut ties).zip(regs) {
            *bits = reg.bytes_gt(gt) | all;
            if plan.d_lo != 0 {
                *tied = reg.bytes_eq(plan.d_hi as u8);
            }
        }
        let mut lanes = ([0u32; TIE_LANES], [0u64; TIE_LANES], [0usize; TIE_LANES]);
        let mut len = 0;
        for (e, mut tied) in ties.into_iter().enumerate() {
            let (r, first) = (e / per_row, 64 * (e % per_row) as u32);
            while tied != 0 {
                let col = first + tied.trailing_zeros();
                tied &= tied - 1;
                if let (Some(c), Some(g), Some(i)) = (
                    lanes.0.get_mut(len),
                    lanes.1.get_mut(len),
                    lanes.2.get_mut(len),
                ) {
                    (*c, *g, *i) = (col, row.wrapping_add(r as u64), e);
                }
                len += 1;
                if len == TIE_LANES {
                    self.settle::<U>(plan, lanes, len);
                    len = 0;
                }
            }
        }
        if len > 0 {
            self.settle::<U>(plan, lanes, len);
        }
        (self.ahead_row, self.ahead_len) = (row, (32 / B) as u64);
    }

    /// Clears the bits in `ahead_bits` of the first `len` ties `(column, global row, word)`
    /// whose tie-break word is below `d_lo`.
    #[inline(always)]
    fn settle<U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        (cols, rows, at): ([u32; TIE_LANES], [u64; TIE_LANES], [usize; TIE_LANES]),
        len: usize,
    ) {
        let t = U::word0_x8_rows(cols, 1, rows, plan.key);
        for ((&t, &c), &w) in t.iter().zip(&cols).zip(&at).take(len) {
            let dropped = u64::from(t & 0x00FF_FFFF < plan.d_lo);
            if let Some(bits) = self.ahead_bits.get_mut(w) {
                *bits &= !(dropped << (c % 64));
            }
        }
    }

    /// [`Self::prepare`] for a row of 65-128 columns where the table generates rows ahead: its
    /// final keep bits from the batch of the 4 rows ahead ([`Self::refill`]), made when it lacks
    /// the row.
    #[inline(always)]
    fn prepare_128<U: U32s<N>>(&mut self, plan: &DropPlan) {
        let row = u64::from(plan.row[0]) | u64::from(plan.row[1]) << 32;
        let mut k = row.wrapping_sub(self.ahead_row);
        // A batch of rows of 64 columns has 8, of 128 columns 4.
        if k >= self.ahead_len || self.ahead_len != 4 {
            self.refill::<U, 8>(row, plan);
            k = 0;
        }
        let bits = |i: usize| self.ahead_bits.get(2 * k as usize % 8 + i).copied();
        self.mask
            .set_first([bits(0).unwrap_or(0), bits(1).unwrap_or(0)]);
    }
}

impl<const N: usize, const S: usize> BlockMask<N, S> {
    /// Columns per block of bits.
    const BLOCK: usize = 64 * S;

    /// Blocks per group: a constant, so that dividing by it can never panic.
    const BATCHES: usize = 16 / N;

    #[inline(always)]
    fn new() -> Self {
        // No real group is this far out (groups are below 2^24).
        Self {
            first: usize::MAX / 2,
            bits: [0; S],
            ties: Ties::EMPTY,
        }
    }

    /// Generates the block of groups from `g`, up to the row's end at column `end`.
    ///
    /// Tied columns are kept in the bits until settled, a vector of them at a time. With `DEFER`,
    /// the last ones stay kept: the caller applies the block, then calls [`Self::fix_up`]. That
    /// last tie-break block is a chain of ten dependent rounds with nothing else to overlap;
    /// deferred, its latency hides behind the next row's work instead of stalling this one.
    #[inline(always)]
    fn fill<U: U32s<N>, const DEFER: bool>(&mut self, plan: &DropPlan, g: usize, end: usize) {
        self.first = g;
        let groups = end
            .div_ceil(GROUP)
            .saturating_sub(g)
            .min(Self::BLOCK / GROUP);
        // Job `job` is main-stream blocks `16 g + N job ..`: columns `256 g + 16 N job ..`, in
        // four registers of `4 N` columns.
        let [_, c @ ..] = main_counter(0, plan.row);
        let first = |job: usize| (16 * g + N * job) as u32;
        // Slots (64 columns each, from the block's first) that reach into the row: ties past
        // its end need no tie-break (a row of 64 columns would otherwise settle those of 256).
        let live = end.saturating_sub(g * GROUP).div_ceil(64);
        // The queue's length is a plain local, never behind a reference that leaves this
        // function, so that it stays in a register. Its columns are written in place: a copy of
        // the array would read with vector loads what scalar stores just wrote, which cannot be
        // forwarded and waits for those stores to leave a store buffer that the previous row's
        // output has filled (measured: a tenth of this function's time at 64 columns).
        let mut len = 0;
        let jobs = groups * Self::BATCHES;
        let mut job = 0;
        while job + 1 < jobs {
            let (a, b) = blocks_in_order_x2::<N, U>(first(job), c, plan.key);
            len = self.record(plan, len, live, job, a);
            len = self.record(plan, len, live, job + 1, b);
            job += 2;
            // Under 16 queued before the 8 registers of the next pair: room for their first ties.
            if len >= QUEUE - 16 {
                self.settle::<U>(plan, len);
                len = 0;
            }
        }
        if job < jobs {
            // Registers of `4 N` columns from the job's first that reach into the row.
            let regs = end.saturating_sub(g * GROUP + 16 * N * job).div_ceil(4 * N);
            let words = blocks_in_order::<N, U>(first(job), c, plan.key, regs);
            len = self.record(plan, len, live, job, words);
        }
        if !DEFER && len > 0 {
            self.settle::<U>(plan, len);
            len = 0;
        }
        self.ties.len = len;
    }

    /// Columns 0-127 decided by `bits` (bit `j % 64` of word `j / 64`), nothing tied.
    #[inline(always)]
    fn set_first(&mut self, bits: [u64; 2]) {
        self.first = 0;
        for (b, w) in self.bits.iter_mut().zip(bits) {
            *b = w;
        }
        self.ties.len = 0;
    }

    /// Turns the four registers of job `job` (its blocks' bytes in order) into keep bits (tied
    /// columns kept), queueing the ties of the first `live` slots after the first `len` queued;
    /// returns the new length.
    #[inline(always)]
    fn record<U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        mut len: usize,
        live: usize,
        job: usize,
        words: [U; 4],
    ) -> usize {
        // Kept or tied: `byte >= d_hi`, as `byte > d_hi - 1`, every byte when d_hi = 0.
        let gt = plan.d_hi.wrapping_sub(1) as u8;
        let all = if plan.d_hi == 0 { u64::MAX } else { 0 };
        for (i, word) in words.into_iter().enumerate() {
            // Register `i` decides the `4 N` columns from `16 N job + 4 N i` (from `256 first`).
            let at = 4 * N * (4 * job + i);
            let (slot, shift) = (at / 64, at % 64);
            let kept = word.bytes_gt(gt) | all;
            // The first register of a slot assigns it (no zeroing pass over the whole block).
            if let Some(bits) = self.bits.get_mut(slot) {
                *bits = if shift == 0 {
                    kept
                } else {
                    *bits | kept << shift
                };
            }
            if plan.d_lo != 0 && slot < live {
                // A register of 64 bytes (16 lanes) has a tie with probability 0.22 and two with
                // 0.026: the first is appended without a branch, the others out of line. A
                // branch per tie would be mispredicted about as often as it is taken.
                let tied = word.bytes_eq(plan.d_hi as u8);
                let base = at as u32;
                // `len < QUEUE` always (see `QUEUE`); the remainder spares a bounds check.
                if let Some(c) = self.ties.cols.get_mut(len % QUEUE) {
                    *c = base + tied.trailing_zeros();
                }
                len += usize::from(tied != 0);
                let rest = tied & tied.wrapping_sub(1);
                if rest != 0 {
                    len = self.queue_rest::<U>(plan, len, base, rest);
                }
            }
        }
        len
    }

    /// Queues the tied columns `base + i` for the set bits `i` of `rest`; returns the new length,
    /// below `QUEUE - 8` (see [`QUEUE`]).
    #[cold]
    #[inline(never)]
    fn queue_rest<U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        mut len: usize,
        base: u32,
        mut rest: u64,
    ) -> usize {
        while rest != 0 {
            if len >= QUEUE {
                self.settle::<U>(plan, len);
                len = 0;
            }
            if let Some(c) = self.ties.cols.get_mut(len) {
                *c = base + rest.trailing_zeros();
            }
            len += 1;
            rest &= rest - 1;
        }
        if len >= QUEUE - 8 {
            self.settle::<U>(plan, len);
            len = 0;
        }
        len
    }

    /// Bit `i` set when the queued column `ties[i]` (at most 8 of them) is kept: its tie-break
    /// word is at least `d_lo`.
    #[inline(always)]
    fn verdicts<U: U32s<N>>(&self, plan: &DropPlan, ties: &[u32]) -> u32 {
        let [r0, r1] = plan.row;
        let base = (self.first * GROUP) as u32;
        let lanes = core::array::from_fn(|l| ties.get(l).map_or(0, |&c| base + c));
        let t = u32x8::new(U::word0_x8(lanes, [1, r0, r1], plan.key)) & u32x8::splat(0x00FF_FFFF);
        // t >= d_lo as t > d_lo - 1 (d_lo >= 1 when there are ties; t < 2^24 compares as i32).
        let t: i32x8 = wide::bytemuck::cast(t);
        t.simd_gt(i32x8::splat(plan.d_lo as i32 - 1)).to_bitmask()
    }

    /// Clears the bits of the first `len` queued columns whose tie-break word is below `d_lo`.
    #[inline(always)]
    fn settle<U: U32s<N>>(&mut self, plan: &DropPlan, len: usize) {
        let ties = self.ties.cols;
        for chunk in ties.get(..len).unwrap_or(&[]).chunks(TIE_LANES) {
            let kept = self.verdicts::<U>(plan, chunk);
            // No branch on the verdicts: the loop's length is known before they are, so the
            // work behind it need not wait for the latency-bound tie-break block.
            for (i, &c) in chunk.iter().enumerate() {
                let dropped = u64::from(!kept >> i & 1);
                if let Some(bits) = self.bits.get_mut((c / 64) as usize) {
                    *bits &= !(dropped << (c % 64));
                }
            }
        }
    }

    /// After a block from [`Self::fill`] with `DEFER` has been applied to `out`, whose element
    /// `i` is column `col + i`: zeroes the dropped ones among the columns it left kept.
    ///
    /// The tie-break block is generated here, after the loop that applied the block, not when
    /// the ties are found: by now the queue's scalar stores have reached the cache, so its vector
    /// load is not held up by a failed store forward, and nothing but these few stores waits for
    /// the result, so the next row's work overlaps its latency.
    #[inline(always)]
    fn fix_up<U: U32s<N>>(&mut self, plan: &DropPlan, out: &mut [f32], col: usize) {
        let first = self.first * GROUP;
        let ties = self.ties.cols.get(..self.ties.len).unwrap_or(&[]);
        for chunk in ties.chunks(TIE_LANES) {
            let kept = self.verdicts::<U>(plan, chunk);
            for (i, &c) in chunk.iter().enumerate() {
                let pos = (first + c as usize).wrapping_sub(col);
                if let Some(v) = out.get_mut(pos) {
                    // Kept as is or +0 through a mask, opaque so that it is not turned back into
                    // a branch on the verdict: mispredicted half the time, and only resolved
                    // once the tie-break block is done, that branch would discard all the work
                    // overlapped with it.
                    let mask = core::hint::black_box((kept >> i & 1).wrapping_neg());
                    *v = f32::from_bits(v.to_bits() & mask);
                }
            }
        }
        self.ties.len = 0;
    }

    /// The keep bits of the 64 columns from `j` rounded down to 64, generating them if needed.
    #[inline(always)]
    fn bits64<U: U32s<N>>(&mut self, plan: &DropPlan, j: usize, end: usize) -> u64 {
        let g = j / GROUP;
        if g.wrapping_sub(self.first) >= Self::BLOCK / GROUP {
            self.fill::<U, false>(plan, g, end);
        }
        let slot = (j - self.first * GROUP) / 64;
        self.bits.get(slot).copied().unwrap_or(0)
    }
}

#[inline(always)]
pub(crate) fn finish<const N: usize, V: F32s<N>>(
    dst: &mut [f32],
    lo: usize,
    hi: usize,
    factor: f32,
    plan: Option<&DropPlan>,
) {
    let vf = V::splat(factor);
    let Some(plan) = plan else {
        let Some(seg) = dst.get_mut(lo..hi) else {
            return;
        };
        let last = match seg.last_chunk::<N>() {
            Some(e) if !seg.len().is_multiple_of(N) => Some(V::load(e) * vf),
            _ => None,
        };
        let (chunks, tail) = seg.as_chunks_mut::<N>();
        for c in chunks.iter_mut() {
            (V::load(c) * vf).store(c);
        }
        if last.is_none() {
            for v in tail.iter_mut() {
                *v *= factor;
            }
        }
        if let (Some(y), Some(c)) = (last, seg.last_chunk_mut::<N>()) {
            y.store(c);
        }
        return;
    };
    let mut mask = BlockMask::<N, FORWARD_SLOTS>::new();
    apply_kept::<N, V, FORWARD_SLOTS>(dst, lo, hi, factor, plan, &mut mask, false);
}

/// The group of the first keep bits [`apply_kept`] reads for a band from `lo`.
#[inline(always)]
fn first_group(plan: &DropPlan, lo: usize) -> usize {
    (plan.col0 + lo - lo % 64) / GROUP
}

/// The training half of [`finish`], with `mask` already filled for [`first_group`] when
/// `prepared`.
#[inline(always)]
pub(crate) fn apply_kept<const N: usize, V: F32s<N>, const S: usize>(
    dst: &mut [f32],
    lo: usize,
    hi: usize,
    factor: f32,
    plan: &DropPlan,
    mask: &mut BlockMask<N, S>,
    mut prepared: bool,
) {
    let vf = V::splat(factor);
    // Spans of 64 columns start at multiples of 64, so that each reads one word of keep bits and
    // each of its chunks one slice of it; the lanes before `lo` hold zeros and stay zeros.
    let start = lo - lo % 64;
    let Some(seg) = dst.get_mut(start..hi) else {
        return;
    };
    // Row column of `seg[0]`, a multiple of 64.
    let col = plan.col0 + start;
    let mut at = 0;
    while at < seg.len() {
        let g = (col + at) / GROUP;
        if !prepared {
            mask.fill::<V::U, true>(plan, g, plan.col0 + hi);
        }
        prepared = false;
        // Where `col + at` lies in the block from group `g`: under one group, so under a block.
        // (`g * GROUP + BLOCK` can pass `usize::MAX` in a chunk at the top of a 32-bit column
        // space; these terms stay within the row.)
        let off = col + at - g * GROUP;
        let block_end = (at + (BlockMask::<N, S>::BLOCK - off)).min(seg.len());
        let Some(block) = seg.get_mut(at..block_end) else {
            return;
        };
        let slot0 = off / 64;
        let mut slots = mask.bits.iter().skip(slot0);
        // Whole spans as arrays, so that their chunks and shifts unroll to constants (a slice
        // per span left a loop of unknown length, with its bookkeeping, for every 64 columns).
        let (spans, rest) = block.as_chunks_mut::<64>();
        for (span, &bits) in spans.iter_mut().zip(slots.by_ref()) {
            for (q, c) in span.as_chunks_mut::<N>().0.iter_mut().enumerate() {
                (V::load(c) * vf).kept((bits >> (q * N)) as u32).store(c);
            }
        }
        if let Some(&bits) = slots.next().filter(|_| !rest.is_empty()) {
            let (chunks, tail) = rest.as_chunks_mut::<N>();
            for (q, c) in chunks.iter_mut().enumerate() {
                (V::load(c) * vf).kept((bits >> (q * N)) as u32).store(c);
            }
            // The row's last few columns (fewer than N).
            let first = chunks.len() * N;
            for (j, v) in (first..).zip(tail.iter_mut()) {
                *v = if bits >> (j % 64) & 1 == 1 {
                    *v * factor
                } else {
                    0.0
                };
            }
        }
        mask.fix_up::<V::U>(plan, seg, col);
        at = block_end;
    }
}

/// `src[j]` for the lanes with `lo <= j < hi` of the chunk at `j0`, 0 elsewhere.
#[inline(always)]
fn load_range<const N: usize, V: F32s<N>>(src: &[f32], j0: usize, lo: usize, hi: usize) -> V {
    let mut a = [0.0; N];
    for (l, v) in a.iter_mut().enumerate() {
        let j = j0 + l;
        if j >= lo && j < hi {
            *v = src.get(j).copied().unwrap_or(0.0);
        }
    }
    V::load(&a)
}

/// The chunk of `N` values at `j0` (all of it inside `lo..hi`), if any.
#[inline(always)]
fn chunk_at<const N: usize>(src: &[f32], j0: usize) -> Option<&[f32; N]> {
    src.get(j0..j0 + N).and_then(|s| s.try_into().ok())
}

/// The lanes of the chunk at `j0` that `plan` keeps (all without a plan), as a lane mask.
#[inline(always)]
fn grad_keep<const N: usize, V: F32s<N>>(
    plan: Option<&DropPlan>,
    mask: &mut BlockMask<N, LONG_SLOTS>,
    j0: usize,
    hi: usize,
    lane_bits: V::U,
) -> V {
    match plan {
        None => V::from_bits(V::U::splat(u32::MAX)),
        Some(plan) => {
            let bits = (mask.bits64::<V::U>(plan, j0, hi) >> (j0 % 64)) as u32;
            V::from_bits((V::U::splat(bits) & lane_bits).eq_mask(lane_bits))
        }
    }
}

/// Backward over `lo..hi`: a pass for `sum_k P_k G_k`, then `dx = s P (G - dot)`; `G` is rebuilt
/// from `dy` and the keep bits in both passes (the bits of rows up to 4096 columns are generated
/// once), so `dx` is free to hold `P`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn grad<const N: usize, V: F32s<N>>(
    p: Option<&[f32]>,
    dy: &[f32],
    dx: &mut [f32],
    lo: usize,
    hi: usize,
    rescale: f32,
    plan: Option<&DropPlan>,
    scale: f32,
) -> f32 {
    let start = lo - lo % 64;
    let zero = V::splat(0.0);
    let vr = V::splat(rescale);
    let lane_bits = V::U::from_array(core::array::from_fn(|l| 1u32 << l));
    let mut mask = BlockMask::<N, LONG_SLOTS>::new();
    let (mut acc0, mut acc1) = (zero, zero);
    let mut j0 = start;
    while j0 < hi {
        let full = j0 >= lo && j0 + N <= hi;
        let (pv, gv) = match (
            full,
            chunk_at::<N>(p.unwrap_or(dx), j0),
            chunk_at::<N>(dy, j0),
        ) {
            (true, Some(pc), Some(dc)) => (V::load(pc), V::load(dc)),
            _ => (
                load_range::<N, V>(p.unwrap_or(dx), j0, lo, hi),
                load_range::<N, V>(dy, j0, lo, hi),
            ),
        };
        let g = V::select(grad_keep(plan, &mut mask, j0, hi, lane_bits), gv * vr, zero);
        if (j0 / N) & 1 == 0 {
            acc0 = pv.mul_add(g, acc0);
        } else {
            acc1 = pv.mul_add(g, acc1);
        }
        j0 += N;
    }
    let sum = (acc0 + acc1).reduce_add();
    let dot = V::splat(sum);
    let vs = V::splat(scale);
    let mut j0 = start;
    while j0 < hi {
        let full = j0 >= lo && j0 + N <= hi;
        let pv = match (full, chunk_at::<N>(p.unwrap_or(dx), j0)) {
            (true, Some(pc)) => V::load(pc),
            _ => load_range::<N, V>(p.unwrap_or(dx), j0, lo, hi),
        };
        let gv = match (full, chunk_at::<N>(dy, j0)) {
            (true, Some(dc)) => V::load(dc),
            _ => load_range::<N, V>(dy, j0, lo, hi),
        };
        let g = V::select(grad_keep(plan, &mut mask, j0, hi, lane_bits), gv * vr, zero);
        let out = vs * pv * (g - dot);
        match dx
            .get_mut(j0..j0 + N)
            .and_then(|s| <&mut [f32; N]>::try_from(s).ok())
        {
            Some(c) if full => out.store(c),
            _ => {
                let mut a = [0.0; N];
                out.store(&mut a);
                for (l, v) in a.into_iter().enumerate() {
                    let j = j0 + l;
                    if j >= lo
                        && j < hi
                        && let Some(d) = dx.get_mut(j)
                    {
                        *d = v;
                    }
                }
            }
        }
        j0 += N;
    }
    sum
}

/// `impl Passes for $kernel` on the vectors `$v` of `$n` lanes: every method that runs vector
/// code is a microkernel written as `$wrap! { fn ... }`, which a table either emits as it is (the
/// portable tables) or compiles with its target features (`isa::x86_64`).
macro_rules! vector_passes {
    ($kernel:ty, $n:literal, $v:ty, $wrap:ident) => {
        impl $crate::kernel::sealed::Passes for $kernel {
            $wrap! {
                fn scores(
                    sc: &$crate::kernel::Scores<'_>,
                    src: Option<&[f32]>,
                    dst: &mut [f32],
                    lo: usize,
                    hi: usize,
                ) -> (f32, bool) {
                    $crate::kernel::vector::scores::<$n, $v>(sc, src, dst, lo, hi)
                }
            }
            $wrap! {
                fn exp_sum(seg: &mut [f32], m: f32, zeros: &mut [f32]) -> f32 {
                    $crate::kernel::vector::exp_sum::<$n, $v, false>(&[], 0.0, seg, m, zeros)
                }
            }
            $wrap! {
                fn plain_max(x: &[f32], s: f32) -> f32 {
                    $crate::kernel::vector::max_loop::<$n, $v>(x) * s + 0.0
                }
            }
            $wrap! {
                fn plain_exp_sum(x: &[f32], s: f32, m: f32, seg: &mut [f32]) -> Option<f32> {
                    $crate::kernel::vector::plain_exp_sum::<$n, $v>(x, s, m, seg)
                }
            }
            $wrap! {
                fn finish(
                    dst: &mut [f32],
                    lo: usize,
                    hi: usize,
                    factor: f32,
                    plan: Option<&$crate::kernel::DropPlan>,
                ) {
                    $crate::kernel::vector::finish::<$n, $v>(dst, lo, hi, factor, plan)
                }
            }
            type Keep = $crate::kernel::vector::Prepared<$n>;
            fn new_keep() -> Self::Keep {
                $crate::kernel::vector::Prepared::new()
            }
            $wrap! {
                fn prepare(
                    keep: &mut $crate::kernel::vector::Prepared<$n>,
                    plan: &$crate::kernel::DropPlan,
                    lo: usize,
                    hi: usize,
                ) {
                    keep.prepare::<<$v as $crate::lanes::F32s<$n>>::U>(plan, lo, hi);
                }
            }
            $wrap! {
                fn finish_prepared(
                    dst: &mut [f32],
                    lo: usize,
                    hi: usize,
                    factor: f32,
                    plan: &$crate::kernel::DropPlan,
                    keep: &mut $crate::kernel::vector::Prepared<$n>,
                ) {
                    $crate::kernel::vector::apply_kept::<$n, $v, { $crate::kernel::vector::LONG_SLOTS }>(
                        dst,
                        lo,
                        hi,
                        factor,
                        plan,
                        keep.mask(),
                        true,
                    )
                }
            }
            const SHORT: usize = $crate::kernel::vector::SHORT_CHUNKS * $n;
            const PAIRS: bool = <$v as $crate::lanes::F32s<$n>>::PAIRS;
            $wrap! {
                fn short_row(
                    src: Option<&[f32]>,
                    sc: &$crate::kernel::Scores<'_>,
                    dst: &mut [f32],
                    span: (usize, usize),
                    rescale: f32,
                    plan: Option<&$crate::kernel::DropPlan>,
                    keep: Option<&mut $crate::kernel::vector::Prepared<$n>>,
                ) -> Option<(f32, f32)> {
                    $crate::kernel::vector::short_row::<$n, $v>(
                        src, sc, dst, span, rescale, plan, keep,
                    )
                }
            }
            $wrap! {
                fn short_pair(
                    src: [Option<&[f32]>; 2],
                    sc: &$crate::kernel::Scores<'_>,
                    dst: [&mut [f32]; 2],
                    span: [(usize, usize); 2],
                    rescale: f32,
                ) -> Option<[(f32, f32); 2]> {
                    $crate::kernel::vector::short_pair::<$n, $v>(src, sc, dst, span, rescale)
                }
            }
            $wrap! {
                fn short_pair_train(
                    src: [Option<&[f32]>; 2],
                    sc: &$crate::kernel::Scores<'_>,
                    dst: [&mut [f32]; 2],
                    span: [(usize, usize); 2],
                    rescale: f32,
                    plan: [&$crate::kernel::DropPlan; 2],
                    keep: &mut $crate::kernel::vector::Prepared<$n>,
                ) -> Option<[(f32, f32); 2]> {
                    $crate::kernel::vector::short_pair_train::<$n, $v>(
                        src, sc, dst, span, rescale, plan, keep,
                    )
                }
            }
            $wrap! {
                fn zero(dst: &mut [f32]) {
                    $crate::kernel::vector::zero::<$n, $v>(dst)
                }
            }
            $wrap! {
                fn keep_words(
                    plan: &$crate::kernel::DropPlan,
                    first: usize,
                    words: &mut [u64; 64],
                    end: usize,
                ) {
                    $crate::kernel::vector::keep_words::<$n, $v>(plan, first, words, end)
                }
            }
            $wrap! {
                fn grad(
                    p: Option<&[f32]>,
                    dy: &[f32],
                    dx: &mut [f32],
                    lo: usize,
                    hi: usize,
                    rescale: f32,
                    plan: Option<&$crate::kernel::DropPlan>,
                    scale: f32,
                ) -> f32 {
                    $crate::kernel::vector::grad::<$n, $v>(
                        p, dy, dx, lo, hi, rescale, plan, scale,
                    )
                }
            }
            $wrap! {
                fn cap_grad(x: &[f32], dx: &mut [f32], lo: usize, hi: usize, s_over_c: f32) {
                    $crate::kernel::vector::cap_grad::<$n, $v>(x, dx, lo, hi, s_over_c)
                }
            }
        }
    };
}
pub(crate) use vector_passes;

/// `Passes::zero`: plain vector stores of an opaque zero, which keeps the loop from being turned
/// back into `memset`.
#[inline(always)]
pub(crate) fn zero<const N: usize, V: F32s<N>>(dst: &mut [f32]) {
    let z = V::splat(core::hint::black_box(0.0));
    for c in dst.as_chunks_mut::<N>().0.iter_mut() {
        z.store(c);
    }
    zero_remainder::<N, V>(dst, z);
}

/// `Passes::keep_words`: the keep bits of 64 words of 64 columns from `first`.
#[inline(always)]
pub(crate) fn keep_words<const N: usize, V: F32s<N>>(
    plan: &DropPlan,
    first: usize,
    words: &mut [u64; 64],
    end: usize,
) {
    let mut mask = BlockMask::<N, LONG_SLOTS>::new();
    for (i, w) in words.iter_mut().enumerate() {
        let j = first + 64 * i;
        *w = if j < end {
            mask.bits64::<V::U>(plan, j, end)
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::{Dropout, DropoutKey, tie_break};

    /// The full-queue branch of `BlockMask::queue_rest`, which real rows reach too rarely to be
    /// found (none in 24 million blocks of 4096 columns under the current layout): forty columns
    /// queued as ties of one slot, from an empty queue, fill it and settle it once in the middle.
    /// Each queued column must end decided by its tie-break word alone, the others untouched.
    #[test]
    fn a_full_queue_settles_every_tie_once() {
        let d = Dropout::new(0.1).unwrap();
        let key = DropoutKey::new(0x0123_4567_89AB_CDEF, 5);
        let plan = DropPlan::new(&d, key, 77).unwrap();
        let mut mask = BlockMask::<16, FORWARD_SLOTS>::new();
        mask.first = 0;
        mask.bits[0] = u64::MAX;
        let rest = (1u64 << 40) - 1;
        let len = mask.queue_rest::<wide::u32x16>(&plan, 0, 0, rest);
        assert_eq!(len, 40 - QUEUE, "one settle at 32, the rest still queued");
        mask.settle::<wide::u32x16>(&plan, len);
        for c in 0..64u32 {
            let kept = mask.bits[0] >> c & 1 == 1;
            let want = c >= 40 || tie_break(plan.key, plan.row, c) >= plan.d_lo;
            assert_eq!(kept, want, "column {c}");
        }
        // Some of the forty are dropped (each with probability d_lo / 2^24, 0.6 here), so the
        // test can see a tie settled wrongly.
        assert!(mask.bits[0].count_ones() < 64);
    }
}
