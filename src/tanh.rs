//! `tanh_p15o_rr2p5_div`: the hyperbolic tangent of logit soft-capping (`c tanh(s x / c)`).
//!
//! p15o: for `|x| < 1`, an odd polynomial of degree 15, `z + z^3 P(z^2)` with `z = |x|` and `P`
//! of degree 6 (minimax for relative error on `[0, 1)`, derived for this crate); no
//! cancellation there, and `tanh z = z` exactly where `z^3 P` is below half an ulp of `z`.
//! rr2p5, div: from `|x| = 1` on, `tanh z = 1 - 2e / (1 + e)` with `e = e^(-2z)` from the
//! softmax's own exponential [`exp_rr2_p5`] (whose arguments are `<= 0`, as `-2z` is) and one
//! division. There `e <= e^-2`, so `2e / (1 + e) <= 0.24` and the exponential's error reaches
//! the result damped to about a quarter. The sign of `x` is put back with a bit operation.
//!
//! Both branches run for every lane, then one is selected. The special values need no other
//! step: `tanh(±0) = ±0` (the polynomial gives +0); `e < 2^-26` from `|x| = 9.010914`
//! (`0x1.205968p+3`, the first `f32` whose tanh rounds to 1), where `1 - 2e / (1 + e)` rounds
//! to exactly 1; the exponential flushes `e` to 0 from `|x| > 43.67` and for `±inf`, giving
//! `±1`; NaN gives NaN. Measured over every `f32`: see [`MAX_REL_ERROR`]; the unit tests sample
//! every 613th `f32` of either sign on every table.
//!
//! The scalar kernel, the crate's reference, takes [`tanh_scalar`]: the same polynomial
//! without FMA, and `libm::expf` as for its exponential; within the same bound.

use crate::exp::exp_rr2_p5;
use crate::lanes::{F32s, U32s};

/// Below this `|x|` the polynomial, from it on the exponential.
const POLY_BELOW: f32 = 1.0;
/// The sign bit of an `f32`.
const SIGN: u32 = 0x8000_0000;
/// Polynomial: `tanh z ~ z + z^3 (P0 + w (P1 + w (P2 + w (P3 + w (P4 + w (P5 + w P6))))))`,
/// `w = z^2`. Minimax for the relative error of tanh on `[0, 1)` (a Remez exchange for
/// `1 + w P(w)` against `tanh(sqrt w) / sqrt w` on `w` in `[0, 1]`, the leading 1 pinned), then
/// rounded to f32 one coefficient at a time from `P0` up, re-fitting the rest; the real-valued
/// error is 5.1e-9 (4.6e-9 before rounding). `tests/data/tanh_coeffs.py` repeats the fit.
const P0: f32 = f32::from_bits(0xBEAA_AA9E); // -0x1.55553Cp-2 = -0.333332956
const P1: f32 = f32::from_bits(0x3E08_85F2); // 0x1.110BE4p-3 = 0.133323461
const P2: f32 = f32::from_bits(0xBD5C_B11D); // -0x1.B9623Ap-5 = -0.0538798459
const P3: f32 = f32::from_bits(0x3CB0_04D3); // 0x1.6009A6p-6 = 0.0214866754
const P4: f32 = f32::from_bits(0xBC02_2FFF); // -0x1.045FFEp-7 = -0.00794601347
const P5: f32 = f32::from_bits(0x3B16_D071); // 0x1.2DA0E2p-9 = 0.00230124244
const P6: f32 = f32::from_bits(0xB9BB_E922); // -0x1.77D244p-12 = -0.000358411169

/// The largest relative error of the kernels' `tanh` (the vector one of the soft-cap,
/// [`with_softcap`](crate::SoftmaxDropout::with_softcap), and the scalar reference's) against
/// `tanh`, over every `f32` argument, with FMA or without: measured exhaustively (all 2^32 bit patterns,
/// `tanh_exhaustive` in the tests), 9.25e-8 (1.19 ulp) with FMA, at `x = 1.0053875`
/// (`0x3F80B08A`), and 9.60e-8 (1.23 ulp) with each `mul_add` rounded twice, at `x = 1.0006633`
/// (`0x3F8015BC`): both just above the polynomial's end, where `2e / (1 + e)` is largest. Within
/// that, the scalar reference kernel's `tanh`: 9.20e-8 (1.09 ulp).
pub const MAX_REL_ERROR: f32 = 9.7e-8;

