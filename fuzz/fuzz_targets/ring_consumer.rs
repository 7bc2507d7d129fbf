//! `cargo fuzz run ring_consumer`: see [`xenmq_fuzz::targets::ring_consumer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::ring_consumer::run(data));
