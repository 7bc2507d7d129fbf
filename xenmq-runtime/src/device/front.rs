//! The frontend end of a device.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use xenmq::driver::{
    self, Client, Completion, FrontRingOf, Frontend, Lease, Pool, PoolKeys, Protocol, Tag,
};
use xenmq::evtchn::{Channel, Events};
use xenmq::grant::{Access, DomId, Grants, Pages, Shared};
use xenmq::ring::FrontSide;
use xenmq::xenbus::{self, Action, Config, Event, Features, Params, State};

use super::lifecycle::{setup_key, Lifecycle, Machine, Perform, StoreOps};
use super::{instance, Env, Error};
use crate::xenstore::Pollable;

/// What the frontend holds for one connection.
struct Held<P: Protocol, G: Grants, C> {
    // Kept for the ring's region (the compat::Front points into it).
    _ring_pages: G::Shared,
    pool: Option<G::Shared>,
    ring: Option<FrontRingOf<P>>,
    chan: Option<C>,
}

/// The frontend's platform side: grants, ports and the data path.
struct Ends<P: Protocol, F, G: Grants, E: Events> {
    driver: F,
    grants: G,
    events: E,
    peer: DomId,
    client: Client<P, E::Channel>,
    held: Option<Held<P, G, E::Channel>>,
    /// Set when the driver refused the backend: close the device.
    refused: Option<String>,
    connects: u64,
    lost: u64,
}

impl<P: Protocol, F: Frontend<Protocol = P>, G: Grants, E: Events> Perform for Ends<P, F, G, E> {
    fn perform(&mut self, action: Action, peer_dir: &str, store: &dyn StoreOps) -> Option<Event> {
        match action {
            Action::ShareRing { pages } => Some(match self.share(pages, store) {
                Ok((grefs, port)) => Event::RingShared { grefs, port },
                Err(e) => Event::RingFailed(e.to_string()),
            }),
            Action::Connect(conn) => {
                let cfg: Result<P::BackendConfig, _> = conn.peer.parse(peer_dir);
                let verdict = match cfg {
                    Ok(cfg) => self.driver.connect(&cfg).map_err(|r| r.0),
                    Err(e) => Err(e.to_string()),
                };
                let held = self.held.as_mut();
                match (verdict, held) {
                    (Ok(()), Some(h)) => match (h.ring.take(), h.chan.take()) {
                        (Some(ring), Some(chan)) => {
                            let pool = h.pool.as_ref().map(|p| Pool::new(p.region()));
                            self.client.attach(ring, chan, pool);
                            self.connects = self.connects.wrapping_add(1);
                        }
                        _ => self.refused = Some("the ring was not shared".into()),
                    },
                    (Ok(()), None) => self.refused = Some("the ring was not shared".into()),
                    (Err(why), _) => self.refused = Some(why),
                }
                None
            }
            Action::Disconnect => {
                self.detach();
                None
            }
            Action::ReleaseRing { .. } => {
                self.detach();
                // Dropping the pages ends access, or defers their release
                // while the backend still maps them (XSA-396).
                self.held = None;
                None
            }
            // The machine gives a frontend no other actions.
            _ => None,
        }
    }
}

