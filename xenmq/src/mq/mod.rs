//! Named message queues between any domains: the platform-free part.
//!
//! A queue is a node in Xenstore under [`ROOT`], made by a privileged
//! domain (dom0, `xenmq mq create`), holding the queue's message type (its
//! [`Message::FINGERPRINT`] and size),
//! its capacity, the per-sender quota, its [`Mode`] and its access list.
//! Domains on the list open it by name as a sender or a receiver; the
//! runtime (`xenmq_runtime::mq`) does the I/O, this module says what the
//! nodes are and checks what it reads.
//!
//! # The Xenstore layout
//!
//! ```text
//! /xenmq/mq/<name>                 owner 0; read: every member
//!     fingerprint   = 0x<16 hex digits>
//!     message-size  = <bytes>
//!     capacity      = <messages in flight to one receiver, all senders>
//!     quota         = <messages in flight from one sender to one receiver>
//!     mode          = fan-out | compete
//!     senders       = <domid> <domid> ...
//!     receivers     = <domid> ...
//!     sender/<S>                   owner S; read: the receivers
//!         <R>/ring-ref      = <gref> <gref> ...   (granted by S to R)
//!         <R>/event-channel = <port>              (unbound, for R)
//!         <R>/generation    = <R's generation it answers>
//!         sent              = <count, published now and then>
//!     receiver/<R>                 owner R; read: the senders
//!         generation        = <u64, new at each open>
//!         received          = <count, published now and then>
//! ```
//!
//! The creator makes `sender/<S>` and `receiver/<R>` for the listed
//! domains only and gives each to its domain; no one else may write under
//! `sender/` or `receiver/`. So a domain that is not on the list is refused
//! by Xenstore's permissions: it can neither read the queue nor publish a
//! channel in it.
//!
//! # Pairs, not a shared region
//!
//! Each sender/receiver pair has its own ring (granted by the sender to
//! that one receiver) and its own event channel: no page is writable by
//! more than two domains. A receiver learns who sent a message from the
//! channel it came on (the node it read the grant from is the sender's
//! own, the grant is checked against that domain when mapped, and the
//! port is bound to that domain), never from the message.
//!
//! Messages travel as ring requests; the receiver answers each with an
//! [`Ack`], which frees the sender's slot (ring.h's one response per
//! request). A sender has at most `quota` messages in flight to one
//! receiver ([`Credit`]); `quota` times the number of senders fits in
//! `capacity` ([`Spec::check`]), so every sender always has its share and
//! none can take another's.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::grant::{DomId, GrantRef, PAGE_SIZE};
use crate::ring::native::Layout;
use crate::ring::MAX_PAGE_ORDER;
use crate::wire::Message;

/// Where queues live in Xenstore.
pub const ROOT: &str = "/xenmq/mq";

/// The longest queue name.
pub const MAX_NAME: usize = 64;

/// The most domains on either side of an access list.
pub const MAX_MEMBERS: usize = 256;

/// The largest message a queue carries, in bytes (a ring slot's worth; bulk
/// data goes through granted buffers).
pub const MAX_MESSAGE_SIZE: u32 = 2048;

/// What a receiver answers each message with: it frees the sender's slot.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
)]
#[repr(C)]
pub struct Ack {
    /// Unused; zero.
    pub reserved: u64,
}

/// Who gets a message when a queue has several receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Every receiver gets every message (one sender → many receivers).
    FanOut,
    /// Each message goes to exactly one receiver (competing receivers).
    Compete,
}

impl Mode {
    /// The value in the `mode` node.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::FanOut => "fan-out",
            Mode::Compete => "compete",
        }
    }

    /// The mode a `mode` node names.
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::FanOut, Mode::Compete]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A side of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Puts messages in.
    Sender,
    /// Takes messages out.
    Receiver,
}

