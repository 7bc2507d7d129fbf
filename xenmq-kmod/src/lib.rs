//! `xenmq-kmod`: turns a xenmq driver crate and a role into a Linux kernel
//! module (`.ko`) against a kernel's build tree.
//!
//! [`build()`] writes a wrapper crate (the driver crate, `xenmq-kernel` and
//! one `xenmq_kernel::module!` line), compiles it into one relocatable
//! `no_std` object with the kernel's code model, links it with
//! `xenmq-kernel`'s C shim through Kbuild (a custom rule that records the
//! object's `.cmd` for modpost and runs objtool on it), and then checks the
//! result: no GOT relocations, `MODULE_LICENSE("GPL")`, objtool silent,
//! and the panic sites left in the Rust object counted ([`check`]).
//!
//! The Rust object is built with the nightly toolchain (`cargo +nightly`),
//! because an objtool-clean object needs `-Zbuild-std` (core and
//! compiler_builtins rebuilt with the kernel's flags) and the retpoline,
//! return-thunk and SLS options, which are unstable; `RUSTC_BOOTSTRAP` is
//! not used.
#![deny(unsafe_code)]

pub mod build;
pub mod check;
pub mod cli;
pub mod headers;

use std::path::Path;
use std::process::Command;

pub use build::{build, Build, Module, Role};
pub use headers::Kernel;

/// Where fetched headers and builds are kept unless told otherwise.
pub const DEFAULT_CACHE: &str = "/var/tmp/xenmq-kmod";

/// Why a module could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel build tree is missing or could not be fetched.
    #[error("kernel headers: {0}")]
    Headers(String),
    /// A host tool could not be started.
    #[error("cannot run {what}")]
    Tool {
        /// The tool.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host tool failed.
    #[error("{what} failed: {output}")]
    Failed {
        /// The tool.
        what: String,
        /// Its diagnostics.
        output: String,
    },
    /// A file could not be read or written.
    #[error("i/o error on {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The nightly toolchain or its library sources are missing.
    #[error("toolchain: {0}")]
    Toolchain(String),
    /// The driver crate is not usable as asked.
    #[error("driver crate: {0}")]
    Crate(String),
    /// The driver crate does not build for the kernel.
    #[error("the driver does not build for the kernel: {why}\n{rustc}")]
    Rust {
        /// One line saying why.
        why: String,
        /// rustc's diagnostics.
        rustc: String,
    },
    /// The built module breaks a rule a module must keep.
    #[error("the module is unfit: {0}")]
    Unfit(String),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `cmd`; its stdout on success, its diagnostics in the error.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|source| Error::Tool {
        what: what.to_owned(),
        source,
    })?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(Error::Failed {
            what: format!("{what} ({})", out.status),
            output: text.trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |source| Error::Io { path, source }
}
