//! What both machines share: the events they take, the actions they give,
//! and the bookkeeping of the peer's state, pending requests and held
//! resources.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::config::{self, Fingerprint, Keys, RingRefs};
use super::published::IdentityKeys;
use super::{key, Error, Identity, Params, Role, State};
use crate::evtchn::Port;
use crate::grant::GrantRef;
use crate::ring;

/// How often a conflicting transaction is retried before giving up.
pub(crate) const MAX_COMMIT_ATTEMPTS: u32 = 16;

/// An input to a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The device was probed: start (or, after a local close, restart).
    Start,
    /// Close the device (unplug, driver shutdown). The machine tears down,
    /// goes Closing, and Closed once the peer has closed too.
    Close,
    /// The peer's `state` key now reads this (Linux's `otherend_changed`).
    PeerState(State),
    /// The peer's `state` key as read from the store: `None` when absent
    /// (the peer's directory is gone: read as Unknown), garbage is an error.
    PeerStateValue(Option<String>),
    /// The answer to [`Action::ReadPeer`].
    KeysRead(Keys),
    /// The transaction of [`Action::Commit`] committed.
    Committed,
    /// The transaction of [`Action::Commit`] failed; `again` when it was a
    /// conflict (`EAGAIN`) worth retrying.
    CommitFailed {
        /// Whether the store said to try again.
        again: bool,
    },
    /// The answer to [`Action::ShareRing`]: the pages' grant references, in
    /// order, and the unbound port allocated for the peer.
    RingShared {
        /// One grant reference per page.
        grefs: Vec<GrantRef>,
        /// The port the peer binds to.
        port: Port,
    },
    /// The answer to [`Action::MapRing`]: mapped and bound.
    RingMapped,
    /// [`Action::ShareRing`] or [`Action::MapRing`] failed; the platform has
    /// released whatever part of the request it had obtained.
    RingFailed(String),
    /// A backend's answer to [`Action::Connect`]: the data path runs.
    Attached,
    /// A backend's answer to [`Action::Connect`]: the driver or the platform
    /// refused the frontend (the reason) and started nothing. The machine
    /// closes before ever publishing Connected.
    Refused(String),
    /// The data path gave up on the peer: it broke the ring protocol, or it
    /// died (its event channel closed). The machine writes the reason to
    /// the `error` node, stops the data path, gives back the ring and
    /// closes; unlike [`Event::Close`], the peer's standard reset (Closing,
    /// Closed, then Initialising) starts the device over.
    PeerFault(String),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Close => "close",
            Event::PeerState(_) | Event::PeerStateValue(_) => "a peer state",
            Event::KeysRead(_) => "keys-read",
            Event::Committed => "committed",
            Event::CommitFailed { .. } => "commit-failed",
            Event::RingShared { .. } => "ring-shared",
            Event::RingMapped => "ring-mapped",
            Event::RingFailed(_) => "ring-failed",
            Event::Attached => "attached",
            Event::Refused(_) => "refused",
            Event::PeerFault(_) => "peer-fault",
        }
    }
}

