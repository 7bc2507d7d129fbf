//! One xenbus device of a module: the sans-IO xenbus machine of its role,
//! driven from the shim's callbacks, and the data path.
//!
//! Linux's xenbus watches the peer's `state` itself and calls
//! `otherend_changed`, which the glue feeds to the machine as
//! [`Event::PeerState`]; the machine's actions are carried out at once on
//! the [`Xenbus`] store, the device's grant [`Table`] and event [`Ports`],
//! and answered by the events they produce. Every entry point runs in
//! process context under the device's mutex (the shim holds it), so the
//! state below needs no lock of its own.
//!
//! A backend device serves its ring from the device's work item: the
//! interrupt handler queues it, [`Device::kick`] takes the notification,
//! serves batches (at most [`BATCHES_PER_KICK`], then queues itself again so
//! a busy frontend cannot hold the worker) and re-arms the ring. A frontend
//! device shares its ring and connects a [`Client`]; what the module offers
//! its kernel on top of it (a character or block device) is the driver's.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ptr::NonNull;

use xenmq::driver::{
    BackRingOf, Backend, Both, Client, FrontRingOf, Frontend, Pool, PoolKeys, Protocol, Server,
};
use xenmq::evtchn::{Channel, Events};
use xenmq::grant::{Access, DomId, Grants, Pages, Shared};
use xenmq::ring::{BackSide, FrontSide};
use xenmq::xenbus::{self, Action, Config, Event, Features, Params, State};
use xenmq::xenstore::{self as store, Store, Tx};

use crate::evtchn::{Chan, Ports};
use crate::grant::{Mapping, Share, Table};
use crate::sys;
use crate::xenstore::{c_string, Xenbus};

/// Batches one kick serves before it queues itself again.
pub const BATCHES_PER_KICK: usize = 16;

/// The role-specific half of a device.
pub trait End {
    /// Builds the machine for a device with these directories.
    fn machine(&self, params: Params, instance: u64) -> Result<Machine, xenbus::Error>;
    /// Carries out a grant, port or data-path action; `None` if the
    /// action needs no answer (or is not this role's).
    fn perform(
        &mut self,
        action: Action,
        dirs: Dirs<'_>,
        grants: &Table,
        ports: &Ports,
    ) -> Option<Event>;
    /// Set when the driver refused the peer or the data path failed: the
    /// device closes with this message in its `error` node.
    fn take_refusal(&mut self) -> Option<String>;
    /// Set when the data path gave up on the peer (it broke the ring): the
    /// device closes with this message in its `error` node, and starts
    /// over on the peer's standard reset.
    fn take_fault(&mut self) -> Option<String> {
        None
    }
    /// Runs the data path after an event; `true` if work is left.
    fn kick(&mut self) -> bool;
    /// The protocol identity the machine publishes.
    fn identity(&self) -> xenbus::Identity;
}

/// The device's directories, for the actions that read or write keys.
#[derive(Debug, Clone, Copy)]
pub struct Dirs<'a> {
    /// This end's.
    pub own: &'a str,
    /// The peer's.
    pub peer: &'a str,
}

/// The machine of either role.
#[derive(Debug)]
pub enum Machine {
    /// A frontend's.
    Front(xenbus::FrontMachine),
    /// A backend's.
    Back(xenbus::BackMachine),
}

impl Machine {
    fn handle(&mut self, ev: Event) -> xenbus::Output {
        match self {
            Machine::Front(m) => m.handle(ev),
            Machine::Back(m) => m.handle(ev),
        }
    }
}

/// One device.
pub struct Device<E: End> {
    dev: NonNull<sys::Dev>,
    own_dir: String,
    peer_dir: String,
    machine: Machine,
    // The end holds grants and channels made from `grants`/`ports`: it is
    // declared first so that it drops first.
    end: E,
    grants: Box<Table>,
    ports: Ports,
}

