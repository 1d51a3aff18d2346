//! Contract §5: no allocation anywhere in the kernels or the generator.
//!
//! A counting `#[global_allocator]` wraps `std::alloc::System` and counts `alloc`,
//! `alloc_zeroed`, `realloc` and `dealloc` calls, but only on a thread that has switched counting
//! on, and only while it is on: [`measure`] turns it on around a closure on the calling thread.
//! The test harness runs tests on several threads at once, so a process-wide counter would also
//! see the other tests' allocations; with a per-thread switch and per-thread counts, the count of
//! a measured region is exactly the allocations made by that region's own code (the kernels are
//! `no_std` and spawn no thread, so nothing they do can happen on another thread).
//!
//! Every buffer is allocated before the region starts; inside it the tests call every public
//! kernel (the four `forward*` methods in evaluation and training, every mask kind, with and
//! without a bias, special rows, error paths), dropout alone, the mask's definition and the
//! generator, on every kernel variant, for short (0, 1, 17) and long (4096, 16384) rows.
//!
//! [`counter_counts_a_deliberate_allocation`] shows the counter works (a `Vec` in the region is
//! counted, allocations on another thread are not), so a zero can not be vacuous.
//!
//! This file needs `unsafe` for implementing `GlobalAlloc`. The library itself denies
//! `unsafe_code` except in one register-only AVX-512 function (`lanes::exp_finish_avx512`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::hint::black_box;

use dropmax::philox::{
    Philox4x32, philox4x32_10, philox4x32_10_x4, philox4x32_10_x8, philox4x32_10_x16,
};
use dropmax::wide::{u32x4, u32x8, u32x16};
use dropmax::{
    Dropout, DropoutKey, Error, Mask, MatrixProbabilities, Mode, Probabilities, RowKernel,
    RowStats, SoftmaxDropout, keep, mask_uniform,
};
use rand_core::{Rng, SeedableRng};

/// Allocation calls seen on one thread while counting was on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    alloc: u64,
    realloc: u64,
    dealloc: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.alloc + self.realloc + self.dealloc
    }
}

// Const-initialised thread locals of `Copy` types without `Drop`: reading or writing them never
// allocates and registers no destructor, so the allocator itself may use them.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static REALLOCS: Cell<u64> = const { Cell::new(0) };
    static DEALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Adds one to `counter` if this thread is counting. `try_with` never panics (not even during
/// thread teardown), which an allocator must not do.
fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }
}

struct CountingAlloc;

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is a thread-local counter update, which neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&DEALLOCS);
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&REALLOCS);
        // SAFETY: `ptr` was returned by `System` with `layout`; the caller guarantees
        // `new_size` is valid for `layout.align()`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` with allocation counting on for this thread; returns its result and the counts.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Counts) {
    ALLOCS.set(0);
    REALLOCS.set(0);
    DEALLOCS.set(0);
    COUNTING.set(true);
    let r = f();
    COUNTING.set(false);
    let counts = Counts {
        alloc: ALLOCS.get(),
        realloc: REALLOCS.get(),
        dealloc: DEALLOCS.get(),
    };
    (r, counts)
}

#[test]
fn counter_counts_a_deliberate_allocation() {
    // A Vec allocated, grown and dropped inside the region: one of each call.
    let (_, c) = measure(|| {
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend(0..4);
        v.push(black_box(4)); // beyond the capacity: realloc
        black_box(&v);
        drop(v);
    });
    assert_eq!(
        c,
        Counts {
            alloc: 1,
            realloc: 1,
            dealloc: 1
        }
    );
    // A `Box` and a `String` from formatting are counted too.
    let (_, c) = measure(|| black_box(Box::new(black_box(7u64))));
    assert_eq!(c.alloc, 1);
    let (_, c) = measure(|| black_box(format!("{}", black_box(12345))).len());
    assert!(c.alloc >= 1, "{c:?}");
    // Nothing in the region: nothing counted.
    let (_, c) = measure(|| black_box(1 + black_box(2)));
    assert_eq!(c, Counts::default());
    // Allocations on another thread while this one counts are not this region's: the region
    // lasts until the worker has allocated 1000 more times.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, made) = (stop.clone(), made.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(vec![1u8; 64]);
                made.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (seen, c) = measure(|| {
        let start = made.load(Ordering::Relaxed);
        while made.load(Ordering::Relaxed) < start + 1000 {
            std::hint::spin_loop();
        }
        made.load(Ordering::Relaxed) - start
    });
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(seen >= 1000);
    assert_eq!(c, Counts::default());
}

