//! Xenstore negotiation and the device lifecycle, platform-free.
//!
//! [`FrontMachine`] and [`BackMachine`] are state machines driven by [`Event`]s (the
//! peer's `state` changed, keys were read, a transaction committed, a ring
//! was shared or mapped) that answer with [`Action`]s (commit these keys and
//! this state in one transaction, share N ring pages and allocate an event
//! channel, map these grants and bind, release, write an `error` node). They
//! never touch a platform, so the userspace runtime and a kernel module
//! driven from Linux's xenbus `otherend_changed` callback run the same code.
//!
//! # The handshake
//!
//! 1. The backend commits its features, `max-ring-page-order`, the protocol
//!    identity (`xenmq-protocol`, `xenmq-version`, `xenmq-fingerprint`,
//!    `xenmq-ring-layout`) and a per-incarnation `xenmq-instance`, together
//!    with `state` = InitWait.
//! 2. The frontend, on seeing InitWait, reads those keys, checks the
//!    identity (a different ring layout is a mismatch like a different
//!    version), picks `min(own max, backend max)` as ring page order, shares
//!    the ring and allocates an event channel, then commits `ring-ref` (or
//!    `ring-page-order` + `ring-ref0..N-1`), `event-channel`, `protocol`, its
//!    features, its identity, its own `xenmq-instance` and
//!    `xenmq-backend-instance` (the backend's, echoed), together with
//!    `state` = Initialised. A conflicting transaction (`EAGAIN`) is fed
//!    back and retried.
//! 3. The backend reads and validates those keys, maps the ring, binds the
//!    port, starts its data path and commits `xenmq-frontend-instance` (the
//!    frontend's, echoed) with `state` = Connected; the frontend sees
//!    Connected, reads the echo, and goes Connected.
//!
//! The echoed instances let each end tell the peer's state and keys meant
//! for it from those left over from a previous incarnation of itself (watch
//! events coalesce, so a sequence of states alone cannot): a backend ignores
//! keys published for its predecessor, and re-reads the keys when a
//! frontend it serves shows Initialised again; a frontend ignores a
//! Connected meant for its predecessor and re-checks the backend's instance
//! on every InitWait. Every peer write fires a watch, so each end ends up
//! looking at the other's latest keys.
//!
//! Either end may close in any state; a backend returning to
//! Initialising/InitWait makes the frontend tear down and start again, and a
//! frontend returning to Initialising/Closed makes the backend unmap and wait
//! again. Errors (an illegal peer transition, a protocol mismatch, a bad key)
//! close the device with an `error` node saying why; every grant and port
//! obtained is released by an action on every path.
//!
//! # Driving a machine
//!
//! A runtime feeds each event to [`FrontMachine::handle`] or
//! [`BackMachine::handle`] and performs the returned actions in order; an
//! action that expects an answer ([`Action::Commit`], [`Action::ReadPeer`],
//! [`Action::ShareRing`], [`Action::MapRing`]) is answered by a later event,
//! and at most one is outstanding at a time. Peer state changes (a watch on
//! the peer's `state`, or Linux's `otherend_changed`) are fed whenever they
//! happen, as [`Event::PeerState`] or [`Event::PeerStateValue`].
//!
//! ```
//! use xenmq::xenbus::{Action, Event, FrontMachine, Identity, Params, State};
//!
//! let id = Identity { name: "vkv".into(), version: 1, fingerprint: 0x1234, ring: Default::default() };
//! let params = Params::new("/local/domain/3/device/vkv/0", "/local/domain/0/backend/vkv/3/0", id);
//! let mut fe = FrontMachine::new(params, 0x5eed)?;
//! assert_eq!(fe.handle(Event::Start).actions, [Action::SwitchState(State::Initialising)]);
//! let out = fe.handle(Event::PeerState(State::InitWait));
//! assert!(matches!(&out.actions[..], [Action::ReadPeer { .. }]));
//! # Ok::<(), xenmq::xenbus::Error>(())
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

mod back;
pub mod config;
mod front;
mod machine;
mod published;
mod state;

pub use back::BackMachine;
pub use config::{Config, Fingerprint, Keys, RingRefs};
pub use front::FrontMachine;
pub use machine::{Action, Connection, Event, Output};
pub use state::State;

