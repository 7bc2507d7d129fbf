//! The frontend's lifecycle: wait for the backend's InitWait, share the
//! ring, publish it, wait for Connected.

use alloc::string::String;
use alloc::vec::Vec;

use super::config::{Config, Keys, RingRefs};
use super::machine::{Action, Connection, Core, Event, Output, Pending};
use super::published::{BackendKeys, FrontendKeys, IdentityKeys};
use super::{Error, Params, Role, State};

/// What was agreed with the backend.
#[derive(Debug, Clone)]
struct Plan {
    order: u8,
    instance: u64,
    backend: Keys,
}

#[derive(Debug)]
enum Phase {
    /// Not started.
    Idle,
    /// Our state is Initialising: waiting for the backend's InitWait.
    Initialising,
    /// Reading the backend's keys (`recheck`: while Initialised, to see
    /// whether the backend restarted).
    Reading {
        recheck: Option<Plan>,
    },
    /// Sharing the ring.
    Sharing(Plan),
    /// Committing our keys and Initialised.
    Publishing(Plan),
    /// Waiting for the backend's Connected.
    Initialised(Plan),
    Connected,
    /// Waiting for the backend to close too.
    Closing,
    /// Closed; `reconnect` when the backend closed first, so that a backend
    /// coming back with InitWait is served again.
    Closed {
        reconnect: bool,
    },
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Initialising => "initialising",
            Phase::Reading { .. } => "reading the backend's keys",
            Phase::Sharing(_) => "sharing the ring",
            Phase::Publishing(_) => "publishing the ring",
            Phase::Initialised(_) => "initialised",
            Phase::Connected => "connected",
            Phase::Closing => "closing",
            Phase::Closed { .. } => "closed",
        }
    }
}

/// The frontend end of a device's lifecycle. See the [module](super) docs.
#[derive(Debug)]
pub struct Frontend {
    core: Core,
    phase: Phase,
}

impl Frontend {
    /// A frontend for the device described by `params`; nothing happens
    /// until [`Event::Start`].
    pub fn new(params: Params) -> Result<Self, Error> {
        Ok(Frontend {
            core: Core::new(Role::Frontend, params)?,
            phase: Phase::Idle,
        })
    }

