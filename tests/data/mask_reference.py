#!/usr/bin/env python3
"""Independent reference for dropmax's dropout mask; prints tests/data/golden_mask.txt.

    python3 tests/data/mask_reference.py > tests/data/golden_mask.txt

Plain Python 3 (no numpy), written from the published definitions only, not from the Rust code:

* Philox4x32-10 from the round function of Salmon et al. (SC11) / Random123, checked below
  against the known answers of Random123's kat_vectors (embedded here, and also re-read from
  tests/data/philox4x32_10.kat next to this script when that file exists);
* the mask formula of dropmax's `dropout` module docs (src/dropout.rs):

    k        = [seed as u32, (seed >> 32) as u32]
    R        = offset + r  (wrapping, 64 bits)
    block    = j / 16,  word = (j / 4) % 4,  byte = j % 4
    B(r, j)  = (philox([block, 0, R lo, R hi], k)[word] >> (8 * byte)) & 0xFF
               (byte j of the row's main stream: blocks 0, 1, 2, ... in turn, words little-endian)
    T(r, j)  =  philox([j,     1, R lo, R hi], k)[0] & 0xFF_FFFF
    U(r, j)  = (B << 24) | T
    keep     <=>  U >= D,   D = round(p * 2^32), ties away from zero

D is computed with exact rational arithmetic (fractions.Fraction): Python's round() rounds ties
to even, and floor(x + 0.5) in floating point is wrong for some x below 1/2 (0.49999999999999994
+ 0.5 rounds up to 1.0).

Output format (whitespace-separated, '#' starts a comment line; numbers in hex unless noted):

    kat ROUNDS C0 C1 C2 C3 K0 K1 O0 O1 O2 O3      one Philox block (known answer)
    threshold PBITS D                             f64 bits of p, D in decimal
    case NAME SEED OFFSET ROW PBITS D             starts a case (D in decimal)
    bits FIRST S                                  keep(col) = S[col - FIRST] ('1' kept); FIRST decimal
    u COL U K                                     U(r, col) and keep (0/1); COL decimal
    end                                           ends the case
"""

import os
import struct
import sys
from fractions import Fraction

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1

M0, M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # key schedule (Weyl) increments