/// `tanh x` lane by lane, within [`MAX_REL_ERROR`]; odd bit for bit (`tanh(-x) = -tanh(x)`,
/// zeros keep their sign), exactly `±1` from `|x| = 9.010914` on and for `±inf`, NaN for NaN.
#[inline(always)]
pub(crate) fn tanh_p15o_rr2p5_div<const N: usize, V: F32s<N>>(x: V) -> V {
    let bits = x.to_bits();
    let sign = bits & V::U::splat(SIGN);
    let z = V::from_bits(bits ^ sign);
    // |x| < 1: z + z^3 P(z^2).
    let w = z * z;
    let p = V::splat(P6).mul_add(w, V::splat(P5));
    let p = p.mul_add(w, V::splat(P4));
    let p = p.mul_add(w, V::splat(P3));
    let p = p.mul_add(w, V::splat(P2));
    let p = p.mul_add(w, V::splat(P1));
    let p = p.mul_add(w, V::splat(P0));
    let small = (z * w).mul_add(p, z);
    // |x| >= 1 (and NaN): 1 - 2e / (1 + e), e = e^(-2z), exact doubling.
    let e = exp_rr2_p5::<N, V>(z * V::splat(-2.0));
    let one = V::splat(1.0);
    let large = one - (e + e) / (one + e);
    // Both are >= +0 (or NaN): the sign goes back in by xor.
    let y = V::select(z.lt_mask(V::splat(POLY_BELOW)), small, large);
    V::from_bits(y.to_bits() ^ sign)
}

