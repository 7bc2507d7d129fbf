//! Every device of a protocol that this domain backs, served from one
//! thread: the backend directory is watched for devices the toolstack
//! adds, each device gets its own [`BackDevice`], and the thread sleeps in
//! one `poll` on all their event channels and Xenstore connections at once.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use xenmq::driver::{Backend, Protocol};
use xenmq::evtchn::Events;
use xenmq::grant::{DomId, Grants};
use xenmq::xenbus::State;
use xenmq::xenstore::{Errno, Tx};

use super::{sleep_on, BackDevice, Env, Error, Waker};
use crate::xenstore::Pollable;

/// The most devices one [`Backends`] serves.
pub const MAX_DEVICES: usize = 256;

/// All devices of protocol `P` this domain backs, served from one thread:
/// the backend directory is watched for devices the toolstack adds, each
/// device gets its own [`BackDevice`], and [`turn`](Backends::turn) sleeps on
/// all their event channels and Xenstore connections at once: idle devices
/// cost no wake-ups.
pub struct Backends<P: Protocol, B, S, G: Grants, E: Events> {
    store: S,
    grants: G,
    events: E,
    dir: String,
    token: String,
    connect: Box<dyn FnMut() -> Result<S, Error>>,
    make: Box<dyn FnMut(DomId, u32) -> B>,
    only: Box<dyn FnMut(DomId, u32) -> bool>,
    devices: Vec<BackDevice<P, B, S, G, E>>,
    /// Devices whose set-up failed, with why; not retried until they go.
    failed: BTreeMap<(DomId, u32), String>,
    waker: Option<Waker>,
}

