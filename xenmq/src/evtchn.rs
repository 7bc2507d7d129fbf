//! Event channels: allocating, binding and notifying ports.
//!
//! The platform trait [`Events`] lives here; `xenmq-runtime` implements it for
//! the simulator (eventfds), Linux userspace (`/dev/xen/evtchn`) and the
//! kernel (`xenbus_alloc_evtchn`, `bind_evtchn_to_irqhandler`).
//!
//! A [`Channel`] is one bound local port. Notifications carry no data and
//! coalesce: several `notify` calls may wake one `wait`, and a `wait` may
//! return with nothing new to do (a spurious wake-up), so a driver always
//! re-checks its ring. Dropping a channel closes the port.
//!
//! Platforms running in userspace also make a channel pollable: their channel
//! type implements `AsFd`, readable when a notification is pending.

use core::time::Duration;

use crate::grant::DomId;

/// An event channel port (`evtchn_port_t`).
pub type Port = u32;

/// Why an event channel operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The domain id is not a valid peer.
    #[error("no domain {0}")]
    NoDomain(DomId),
    /// The remote port does not exist, is not unbound, or is reserved for
    /// another domain.
    #[error("port {port} of domain {domid} cannot be bound by this domain")]
    BadPort {
        /// The remote domain.
        domid: DomId,
        /// The remote port.
        port: Port,
    },
    /// The peer closed its end of the channel or died.
    #[error("the peer closed the channel")]
    PeerClosed,
    /// No free ports.
    #[error("no free ports")]
    NoSpace,
    /// The platform is not reachable.
    #[error("the event channel platform is unavailable")]
    Unavailable,
    /// The platform failed with an OS error number.
    #[error("platform error (errno {0})")]
    Os(i32),
}

/// What a port is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Allocated for `remote`, which has not bound it yet.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to a port of another domain.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// The peer closed its end or died.
    Closed,
}

/// One local event channel port.
pub trait Channel {
    /// The local port number (what goes into Xenstore's `event-channel`).
    fn port(&self) -> Port;

    /// Signals the peer. Dropped silently while the port is still unbound,
    /// as on Xen; fails with [`Error::PeerClosed`] when the platform knows
    /// that the peer is gone.
    fn notify(&self) -> Result<(), Error>;

    /// Consumes pending notifications without blocking; `true` if there
    /// were any.
    fn poll(&self) -> Result<bool, Error>;

    /// Blocks until a notification arrives (`true`) or `timeout` passes
    /// (`false`); `None` waits for ever. Fails with [`Error::PeerClosed`]
    /// once nothing is pending and the peer is gone.
    fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error>;

    /// The port's state as the platform sees it.
    fn status(&self) -> Result<Status, Error>;

    /// How often a loop that sleeps on this channel must ask
    /// [`status`](Channel::status) to learn that the peer closed its end:
    /// `None` (the default) when the platform wakes the channel, or fails
    /// its [`poll`](Channel::poll) with [`Error::PeerClosed`], when that
    /// happens. Xen tells nobody: a port whose peer closed just reads as
    /// unbound again.
    fn peer_check(&self) -> Option<Duration> {
        None
    }
}

/// A platform's event channels, as seen by one domain.
pub trait Events {
    /// A bound local port.
    type Channel: Channel;

    /// Allocates a port that `remote` may bind to (`EVTCHNOP_alloc_unbound`).
    fn alloc_unbound(&self, remote: DomId) -> Result<Self::Channel, Error>;

    /// Binds a new local port to `remote`'s unbound port `remote_port`
    /// (`EVTCHNOP_bind_interdomain`).
    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Self::Channel, Error>;
}
