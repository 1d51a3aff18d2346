//! The x86-64 tables, compiled into every x86-64 build and chosen at run time.
//!
//! Each table is a kernel type whose `Passes` methods are its microkernels: the crate's generic
//! passes instantiated over the table's vector types inside a function compiled with the
//! table's target features (`#[target_feature]`), so that they use its instructions whatever
//! the build's own features. Every microkernel first asks the cached detection whether the CPU
//! has those features, and runs the portable table of the same width when it does not (the
//! public entry points have already refused such a call with `Error::UnsupportedIsa`), so no
//! instruction the CPU lacks is ever executed.
//!
//! A table's jobs (the crate's calls into the kernels) run whole inside one function compiled
//! with the table's features (`table_kernel!`), so that the driver's calls into the
//! microkernels inline as they do in a build for that CPU.
//!
//! The `unsafe` of this folder is in three places, each in this file: reading XCR0 during
//! detection ([`xcr0`]), calling a function compiled with a table's features after the check
//! (`checked!`), and calling the intrinsics of a table's vector types (`intrinsics!`).

use core::sync::atomic::{AtomicU8, Ordering};

/// Calls intrinsics (an expression using them) from a method of a table's vector types.
macro_rules! intrinsics {
    ($e:expr) => {{
        // SAFETY: the intrinsics need the target features of the table whose vector types call
        // them (AVX2 and FMA, or AVX-512 F/BW/DQ/VL), and are otherwise safe: they touch only
        // registers, or memory through the pointer of a live reference to exactly as many
        // elements as they read or write. The vector types are private to their table, whose
        // kernel type is their only user outside its unit tests (which check `runs` first),
        // and every entry into that kernel (a `Passes` method, see `microkernel!`) runs only
        // once detection confirmed the features.
        #[allow(unsafe_code, unused_unsafe)]
        let r = unsafe { $e };
        r
    }};
}

/// `$call` (a call of a function compiled with the target features `$features`) when `$has()`
/// confirms them, else `$otherwise`.
macro_rules! checked {
    ($features:literal, $has:path, $call:expr, $otherwise:expr) => {
        if $has() {
            // SAFETY: the function called needs only the target features `$features`, which
            // `$has` (the cached CPUID and XGETBV detection, or the build's own target
            // features) has just confirmed this CPU and its OS support.
            #[allow(unsafe_code, unused_unsafe)]
            let r = unsafe { $call };
            r
        } else {
            $otherwise
        }
    };
}

/// A `Passes` method of a table: `$body` compiled with the target features `$features` as a
/// function of its own, called when `$has()` confirms them, else the same method of the
/// portable kernel `$fallback`.
macro_rules! microkernel {
    (
        $features:literal, $has:path, $fallback:ty,
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        #[inline(always)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            fn microkernel($($arg: $ty),*) $(-> $ret)? $body
            checked!(
                $features,
                $has,
                microkernel($($arg),*),
                <$fallback as $crate::kernel::sealed::Passes>::$name($($arg),*)
            )
        }
    };
}

/// The variant `$kernel` of a table: its jobs run whole (driver and microkernels) inside one
/// function compiled with the table's target features `$features`, so that the driver's
/// calls into the microkernels can be inlined; without the features, the portable
/// `$fallback` runs them (the public entry points refuse such calls first).
macro_rules! table_kernel {
    ($kernel:ty, $name:literal, $features:literal, $has:path, $fallback:ty) => {
        impl $crate::kernel::sealed::Dispatch for $kernel {
            #[inline(always)]
            fn dispatch<J: $crate::kernel::sealed::Job>(job: J) -> J::Out {
                #[target_feature(enable = $features)]
                fn run<J: $crate::kernel::sealed::Job>(job: J) -> J::Out {
                    job.run::<$kernel>()
                }
                checked!($features, $has, run(job), job.run::<$fallback>())
            }
            #[inline(always)]
            fn supported() -> bool {
                $has()
            }
        }
        impl $crate::kernel::RowKernel for $kernel {
            const NAME: &'static str = $name;
        }
    };
}

/// `impl $trait for $t` (a binary operator) by the intrinsic `$intrinsic` on the registers.
macro_rules! binary {
    ($t:ident, $trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for $t {
            type Output = Self;
            #[inline(always)]
            fn $method(self, o: Self) -> Self {
                Self(intrinsics!($intrinsic(self.0, o.0)))
            }
        }
    };
}

/// `Shl<u32>` and `Shr<u32>` for `$t` by the shift-by-register intrinsics `$sll`, `$srl`.
macro_rules! shifts {
    ($t:ident, $sll:ident, $srl:ident) => {
        impl Shl<u32> for $t {
            type Output = Self;
            #[inline(always)]
            fn shl(self, n: u32) -> Self {
                Self(intrinsics!($sll(self.0, _mm_cvtsi32_si128(n as i32))))
            }
        }
        impl Shr<u32> for $t {
            type Output = Self;
            #[inline(always)]
            fn shr(self, n: u32) -> Self {
                Self(intrinsics!($srl(self.0, _mm_cvtsi32_si128(n as i32))))
            }
        }
    };
}