impl<P: Protocol, F: Frontend<Protocol = P>, G: Grants, E: Events> Ends<P, F, G, E> {
    fn share(&mut self, pages: usize, store: &dyn StoreOps) -> Result<(Vec<u32>, u32), Error> {
        self.held = None;
        let ring_pages = self.grants.share(self.peer, pages, Access::ReadWrite)?;
        let ring = FrontRingOf::<P>::init(ring_pages.region())?;
        let pool = match P::POOL_PAGES {
            0 => None,
            n => Some(
                self.grants
                    .share(self.peer, n as usize, Access::ReadWrite)?,
            ),
        };
        if let Some(pool) = &pool {
            let mut pairs = Vec::new();
            PoolKeys {
                refs: pool.refs().to_vec(),
            }
            .write(&mut |k, v| pairs.push((k.to_string(), v)));
            for (k, v) in pairs {
                store.write_own(&k, &v)?;
            }
        }
        let chan = self.events.alloc_unbound(self.peer)?;
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

    /// Stops the data path; requests in flight fail with `Disconnected`.
    fn detach(&mut self) {
        if !self.client.is_connected() {
            return;
        }
        let (lost, chan) = self.client.detach();
        if let Some(h) = self.held.as_mut() {
            h.chan = chan;
        }
        self.lost = self.lost.wrapping_add(lost as u64);
        self.driver.disconnect(lost);
    }
}

/// The frontend of one device: its lifecycle and its [`Client`].
///
/// Requests go through [`call`](FrontDevice::call) or
/// [`submit`](FrontDevice::submit)/[`poll`](FrontDevice::poll)/[`wait`](FrontDevice::wait).
/// When the backend goes away, every request in flight completes with
/// [`driver::Error::Disconnected`]; [`connect`](FrontDevice::connect) waits for
/// the device to come back.
pub struct FrontDevice<P: Protocol, F, S, G: Grants, E: Events> {
    lc: Lifecycle<S>,
    ends: Ends<P, F, G, E>,
    /// Why the driver refused the backend, if it did.
    refusal: Option<String>,
}

impl<P, F, S, G, E> FrontDevice<P, F, S, G, E>
where
    P: Protocol,
    F: Frontend<Protocol = P>,
    S: Pollable,
    G: Grants,
    E: Events,
{
    /// The frontend of device `devid` of this protocol's type in this
    /// domain (`/local/domain/<self>/device/<type>/<devid>`), as created by
    /// the toolstack. Starts the handshake.
    pub fn new(env: Env<S, G, E>, devid: u32, driver: F) -> Result<Self, Error> {
        let own_dir = format!("/local/domain/{}/device/{}/{devid}", env.domid(), P::NAME);
        let peer_dir = setup_key(&env.store, &own_dir, "backend")?;
        let backend_id = setup_key(&env.store, &own_dir, "backend-id")?;
        let peer: DomId = backend_id.parse().map_err(|_| Error::Setup {
            path: format!("{own_dir}/backend-id"),
            what: "not a domain id",
        })?;
        let mut params = Params::new(&own_dir, &peer_dir, P::identity());
        params.max_ring_page_order = P::RING_PAGE_ORDER;
        params.features = Features::new::<P::FrontendConfig, P::BackendConfig>(&driver.config());
        let machine = xenbus::FrontMachine::new(params, instance())?;
        let span = super::lifecycle::device_span(P::NAME, devid, env.domid(), peer, "frontend");
        let mut lc =
            Lifecycle::new(env.store, own_dir, peer_dir, Machine::Front(machine)).in_span(span);
        let mut ends = Ends {
            driver,
            grants: env.grants,
            events: env.events,
            peer,
            client: Client::new(),
            held: None,
            refused: None,
            connects: 0,
            lost: 0,
        };
        lc.start(&mut ends)?;
        let mut front = FrontDevice {
            lc,
            ends,
            refusal: None,
        };
        front.check_refused();
        Ok(front)
    }

    fn check_refused(&mut self) {
        if let Some(why) = self.ends.refused.take() {
            self.refusal = Some(why.clone());
            self.lc.refuse(&why, &mut self.ends);
        }
    }

    /// This end's lifecycle state.
    pub fn state(&self) -> State {
        self.lc.machine().state()
    }

    /// The backend's last seen state.
    pub fn peer_state(&self) -> Option<State> {
        self.lc.machine().peer_state()
    }

    /// The last error the lifecycle reported (also written to `error`).
    pub fn last_error(&self) -> Option<&xenbus::Error> {
        self.lc.last_error.as_ref()
    }

    /// This end's Xenstore directory.
    pub fn dir(&self) -> &str {
        &self.lc.own_dir
    }

    /// The driver.
    pub fn driver(&mut self) -> &mut F {
        &mut self.ends.driver
    }

    /// The data path (for what the methods here do not cover).
    pub fn client(&mut self) -> &mut Client<P, E::Channel> {
        &mut self.ends.client
    }

    /// Whether the data path is up.
    pub fn is_connected(&self) -> bool {
        self.ends.client.is_connected()
    }

    /// How many times the device connected.
    pub fn connects(&self) -> u64 {
        self.ends.connects
    }

    /// Requests failed with `Disconnected` so far.
    pub fn lost(&self) -> u64 {
        self.ends.lost
    }

    /// Looks at Xenstore for up to `timeout` and advances the lifecycle.
    pub fn pump(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.lc.pump(timeout, &mut self.ends)?;
        self.check_refused();
        Ok(())
    }

    /// Waits until the device is connected.
    pub fn connect(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while !self.is_connected() {
            if let Some(why) = self.failure() {
                return Err(Error::Failed(why));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("connect"));
            }
            // Closed because the backend closed (no error of ours), and the
            // backend has closed too: nobody moves unless the frontend
            // starts over, which is the standard reset's last step.
            if self.state() == State::Closed && self.peer_state() == Some(State::Closed) {
                self.lc.feed(Event::Start, &mut self.ends);
                if self.state() != State::Closed {
                    continue;
                }
            }
            self.pump(Some(left))?;
        }
        Ok(())
    }

