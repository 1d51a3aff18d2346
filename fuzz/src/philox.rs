//! The `philox` target: the generator's SIMD blocks, the `rand_core` stream and the mask formula.
//!
//! Shared with `tests/fuzz_regressions.rs` (see `value.rs`). Checks:
//!
//! - `philox4x32_10_x4`, `_x8`, `_x16` equal the scalar `philox4x32_10` lane by lane, word by
//!   word, for arbitrary counters and keys (every 4- and 8-lane slice of 16 lanes);
//! - the stream `Philox4x32` (from `new`, `from_seed`, `seed_from_u64`, near the 2^128 wrap)
//!   against a reference built from scalar blocks over a 128-bit little-endian counter, for an
//!   arbitrary sequence of `next_u32`, `next_u64`, `fill_bytes` (and their `try_` forms),
//!   `clone`, `counter()` and `key()`: `next_u64` is two words, low first; `fill_bytes(len)` takes
//!   `ceil(len / 4)` words and writes their little-endian bytes, the unused bytes of the last word
//!   discarded;
//! - `mask_uniform` and `keep` against the mask formula of the `dropout` module docs, computed
//!   here from scalar blocks.

use dropmax::philox::{
    Philox4x32, philox4x32_10, philox4x32_10_x4, philox4x32_10_x8, philox4x32_10_x16,
};
use dropmax::wide::{u32x4, u32x8, u32x16};
use dropmax::{Dropout, DropoutKey, keep, mask_uniform};
use rand_core::{Rng, SeedableRng, TryRng};

fuzz_struct! {
    /// A key and a counter.
    pub struct KeyCounter {
        pub key: [u32; 2],
        pub counter: [u32; 4],
    }
}

fuzz_struct! {
    /// Sixteen blocks: lane `l` has counter `lanes[l]`, or `base + l` (128-bit, wrapping).
    pub struct Blocks {
        pub key: [u32; 2],
        pub base: [u32; 4],
        pub lanes: Vec<[u32; 4]>,
    }
}

fuzz_enum! {
    /// How the stream is created.
    pub enum Start {
        /// `Philox4x32::new(key, counter)`.
        New(KeyCounter),
        /// `new(key, 2^128 - 1 - (counter[0] % 8))`: the counter wraps within a few blocks.
        NearWrap(KeyCounter),
        /// `SeedableRng::from_seed`.
        FromSeed([u8; 24]),
        /// `SeedableRng::seed_from_u64`.
        SeedFromU64(u64),
    }
}

fuzz_enum! {
    /// One call on the stream.
    pub enum Op {
        U32,
        U64,
        /// `fill_bytes` of `v % 1025` bytes.
        Fill(u16),
        TryU32,
        TryU64,
        /// `try_fill_bytes` of `v % 1025` bytes.
        TryFill(u16),
        /// Go on with a clone (it must equal the original).
        Clone,
        /// `counter()` and `key()`.
        Counter,
    }
}

fuzz_struct! {
    /// One element of a dropout mask.
    pub struct Coord {
        pub seed: u64,
        pub offset: u64,
        pub row: u64,
        pub col: u32,
        /// `p = threshold / 2^32`, the threshold exact.
        pub threshold: u32,
    }
}

fuzz_struct! {
    /// One input of the `philox` target.
    pub struct PhiloxInput {
        pub blocks: Blocks,
        pub coord: Coord,
        pub start: Start,
        pub ops: Vec<Op>,
    }
}

fn to_u128(c: [u32; 4]) -> u128 {
    c.iter()
        .rev()
        .fold(0u128, |acc, &w| (acc << 32) | u128::from(w))
}

fn from_u128(v: u128) -> [u32; 4] {
    core::array::from_fn(|i| (v >> (32 * i)) as u32)
}

/// The sequential stream, rebuilt from scalar blocks.
struct Reference {
    key: [u32; 2],
    /// The counter of the next block.
    next: u128,
    block: [u32; 4],
    used: usize,
}

impl Reference {
    fn word(&mut self) -> u32 {
        if self.used == 4 {
            self.block = philox4x32_10(from_u128(self.next), self.key);
            self.next = self.next.wrapping_add(1);
            self.used = 0;
        }
        self.used += 1;
        self.block[self.used - 1]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out: Vec<u8> = (0..len.div_ceil(4))
            .flat_map(|_| self.word().to_le_bytes())
            .collect();
        out.truncate(len);
        out
    }
}

fn check_blocks(b: &Blocks) {
    let base = to_u128(b.base);
    let ctr: [[u32; 4]; 16] = core::array::from_fn(|l| {
        b.lanes
            .get(l)
            .copied()
            .unwrap_or_else(|| from_u128(base.wrapping_add(l as u128)))
    });
    let want: [[u32; 4]; 16] = core::array::from_fn(|l| philox4x32_10(ctr[l], b.key));
    let check = |width: usize, first: usize, got: [[u32; 16]; 4]| {
        for l in 0..width {
            for w in 0..4 {
                assert_eq!(
                    got[w][l],
                    want[first + l][w],
                    "x{width} lane {} word {w}: counter {:08x?} key {:08x?}",
                    first + l,
                    ctr[first + l],
                    b.key
                );
            }
        }
    };
    let pad = |a: &[u32]| -> [u32; 16] { core::array::from_fn(|i| a.get(i).copied().unwrap_or(0)) };
    let x16 = philox4x32_10_x16(
        core::array::from_fn(|w| u32x16::new(core::array::from_fn(|l| ctr[l][w]))),
        b.key,
    );
    check(16, 0, x16.map(|v| v.to_array()));
    for first in [0, 8] {
        let x8 = philox4x32_10_x8(
            core::array::from_fn(|w| u32x8::new(core::array::from_fn(|l| ctr[first + l][w]))),
            b.key,
        );
        check(8, first, x8.map(|v| pad(&v.to_array())));
    }
    for first in [0, 4, 8, 12] {
        let x4 = philox4x32_10_x4(
            core::array::from_fn(|w| u32x4::new(core::array::from_fn(|l| ctr[first + l][w]))),
            b.key,
        );
        check(4, first, x4.map(|v| pad(&v.to_array())));
    }
}

