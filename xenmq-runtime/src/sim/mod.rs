//! The simulator: a Xen host on one Linux machine.
//!
//! A [`Host`] plays hypervisor and toolstack for domains that are ordinary
//! processes (or, in unit tests, threads): grant tables over memfds handed
//! over `SCM_RIGHTS`, event channels over eventfds the domains write
//! directly, and domains that live from their creation until they are
//! destroyed, with any number of processes as each (a process's exit, a
//! closed control connection, releases what that process held).
//! [`Domain`] is a domain's side: it implements
//! [`xenmq::grant::Grants`] and [`xenmq::evtchn::Events`].
//!
//! With a Xenstore ([`Host::with_xenstored`], as `xenmq sim` runs it) the
//! host is also the toolstack: creating a domain introduces it
//! (`@introduceDomain`) and writes `/local/domain/<domid>` as libxl does;
//! its destruction removes that tree and fires `@releaseDomain`. Each domain's
//! Xenstore socket speaks as that domain, so `XENSTORED_PATH` pointed at it
//! makes Debian's `xenstore-*` clients (or [`crate::xenstore::Connection`]) a guest's.
//!
//! ```text
//! DIR/control, DIR/socket                      dom0: control, Xenstore
//! DIR/domain/<domid>/control, .../socket       a guest: control, Xenstore
//! ```
//!
//! The wire format of the control sockets is in [`proto`]; seeded faults
//! are in [`fault`].
//!
//! ```
//! use std::time::Duration;
//! use xenmq::evtchn::{Channel as _, Events};
//! use xenmq::grant::{Access, Grants, Shared as _};
//! use xenmq_runtime::sim::{Domain, Host};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("xenmq-doc-{}", std::process::id()));
//! let host = Host::start(&dir)?;
//! let id = host.create_domain("front")?;
//!
//! // In a real setup each of these is its own process.
//! let front = Domain::connect(&dir, id)?;
//! let back = Domain::connect(&dir, 0)?;
//!
//! let pages = front.share(0, 1, Access::ReadWrite)?;
//! let port = front.alloc_unbound(0)?;
//! let mapped = back.map(id, pages.refs(), Access::ReadWrite)?;
//! let channel = back.bind_interdomain(id, port.port())?;
//!
//! pages.write(0, b"hello")?;
//! port.notify()?;
//! assert!(channel.wait(Some(Duration::from_secs(5)))?);
//! let mut buf = [0u8; 5];
//! mapped.read(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//!
//! drop(mapped);
//! pages.end_access().map_err(|(_, e)| e)?;
//! # drop(host);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::path::PathBuf;

pub mod domain;
pub mod fault;
pub mod host;
pub mod proto;
mod xenstore;

pub use domain::{
    domain_command, wait_any, Channel, Domain, MappedPages, OutOfBounds, SharedPages, ENV_DIR,
    ENV_DOMID,
};
pub use fault::Faults;
pub use host::{DomainInfo, GrantInfo, Host, StoreHost};
pub use proto::{Code, Refusal};

// Drivers hand these to threads: keep them Send + Sync.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Domain>();
    send_sync::<SharedPages>();
    send_sync::<MappedPages>();
    send_sync::<Channel>();
    send_sync::<Host>();
};

/// Blocks SIGINT and SIGTERM in the calling thread and in the threads it
/// spawns afterwards (so call it first), so that [`wait_termination`]
/// collects them instead of their killing the process.
pub fn block_termination() -> io::Result<()> {
    xenmq_sys::signal::block_termination()
}

/// Waits for SIGINT or SIGTERM blocked by [`block_termination`]; returns the
/// signal number.
pub fn wait_termination() -> io::Result<i32> {
    xenmq_sys::signal::wait_termination()
}

/// Why a simulator operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The control socket could not be reached.
    #[error("cannot connect to the simulator at {}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An environment variable is missing or not valid.
    #[error("environment variable {0} is missing or invalid")]
    Env(&'static str),
    /// The connection to the host failed.
    #[error("lost the connection to the simulator host")]
    Io(#[source] io::Error),
    /// The host refused the request.
    #[error("the simulator host refused the request")]
    Refused(#[source] Refusal),
    /// The host's reply could not be parsed.
    #[error("malformed reply from the simulator host")]
    BadReply,
    /// The run directory could not be prepared.
    #[error("cannot prepare the run directory {}", path.display())]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The Xenstore server could not be set up.
    #[error("xenstore set-up failed")]
    Store(#[source] io::Error),
}
