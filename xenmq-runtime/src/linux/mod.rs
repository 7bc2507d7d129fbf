//! Linux userspace on real Xen, through `/dev/xen`.
//!
//! - [`Gntalloc`] shares pages with a peer (`/dev/xen/gntalloc`), [`Gntdev`]
//!   maps a peer's grants (`/dev/xen/gntdev`);
//! - [`Evtchn`] allocates, binds, notifies and waits on event channels
//!   (`/dev/xen/evtchn`), and is pollable as a file descriptor;
//! - [`Xenbus`] is the byte transport to Xenstore inside a guest
//!   (`/dev/xen/xenbus`), for the Xenstore client;
//! - [`Grants`] and [`Events`] (with [`Channel`]) implement the platform
//!   traits `xenmq::grant::Grants` and `xenmq::evtchn::Events` on them.
//!
//! The Xen ioctls live in [`sys`], behind one trait per device, so the
//! logic here runs in unit tests against fakes; mapping the devices' pages
//! and waiting on them are `xenmq_sys`'s, as for every platform. Everything
//! else is safe code.

mod evtchn;
mod grant;
mod platform;
pub mod sys;
mod xenbus;

pub use evtchn::{Evtchn, PortStatus};
pub use grant::{Gntalloc, Gntdev, Mapped, Shared, MAX_PAGES};
pub use platform::{Channel, Events, Grants};
pub use sys::{BadAccess, Mapping};
pub use xenbus::Xenbus;

use std::io;

/// Errors of the Linux platform. All of them are local failures (a device
/// refused or is missing); the peer cannot make this layer fail other than
/// through Xen's own refusals (e.g. a bad grant reference).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `/dev/xen` node could not be opened (not in a Xen guest, module not
    /// loaded, or not root).
    #[error("cannot open {path}")]
    Open {
        /// The device node.
        path: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An ioctl, mmap, read or write on a device failed.
    #[error("{op} failed")]
    Device {
        /// The operation, e.g. `IOCTL_GNTDEV_MAP_GRANT_REF`.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A request for no pages or more than [`MAX_PAGES`].
    #[error("page count {0} is outside 1..={max}", max = MAX_PAGES)]
    PageCount(usize),
    /// An event channel port this handle has not bound.
    #[error("port {0} is not bound by this handle")]
    NotBound(u32),
    /// An access outside a mapping.
    #[error(transparent)]
    Access(#[from] BadAccess),
}

/// Result alias of this module.
pub type Result<T, E = Error> = core::result::Result<T, E>;

fn dev_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Device { op, source }
}