/// Row lengths: short ones (empty, one column, a vector and a tail) and long ones.
const LENGTHS: [usize; 5] = [0, 1, 17, 4096, 16384];
/// Rows per matrix call.
const ROWS: usize = 3;

/// Every buffer a length needs, allocated before any measured region.
struct Buffers {
    n: usize,
    /// `ROWS` rows of ordinary logits.
    x: Vec<f32>,
    /// Output / in-place scratch of the same size.
    y: Vec<f32>,
    /// One row with a NaN, one with `+inf`, one with only `-inf`.
    nan_row: Vec<f32>,
    inf_row: Vec<f32>,
    neg_inf_row: Vec<f32>,
    bias: Vec<f32>,
    bools: Vec<bool>,
    bits: Vec<u8>,
    stats: Vec<RowStats>,
    /// Wrong lengths, for the error paths.
    y_bad: Vec<f32>,
    bias_bad: Vec<f32>,
    bools_bad: Vec<bool>,
    bits_bad: Vec<u8>,
    stats_bad: Vec<RowStats>,
    bytes: Vec<u8>,
}

impl Buffers {
    fn new(n: usize) -> Self {
        let mut r = common::rng(n as u64);
        let x = common::row(&mut r, ROWS * n, -4.0, 4.0);
        let mut nan_row = common::row(&mut r, n, -4.0, 4.0);
        let mut inf_row = nan_row.clone();
        if n > 0 {
            nan_row[n / 2] = f32::NAN;
            inf_row[n / 3] = f32::INFINITY;
            inf_row[n - 1] = f32::INFINITY;
        }
        let bools: Vec<bool> = (0..n).map(|j| j % 3 != 1).collect();
        let mut bits = vec![0u8; n.div_ceil(8)];
        for (j, &b) in bools.iter().enumerate() {
            bits[j / 8] |= u8::from(b) << (j % 8);
        }
        Self {
            n,
            y: vec![0.0; x.len()],
            x,
            nan_row,
            inf_row,
            neg_inf_row: vec![f32::NEG_INFINITY; n],
            bias: common::row(&mut r, n, -1.0, 1.0),
            bools,
            bits,
            stats: vec![RowStats::EMPTY; ROWS],
            y_bad: vec![0.0; n + 1],
            bias_bad: vec![0.0; n + 1],
            bools_bad: vec![true; n + 1],
            bits_bad: vec![0xFF; n.div_ceil(8) + 1],
            stats_bad: vec![RowStats::EMPTY; ROWS + 1],
            bytes: vec![0; n],
        }
    }
}

/// What a measured region saw, checked after it ends (assertion messages allocate).
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    err: u64,
    /// A checksum of outputs, so that nothing is optimised away.
    sum: u64,
    /// Formatting calls that failed (the fixed buffer is large enough for all of them).
    fmt_failures: u64,
}

impl Tally {
    fn note<T>(&mut self, r: Result<T, Error>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(_) => self.err += 1,
        }
    }

    fn mix(&mut self, v: u64) {
        self.sum = self.sum.rotate_left(5) ^ v;
    }
}

fn masks<'a>(n: usize, bools: &'a [bool], bits: &'a [u8]) -> [Mask<'a>; 9] {
    [
        Mask::none(),
        Mask::causal(n / 2),
        Mask::sliding_window(n / 2, 5),
        Mask::sliding_window(n, 0),
        Mask::band(n / 3, 2, 7),
        Mask::key_len(n / 2),
        Mask::causal(n / 2).with_key_len(n / 3 + 1),
        Mask::none().with_columns(bools),
        Mask::causal(n).with_column_bits(bits),
    ]
}

/// Error results per mode in [`exercise_kernels`], plus the constructors' three.
const KERNEL_ERRORS: u64 = 5 * 11 + 3;
/// Invalid probabilities in [`exercise_dropout`].
const DROPOUT_ERRORS: u64 = 5;