/// Key names both ends use, relative to a device directory.
pub mod key {
    /// The end's [`State`](super::State).
    pub const STATE: &str = "state";
    /// A single-page ring's grant reference.
    pub const RING_REF: &str = "ring-ref";
    /// A multi-page ring's order (log2 of its pages).
    pub const RING_PAGE_ORDER: &str = "ring-page-order";
    /// The largest ring page order a backend accepts.
    pub const MAX_RING_PAGE_ORDER: &str = "max-ring-page-order";
    /// The frontend's unbound event channel port.
    pub const EVENT_CHANNEL: &str = "event-channel";
    /// The frontend's ABI (`x86_64-abi`, as `xen/io/protocols.h` names it).
    pub const PROTOCOL: &str = "protocol";
    /// Why the device failed (written by `xenbus_dev_error` in Linux).
    pub const ERROR: &str = "error";
    /// The xenmq protocol name.
    pub const XENMQ_PROTOCOL: &str = "xenmq-protocol";
    /// The xenmq protocol version.
    pub const XENMQ_VERSION: &str = "xenmq-version";
    /// The layout fingerprint of the protocol's messages.
    pub const XENMQ_FINGERPRINT: &str = "xenmq-fingerprint";
    /// The ring layout (`ring.h` or `native`, [`crate::ring::Kind`]);
    /// missing means `ring.h`.
    pub const XENMQ_RING_LAYOUT: &str = "xenmq-ring-layout";
    /// The backend's incarnation.
    pub const XENMQ_INSTANCE: &str = "xenmq-instance";
    /// The backend incarnation a frontend's keys were published for.
    pub const XENMQ_BACKEND_INSTANCE: &str = "xenmq-backend-instance";
    /// The frontend incarnation a backend's Connected is for.
    pub const XENMQ_FRONTEND_INSTANCE: &str = "xenmq-frontend-instance";

    /// The frontend's buffer pool grants, written by the frontend driver
    /// ([`crate::driver::POOL_KEY`]).
    pub const XENMQ_POOL_REFS: &str = "xenmq-pool-refs";
    /// The backend's directory, in the frontend's (written by the toolstack).
    pub const BACKEND: &str = "backend";
    /// The backend's domain id, in the frontend's directory (toolstack).
    pub const BACKEND_ID: &str = "backend-id";
    /// The frontend's directory, in the backend's (toolstack).
    pub const FRONTEND: &str = "frontend";
    /// The frontend's domain id, in the backend's directory (toolstack).
    pub const FRONTEND_ID: &str = "frontend-id";
    /// Whether the device is attached, in the backend's directory (toolstack).
    pub const ONLINE: &str = "online";

    /// Every key the framework writes itself (the machines, the buffer
    /// pool, the toolstack); a driver's features may not use them. The
    /// `XenstoreConfig` derive refuses them at compile time from a copy of
    /// this list that its tests keep identical.
    pub const RESERVED: [&str; 20] = [
        STATE,
        RING_REF,
        RING_PAGE_ORDER,
        MAX_RING_PAGE_ORDER,
        EVENT_CHANNEL,
        PROTOCOL,
        ERROR,
        XENMQ_PROTOCOL,
        XENMQ_VERSION,
        XENMQ_FINGERPRINT,
        XENMQ_RING_LAYOUT,
        XENMQ_INSTANCE,
        XENMQ_BACKEND_INSTANCE,
        XENMQ_FRONTEND_INSTANCE,
        XENMQ_POOL_REFS,
        BACKEND,
        BACKEND_ID,
        FRONTEND,
        FRONTEND_ID,
        ONLINE,
    ];

    /// Prefixes of reserved keys: `ring-ref0`.. of a multi-page ring.
    pub const RESERVED_PREFIXES: [&str; 1] = [RING_REF];

    /// Whether the framework owns `key` ([`RESERVED`], [`RESERVED_PREFIXES`]).
    pub fn is_reserved(key: &str) -> bool {
        RESERVED.contains(&key) || RESERVED_PREFIXES.iter().any(|p| key.starts_with(p))
    }
}

/// The ABI name of this build for the `protocol` key (`xen/io/protocols.h`).
pub const NATIVE_ABI: &str = if cfg!(target_arch = "x86_64") {
    "x86_64-abi"
} else if cfg!(target_arch = "x86") {
    "x86_32-abi"
} else {
    "arm-abi"
};

/// Which end of a split device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The guest side, which shares the ring.
    Frontend,
    /// The driver domain side, which maps it.
    Backend,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Frontend => "frontend",
            Role::Backend => "backend",
        })
    }
}

/// A protocol's name, version, layout fingerprint and ring layout,
/// published by both ends and required to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The protocol name (`vkv`).
    pub name: String,
    /// Its version.
    pub version: u32,
    /// A hash of its message layouts (`wire::Message::FINGERPRINT`s combined).
    pub fingerprint: u64,
    /// The ring layout of its data path.
    pub ring: crate::ring::Kind,
}

/// A driver's feature keys: the ones this end writes, and a check of the
/// ones the peer wrote.
#[derive(Clone)]
pub struct Features {
    own: Vec<(String, String)>,
    peer_keys: Vec<String>,
    check: CheckFn,
}

/// Reads a config from a directory and drops it: the check of the peer's features.
type CheckFn = fn(&str, &mut dyn FnMut(&str) -> Option<String>) -> Result<(), config::Error>;

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Features")
            .field("own", &self.own)
            .field("peer_keys", &self.peer_keys)
            .finish_non_exhaustive()
    }
}

impl Features {
    /// No features either way.
    pub fn none() -> Self {
        Features {
            own: Vec::new(),
            peer_keys: Vec::new(),
            check: |_, _| Ok(()),
        }
    }

