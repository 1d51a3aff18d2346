//! The fuzzing harness of `dropmax` (not published; not part of the main workspace).
//!
//! The input types and every check live in modules shared with the main crate's
//! `tests/fuzz_regressions.rs`, which replays the committed cases in `tests/data/fuzz/<target>/`
//! (the `{:#?}` text of an input, as `cargo fuzz fmt` prints it) through the same checks.
//!
//! Targets (`fuzz_targets/`): `forward` ([`forward::check`]) and `philox` ([`philox::check`]).
//! A `backward` target belongs here once the backward kernel exists (contract section 4): the
//! same structure, checking `dx` against the model and every variant against the scalar one.

#[macro_use]
pub mod value;
pub mod forward;
pub mod philox;
