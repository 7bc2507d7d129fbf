//! `cargo fuzz run xenstore_client`: see [`xenmq_fuzz::targets::xenstore_client`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xenmq_fuzz::targets::xenstore_client::run(data));
