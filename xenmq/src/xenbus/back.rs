//! The backend's lifecycle: publish features and InitWait, read and check
//! the frontend's ring, map it, go Connected.

use alloc::string::String;
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
    frontend: Keys,
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// Committing features and InitWait.
    Publishing,
    /// Waiting for the frontend's ring.
    InitWait,
    /// Reading the frontend's keys.
    Reading,
    /// Mapping the ring (held once `RingMapped` arrived).
    Mapping(Plan),
    Connected,
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
            Phase::Reading => "reading the frontend's keys",
            Phase::Mapping(_) => "mapping the ring",
            Phase::Connected => "connected",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
        }
    }
}

/// The backend end of a device's lifecycle. See the [module](super) docs.
#[derive(Debug)]
pub struct Backend {
    core: Core,
    phase: Phase,
    instance: u64,
}

impl Backend {
    /// A backend for the device described by `params`. `instance` must
    /// differ between incarnations of the backend of one device (a random
    /// number, or a counter kept across restarts): the frontend echoes it,
    /// which tells its fresh keys from those it published for a predecessor.
    pub fn new(params: Params, instance: u64) -> Result<Self, Error> {
        Ok(Backend {
            core: Core::new(Role::Backend, params)?,
            phase: Phase::Idle,
            instance,
        })
    }

    /// The state this end last asked to publish.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle => State::Unknown,
            Phase::Publishing => State::Initialising,
            Phase::InitWait | Phase::Reading | Phase::Mapping(_) => State::InitWait,
            Phase::Connected => State::Connected,
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
        match ev {
            Event::Start => match self.phase {
                Phase::Idle | Phase::Closed if self.core.pending.is_none() => {
                    self.core.failed = false;
                    self.core.close_requested = false;
                    let mut w = self.core.identity_pairs();
                    w.push((
                        key::MAX_RING_PAGE_ORDER.into(),
                        alloc::format!("{}", self.core.params.max_ring_page_order),
                    ));
                    w.push((
                        key::XENMQ_INSTANCE.into(),
                        alloc::format!("{}", self.instance),
                    ));
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
                if self.core.committed(phase).is_some() && matches!(self.phase, Phase::Publishing) {
                    self.phase = Phase::InitWait;
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
                    self.phase = Phase::InitWait;
                    self.core.fail(Error::Ring(reason));
                }
                _ => self.core.unexpected(Event::RingFailed(reason), phase),
            },
            Event::RingShared { .. } => self.core.unexpected(ev, phase),
        }
        self.drive();
        self.core.finish()
    }

    fn fail_if_started(&mut self, e: Error) {
        if matches!(self.phase, Phase::Idle | Phase::Closed) {
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

    fn frontend_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        EchoKeys::keys(&mut keys);
        IdentityKeys::keys(&mut keys);
        FrontendKeys::keys(&mut keys);
        keys.extend(self.core.feature_keys());
        keys.dedup();
        keys
    }

    fn keys_read(&mut self, keys: Keys) {
        if !matches!(
            (&self.phase, &self.core.pending),
            (Phase::Reading, Some(Pending::Read))
        ) {
            return self
                .core
                .unexpected(Event::KeysRead(keys), self.phase.name());
        }
        self.core.pending = None;
        self.phase = Phase::InitWait;
        match self.validate(keys) {
            Err(e) => self.core.fail(e),
            // Published for a predecessor of ours: wait for fresh keys.
            Ok(None) => {}
            Ok(Some(plan)) => {
                self.core.pending = Some(Pending::Map);
                self.core.push(Action::MapRing {
                    ring: plan.ring.clone(),
                    port: plan.port,
                });
                self.phase = Phase::Mapping(plan);
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
        self.core
            .check_identity(&id.xenmq_protocol, id.xenmq_version, id.xenmq_fingerprint)?;
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
            let fresh = core::mem::take(&mut self.core.peer_fresh);
            match &self.phase {
                Phase::Idle | Phase::Publishing | Phase::Reading => return,
                Phase::InitWait => {
                    if fresh && self.core.peer_is(&[Initialised, Connected]) {
                        self.phase = Phase::Reading;
                        let keys = self.frontend_keys();
                        self.core.read_peer(keys);
                    }
                    return;
                }
                Phase::Mapping(plan) => {
                    if self.core.peer_is(&[Initialised, Connected]) {
                        let c = Connection {
                            ring: plan.ring.clone(),
                            port: plan.port,
                            peer: plan.frontend.clone(),
                        };
                        self.core.push(Action::Connect(c));
                        self.core.connected = true;
                        self.core.switch(Connected);
                        self.phase = Phase::Connected;
                    } else {
                        // The frontend restarted while we mapped.
                        self.core.teardown();
                        self.phase = Phase::InitWait;
                    }
                    return;
                }
                Phase::Connected => {
                    if self.core.peer_is(&[Initialising]) {
                        // The frontend restarted: drop its old ring, wait again.
                        self.core.teardown();
                        self.core.switch(InitWait);
                        self.phase = Phase::InitWait;
                        continue;
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
        self.core.failed = false;
        self.core.switch(State::InitWait);
        self.phase = Phase::InitWait;
    }
}
