//! The backend's lifecycle: publish features and InitWait, read and check
//! the frontend's ring, map it, go Connected naming the frontend.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::config::{self, Config, Keys, RingRefs};
use super::machine::{Action, Connection, Core, Event, Output, Pending};
use super::published::{EchoKeys, FrontendKeys, IdentityKeys};
use super::{key, Error, Params, Role, State};
use crate::evtchn::Port;

/// A frontend's validated ring.
#[derive(Debug, Clone)]
struct Plan {
    ring: RingRefs,
    port: Port,
    /// The frontend incarnation that published it.
    instance: u64,
    frontend: Keys,
}

/// Why the frontend's keys are being read.
#[derive(Debug)]
enum Purpose {
    /// The frontend offers a ring: validate and map it.
    Handshake,
    /// This ring did not map (the reason): has the frontend published a new
    /// one meanwhile, or did it give us bad grants?
    Retry(Plan, String),
    /// We are connected and the frontend showed Initialised again: has a
    /// successor of it published a new ring?
    Recheck(Plan),
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// Committing features and InitWait.
    Publishing,
    /// Waiting for the frontend's ring.
    InitWait,
    /// Reading the frontend's keys.
    Reading(Purpose),
    /// Mapping the ring (held once `RingMapped` arrived).
    Mapping(Plan),
    /// Starting the data path, waiting for `Attached` or `Refused`.
    Attaching(Plan),
    /// Committing Connected (ring mapped, data path started).
    Connecting(Plan),
    Connected(Plan),
    /// Waiting for the frontend to close.
    Closing,
    Closed,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Publishing => "publishing",
            Phase::InitWait => "waiting in initwait",
            Phase::Reading(_) => "reading the frontend's keys",
            Phase::Mapping(_) => "mapping the ring",
            Phase::Attaching(_) => "starting the data path",
            Phase::Connecting(_) => "publishing connected",
            Phase::Connected(_) => "connected",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
        }
    }
}

/// The backend end of a device's lifecycle. See the [module](super) docs.
#[derive(Debug)]
pub struct BackMachine {
    core: Core,
    phase: Phase,
    instance: u64,
}

impl BackMachine {
    /// A backend for the device described by `params`. `instance` must
    /// differ between incarnations of the backend of one device (a random
    /// number): the frontend echoes it, which tells its fresh keys from
    /// those it published for a predecessor of ours.
    pub fn new(params: Params, instance: u64) -> Result<Self, Error> {
        Ok(BackMachine {
            core: Core::new(Role::Backend, params)?,
            phase: Phase::Idle,
            instance,
        })
    }

    /// The state this end last asked to publish.
    pub fn state(&self) -> State {
        match &self.phase {
            Phase::Idle => State::Unknown,
            Phase::Publishing => State::Initialising,
            Phase::Reading(Purpose::Recheck(_)) | Phase::Connected(_) => State::Connected,
            Phase::InitWait
            | Phase::Reading(_)
            | Phase::Mapping(_)
            | Phase::Attaching(_)
            | Phase::Connecting(_) => State::InitWait,
            Phase::Closing => State::Closing,
            Phase::Closed => State::Closed,
        }
    }

    /// The frontend's last observed state.
    pub fn peer_state(&self) -> Option<State> {
        self.core.peer
    }

    /// Whether a mapping or bound port is held.
    pub fn holds_ring(&self) -> bool {
        self.core.ring.is_some()
    }

