//! The crate's error: any module's error, for code that crosses modules.

use crate::{driver, evtchn, grant, ring, shm, wire, xenbus, xenstore};

/// Anything that can go wrong in xenmq, by module. Each variant wraps the
/// module's own error as its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ring failed.
    #[error("ring error")]
    Ring(#[from] ring::Error),
    /// A message could not be read.
    #[error("wire error")]
    Wire(#[from] wire::Error),
    /// A shared-memory access did not fit its region.
    #[error("shared memory error")]
    Shm(#[from] shm::Error),
    /// A grant operation failed.
    #[error("grant error")]
    Grant(#[from] grant::Error),
    /// An event channel operation failed.
    #[error("event channel error")]
    Evtchn(#[from] evtchn::Error),
    /// A Xenstore operation failed.
    #[error("xenstore error")]
    Store(#[from] xenstore::Error),
    /// Negotiation or the device lifecycle failed.
    #[error("xenbus error")]
    Xenbus(#[from] xenbus::Error),
    /// A driver's data path failed.
    #[error("driver error")]
    Driver(#[from] driver::Error),
}

/// An error and its sources on one line, `what: why: deeper cause`: how
/// every xenmq binary prints a failure.
///
/// ```
/// # use xenmq::error::Chain;
/// let e = xenmq::Error::from(xenmq::shm::Error::OutOfBounds { offset: 8, size: 4, len: 4 });
/// assert!(Chain(&e).to_string().starts_with("shared memory error: "));
/// ```
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn core::error::Error + 'a));

impl core::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl core::fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}
