//! The fused forward row kernel; see `dropmax_fuzz::forward`.
#![no_main]

use dropmax_fuzz::forward::{ForwardInput, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: ForwardInput| check(&input));