    /// Feeds one event; returns what to do.
    pub fn handle(&mut self, ev: Event) -> Output {
        let phase = self.phase.name();
        let before = self.state();
        match ev {
            Event::Start => match self.phase {
                Phase::Idle | Phase::Closed if self.core.pending.is_none() => {
                    self.core.failed = false;
                    self.core.close_requested = false;
                    // A (re)start looks at the frontend's last state afresh.
                    self.core.peer_fresh = self.core.peer.is_some();
                    let mut w = self.core.identity_pairs();
                    let order = self.core.params.max_ring_page_order;
                    w.push((key::MAX_RING_PAGE_ORDER.into(), order.to_string()));
                    w.push((key::XENMQ_INSTANCE.into(), self.instance.to_string()));
                    w.extend(self.core.own_features());
                    self.core.commit(w, Some(State::InitWait));
                    self.phase = Phase::Publishing;
                }
                _ => self.core.unexpected(ev, phase),
            },
            Event::Close => {
                if !matches!(self.phase, Phase::Idle | Phase::Closed) {
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
                    self.phase = match core::mem::replace(&mut self.phase, Phase::Idle) {
                        Phase::Publishing => Phase::InitWait,
                        Phase::Connecting(plan) => Phase::Connected(plan),
                        other => other,
                    };
                }
            }
            Event::CommitFailed { again } => self.core.commit_failed(again, phase),
            Event::RingMapped => match (&self.core.pending, &self.phase) {
                (Some(Pending::Map), Phase::Mapping(plan)) => {
                    self.core.pending = None;
                    self.core.ring = Some((plan.ring.clone(), plan.port));
                }
                _ => self.core.unexpected(ev, phase),
            },
            Event::RingFailed(reason) => match self.core.pending {
                Some(Pending::Map) => {
                    self.core.pending = None;
                    let old = core::mem::replace(&mut self.phase, Phase::InitWait);
                    // A frontend that left, or restarted and published a new
                    // ring, took the old grants with it: read again before
                    // blaming it (watch events may not have told us yet).
                    if let Phase::Mapping(plan) = old {
                        self.read(Purpose::Retry(plan, reason));
                    }
                }
                _ => self.core.unexpected(Event::RingFailed(reason), phase),
            },
            Event::Attached => match (&self.core.pending, &self.phase) {
                (Some(Pending::Attach), Phase::Attaching(plan)) => {
                    // The data path runs: say Connected, naming the
                    // frontend incarnation served.
                    let plan = plan.clone();
                    self.core.pending = None;
                    self.core.connected = true;
                    let echo = (
                        key::XENMQ_FRONTEND_INSTANCE.into(),
                        plan.instance.to_string(),
                    );
                    self.core.commit(alloc::vec![echo], Some(State::Connected));
                    self.phase = Phase::Connecting(plan);
                }
                _ => self.core.unexpected(ev, phase),
            },
            Event::Refused(reason) => match self.core.pending {
                Some(Pending::Attach) => {
                    // Nothing was started; the frontend never saw Connected.
                    self.core.pending = None;
                    self.phase = Phase::InitWait;
                    self.core.fail(Error::Refused(reason));
                }
                _ => self.core.unexpected(Event::Refused(reason), phase),
            },
            Event::PeerFault(reason) => {
                if matches!(self.phase, Phase::Idle | Phase::Closing | Phase::Closed) {
                    self.core.note(Error::PeerFault(reason));
                } else {
                    self.core.fail(Error::PeerFault(reason));
                }
            }
            Event::RingShared { .. } => self.core.unexpected(ev, phase),
        }
        self.drive();
        self.core.transition(before, self.state());
        self.core.finish()
    }