def philox4x32(ctr, key, rounds=10):
    """Philox4x32-R: each round (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2,
    c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]; the key is bumped between rounds."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for i in range(rounds):
        if i > 0:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> 32, p0 & MASK32
        hi1, lo1 = p1 >> 32, p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return [c0, c1, c2, c3]


# Random123 kat_vectors for philox4x32 (rounds, counter, key, expected output).
KAT = [
    (7, [0, 0, 0, 0], [0, 0], [0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48]),
    (10, [0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    (
        10,
        [0xFFFFFFFF] * 4,
        [0xFFFFFFFF] * 2,
        [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD],
    ),
    (
        10,
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


def check_kat():
    for rounds, ctr, key, want in KAT:
        got = philox4x32(ctr, key, rounds)
        assert got == want, (rounds, ctr, key, got, want)
    # C++26 std::philox4x32 (key 20111115, counter from 0): the 10000th output is 1955073260,
    # i.e. word 3 of block 2499.
    assert philox4x32([2499, 0, 0, 0], [20111115, 0])[3] == 1955073260
    # The same vectors from the shared .kat file, when it is next to this script.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "philox4x32_10.kat")
    if os.path.exists(path):
        seen = 0
        with open(path) as f:
            for line in f:
                line = line.split("#")[0].strip()
                if not line:
                    continue
                left, right = line.split("->")
                nums = left.split()
                rounds = int(nums[0])
                ctr = [int(x, 16) for x in nums[1:5]]
                key = [int(x, 16) for x in nums[5:7]]
                want = [int(x, 16) for x in right.split()]
                assert philox4x32(ctr, key, rounds) == want, line
                seen += 1
        assert seen >= len(KAT), path


def f64_bits(p):
    return struct.unpack("<Q", struct.pack("<d", p))[0]


def threshold(p):
    """D = round(p * 2^32), ties away from zero, exactly."""
    x = Fraction(p) * (1 << 32)
    d = int(x + Fraction(1, 2))  # floor: x >= 0
    assert 0 <= d <= 1 << 32
    return d


def key_words(seed):
    return [seed & MASK32, seed >> 32]


def row_words(offset, r):
    rid = (offset + r) & MASK64
    return rid & MASK32, rid >> 32


def main_byte(seed, offset, r, j):
    k = key_words(seed)
    lo, hi = row_words(offset, r)
    block, word, byte = j // 16, (j // 4) % 4, j % 4
    return (philox4x32([block, 0, lo, hi], k)[word] >> (8 * byte)) & 0xFF


def tie_break(seed, offset, r, j):
    k = key_words(seed)
    lo, hi = row_words(offset, r)
    return philox4x32([j, 1, lo, hi], k)[0] & 0xFFFFFF


def mask_uniform(seed, offset, r, j):
    return (main_byte(seed, offset, r, j) << 24) | tie_break(seed, offset, r, j)


def keep(seed, offset, r, j, d):
    return mask_uniform(seed, offset, r, j) >= d


U64 = MASK64
CASES = [
    # name, seed, offset, row, p
    ("basic", 0, 0, 0, 0.5),
    ("p0.1", 0x123456789ABCDEF0, 99, 5, 0.1),
    ("seed-max-row-wraps", U64, U64 - 2, 7, 1.0 / 3.0),  # R = 4
    ("large-row", U64 - 1, 12345, 0x0000_0123_4567_89AB, 0.1),  # R >= 2^32
    ("offset-max", 42, U64, 1, 0.5),  # R = 0
    ("row-carry", 0xDEADBEEF0BADF00D, 0xFFFFFFFF, 1, 128.5 / 256),  # R = 2^32; D = 2^31 + 2^23
    ("no-tie-break", 7, 0, 3, 0.25),  # D = 2^30, a multiple of 2^24
    ("half-wrap", 0x9E3779B97F4A7C15, 1 << 63, (1 << 63) + 5, 0.9),  # R = 5
    ("p0.999", 1, 0, 1000, 0.999),
]

# Columns whose raw U is recorded, besides the first few: the ends of groups, of u16, of the
# 2^24 tie-break range, around 2^31, and the last columns of the 32-bit range.
FAR_COLUMNS = [
    255,
    256,
    511,
    4095,
    65535,
    65536,
    (1 << 24) - 1,
    1 << 24,
    (1 << 31) + 5,
    (1 << 32) - 256,
    (1 << 32) - 2,
    (1 << 32) - 1,
]
BITS_COLUMNS = 301  # keep bits for columns 0..=300
U_COLUMNS = 20  # raw U for columns 0..20
# Ties (B == D >> 24) recorded per case: TIES kept and TIES dropped, or 3 * TIES in all when
# one outcome is rare (when D is a multiple of 2^24, every tie is kept).
TIES = 4


def emit_case(out, name, seed, offset, r, p):
    d = threshold(p)
    out.append("case %s %016x %016x %016x %016x %d" % (name, seed, offset, r, f64_bits(p), d))
    bits = "".join("1" if keep(seed, offset, r, j, d) else "0" for j in range(BITS_COLUMNS))
    out.append("bits 0 %s" % bits)

    def u_line(j):
        u = mask_uniform(seed, offset, r, j)
        return "u %d %08x %d" % (j, u, 1 if u >= d else 0)

    for j in list(range(U_COLUMNS)) + FAR_COLUMNS:
        out.append(u_line(j))
    # Ties on the 8-bit slice, where the tie-break word T decides: scan from a column past the
    # first block of bits so these add decisions.
    kept = dropped = 0
    j = 4096
    while (kept < TIES or dropped < TIES) and kept + dropped < 3 * TIES and j < 4096 + 256 * 64:
        if main_byte(seed, offset, r, j) == d >> 24:
            u = mask_uniform(seed, offset, r, j)
            if u >= d:
                kept += 1
            else:
                dropped += 1
            out.append(u_line(j))
        j += 1
    out.append("end")


def main():
    check_kat()
    # Self-checks of the formula's arithmetic.
    assert threshold(0.5) == 1 << 31
    assert threshold(0.1) == 429496730  # 429496729.6
    assert threshold(1.0 / 3.0) == 1431655765
    assert threshold(2.0**-33) == 1  # exactly 1/2: ties away from zero
    assert threshold(0.49999999999999994 * 2.0**-32) == 0
    # The layout's two descriptions agree: B(r, j) is byte j of the main stream, the blocks
    # [0, 0, R lo, R hi], [1, 0, R lo, R hi], ... one after the other, words little-endian.
    seed, offset, r = 0x0123456789ABCDEF, 5, 1 << 40
    lo, hi = row_words(offset, r)
    stream = b"".join(
        struct.pack("<4I", *philox4x32([b, 0, lo, hi], key_words(seed))) for b in range(20)
    )
    assert all(main_byte(seed, offset, r, j) == stream[j] for j in range(len(stream)))

    out = [
        "# Golden dropout-mask vectors for dropmax, generated by tests/data/mask_reference.py",
        "# (an independent Python implementation). Do not edit by hand; regenerate with",
        "#   python3 tests/data/mask_reference.py > tests/data/golden_mask.txt",
    ]
    for rounds, ctr, key, want in KAT:
        out.append(
            "kat %d %s %s %s"
            % (
                rounds,
                " ".join("%08x" % w for w in ctr),
                " ".join("%08x" % w for w in key),
                " ".join("%08x" % w for w in want),
            )
        )
    # The C++26 known answer as a block (its word 3 checked in check_kat).
    out.append(
        "kat 10 %08x 00000000 00000000 00000000 %08x 00000000 %s"
        % (2499, 20111115, " ".join("%08x" % w for w in philox4x32([2499, 0, 0, 0], [20111115, 0])))
    )

    # Thresholds: ordinary values, exact ties (ties away from zero), values just below a tie,
    # and the ends of [0, 1].
    ps = [
        0.0,
        0.1,
        1.0 / 3.0,
        0.5,
        0.9,
        0.999,
        128.5 / 256,
        2.0**-33,  # p 2^32 = 1/2 -> 1
        0.49999999999999994 * 2.0**-32,  # just below 1/2 -> 0
        1.5 * 2.0**-32,  # 1.5 -> 2
        (2**31 + 0.5) * 2.0**-32,  # a tie at 2^31 -> 2^31 + 1
        (2**31 + 0.5 - 2.0**-21) * 2.0**-32,  # just below that tie -> 2^31
        1.0 - 2.0**-33,  # 2^32 - 1/2 -> 2^32 (drops all)
        1.0 - 2.0**-32,  # 2^32 - 1
        1.0 - 2.0**-34,  # 2^32 - 1/4 -> 2^32
        1.0,
    ]
    for p in ps:
        out.append("threshold %016x %d" % (f64_bits(p), threshold(p)))

    for case in CASES:
        emit_case(out, *case)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
