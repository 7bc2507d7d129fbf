//! The frontend's lifecycle: wait for the backend's InitWait, share the
//! ring, publish it, wait for a Connected that names us.

use alloc::string::String;
use alloc::vec::Vec;

use super::config::{Config, Keys, RingRefs};
use super::machine::{Action, Connection, Core, Event, Output, Pending};
use super::published::{BackendKeys, ConnectedKeys, FrontendKeys, IdentityKeys};
use super::{key, Error, Params, Role, State};
use crate::evtchn::Port;
use crate::grant::GrantRef;

/// What was agreed with the backend.
#[derive(Debug, Clone)]
struct Plan {
    order: u8,
    /// The backend incarnation the plan was made with.
    instance: u64,
    backend: Keys,
}

/// Why the backend's keys are being read.
#[derive(Debug)]
enum Purpose {
    /// The backend is in InitWait: start the handshake.
    Handshake,
    /// We are Initialised and the backend showed InitWait again: has it
    /// restarted behind an unchanged state?
    Recheck(Plan),
    /// We are Initialised and the backend shows Connected: to us, or to a
    /// predecessor of ours?
    Confirm(Plan),
}

#[derive(Debug)]
enum Phase {
    /// Not started.
    Idle,
    /// Our state is Initialising: waiting for the backend's InitWait.
    Initialising,
    /// Reading the backend's keys.
    Reading(Purpose),
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
            Phase::Reading(_) => "reading the backend's keys",
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
pub struct FrontMachine {
    core: Core,
    phase: Phase,
    instance: u64,
}

impl FrontMachine {
    /// A frontend for the device described by `params`; nothing happens
    /// until [`Event::Start`]. `instance` must differ between incarnations
    /// of the frontend of one device (a random number): the backend echoes
    /// it with Connected, which tells a connection to us from one to a
    /// predecessor of ours.
    pub fn new(params: Params, instance: u64) -> Result<Self, Error> {
        Ok(FrontMachine {
            core: Core::new(Role::Frontend, params)?,
            phase: Phase::Idle,
            instance,
        })
    }

