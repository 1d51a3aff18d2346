//! Backward passes, split rows and the mask export; see `dropmax_fuzz::backward`.
#![no_main]

use dropmax_fuzz::backward::{BackwardInput, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: BackwardInput| check(&input));