/// What the machine asks the platform to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// In one transaction, write `writes` (keys relative to this end's
    /// directory) and, if given, this end's `state`. Answer with
    /// [`Event::Committed`] or [`Event::CommitFailed`].
    Commit {
        /// Key/value pairs.
        writes: Vec<(String, String)>,
        /// The state to switch to in the same transaction.
        state: Option<State>,
    },
    /// Write this end's `state` key (Linux's `xenbus_switch_state`). No answer.
    SwitchState(State),
    /// Read these keys of the peer's directory and answer with
    /// [`Event::KeysRead`] (absent keys simply left out).
    ReadPeer {
        /// Keys relative to the peer's directory.
        keys: Vec<String>,
    },
    /// FrontMachine: grant `pages` zeroed pages read-write to the peer and
    /// allocate an unbound event channel for it. Answer with
    /// [`Event::RingShared`] or [`Event::RingFailed`].
    ShareRing {
        /// How many pages (a power of two).
        pages: usize,
    },
    /// BackMachine: map the peer's grants and bind its port. Answer with
    /// [`Event::RingMapped`] or [`Event::RingFailed`].
    MapRing {
        /// The frontend's ring.
        ring: RingRefs,
        /// The frontend's port.
        port: Port,
    },
    /// FrontMachine: end access to the grants (the page is freed later if the
    /// peer still maps it) and close the port. No answer.
    ReleaseRing {
        /// The grants given out.
        grefs: Vec<GrantRef>,
        /// The port allocated.
        port: Port,
    },
    /// BackMachine: unbind the port and unmap the grants. No answer.
    UnmapRing {
        /// The grants mapped.
        grefs: Vec<GrantRef>,
        /// The port bound.
        port: Port,
    },
    /// Start the data path on the ring just shared or mapped. A backend
    /// answers with [`Event::Attached`] or [`Event::Refused`] (it publishes
    /// Connected only after the data path runs); a frontend does not answer.
    Connect(Connection),
    /// Stop the data path; always comes before the ring's release or unmap.
    Disconnect,
    /// Report this message where the toolstack looks for device errors:
    /// an `error` key (Linux's `xenbus_dev_error` writes it under
    /// `error/<device path>` of its domain; the userspace runtime writes it in
    /// this end's directory). No answer.
    WriteError(String),
}

/// What the data path needs when the device connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The ring's grant references and order.
    pub ring: RingRefs,
    /// The event channel: allocated (frontend) or bound (backend).
    pub port: Port,
    /// The peer's keys as read during the handshake, features included
    /// (parse the driver's feature struct with [`Keys::parse`]).
    pub peer: Keys,
}

/// The result of one event: actions to perform in order, and the error, if
/// the event revealed one. The actions include the clean-up of the error.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use = "the actions must be performed"]
pub struct Output {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// What went wrong, if anything (the device is closing if so, unless the
    /// error is [`Error::Unexpected`], a runtime bug that changes nothing).
    pub error: Option<Error>,
}

#[derive(Debug)]
pub(crate) enum Pending {
    Commit {
        writes: Vec<(String, String)>,
        state: Option<State>,
        attempts: u32,
    },
    Read,
    Share {
        pages: usize,
    },
    Map,
    /// A backend's `Connect`, waiting for `Attached` or `Refused`.
    Attach,
}

/// The bookkeeping both machines share.
#[derive(Debug)]
pub(crate) struct Core {
    pub role: Role,
    pub params: Params,
    /// The peer's last observed state; `None` until one is seen.
    pub peer: Option<State>,
    /// A peer state was observed and not yet acted upon.
    pub peer_fresh: bool,
    pub pending: Option<Pending>,
    /// A fatal error was reported: the device is closing.
    pub failed: bool,
    /// The local side asked to close: no automatic reconnect.
    pub close_requested: bool,
    /// `Connect` was given and `Disconnect` not yet.
    pub connected: bool,
    /// The ring this end holds: shared (frontend) or mapped (backend).
    pub ring: Option<(RingRefs, Port)>,
    out: Vec<Action>,
    error: Option<Error>,
}

impl Core {
    pub fn new(role: Role, params: Params) -> Result<Self, Error> {
        params.validate()?;
        Ok(Core {
            role,
            params,
            peer: None,
            peer_fresh: false,
            pending: None,
            failed: false,
            close_requested: false,
            connected: false,
            ring: None,
            out: Vec::new(),
            error: None,
        })
    }

    pub fn peer_role(&self) -> Role {
        match self.role {
            Role::Frontend => Role::Backend,
            Role::Backend => Role::Frontend,
        }
    }

    pub fn peer_is(&self, states: &[State]) -> bool {
        self.peer.is_some_and(|p| states.contains(&p))
    }