/// Every `forward*` method, every mode, every mask, with and without bias, special rows and
/// error paths, on kernel `K`, for one row length. Runs inside a measured region.
fn exercise_kernels<K: RowKernel>(b: &mut Buffers, t: &mut Tally) {
    let Buffers {
        n,
        x,
        y,
        nan_row,
        inf_row,
        neg_inf_row,
        bias,
        bools,
        bits,
        stats,
        y_bad,
        bias_bad,
        bools_bad,
        bits_bad,
        stats_bad,
        ..
    } = b;
    let n = *n;
    let key = DropoutKey::new(u64::MAX - 1, u64::MAX - 1); // row ids wrap inside the matrix
    // p = 0 (no generator), 0.1 (tie-breaks needed), 0.5 (none), 1 (drops all).
    let modes = [
        Mode::Eval,
        Mode::Train {
            dropout: Dropout::new(0.0).unwrap(),
            key,
        },
        Mode::Train {
            dropout: Dropout::new(0.1).unwrap(),
            key,
        },
        Mode::Train {
            dropout: Dropout::new(0.5).unwrap(),
            key,
        },
        Mode::Train {
            dropout: Dropout::new(1.0).unwrap(),
            key,
        },
    ];
    for mode in modes {
        let base = SoftmaxDropout::new(0.7, mode).unwrap().with_kernel::<K>();
        t.mix(u64::from(base.mode() == Mode::Eval));
        for mask in masks(n, bools, bits) {
            for with_bias in [false, true] {
                let mut op = base.with_mask(mask);
                if with_bias {
                    op = op.with_bias(bias);
                }
                let row = &x[..n];
                let st = op.forward(5, row, &mut y[..n]);
                if let Ok(st) = st {
                    t.mix(u64::from(st.lse().to_bits()));
                }
                t.note(st);
                y[..n].copy_from_slice(row);
                t.note(op.forward_in_place(6, &mut y[..n]));
                // A matrix of zero-length rows has zero rows (and takes zero statistics).
                let rows = if n == 0 { 0 } else { ROWS };
                t.note(op.forward_rows(u64::MAX, n, x, y, Some(&mut stats[..rows])));
                y.copy_from_slice(x);
                t.note(op.forward_rows_in_place(7, n, y, None));
                t.mix(y.iter().fold(0, |a, v| a ^ u64::from(v.to_bits())));
                // Special rows: NaN, +inf (the infinite-row path) and only -inf.
                for special in [&*nan_row, &*inf_row, &*neg_inf_row] {
                    t.note(op.forward(9, special, &mut y[..n]));
                }
            }
        }
        // Error paths (11 per mode, errors for every n): nothing written, nothing allocated.
        t.note(base.forward(0, &x[..n], y_bad));
        t.note(base.with_bias(bias_bad).forward(0, &x[..n], &mut y[..n]));
        t.note(base.with_bias(bias_bad).forward_in_place(0, &mut y[..n]));
        let bad_cols = Mask::none().with_columns(bools_bad);
        t.note(base.with_mask(bad_cols).forward(0, &x[..n], &mut y[..n]));
        let bad_bits = Mask::none().with_column_bits(bits_bad);
        t.note(base.with_mask(bad_bits).forward(0, &x[..n], &mut y[..n]));
        t.note(base.forward_rows(0, n, x, y_bad, None));
        t.note(base.forward_rows(0, n + 2, y_bad, bias_bad, None));
        t.note(base.forward_rows(0, 0, y_bad, bias_bad, None));
        t.note(base.forward_rows(0, n, x, y, Some(stats_bad)));
        t.note(base.forward_rows_in_place(0, n, y, Some(stats_bad)));
        t.note(base.forward_rows_in_place(0, n + 2, y_bad, None));
    }
    // Constructors' error paths.
    t.note(SoftmaxDropout::eval(f32::NAN));
    t.note(SoftmaxDropout::eval(f32::INFINITY));
    t.note(SoftmaxDropout::train(
        f32::NEG_INFINITY,
        Dropout::new(0.5).unwrap(),
        key,
    ));
}

