//! Shared helpers for the integration and conformance tests.
#![forbid(unsafe_code)]

pub mod cc;
pub mod ours;
pub mod ref_xenstored;
pub mod wire;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh path under the temporary directory for one run of a test
/// (`xenmq-TAG-PID-N`), removed first if a previous run left it.
pub fn run_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xenmq-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