    /// Why the device closed, if it closed on an error.
    pub(crate) fn failure(&self) -> Option<String> {
        if !matches!(self.state(), State::Closing | State::Closed) {
            return None;
        }
        if let Some(why) = &self.refusal {
            return Some(why.clone());
        }
        self.lc.last_error.as_ref().map(|e| e.to_string())
    }

    /// A fatal data-path error means the backend is gone: fail what is in
    /// flight now, and let the lifecycle find out the rest.
    fn check<T>(&mut self, r: Result<T, driver::Error>) -> Result<T, driver::Error> {
        if let Err(e) = &r {
            if e.is_fatal() {
                self.ends.detach();
            }
            if let driver::Error::Ring(ring) = e {
                // A backend that corrupts the ring: say why, and close the
                // device for good.
                super::lifecycle::trace_ring_fault(&self.lc.span, "frontend", e);
                let why = format!("{e}: {ring}");
                let _ = self.lc.store.write(
                    xenmq::xenstore::Tx::NONE,
                    &format!("{}/error", self.lc.own_dir),
                    why.as_bytes(),
                );
                self.refusal.get_or_insert(why);
                self.lc.close(&mut self.ends);
            }
        }
        r
    }

    /// Borrows a buffer slot of the pool.
    pub fn lease(&mut self) -> Result<Lease, driver::Error> {
        self.ends.client.lease()
    }

    /// Gives a buffer slot back.
    pub fn release(&mut self, lease: Lease) {
        self.ends.client.release(lease)
    }

    /// Writes into a leased slot.
    pub fn write(&self, lease: &Lease, offset: usize, data: &[u8]) -> Result<(), driver::Error> {
        self.ends.client.write(lease, offset, data)
    }

    /// Reads from a leased slot.
    pub fn read(&self, lease: &Lease, offset: usize, out: &mut [u8]) -> Result<(), driver::Error> {
        self.ends.client.read(lease, offset, out)
    }

    /// Submits a request (see [`Client::submit`]).
    pub fn submit(&mut self, req: P::Request) -> Result<Tag, driver::Error> {
        let r = self.ends.client.submit(req);
        self.check(r)
    }

    /// Submits a request with a buffer slot (see [`Client::submit_with`]).
    pub fn submit_with(&mut self, req: P::Request, lease: Lease) -> Result<Tag, driver::Error> {
        let r = self.ends.client.submit_with(req, lease);
        self.check(r)
    }

    /// The next completion, if one is ready.
    pub fn poll(&mut self) -> Result<Option<Completion<P>>, driver::Error> {
        let r = self.ends.client.poll();
        self.check(r)
    }