impl<P, B, S, G, E> Backends<P, B, S, G, E>
where
    P: Protocol,
    B: Backend<Protocol = P>,
    S: Pollable,
    G: Grants + Clone,
    E: Events + Clone,
    E::Channel: AsFd,
{
    /// Watches this domain's backend directory for `P`'s devices. Each
    /// device gets a Xenstore connection from `connect` and a driver from
    /// `make(frontend, devid)`.
    pub fn new(
        env: Env<S, G, E>,
        connect: impl FnMut() -> Result<S, Error> + 'static,
        make: impl FnMut(DomId, u32) -> B + 'static,
    ) -> Result<Self, Error> {
        let dir = format!("/local/domain/{}/backend/{}", env.domid(), P::NAME);
        let token = format!("xenmq-backends:{dir}");
        env.store.watch(&dir, &token)?;
        Ok(Backends {
            store: env.store,
            grants: env.grants,
            events: env.events,
            dir,
            token,
            connect: Box::new(connect),
            make: Box::new(make),
            only: Box::new(|_, _| true),
            devices: Vec::new(),
            failed: BTreeMap::new(),
            waker: None,
        })
    }

    /// Serves only the devices `keep(frontend, devid)` accepts (by
    /// default every device of the directory); the others are left alone,
    /// for another backend to serve.
    pub fn only(mut self, keep: impl FnMut(DomId, u32) -> bool + 'static) -> Self {
        self.only = Box::new(keep);
        self
    }

    /// A handle that wakes [`turn`](Backends::turn) (and so
    /// [`run`](Backends::run), whose `stop` is then asked) from another
    /// thread.
    pub fn waker(&mut self) -> Result<Waker, Error> {
        if self.waker.is_none() {
            self.waker = Some(Waker::new()?);
        }
        self.waker.clone().ok_or(Error::Closed)
    }

    /// Devices that could not be set up, and why.
    pub fn failed(&self) -> &BTreeMap<(DomId, u32), String> {
        &self.failed
    }

    /// The devices served now.
    pub fn devices(&mut self) -> &mut [BackDevice<P, B, S, G, E>] {
        &mut self.devices
    }

    fn list(&self, path: &str) -> Vec<String> {
        self.store.directory(Tx::NONE, path).unwrap_or_default()
    }

    /// Looks for devices added or removed.
    fn scan(&mut self) {
        let mut seen = BTreeSet::new();
        for fe in self.list(&self.dir) {
            let Ok(fe_id) = fe.parse::<DomId>() else {
                continue;
            };
            for id in self.list(&format!("{}/{fe}", self.dir)) {
                if let Ok(devid) = id.parse::<u32>() {
                    if (self.only)(fe_id, devid) {
                        seen.insert((fe_id, devid));
                    }
                }
            }
        }
        self.failed.retain(|d, _| seen.contains(d));
        for &(fe, devid) in &seen {
            let known = self.devices.iter().any(|d| d.key() == (fe, devid));
            if known || self.failed.contains_key(&(fe, devid)) || self.devices.len() >= MAX_DEVICES
            {
                continue;
            }
            let made = (self.connect)().and_then(|store| {
                let env = Env::new(store, self.grants.clone(), self.events.clone());
                BackDevice::new(env, fe, devid, (self.make)(fe, devid))
            });
            match made {
                Ok(dev) => self.devices.push(dev),
                Err(e) => {
                    tracing::warn!(
                        frontend = fe,
                        devid,
                        error = %e,
                        "device not served: its set-up failed"
                    );
                    self.failed.insert((fe, devid), e.to_string());
                }
            }
        }
    }

    /// Drops closed devices that are over: their frontend is gone (the
    /// directory is then removed, the toolstack's clean-up, which the
    /// simulator has no daemon for), or the toolstack removed or re-created
    /// their directory (a new device, maybe of a new domain with the same
    /// id, gets a new [`BackDevice`]). Returns whether any was dropped.
    fn reap(&mut self) -> bool {
        let store = &self.store;
        let before = self.devices.len();
        self.devices.retain_mut(|d| {
            if d.state() != State::Closed {
                return true;
            }
            let dir = d.dir().to_owned();
            let ours = State::Closed.as_str();
            match store.read_string(Tx::NONE, &format!("{dir}/state")) {
                // Still the directory we closed: over once the frontend is.
                Ok(s) if s == ours => {
                    let gone = matches!(d.peer_state(), None | Some(State::Unknown));
                    if gone {
                        match store.rm(Tx::NONE, &dir) {
                            Ok(()) => {}
                            Err(e) if e.errno() == Some(Errno::ENOENT) => {}
                            Err(_) => return true,
                        }
                    }
                    !gone
                }
                Ok(_) => false,
                Err(e) if e.errno() == Some(Errno::ENOENT) => false,
                Err(_) => true,
            }
        });
        let reaped = before - self.devices.len();
        if reaped > 0 {
            tracing::debug!(devices = reaped, "closed devices dropped");
        }
        reaped > 0
    }

    /// One round: serves every device's waiting requests, sleeps (up to
    /// `tick`) when none has work, then advances every lifecycle. Returns
    /// the requests served. [`turn`](Backends::turn) with a timeout.
    pub fn step(&mut self, tick: Duration) -> Result<usize, Error> {
        self.turn(Some(tick))
    }

    /// One round: serves every device's waiting requests; when none has
    /// work, sleeps in one `poll` on every device's event channel and
    /// Xenstore connection and on the directory's watch, until one of them
    /// has something or `timeout` passes (`None`: until then); then
    /// advances every lifecycle. Returns the requests served.
    pub fn turn(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        let mut served = 0usize;
        for d in &mut self.devices {
            served = served.saturating_add(d.serve_ready()?);
        }
        let mut busy = served > 0;
        if !busy {
            for d in &mut self.devices {
                busy |= d.final_check()?;
            }
        }
        if !busy {
            // Devices with a deadline (a storm's deferral ending, a check
            // of the peer) bound the sleep.
            let due = self.devices.iter().filter_map(|d| d.deadline()).min();
            let now = Instant::now();
            let wait = match (timeout, due.map(|t| t.saturating_duration_since(now))) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut fds = vec![self.store.watch_fd()];
            fds.extend(self.waker.as_ref().map(Waker::fd));
            for d in &self.devices {
                fds.push(d.watch_fd());
                fds.extend(d.poll_fd());
            }
            let woke = sleep_on(&fds, wait)?;
            drop(fds);
            if woke || due.is_some_and(|t| Instant::now() >= t) {
                if let Some(w) = &self.waker {
                    w.take();
                }
                for d in &mut self.devices {
                    d.consume()?;
                }
            }
        }
        for d in &mut self.devices {
            d.pump(Some(Duration::ZERO))?;
        }
        if self.reap() {
            self.scan();
        }
        self.pump_own(Some(Duration::ZERO))?;
        // A device that connected just now may have had requests queued
        // before its port was bound (that notification was dropped): the
        // next round looks at its ring before it sleeps.
        Ok(served)
    }

    fn pump_own(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let mut rescan = false;
        let mut wait = timeout;
        for _ in 0..64 {
            match self.store.next_event(wait)? {
                Some(ev) => rescan |= ev.token == self.token,
                None => break,
            }
            wait = Some(Duration::ZERO);
        }
        if rescan {
            self.scan();
        }
        Ok(())
    }

    /// Serves until `stop` says so; `stop` is asked after each wake-up
    /// (requests, or a Xenstore event), never on a timer.
    pub fn run(&mut self, mut stop: impl FnMut(&mut Self) -> bool) -> Result<(), Error> {
        while !stop(self) {
            self.turn(None)?;
        }
        Ok(())
    }
}
