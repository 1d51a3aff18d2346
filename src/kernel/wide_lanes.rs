//! The three passes on `wide` vectors of `N` lanes, written once for every width.
//!
//! Loops take chunks in pairs with two accumulators: a single `max` or `add` chain would cost
//! its full latency per chunk. Rows that do not fill a chunk are finished through a padded
//! copy, so every lane count runs the same arithmetic on every element.

use super::sealed::Passes;
use super::{DropPlan, Scores, Wide4, Wide8, Wide16};
use crate::dropout::{GROUP, main_counter};
use crate::exp::exp_rr2_p5;
use crate::lanes::{F32s, U32s};
use crate::mask::Columns;
use crate::philox::{philox_lanes, philox_lanes_x2};
use wide::{f32x4, f32x8, f32x16};

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
fn score_loop<const N: usize, V: F32s<N>, const OUT: bool, const BIAS: bool, const FIX: bool>(
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

fn scores<const N: usize, V: F32s<N>>(
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
            seg.copy_from_slice(x);
        }
        for (j, v) in (lo..).zip(seg.iter_mut()) {
            if !sc.columns.visible(j) {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    let bias = sc.bias.and_then(|b| b.get(lo..hi));
    let s = sc.scale;
    match (x, bias) {
        (Some(x), Some(b)) => score_loop::<N, V, true, true, true>(x, seg, b, s),
        (Some(x), None) if s > 0.0 => score_loop::<N, V, true, false, false>(x, seg, &[], s),
        (Some(x), None) => score_loop::<N, V, true, false, true>(x, seg, &[], s),
        (None, Some(b)) => score_loop::<N, V, false, true, true>(&[], seg, b, s),
        (None, None) if s > 0.0 => score_loop::<N, V, false, false, false>(&[], seg, &[], s),
        (None, None) => score_loop::<N, V, false, false, true>(&[], seg, &[], s),
    }
}

/// Lanes `l >= N - r` set: the last `r` lanes of an overlapping final chunk are new.
#[inline(always)]
fn last_lanes<const N: usize, V: F32s<N>>(r: usize) -> V {
    let iota = V::U::from_array(core::array::from_fn(|l| l as u32));
    V::from_bits(iota.gt_mask_i32(V::U::splat((N - r - 1) as u32)))
}

fn exp_sum<const N: usize, V: F32s<N>>(seg: &mut [f32], m: f32) -> f32 {
    let vm = V::splat(m);
    let zero = V::splat(0.0);
    let r = seg.len() % N;
    // The overlapping last chunk (see `score_loop`), its already-counted lanes left out of the sum.
    let last = match seg.last_chunk::<N>() {
        Some(z) if r != 0 => Some(exp_rr2_p5::<N, V>(V::load(z) - vm)),
        _ => None,
    };
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let (pairs, odd) = chunks.as_chunks_mut::<2>();
    let mut total = zero;
    for block in pairs.chunks_mut(SUM_BLOCK) {
        let mut acc = [zero; 2];
        for [c0, c1] in block.iter_mut() {
            let e0 = exp_rr2_p5::<N, V>(V::load(c0) - vm);
            let e1 = exp_rr2_p5::<N, V>(V::load(c1) - vm);
            e0.store(c0);
            e1.store(c1);
            acc[0] = acc[0] + e0;
            acc[1] = acc[1] + e1;
        }
        total = total + (acc[0] + acc[1]);
    }
    for c in odd.iter_mut() {
        let e = exp_rr2_p5::<N, V>(V::load(c) - vm);
        e.store(c);
        total = total + e;
    }
    if let Some(e) = last {
        total = total + V::select(last_lanes::<N, V>(r), e, zero);
        if let Some(c) = seg.last_chunk_mut::<N>() {
            e.store(c);
        }
    } else if !tail.is_empty() {
        let e = exp_rr2_p5::<N, V>(load_padded::<N, V>(tail, f32::NEG_INFINITY) - vm);
        store_partial(e, tail);
        total = total + e;
    }
    total.reduce_add()
}

/// Up to `N` tied columns (offsets from the first column of the group pair) waiting for their
/// tie-break words.
struct TieBatch<const N: usize> {
    cols: [u32; N],
    len: usize,
}

/// Keep decisions of two consecutive 256-column groups, `g` and `g + 1`, as bits: bit `i` of
/// `bits[4 gg + w]` decides column `256 (g + gg) + 64 w + i` (see the layout in `dropout`).
/// Generating them in bulk keeps the generator's work (two Philox chains in flight, one byte
/// comparison per word, rare tie-breaks settled together) out of the loop that applies them,
/// which then costs a shift, a broadcast and a compare per chunk.
struct GroupMask {
    group: usize,
    bits: [u64; 8],
}

impl GroupMask {
    fn new() -> Self {
        // Neither this nor its successor is a real group (groups are below 2^24).
        Self {
            group: usize::MAX - 1,
            bits: [0; 8],
        }
    }

    /// Generates groups `g` and, when the row reaches it (`end` columns), `g + 1`.
    #[inline(never)]
    fn fill<const N: usize, U: U32s<N>>(&mut self, plan: &DropPlan, g: usize, end: usize) {
        self.group = g;
        self.bits = [0; 8];
        let groups = if (g + 1) * GROUP < end { 2 } else { 1 };
        // A constant, not a captured local: the closures below must divide by a known non-zero.
        const fn batches<const N: usize>() -> usize {
            16 / N
        }
        let iota = U::from_array(core::array::from_fn(|l| l as u32));
        let [r0, r1] = plan.row;
        let counter = |job: usize| {
            let (gg, k) = (
                job / const { batches::<N>() },
                job % const { batches::<N>() },
            );
            let first = main_counter((16 * (g + gg) + k * N) as u32, plan.row)[0];
            [
                U::splat(first) + iota,
                U::splat(0),
                U::splat(r0),
                U::splat(r1),
            ]
        };
        // With d_lo = 0 the test is `>= d_hi` (d_hi >= 1 as D > 0), and there are no ties.
        let (gt, tie) = if plan.d_lo == 0 {
            ((plan.d_hi - 1) as u8, None)
        } else {
            (plan.d_hi as u8, Some(plan.d_hi as u8))
        };
        let mut ties = [0u64; 8];
        let mut any_tie = 0;
        let mut record = |job: usize, words: [U; 4]| {
            let (gg, k) = (
                job / const { batches::<N>() },
                job % const { batches::<N>() },
            );
            for (w, word) in words.into_iter().enumerate() {
                let (kept, tied) = word.byte_masks(gt, tie.unwrap_or(0));
                let slot = (4 * gg + w) & 7;
                self.bits[slot] |= kept << (4 * N * k);
                if tie.is_some() {
                    ties[slot] |= tied << (4 * N * k);
                    any_tie |= tied;
                }
            }
        };
        let jobs = groups * batches::<N>();
        let mut job = 0;
        while job + 1 < jobs {
            let (a, b) = philox_lanes_x2::<N, U>(counter(job), counter(job + 1), plan.key);
            record(job, a);
            record(job + 1, b);
            job += 2;
        }
        if job < jobs {
            record(job, philox_lanes::<N, U>(counter(job), plan.key));
        }
        // Rare (1/256 per element): settle the ties with their 24-bit tie-break words, N at a
        // time through one vector Philox (one scalar block per tie costs its full latency).
        if any_tie != 0 {
            let mut batch = TieBatch::<N> {
                cols: [0; N],
                len: 0,
            };
            for (slot, t) in (0u32..).zip(ties) {
                let mut t = t;
                while t != 0 {
                    if let Some(c) = batch.cols.get_mut(batch.len) {
                        *c = 64 * slot + t.trailing_zeros();
                    }
                    batch.len += 1;
                    t &= t - 1;
                    if batch.len == N {
                        self.settle::<N, U>(plan, g, &batch);
                        batch.len = 0;
                    }
                }
            }
            if batch.len > 0 {
                self.settle::<N, U>(plan, g, &batch);
            }
        }
    }

    /// Keeps the tied columns of `batch` whose tie-break word is at least `d_lo`.
    #[inline(never)]
    fn settle<const N: usize, U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        g: usize,
        batch: &TieBatch<N>,
    ) {
        let [r0, r1] = plan.row;
        let base = (g * GROUP) as u32;
        let ctr = [
            U::from_array(batch.cols) + U::splat(base),
            U::splat(1),
            U::splat(r0),
            U::splat(r1),
        ];
        let t = philox_lanes::<N, U>(ctr, plan.key)[0] & U::splat(0x00FF_FFFF);
        // t >= d_lo as t > d_lo - 1 (d_lo >= 1 when there are ties; t < 2^24 compares as i32).
        let mut kept = t.gt_mask_i32(U::splat(plan.d_lo - 1)).bitmask() & ((1u32 << batch.len) - 1);
        while kept != 0 {
            let i = kept.trailing_zeros() as usize;
            kept &= kept - 1;
            if let Some(&c) = batch.cols.get(i)
                && let Some(bits) = self.bits.get_mut((c / 64) as usize)
            {
                *bits |= 1 << (c % 64);
            }
        }
    }

    /// The keep bits of the 64 columns from `j` rounded down to 64, generating them if needed.
    #[inline(always)]
    fn bits64<const N: usize, U: U32s<N>>(&mut self, plan: &DropPlan, j: usize, end: usize) -> u64 {
        let g = j / GROUP;
        if g != self.group && g != self.group.wrapping_add(1) {
            self.fill::<N, U>(plan, g, end);
        }
        let slot = ((g.wrapping_sub(self.group) & 1) * 4 + (j % GROUP) / 64) & 7;
        self.bits[slot]
    }

    /// The lanes of the `N` columns from `j0` (a multiple of `N`) that survive, as a mask.
    #[inline(always)]
    fn keep_mask<const N: usize, U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        j0: usize,
        end: usize,
    ) -> U {
        let bits = (self.bits64::<N, U>(plan, j0, end) >> (j0 % 64)) as u32;
        let lane_bits = U::from_array(core::array::from_fn(|l| 1u32 << l));
        (U::splat(bits) & lane_bits).eq_mask(lane_bits)
    }

    /// Whether column `j` survives.
    #[inline(always)]
    fn keep_bit<const N: usize, U: U32s<N>>(
        &mut self,
        plan: &DropPlan,
        j: usize,
        end: usize,
    ) -> bool {
        self.bits64::<N, U>(plan, j, end) >> (j % 64) & 1 == 1
    }
}