    fn fail_if_started(&mut self, e: Error) {
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
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

    fn read(&mut self, purpose: Purpose) {
        let mut keys = Vec::new();
        IdentityKeys::keys(&mut keys);
        FrontendKeys::keys(&mut keys);
        keys.extend(self.core.feature_keys());
        // The state too, so that keys read from a frontend that has moved
        // on since the watch fired are recognised as such.
        keys.push(key::STATE.into());
        self.core.peer_fresh = false;
        self.phase = Phase::Reading(purpose);
        self.core.read_peer(keys);
    }

    fn map(&mut self, plan: Plan) {
        self.core.pending = Some(Pending::Map);
        self.core.push(Action::MapRing {
            ring: plan.ring.clone(),
            port: plan.port,
        });
        self.phase = Phase::Mapping(plan);
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
        let Phase::Reading(purpose) = core::mem::replace(&mut self.phase, Phase::InitWait) else {
            return;
        };
        // Keys of a frontend no longer offering a ring are not a ring: the
        // watch event of its new state follows.
        let offering = keys
            .get(key::STATE)
            .and_then(|s| State::parse(&s).ok())
            .is_some_and(|s| matches!(s, State::Initialised | State::Connected));
        match purpose {
            Purpose::Handshake => {
                if !offering {
                    return;
                }
                match self.validate(keys) {
                    Err(e) => self.core.fail(e),
                    // Published for a predecessor of ours: wait for fresh keys.
                    Ok(None) => {}
                    Ok(Some(plan)) => self.map(plan),
                }
            }
            Purpose::Retry(failed, reason) => {
                if !offering {
                    return;
                }
                match self.validate(keys) {
                    Err(e) => self.core.fail(e),
                    Ok(None) => {}
                    // The ring that did not map is still the one offered.
                    Ok(Some(plan)) if plan.ring == failed.ring && plan.port == failed.port => {
                        self.core.fail(Error::Ring(reason))
                    }
                    Ok(Some(plan)) => self.map(plan),
                }
            }
            Purpose::Recheck(current) => {
                let instance = current.instance;
                self.phase = Phase::Connected(current);
                if !offering {
                    return;
                }
                match self.validate(keys) {
                    Err(e) => self.core.fail(e),
                    Ok(None) => {}
                    Ok(Some(plan)) if plan.instance == instance => {}
                    // A successor of the frontend we serve published a new
                    // ring: drop the old one, serve the new.
                    Ok(Some(plan)) => {
                        self.core.teardown();
                        self.map(plan);
                    }
                }
            }
        }
    }

    /// Checks the frontend's keys; `None` if they are stale.
    fn validate(&self, keys: Keys) -> Result<Option<Plan>, Error> {
        let dir = &self.core.params.peer_dir;
        let echo: EchoKeys = keys.parse(dir)?;
        if echo.xenmq_backend_instance != self.instance {
            return Ok(None);
        }
        let id: IdentityKeys = keys.parse(dir)?;
        self.core.check_identity(&id)?;
        let fe: FrontendKeys = keys.parse(dir)?;
        let max = self.core.params.max_ring_page_order;
        if fe.ring.order() > max {
            return Err(Error::RingTooLarge {
                path: config::path(dir, key::RING_PAGE_ORDER),
                order: fe.ring.order(),
                max,
            });
        }
        if let Some(abi) = fe.protocol.filter(|a| *a != self.core.params.abi) {
            return Err(Error::Mismatch {
                path: config::path(dir, key::PROTOCOL),
                what: "abi",
                peer: Role::Frontend,
                ours: self.core.params.abi.clone(),
                theirs: config::quote(&abi),
            });
        }
        self.core.check_features(&keys)?;
        Ok(Some(Plan {
            ring: fe.ring,
            port: fe.event_channel,
            instance: fe.xenmq_instance,
            frontend: keys,
        }))
    }

    /// Decides the next actions from the phase and the frontend's state,
    /// whenever no answer is outstanding.
    fn drive(&mut self) {
        use State::*;
        while self.core.pending.is_none() {
            let closing_phase = matches!(self.phase, Phase::Idle | Phase::Closing | Phase::Closed);
            if (self.core.failed || self.core.close_requested) && !closing_phase {
                self.core.teardown();
                if self.core.peer.is_none() || self.core.peer_is(&[Closed, Unknown]) {
                    self.core.switch(Closed);
                    self.phase = Phase::Closed;
                } else {
                    self.core.switch(Closing);
                    self.phase = Phase::Closing;
                }
                continue;
            }
            // The frontend closes: follow it (blkback's frontend_changed).
            if self.core.peer_is(&[Closing]) && !closing_phase {
                self.core.teardown();
                self.core.switch(Closing);
                self.phase = Phase::Closing;
                continue;
            }
            if self.core.peer_is(&[Closed, Unknown])
                && !matches!(self.phase, Phase::Idle | Phase::Closed)
            {
                self.core.teardown();
                self.core.switch(Closed);
                self.phase = Phase::Closed;
                continue;
            }
            // Consumed only where acted upon: an observation made while an
            // answer was pending must survive the phases passed meanwhile.
            let fresh = self.core.peer_fresh;
            match &self.phase {
                Phase::Idle | Phase::Publishing | Phase::Reading(_) => return,
                Phase::InitWait => {
                    if fresh && self.core.peer_is(&[Initialised, Connected]) {
                        self.read(Purpose::Handshake);
                    }
                    return;
                }
                Phase::Mapping(plan) => {
                    if self.core.peer_is(&[Initialised, Connected]) {
                        // Start the data path; Connected is published once
                        // it runs, so that a refusal comes before it.
                        let plan = plan.clone();
                        self.core.push(Action::Connect(Connection {
                            ring: plan.ring.clone(),
                            port: plan.port,
                            peer: plan.frontend.clone(),
                        }));
                        self.core.pending = Some(Pending::Attach);
                        self.phase = Phase::Attaching(plan);
                    } else {
                        // The frontend restarted while we mapped.
                        self.core.teardown();
                        self.phase = Phase::InitWait;
                    }
                    return;
                }
                Phase::Attaching(_) | Phase::Connecting(_) => return,
                Phase::Connected(plan) => {
                    if self.core.peer_is(&[Initialising]) {
                        // The frontend restarted: drop its old ring, wait again.
                        self.core.teardown();
                        self.core.switch(InitWait);
                        self.phase = Phase::InitWait;
                        continue;
                    }
                    if fresh && self.core.peer_is(&[Initialised]) {
                        let plan = plan.clone();
                        self.read(Purpose::Recheck(plan));
                    }
                    return;
                }
                Phase::Closing => {
                    if self.core.peer_is(&[Initialising]) {
                        if self.core.close_requested {
                            self.core.switch(Closed);
                            self.phase = Phase::Closed;
                        } else {
                            self.reset();
                        }
                    }
                    return;
                }
                Phase::Closed => {
                    if fresh && self.core.peer_is(&[Initialising]) && !self.core.close_requested {
                        self.reset();
                        continue;
                    }
                    return;
                }
            }
        }
    }

    /// Back to InitWait for a restarted frontend.
    fn reset(&mut self) {
        self.core.peer_fresh = false;
        self.core.failed = false;
        self.core.switch(State::InitWait);
        self.phase = Phase::InitWait;
    }
}
