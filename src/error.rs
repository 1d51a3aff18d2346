//! The crate's one error type.

use core::fmt;

/// Why a kernel refused its arguments.
///
/// Every public kernel validates all of its arguments before it writes anything: when it returns
/// an error, the output slices are untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The logit scale is NaN or infinite.
    NonFiniteScale,
    /// The dropout probability is NaN or outside `[0, 1]`.
    InvalidProbability,
    /// A slice does not have the length the call implies (output vs. input, bias or column mask
    /// vs. row length, a matrix whose length is not a multiple of `cols`, a statistics slice that
    /// does not hold one entry per row).
    LengthMismatch {
        /// The length the call needs.
        expected: usize,
        /// The length it was given.
        found: usize,
    },
    /// A training row longer than `u32::MAX` columns: the mask layout indexes columns with 32 bits.
    RowTooLong,
    /// A chunk of a split row that does not start at a multiple of 64 columns.
    ChunkAlignment,
    /// The kernel variant needs instructions this CPU lacks (see
    /// [`RowKernel::is_supported`](crate::RowKernel::is_supported)).
    UnsupportedKernel,
    /// A soft-cap that is not finite and positive
    /// ([`SoftmaxDropout::with_softcap`](crate::SoftmaxDropout::with_softcap)).
    InvalidSoftcap,
    /// The backward pass of a soft-capped operation was given saved probabilities: the cap's
    /// derivative needs the logits (pass them with their statistics to recompute `P`).
    LogitsRequired,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NonFiniteScale => f.write_str("logit scale is not finite"),
            Error::InvalidProbability => {
                f.write_str("dropout probability is NaN or outside [0, 1]")
            }
            Error::LengthMismatch { expected, found } => {
                write!(
                    f,
                    "slice length mismatch: expected {expected}, found {found}"
                )
            }
            Error::RowTooLong => f.write_str("training row longer than u32::MAX columns"),
            Error::ChunkAlignment => {
                f.write_str("row chunk does not start at a multiple of 64 columns")
            }
            Error::UnsupportedKernel => {
                f.write_str("the kernel variant needs instructions this CPU lacks")
            }
            Error::InvalidSoftcap => f.write_str("soft-cap is not finite and positive"),
            Error::LogitsRequired => {
                f.write_str("the backward of a soft-capped operation needs the logits")
            }
        }
    }
}

impl core::error::Error for Error {}