/// The mask formula of the `dropout` module docs, from scalar blocks.
fn check_mask(c: &Coord) {
    let key = DropoutKey::new(c.seed, c.offset);
    let k = [c.seed as u32, (c.seed >> 32) as u32];
    let r = c.offset.wrapping_add(c.row);
    let (r_lo, r_hi) = (r as u32, (r >> 32) as u32);
    let j = c.col;
    // block = j / 16, word = (j / 4) % 4, byte = j % 4 (the docs' layout).
    let (block, word, byte) = (j / 16, (j / 4) % 4, j % 4);
    let b = (philox4x32_10([block, 0, r_lo, r_hi], k)[word as usize] >> (8 * byte)) & 0xFF;
    let t = philox4x32_10([j, 1, r_lo, r_hi], k)[0] & 0xFF_FFFF;
    let u = (b << 24) | t;
    assert_eq!(
        mask_uniform(key, c.row, j),
        u,
        "mask_uniform({key:?}, row {}, col {j})",
        c.row
    );
    let d = Dropout::new(f64::from(c.threshold) / 4_294_967_296.0).expect("p in [0, 1)");
    assert_eq!(d.threshold(), u64::from(c.threshold));
    assert_eq!(
        keep(&d, key, c.row, j),
        u >= c.threshold,
        "keep, D = {}",
        c.threshold
    );
    let all = Dropout::new(1.0).expect("p = 1");
    assert!(!keep(&all, key, c.row, j), "p = 1 keeps");
}

fn check_stream(start: &Start, ops: &[Op]) {
    let (mut rng, key, counter) = match start {
        Start::New(kc) => (Philox4x32::new(kc.key, kc.counter), kc.key, kc.counter),
        Start::NearWrap(kc) => {
            let c = from_u128(u128::MAX - u128::from(kc.counter[0] % 8));
            (Philox4x32::new(kc.key, c), kc.key, c)
        }
        Start::FromSeed(seed) => {
            let w: [u32; 6] = core::array::from_fn(|i| {
                u32::from_le_bytes([
                    seed[4 * i],
                    seed[4 * i + 1],
                    seed[4 * i + 2],
                    seed[4 * i + 3],
                ])
            });
            let (key, counter) = ([w[0], w[1]], [w[2], w[3], w[4], w[5]]);
            (Philox4x32::from_seed(*seed), key, counter)
        }
        Start::SeedFromU64(s) => (
            Philox4x32::seed_from_u64(*s),
            [*s as u32, (*s >> 32) as u32],
            [0; 4],
        ),
    };
    assert_eq!(rng, Philox4x32::new(key, counter), "{start:?}");
    let mut reference = Reference {
        key,
        next: to_u128(counter),
        block: [0; 4],
        used: 4,
    };
    for (i, op) in ops.iter().enumerate() {
        let what = || format!("op {i} ({op:?}) after {:?}, from {start:?}", &ops[..i]);
        match op {
            Op::U32 => assert_eq!(rng.next_u32(), reference.word(), "{}", what()),
            Op::TryU32 => assert_eq!(rng.try_next_u32(), Ok(reference.word()), "{}", what()),
            Op::U64 | Op::TryU64 => {
                let lo = u64::from(reference.word());
                let want = (u64::from(reference.word()) << 32) | lo;
                let got = if matches!(op, Op::U64) {
                    rng.next_u64()
                } else {
                    rng.try_next_u64().unwrap_or_else(|e| match e {})
                };
                assert_eq!(got, want, "{}", what());
            }
            Op::Fill(len) | Op::TryFill(len) => {
                let len = usize::from(*len) % 1025;
                let mut got = vec![0xA5u8; len];
                if matches!(op, Op::Fill(_)) {
                    rng.fill_bytes(&mut got);
                } else {
                    rng.try_fill_bytes(&mut got).unwrap_or_else(|e| match e {});
                }
                assert_eq!(got, reference.bytes(len), "{}", what());
            }
            Op::Clone => {
                let c = rng.clone();
                assert_eq!(c, rng, "{}", what());
                rng = c;
            }
            Op::Counter => {
                assert_eq!(rng.counter(), from_u128(reference.next), "{}", what());
                assert_eq!(rng.key(), key, "{}", what());
            }
        }
    }
    // The next words agree too (whatever was left of a block).
    for _ in 0..5 {
        assert_eq!(
            rng.next_u32(),
            reference.word(),
            "after {ops:?} from {start:?}"
        );
    }
}

/// Runs every check on one input.
pub fn check(input: &PhiloxInput) {
    check_blocks(&input.blocks);
    check_mask(&input.coord);
    check_stream(&input.start, &input.ops);
}
