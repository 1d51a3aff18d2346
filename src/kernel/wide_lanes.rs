//! The three passes on `wide` vectors of `N` lanes, written once for every width.

use super::sealed::Passes;
use super::{DropPlan, Scores, Wide4, Wide8, Wide16};
use crate::dropout::{GROUP, main_counter};
use crate::exp::exp_rr2_p5;
use crate::lanes::{F32s, U32s};
use crate::mask::Columns;
use crate::philox::philox_lanes;
use wide::{f32x4, f32x8, f32x16};

/// Chunks summed into one partial vector before it joins the running total: keeps the longest
/// chain of f32 additions near `16 + n / (16 N)` instead of `n / N`.
const SUM_BLOCK: usize = 16;

/// Visibility of the `N` columns from `j0` as a lane mask (all bits set = visible).
#[inline(always)]
fn visible_lanes<const N: usize, V: F32s<N>>(columns: &Columns<'_>, j0: usize, valid: usize) -> V {
    let bits: [u32; N] = core::array::from_fn(|l| {
        if l < valid && columns.visible(j0 + l) {
            u32::MAX
        } else {
            0
        }
    });
    V::from_bits(V::U::from_array(bits))
}

/// `z` for one chunk; see `scalar::score` for the definition. `excluded` lanes become `-inf`.
#[inline(always)]
fn score_chunk<const N: usize, V: F32s<N>>(scale: V, x: V, b: Option<V>, excluded: Option<V>) -> V {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let sx = scale * x;
    let mut out_mask = x.eq_mask(neg_inf);
    let z = match b {
        Some(b) => {
            out_mask = out_mask | b.eq_mask(neg_inf);
            sx + b
        }
        None => sx,
    };
    if let Some(e) = excluded {
        out_mask = out_mask | e;
    }
    V::select(out_mask, neg_inf, z)
}

fn scores<const N: usize, V: F32s<N>>(
    sc: &Scores<'_>,
    src: Option<&[f32]>,
    dst: &mut [f32],
    lo: usize,
    hi: usize,
) -> (f32, bool) {
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let Some(seg) = dst.get_mut(lo..hi) else {
        return (f32::NEG_INFINITY, false);
    };
    let len = seg.len();
    let x_seg = src.and_then(|s| s.get(lo..hi));
    let b_seg = sc.bias.and_then(|b| b.get(lo..hi));
    let scale = V::splat(sc.scale);
    let has_columns = !matches!(sc.columns, Columns::All);
    let (mut vmax, mut vnan) = (neg_inf, V::splat(0.0));

    let (d_chunks, d_tail) = seg.as_chunks_mut::<N>();
    let mut x_chunks = x_seg.map(|x| x.as_chunks::<N>().0.iter());
    let mut b_chunks = b_seg.map(|b| b.as_chunks::<N>().0.iter());
    for (i, d) in d_chunks.iter_mut().enumerate() {
        let x = match x_chunks.as_mut().and_then(Iterator::next) {
            Some(x) => V::load(x),
            None => V::load(d),
        };
        let b = b_chunks.as_mut().and_then(Iterator::next).map(V::load);
        let j0 = lo + i * N;
        let excluded =
            has_columns.then(|| visible_lanes::<N, V>(&sc.columns, j0, N).eq_mask(V::splat(0.0)));
        let z = score_chunk(scale, x, b, excluded);
        vmax = vmax.max_fast(z);
        vnan = vnan | z.ne_mask(z);
        z.store(d);
    }

    let done = len - d_tail.len();
    if !d_tail.is_empty() {
        let tail_src = x_seg.and_then(|x| x.get(done..)).unwrap_or(d_tail);
        let mut xa = [0.0f32; N];
        for (a, s) in xa.iter_mut().zip(tail_src) {
            *a = *s;
        }
        let b = b_seg.and_then(|b| b.get(done..)).map(|b| {
            let mut ba = [0.0f32; N];
            for (a, s) in ba.iter_mut().zip(b) {
                *a = *s;
            }
            V::load(&ba)
        });
        let j0 = lo + done;
        // Lanes past the row end are excluded whatever the column mask says.
        let cols = if has_columns {
            sc.columns
        } else {
            Columns::All
        };
        let excluded = visible_lanes::<N, V>(&cols, j0, d_tail.len()).eq_mask(V::splat(0.0));
        let z = score_chunk(scale, V::load(&xa), b, Some(excluded));
        vmax = vmax.max_fast(z);
        vnan = vnan | z.ne_mask(z);
        let mut za = [0.0f32; N];
        z.store(&mut za);
        for (d, s) in d_tail.iter_mut().zip(za) {
            *d = s;
        }
    }
    (vmax.reduce_max(), vnan.any())
}