pub(crate) mod avx2;
pub(crate) mod avx512;

/// Detection state: [`KNOWN`] once detected, with [`AVX2`] and [`AVX512`] as found.
static FEATURES: AtomicU8 = AtomicU8::new(0);
const KNOWN: u8 = 1;
const AVX2: u8 = 2;
const AVX512: u8 = 4;

/// Whether the AVX2 table can run: AVX, AVX2, FMA, BMI1, BMI2, F16C, LZCNT and POPCNT, with the
/// OS saving the YMM registers.
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    cfg!(all(
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "bmi1",
        target_feature = "bmi2",
        target_feature = "f16c",
        target_feature = "lzcnt",
        target_feature = "popcnt"
    )) || features() & AVX2 != 0
}

/// Whether the AVX-512 table can run: the AVX2 table's features and AVX-512 F, BW, DQ and VL,
/// with the OS saving the opmask and ZMM registers.
#[inline(always)]
pub(crate) fn has_avx512() -> bool {
    cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512dq",
        target_feature = "avx512vl",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "bmi1",
        target_feature = "bmi2",
        target_feature = "f16c",
        target_feature = "lzcnt",
        target_feature = "popcnt"
    )) || features() & AVX512 != 0
}

/// The detected features, detected on first use. Two threads may both detect; they store the
/// same value.
#[inline(always)]
fn features() -> u8 {
    match FEATURES.load(Ordering::Relaxed) {
        0 => detect_and_cache(),
        f => f,
    }
}

#[cold]
#[inline(never)]
fn detect_and_cache() -> u8 {
    let f = detect() | KNOWN;
    FEATURES.store(f, Ordering::Relaxed);
    f
}

/// CPUID and XCR0 read into [`AVX2`] and [`AVX512`] bits.
fn detect() -> u8 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let bit = |word: u32, b: u32| word >> b & 1 == 1;
    let max_leaf = __cpuid(0).eax;
    if max_leaf < 7 {
        return 0;
    }
    let l1 = __cpuid(1);
    let l7 = __cpuid_count(7, 0);
    let lzcnt = __cpuid(0x8000_0000).eax >= 0x8000_0001 && bit(__cpuid(0x8000_0001).ecx, 5);
    // OSXSAVE: the OS has enabled XGETBV and manages the extended register state.
    if !bit(l1.ecx, 27) {
        return 0;
    }
    let xcr0 = xcr0();
    // XMM and YMM state; then opmask, ZMM upper halves and ZMM16-31.
    let os_ymm = xcr0 & 0b110 == 0b110;
    let os_zmm = xcr0 & 0b1110_0110 == 0b1110_0110;
    let avx2 = os_ymm
        && [12, 23, 28, 29].iter().all(|&b| bit(l1.ecx, b)) // FMA, POPCNT, AVX, F16C
        && [3, 5, 8].iter().all(|&b| bit(l7.ebx, b)) // BMI1, AVX2, BMI2
        && lzcnt;
    let avx512 = avx2 && os_zmm && [16, 17, 30, 31].iter().all(|&b| bit(l7.ebx, b)); // F, DQ, BW, VL
    (u8::from(avx2) * AVX2) | (u8::from(avx512) * AVX512)
}

/// XCR0, the register-state components the OS saves. Called only when CPUID reports OSXSAVE.
fn xcr0() -> u64 {
    // SAFETY: `_xgetbv` needs XSAVE's XGETBV, which CPUID.1:ECX.OSXSAVE (checked by the caller)
    // reports as enabled by the OS; register 0 (XCR0) always exists then.
    #[allow(unsafe_code, unused_unsafe)]
    let r = unsafe { core::arch::x86_64::_xgetbv(0) };
    r
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    /// Whether the unit tests of table `name` run here: where the CPU has it (`has`). A table
    /// named in `DROPMAX_REQUIRE_KERNELS` (comma-separated, as for the integration tests) that
    /// the CPU lacks fails the test instead of skipping it.
    pub(crate) fn runs(name: &str, has: bool) -> bool {
        let required = std::env::var("DROPMAX_REQUIRE_KERNELS")
            .is_ok_and(|v| v.split(',').any(|k| k.trim() == name));
        assert!(
            has || !required,
            "kernel {name} is required (DROPMAX_REQUIRE_KERNELS) but this CPU cannot run it"
        );
        has
    }

    /// The cached detection agrees with std's, feature by feature.
    #[test]
    fn detection_matches_std() {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2")
            && has!("fma")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("lzcnt")
            && has!("popcnt");
        let avx512 =
            avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl");
        assert_eq!(super::has_avx2(), avx2);
        assert_eq!(super::has_avx512(), avx512);
    }
}
