//! Dropout: the exact keep threshold, the key, and the mask's definition.
//!
//! # The mask, as a formula
//!
//! For a key `(seed, offset)`, a row `r` and a column `j` (`0 <= j < 2^32`), let
//!
//! ```text
//! k        = [seed as u32, (seed >> 32) as u32]          Philox key
//! R        = offset + r  (wrapping, 64 bits)             global row id
//! block    = j / 16,   word = (j / 4) % 4,   byte = j % 4
//! B(r, j)  = (philox4x32_10([block, 0, R as u32, (R >> 32) as u32], k)[word] >> (8 * byte)) & 0xFF
//! T(r, j)  =  philox4x32_10([j,     1, R as u32, (R >> 32) as u32], k)[0] & 0xFF_FFFF
//! U(r, j)  = (B(r, j) << 24) | T(r, j)                   a uniform 32-bit integer
//! keep(r, j)  <=>  U(r, j) >= D,   D = round(p * 2^32)
//! ```
//!
//! That is, `B(r, j)` is byte `j` of the row's main stream: the 16-byte outputs of the blocks
//! with counters `[0, 0, R lo, R hi]`, `[1, 0, R lo, R hi]`, ... one after the other, each
//! block's words `0..4` as little-endian bytes. Counter word 1 separates the two streams (0: main,
//! 1: tie-break), so they never share a block. So a vector of 4, 8 or 16 `u32` lanes holding 1, 2
//! or 4 consecutive blocks in that order compares its raw bytes against `D >> 24` in one
//! instruction and gets the keep bits of 16, 32 or 64 consecutive columns, with no shifts or
//! transposes, and a row of `n` columns needs only `ceil(n / 16)` main blocks (`ceil(n / 64)`
//! registers of 16 lanes). The tie-break word `T` is needed only when `B == D >> 24`
//! (probability 1/256 per element) and never when `D` is a multiple of 2^24.
//!
//! `keep` is therefore a pure function of `(seed, offset, r, j)` and `p`: it does not depend on
//! the row's length, on which columns are masked, on how rows are split across calls or threads,
//! on the SIMD width, or on the machine. [`mask_uniform`] and [`keep`] are that definition in code;
//! the SIMD kernels are tested bit-exact against them.

use crate::error::Error;
use crate::philox::philox4x32_10;

/// 2^32 as a `u64`, the scale of the drop threshold.
pub(crate) const TWO_POW_32: u64 = 1 << 32;

/// A dropout probability, held as the exact integer threshold the mask compares against.
///
/// `D = round(p * 2^32)` (an integer in `[0, 2^32]`, ties away from zero); an element is kept when
/// its 32-bit uniform `U >= D`, so the keep probability is exactly `q = (2^32 - D) / 2^32` and
/// survivors are multiplied by `1/q`, computed in `f64` and rounded once to `f32`. Thus
/// `E[Y] = P` up to that one rounding, for every `p`, not only multiples of 1/256.
///
/// `p = 0` (or any `p` with `D = 0`) keeps everything and never runs the generator; `D = 2^32`
/// (`p = 1`, or `p` within 2^-33 of it) drops everything.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    p: f64,
    threshold: u64,
    rescale: f32,
}

impl Dropout {
    /// Dropout with probability `p` of zeroing each element.
    ///
    /// # Errors
    /// [`Error::InvalidProbability`] if `p` is NaN or outside `[0, 1]`.
    pub fn new(p: f64) -> Result<Self, Error> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidProbability);
        }
        // p * 2^32 is exact in f64 (a power-of-two scaling), so the only rounding is `round`.
        let threshold = libm::round(p * TWO_POW_32 as f64) as u64;
        let kept = TWO_POW_32 - threshold;
        let rescale = if kept == 0 {
            f32::INFINITY
        } else {
            (TWO_POW_32 as f64 / kept as f64) as f32
        };
        Ok(Self {
            p,
            threshold,
            rescale,
        })
    }

    /// The probability this was built from.
    pub const fn p(&self) -> f64 {
        self.p
    }

    /// The drop threshold `D = round(p * 2^32)`, in `[0, 2^32]`.
    pub const fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The exact keep probability `q = (2^32 - D) / 2^32` (exact in `f64`).
    pub fn keep_probability(&self) -> f64 {
        (TWO_POW_32 - self.threshold) as f64 / TWO_POW_32 as f64
    }

    /// The survivors' factor `1/q`, computed in `f64` and rounded once to `f32`; `+inf` when
    /// `q = 0` (no survivor is ever scaled by it).
    pub const fn rescale(&self) -> f32 {
        self.rescale
    }

    /// True when every element is kept (`D = 0`): the generator is never run.
    pub const fn keeps_all(&self) -> bool {
        self.threshold == 0
    }

    /// True when every element is dropped (`D = 2^32`).
    pub const fn drops_all(&self) -> bool {
        self.threshold >= TWO_POW_32
    }
}