fn exp_sum<const N: usize, V: F32s<N>>(seg: &mut [f32], m: f32) -> f32 {
    let vm = V::splat(m);
    let zero = V::splat(0.0);
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let mut total = zero;
    for block in chunks.chunks_mut(SUM_BLOCK) {
        let mut acc = zero;
        for c in block {
            let e = exp_rr2_p5::<N, V>(V::load(c) - vm);
            e.store(c);
            acc = acc + e;
        }
        total = total + acc;
    }
    if !tail.is_empty() {
        let mut a = [f32::NEG_INFINITY; N];
        for (d, s) in a.iter_mut().zip(tail.iter()) {
            *d = *s;
        }
        let e = exp_rr2_p5::<N, V>(V::load(&a) - vm);
        e.store(&mut a);
        for (d, s) in tail.iter_mut().zip(a) {
            *d = s;
        }
        total = total + e;
    }
    total.reduce_add()
}

/// The main-stream bytes of one 256-column group, for `N`-lane chunks: batch `k` holds blocks
/// `16 g + k N + lane`, words 0..4.
struct GroupBits<const N: usize, U> {
    group: usize,
    batches: [[U; 4]; 4],
}

impl<const N: usize, U: U32s<N>> GroupBits<N, U> {
    fn new() -> Self {
        Self {
            group: usize::MAX,
            batches: [[U::splat(0); 4]; 4],
        }
    }

    /// The lanes of the `N` columns from `j0` (a multiple of `N`) that survive, as a mask.
    #[inline(always)]
    fn keep_mask(&mut self, plan: &DropPlan, j0: usize) -> U {
        let g = j0 / GROUP;
        if g != self.group {
            self.group = g;
            let iota = U::from_array(core::array::from_fn(|l| l as u32));
            let [r0, r1] = plan.row;
            for (k, batch) in self.batches.iter_mut().take(16 / N).enumerate() {
                let first = main_counter((16 * g + k * N) as u32, plan.row)[0];
                let ctr = [
                    U::splat(first) + iota,
                    U::splat(0),
                    U::splat(r0),
                    U::splat(r1),
                ];
                *batch = philox_lanes::<N, U>(ctr, plan.key);
            }
        }
        let k = (j0 % 16) / N;
        let word = (j0 / 16) % 4;
        let byte = (j0 / 64) % 4;
        let w = self.batches[k & 3][word & 3];
        let bytes = (w >> (8 * byte as u32)) & U::splat(0xFF);
        if plan.d_lo == 0 {
            // d_hi >= 1 here: D > 0 and a multiple of 2^24.
            return bytes.gt_mask_i32(U::splat(plan.d_hi - 1));
        }
        let kept = bytes.gt_mask_i32(U::splat(plan.d_hi));
        let ties = bytes.eq_mask(U::splat(plan.d_hi));
        if !ties.any() {
            return kept;
        }
        let (ties, mut kept) = (ties.to_array(), kept.to_array());
        for (l, (t, k)) in ties.iter().zip(kept.iter_mut()).enumerate() {
            if *t != 0
                && crate::dropout::tie_break(plan.key, plan.row, (j0 + l) as u32) >= plan.d_lo
            {
                *k = u32::MAX;
            }
        }
        U::from_array(kept)
    }
}

fn finish<const N: usize, V: F32s<N>>(
    dst: &mut [f32],
    lo: usize,
    hi: usize,
    factor: f32,
    plan: Option<&DropPlan>,
) {
    // Chunks start at multiples of N so that each reads its mask bytes with one shift; the
    // lanes before `lo` hold zeros and stay zeros.
    let start = lo - lo % N;
    let Some(seg) = dst.get_mut(start..hi) else {
        return;
    };
    let vf = V::splat(factor);
    let zero = V::splat(0.0);
    let (chunks, tail) = seg.as_chunks_mut::<N>();
    let done = chunks.len() * N;
    match plan {
        None => {
            for c in chunks.iter_mut() {
                (V::load(c) * vf).store(c);
            }
        }
        Some(plan) => {
            let mut bits = GroupBits::<N, V::U>::new();
            for (i, c) in chunks.iter_mut().enumerate() {
                let keep = V::from_bits(bits.keep_mask(plan, start + i * N));
                V::select(keep, V::load(c) * vf, zero).store(c);
            }
            if !tail.is_empty() {
                let mut a = [0.0f32; N];
                for (d, s) in a.iter_mut().zip(tail.iter()) {
                    *d = *s;
                }
                let keep = V::from_bits(bits.keep_mask(plan, start + done));
                V::select(keep, V::load(&a) * vf, zero).store(&mut a);
                for (d, s) in tail.iter_mut().zip(a) {
                    *d = s;
                }
            }
            return;
        }
    }
    for v in tail.iter_mut() {
        *v *= factor;
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