/// The backward pass, split rows and the mask export, on kernel `K` (no error paths here, so the
/// error count of the region is unchanged).
fn exercise_training_api<K: RowKernel>(b: &mut Buffers, t: &mut Tally) {
    let n = b.n;
    if n == 0 {
        return; // Empty rows and their error paths are exercised above.
    }
    let key = DropoutKey::new(9, 10);
    for op in [
        SoftmaxDropout::eval(0.5).unwrap(),
        SoftmaxDropout::train(0.5, Dropout::new(0.1).unwrap(), key)
            .unwrap()
            .with_mask(Mask::causal(n / 2)),
    ] {
        let op = op.with_kernel::<K>();
        let mut st = [RowStats::EMPTY; ROWS];
        t.note(op.forward_rows(0, n, &b.x[..ROWS * n], &mut b.y[..ROWS * n], Some(&mut st)));
        let (x, y) = (&b.x[..n], &mut b.y[..n]);
        t.note(op.backward(0, Probabilities::Saved(x), x, y));
        t.note(op.backward(
            0,
            Probabilities::Recompute {
                logits: x,
                stats: st[0],
            },
            x,
            y,
        ));
        t.note(op.backward_rows(
            0,
            n,
            MatrixProbabilities::Saved(&b.x[..ROWS * n]),
            &b.x[..ROWS * n],
            &mut b.y[..ROWS * n],
        ));
        let probs = MatrixProbabilities::Recompute {
            logits: &b.x[..ROWS * n],
            stats: &st,
        };
        t.note(op.backward_rows(0, n, probs, &b.x[..ROWS * n], &mut b.y[..ROWS * n]));
        let (x, y) = (&b.x[..n], &mut b.y[..n]);
        let half = (n / 2) & !63;
        let s = op
            .chunk_stats(0, &x[..half], &mut y[..half])
            .unwrap_or(RowStats::EMPTY);
        let s = s.merge(
            op.chunk_stats(half, &x[half..], &mut y[half..])
                .unwrap_or(RowStats::EMPTY),
        );
        t.note(op.forward_chunk(0, 0, s, &x[..half], &mut y[..half]));
        t.note(op.forward_chunk(0, half, s, &x[half..], &mut y[half..]));
        t.mix(u64::from(s.sum.to_bits()));
    }
    t.note(Dropout::new(0.3).unwrap().mask_bits(key, 5, &mut b.bytes));
    t.mix(b.bytes.iter().fold(0, |a, &v| a ^ u64::from(v)));
}

/// Dropout alone and the mask's definition, on kernel `K`.
fn exercise_dropout<K: RowKernel>(b: &mut Buffers, t: &mut Tally) {
    let n = b.n;
    for p in [0.0, 0.1, 1.0 / 3.0, 0.5, 1.0 - 1e-7, 1.0] {
        let d = Dropout::new(p);
        t.note(d);
        let Ok(d) = d else { continue };
        t.mix(d.threshold() ^ d.keep_probability().to_bits() ^ u64::from(d.rescale().to_bits()));
        t.mix(u64::from(d.keeps_all()) ^ u64::from(d.drops_all()) ^ d.p().to_bits());
        for key in [DropoutKey::new(1, 2), DropoutKey::new(u64::MAX, u64::MAX)] {
            b.y.copy_from_slice(&b.x);
            t.note(d.apply(key, 3, &mut b.y[..n]));
            t.note(d.apply_with::<K>(key, u64::MAX, &mut b.y[..n]));
            t.note(d.apply_with::<K>(key, 4, &mut b.y));
            // The definition, on the short rows and the first columns of the long ones.
            for j in 0..n.min(64) as u32 {
                t.mix(u64::from(keep(&d, key, 3, j)) ^ u64::from(mask_uniform(key, 3, j)));
            }
        }
    }
    for p in [f64::NAN, -0.5, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
        t.note(Dropout::new(p));
    }
}

/// The generator: single blocks, SIMD blocks, the `rand_core` stream.
fn exercise_philox(b: &mut Buffers, t: &mut Tally) {
    let key = [0xDEAD_BEEF, 0x0BAD_CAFE];
    let ctr = [1, 2, u32::MAX, 4];
    t.mix(u64::from(philox4x32_10(ctr, key)[3]));
    let x4 = philox4x32_10_x4(ctr.map(u32x4::splat), key);
    let x8 = philox4x32_10_x8(ctr.map(u32x8::splat), key);
    let x16 = philox4x32_10_x16(
        [
            u32x16::new(core::array::from_fn(|l| l as u32)),
            u32x16::splat(0),
            u32x16::splat(u32::MAX),
            u32x16::splat(7),
        ],
        key,
    );
    t.mix(u64::from(
        x4[0].to_array()[1] ^ x8[1].to_array()[7] ^ x16[3].to_array()[15],
    ));

    let mut rngs = [
        Philox4x32::new(key, [u32::MAX, u32::MAX, u32::MAX, u32::MAX]),
        Philox4x32::seed_from_u64(u64::MAX),
        Philox4x32::from_seed([0xA5; 24]),
    ];
    for rng in &mut rngs {
        t.mix(u64::from(rng.next_u32()));
        t.mix(rng.next_u64());
        rng.fill_bytes(&mut b.bytes);
        rng.fill_bytes(&mut b.bytes[..b.n.min(3)]);
        let copy = rng.clone();
        t.mix(u64::from(copy == *rng) ^ u64::from(copy.counter()[0]) ^ u64::from(copy.key()[1]));
    }
    t.mix(
        b.bytes
            .iter()
            .fold(0, |a, &v| a.rotate_left(3) ^ u64::from(v)),
    );
}

