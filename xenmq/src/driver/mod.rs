//! Writing a driver: declare a protocol, implement one trait per end.
//!
//! A protocol is a unit struct under
//! [`#[xenmq::protocol]`](crate::protocol), naming its device type, version,
//! request and response messages, ring size and Xenstore keys:
//!
//! ```
//! use xenmq::prelude::*;
//!
//! #[xenmq::message]
//! pub struct Ping { pub id: u64, pub seq: u32, pub len: u32, pub data: [u8; 48] }
//! #[xenmq::message]
//! pub struct Pong { pub id: u64, pub seq: u32, pub len: u32, pub data: [u8; 48] }
//!
//! /// Ping/pong with a payload.
//! #[xenmq::protocol(name = "echo", version = 1, request = Ping, response = Pong)]
//! pub struct Echo;
//!
//! struct Mirror;
//! impl Backend for Mirror {
//!     type Protocol = Echo;
//!     fn handle(&mut self, req: Ping, _io: &mut Io<'_, Echo>) -> Reply<Pong> {
//!         Reply::Now(Pong { id: 0, seq: req.seq, len: req.len, data: req.data })
//!     }
//! }
//! assert_eq!(<Echo as Protocol>::NAME, "echo");
//! ```
//!
//! The framework owns the request ids (the message field named by `id`,
//! `id` by default): the frontend [`Client`] numbers each request it submits
//! and matches the response by it, the backend's answer gets the id of the
//! request it answers. A driver never writes an id itself.
//!
//! - The backend implements [`Backend`]: one required method,
//!   [`Backend::handle`], called for every request of a batch (all requests
//!   waiting at one wake-up); it answers now ([`Reply::Now`]) or later
//!   ([`Reply::Later`], completed through [`Completer`] from
//!   [`Backend::poll`]). Responses are pushed once per batch.
//! - The frontend uses a [`Client`]: [`Client::call`] for one round trip,
//!   [`Client::submit`]/[`Client::poll`] for many requests in flight.
//!   [`Frontend`] holds its optional hooks.
//!
//! Both are platform-free: the runtime (`xenmq-runtime::device`) drives the
//! lifecycle from Xenstore, builds the [`Server`] or [`Client`] over the ring
//! it shared or mapped, and calls the hooks.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod back;
mod front;
mod pool;
mod table;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;

pub use back::{Completer, Io, Reply, Server, Ticket};
pub use front::{Client, Completion, Tag};
pub use pool::{Lease, Pool, PoolKeys, MAX_POOL_PAGES, POOL_KEY, SLOT_SIZE};

use crate::evtchn;
use crate::ring;
use crate::wire::Message;
use crate::xenbus::config::{self, Config};
use crate::xenbus::Identity;

/// A split-device protocol: what both ends agree on. Implemented by
/// [`#[xenmq::protocol]`](crate::protocol); see the [module](self) docs.
pub trait Protocol: Sized + 'static {
    /// The device type (`vkv`): the Xenstore directory name and the
    /// published protocol name.
    const NAME: &'static str;
    /// The protocol version; both ends must publish the same.
    const VERSION: u32;
    /// The layout fingerprint: the request's and the response's
    /// [`Message::FINGERPRINT`] combined (in that order) with
    /// [`combine_fingerprints`](crate::wire::combine_fingerprints).
    const FINGERPRINT: u64;
    /// The ring size a frontend asks for, as log2 of pages.
    const RING_PAGE_ORDER: u8;
    /// The largest ring either end accepts, as log2 of pages.
    const MAX_RING_PAGE_ORDER: u8;
    /// Pages of the persistent-grant buffer pool the frontend shares per
    /// connection (0: none); each page is one [`Lease`] slot.
    const POOL_PAGES: u32;

    /// The ring layout: [`ring::Compat`] (`xen/io/ring.h`'s, the default)
    /// or [`ring::Native`]. Both ends publish it and refuse a peer using
    /// the other.
    type Rings: ring::Rings;

    /// A request, frontend to backend.
    type Request: Message;
    /// A response, backend to frontend.
    type Response: Message;
    /// The keys the frontend publishes for the backend (features).
    type FrontendConfig: Config + Default;
    /// The keys the backend publishes for the frontend (features).
    type BackendConfig: Config + Default;

    /// The id field of a request.
    fn request_id(req: &Self::Request) -> u64;
    /// Sets the id field of a request.
    fn set_request_id(req: &mut Self::Request, id: u64);
    /// The id field of a response.
    fn response_id(rsp: &Self::Response) -> u64;
    /// Sets the id field of a response.
    fn set_response_id(rsp: &mut Self::Response, id: u64);

    /// The name, version, fingerprint and ring layout both ends publish.
    fn identity() -> Identity {
        Identity {
            name: String::from(Self::NAME),
            version: Self::VERSION,
            fingerprint: Self::FINGERPRINT,
            ring: <Self::Rings as ring::Rings>::KIND,
        }
    }
}