impl Role {
    /// The node a member of this role publishes under (`sender`, `receiver`).
    pub const fn dir(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// Why a queue could not be made, opened or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not a queue name.
    #[error("{name:?} is not a queue name (1 to {MAX_NAME} of a-z, 0-9, `-`, `_`)")]
    BadName {
        /// The name given.
        name: String,
    },
    /// No such queue.
    #[error("queue {name:?} does not exist")]
    NoQueue {
        /// The queue.
        name: String,
    },
    /// Xenstore refused this domain the queue.
    #[error("queue {name:?}: domain {domid} may not {what} (refused by xenstore's permissions)")]
    NotPermitted {
        /// The queue.
        name: String,
        /// This domain.
        domid: DomId,
        /// What it tried.
        what: &'static str,
    },
    /// The queue carries another message type.
    #[error(
        "queue {name:?} carries messages of fingerprint {expected:#018x} ({expected_size} bytes), \
         not {found:#018x} ({found_size} bytes)"
    )]
    Fingerprint {
        /// The queue.
        name: String,
        /// The queue's fingerprint.
        expected: u64,
        /// Its message size.
        expected_size: u32,
        /// The caller's message fingerprint.
        found: u64,
        /// The caller's message size.
        found_size: u32,
    },
    /// A queue node is missing or does not parse.
    #[error("queue {name:?}: node {key:?} is malformed: {why}")]
    Malformed {
        /// The queue.
        name: String,
        /// The node, relative to the queue.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The parameters of a new queue do not make a queue.
    #[error("queue {name:?}: {why}")]
    BadSpec {
        /// The queue.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The sender's quota for this receiver is used up (try again when the
    /// receiver has taken some).
    #[error("queue {name:?} is full: {quota} messages of this sender are in flight")]
    Full {
        /// The queue.
        name: String,
        /// The per-sender quota.
        quota: u32,
    },
    /// No receiver is connected to take the message.
    #[error("queue {name:?} has no receiver connected")]
    NoReceiver {
        /// The queue.
        name: String,
    },
    /// A queue of that name exists already.
    #[error("queue {name:?}: a queue of that name exists")]
    Exists {
        /// The queue.
        name: String,
    },
    /// The queue was removed.
    #[error("queue {name:?} was removed")]
    Removed {
        /// The queue.
        name: String,
    },
    /// Nothing happened in time.
    #[error("queue {name:?}: timed out")]
    Timeout {
        /// The queue.
        name: String,
    },
}

/// Whether `name` is a queue name: 1 to [`MAX_NAME`] bytes of `a-z`,
/// `0-9`, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The queue's node: `/xenmq/mq/<name>`.
pub fn path(name: &str) -> String {
    format!("{ROOT}/{name}")
}

/// A member's node: `/xenmq/mq/<name>/<sender|receiver>/<domid>`.
pub fn member_path(name: &str, role: Role, domid: DomId) -> String {
    format!("{ROOT}/{name}/{}/{domid}", role.dir())
}

/// The node a sender publishes its channel to one receiver in.
pub fn link_path(name: &str, sender: DomId, receiver: DomId) -> String {
    format!("{ROOT}/{name}/sender/{sender}/{receiver}")
}

/// What a queue is: everything in its node but the members' subtrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The queue's name.
    pub name: String,
    /// The message type's fingerprint.
    pub fingerprint: u64,
    /// The message type's size in bytes.
    pub message_size: u32,
    /// The most messages in flight to one receiver, from all senders.
    pub capacity: u32,
    /// The most messages in flight from one sender to one receiver.
    pub quota: u32,
    /// Who gets a message.
    pub mode: Mode,
    /// The domains that may send.
    pub senders: Vec<DomId>,
    /// The domains that may receive.
    pub receivers: Vec<DomId>,
}

/// The keys of a queue's spec, in the order they are written.
pub const SPEC_KEYS: [&str; 7] = [
    "fingerprint",
    "message-size",
    "capacity",
    "quota",
    "mode",
    "senders",
    "receivers",
];

impl Spec {
    /// A queue of messages `M`, `capacity` deep, for these members, with
    /// the largest quota that gives every sender the same share.
    pub fn new<M: Message>(
        name: &str,
        capacity: u32,
        mode: Mode,
        senders: Vec<DomId>,
        receivers: Vec<DomId>,
    ) -> Result<Spec, Error> {
        let n = u32::try_from(senders.len().max(1)).unwrap_or(u32::MAX);
        let spec = Spec {
            name: name.to_string(),
            fingerprint: M::FINGERPRINT,
            message_size: u32::try_from(M::SIZE).unwrap_or(u32::MAX),
            capacity,
            quota: capacity.checked_div(n).unwrap_or(0),
            mode,
            senders,
            receivers,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Checks that the spec makes a queue: a valid name, a message that
    /// fits a ring slot, a quota of at least one whose share for every
    /// sender fits the capacity, a ring that holds the quota, members that
    /// are domains, each listed once.
    pub fn check(&self) -> Result<(), Error> {
        if !valid_name(&self.name) {
            return Err(Error::BadName {
                name: self.name.clone(),
            });
        }
        let bad = |why: String| Error::BadSpec {
            name: self.name.clone(),
            why,
        };
        if self.message_size == 0 || self.message_size > MAX_MESSAGE_SIZE {
            return Err(bad(format!(
                "a message of {} bytes is not between 1 and {MAX_MESSAGE_SIZE}",
                self.message_size
            )));
        }
        if self.quota == 0 {
            return Err(bad("the quota is 0: no sender could send".into()));
        }
        let n = u32::try_from(self.senders.len()).unwrap_or(u32::MAX);
        match self.quota.checked_mul(n) {
            Some(total) if total <= self.capacity => {}
            _ => {
                return Err(bad(format!(
                    "{n} senders with a quota of {} do not fit a capacity of {}",
                    self.quota, self.capacity
                )))
            }
        }
        if self.ring_pages().is_none() {
            return Err(bad(format!(
                "no ring of at most {} pages holds {} messages of {} bytes",
                1u32 << MAX_PAGE_ORDER,
                self.quota,
                self.message_size
            )));
        }
        for (list, role) in [(&self.senders, "sender"), (&self.receivers, "receiver")] {
            if list.is_empty() {
                return Err(bad(format!("no {role} is listed")));
            }
            if list.len() > MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} {role}s")));
            }
            for (i, d) in list.iter().enumerate() {
                if *d >= crate::grant::DOMID_FIRST_RESERVED {
                    return Err(bad(format!("{role} {d} is not a domain id")));
                }
                if list.iter().take(i).any(|e| e == d) {
                    return Err(bad(format!("{role} {d} is listed twice")));
                }
            }
        }
        Ok(())
    }

