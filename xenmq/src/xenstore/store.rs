//! The Xenstore operations a driver needs, as a platform trait.
//!
//! [`Store`] is implemented by every platform: the wire-protocol client in
//! `xenmq-runtime` (Unix socket to the simulator or to dom0's xenstored,
//! `/dev/xen/xenbus` in a guest) and the kernel's xenbus glue. Platform-free
//! code (negotiation, the lifecycle) is written against it alone.
//!
//! Operations take a [`Tx`]: [`Tx::NONE`] outside a transaction, or the id
//! [`Store::transaction_start`] returned. [`transaction`] runs a closure in
//! a transaction and retries it while the commit answers `EAGAIN`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::xenstore::perms::Perms;
pub use crate::xenstore::wire::Errno;

/// A transaction id; [`Tx::NONE`] means "not in a transaction".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tx(pub u32);

impl Tx {
    /// No transaction.
    pub const NONE: Tx = Tx(0);
}

/// A watch event: the path that changed and the token the watch was set with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (relative if the watch was set relative).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// Why a Xenstore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with this error name.
    #[error("xenstore refused the request: {0}")]
    Refused(Errno),
    /// The server sent something the protocol does not allow.
    #[error("xenstore protocol violation")]
    Protocol(#[source] crate::xenstore::wire::Error),
    /// An argument cannot be sent: a NUL inside a path or token, or a
    /// request longer than the 4096-byte payload limit.
    #[error("argument cannot be sent to xenstore: {0}")]
    BadArgument(&'static str),
    /// The connection to the server is gone.
    #[error("xenstore connection closed")]
    Closed,
    /// The local transport failed.
    #[error("xenstore transport failed")]
    Transport(#[source] Box<dyn core::error::Error + Send + Sync>),
    /// [`transaction`] gave up after this many `EAGAIN` answers.
    #[error("transaction still conflicting after {0} attempts")]
    TooManyRetries(u32),
}

impl Error {
    /// The server's error name, if the server refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Refused(e) => Some(*e),
            _ => None,
        }
    }
}

/// The Xenstore operations, as every platform provides them.
pub trait Store {
    /// Reads a node's value.
    fn read(&self, tx: Tx, path: &str) -> Result<Vec<u8>, Error>;
    /// Writes a node's value, creating it and missing parents.
    fn write(&self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error>;
    /// Creates a node (and missing parents) if it does not exist.
    fn mkdir(&self, tx: Tx, path: &str) -> Result<(), Error>;
    /// Removes a node and everything below it.
    fn rm(&self, tx: Tx, path: &str) -> Result<(), Error>;
    /// Lists a node's children, by name.
    fn directory(&self, tx: Tx, path: &str) -> Result<Vec<String>, Error>;
    /// Reads a node's permissions.
    fn get_perms(&self, tx: Tx, path: &str) -> Result<Perms, Error>;
    /// Replaces a node's permissions.
    fn set_perms(&self, tx: Tx, path: &str, perms: &Perms) -> Result<(), Error>;
    /// Watches `path` and everything below it; events carry `token`. The
    /// server fires one event for the watch right after setting it.
    fn watch(&self, path: &str, token: &str) -> Result<(), Error>;
    /// Removes a watch set with the same path and token.
    fn unwatch(&self, path: &str, token: &str) -> Result<(), Error>;
    /// The next watch event, waiting up to `timeout` (`None`: forever).
    /// `Ok(None)` when the time ran out.
    fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>, Error>;
    /// Starts a transaction.
    fn transaction_start(&self) -> Result<Tx, Error>;
    /// Ends a transaction: commits it if `commit`, else discards it. A
    /// commit that conflicts fails with `Refused(EAGAIN)`.
    fn transaction_end(&self, tx: Tx, commit: bool) -> Result<(), Error>;
    /// The home path of a domain (`/local/domain/<domid>`).
    fn get_domain_path(&self, domid: u32) -> Result<String, Error>;

    /// Reads a node as text (lossless for the ASCII values Xenbus uses).
    fn read_string(&self, tx: Tx, path: &str) -> Result<String, Error> {
        let v = self.read(tx, path)?;
        String::from_utf8(v).map_err(|_| Error::Refused(Errno::EINVAL))
    }

    /// Whether a node exists (a read that does not fail with `ENOENT`).
    fn exists(&self, tx: Tx, path: &str) -> Result<bool, Error> {
        match self.read(tx, path) {
            Ok(_) => Ok(true),
            Err(Error::Refused(Errno::ENOENT)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// How many times [`transaction`] tries before giving up.
pub const TRANSACTION_ATTEMPTS: u32 = 32;

/// Runs `body` in a transaction and commits it; when the commit conflicts
/// (`EAGAIN`), runs it again in a fresh transaction, up to
/// [`TRANSACTION_ATTEMPTS`] times. If `body` fails, the transaction is
/// discarded and its error returned.
pub fn transaction<S, T, F>(store: &S, mut body: F) -> Result<T, Error>
where
    S: Store + ?Sized,
    F: FnMut(Tx) -> Result<T, Error>,
{
    for _ in 0..TRANSACTION_ATTEMPTS {
        let tx = store.transaction_start()?;
        let value = match body(tx) {
            Ok(v) => v,
            Err(e) => {
                // The body's error is the one worth reporting; a failed
                // abort (e.g. a closed connection) adds nothing to it.
                let _ = store.transaction_end(tx, false);
                return Err(e);
            }
        };
        match store.transaction_end(tx, true) {
            Ok(()) => return Ok(value),
            Err(Error::Refused(Errno::EAGAIN)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::TooManyRetries(TRANSACTION_ATTEMPTS))
}
