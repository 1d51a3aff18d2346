//! The instruction-set tables and the one place that chooses among them.
//!
//! A table is a kernel type implementing the crate's passes for one instruction set. The
//! portable tables ([`Wide4`](crate::Wide4), [`Wide8`](crate::Wide8), [`Wide16`](crate::Wide16))
//! run on `wide`'s vectors, whose instructions the build's target features fix at compile time.
//! On x86-64 two more are compiled into every build and chosen at run time: [`Avx2`](crate::Avx2)
//! (AVX2 and FMA) and [`Avx512`](crate::Avx512) (AVX-512 F, BW, DQ and VL). [`Best`](crate::Best)
//! runs the table [`isa`] names, through [`run_best`], the one dispatch point. Code that depends on an instruction set lives
//! under this folder; the kernels above it are written once over the vector traits of
//! `lanes`.

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

pub(crate) mod portable;
#[cfg(test)]
mod rows_ahead_probe;

/// An instruction-set table: what [`Best`](crate::Best) runs, and what a kernel type needs from
/// the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// `wide`'s vectors as the build's target features lower them (SSE2 in a default x86-64
    /// build, NEON on aarch64, simd128 on wasm with it enabled, scalar code elsewhere).
    Portable,
    /// AVX2 with FMA (x86-64-v3: also BMI1, BMI2, F16C, LZCNT), 8 lanes.
    Avx2,
    /// AVX-512 F, BW, DQ and VL on top of [`Isa::Avx2`] (x86-64-v4), 16 lanes.
    Avx512,
}

impl Isa {
    /// Every table, the most capable last.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// A short name: `"portable"`, `"avx2"` or `"avx512"`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU (and its operating system, which must save the wider registers) can
    /// run the table. [`Isa::Portable`] always can.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86_64::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86_64::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }
}

/// The table [`Best`](crate::Best) runs on this machine: [`Isa::Avx2`] where available, else
/// [`Isa::Portable`].
///
/// Detected once (CPUID and XGETBV on x86-64) and cached; a build whose target features already
/// guarantee a table (e.g. `-C target-cpu=native`) selects it without asking the CPU.
///
/// [`Isa::Avx512`] is not selected yet, even where available: the AVX-512 table is built into
/// every x86-64 build and runs through the whole test suite on any CPU that has AVX-512
/// ([`Avx512`](crate::Avx512), forced with `with_kernel`), but it has not yet passed that suite
/// on such a CPU, and the default path runs only tables that have.
pub fn isa() -> Isa {
    if Isa::Avx2.is_available() {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

/// Runs `job` with the passes of the table [`isa`] names: the crate's one dispatch point.
#[inline(always)]
pub(crate) fn run_best<J: crate::kernel::sealed::Job>(job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    if x86_64::has_avx2() {
        use crate::kernel::sealed::Dispatch;
        return x86_64::avx2::Avx2::dispatch(job);
    }
    job.run::<crate::Wide16>()
}
