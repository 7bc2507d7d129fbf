//! `cargo fuzz run xenbus`: see [`xenmq_fuzz::targets::xenbus`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::xenbus::run(data));
