//! Shared helpers for the integration and conformance tests.
#![forbid(unsafe_code)]

pub mod cc;
pub mod ours;
pub mod ref_xenstored;
pub mod wire;

use std::path::Path;

/// A fresh directory for one run of a test (`xenmq-TAG-XXXXXX` under the
/// temporary directory, mode 0700), removed with everything in it when
/// dropped, a test's panic included.
#[derive(Debug)]
pub struct RunDir(tempfile::TempDir);

impl RunDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl std::ops::Deref for RunDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for RunDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A new [`RunDir`] for the test `tag`.
pub fn run_dir(tag: &str) -> RunDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("xenmq-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a run directory for {tag}: {e}"));
    RunDir(dir)
}

/// What the named-queue tests send: a sequence number per sender and the
/// sender the message claims to come from (which the receiver must not
/// trust: it knows the true one from the channel).
pub mod mq {
    /// One test message.
    #[xenmq::message]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Seq {
        /// The sender's sequence number, from 0.
        pub seq: u64,
        /// The domain the message claims to come from.
        pub claimed: u64,
    }
}