    /// Records a peer state, refusing transitions the protocol forbids.
    pub fn observe(&mut self, to: State) -> Result<(), Error> {
        let peer = self.peer_role();
        let from = self.peer.replace(to);
        self.peer_fresh = true;
        if from != Some(to) {
            crate::trace::event!(
                debug,
                peer = %peer,
                from = %from.map_or("none", State::name),
                to = %to,
                "peer state changed"
            );
        }
        match (peer, to) {
            (_, State::Reconfiguring | State::Reconfigured) => {
                return Err(Error::Unsupported { peer, state: to })
            }
            (Role::Frontend, State::InitWait) | (Role::Backend, State::Initialised) => {
                return Err(Error::WrongRole { peer, state: to })
            }
            _ => {}
        }
        let illegal = match (from, to) {
            // Out of Closing, a peer only finishes closing or starts over.
            (Some(State::Closing), State::Initialised | State::Connected) => true,
            // Connecting takes a handshake, which goes through our own
            // InitWait/Initialised first.
            (Some(State::Closed), State::Connected) => true,
            _ => false,
        };
        match from {
            Some(from) if illegal => Err(Error::IllegalTransition { peer, from, to }),
            _ => Ok(()),
        }
    }

    /// Reports a fatal error: written to the `error` key now; the machine's
    /// drive then releases everything and closes.
    pub fn fail(&mut self, e: Error) {
        if !self.failed {
            self.failed = true;
            crate::trace::event!(warn, reason = %e, "refused: closing the device");
            self.out.push(Action::WriteError(e.to_string()));
        }
        self.report(e);
    }

    /// Reports an error found while already closed: nothing to tear
    /// down, but the reason still goes to the `error` node, so that no
    /// closure is left unexplained.
    pub fn note(&mut self, e: Error) {
        self.out.push(Action::WriteError(e.to_string()));
        self.report(e);
    }

