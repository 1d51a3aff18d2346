//! Which columns of a row take part in the softmax: [`Mask`].

use crate::error::Error;

/// The per-column part of a [`Mask`] (crate-internal: `mask` is a private module).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Columns<'a> {
    #[default]
    All,
    /// `true` = visible; one entry per column.
    Bools(&'a [bool]),
    /// Bit `j % 8` of byte `j / 8` (least significant bit first): 1 = visible.
    Bits(&'a [u8]),
}

/// Which columns of a row take part in the softmax.
///
/// A [`Mask`] combines a *structural* part, a contiguous band of visible columns computed from the
/// row's query position, with an optional per-column part. The structural part is what makes a
/// causal row cheap: the kernels never touch the columns outside the band (no `exp`, no random
/// bits) and only zero-fill them.
///
/// For a row with query position `q` and length `n`, column `j` is visible when all of these hold:
///
/// ```text
/// q - before <= j <= q + after        (band; `before`/`after` unbounded unless set)
/// j < key_len                         (key length; unbounded unless set)
/// columns[j]                          (per-column mask, if any: true or bit 1 = visible)
/// ```
///
/// [`Mask::causal`] is the band `before = inf, after = 0`; [`Mask::sliding_window`] of width `w`
/// is `before = w - 1, after = 0`. In the rows helpers the mask describes the *first* row of the
/// call: row `i` has query position `query_pos + i`, while `key_len` and the per-column part apply
/// to every row. Beyond the mask, a column whose logit or bias is `-inf` also has probability 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mask<'a> {
    query_pos: usize,
    before: usize,
    after: usize,
    key_len: usize,
    columns: Columns<'a>,
}

impl Default for Mask<'_> {
    fn default() -> Self {
        Self::none()
    }
}

impl<'a> Mask<'a> {
    /// Every column is visible.
    pub const fn none() -> Self {
        Self {
            query_pos: 0,
            before: usize::MAX,
            after: usize::MAX,
            key_len: usize::MAX,
            columns: Columns::All,
        }
    }

    /// Causal: the row at query position `query_pos` sees columns `0..=query_pos`.
    ///
    /// For a square score matrix starting at its first row, `query_pos = 0`; for a block of new
    /// queries appended after `past` cached keys (KV-cache decoding, rectangular rows),
    /// `query_pos = past`.
    pub const fn causal(query_pos: usize) -> Self {
        Self::band(query_pos, usize::MAX, 0)
    }

    /// Causal sliding window of `window` columns: `query_pos - window < j <= query_pos`.
    /// A window of 0 masks every column.
    pub const fn sliding_window(query_pos: usize, window: usize) -> Self {
        if window == 0 {
            // An empty band: after = 0 with before = "minus one" is not expressible, so use an
            // empty key length instead.
            return Self::causal(query_pos).with_key_len(0);
        }
        Self::band(query_pos, window - 1, 0)
    }

    /// Band: `query_pos - before <= j <= query_pos + after` (`usize::MAX` = unbounded).
    pub const fn band(query_pos: usize, before: usize, after: usize) -> Self {
        Self {
            query_pos,
            before,
            after,
            key_len: usize::MAX,
            columns: Columns::All,
        }
    }

    /// Only columns `j < len` are visible (padding of a shorter key sequence).
    pub const fn key_len(len: usize) -> Self {
        Self::none().with_key_len(len)
    }

    /// Adds a key length: columns `j >= len` are masked as well.
    pub const fn with_key_len(mut self, len: usize) -> Self {
        self.key_len = if len < self.key_len {
            len
        } else {
            self.key_len
        };
        self
    }

    /// Adds a per-column mask, one `bool` per column, `true` = visible. Its length must equal the
    /// row length.
    pub const fn with_columns(mut self, visible: &'a [bool]) -> Self {
        self.columns = Columns::Bools(visible);
        self
    }

    /// Adds a bit-packed per-column mask: bit `j % 8` of byte `j / 8` (least significant first)
    /// is 1 when column `j` is visible (numpy's `packbits(..., bitorder="little")`). It must hold
    /// exactly `ceil(n / 8)` bytes for rows of length `n`.
    pub const fn with_column_bits(mut self, visible: &'a [u8]) -> Self {
        self.columns = Columns::Bits(visible);
        self
    }

    pub(crate) const fn columns(&self) -> Columns<'a> {
        self.columns
    }

    /// Checks the per-column part against a row length.
    pub(crate) fn validate(&self, n: usize) -> Result<(), Error> {
        let (expected, found) = match self.columns {
            Columns::All => return Ok(()),
            Columns::Bools(b) => (n, b.len()),
            Columns::Bits(b) => (n.div_ceil(8), b.len()),
        };
        if expected == found {
            Ok(())
        } else {
            Err(Error::LengthMismatch { expected, found })
        }
    }

    /// The structural band `[lo, hi)` of row `i` of a call (query position `query_pos + i`) for
    /// rows of length `n`; `lo <= hi <= n`.
    #[inline]
    pub(crate) fn span(&self, i: usize, n: usize) -> (usize, usize) {
        let q = self.query_pos.saturating_add(i);
        let lo = if self.before == usize::MAX {
            0
        } else {
            q.saturating_sub(self.before)
        };
        let hi = if self.after == usize::MAX {
            n
        } else {
            q.saturating_add(self.after).saturating_add(1)
        };
        let hi = hi.min(n).min(self.key_len);
        (lo.min(hi), hi)
    }
}

impl Columns<'_> {
    /// Whether column `j` passes the per-column mask (out-of-range columns do not).
    #[inline]
    pub(crate) fn visible(&self, j: usize) -> bool {
        match *self {
            Columns::All => true,
            Columns::Bools(b) => b.get(j).copied().unwrap_or(false),
            Columns::Bits(b) => b.get(j / 8).is_some_and(|byte| byte >> (j % 8) & 1 == 1),
        }
    }
}
