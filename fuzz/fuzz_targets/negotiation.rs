//! `cargo fuzz run negotiation`: see [`xenmq_fuzz::targets::negotiation`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::negotiation::run(data));
