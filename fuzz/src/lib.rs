//! The fuzzing harness of `dropmax` (not published; not part of the main workspace).
//!
//! The input types and every check live in modules shared with the main crate's
//! `tests/fuzz_regressions.rs`, which replays the committed cases in `tests/data/fuzz/<target>/`
//! (the `{:#?}` text of an input, as `cargo fuzz fmt` prints it) through the same checks.
//!
//! Targets (`fuzz_targets/`): `forward` ([`forward::check`]), `philox` ([`philox::check`]) and
//! `backward` ([`backward::check`]: the training APIs of contract section 4, backward passes,
//! split rows and the mask export, built on the `forward` target's inputs and model).

#[macro_use]
pub mod value;
pub mod backward;
pub mod forward;
pub mod philox;
