//! xenmq's fuzz targets: every parser of what a peer can send, each a
//! `run(&[u8])` over one shared harness ([`harness`]).
//!
//! `cargo fuzz` runs them with libFuzzer (the thin binaries in
//! `fuzz_targets/`, feature `libfuzzer`); the main workspace's
//! `tests/tests/fuzz_corpus.rs` replays the committed corpus
//! (`fuzz/corpus/<target>/`) and a stream of generated inputs through the
//! same functions on a stable toolchain. `scripts/fuzz.sh` runs each target
//! time-boxed (`.ci/run`) or for a long campaign.

pub mod harness;

/// The targets, one module each.
pub mod targets {
    pub mod drivers;
    pub mod native_ring;
    pub mod negotiation;
    pub mod ring_consumer;
    pub mod sim_control;
    pub mod xenbus;
    pub mod xenstore_client;
    pub mod xenstore_server;
}

/// A target: one execution on one input.
pub type Target = fn(&[u8]);

/// Every target by name (its `fuzz_targets/` binary and corpus directory).
pub const TARGETS: [(&str, Target); 8] = [
    ("drivers", targets::drivers::run),
    ("native_ring", targets::native_ring::run),
    ("negotiation", targets::negotiation::run),
    ("ring_consumer", targets::ring_consumer::run),
    ("sim_control", targets::sim_control::run),
    ("xenbus", targets::xenbus::run),
    ("xenstore_client", targets::xenstore_client::run),
    ("xenstore_server", targets::xenstore_server::run),
];