    /// The next completion, waiting up to `timeout`.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Completion<P>, driver::Error> {
        let r = self.ends.client.wait(timeout);
        match self.check(r) {
            // The disconnect queued the failures: hand them out.
            Err(e) if e.is_fatal() => match self.ends.client.poll() {
                Ok(Some(c)) => Ok(c),
                _ => Err(e),
            },
            other => other,
        }
    }

    /// One round trip.
    pub fn call(
        &mut self,
        req: P::Request,
        timeout: Option<Duration>,
    ) -> Result<P::Response, driver::Error> {
        let tag = self.submit(req)?;
        let r = self.ends.client.wait_for(tag, timeout);
        match self.check(r) {
            Ok(c) => c.result,
            Err(e) if e.is_fatal() => match self.ends.client.take(tag) {
                Ok(Some(c)) => c.result,
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Closes the device and waits (up to `timeout`) for the backend to
    /// follow; every grant and port is released.
    pub fn close(mut self, timeout: Duration) -> Result<(), Error> {
        self.lc.close(&mut self.ends);
        let deadline = Instant::now() + timeout;
        while !matches!(self.state(), State::Closed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.pump(Some(left))?;
        }
        self.lc.stop();
        // Pages the backend still mapped when we let go were deferred
        // (XSA-396); it unmaps on its way to Closed: take them back now.
        self.ends.client.detach();
        self.ends.held = None;
        while self.ends.grants.deferred() > 0 && Instant::now() < deadline {
            if self.ends.grants.reclaim() == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    /// The event channel's descriptor while connected, to wait on many
    /// devices in one thread.
    pub fn fd(&self) -> Option<BorrowedFd<'_>>
    where
        E::Channel: AsFd,
    {
        self.ends.client.channel().map(AsFd::as_fd)
    }

    /// The Xenstore connection's watch descriptor (readable while watch
    /// events wait), to sleep on it beside [`fd`](FrontDevice::fd).
    pub fn watch_fd(&self) -> BorrowedFd<'_> {
        self.lc.store.watch_fd()
    }

    /// The completion of `tag` if it is ready, without blocking; a fatal
    /// error fails what is in flight (each request then completes with
    /// `Disconnected`), as [`call`](FrontDevice::call) does.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn take(&mut self, tag: Tag) -> Result<Option<Completion<P>>, driver::Error> {
        let r = self.ends.client.take(tag);
        match self.check(r) {
            Err(e) if e.is_fatal() => match self.ends.client.take(tag) {
                Ok(Some(c)) => Ok(Some(c)),
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Asks the lifecycle to close (what [`close`](FrontDevice::close)
    /// starts with); the backend's answer comes through Xenstore.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn begin_close(&mut self) {
        self.lc.close(&mut self.ends);
    }

    /// Whether `tag` is in flight (submitted, not yet taken).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn in_flight(&self, tag: Tag) -> bool {
        self.ends.client.is_in_flight(tag)
    }

    /// Before sleeping: spins, re-arms the ring and checks once more;
    /// `true` if responses are waiting (do not sleep). Not connected:
    /// `false` (only Xenstore can bring something).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn spin_check(&mut self) -> Result<bool, driver::Error> {
        if !self.ends.client.is_connected() {
            return Ok(false);
        }
        let r = self.ends.client.spin_check();
        self.check(r)
    }

    /// After a sleep ended: consumes the channel's notification and takes
    /// what Xenstore has.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wake(&mut self) -> Result<(), Error> {
        let polled = self.ends.client.channel().map(Channel::poll);
        if let Some(r) = polled {
            // A fatal error (the backend's port closed) has detached the
            // data path and failed what was in flight: that is the news,
            // handed out by the next poll; the lifecycle learns the rest.
            match self.check(r.map_err(driver::Error::from)) {
                Err(e) if !e.is_fatal() => return Err(e.into()),
                _ => {}
            }
        }
        self.pump(Some(Duration::ZERO))
    }
}

impl<P: Protocol, F, S, G: Grants, E: Events> Drop for FrontDevice<P, F, S, G, E> {
    fn drop(&mut self) {
        // The client's channel and the pages drop with the fields; the
        // data path first, so nothing uses a region after its pages.
        let _ = self.ends.client.detach();
        self.ends.held = None;
    }
}
