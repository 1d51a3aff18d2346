//! Replays the fuzz cases committed under `tests/data/fuzz/<target>/` through the fuzz targets'
//! own checks (`fuzz/src/`, included here by path: the same code, no `arbitrary` needed).
//!
//! Each file holds one input as the `{:#?}` text that `cargo fuzz fmt <target> <file>` prints
//! (see `tests/data/fuzz/README.md`): seeds picked from a minimised corpus, and every crash the
//! fuzzer has found. A file that does not parse fails the test, so a raw libFuzzer artifact
//! dropped in by mistake is caught rather than skipped.

#[macro_use]
#[path = "../fuzz/src/value.rs"]
mod value;
#[path = "../fuzz/src/backward.rs"]
mod backward;
#[path = "../fuzz/src/forward.rs"]
mod forward;
#[path = "../fuzz/src/philox.rs"]
mod philox;

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use value::{FromValue, from_text};

/// The line `cargo fuzz fmt` prints before the `Debug` text.
const FMT_HEADER: &str = "Output of `std::fmt::Debug`:";

/// At least this many committed cases per target: the replay must never pass on an empty folder.
const MIN_CASES: usize = 4;

/// Every case of `target`, as (file name, parsed input), sorted by name.
fn cases<T: FromValue + Debug + PartialEq>(target: &str) -> Vec<(String, T)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let cases: Vec<(String, T)> = paths
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| {
                panic!("{name}: not text ({e}); convert it with `cargo fuzz fmt`")
            });
            // `cargo fuzz fmt` prints a header line before the value: skip it if it was kept.
            let text = text
                .split_once(FMT_HEADER)
                .map_or(text.as_str(), |(_, v)| v);
            let input: T = from_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            // The text format round-trips, so a case means what its file says.
            let again: T = from_text(&format!("{input:#?}")).expect("Debug text parses back");
            assert_eq!(again, input, "{name}: Debug text does not round-trip");
            (name, input)
        })
        .collect();
    assert!(
        cases.len() >= MIN_CASES,
        "{}: {} cases, expected at least {MIN_CASES}",
        dir.display(),
        cases.len()
    );
    cases
}

/// Runs `check` on every case of `target`, reporting every failing file.
fn replay<T: FromValue + Debug + PartialEq>(target: &str, check: fn(&T)) {
    let failed: Vec<String> = cases::<T>(target)
        .into_iter()
        .filter_map(|(name, input)| {
            catch_unwind(AssertUnwindSafe(|| check(&input)))
                .is_err()
                .then_some(name)
        })
        .collect();
    assert!(failed.is_empty(), "{target}: failing cases {failed:?}");
}

#[test]
fn forward_cases_pass_the_fuzz_checks() {
    replay("forward", forward::check);
}

#[test]
fn philox_cases_pass_the_fuzz_checks() {
    replay("philox", philox::check);
}

#[test]
fn backward_cases_pass_the_fuzz_checks() {
    replay("backward", backward::check);
}

/// The checks bite: the same cases, with each output altered after the kernel ran, must fail.
/// A check that accepted these would accept a broken kernel.
#[test]
fn forward_checks_reject_altered_outputs() {
    type Alter = fn(&str, &mut [f32]);
    let alterations: [(&str, Alter); 4] = [
        // A value off by 1e-4 relative, on the Wide8 variant only.
        ("wide8 value", |k, y| {
            if k == "wide8"
                && let Some(v) = y.iter_mut().find(|v| v.is_finite() && **v > 0.0)
            {
                *v *= 1.0 + 1e-4;
            }
        }),
        // A zero (masked, dropped or flushed) that is not zero, on every variant.
        ("zero", |_, y| {
            if let Some(v) = y.iter_mut().find(|v| v.to_bits() == 0) {
                *v = f32::from_bits(1);
            }
        }),
        // +0 written as -0, on the scalar reference.
        ("sign", |k, y| {
            if k == "scalar"
                && let Some(v) = y.iter_mut().find(|v| v.to_bits() == 0)
            {
                *v = -0.0;
            }
        }),
        // A NaN payload changed, on Best.
        ("nan", |k, y| {
            if k == "best"
                && let Some(v) = y.iter_mut().find(|v| v.is_nan())
            {
                *v = f32::from_bits(v.to_bits() ^ 1);
            }
        }),
    ];
    let cases = cases::<forward::ForwardInput>("forward");
    for (what, alter) in alterations {
        let caught = cases
            .iter()
            .filter(|(_, input)| {
                quietly(|| catch_unwind(AssertUnwindSafe(|| forward::check_with(input, &alter))))
                    .is_err()
            })
            .count();
        assert!(
            caught > 0,
            "no committed case catches an altered output ({what})"
        );
    }
}

/// The same for the `backward` target: each gradient row (and split row) altered after the
/// kernels ran must fail on at least one committed case.
#[test]
fn backward_checks_reject_altered_outputs() {
    type Alter = fn(&str, &mut [f32]);
    let alterations: [(&str, Alter); 4] = [
        // A gradient off by 1e-4 relative, on the Wide8 variant only.
        ("wide8 value", |k, dx| {
            if k == "wide8"
                && let Some(v) = dx.iter_mut().find(|v| v.is_finite() && **v != 0.0)
            {
                *v *= 1.0 + 1e-4;
            }
        }),
        // A masked (or p = 1) +0 that is not zero, on every variant.
        ("zero", |_, dx| {
            if let Some(v) = dx.iter_mut().find(|v| v.to_bits() == 0) {
                *v = f32::from_bits(1);
            }
        }),
        // +0 written as -0, on the scalar reference.
        ("sign", |k, dx| {
            if k == "scalar"
                && let Some(v) = dx.iter_mut().find(|v| v.to_bits() == 0)
            {
                *v = -0.0;
            }
        }),
        // A NaN gradient that is not NaN, on Best.
        ("nan", |k, dx| {
            if k == "best"
                && let Some(v) = dx.iter_mut().find(|v| v.is_nan())
            {
                *v = 0.0;
            }
        }),
    ];
    let cases = cases::<backward::BackwardInput>("backward");
    for (what, alter) in alterations {
        let caught = cases
            .iter()
            .filter(|(_, input)| {
                quietly(|| catch_unwind(AssertUnwindSafe(|| backward::check_with(input, &alter))))
                    .is_err()
            })
            .count();
        assert!(
            caught > 0,
            "no committed backward case catches an altered output ({what})"
        );
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with panic messages of this thread silenced (expected panics), others untouched.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = f();
    QUIET.with(|q| q.set(false));
    r
}