    /// The state this end last asked to publish.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle => State::Unknown,
            Phase::Initialising | Phase::Reading { recheck: None } => State::Initialising,
            Phase::Sharing(_) | Phase::Publishing(_) => State::Initialising,
            Phase::Reading { recheck: Some(_) } | Phase::Initialised(_) => State::Initialised,
            Phase::Connected => State::Connected,
            Phase::Closing => State::Closing,
            Phase::Closed { .. } => State::Closed,
        }
    }

    /// The backend's last observed state.
    pub fn peer_state(&self) -> Option<State> {
        self.core.peer
    }

    /// Whether a grant or port is held (shared and not yet released).
    pub fn holds_ring(&self) -> bool {
        self.core.ring.is_some()
    }

    /// Feeds one event; returns what to do.
    pub fn handle(&mut self, ev: Event) -> Output {
        let phase = self.phase.name();
        match ev {
            Event::Start => match self.phase {
                Phase::Idle | Phase::Closed { .. } if self.core.pending.is_none() => {
                    self.core.failed = false;
                    self.core.close_requested = false;
                    self.enter_initialising();
                }
                _ => self.core.unexpected(ev, phase),
            },
            Event::Close => {
                if !matches!(self.phase, Phase::Idle | Phase::Closed { .. }) {
                    self.core.close_requested = true;
                }
            }
            Event::PeerState(s) => self.peer(s),
            Event::PeerStateValue(v) => match v.as_deref().map(State::parse) {
                None => self.peer(State::Unknown),
                Some(Ok(s)) => self.peer(s),
                Some(Err(e)) => self.fail_if_started(e),
            },
            Event::KeysRead(keys) => self.keys_read(keys),
            Event::Committed => {
                if self.core.committed(phase).is_some() {
                    if let Phase::Publishing(plan) =
                        core::mem::replace(&mut self.phase, Phase::Idle)
                    {
                        self.phase = Phase::Initialised(plan);
                    }
                }
            }
            Event::CommitFailed { again } => self.core.commit_failed(again, phase),
            Event::RingShared { grefs, port } => self.ring_shared(grefs, port),
            Event::RingFailed(reason) => match self.core.pending {
                Some(Pending::Share { .. }) => {
                    self.core.pending = None;
                    self.core.fail(Error::Ring(reason));
                }
                _ => self.core.unexpected(Event::RingFailed(reason), phase),
            },
            Event::RingMapped => self.core.unexpected(ev, phase),
        }
        self.drive();
        self.core.finish()
    }

    fn fail_if_started(&mut self, e: Error) {
        if matches!(self.phase, Phase::Idle | Phase::Closed { .. }) {
            self.core.report(e);
        } else {
            self.core.fail(e);
        }
    }

    fn peer(&mut self, s: State) {
        if let Err(e) = self.core.observe(s) {
            self.fail_if_started(e);
        }
    }

    fn enter_initialising(&mut self) {
        self.core.switch(State::Initialising);
        self.phase = Phase::Initialising;
    }

    fn backend_keys() -> Vec<String> {
        let mut keys = Vec::new();
        IdentityKeys::keys(&mut keys);
        BackendKeys::keys(&mut keys);
        keys
    }

    fn keys_read(&mut self, keys: Keys) {
        let Phase::Reading { recheck } = &self.phase else {
            return self
                .core
                .unexpected(Event::KeysRead(keys), self.phase.name());
        };
        if !matches!(self.core.pending, Some(Pending::Read)) {
            return self
                .core
                .unexpected(Event::KeysRead(keys), self.phase.name());
        }
        self.core.pending = None;
        let recheck = recheck.clone();
        match self.negotiate(keys) {
            Err(e) => {
                // Keep the ring of a recheck held until the drive releases it.
                self.phase = match recheck {
                    Some(plan) => Phase::Initialised(plan),
                    None => Phase::Initialising,
                };
                self.core.fail(e);
            }
            Ok(plan) => match recheck {
                Some(old) if old.instance == plan.instance => self.phase = Phase::Initialised(old),
                // The backend restarted behind an unchanged InitWait: start over.
                Some(_) => {
                    self.core.teardown();
                    self.enter_initialising();
                }
                None => self.phase = Phase::Sharing(plan),
            },
        }
    }

    /// Checks the backend's keys and picks the ring size.
    fn negotiate(&self, keys: Keys) -> Result<Plan, Error> {
        let dir = &self.core.params.peer_dir;
        let id: IdentityKeys = keys.parse(dir)?;
        self.core
            .check_identity(&id.xenmq_protocol, id.xenmq_version, id.xenmq_fingerprint)?;
        let be: BackendKeys = keys.parse(dir)?;
        self.core.check_features(&keys)?;
        let theirs = u8::try_from(be.max_ring_page_order).unwrap_or(u8::MAX);
        Ok(Plan {
            order: theirs.min(self.core.params.max_ring_page_order),
            instance: be.xenmq_instance,
            backend: keys,
        })
    }

    fn ring_shared(&mut self, grefs: Vec<crate::grant::GrantRef>, port: crate::evtchn::Port) {
        let phase = self.phase.name();
        let Some(Pending::Share { pages }) = self.core.pending else {
            return self
                .core
                .unexpected(Event::RingShared { grefs, port }, phase);
        };
        self.core.pending = None;
        let got = grefs.len();
        match RingRefs::new(grefs.clone()).filter(|_| got == pages) {
            Some(ring) => self.core.ring = Some((ring, port)),
            None => {
                self.core.push(Action::ReleaseRing { grefs, port });
                self.core.fail(Error::GrantCount { got, want: pages });
            }
        }
    }

    /// Our keys for the backend, ring and instance echo included.
    fn publication(&self, plan: &Plan) -> Vec<(String, String)> {
        let mut w = Vec::new();
        if let Some((ring, port)) = &self.core.ring {
            let keys = FrontendKeys {
                ring: ring.clone(),
                event_channel: *port,
                protocol: Some(self.core.params.abi.clone()),
                xenmq_backend_instance: plan.instance,
            };
            w.extend(keys.to_pairs());
        }
        w.extend(self.core.identity_pairs());
        w.extend(self.core.own_features());
        w
    }

    /// Decides the next actions from the phase and the backend's state,
    /// whenever no answer is outstanding.
    fn drive(&mut self) {
        use State::*;
        while self.core.pending.is_none() {
            let closing_phase = matches!(
                self.phase,
                Phase::Idle | Phase::Closing | Phase::Closed { .. }
            );
            // We close: fatal error or local request.
            if (self.core.failed || self.core.close_requested) && !closing_phase {
                self.core.teardown();
                if self.core.peer.is_none() || self.core.peer_is(&[Closed, Unknown]) {
                    self.core.switch(Closed);
                    self.phase = Phase::Closed { reconnect: false };
                } else {
                    self.core.switch(Closing);
                    self.phase = Phase::Closing;
                }
                continue;
            }
            // The backend closes (or vanished) while we hold or publish
            // something: close after it, as `xenbus_frontend_closed`.
            let peer_gone = self.core.peer_is(&[Closing, Closed, Unknown]);
            if peer_gone && !closing_phase && !matches!(self.phase, Phase::Initialising) {
                self.core.teardown();
                self.core.switch(Closed);
                self.phase = Phase::Closed {
                    reconnect: !self.core.failed,
                };
                continue;
            }
            let fresh = core::mem::take(&mut self.core.peer_fresh);
            match &self.phase {
                Phase::Idle | Phase::Reading { .. } => return,
                Phase::Closed { reconnect } => {
                    if *reconnect && fresh && self.core.peer_is(&[InitWait]) {
                        self.core.failed = false;
                        self.enter_initialising();
                        continue;
                    }
                    return;
                }
                Phase::Closing => {
                    if self.core.peer_is(&[Closing, Closed, Unknown]) {
                        self.core.switch(Closed);
                        self.phase = Phase::Closed { reconnect: false };
                    }
                    return;
                }
                Phase::Initialising => {
                    if self.core.peer_is(&[InitWait]) {
                        self.phase = Phase::Reading { recheck: None };
                        self.core.read_peer(Self::backend_keys());
                    }
                    return;
                }
                Phase::Sharing(plan) | Phase::Publishing(plan) => {
                    if self.core.peer_is(&[Connected]) {
                        self.core.fail(Error::ConnectedEarly);
                        continue;
                    }
                    if self.core.peer_is(&[Initialising]) {
                        // The backend restarted mid-handshake.
                        self.core.teardown();
                        self.phase = Phase::Initialising;
                        continue;
                    }
                    let plan = plan.clone();
                    if self.core.ring.is_none() {
                        let pages = 1usize.checked_shl(u32::from(plan.order)).unwrap_or(1);
                        self.core.pending = Some(Pending::Share { pages });
                        self.core.push(Action::ShareRing { pages });
                    } else {
                        let writes = self.publication(&plan);
                        self.core.commit(writes, Some(Initialised));
                        self.phase = Phase::Publishing(plan);
                    }
                    return;
                }
                Phase::Initialised(plan) => {
                    if self.core.peer_is(&[Connected]) {
                        let plan = plan.clone();
                        if let Some((ring, port)) = self.core.ring.clone() {
                            self.core.push(Action::Connect(Connection {
                                ring,
                                port,
                                peer: plan.backend,
                            }));
                            self.core.connected = true;
                        }
                        self.core.switch(Connected);
                        self.phase = Phase::Connected;
                    } else if self.core.peer_is(&[Initialising]) {
                        self.core.teardown();
                        self.enter_initialising();
                        continue;
                    } else if fresh && self.core.peer_is(&[InitWait]) {
                        // Has the backend restarted behind the same state?
                        self.phase = Phase::Reading {
                            recheck: Some(plan.clone()),
                        };
                        self.core.read_peer(Self::backend_keys());
                    }
                    return;
                }
                Phase::Connected => {
                    if self.core.peer_is(&[InitWait, Initialising]) {
                        // The backend restarted: start again.
                        self.core.teardown();
                        self.enter_initialising();
                        continue;
                    }
                    return;
                }
            }
        }
    }
}
