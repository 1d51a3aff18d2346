//! `Dropout::mask_bits` at its length limit, 2^32 columns (2^29 bytes), checked on every
//! `usize` width the suite runs on: where `usize` has 32 bits, `8 * out.len()` passes
//! `usize::MAX` from 2^29 bytes on, so a bound taken on that product would wrap (2^29 + 8 bytes
//! would read as 64 columns and be written with repeats of the first bytes).
//!
//! Each test holds a buffer of about 512 MiB.

use dropmax::{Dropout, DropoutKey, Error, keep};

/// The longest output `mask_bits` accepts: 2^32 columns, 8 a byte.
const LIMIT: usize = 1 << 29;

/// A byte `mask_bits` never writes into an untouched buffer by chance across every case here
/// (neither all ones nor all zeros).
const SENTINEL: u8 = 0xA5;

/// Every dropout `mask_bits` treats differently: the generator, all kept, all dropped.
fn dropouts() -> [Dropout; 3] {
    [0.1, 0.0, 1.0].map(|p| Dropout::new(p).unwrap())
}

/// One byte past the limit and more: `Error::RowTooLong`, nothing written.
#[test]
fn past_the_limit_is_refused_and_nothing_is_written() {
    let key = DropoutKey::new(0x5EED, 3);
    let mut buf = vec![SENTINEL; LIMIT + 8];
    for d in dropouts() {
        for n in [LIMIT + 1, LIMIT + 8] {
            assert_eq!(
                d.mask_bits(key, 9, &mut buf[..n]),
                Err(Error::RowTooLong),
                "p = {}, {n} bytes",
                d.p()
            );
        }
    }
    assert!(
        buf.iter().all(|&b| b == SENTINEL),
        "a refused call wrote into its buffer"
    );
}

/// Exactly the limit is accepted, and its last column, `2^32 - 1` (past `usize::MAX - 1` where
/// `usize` has 32 bits), carries its keep decision like every other.
///
/// All kept and all dropped need no generator; the generated mask is 2^32 columns of Philox,
/// seconds in an optimised build, too slow unoptimised.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "generates 2^32 columns of mask: run with --release"
)]
fn the_limit_is_accepted_up_to_its_last_column() {
    let key = DropoutKey::new(0x5EED, 3);
    let mut buf = vec![SENTINEL; LIMIT];
    for (d, fill) in dropouts().into_iter().skip(1).zip([0xFF, 0x00]) {
        assert_eq!(d.mask_bits(key, 9, &mut buf), Ok(()), "p = {}", d.p());
        assert!(buf.iter().all(|&b| b == fill), "p = {}", d.p());
    }
    let d = dropouts()[0];
    // A row whose last column is dropped and one where it is kept, so that a wrong last bit
    // cannot pass by chance.
    let last = |kept: bool| (0..).find(|&r| keep(&d, key, r, u32::MAX) == kept).unwrap();
    for row in [last(false), last(true)] {
        buf.fill(SENTINEL);
        assert_eq!(d.mask_bits(key, row, &mut buf), Ok(()), "row {row}");
        for b in [0, 1, LIMIT / 2, LIMIT - 2, LIMIT - 1] {
            for bit in 0..8 {
                let col = u32::try_from(8 * b as u64 + bit).unwrap();
                assert_eq!(
                    buf[b] >> bit & 1 == 1,
                    keep(&d, key, row, col),
                    "row {row}, column {col}"
                );
            }
        }
    }
}