/// The frontend's ring of protocol `P`, in its layout.
pub type FrontRingOf<P> = <<P as Protocol>::Rings as ring::Rings>::Front<
    <P as Protocol>::Request,
    <P as Protocol>::Response,
>;

/// The backend's ring of protocol `P`, in its layout.
pub type BackRingOf<P> = <<P as Protocol>::Rings as ring::Rings>::Back<
    <P as Protocol>::Request,
    <P as Protocol>::Response,
>;

/// A backend driver: answers the requests of one device.
///
/// Only [`handle`](Backend::handle) is required.
pub trait Backend {
    /// The protocol served.
    type Protocol: Protocol;

    /// Answers one request. The id field is the framework's: the response's
    /// is overwritten with the request's. `io` reaches the connection's
    /// buffer pool.
    fn handle(
        &mut self,
        req: <Self::Protocol as Protocol>::Request,
        io: &mut Io<'_, Self::Protocol>,
    ) -> Reply<<Self::Protocol as Protocol>::Response>;

    /// Called once per wake-up after the batch, to complete requests
    /// answered with [`Reply::Later`].
    fn poll(&mut self, done: &mut Completer<'_, Self::Protocol>) {
        let _ = done;
    }

    /// The keys this backend publishes (its features).
    fn config(&self) -> <Self::Protocol as Protocol>::BackendConfig {
        Default::default()
    }

    /// A frontend connected with these keys; an error refuses it (the
    /// device closes with the message in its `error` node).
    fn connect(
        &mut self,
        peer: &<Self::Protocol as Protocol>::FrontendConfig,
    ) -> Result<(), Refused> {
        let _ = peer;
        Ok(())
    }

    /// The frontend went away. Tickets of [`Reply::Later`] requests are void.
    fn disconnect(&mut self) {}
}

/// A frontend driver's hooks; all optional.
pub trait Frontend {
    /// The protocol spoken.
    type Protocol: Protocol;

    /// The keys this frontend publishes (its features).
    fn config(&self) -> <Self::Protocol as Protocol>::FrontendConfig {
        Default::default()
    }

    /// The backend connected with these keys; an error refuses it.
    fn connect(
        &mut self,
        peer: &<Self::Protocol as Protocol>::BackendConfig,
    ) -> Result<(), Refused> {
        let _ = peer;
        Ok(())
    }

    /// The backend went away; `lost` requests completed with
    /// [`Error::Disconnected`].
    fn disconnect(&mut self, lost: usize) {
        let _ = lost;
    }
}

/// A driver refusing a peer, with the reason written to Xenstore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the driver refused the peer: {0}")]
pub struct Refused(pub String);

/// A protocol without configuration keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoConfig;