/// Errors and the public types format into a fixed buffer without allocating.
fn exercise_formatting(t: &mut Tally) {
    struct Fixed {
        buf: [u8; 512],
        len: usize,
    }
    impl std::fmt::Write for Fixed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            dst.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut f = Fixed {
        buf: [0; 512],
        len: 0,
    };
    for e in [
        Error::NonFiniteScale,
        Error::InvalidProbability,
        Error::LengthMismatch {
            expected: 3,
            found: 4,
        },
        Error::RowTooLong,
    ] {
        f.len = 0;
        t.fmt_failures += u64::from(write!(f, "{e} {e:?}").is_err());
    }
    f.len = 0;
    let op = SoftmaxDropout::eval(0.5)
        .unwrap()
        .with_mask(Mask::causal(3));
    t.fmt_failures += u64::from(write!(f, "{op:?} {:?}", RowStats::EMPTY).is_err());
    t.mix(f.len as u64);
}

fn no_alloc_for<K: RowKernel>() {
    for n in LENGTHS {
        let mut b = Buffers::new(n);
        let mut t = Tally::default();
        let ((), c) = measure(|| {
            exercise_kernels::<K>(&mut b, &mut t);
            exercise_dropout::<K>(&mut b, &mut t);
            exercise_training_api::<K>(&mut b, &mut t);
            exercise_philox(&mut b, &mut t);
            exercise_formatting(&mut t);
        });
        assert_eq!(c.total(), 0, "{} n={n}: allocation calls {c:?}", K::NAME);
        // The region really ran the kernels, including their error paths.
        assert_eq!(
            t.err,
            KERNEL_ERRORS + DROPOUT_ERRORS,
            "{} n={n}: {t:?}",
            K::NAME
        );
        assert!(t.ok >= 5 * 9 * 2 * 7, "{} n={n}: {t:?}", K::NAME);
        assert_eq!(t.fmt_failures, 0);
        black_box(t.sum);
    }
}

#[test]
fn scalar_allocates_nothing() {
    no_alloc_for::<dropmax::Scalar>();
}

#[test]
fn wide4_allocates_nothing() {
    no_alloc_for::<dropmax::Wide4>();
}

#[test]
fn wide8_allocates_nothing() {
    no_alloc_for::<dropmax::Wide8>();
}

#[test]
fn wide16_allocates_nothing() {
    no_alloc_for::<dropmax::Wide16>();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_allocates_nothing() {
    if common::runnable::<dropmax::Avx2>() {
        no_alloc_for::<dropmax::Avx2>();
    }
}
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_allocates_nothing() {
    if common::runnable::<dropmax::Avx512>() {
        no_alloc_for::<dropmax::Avx512>();
    }
}

#[test]
fn best_default_allocates_nothing() {
    // The default kernel through the default-typed API (no `with_kernel`).
    let mut b = Buffers::new(257);
    let key = DropoutKey::new(3, 4);
    let ((), c) = measure(|| {
        let op = SoftmaxDropout::train(0.5, Dropout::new(0.2).unwrap(), key)
            .unwrap()
            .with_mask(Mask::causal(100))
            .with_bias(&b.bias);
        let _ = black_box(op.forward(0, &b.x[..257], &mut b.y[..257]));
        let _ = black_box(
            SoftmaxDropout::eval(1.0)
                .unwrap()
                .forward_rows(0, 257, &b.x, &mut b.y, None),
        );
    });
    assert_eq!(c, Counts::default());
}