/// The dropout key: a seed and an offset added to every row id.
///
/// Row `r` of a call draws its mask from global row id `offset + r` (wrapping): keys
/// `(seed, o)` and `(seed, o + 1)` share every row but one, shifted by one. For fresh masks, give
/// each training step (or layer) its own `seed`, or advance `offset` by at least the number of
/// rows it covers. A backward pass regenerates a forward mask from the same key and row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DropoutKey {
    /// Philox key: `[seed as u32, (seed >> 32) as u32]`.
    pub seed: u64,
    /// Added (wrapping) to every row id.
    pub offset: u64,
}

impl DropoutKey {
    /// A key from its two parts.
    pub const fn new(seed: u64, offset: u64) -> Self {
        Self { seed, offset }
    }

    /// The Philox key words.
    pub(crate) const fn philox_key(&self) -> [u32; 2] {
        key_words(self.seed)
    }

    /// Counter words 2 and 3 for row `row`: the global row id `offset + row`, low word first.
    pub(crate) const fn row_words(&self, row: u64) -> [u32; 2] {
        let id = self.offset.wrapping_add(row);
        [id as u32, (id >> 32) as u32]
    }
}

/// A 64-bit seed as the Philox key `[seed as u32, (seed >> 32) as u32]`.
pub(crate) const fn key_words(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Columns per group: 16 blocks of 16 bytes.
pub(crate) const GROUP: usize = 256;

/// The main-stream counter of block `block` for a row.
#[inline(always)]
pub(crate) const fn main_counter(block: u32, row: [u32; 2]) -> [u32; 4] {
    [block, 0, row[0], row[1]]
}

/// The 24-bit tie-break `T(r, j)` (see the [module docs](self)).
#[inline]
pub(crate) fn tie_break(key: [u32; 2], row: [u32; 2], col: u32) -> u32 {
    philox4x32_10([col, 1, row[0], row[1]], key)[0] & 0x00FF_FFFF
}

/// The 8-bit main slice `B(r, j)` (see the [module docs](self)).
#[inline]
pub(crate) fn main_byte(key: [u32; 2], row: [u32; 2], col: u32) -> u32 {
    let block = col / 16;
    let word = (col / 4) % 4;
    let byte = col % 4;
    let out = philox4x32_10(main_counter(block, row), key);
    let w = match word {
        0 => out[0],
        1 => out[1],
        2 => out[2],
        _ => out[3],
    };
    (w >> (8 * byte)) & 0xFF
}

/// `U(r, j)`: the uniform 32-bit integer that decides element `(row, col)`, as defined in the
/// [module docs](self). Costs two Philox blocks; the kernels compute the same bits in bulk.
pub fn mask_uniform(key: DropoutKey, row: u64, col: u32) -> u32 {
    let (k, r) = (key.philox_key(), key.row_words(row));
    main_byte(k, r, col) << 24 | tie_break(k, r, col)
}

/// Whether element `(row, col)` survives: `mask_uniform(key, row, col) >= D`.
///
/// This is the mask's definition; every kernel reproduces it bit for bit. It never runs the
/// generator when `D = 0` or `D = 2^32`.
pub fn keep(dropout: &Dropout, key: DropoutKey, row: u64, col: u32) -> bool {
    if dropout.keeps_all() {
        return true;
    }
    if dropout.drops_all() {
        return false;
    }
    u64::from(mask_uniform(key, row, col)) >= dropout.threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_exact() {
        assert_eq!(Dropout::new(0.5).unwrap().threshold(), 1 << 31);
        assert_eq!(Dropout::new(0.5).unwrap().rescale(), 2.0);
        assert_eq!(Dropout::new(0.0).unwrap().threshold(), 0);
        assert_eq!(Dropout::new(1.0).unwrap().threshold(), 1 << 32);
        // 0.1 * 2^32 = 429496729.6 -> 429496730
        assert_eq!(Dropout::new(0.1).unwrap().threshold(), 429_496_730);
        // 1 - 2^-34 is within 2^-33 of 1: rounds to 2^32, drops all.
        assert!(
            Dropout::new(1.0 - libm::ldexp(1.0, -34))
                .unwrap()
                .drops_all()
        );
        for bad in [f64::NAN, -1e-300, 1.0 + f64::EPSILON, f64::INFINITY] {
            assert_eq!(Dropout::new(bad), Err(Error::InvalidProbability));
        }
    }

    #[test]
    fn rescale_is_one_rounding_of_the_exact_inverse() {
        let d = Dropout::new(1.0 / 3.0).unwrap();
        let q = d.keep_probability();
        assert_eq!(d.rescale(), (1.0 / q) as f32);
        assert_eq!(q, (TWO_POW_32 - d.threshold()) as f64 / TWO_POW_32 as f64);
    }
}