    /// The pages of each pair's ring: the fewest (1, 2, 4, 8 or 16) whose
    /// native ring has a slot for every message of the quota. Both ends
    /// compute it; a receiver refuses a ring of any other size.
    pub fn ring_pages(&self) -> Option<usize> {
        let slot = (self.message_size as usize).max(core::mem::size_of::<Ack>());
        (0..=MAX_PAGE_ORDER).map(|o| 1usize << o).find(|&pages| {
            native_slots(slot, pages.saturating_mul(PAGE_SIZE)).is_some_and(|n| n >= self.quota)
        })
    }

    /// Whether `domid` may take `role`.
    pub fn permits(&self, domid: DomId, role: Role) -> bool {
        match role {
            Role::Sender => self.senders.contains(&domid),
            Role::Receiver => self.receivers.contains(&domid),
        }
    }

    /// Checks that the queue carries messages `M`.
    pub fn expect<M: Message>(&self) -> Result<(), Error> {
        let size = u32::try_from(M::SIZE).unwrap_or(u32::MAX);
        if self.fingerprint == M::FINGERPRINT && self.message_size == size {
            Ok(())
        } else {
            Err(Error::Fingerprint {
                name: self.name.clone(),
                expected: self.fingerprint,
                expected_size: self.message_size,
                found: M::FINGERPRINT,
                found_size: size,
            })
        }
    }

    /// The spec's nodes, as (key relative to the queue, value).
    pub fn to_nodes(&self) -> Vec<(&'static str, String)> {
        let list = |l: &[DomId]| {
            l.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let values = [
            format!("{:#018x}", self.fingerprint),
            self.message_size.to_string(),
            self.capacity.to_string(),
            self.quota.to_string(),
            self.mode.name().to_string(),
            list(&self.senders),
            list(&self.receivers),
        ];
        SPEC_KEYS.into_iter().zip(values).collect()
    }

    /// Reads a spec from the queue's nodes; `get(key)` reads one (relative
    /// to the queue), `None` when it is missing. Everything read is
    /// checked: a malformed node is an error naming it, never trusted.
    pub fn parse(name: &str, get: &mut dyn FnMut(&str) -> Option<String>) -> Result<Spec, Error> {
        if !valid_name(name) {
            return Err(Error::BadName {
                name: name.to_string(),
            });
        }
        let malformed = |key: &str, why: &str| Error::Malformed {
            name: name.to_string(),
            key: key.to_string(),
            why: why.to_string(),
        };
        let mut read = |key: &str| get(key).ok_or_else(|| malformed(key, "missing"));
        let num = |key: &str, v: String| -> Result<u32, Error> {
            v.trim()
                .parse::<u32>()
                .map_err(|_| malformed(key, "not a decimal u32"))
        };
        let fp = read("fingerprint")?;
        let fingerprint = fp
            .trim()
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| malformed("fingerprint", "not 0x and hex digits"))?;
        let message_size = num("message-size", read("message-size")?)?;
        let capacity = num("capacity", read("capacity")?)?;
        let quota = num("quota", read("quota")?)?;
        let mode = Mode::parse(read("mode")?.trim())
            .ok_or_else(|| malformed("mode", "neither fan-out nor compete"))?;
        let senders = parse_domids(&read("senders")?)
            .ok_or_else(|| malformed("senders", "not domain ids"))?;
        let receivers = parse_domids(&read("receivers")?)
            .ok_or_else(|| malformed("receivers", "not domain ids"))?;
        let spec = Spec {
            name: name.to_string(),
            fingerprint,
            message_size,
            capacity,
            quota,
            mode,
            senders,
            receivers,
        };
        spec.check().map_err(|e| match e {
            Error::BadSpec { why, .. } => malformed("", &why),
            other => other,
        })?;
        Ok(spec)
    }
}