    /// The state this end last asked to publish.
    pub fn state(&self) -> State {
        match &self.phase {
            Phase::Idle => State::Unknown,
            Phase::Initialising
            | Phase::Reading(Purpose::Handshake)
            | Phase::Sharing(_)
            | Phase::Publishing(_) => State::Initialising,
            Phase::Reading(_) | Phase::Initialised(_) => State::Initialised,
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
        let before = self.state();
        match ev {
            Event::Start => match self.phase {
                Phase::Idle | Phase::Closed { .. } if self.core.pending.is_none() => {
                    self.core.failed = false;
                    self.core.close_requested = false;
                    // A (re)start looks at the backend's last state afresh.
                    self.core.peer_fresh = self.core.peer.is_some();
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
            Event::PeerFault(reason) => {
                if matches!(self.phase, Phase::Idle | Phase::Closed { .. }) {
                    self.core.note(Error::PeerFault(reason));
                } else {
                    self.core.fail(Error::PeerFault(reason));
                }
            }
            Event::RingMapped | Event::Attached | Event::Refused(_) => {
                self.core.unexpected(ev, phase)
            }
        }
        self.drive();
        self.core.transition(before, self.state());
        self.core.finish()
    }

    fn fail_if_started(&mut self, e: Error) {
        if matches!(self.phase, Phase::Idle | Phase::Closed { .. }) {
            self.core.note(e);
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

    fn read(&mut self, purpose: Purpose) {
        let mut keys = Vec::new();
        match purpose {
            Purpose::Confirm(_) => ConnectedKeys::keys(&mut keys),
            Purpose::Handshake | Purpose::Recheck(_) => {
                IdentityKeys::keys(&mut keys);
                BackendKeys::keys(&mut keys);
                keys.extend(self.core.feature_keys());
            }
        }
        keys.push(key::STATE.into());
        self.core.peer_fresh = false;
        self.phase = Phase::Reading(purpose);
        self.core.read_peer(keys);
    }

    fn keys_read(&mut self, keys: Keys) {
        if !matches!(
            (&self.phase, &self.core.pending),
            (Phase::Reading(_), Some(Pending::Read))
        ) {
            return self
                .core
                .unexpected(Event::KeysRead(keys), self.phase.name());
        }
        self.core.pending = None;
        let Phase::Reading(purpose) = core::mem::replace(&mut self.phase, Phase::Initialising)
        else {
            return;
        };
        let state = keys.get(key::STATE).and_then(|s| State::parse(&s).ok());
        match purpose {
            Purpose::Confirm(plan) => {
                self.phase = Phase::Initialised(plan);
                if state != Some(State::Connected) {
                    return; // it moved on; its new state's watch event follows
                }
                let dir = &self.core.params.peer_dir;
                match keys.parse::<ConnectedKeys>(dir) {
                    // A Connected without the key saying to whom.
                    Err(e) => self.core.fail(e.into()),
                    Ok(c) if c.xenmq_frontend_instance == self.instance => self.connect(),
                    // Connected to a predecessor of ours: it will see our
                    // keys and reconnect.
                    Ok(_) => {}
                }
            }
            Purpose::Handshake => {
                if state != Some(State::InitWait) {
                    return; // it moved on; its new state's watch event follows
                }
                match self.negotiate(keys) {
                    Err(e) => self.core.fail(e),
                    Ok(plan) => self.phase = Phase::Sharing(plan),
                }
            }
            Purpose::Recheck(old) => {
                if state != Some(State::InitWait) {
                    self.phase = Phase::Initialised(old);
                    return;
                }
                match self.negotiate(keys) {
                    Err(e) => {
                        // Keep the ring held until the drive releases it.
                        self.phase = Phase::Initialised(old);
                        self.core.fail(e);
                    }
                    Ok(plan) if plan.instance == old.instance => {
                        self.phase = Phase::Initialised(old)
                    }
                    // The backend restarted behind an unchanged InitWait:
                    // start over with what its successor published.
                    Ok(plan) => {
                        self.core.teardown();
                        self.core.switch(State::Initialising);
                        self.phase = Phase::Sharing(plan);
                    }
                }
            }
        }
    }

    /// Checks the backend's keys and picks the ring size.
    fn negotiate(&self, keys: Keys) -> Result<Plan, Error> {
        let dir = &self.core.params.peer_dir;
        let id: IdentityKeys = keys.parse(dir)?;
        self.core.check_identity(&id)?;
        let be: BackendKeys = keys.parse(dir)?;
        self.core.check_features(&keys)?;
        let theirs = u8::try_from(be.max_ring_page_order).unwrap_or(u8::MAX);
        Ok(Plan {
            order: theirs.min(self.core.params.max_ring_page_order),
            instance: be.xenmq_instance,
            backend: keys,
        })
    }

    fn ring_shared(&mut self, grefs: Vec<GrantRef>, port: Port) {
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

    /// Our keys for the backend: ring, instance and echo, identity, features.
    fn publication(&self, plan: &Plan) -> Vec<(String, String)> {
        let mut w = Vec::new();
        if let Some((ring, port)) = &self.core.ring {
            let keys = FrontendKeys {
                ring: ring.clone(),
                event_channel: *port,
                protocol: Some(self.core.params.abi.clone()),
                xenmq_instance: self.instance,
                xenmq_backend_instance: plan.instance,
            };
            w.extend(keys.to_pairs());
        }
        w.extend(self.core.identity_pairs());
        w.extend(self.core.own_features());
        w
    }

    fn connect(&mut self) {
        let Phase::Initialised(plan) = &self.phase else {
            return;
        };
        if let Some((ring, port)) = self.core.ring.clone() {
            let peer = plan.backend.clone();
            self.core
                .push(Action::Connect(Connection { ring, port, peer }));
            self.core.connected = true;
        }
        self.core.switch(State::Connected);
        self.phase = Phase::Connected;
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
                // The state first: a backend that sees our port close finds
                // Closing already written, and knows it for a close, not a
                // death.
                if self.core.peer.is_none() || self.core.peer_is(&[Closed, Unknown]) {
                    self.core.switch(Closed);
                    self.phase = Phase::Closed { reconnect: false };
                } else {
                    self.core.switch(Closing);
                    self.phase = Phase::Closing;
                }
                self.core.teardown();
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
            // Consumed only where acted upon: an observation made while an
            // answer was pending must survive the phases passed meanwhile.
            let fresh = self.core.peer_fresh;
            match &self.phase {
                Phase::Idle | Phase::Reading(_) => return,
                Phase::Closed { reconnect } => {
                    if *reconnect && fresh && self.core.peer_is(&[InitWait]) {
                        // `fresh` is left for the Initialising step below.
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
                    // Only on a new observation: a read that found the
                    // backend moved on waits for the watch event of its move.
                    if fresh && self.core.peer_is(&[InitWait]) {
                        self.read(Purpose::Handshake);
                    }
                    return;
                }
                Phase::Sharing(plan) | Phase::Publishing(plan) => {
                    if self.core.peer_is(&[Initialising]) {
                        // The backend restarted mid-handshake.
                        self.core.teardown();
                        self.phase = Phase::Initialising;
                        continue;
                    }
                    // A backend showing Connected here is still connected to
                    // a predecessor of ours; it resets when it sees our keys.
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
                    if self.core.peer_is(&[Initialising]) {
                        self.core.teardown();
                        self.enter_initialising();
                        continue;
                    }
                    if fresh && self.core.peer_is(&[Connected]) {
                        let plan = plan.clone();
                        self.read(Purpose::Confirm(plan));
                    } else if fresh && self.core.peer_is(&[InitWait]) {
                        let plan = plan.clone();
                        self.read(Purpose::Recheck(plan));
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
