//! `cargo fuzz run xenstore_server`: see [`xenmq_fuzz::targets::xenstore_server`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::xenstore_server::run(data));
