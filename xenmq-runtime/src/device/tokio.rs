//! Device ends driven from tokio tasks (feature `tokio`).
//!
//! [`AsyncFront`] and [`AsyncBack`] wrap a [`FrontDevice`] and a
//! [`BackDevice`]. They sleep on the descriptors the blocking loops poll —
//! the event channel and the Xenstore watch descriptor — registered with
//! tokio's reactor ([`AsyncFd`]), and when one is ready they run the same
//! non-blocking steps as the blocking loops: serve a batch, spin and
//! re-arm the ring, take Xenstore's events. Blocking and async are one
//! implementation with two ways to sleep.
//!
//! Every future here is cancel safe: it holds no state of its own across
//! an await, so a task dropped mid-[`call`](AsyncFront::call) leaves the
//! device usable, and the request it submitted still completes (or fails
//! with `Disconnected`): its completion is handed out by
//! [`next`](AsyncFront::next), as an answer nobody waited for is in the
//! blocking API.
//!
//! ```no_run
//! # use xenmq_runtime::device::{sim, tokio::AsyncFront};
//! # async fn demo<P: xenmq::driver::Protocol, F: xenmq::driver::Frontend<Protocol = P>>(
//! #     driver: F, req: P::Request,
//! # ) -> Result<(), xenmq_runtime::device::Error> {
//! let mut front = AsyncFront::new(sim::SimFront::<P, F>::new(sim::env()?, 0, driver)?)?;
//! front.connect().await?;
//! let answer = front.call(req).await?;
//! # drop(answer);
//! # Ok(())
//! # }
//! ```

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::Poll;
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use xenmq::driver::{self, Backend, Completion, Frontend, Protocol, Tag};
use xenmq::evtchn::Events;
use xenmq::grant::Grants;
use xenmq::xenbus::State;

use super::{BackDevice, Error, FrontDevice};
use crate::xenstore::Pollable;

/// A device's descriptor registered with the reactor. It is a duplicate,
/// so the registration lives exactly as long as this value: the device's
/// own descriptor may close first (a disconnect drops the channel), and a
/// new descriptor may reuse its number.
struct Reg(AsyncFd<OwnedFd>);

impl Reg {
    /// Registers a duplicate of `fd`, for reading.
    // The one unsafe call of the adapter: tokio states "stays open and
    // keeps its number" as a precondition it cannot check for any `T`.
    #[allow(unsafe_code)]
    fn new(fd: BorrowedFd<'_>) -> io::Result<Reg> {
        let own = fd.try_clone_to_owned()?;
        // SAFETY: `register_with_interest` needs the descriptor that
        // `as_raw_fd` returns to be open, to keep referring to the same
        // open file, and to be returned by every call, for as long as the
        // `AsyncFd` owns it. `own` is an `OwnedFd` just made by `dup`: it
        // is open, nothing else in the process owns or closes its number,
        // and `OwnedFd::as_raw_fd` always returns that number. The
        // `AsyncFd` owns it until it is dropped (it is never taken out:
        // `Reg` exposes only shared access), and it closes it then, after
        // deregistering.
        let reg = unsafe { AsyncFd::register_with_interest(own, Interest::READABLE) };
        Ok(Reg(reg.map_err(io::Error::from)?))
    }
}

/// What woke a sleep.
#[derive(Default)]
struct Woke {
    store: bool,
}

/// The reactor's side of one device end: its Xenstore watch descriptor,
/// and its channel's for the connection it was registered for.
struct Regs {
    store: Reg,
    /// The channel, with the connection count and descriptor number it
    /// was registered for: a reconnection brings a new channel.
    chan: Option<((u64, RawFd), Reg)>,
    /// A timer for the device's deadline (a backend's storm deferral, its
    /// checks of the peer), made when first needed: the reactor's own
    /// timers need a runtime with time enabled.
    timer: Option<(xenmq_sys::Timer, Reg)>,
}

impl Regs {
    fn new(watch: BorrowedFd<'_>) -> io::Result<Regs> {
        Ok(Regs {
            store: Reg::new(watch)?,
            chan: None,
            timer: None,
        })
    }

    /// Arms the timer for `due` (`None`: disarms it).
    fn arm(&mut self, due: Option<std::time::Instant>) -> io::Result<()> {
        let Some(due) = due else {
            if let Some((t, _)) = &self.timer {
                t.set(None)?;
            }
            return Ok(());
        };
        if self.timer.is_none() {
            let t = xenmq_sys::Timer::new()?;
            let reg = Reg::new(t.as_fd())?;
            self.timer = Some((t, reg));
        }
        if let Some((t, _)) = &self.timer {
            t.set(Some(
                due.saturating_duration_since(std::time::Instant::now()),
            ))?;
        }
        Ok(())
    }