fn instance(dev: NonNull<sys::Dev>) -> u64 {
    // A per-incarnation value: the device's address mixed with a counter,
    // distinct across reprobes of the same device in one boot.
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    // Relaxed: a unique number, ordering nothing.
    let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    (dev.as_ptr() as u64).rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<E: End> Device<E> {
    /// The device the shim probed: `own_dir` is its `nodename`, `peer_dir`
    /// and `peer` its `otherend` and `otherend_id`. Starts the machine.
    ///
    /// # Safety
    ///
    /// `dev` is the shim's device and outlives the returned value.
    pub unsafe fn probe(
        dev: NonNull<sys::Dev>,
        own_dir: String,
        peer_dir: String,
        peer: DomId,
        end: E,
    ) -> Result<Box<Self>, String> {
        let domid = Xenbus
            .read_string(Tx::NONE, "domid")
            .ok()
            .and_then(|s| s.trim().parse::<DomId>().ok())
            .unwrap_or(0);
        let params = Params::new(&own_dir, &peer_dir, end.identity());
        let machine = end
            .machine(params, instance(dev))
            .map_err(|e| e.to_string())?;
        // SAFETY: `dev` outlives the device (this function's contract), and
        // the table and ports are dropped with it.
        let (grants, ports) = unsafe {
            (
                Box::new(Table::new(dev, domid, peer)),
                Ports::new(dev, peer),
            )
        };
        let mut d = Box::new(Device {
            dev,
            own_dir,
            peer_dir,
            machine,
            end,
            grants,
            ports,
        });
        d.feed(Event::Start);
        Ok(d)
    }

    /// The peer's state changed (`otherend_changed`).
    pub fn changed(&mut self, state: u32) {
        let ev = match State::from_u32(state) {
            Some(s) => Event::PeerState(s),
            None => Event::PeerStateValue(Some(state.to_string())),
        };
        self.feed(ev);
    }

    /// An event channel interrupt queued the device's work.
    pub fn kick(&mut self) {
        if self.end.kick() {
            // SAFETY: the device is live while `self` is.
            unsafe { sys::xenmq_k_requeue(self.dev.as_ptr()) };
        }
        self.check_refused();
    }

    /// The device goes away (`remove`): close, releasing every grant and
    /// port the machine holds.
    pub fn remove(&mut self) {
        self.feed(Event::Close);
    }

    fn check_refused(&mut self) {
        if let Some(why) = self.end.take_refusal() {
            crate::error!("{}: {why}", self.own_dir);
            self.write_error(&why);
            self.feed(Event::Close);
        }
        if let Some(why) = self.end.take_fault() {
            crate::error!("{}: {why}", self.own_dir);
            self.feed(Event::PeerFault(why));
        }
    }

    fn write_error(&self, msg: &str) {
        // A message with a NUL cannot be sent: say so instead.
        let text = c_string(msg.as_bytes(), "NUL")
            .unwrap_or_else(|_| b"error message with a NUL\0".to_vec());
        // SAFETY: the device is live; `text` is NUL-terminated. The shim
        // passes it as "%s", never as a format.
        unsafe {
            sys::xenmq_k_dev_error(self.dev.as_ptr(), -sys::errno::EIO, text.as_ptr().cast())
        };
    }

    fn feed(&mut self, ev: Event) {
        let mut queue = VecDeque::from([ev]);
        // The machine answers each event with finitely many actions and at
        // most one request is outstanding; the bound is a backstop.
        for _ in 0..256 {
            let Some(ev) = queue.pop_front() else { break };
            let out = self.machine.handle(ev);
            if let Some(e) = out.error {
                crate::warn!("{}: {e}", self.own_dir);
            }
            for a in out.actions {
                if let Some(next) = self.perform(a) {
                    queue.push_back(next);
                }
            }
        }
        if !queue.is_empty() {
            crate::error!("{}: the lifecycle did not settle", self.own_dir);
        }
        self.check_refused();
    }

    fn perform(&mut self, a: Action) -> Option<Event> {
        match a {
            Action::Commit { writes, state } => {
                let dir = &self.own_dir;
                let r = store::transaction(&Xenbus, |tx| {
                    for (k, v) in &writes {
                        Xenbus.write(tx, &format!("{dir}/{k}"), v.as_bytes())?;
                    }
                    if let Some(s) = state {
                        Xenbus.write(tx, &format!("{dir}/state"), s.as_str().as_bytes())?;
                    }
                    Ok(())
                });
                Some(match r {
                    Ok(()) => Event::Committed,
                    Err(e) => Event::CommitFailed {
                        again: e.errno() == Some(store::Errno::EAGAIN),
                    },
                })
            }
            Action::SwitchState(s) => {
                // SAFETY: the device is live. A failure is reported by
                // xenbus itself and shows as the peer not following.
                unsafe { sys::xenmq_k_switch_state(self.dev.as_ptr(), s as i32) };
                None
            }
            Action::ReadPeer { keys } => {
                let dir = &self.peer_dir;
                Some(Event::KeysRead(xenbus::Keys::read_with(&keys, |k| {
                    Xenbus.read_string(Tx::NONE, &format!("{dir}/{k}")).ok()
                })))
            }
            Action::WriteError(msg) => {
                self.write_error(&msg);
                None
            }
            Action::Connect(_) => {
                let _ = Xenbus.rm(Tx::NONE, &format!("{}/error", self.own_dir));
                let dirs = Dirs {
                    own: &self.own_dir,
                    peer: &self.peer_dir,
                };
                let next = self.end.perform(a, dirs, &self.grants, &self.ports);
                // The data path may have work already (a frontend's
                // on-connect use, requests that raced the interrupt).
                // SAFETY: the device is live while `self` is.
                unsafe { sys::xenmq_k_requeue(self.dev.as_ptr()) };
                next
            }
            other => {
                let dirs = Dirs {
                    own: &self.own_dir,
                    peer: &self.peer_dir,
                };
                self.end.perform(other, dirs, &self.grants, &self.ports)
            }
        }
    }
}

/// A backend device's role: the driver and its [`Server`].
pub struct Back<P: Protocol, B> {
    driver: B,
    peer: DomId,
    server: Server<P, Chan>,
    ring: Option<Mapping>,
    pool: Option<Mapping>,
    chan: Option<Chan>,
    /// Why the data path gave up on the frontend.
    fault: Option<String>,
}

impl<P: Protocol, B: Backend<Protocol = P>> Back<P, B> {
    /// The role for a device whose frontend is `peer`.
    pub fn new(driver: B, peer: DomId) -> Self {
        Back {
            driver,
            peer,
            server: Server::new(),
            ring: None,
            pool: None,
            chan: None,
            fault: None,
        }
    }

    fn detach(&mut self) {
        if self.server.is_attached() {
            self.chan = self.server.detach();
            self.driver.disconnect();
        }
    }

    fn connect(
        &mut self,
        peer: &xenbus::Keys,
        peer_dir: &str,
        grants: &Table,
    ) -> Result<(), String> {
        let cfg: Both<P::FrontendConfig, PoolKeys> =
            peer.parse(peer_dir).map_err(|e| e.to_string())?;
        // Everything that can fail before the driver's hook, so that a
        // refusal leaves the driver untouched.
        let mapped = self.ring.as_ref().ok_or("the ring is not mapped")?;
        let ring = BackRingOf::<P>::attach(mapped.region()).map_err(|e| e.to_string())?;
        if self.chan.is_none() {
            return Err("the port is not bound".into());
        }
        let want = P::POOL_PAGES as usize;
        if cfg.1.refs.len() != want {
            return Err(format!(
                "{peer_dir}/{}: {} buffer pages, the protocol has {want}",
                xenmq::driver::POOL_KEY,
                cfg.1.refs.len()
            ));
        }
        if want > 0 {
            let pool = grants
                .map(self.peer, &cfg.1.refs, Access::ReadWrite)
                .map_err(|e| format!("cannot map the buffer pool: {e}"))?;
            self.pool = Some(pool);
        }
        self.driver.connect(&cfg.0).map_err(|r| r.0)?;
        let chan = self.chan.take().ok_or("the port is not bound")?;
        let pool = self.pool.as_ref().map(|p| Pool::new(p.region()));
        self.server.attach(ring, chan, pool);
        Ok(())
    }
}

impl<P: Protocol, B: Backend<Protocol = P>> End for Back<P, B> {
    fn machine(&self, mut params: Params, instance: u64) -> Result<Machine, xenbus::Error> {
        params.max_ring_page_order = P::MAX_RING_PAGE_ORDER;
        params.features = Features::new::<P::BackendConfig, Both<P::FrontendConfig, PoolKeys>>(
            &self.driver.config(),
        );
        xenbus::BackMachine::new(params, instance).map(Machine::Back)
    }

    fn perform(
        &mut self,
        action: Action,
        dirs: Dirs<'_>,
        grants: &Table,
        ports: &Ports,
    ) -> Option<Event> {
        let peer_dir = dirs.peer;
        match action {
            Action::MapRing { ring, port } => {
                self.detach();
                self.chan = None;
                self.pool = None;
                self.ring = None;
                let r = grants
                    .map(self.peer, ring.refs(), Access::ReadWrite)
                    .map_err(|e| e.to_string())
                    .and_then(|m| {
                        Ok((
                            m,
                            ports
                                .bind_interdomain(self.peer, port)
                                .map_err(|e| e.to_string())?,
                        ))
                    });
                Some(match r {
                    Ok((m, c)) => {
                        self.ring = Some(m);
                        self.chan = Some(c);
                        Event::RingMapped
                    }
                    Err(e) => Event::RingFailed(e),
                })
            }
            Action::Connect(conn) => Some(match self.connect(&conn.peer, peer_dir, grants) {
                Ok(()) => Event::Attached,
                Err(why) => Event::Refused(why),
            }),
            Action::Disconnect => {
                self.detach();
                None
            }
            Action::UnmapRing { .. } => {
                self.detach();
                self.chan = None;
                self.pool = None;
                self.ring = None;
                None
            }
            _ => None,
        }
    }

    fn take_refusal(&mut self) -> Option<String> {
        // A backend refuses through `Event::Refused`.
        None
    }

    fn take_fault(&mut self) -> Option<String> {
        self.fault.take()
    }

    fn identity(&self) -> xenbus::Identity {
        P::identity()
    }

    fn kick(&mut self) -> bool {
        if !self.server.is_attached() {
            // An event before Connect: take it and unmask the interrupt;
            // Connect queues a kick that serves whatever is in the ring.
            if let Some(c) = &self.chan {
                let _ = c.poll();
                c.end_of_events();
            }
            return false;
        }
        let r = (|| -> Result<bool, xenmq::driver::Error> {
            self.server.consume()?;
            for _ in 0..BATCHES_PER_KICK {
                if self.server.serve(&mut self.driver)? == 0 && !self.server.final_check()? {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        let more = r.unwrap_or_else(|e| {
            // A corrupt ring is the frontend's fault: stop serving it.
            self.fault = Some(format!("the frontend broke the ring: {e}"));
            false
        });
        if !more {
            // Drained: the next event may interrupt again (XSA-332 keeps it
            // masked until here).
            if let Some(c) = self.server.channel() {
                c.end_of_events();
            }
        }
        more
    }
}

/// What a frontend module does with its client once connected: called
/// from the device's work item (process context: it may sleep and
/// allocate), once per connection. Its result is logged.
pub type OnConnect<P> = fn(&mut Client<P, Chan>) -> Result<u32, xenmq::driver::Error>;

/// What a frontend device holds for one connection.
struct Held<P: Protocol> {
    // Kept for the ring's region (the ring points into it).
    _ring_pages: Share,
    pool: Option<Share>,
    ring: Option<FrontRingOf<P>>,
    chan: Option<Chan>,
}

/// A frontend device's role: the driver and its [`Client`].
pub struct Front<P: Protocol, F> {
    driver: F,
    peer: DomId,
    client: Client<P, Chan>,
    held: Option<Held<P>>,
    on_connect: Option<OnConnect<P>>,
    used: bool,
    refusal: Option<String>,
}

impl<P: Protocol, F: Frontend<Protocol = P>> Front<P, F> {
    /// The role for a device whose backend is `peer`; `on_connect` runs
    /// once per connection.
    pub fn new(driver: F, peer: DomId, on_connect: Option<OnConnect<P>>) -> Self {
        Front {
            driver,
            peer,
            client: Client::new(),
            held: None,
            on_connect,
            used: false,
            refusal: None,
        }
    }

    fn share(
        &mut self,
        pages: usize,
        own: &str,
        grants: &Table,
        ports: &Ports,
    ) -> Result<(Vec<u32>, u32), String> {
        self.held = None;
        let ring_pages = grants
            .share(self.peer, pages, Access::ReadWrite)
            .map_err(|e| e.to_string())?;
        let ring = FrontRingOf::<P>::init(ring_pages.region()).map_err(|e| e.to_string())?;
        let pool = match P::POOL_PAGES {
            0 => None,
            n => Some(
                grants
                    .share(self.peer, n as usize, Access::ReadWrite)
                    .map_err(|e| e.to_string())?,
            ),
        };
        if let Some(pool) = &pool {
            let mut pairs = Vec::new();
            PoolKeys {
                refs: pool.refs().to_vec(),
            }
            .write(&mut |k, v| pairs.push((k.to_string(), v)));
            for (k, v) in pairs {
                Xenbus
                    .write(Tx::NONE, &format!("{own}/{k}"), v.as_bytes())
                    .map_err(|e| e.to_string())?;
            }
        }
        let chan = ports.alloc_unbound(self.peer).map_err(|e| e.to_string())?;
        let grefs = ring_pages.refs().to_vec();
        let port = chan.port();
        self.held = Some(Held {
            _ring_pages: ring_pages,
            pool,
            ring: Some(ring),
            chan: Some(chan),
        });
        Ok((grefs, port))
    }

    fn detach(&mut self) {
        if !self.client.is_connected() {
            return;
        }
        let (lost, chan) = self.client.detach();
        if let Some(h) = self.held.as_mut() {
            h.chan = chan;
        }
        self.driver.disconnect(lost);
    }
}

impl<P: Protocol, F: Frontend<Protocol = P>> End for Front<P, F> {
    fn machine(&self, mut params: Params, instance: u64) -> Result<Machine, xenbus::Error> {
        params.max_ring_page_order = P::RING_PAGE_ORDER;
        params.features =
            Features::new::<P::FrontendConfig, P::BackendConfig>(&self.driver.config());
        xenbus::FrontMachine::new(params, instance).map(Machine::Front)
    }

    fn perform(
        &mut self,
        action: Action,
        dirs: Dirs<'_>,
        grants: &Table,
        ports: &Ports,
    ) -> Option<Event> {
        match action {
            Action::ShareRing { pages } => Some(match self.share(pages, dirs.own, grants, ports) {
                Ok((grefs, port)) => Event::RingShared { grefs, port },
                Err(e) => Event::RingFailed(e),
            }),
            Action::Connect(conn) => {
                let cfg: Result<P::BackendConfig, _> = conn.peer.parse(dirs.peer);
                let verdict = match cfg {
                    Ok(cfg) => self.driver.connect(&cfg).map_err(|r| r.0),
                    Err(e) => Err(e.to_string()),
                };
                match (verdict, self.held.as_mut()) {
                    (Ok(()), Some(h)) => match (h.ring.take(), h.chan.take()) {
                        (Some(ring), Some(chan)) => {
                            let pool = h.pool.as_ref().map(|p| Pool::new(p.region()));
                            self.client.attach(ring, chan, pool);
                            self.used = false;
                        }
                        _ => self.refusal = Some("the ring was not shared".into()),
                    },
                    (Ok(()), None) => self.refusal = Some("the ring was not shared".into()),
                    (Err(why), _) => self.refusal = Some(why),
                }
                None
            }
            Action::Disconnect => {
                self.detach();
                None
            }
            Action::ReleaseRing { .. } => {
                self.detach();
                // Dropping the pages ends access, or hands them to Linux's
                // deferred release while the backend still maps them.
                self.held = None;
                None
            }
            _ => None,
        }
    }

    fn take_refusal(&mut self) -> Option<String> {
        self.refusal.take()
    }

    fn kick(&mut self) -> bool {
        if !self.client.is_connected() || self.used {
            return false;
        }
        self.used = true;
        if let Some(f) = self.on_connect {
            match f(&mut self.client) {
                Ok(n) => crate::info!("on-connect: ok ({n})"),
                Err(e) => crate::error!("on-connect: failed: {e}"),
            }
        }
        false
    }

    fn identity(&self) -> xenbus::Identity {
        P::identity()
    }
}