fn finish<const N: usize, V: F32s<N>>(
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
    // Chunks start at multiples of N so that each reads its keep bits with one shift; the
    // lanes before `lo` hold zeros and stay zeros.
    let start = lo - lo % N;
    let Some(seg) = dst.get_mut(start..hi) else {
        return;
    };
    let zero = V::splat(0.0);
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let done = start + chunks.len() * N;
    let mut mask = GroupMask::new();
    for (i, c) in chunks.iter_mut().enumerate() {
        let keep = V::from_bits(mask.keep_mask::<N, V::U>(plan, start + i * N, hi));
        V::select(keep, V::load(c) * vf, zero).store(c);
    }
    for (j, v) in (done..).zip(tail.iter_mut()) {
        *v = if mask.keep_bit::<N, V::U>(plan, j, hi) {
            *v * factor
        } else {
            0.0
        };
    }
}

macro_rules! wide_passes {
    ($kernel:ty, $n:literal, $v:ty) => {
        impl Passes for $kernel {
            fn scores(
                sc: &Scores<'_>,
                src: Option<&[f32]>,
                dst: &mut [f32],
                lo: usize,
                hi: usize,
            ) -> (f32, bool) {
                scores::<$n, $v>(sc, src, dst, lo, hi)
            }
            fn exp_sum(seg: &mut [f32], m: f32) -> f32 {
                exp_sum::<$n, $v>(seg, m)
            }
            fn finish(dst: &mut [f32], lo: usize, hi: usize, factor: f32, plan: Option<&DropPlan>) {
                finish::<$n, $v>(dst, lo, hi, factor, plan)
            }
        }
    };
}

wide_passes!(Wide4, 4, f32x4);
wide_passes!(Wide8, 8, f32x8);
wide_passes!(Wide16, 16, f32x16);
