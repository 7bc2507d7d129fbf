//! `cargo fuzz run native_ring`: see [`xenmq_fuzz::targets::native_ring`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::native_ring::run(data));