    /// Reports an error that changes nothing.
    pub fn report(&mut self, e: Error) {
        if !self.failed {
            crate::trace::event!(debug, error = %e, "ignored");
        }
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    pub fn push(&mut self, a: Action) {
        self.out.push(a);
    }

    pub fn switch(&mut self, s: State) {
        self.out.push(Action::SwitchState(s));
    }

    pub fn read_peer(&mut self, keys: Vec<String>) {
        self.pending = Some(Pending::Read);
        self.out.push(Action::ReadPeer { keys });
    }

    pub fn commit(&mut self, writes: Vec<(String, String)>, state: Option<State>) {
        self.out.push(Action::Commit {
            writes: writes.clone(),
            state,
        });
        self.pending = Some(Pending::Commit {
            writes,
            state,
            attempts: 1,
        });
    }

    /// Handles `Committed`: returns the state committed, if it was ours to wait for.
    pub fn committed(&mut self, phase: &'static str) -> Option<Option<State>> {
        match self.pending.take() {
            Some(Pending::Commit { state, .. }) => Some(state),
            other => {
                self.pending = other;
                self.report(Error::Unexpected {
                    event: "committed",
                    phase,
                });
                None
            }
        }
    }

    /// Handles `CommitFailed`: retries a conflict, fails otherwise.
    pub fn commit_failed(&mut self, again: bool, phase: &'static str) {
        match self.pending.take() {
            Some(Pending::Commit {
                writes,
                state,
                attempts,
            }) => {
                if again && attempts < MAX_COMMIT_ATTEMPTS {
                    crate::trace::event!(debug, attempts, "transaction conflict: retrying");
                    self.out.push(Action::Commit {
                        writes: writes.clone(),
                        state,
                    });
                    self.pending = Some(Pending::Commit {
                        writes,
                        state,
                        attempts: attempts.saturating_add(1),
                    });
                } else if again {
                    self.fail(Error::CommitConflict(attempts));
                } else {
                    self.fail(Error::CommitFailed);
                }
            }
            other => {
                self.pending = other;
                self.report(Error::Unexpected {
                    event: "commit-failed",
                    phase,
                });
            }
        }
    }

    /// Stops the data path and gives back the ring, whatever is held.
    pub fn teardown(&mut self) {
        if self.connected {
            self.connected = false;
            self.out.push(Action::Disconnect);
        }
        if let Some((ring, port)) = self.ring.take() {
            let grefs = ring.into_refs();
            self.out.push(match self.role {
                Role::Frontend => Action::ReleaseRing { grefs, port },
                Role::Backend => Action::UnmapRing { grefs, port },
            });
        }
    }

    /// A stray event: report it (and give back any grants it carries).
    pub fn unexpected(&mut self, ev: Event, phase: &'static str) {
        let event = ev.name();
        match ev {
            Event::RingShared { grefs, port } if self.role == Role::Frontend => {
                self.out.push(Action::ReleaseRing { grefs, port });
            }
            _ => {}
        }
        self.report(Error::Unexpected { event, phase });
    }

    /// The identity keys this end publishes.
    pub fn identity_pairs(&self) -> Vec<(String, String)> {
        let id = &self.params.identity;
        alloc::vec![
            (key::XENMQ_PROTOCOL.into(), id.name.clone()),
            (key::XENMQ_VERSION.into(), id.version.to_string()),
            (
                key::XENMQ_FINGERPRINT.into(),
                Fingerprint(id.fingerprint).to_string()
            ),
            (key::XENMQ_RING_LAYOUT.into(), id.ring.name().into()),
        ]
    }

    /// Checks the peer's identity against ours.
    pub fn check_identity(&self, id: &IdentityKeys) -> Result<(), Error> {
        let (name, version, fp) = (&id.xenmq_protocol, id.xenmq_version, id.xenmq_fingerprint);
        let ours: &Identity = &self.params.identity;
        let mismatch = |k: &str, what, o: String, t: String| Error::Mismatch {
            path: config::path(&self.params.peer_dir, k),
            what,
            peer: self.peer_role(),
            ours: o,
            theirs: t,
        };
        if *name != ours.name {
            return Err(mismatch(
                key::XENMQ_PROTOCOL,
                "name",
                ours.name.clone(),
                name.clone(),
            ));
        }
        if version != ours.version {
            return Err(mismatch(
                key::XENMQ_VERSION,
                "version",
                ours.version.to_string(),
                version.to_string(),
            ));
        }
        if fp.0 != ours.fingerprint {
            return Err(mismatch(
                key::XENMQ_FINGERPRINT,
                "fingerprint",
                Fingerprint(ours.fingerprint).to_string(),
                fp.to_string(),
            ));
        }
        let layout = id.xenmq_ring_layout.as_deref();
        let theirs = layout.map_or(Some(ring::Kind::Compat), ring::Kind::parse);
        if theirs != Some(ours.ring) {
            return Err(mismatch(
                key::XENMQ_RING_LAYOUT,
                "ring layout",
                ours.ring.name().into(),
                layout.unwrap_or(ring::Kind::Compat.name()).into(),
            ));
        }
        Ok(())
    }

    /// Checks the peer's features with the driver's config.
    pub fn check_features(&self, keys: &Keys) -> Result<(), Error> {
        (self.params.features.check)(&self.params.peer_dir, &mut |k| keys.get(k))?;
        Ok(())
    }

    pub fn feature_keys(&self) -> Vec<String> {
        self.params.features.peer_keys.clone()
    }

    pub fn own_features(&self) -> Vec<(String, String)> {
        self.params.features.own.clone()
    }

    /// Reports a change of this end's state (from before an event to after it).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub fn transition(&self, from: State, to: State) {
        if from != to {
            crate::trace::event!(info, role = %self.role, from = %from, to = %to, "state changed");
        }
    }

    pub fn finish(&mut self) -> Output {
        Output {
            actions: core::mem::take(&mut self.out),
            error: self.error.take(),
        }
    }
}
