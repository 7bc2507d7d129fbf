//! The backend end of a device.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::guard::{self, Storm};
use super::lifecycle::{setup_key, Lifecycle, Machine, Perform, StoreOps};
use super::{instance, sleep_on, Env, Error, Waker};
use crate::xenstore::Pollable;
use xenmq::driver::{self, BackRingOf, Backend, Both, Pool, PoolKeys, Protocol, Server};
use xenmq::evtchn::{Channel as _, Events, Status};
use xenmq::grant::{Access, DomId, Grants, Pages};
use xenmq::ring::BackSide;
use xenmq::xenbus::{self, Action, Event, Features, Params, State};

/// What the backend holds for one connection.
struct Held<G: Grants, C> {
    ring: G::Mapped,
    chan: Option<C>,
    pool: Option<G::Mapped>,
}

struct Ends<P: Protocol, B, G: Grants, E: Events> {
    driver: B,
    grants: G,
    events: E,
    peer: DomId,
    server: Server<P, E::Channel>,
    held: Option<Held<G, E::Channel>>,
    connects: u64,
}

impl<P: Protocol, B: Backend<Protocol = P>, G: Grants, E: Events> Perform for Ends<P, B, G, E> {
    fn perform(&mut self, action: Action, peer_dir: &str, _store: &dyn StoreOps) -> Option<Event> {
        match action {
            Action::MapRing { ring, port } => {
                self.detach();
                self.held = None;
                let mapped = (|| -> Result<_, Error> {
                    let ring = self.grants.map(self.peer, ring.refs(), Access::ReadWrite)?;
                    let chan = self.events.bind_interdomain(self.peer, port)?;
                    Ok(Held {
                        ring,
                        chan: Some(chan),
                        pool: None,
                    })
                })();
                Some(match mapped {
                    Ok(h) => {
                        self.held = Some(h);
                        Event::RingMapped
                    }
                    Err(e) => Event::RingFailed(error_chain(&e)),
                })
            }
            Action::Connect(conn) => Some(match self.connect(&conn.peer, peer_dir) {
                Ok(()) => Event::Attached,
                Err(why) => Event::Refused(why),
            }),
            Action::Disconnect => {
                self.detach();
                None
            }
            Action::UnmapRing { .. } => {
                self.detach();
                self.held = None;
                None
            }
            _ => None,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl<P: Protocol, B: Backend<Protocol = P>, G: Grants, E: Events> Ends<P, B, G, E> {
    fn connect(&mut self, peer: &xenbus::Keys, peer_dir: &str) -> Result<(), String> {
        let cfg: Both<P::FrontendConfig, PoolKeys> =
            peer.parse(peer_dir).map_err(|e| e.to_string())?;
        let h = self.held.as_mut().ok_or("the ring is not mapped")?;
        // Everything that can fail before the driver's hook, so that a
        // refusal leaves the driver untouched.
        let ring = BackRingOf::<P>::attach(h.ring.region()).map_err(|e| e.to_string())?;
        if h.chan.is_none() {
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
            let pool = self
                .grants
                .map(self.peer, &cfg.1.refs, Access::ReadWrite)
                .map_err(|e| format!("cannot map the buffer pool: {e}"))?;
            h.pool = Some(pool);
        }
        self.driver.connect(&cfg.0).map_err(|r| r.0)?;
        let chan = h.chan.take().ok_or("the port is not bound")?;
        let pool = h.pool.as_ref().map(|p| Pool::new(p.region()));
        self.server.attach(ring, chan, pool);
        self.connects = self.connects.wrapping_add(1);
        Ok(())
    }

    fn detach(&mut self) {
        if !self.server.is_attached() {
            return;
        }
        let chan = self.server.detach();
        if let Some(h) = self.held.as_mut() {
            h.chan = chan;
        }
        self.driver.disconnect();
    }
}

/// Protocol violations a device survives within [`DEFAULT_FAULT_WINDOW`].
pub const DEFAULT_FAULTS: usize = 3;
/// The window of [`DEFAULT_FAULTS`].
pub const DEFAULT_FAULT_WINDOW: Duration = Duration::from_secs(60);

/// The protocol violations of a device's recent past.
struct FaultBudget {
    max: usize,
    per: Duration,
    seen: VecDeque<Instant>,
}

impl FaultBudget {
    fn new(max: usize, per: Duration) -> Self {
        FaultBudget {
            max,
            per,
            seen: VecDeque::new(),
        }
    }

    /// Records a violation at `now`; `false` once more than `max` fell
    /// within the window.
    fn admit(&mut self, now: Instant) -> bool {
        while self
            .seen
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.per)
        {
            self.seen.pop_front();
        }
        if self.seen.len() >= self.max {
            return false;
        }
        self.seen.push_back(now);
        true
    }
}

/// The backend of one device: its lifecycle and its [`Server`].
pub struct BackDevice<P: Protocol, B, S, G: Grants, E: Events> {
    lc: Lifecycle<S>,
    ends: Ends<P, B, G, E>,
    faults: FaultBudget,
    storm: Storm,
    /// The next check that the frontend still holds its port, on
    /// platforms that do not say ([`xenmq::evtchn::Channel::peer_check`]).
    check_at: Option<Instant>,
    /// The connection `storm` and `check_at` were set up for.
    guarded: u64,
    batches: u64,
    devid: u32,
    waker: Option<Waker>,
}

impl<P, B, S, G, E> BackDevice<P, B, S, G, E>
where
    P: Protocol,
    B: Backend<Protocol = P>,
    S: Pollable,
    G: Grants,
    E: Events,
{
    /// The backend of frontend domain `frontend`'s device `devid` of this
    /// protocol's type (`/local/domain/<self>/backend/<type>/<frontend>/<devid>`),
    /// as created by the toolstack. Publishes InitWait.
    pub fn new(env: Env<S, G, E>, frontend: DomId, devid: u32, driver: B) -> Result<Self, Error> {
        let own_dir = format!(
            "/local/domain/{}/backend/{}/{frontend}/{devid}",
            env.domid(),
            P::NAME
        );
        let peer_dir = setup_key(&env.store, &own_dir, "frontend")?;
        let mut params = Params::new(&own_dir, &peer_dir, P::identity());
        params.max_ring_page_order = P::MAX_RING_PAGE_ORDER;
        params.features =
            Features::new::<P::BackendConfig, Both<P::FrontendConfig, PoolKeys>>(&driver.config());
        let machine = xenbus::BackMachine::new(params, instance())?;
        let span = super::lifecycle::device_span(P::NAME, devid, env.domid(), frontend, "backend");
        let mut lc =
            Lifecycle::new(env.store, own_dir, peer_dir, Machine::Back(machine)).in_span(span);
        let mut ends = Ends {
            driver,
            grants: env.grants,
            events: env.events,
            peer: frontend,
            server: Server::new(),
            held: None,
            connects: 0,
        };
        lc.start(&mut ends)?;
        let back = BackDevice {
            lc,
            ends,
            faults: FaultBudget::new(DEFAULT_FAULTS, DEFAULT_FAULT_WINDOW),
            storm: Storm::new(),
            check_at: None,
            guarded: 0,
            batches: 0,
            devid,
            waker: None,
        };
        Ok(back)
    }

    /// This end's lifecycle state.
    pub fn state(&self) -> State {
        self.lc.machine().state()
    }

    /// The frontend's last seen state.
    pub fn peer_state(&self) -> Option<State> {
        self.lc.machine().peer_state()
    }

    /// The last error the lifecycle reported.
    pub fn last_error(&self) -> Option<&xenbus::Error> {
        self.lc.last_error.as_ref()
    }

    /// This end's Xenstore directory.
    pub fn dir(&self) -> &str {
        &self.lc.own_dir
    }

    /// The frontend domain and device id.
    pub fn key(&self) -> (DomId, u32) {
        (self.ends.peer, self.devid)
    }

    /// The driver.
    pub fn driver(&mut self) -> &mut B {
        &mut self.ends.driver
    }

    /// Whether the data path is up.
    pub fn is_connected(&self) -> bool {
        self.ends.server.is_attached()
    }

    /// How many times a frontend connected.
    pub fn connects(&self) -> u64 {
        self.ends.connects
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.ends.server.served()
    }

    /// Sets the largest spin budget before sleeping (0: never spin).
    pub fn set_spin(&mut self, max: u32) {
        self.ends.server.set_spin(max);
    }

    /// Looks at Xenstore for up to `timeout` and advances the lifecycle.
    pub fn pump(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.lc.pump(timeout, &mut self.ends)?;
        Ok(())
    }

    /// One step: serve a batch if connected, then wait up to `tick` for
    /// more requests or for Xenstore (spinning first). Returns the
    /// requests served. [`turn`](BackDevice::turn) with a timeout.
    pub fn step(&mut self, tick: Duration) -> Result<usize, Error>
    where
        E::Channel: AsFd,
    {
        self.turn(Some(tick))
    }

    /// One turn of the loop: serves a batch if connected and advances the
    /// lifecycle; then, if nothing more is waiting, sleeps in one `poll`
    /// on the event channel and the Xenstore watch descriptor until either
    /// has something or `timeout` passes (`None`: until then). An idle
    /// device makes no wake-ups. Returns the requests served.
    pub fn turn(&mut self, timeout: Option<Duration>) -> Result<usize, Error>
    where
        E::Channel: AsFd,
    {
        let (served, idle) = self.advance()?;
        if idle {
            let now = Instant::now();
            let due = self.deadline();
            let limit = due.map(|t| t.saturating_duration_since(now));
            let wait = match (timeout, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let woke = {
                let mut fds = vec![self.watch_fd()];
                fds.extend(self.poll_fd());
                fds.extend(self.waker.as_ref().map(Waker::fd));
                sleep_on(&fds, wait)?
            };
            if woke || due.is_some_and(|t| Instant::now() >= t) {
                self.wake()?;
            }
        }
        Ok(served)
    }

    /// The non-blocking half of [`turn`](BackDevice::turn), shared with the
    /// async loop: serves one batch if connected, looks at Xenstore when
    /// idle (and every so often while busy). Returns the requests served
    /// and whether the caller may sleep: nothing is waiting, and the ring
    /// is re-armed so that the next request notifies the channel.
    pub(crate) fn advance(&mut self) -> Result<(usize, bool), Error> {
        let mut served = 0;
        let mut idle = true;
        if self.ends.server.is_attached() {
            self.guard_connection();
            served = match self.ends.server.serve(&mut self.ends.driver) {
                Ok(n) => n,
                Err(e) => return self.broken(e).map(|n| (n, false)),
            };
            self.batches = self.batches.wrapping_add(1);
            idle = match self.ends.server.spin_check() {
                Ok(more) => !more,
                Err(e) => return self.broken(e).map(|n| (n, false)),
            };
            self.judge(served > 0 || !idle);
        }
        // Idle, or every so often while busy: the lifecycle's turn.
        if idle || self.batches.is_multiple_of(256) {
            let (connects, state) = (self.ends.connects, self.state());
            self.pump(Some(Duration::ZERO))?;
            // A new connection: the frontend may have queued requests
            // before the port was bound (that notification was dropped):
            // serve once before sleeping. Any other change of state: back
            // to the caller, whose loop may be waiting for it, before
            // sleeping.
            if self.ends.connects != connects || self.state() != state {
                idle = false;
            }
        }
        Ok((served, idle))
    }

    /// After a sleep ended: consumes the channel's notification and takes
    /// what Xenstore has.
    pub(crate) fn wake(&mut self) -> Result<(), Error> {
        if let Some(w) = &self.waker {
            w.take();
        }
        self.consume()?;
        self.pump(Some(Duration::ZERO))
    }

    /// A handle that wakes this device's [`turn`](BackDevice::turn) (and
    /// so [`run`](BackDevice::run), whose `stop` is then asked) from
    /// another thread.
    pub fn waker(&mut self) -> Result<Waker, Error> {
        if self.waker.is_none() {
            self.waker = Some(Waker::new()?);
        }
        self.waker.clone().ok_or(Error::Closed)
    }

    /// The Xenstore connection's watch descriptor (readable while watch
    /// events wait), to sleep on it beside [`fd`](BackDevice::fd).
    pub fn watch_fd(&self) -> BorrowedFd<'_> {
        self.lc.store.watch_fd()
    }

    /// Serves the requests waiting now, without waiting for more.
    pub fn serve_ready(&mut self) -> Result<usize, Error> {
        if !self.ends.server.is_attached() {
            return Ok(0);
        }
        self.guard_connection();
        match self.ends.server.serve(&mut self.ends.driver) {
            Ok(n) => {
                if n > 0 {
                    self.storm.worked();
                }
                Ok(n)
            }
            Err(e) => self.broken(e),
        }
    }

    /// Before sleeping: re-arms the ring and checks once more; `true` if
    /// requests are waiting (do not sleep).
    pub fn final_check(&mut self) -> Result<bool, Error> {
        if !self.ends.server.is_attached() {
            return Ok(false);
        }
        match self.ends.server.final_check() {
            Ok(more) => {
                self.judge(more);
                Ok(more)
            }
            Err(e) => self.broken(e).map(|_| false),
        }
    }

    /// After a wake-up: consumes the channel's pending notification,
    /// unless the channel's notifications are deferred (an event storm,
    /// see [`set_storm_limit`](BackDevice::set_storm_limit)); and, when
    /// due, checks that the frontend still holds its port (on platforms
    /// that do not report its close).
    pub fn consume(&mut self) -> Result<(), Error> {
        if !self.ends.server.is_attached() {
            return Ok(());
        }
        let now = Instant::now();
        if !self.storm.deferring(now) {
            match self.ends.server.consume() {
                Ok(got) => self.storm.consumed(got),
                Err(e) => return self.broken(e).map(drop),
            }
        }
        if self.check_at.is_some_and(|t| now >= t) {
            self.check_peer(now)?;
        }
        Ok(())
    }

    /// A new connection gets a clean storm record and its first peer
    /// check.
    fn guard_connection(&mut self) {
        if self.guarded == self.ends.connects {
            return;
        }
        self.guarded = self.ends.connects;
        self.storm.reset();
        let every = self.ends.server.channel().and_then(|c| c.peer_check());
        self.check_at = every.map(|p| guard::next_check(Instant::now(), p));
    }

    /// Records what a look at the ring found after a wake-up.
    fn judge(&mut self, work: bool) {
        if work {
            self.storm.worked();
            return;
        }
        if let Some(delay) = self.storm.idle(Instant::now()) {
            let span = &self.lc.span;
            if self.storm.first_report() {
                tracing::warn!(
                    parent: span,
                    empty = self.storm.empty(),
                    "event storm: the frontend notifies without requests; its notifications are deferred"
                );
            } else {
                tracing::trace!(parent: span, delay_ms = delay.as_millis() as u64, "event storm: deferred");
            }
        }
    }

    /// Asks the platform whether the frontend still holds its port; a
    /// closed port is a dead frontend, handled as the channel's close.
    fn check_peer(&mut self, now: Instant) -> Result<(), Error> {
        let Some(chan) = self.ends.server.channel() else {
            self.check_at = None;
            return Ok(());
        };
        let every = chan.peer_check();
        let status = chan.status();
        self.check_at = every.map(|p| guard::next_check(now, p));
        // A failed check tells nothing; the next one asks again.
        if matches!(status, Ok(Status::Closed)) {
            self.check_at = None;
            self.broken(driver::Error::from(xenmq::evtchn::Error::PeerClosed))?;
        }
        Ok(())
    }

    /// When this device wants its loop to look at it even if nothing is
    /// readable: the end of an event storm's deferral, the next check that
    /// the frontend still holds its port. Loops that sleep on
    /// [`poll_fd`](BackDevice::poll_fd) bound their sleep by it and call
    /// [`consume`](BackDevice::consume) when it passes.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.ends.server.is_attached() {
            return None;
        }
        match (self.storm.until(), self.check_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets the longest an event storm's notifications are deferred
    /// (by default [`DEFAULT_STORM_LIMIT`](super::DEFAULT_STORM_LIMIT));
    /// `None` turns the bound off: every notification wakes the loop.
    pub fn set_storm_limit(&mut self, limit: Option<Duration>) {
        self.storm.set_limit(limit);
    }

    /// How many times this device's notifications were deferred for an
    /// event storm.
    pub fn storm_deferrals(&self) -> u64 {
        self.storm.deferrals()
    }

    /// The data path failed (the frontend died or broke the ring
    /// protocol): stop serving it, unmap, say why in the `error` node and
    /// go Closing. The frontend's standard reset starts the device over,
    /// unless its protocol violations exceed the fault budget: then the
    /// device stays closed until the toolstack re-creates it.
    fn broken(&mut self, e: driver::Error) -> Result<usize, Error> {
        if !e.is_fatal() {
            return Err(e.into());
        }
        self.ends.detach();
        if matches!(e, driver::Error::Ring(_)) {
            super::lifecycle::trace_ring_fault(&self.lc.span, "backend", &e);
        } else {
            // The channel closed. A frontend that closes properly writes
            // Closing before it lets go of its port: then this is its
            // close, which the lifecycle follows; a frontend still saying
            // Initialised or Connected died.
            let peer = self.lc.refresh_peer(&mut self.ends);
            if !matches!(peer, Some(State::Initialised | State::Connected)) {
                self.pump(Some(Duration::ZERO))?;
                return Ok(0);
            }
        }
        let why = error_chain(&e);
        if matches!(e, driver::Error::Ring(_)) && !self.faults.admit(Instant::now()) {
            let (max, per) = (self.faults.max, self.faults.per.as_secs());
            let why = format!(
                "{why} (more than {max} protocol violations within {per} s: the device \
                 stays closed until the toolstack re-creates it)"
            );
            self.lc.feed(Event::PeerFault(why), &mut self.ends);
            self.lc.close(&mut self.ends);
        } else {
            self.lc.feed(Event::PeerFault(why), &mut self.ends);
        }
        self.pump(Some(Duration::ZERO))?;
        Ok(0)
    }

    /// Sets the fault budget: a device whose frontend breaks the ring
    /// protocol more than `max` times within `per` stays closed (by
    /// default 3 within 60 s; every violation within the budget closes the
    /// device until the frontend's reset).
    pub fn set_fault_budget(&mut self, max: usize, per: Duration) {
        self.faults = FaultBudget::new(max, per);
    }

    /// Serves until `stop` says so; `stop` is asked after each wake-up
    /// (requests, or a Xenstore event such as a state change), never on a
    /// timer.
    pub fn run(&mut self, mut stop: impl FnMut(&Self) -> bool) -> Result<(), Error>
    where
        E::Channel: AsFd,
    {
        while !stop(self) {
            self.turn(None)?;
        }
        Ok(())
    }

    /// Closes the device and removes the watch; everything mapped is
    /// unmapped.
    pub fn close(mut self) {
        self.lc.close(&mut self.ends);
        self.lc.stop();
    }

    /// The event channel's descriptor while connected.
    pub fn fd(&self) -> Option<BorrowedFd<'_>>
    where
        E::Channel: AsFd,
    {
        self.ends.server.channel().map(AsFd::as_fd)
    }

    /// The descriptor a loop sleeps on for this device's requests: the
    /// event channel's while connected, except while an event storm's
    /// notifications are deferred (then the loop wakes at
    /// [`deadline`](BackDevice::deadline)).
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>>
    where
        E::Channel: AsFd,
    {
        if self.storm.deferring(Instant::now()) {
            return None;
        }
        self.fd()
    }
}

impl<P: Protocol, B, S, G: Grants, E: Events> Drop for BackDevice<P, B, S, G, E> {
    fn drop(&mut self) {
        // The data path first, so nothing uses a region after its pages.
        let _ = self.ends.server.detach();
        self.ends.held = None;
    }
}