impl Config for NoConfig {
    fn keys(_out: &mut Vec<String>) {}
    fn read(
        _dir: &str,
        _get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Self, config::Error> {
        Ok(NoConfig)
    }
    fn write(&self, _put: &mut dyn FnMut(&str, String)) {}
}

/// Two configs read and written as one (a driver's keys and the
/// framework's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Both<A, B>(pub A, pub B);

impl<A: Config, B: Config> Config for Both<A, B> {
    fn keys(out: &mut Vec<String>) {
        A::keys(out);
        B::keys(out);
    }
    fn read(dir: &str, get: &mut dyn FnMut(&str) -> Option<String>) -> Result<Self, config::Error> {
        Ok(Both(A::read(dir, get)?, B::read(dir, get)?))
    }
    fn write(&self, put: &mut dyn FnMut(&str, String)) {
        self.0.write(put);
        self.1.write(put);
    }
}

/// What can go wrong between a driver and its peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device disconnected while the request was in flight.
    #[error("the device disconnected before the request was answered")]
    Disconnected,
    /// The device is not connected.
    #[error("the device is not connected")]
    NotConnected,
    /// Every ring slot holds a request in flight.
    #[error("all {0} ring slots are in flight")]
    Busy(u32),
    /// Every buffer slot of the pool is leased.
    #[error("all {0} buffer slots are leased")]
    NoBuffer(u32),
    /// The tag names no request in flight.
    #[error("tag {0:#x} names no request in flight")]
    UnknownTag(u64),
    /// The ticket names no request awaiting an answer (answered already,
    /// or from an earlier connection).
    #[error("ticket {0:#x} names no request awaiting an answer")]
    UnknownTicket(u64),
    /// A buffer access falls outside the slot.
    #[error("{len} bytes at offset {offset} do not fit a {size}-byte buffer slot")]
    BufferBounds {
        /// The offset in the slot.
        offset: usize,
        /// The access length.
        len: usize,
        /// The slot size.
        size: usize,
    },
    /// The peer named a buffer slot that does not exist.
    #[error("buffer slot {slot} does not exist (the pool has {slots})")]
    BadSlot {
        /// The slot named.
        slot: u32,
        /// How many there are.
        slots: u32,
    },
    /// No answer came in time.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer's answer breaks the protocol (a driver's check failed).
    #[error("the peer's answer is wrong: {0}")]
    BadAnswer(&'static str),
    /// The ring failed (a hostile peer's indices, or a local layout error).
    #[error("ring failure")]
    Ring(#[from] ring::Error),
    /// The event channel failed (the peer closed it, or the platform).
    #[error("event channel failure")]
    Event(#[from] evtchn::Error),
}

impl Error {
    /// Whether the error ends the connection (the ring or channel is
    /// unusable); otherwise only the one call failed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Ring(_) | Error::Event(_) | Error::Disconnected)
    }
}

/// How long waits spin before blocking, adapted to the traffic: doubled
/// (up to `max`) when spinning found work, halved (down to `max / 16`)
/// when it did not; or [`fixed`](Spin::fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spin {
    budget: u32,
    min: u32,
    max: u32,
}

impl Spin {
    /// Spins up to `max` checks before blocking, adapting the budget.
    pub const fn new(max: u32) -> Self {
        Spin {
            budget: max / 4,
            min: max / 16,
            max,
        }
    }

    /// Always spins `n` checks before blocking (what a C driver's
    /// fixed-count spin does), whatever the traffic.
    pub const fn fixed(n: u32) -> Self {
        Spin {
            budget: n,
            min: n,
            max: n,
        }
    }

    /// The current budget.
    pub fn budget(&self) -> u32 {
        self.budget
    }

    #[inline]
    fn hit(&mut self) {
        self.budget = self.budget.saturating_mul(2).clamp(1, self.max.max(1));
    }

    #[inline]
    fn miss(&mut self) {
        // Never below a sixteenth: a peer that is itself asleep makes every
        // spin miss, and two ends that both stopped spinning would pay two
        // wake-ups per round trip for ever.
        self.budget = (self.budget / 2).max(self.min);
    }

    /// Spins up to the budget checking `ready`; adapts the budget.
    #[inline]
    pub fn run(&mut self, mut ready: impl FnMut() -> Result<bool, Error>) -> Result<bool, Error> {
        for _ in 0..self.budget {
            if ready()? {
                self.hit();
                return Ok(true);
            }
            core::hint::spin_loop();
        }
        self.miss();
        Ok(false)
    }
}

impl Default for Spin {
    fn default() -> Self {
        Spin::new(DEFAULT_SPIN)
    }
}

/// The default spin budget: final checks before sleeping on the channel.
pub const DEFAULT_SPIN: u32 = 1 << 14;