    /// Follows the device's channel: registers a new one, forgets one
    /// that is gone.
    fn follow(&mut self, connects: u64, chan: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let key = chan.map(|fd| (connects, fd.as_raw_fd()));
        if self.chan.as_ref().map(|(k, _)| *k) == key {
            return Ok(());
        }
        self.chan = None;
        if let (Some(key), Some(fd)) = (key, chan) {
            self.chan = Some((key, Reg::new(fd)?));
        }
        Ok(())
    }

    /// Sleeps until the watch descriptor, the channel or the timer is
    /// readable. The readiness is cleared before the caller acts on it:
    /// whatever arrives after the caller looked wakes the next sleep.
    async fn sleep(&self) -> io::Result<Woke> {
        if let Some((t, _)) = &self.timer {
            t.take()?;
        }
        poll_fn(|cx| {
            let mut woke = None;
            let chan = self.chan.as_ref().map(|(_, r)| r);
            let timer = self.timer.as_ref().map(|(_, r)| r);
            for (is_store, reg) in [(true, Some(&self.store)), (false, chan), (false, timer)] {
                let Some(reg) = reg else { continue };
                match reg.0.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        guard.clear_ready();
                        let w = woke.get_or_insert_with(Woke::default);
                        w.store |= is_store;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            match woke {
                Some(w) => Poll::Ready(Ok(w)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Whether Xenstore still has events queued after a bounded pump (its
    /// readiness was cleared when the sleep woke).
    fn store_pending(&self) -> io::Result<bool> {
        xenmq_sys::poll_in(self.store.0.get_ref().as_fd(), Some(Duration::ZERO))
    }
}

fn reactor(e: io::Error) -> Error {
    Error::Event(xenmq::evtchn::Error::Os(e.raw_os_error().unwrap_or(0)))
}

/// A [`FrontDevice`] driven from a tokio task: `call`, a stream of
/// completions, and the lifecycle's Xenstore events taken while waiting.
pub struct AsyncFront<P: Protocol, F, S, G: Grants, E: Events> {
    dev: FrontDevice<P, F, S, G, E>,
    regs: Regs,
}

impl<P, F, S, G, E> AsyncFront<P, F, S, G, E>
where
    P: Protocol,
    F: Frontend<Protocol = P>,
    S: Pollable,
    G: Grants,
    E: Events,
    E::Channel: AsFd,
{
    /// Drives `dev` from the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled, as tokio's `AsyncFd` does.
    pub fn new(dev: FrontDevice<P, F, S, G, E>) -> Result<Self, Error> {
        let regs = Regs::new(dev.watch_fd()).map_err(reactor)?;
        Ok(AsyncFront { dev, regs })
    }

    /// The device (state, driver, leases, `submit`, `poll`).
    pub fn device(&mut self) -> &mut FrontDevice<P, F, S, G, E> {
        &mut self.dev
    }

    /// The device back, for blocking use.
    pub fn into_inner(self) -> FrontDevice<P, F, S, G, E> {
        self.dev
    }

    /// Sleeps until the channel or Xenstore has something, then takes it.
    async fn sleep(&mut self) -> Result<(), Error> {
        self.regs
            .follow(self.dev.connects(), self.dev.fd())
            .map_err(reactor)?;
        let woke = self.regs.sleep().await.map_err(reactor)?;
        self.dev.wake()?;
        while woke.store && self.regs.store_pending().map_err(reactor)? {
            self.dev.pump(Some(Duration::ZERO))?;
        }
        Ok(())
    }

    /// Waits until the device is connected (wrap it in
    /// `tokio::time::timeout` to bound the wait).
    pub async fn connect(&mut self) -> Result<(), Error> {
        self.dev.pump(Some(Duration::ZERO))?;
        while !self.dev.is_connected() {
            if let Some(why) = self.dev.failure() {
                return Err(Error::Failed(why));
            }
            self.sleep().await?;
        }
        Ok(())
    }

    /// Submits a request (see [`FrontDevice::submit`]); its completion
    /// comes from [`next`](AsyncFront::next) or
    /// [`wait_for`](AsyncFront::wait_for).
    pub fn submit(&mut self, req: P::Request) -> Result<Tag, driver::Error> {
        self.dev.submit(req)
    }

    /// One round trip. Dropped before it returns, the request stays in
    /// flight and its completion comes from [`next`](AsyncFront::next).
    pub async fn call(&mut self, req: P::Request) -> Result<P::Response, Error> {
        let tag = self.dev.submit(req)?;
        Ok(self.wait_for(tag).await?.result?)
    }

    /// Waits for the completion of `tag` (others arriving meanwhile stay
    /// queued for [`next`](AsyncFront::next)).
    pub async fn wait_for(&mut self, tag: Tag) -> Result<Completion<P>, Error> {
        loop {
            if let Some(c) = self.dev.take(tag)? {
                return Ok(c);
            }
            if !self.dev.in_flight(tag) {
                return Err(driver::Error::UnknownTag(tag.id()).into());
            }
            if !self.dev.spin_check()? {
                self.sleep().await?;
            }
        }
    }

    /// The next completion, oldest first: the stream of answers to what
    /// was submitted. `None` when nothing is in flight.
    pub async fn next(&mut self) -> Option<Result<Completion<P>, Error>> {
        loop {
            match self.dev.poll() {
                Ok(Some(c)) => return Some(Ok(c)),
                Ok(None) => {}
                // A fatal error queued every request in flight as failed:
                // the next poll hands them out.
                Err(e) if e.is_fatal() && self.dev.client().in_flight() > 0 => continue,
                Err(e) => return Some(Err(e.into())),
            }
            if self.dev.client().in_flight() == 0 {
                return None;
            }
            match self.dev.spin_check() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) if e.is_fatal() => continue,
                Err(e) => return Some(Err(e.into())),
            }
            if let Err(e) = self.sleep().await {
                return Some(Err(e));
            }
        }
    }

    /// Closes the device: waits for the backend to follow (wrap it in
    /// `tokio::time::timeout` to bound the wait), then releases every
    /// grant and port as [`FrontDevice::close`] does.
    pub async fn close(mut self) -> Result<(), Error> {
        self.dev.begin_close();
        while !matches!(self.dev.state(), State::Closed) {
            self.sleep().await?;
        }
        self.dev.close(Duration::from_millis(100))
    }
}

/// A [`BackDevice`] served from a tokio task.
pub struct AsyncBack<P: Protocol, B, S, G: Grants, E: Events> {
    dev: BackDevice<P, B, S, G, E>,
    regs: Regs,
}

impl<P, B, S, G, E> AsyncBack<P, B, S, G, E>
where
    P: Protocol,
    B: Backend<Protocol = P>,
    S: Pollable,
    G: Grants,
    E: Events,
    E::Channel: AsFd,
{
    /// Serves `dev` from the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled, as tokio's `AsyncFd` does.
    pub fn new(dev: BackDevice<P, B, S, G, E>) -> Result<Self, Error> {
        let regs = Regs::new(dev.watch_fd()).map_err(reactor)?;
        Ok(AsyncBack { dev, regs })
    }

    /// The device.
    pub fn device(&mut self) -> &mut BackDevice<P, B, S, G, E> {
        &mut self.dev
    }

    /// The device back, for blocking use.
    pub fn into_inner(self) -> BackDevice<P, B, S, G, E> {
        self.dev
    }

    /// One turn, as [`BackDevice::turn`] with no timeout: serves a batch
    /// and advances the lifecycle; then, if nothing more is waiting,
    /// sleeps until the channel or Xenstore has something. While busy it
    /// yields to the runtime between batches. Returns the requests served.
    pub async fn turn(&mut self) -> Result<usize, Error> {
        let (served, idle) = self.dev.advance()?;
        if !idle {
            ::tokio::task::yield_now().await;
            return Ok(served);
        }
        // A channel whose notifications are deferred leaves the reactor
        // altogether: registered, each notification would still wake the
        // runtime's thread.
        self.regs
            .follow(self.dev.connects(), self.dev.poll_fd())
            .map_err(reactor)?;
        self.regs.arm(self.dev.deadline()).map_err(reactor)?;
        let woke = self.regs.sleep().await.map_err(reactor)?;
        self.dev.wake()?;
        while woke.store && self.regs.store_pending().map_err(reactor)? {
            self.dev.pump(Some(Duration::ZERO))?;
        }
        Ok(served)
    }

    /// Serves until `stop` says so; `stop` is asked after each wake-up,
    /// never on a timer.
    pub async fn run(
        &mut self,
        mut stop: impl FnMut(&BackDevice<P, B, S, G, E>) -> bool,
    ) -> Result<(), Error> {
        while !stop(&self.dev) {
            self.turn().await?;
        }
        Ok(())
    }
}
