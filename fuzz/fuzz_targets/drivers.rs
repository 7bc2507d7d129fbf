//! `cargo fuzz run drivers`: see [`xenmq_fuzz::targets::drivers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::drivers::run(data));
