//! `cargo fuzz run sim_control`: see [`xenmq_fuzz::targets::sim_control`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::sim_control::run(data));