    /// This end writes `own`; the peer's keys must read as a `Peer`, which
    /// the driver gets back from [`Connection::peer`] with [`Keys::parse`].
    pub fn new<Own: Config, Peer: Config>(own: &Own) -> Self {
        let mut peer_keys = Vec::new();
        Peer::keys(&mut peer_keys);
        Features {
            own: own.to_pairs(),
            peer_keys,
            check: |dir, get| Peer::read(dir, get).map(|_| ()),
        }
    }
}

/// What a machine needs to know about its device.
#[derive(Debug, Clone)]
pub struct Params {
    /// This end's directory (`/local/domain/3/device/vkv/0`), for messages.
    pub own_dir: String,
    /// The peer's directory, for messages.
    pub peer_dir: String,
    /// The protocol spoken on the ring.
    pub identity: Identity,
    /// The Xen ABI name for the `protocol` key ([`NATIVE_ABI`]).
    pub abi: String,
    /// The largest ring this end accepts, as log2 of pages (at most
    /// [`config::MAX_RING_PAGE_ORDER`]).
    pub max_ring_page_order: u8,
    /// The driver's feature keys.
    pub features: Features,
}

impl Params {
    /// Parameters with the native ABI, single-page rings and no features.
    pub fn new(own_dir: &str, peer_dir: &str, identity: Identity) -> Self {
        Params {
            own_dir: own_dir.into(),
            peer_dir: peer_dir.into(),
            identity,
            abi: NATIVE_ABI.into(),
            max_ring_page_order: 0,
            features: Features::none(),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.max_ring_page_order > config::MAX_RING_PAGE_ORDER {
            return Err(Error::Params("max_ring_page_order is larger than 4"));
        }
        if self.features.own.iter().any(|(k, _)| key::is_reserved(k)) {
            return Err(Error::Params(
                "a feature key collides with a key the handshake writes",
            ));
        }
        Ok(())
    }
}

/// A negotiation or lifecycle failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `state` key holds something other than 0..=8.
    #[error("state value {value:?} is not a xenbus state")]
    BadState {
        /// The value, truncated.
        value: String,
    },
    /// The peer moved between two states in an order the protocol forbids.
    #[error("the {peer} went from {from} to {to}, which is not a legal transition")]
    IllegalTransition {
        /// Which end misbehaved.
        peer: Role,
        /// Its previous state.
        from: State,
        /// Its new state.
        to: State,
    },
    /// The peer entered a state its role never uses.
    #[error("the {peer} entered {state}, which a {peer} never does")]
    WrongRole {
        /// Which end misbehaved.
        peer: Role,
        /// The state.
        state: State,
    },
    /// The peer started reconfiguration, which xenmq does not implement.
    #[error("the {peer} entered {state}: reconfiguration is not supported")]
    Unsupported {
        /// Which end.
        peer: Role,
        /// The state.
        state: State,
    },
    /// A key of the peer is missing or bad.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The two ends speak different protocols.
    #[error("{path}: protocol {what} mismatch: ours is {ours:?}, the {peer}'s is {theirs:?}")]
    Mismatch {
        /// The peer's key.
        path: String,
        /// `name`, `version`, `fingerprint`, `ring layout` or `abi`.
        what: &'static str,
        /// Which end published `theirs`.
        peer: Role,
        /// Our value.
        ours: String,
        /// The peer's value.
        theirs: String,
    },
    /// The frontend's ring is larger than this backend accepts.
    #[error("{path}: ring of page order {order} is larger than our maximum of {max}")]
    RingTooLarge {
        /// The `ring-page-order` key.
        path: String,
        /// The frontend's order.
        order: u8,
        /// Ours.
        max: u8,
    },
    /// Transactions kept conflicting.
    #[error("xenstore transaction still conflicting after {0} attempts")]
    CommitConflict(u32),
    /// A transaction failed for another reason than a conflict.
    #[error("xenstore transaction failed")]
    CommitFailed,
    /// The platform could not share or map the ring.
    #[error("ring set-up failed: {0}")]
    Ring(String),
    /// The backend's driver or platform refused the frontend before
    /// Connected was published.
    #[error("the backend refused the frontend: {0}")]
    Refused(String),
    /// The data path gave up on the peer (a protocol violation, a dead
    /// event channel).
    #[error("{0}")]
    PeerFault(String),
    /// The platform answered a share request with the wrong number of grants.
    #[error("the runtime returned {got} grant references for a ring of {want} pages")]
    GrantCount {
        /// How many it returned.
        got: usize,
        /// How many pages were asked for.
        want: usize,
    },
    /// An event arrived that the machine did not ask for (a runtime bug).
    #[error("{event} is not expected while {phase}")]
    Unexpected {
        /// The event.
        event: &'static str,
        /// What the machine was doing.
        phase: &'static str,
    },
    /// The machine's parameters are unusable.
    #[error("invalid parameters: {0}")]
    Params(&'static str),
}
