//! Philox blocks, the `rand_core` stream and the mask formula; see `dropmax_fuzz::philox`.
#![no_main]

use dropmax_fuzz::philox::{PhiloxInput, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: PhiloxInput| check(&input));