/// `tanh x` for the scalar kernel (the crate's reference), one `f32` at a time: the same
/// polynomial below 1, each step rounded twice (no FMA needed, the same result on every
/// target), and `e = libm::expf(-2z)` (the scalar kernel's exponential) above; within
/// [`MAX_REL_ERROR`], odd, and `±1`, NaN and `±0` as [`tanh_p15o_rr2p5_div`]. Not
/// `libm::tanhf`: that one is off by up to 1.69e-7 (2.19 ulp), measured as this one is.
pub(crate) fn tanh_scalar(x: f32) -> f32 {
    let sign = x.to_bits() & SIGN;
    let z = f32::from_bits(x.to_bits() ^ sign);
    let y = if z < POLY_BELOW {
        let w = z * z;
        let p = [P5, P4, P3, P2, P1, P0].iter().fold(P6, |p, &c| p * w + c);
        z * w * p + z
    } else {
        let e = libm::expf(-2.0 * z);
        1.0 - (e + e) / (1.0 + e)
    };
    f32::from_bits(y.to_bits() ^ sign)
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use crate::exp::tests::one_lane as exp_one_lane;
    use std::vec::Vec;

    /// The first `f32` whose tanh rounds to 1: `0x1.205968p+3`.
    const SATURATES: f32 = f32::from_bits(0x4110_2CB4);

    /// The module's steps one lane at a time, each `mul_add` fused where `fused`, else rounded
    /// twice (the portable table without FMA); the exponential as the portable finish computes
    /// it, which the AVX-512 one matches here (`t 2^n` is normal for `-2z >= -87.34`).
    fn steps(x: f32, fused: bool) -> f32 {
        let fma = |a: f32, b: f32, c: f32| {
            if fused {
                libm::fmaf(a, b, c)
            } else {
                a * b + c
            }
        };
        let z = x.abs();
        let w = z * z;
        let p = [P5, P4, P3, P2, P1, P0]
            .iter()
            .fold(P6, |p, &c| fma(p, w, c));
        let y = if z < POLY_BELOW {
            fma(z * w, p, z)
        } else {
            let (e, _) = exp_one_lane(-2.0 * z, fused);
            1.0 - (e + e) / (1.0 + e)
        };
        y.copysign(x)
    }

    /// The results of `N` lanes of `V` for `args` (any length).
    fn lanes<const N: usize, V: F32s<N>>(args: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(args.len());
        for chunk in args.chunks(N) {
            let mut a = [0.0f32; N];
            a[..chunk.len()].copy_from_slice(chunk);
            let mut y = [0.0f32; N];
            tanh_p15o_rr2p5_div::<N, V>(V::load(&a)).store(&mut y);
            out.extend_from_slice(&y[..chunk.len()]);
        }
        out
    }

    /// Every 613th non-negative `f32` (about 3.5 million, all exponents, `+inf` and NaN
    /// patterns included), the neighbours of the polynomial's end, of [`SATURATES`] and of
    /// `2^-126`, the smallest subnormal and `f32::MAX`; then all of them negated, in the same
    /// order.
    fn sweep_args() -> Vec<f32> {
        let mut args: Vec<f32> = (0..=f32::NAN.to_bits())
            .step_by(613)
            .map(f32::from_bits)
            .collect();
        for c in [POLY_BELOW, SATURATES, f32::MIN_POSITIVE] {
            let c = c.to_bits();
            args.extend((c - 40..c + 40).map(f32::from_bits));
        }
        args.extend([f32::from_bits(1), f32::MAX, f32::INFINITY, f32::NAN]);
        let half = args.len();
        args.extend_from_within(..);
        args[half..].iter_mut().for_each(|x| *x = -*x);
        args
    }

    /// The results `ys` of [`sweep_args`]: `same(x, y)` (the steps' result, as the caller
    /// defines it), within [`MAX_REL_ERROR`] of `tanh` (f64), odd bit for bit, exactly 1 in
    /// magnitude from [`SATURATES`] on, `±0` for `±0`, NaN for NaN.
    fn check(args: &[f32], ys: &[f32], same: impl Fn(f32, f32) -> bool) {
        let half = args.len() / 2;
        let mut worst = 0.0f64;
        for (i, (&x, &y)) in args.iter().zip(ys).enumerate() {
            if x.is_nan() {
                assert!(y.is_nan(), "tanh({x}) = {y}");
                continue;
            }
            let j = if i < half { i + half } else { i - half };
            assert_eq!(
                y.to_bits() ^ SIGN,
                ys[j].to_bits(),
                "tanh({:e}) is not -tanh({x:e}) = {y:e}",
                args[j]
            );
            assert!(same(x, y), "tanh({x:e}) = {y:e}, not as the steps");
            assert_eq!(
                x.abs() >= SATURATES,
                y.abs() == 1.0,
                "tanh({x:e}) = {y:e}: saturation"
            );
            if x == 0.0 {
                assert_eq!(y.to_bits(), x.to_bits(), "tanh({x:e}) = {y:e}");
                continue;
            }
            let want = libm::tanh(f64::from(x));
            let rel = ((f64::from(y) - want) / want).abs();
            worst = worst.max(rel);
            assert!(
                rel <= f64::from(MAX_REL_ERROR),
                "tanh({x:e}) = {y:e}, rel {rel:e}"
            );
        }
        assert!(
            worst > 1e-8,
            "a sweep this wide must see rounding: {worst:e}"
        );
    }

    /// [`sweep_args`] through the `N` lanes of one table's `V`, [`check`]ed, the steps
    /// bit for bit: fused where the table's `mul_add` is; without FMA either way, as `wide`
    /// fuses on aarch64 though `FUSED` is false there. Every table runs it: the portable one
    /// below, the x86-64 ones in their own tests where the CPU has them.
    pub(crate) fn sweep<const N: usize, V: F32s<N>>() {
        let fused = V::FUSED;
        let args = sweep_args();
        check(&args, &lanes::<N, V>(&args), |x, y| {
            y.to_bits() == steps(x, fused).to_bits()
                || (!fused && y.to_bits() == steps(x, true).to_bits())
        });
    }

    /// The largest errors one evaluator made: relative and in ulps of the `f32` grid at the
    /// true value, with their arguments.
    #[derive(Clone, Copy, Default)]
    struct Worst {
        rel: f64,
        rel_at: f32,
        ulps: f64,
        ulps_at: f32,
    }

    impl Worst {
        fn see(&mut self, x: f32, y: f32, want: f64) {
            let err = (f64::from(y) - want).abs();
            // The spacing of the f32 grid at `want` (subnormal below 2^-126).
            let e = (want.to_bits() >> 52) as i32 - 1023;
            let ulp = libm::ldexp(1.0, e.max(-126) - 23);
            if err / want > self.rel {
                (self.rel, self.rel_at) = (err / want, x);
            }
            if err / ulp > self.ulps {
                (self.ulps, self.ulps_at) = (err / ulp, x);
            }
        }
        fn merge(&mut self, o: Self) {
            if o.rel > self.rel {
                (self.rel, self.rel_at) = (o.rel, o.rel_at);
            }
            if o.ulps > self.ulps {
                (self.ulps, self.ulps_at) = (o.ulps, o.ulps_at);
            }
        }
    }

    /// One table's results for 16 arguments.
    fn table<V: F32s<16>>(a: &[f32; 16]) -> [f32; 16] {
        let mut y = [0.0f32; 16];
        tanh_p15o_rr2p5_div::<16, V>(V::load(a)).store(&mut y);
        y
    }

    /// Every `f32` of either sign through every table this machine runs, the one-lane steps
    /// without FMA (so that one run measures both forms where the CPU has AVX2) and
    /// [`tanh_scalar`], and `libm::tanhf` for comparison: prints each one's largest relative
    /// error and ulps, and holds all but `libm::tanhf` to [`MAX_REL_ERROR`], and all to oddness
    /// bit for bit, to saturation from [`SATURATES`] on and to NaN for NaN. `cargo test --release --lib -- --ignored --nocapture tanh_exhaustive`.
    #[test]
    #[ignore = "every f32, minutes: cargo test --release --lib -- --ignored --nocapture tanh_exhaustive"]
    fn tanh_exhaustive() {
        use std::sync::atomic::{AtomicU32, Ordering};
        type Eval = fn(&[f32; 16]) -> [f32; 16];
        let mut evals: Vec<(&str, Eval)> = std::vec![if <wide::f32x16 as F32s<16>>::FUSED {
            ("portable f32x16 (FMA)", table::<wide::f32x16> as Eval)
        } else {
            ("portable f32x16 (no FMA)", table::<wide::f32x16> as Eval)
        }];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::isa::x86_64::{avx2, avx512, has_avx2, has_avx512};
            if has_avx2() {
                evals.push(("avx2 (FMA)", table::<avx2::F32x16>));
            }
            if has_avx512() {
                evals.push(("avx512 (FMA)", table::<avx512::F32x16>));
            }
        }
        evals.push(("one lane, no FMA", |a| a.map(|x| steps(x, false))));
        evals.push(("tanh_scalar", |a| a.map(tanh_scalar)));
        let libm_at = evals.len();
        evals.push(("libm::tanhf", |a| a.map(libm::tanhf)));
        // Blocks of 2^20 non-negative bit patterns, taken by the threads in turn.
        const BLOCK: u32 = 1 << 20;
        let next = AtomicU32::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let evals = &evals;
        let worst = std::thread::scope(|sc| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    sc.spawn(|| {
                        let mut worst = std::vec![Worst::default(); evals.len()];
                        loop {
                            let b = next.fetch_add(1, Ordering::Relaxed);
                            if b >= (SIGN / BLOCK) {
                                return worst;
                            }
                            for first in (b * BLOCK..(b + 1) * BLOCK).step_by(16) {
                                let pos: [f32; 16] =
                                    core::array::from_fn(|l| f32::from_bits(first + l as u32));
                                let neg = pos.map(|x| -x);
                                let want = pos.map(|x| libm::tanh(f64::from(x)));
                                for (k, (name, eval)) in evals.iter().enumerate() {
                                    let (yp, yn) = (eval(&pos), eval(&neg));
                                    for l in 0..16 {
                                        let (x, y) = (pos[l], yp[l]);
                                        if x.is_nan() {
                                            assert!(y.is_nan() && yn[l].is_nan(), "{name}: {x}");
                                            continue;
                                        }
                                        assert_eq!(
                                            y.to_bits() ^ SIGN,
                                            yn[l].to_bits(),
                                            "{name}: tanh(-{x:e}) = {:e}, tanh({x:e}) = {y:e}",
                                            yn[l]
                                        );
                                        assert_eq!(
                                            x >= SATURATES,
                                            y == 1.0,
                                            "{name}: tanh({x:e}) = {y:e}"
                                        );
                                        if x == 0.0 {
                                            assert_eq!(y.to_bits(), 0, "{name}: tanh(0) = {y:e}");
                                        } else {
                                            worst[k].see(x, y, want[l]);
                                        }
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            let mut all = std::vec![Worst::default(); evals.len()];
            for w in workers {
                for (a, w) in all.iter_mut().zip(w.join().unwrap()) {
                    a.merge(w);
                }
            }
            all
        });
        for (k, ((name, _), w)) in evals.iter().zip(&worst).enumerate() {
            std::println!(
                "{name}: max rel {:.3e} at {:e} ({:#010x}), max {:.3} ulp at {:e} ({:#010x})",
                w.rel,
                w.rel_at,
                w.rel_at.to_bits(),
                w.ulps,
                w.ulps_at,
                w.ulps_at.to_bits()
            );
            if k != libm_at {
                assert!(w.rel <= f64::from(MAX_REL_ERROR), "{name}");
            }
        }
    }

    /// [`sweep`] on the portable table's widest vector (fused or not, as the build has FMA).
    #[test]
    fn portable_lanes_match_the_steps_and_tanh() {
        sweep::<16, wide::f32x16>();
    }

    /// [`tanh_scalar`] on [`sweep_args`], [`check`]ed: below 1, the steps without FMA bit for
    /// bit.
    #[test]
    fn scalar_matches_the_steps_and_tanh() {
        let args = sweep_args();
        let ys: Vec<f32> = args.iter().map(|&x| tanh_scalar(x)).collect();
        check(&args, &ys, |x, y| {
            x.abs() >= POLY_BELOW || y.to_bits() == steps(x, false).to_bits()
        });
    }
}