fn native_slots(slot: usize, bytes: usize) -> Option<u32> {
    // The native layout (`ring::native::Layout` with shared slots): a
    // 256-byte header, then the largest power of two of `slot`-byte slots
    // that fits. A test checks it against the ring's own computation.
    let header = 256usize;
    let room = bytes.checked_sub(header)?;
    let n = room.checked_div(slot)?;
    if n == 0 {
        return None;
    }
    // The largest power of two not above n (n >= 1).
    let pow = n.checked_next_power_of_two()?;
    let pow = if pow == n { pow } else { pow.checked_div(2)? };
    u32::try_from(pow).ok()
}

/// The slots of a native ring of messages `M` in `pages` pages, as the ring
/// computes them.
pub fn ring_slots<M: Message>(pages: usize) -> Option<u32> {
    Layout::new::<M, Ack>(pages.checked_mul(PAGE_SIZE)?)
        .ok()
        .map(|l| l.slots())
}

/// Parses a space-separated list of domain ids (each below
/// [`DOMID_FIRST_RESERVED`](crate::grant::DOMID_FIRST_RESERVED)).
pub fn parse_domids(s: &str) -> Option<Vec<DomId>> {
    let mut out = Vec::new();
    for w in s.split_ascii_whitespace() {
        let d: DomId = w.parse().ok()?;
        if d >= crate::grant::DOMID_FIRST_RESERVED || out.len() >= MAX_MEMBERS {
            return None;
        }
        out.push(d);
    }
    Some(out)
}

/// A sender's channel to one receiver, as published under
/// [`link_path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The ring's grant references, one per page.
    pub refs: Vec<GrantRef>,
    /// The sender's unbound port for the receiver.
    pub port: u32,
    /// The receiver generation the sender made this link for.
    pub generation: u64,
}

impl Link {
    /// The link's nodes, relative to its directory.
    pub fn to_nodes(&self) -> [(&'static str, String); 3] {
        [
            (
                "ring-ref",
                self.refs
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("event-channel", self.port.to_string()),
            ("generation", self.generation.to_string()),
        ]
    }

    /// Reads and checks a link for a queue of `spec`: exactly
    /// [`Spec::ring_pages`] grant references and a port. `why` is what is
    /// wrong when it does not parse.
    pub fn parse(
        spec: &Spec,
        get: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Link, &'static str> {
        let refs: Vec<GrantRef> = get("ring-ref")
            .ok_or("ring-ref is missing")?
            .split_ascii_whitespace()
            .map(|w| w.parse().map_err(|_| "ring-ref is not grant references"))
            .collect::<Result<_, _>>()?;
        if Some(refs.len()) != spec.ring_pages() {
            return Err("ring-ref names another number of pages than the queue's ring has");
        }
        let port = get("event-channel")
            .ok_or("event-channel is missing")?
            .trim()
            .parse()
            .map_err(|_| "event-channel is not a port")?;
        let generation = parse_generation(get("generation").as_deref())
            .ok_or("generation is missing or not a number")?;
        Ok(Link {
            refs,
            port,
            generation,
        })
    }
}

/// Parses a `generation` node's value.
pub fn parse_generation(v: Option<&str>) -> Option<u64> {
    v?.trim().parse().ok()
}

/// A sender's count of messages in flight to one receiver, against the
/// queue's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    quota: u32,
    in_flight: u32,
}

impl Credit {
    /// No message in flight, `quota` allowed.
    pub const fn new(quota: u32) -> Credit {
        Credit {
            quota,
            in_flight: 0,
        }
    }

    /// Takes one slot of the quota; `false` if it is used up.
    #[inline]
    pub fn take(&mut self) -> bool {
        if self.in_flight < self.quota {
            self.in_flight = self.in_flight.wrapping_add(1);
            true
        } else {
            false
        }
    }

    /// Gives one slot back (an [`Ack`] came); `false` if none was taken,
    /// which means the receiver acknowledged a message never sent.
    #[inline]
    pub fn give(&mut self) -> bool {
        if self.in_flight > 0 {
            self.in_flight = self.in_flight.wrapping_sub(1);
            true
        } else {
            false
        }
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Whether the quota is used up.
    pub fn is_full(&self) -> bool {
        self.in_flight >= self.quota
    }
}
