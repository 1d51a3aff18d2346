#!/usr/bin/env python3
"""The coefficients of `tanh_p15o_rr2p5_div`'s small-argument polynomial (src/tanh.rs).

    tanh(z) ~ z + z^3 * (P0 + P1 w + ... + P6 w^6),   w = z^2,   0 <= z < 1

minimax for the relative error of tanh over [0, 1): as tanh(z) = z * f(w) with
f(w) = tanh(sqrt w) / sqrt w, this is the relative error of 1 + w P(w) against f on w in [0, 1]
(the leading 1 pinned, so that tanh(z) = z exactly for tiny z). A discrete Remez exchange on
4000 points, 40 digits (mpmath); the coefficients are then rounded to f32 one at a time from P0
up, each time re-fitting the ones not yet rounded with the rounded ones pinned.

Run: python3 tests/data/tanh_coeffs.py  (needs mpmath; about a minute). Prints each coefficient
as the `f32::from_bits` line of src/tanh.rs and the real-valued relative error of the rounded set.
"""
import math
import struct

import mpmath as mp

mp.mp.dps = 40
DEGREE = 6  # of P, in w: the odd polynomial in z has degree 2 * 6 + 3 = 15
W_MAX = mp.mpf(1)  # z < 1
POINTS = 4000


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def hex_float(x):
    """`x` (an f32) as `0x1.XXXXXXp-E`, six hex digits, as the comments of src/tanh.rs write it."""
    m, e = math.frexp(abs(x))  # m in [0.5, 1)
    frac = round((2 * m - 1) * 2**24)
    return f"{'-' if x < 0 else ''}0x1.{frac:06X}p{e - 1}"


def bits(x):
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


GRID = [W_MAX * mp.mpf(i) / POINTS for i in range(1, POINTS + 1)]
F = {w: mp.tanh(mp.sqrt(w)) / mp.sqrt(w) for w in GRID}


def rel_error(c, w):
    p = sum(cj * w**j for j, cj in enumerate(c))
    return (1 + w * p - F[w]) / F[w]


def remez(fixed):
    """P minimising max |rel_error| with the coefficients in `fixed` (index -> value) pinned."""
    free = [j for j in range(DEGREE + 1) if j not in fixed]
    m = len(free)
    ref = [GRID[int((POINTS - 1) * (1 - mp.cos(mp.pi * (i + 0.5) / (m + 1))) / 2)] for i in range(m + 1)]
    for _ in range(60):
        # The error is linear in the coefficients: sum_j c_j w^(j+1) / f + (1 - f) / f.
        a = [[w ** (j + 1) / F[w] for j in free] + [(-1) ** i] for i, w in enumerate(ref)]
        b = [(F[w] - 1) / F[w] - sum(v * w ** (j + 1) / F[w] for j, v in fixed.items()) for w in ref]
        sol = mp.lu_solve(mp.matrix(a), mp.matrix(b))
        c = dict(fixed)
        for k, j in enumerate(free):
            c[j] = sol[k]
        c = [c[j] for j in range(DEGREE + 1)]
        level = abs(sol[m])
        err = [rel_error(c, w) for w in GRID]
        # The local extrema of the error, one per run of equal sign, largest first to go.
        ext = [i for i in range(POINTS)
               if err[i] != 0
               and (i == 0 or abs(err[i]) >= abs(err[i - 1]))
               and (i == POINTS - 1 or abs(err[i]) >= abs(err[i + 1]))]
        alt = []
        for i in ext:
            if alt and mp.sign(err[alt[-1]]) == mp.sign(err[i]):
                if abs(err[i]) > abs(err[alt[-1]]):
                    alt[-1] = i
            else:
                alt.append(i)
        while len(alt) > m + 1:
            alt.pop(0 if abs(err[alt[0]]) < abs(err[alt[-1]]) else -1)
        worst = max(abs(e) for e in err)
        if len(alt) == m + 1:
            ref = [GRID[i] for i in alt]
        if worst - level < level * mp.mpf("1e-6"):
            break
    return c, worst


def main():
    c, worst = remez({})
    print(f"real coefficients: relative error {mp.nstr(worst, 3)}")
    fixed = {}
    for j in range(DEGREE + 1):
        c, _ = remez(fixed)
        fixed[j] = mp.mpf(f32(c[j]))
    c = [fixed[j] for j in range(DEGREE + 1)]
    worst = max(abs(rel_error(c, w)) for w in GRID)
    for j, cj in enumerate(c):
        h = bits(cj)
        print(f"const P{j}: f32 = f32::from_bits(0x{h >> 16:04X}_{h & 0xFFFF:04X}); "
              f"// {hex_float(float(cj))} = {float(cj):.9g}")
    print(f"rounded to f32: relative error {mp.nstr(worst, 3)}")


if __name__ == "__main__":
    main()
