//! The userspace device runtime: one split device end, driven from
//! Xenstore, serving a driver on the platform's grants and event channels.
//!
//! - [`FrontDevice`] runs a [`Frontend`](xenmq::driver::Frontend) driver and is
//!   the frontend's [`Client`](xenmq::driver::Client): `call`, `submit`,
//!   `poll`.
//! - [`BackDevice`] runs a [`Backend`](xenmq::driver::Backend) driver: it serves
//!   batches of requests until told to stop.
//! - [`Backends`] serves every device of a protocol that this domain backs
//!   from one thread, sleeping on all their event channels at once (each
//!   end exposes its channel's descriptor, [`FrontDevice::fd`], [`BackDevice::fd`]).
//! - [`sim`] names the simulator's types ([`sim::SimFront`],
//!   [`sim::SimBack`]) and finds a domain process's host from its
//!   environment.
//!
//! Each end watches its peer's `state` key and feeds what it sees to the
//! lifecycle machine of [`xenmq::xenbus`], performing the machine's actions
//! on the platform: transactions on the [`Store`], grants with
//! [`Grants`], ports with [`Events`]. On `Connect` it attaches the ring to
//! the data path; on `Disconnect` every request in flight completes with
//! [`driver::Error::Disconnected`](xenmq::driver::Error::Disconnected).
//!
//! An idle end sleeps in one `poll` on its event channel and on its
//! Xenstore connection's watch descriptor
//! ([`Pollable`](crate::xenstore::Pollable)), and wakes only when one of
//! them has something: no periodic tick ([`BackDevice::turn`],
//! [`Backends::turn`]). The same non-blocking steps drive the async
//! adapter (`device::tokio`, feature `tokio`).
//!
//! The data path never touches Xenstore: a wake-up serves every request
//! waiting, pushes all answers once and notifies at most once; waits spin
//! on the ring a bounded, adaptive number of times before sleeping on the
//! channel. Bulk data goes through the protocol's buffer pool: the
//! frontend grants `pool_pages` pages once per connection and publishes
//! them in `xenmq-pool-refs`; the backend maps them once.
//!
//! A simulator domain lives until the toolstack destroys it; a process is
//! one driver in it, and what its [`Domain`](crate::sim::Domain)
//! connection shared, mapped or bound is released when the process exits
//! (a [`FrontDevice`] releases its own on close).

mod back;
mod front;
mod guard;
mod lifecycle;
mod many;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "tokio")]
pub mod tokio;

use std::os::fd::BorrowedFd;
use std::time::Duration;

use xenmq::evtchn::Events;
use xenmq::grant::{DomId, Grants};
use xenmq::xenstore::Store;

pub use back::{BackDevice, DEFAULT_FAULTS, DEFAULT_FAULT_WINDOW};
pub use front::FrontDevice;
pub use guard::{DEFAULT_STORM_LIMIT, SPURIOUS_IN_A_ROW};
pub use many::{Backends, MAX_DEVICES};

/// A step length for callers that want to look at something of their own
/// every so often (`back.step(TICK)`); the loops of this module
/// ([`BackDevice::run`], [`Backends::run`]) sleep until something happens.
pub const TICK: Duration = Duration::from_millis(20);

/// Wakes a device loop sleeping in `turn` or `run` from another thread,
/// so that it looks again (its `stop` is asked): an idle loop has no tick
/// that would notice a flag on its own. Made by [`BackDevice::waker`] and
/// [`Backends::waker`]; clones wake the same loop.
#[derive(Debug, Clone)]
pub struct Waker(std::sync::Arc<xenmq_sys::EventFd>);

impl Waker {
    fn new() -> Result<Waker, Error> {
        let flags = xenmq_sys::EventfdFlags::NONBLOCK | xenmq_sys::EventfdFlags::CLOEXEC;
        Ok(Waker(std::sync::Arc::new(xenmq_sys::EventFd::new(flags)?)))
    }

    /// Wakes the loop (at once if it sleeps, else at its next sleep).
    pub fn wake(&self) -> std::io::Result<()> {
        self.0.notify()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&*self.0)
    }

    /// Takes the wake-ups the loop was given.
    fn take(&self) {
        // Non-blocking: nothing to take is not an error worth reporting.
        let _ = self.0.try_take();
    }
}

/// Sleeps until one of `fds` is readable (or hung up) or `timeout` passes
/// (`None`: until one is); `true` if one is.
fn sleep_on(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Result<bool, Error> {
    let ready = xenmq_sys::poll_any(fds, timeout)
        .map_err(|e| Error::Event(xenmq::evtchn::Error::Os(e.raw_os_error().unwrap_or(0))))?;
    Ok(ready.is_some())
}

/// Why a device end failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Xenstore operation failed.
    #[error("xenstore operation failed")]
    Store(#[from] xenmq::xenstore::Error),
    /// A grant operation failed.
    #[error("grant operation failed")]
    Grant(#[from] xenmq::grant::Error),
    /// An event channel operation failed.
    #[error("event channel operation failed")]
    Event(#[from] xenmq::evtchn::Error),
    /// The ring could not be set up.
    #[error("ring set-up failed")]
    Ring(#[from] xenmq::ring::Error),
    /// The data path failed.
    #[error("data path failed")]
    Driver(#[from] xenmq::driver::Error),
    /// The lifecycle machine refused its parameters.
    #[error("lifecycle failed")]
    Xenbus(#[from] xenmq::xenbus::Error),
    /// The Xenstore connection could not be made.
    #[error("cannot connect to xenstore")]
    Connect(#[from] std::io::Error),
    /// A key the toolstack writes is missing or bad.
    #[error("{path}: {what}")]
    Setup {
        /// The key.
        path: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The device closed on an error (a protocol mismatch, a refused
    /// peer); the message is also in the `error` node.
    #[error("the device closed: {0}")]
    Failed(String),
    /// The device did not reach the state in time.
    #[error("timed out waiting for the device to {0}")]
    Timeout(&'static str),
    /// The device closed and does not reconnect.
    #[error("the device is closed")]
    Closed,
}

/// What a device end runs on: its Xenstore connection, grant table and
/// event channels.
#[derive(Debug, Clone)]
pub struct Env<S, G, E> {
    /// The Xenstore connection (one per device end: it carries the
    /// device's watch).
    pub store: S,
    /// The grant table.
    pub grants: G,
    /// The event channels.
    pub events: E,
}

impl<S: Store, G: Grants, E: Events> Env<S, G, E> {
    /// Bundles the three.
    pub fn new(store: S, grants: G, events: E) -> Self {
        Env {
            store,
            grants,
            events,
        }
    }

    fn domid(&self) -> DomId {
        self.grants.domid()
    }
}

/// A number that differs between incarnations of a device end.
pub(crate) fn instance() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Relaxed: only uniqueness within the process matters.
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    xenmq::wire::Fnv::new()
        .u64(nanos)
        .u64(u64::from(std::process::id()))
        .u64(n)
        .finish()
}
