//! What both ends share: the lifecycle machine, its Xenstore actions and
//! the watch on the peer's state.

use std::collections::VecDeque;
use std::time::Duration;

use xenmq::xenbus::{self, Action, Event, Output, State};
use xenmq::xenstore::{Errno, Store, Tx, WatchEvent};

use super::Error;

/// Either machine.
pub(crate) enum Machine {
    Front(xenbus::FrontMachine),
    Back(xenbus::BackMachine),
}

impl Machine {
    fn handle(&mut self, ev: Event) -> Output {
        match self {
            Machine::Front(m) => m.handle(ev),
            Machine::Back(m) => m.handle(ev),
        }
    }

    pub(crate) fn state(&self) -> State {
        match self {
            Machine::Front(m) => m.state(),
            Machine::Back(m) => m.state(),
        }
    }

    pub(crate) fn peer_state(&self) -> Option<State> {
        match self {
            Machine::Front(m) => m.peer_state(),
            Machine::Back(m) => m.peer_state(),
        }
    }
}

/// The lifecycle of one device end over one Xenstore connection.
pub(crate) struct Lifecycle<S> {
    pub store: S,
    pub own_dir: String,
    pub peer_dir: String,
    token: String,
    machine: Machine,
    /// The last error the machine reported (also in the `error` node).
    pub last_error: Option<xenbus::Error>,
    queue: VecDeque<Event>,
    /// The device's span: every lifecycle event is recorded inside it.
    pub span: tracing::Span,
}

/// What an end does with the actions that are not Xenstore's.
pub(crate) trait Perform {
    /// Performs a ring action; returns the event answering it, if any.
    fn perform(&mut self, action: Action, peer_dir: &str, store: &dyn StoreOps) -> Option<Event>;
}

/// The Xenstore operations an end's `perform` may need, object-safe.
pub(crate) trait StoreOps {
    fn write_own(&self, key: &str, value: &str) -> Result<(), xenmq::xenstore::Error>;
}

struct Own<'a, S> {
    store: &'a S,
    dir: &'a str,
}

impl<S: Store> StoreOps for Own<'_, S> {
    fn write_own(&self, key: &str, value: &str) -> Result<(), xenmq::xenstore::Error> {
        self.store
            .write(Tx::NONE, &format!("{}/{key}", self.dir), value.as_bytes())
    }
}

impl<S: Store> Lifecycle<S> {
    pub(crate) fn new(store: S, own_dir: String, peer_dir: String, machine: Machine) -> Self {
        let token = format!("xenmq:{own_dir}");
        Lifecycle {
            store,
            own_dir,
            peer_dir,
            token,
            machine,
            last_error: None,
            queue: VecDeque::new(),
            span: tracing::Span::none(),
        }
    }

    /// Records this end's events in `span` (see [`device_span`]).
    pub(crate) fn in_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Sets the watch on the peer's state and starts the machine.
    pub(crate) fn start(&mut self, end: &mut dyn Perform) -> Result<(), Error> {
        self.span.in_scope(
            || tracing::info!(dir = %self.own_dir, peer_dir = %self.peer_dir, "device started"),
        );
        self.store
            .watch(&format!("{}/state", self.peer_dir), &self.token)?;
        self.feed(Event::Start, end);
        Ok(())
    }

    /// Asks the machine to close.
    pub(crate) fn close(&mut self, end: &mut dyn Perform) {
        self.feed(Event::Close, end);
    }

    /// Says in this end's `error` node why it refuses the device (a driver
    /// hook said no, or the peer corrupted the ring), then closes it.
    pub(crate) fn refuse(&mut self, why: &str, end: &mut dyn Perform) {
        self.span
            .in_scope(|| tracing::warn!(reason = why, "refused: closing the device"));
        self.write_error(why);
        self.close(end);
    }

    /// Writes this end's `error` node. A failure leaves only the message
    /// unwritten: the state the peer watches still says what happened.
    fn write_error(&self, msg: &str) {
        let _ = self
            .store
            .write(Tx::NONE, &self.path("error"), msg.as_bytes());
    }

    /// Removes the watch.
    pub(crate) fn stop(&mut self) {
        self.span.in_scope(|| tracing::info!("device stopped"));
        let _ = self
            .store
            .unwatch(&format!("{}/state", self.peer_dir), &self.token);
    }

    /// Waits up to `timeout` for watch events and feeds the peer's state
    /// to the machine. Returns whether any event came.
    pub(crate) fn pump(
        &mut self,
        timeout: Option<Duration>,
        end: &mut dyn Perform,
    ) -> Result<bool, Error> {
        let mut any = false;
        let mut wait = timeout;
        // At most a bounded number per call: the peer cannot keep us here.
        for _ in 0..64 {
            let Some(ev) = self.store.next_event(wait)? else {
                break;
            };
            wait = Some(Duration::ZERO);
            any |= self.watch_event(&ev, end);
        }
        Ok(any)
    }

    /// Reads the peer's state now and feeds it to the machine, as a watch
    /// event would; returns what was read (`None`: absent or unreadable).
    pub(crate) fn refresh_peer(&mut self, end: &mut dyn Perform) -> Option<State> {
        let value = self
            .store
            .read_string(Tx::NONE, &format!("{}/state", self.peer_dir))
            .ok();
        let state = value.as_deref().and_then(|v| State::parse(v).ok());
        self.feed(Event::PeerStateValue(value), end);
        state
    }

    /// Handles one watch event; `true` if it was ours.
    pub(crate) fn watch_event(&mut self, ev: &WatchEvent, end: &mut dyn Perform) -> bool {
        if ev.token != self.token {
            return false;
        }
        // Unreadable (gone, or no longer ours to read) reads as absent.
        let value = self
            .store
            .read_string(Tx::NONE, &format!("{}/state", self.peer_dir))
            .ok();
        self.feed(Event::PeerStateValue(value), end);
        true
    }

    /// Feeds an event and performs the actions, feeding their answers back
    /// until the machine asks for nothing more.
    pub(crate) fn feed(&mut self, ev: Event, end: &mut dyn Perform) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.queue.push_back(ev);
        while let Some(ev) = self.queue.pop_front() {
            let out = self.machine.handle(ev);
            if let Some(e) = out.error {
                self.last_error = Some(e);
            }
            for a in out.actions {
                if let Some(next) = self.perform(a, end) {
                    self.queue.push_back(next);
                }
            }
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.own_dir)
    }

    fn perform(&mut self, a: Action, end: &mut dyn Perform) -> Option<Event> {
        if matches!(a, Action::Connect(_)) {
            // Connected: an `error` left by an earlier, refused incarnation
            // no longer describes the device (`xenmq status` would show it).
            // Missing (the usual case) or unremovable changes nothing here.
            let _ = self.store.rm(Tx::NONE, &self.path("error"));
        }
        match a {
            Action::Commit { writes, state } => Some(self.commit(&writes, state)),
            Action::SwitchState(s) => {
                // A failure shows as the peer not following; the machine
                // learns of it from the peer's state, as on Xen.
                let _ = self
                    .store
                    .write(Tx::NONE, &self.path("state"), s.as_str().as_bytes());
                None
            }
            Action::ReadPeer { keys } => {
                let dir = &self.peer_dir;
                let store = &self.store;
                let k = xenbus::Keys::read_with(&keys, |key| {
                    store.read_string(Tx::NONE, &format!("{dir}/{key}")).ok()
                });
                Some(Event::KeysRead(k))
            }
            Action::WriteError(msg) => {
                self.write_error(&msg);
                None
            }
            other => {
                let ops = Own {
                    store: &self.store,
                    dir: &self.own_dir,
                };
                let before = trace_ring_action(&other);
                let answer = end.perform(other, &self.peer_dir, &ops);
                trace_ring_answer(before, answer.as_ref());
                answer
            }
        }
    }

    fn commit(&self, writes: &[(String, String)], state: Option<State>) -> Event {
        let result = (|| {
            let tx = self.store.transaction_start()?;
            let body = (|| {
                for (k, v) in writes {
                    self.store.write(tx, &self.path(k), v.as_bytes())?;
                }
                if let Some(s) = state {
                    self.store
                        .write(tx, &self.path("state"), s.as_str().as_bytes())?;
                }
                Ok(())
            })();
            if let Err(e) = body {
                let _ = self.store.transaction_end(tx, false);
                return Err(e);
            }
            self.store.transaction_end(tx, true)
        })();
        match result {
            Ok(()) => Event::Committed,
            Err(e) => Event::CommitFailed {
                again: e.errno() == Some(Errno::EAGAIN),
            },
        }
    }
}

/// The span of one device end: its type, id, own and peer domain, role.
pub(crate) fn device_span(
    ty: &str,
    devid: u32,
    domid: u16,
    peer: u16,
    role: &str,
) -> tracing::Span {
    // WARN, so that a warning (a refusal, a hostile peer) carries the
    // device it concerns whatever the filter.
    tracing::warn_span!("device", "type" = ty, devid, domid, peer, role)
}

/// Records a ring action before the end performs it; returns what its
/// answer is about.
fn trace_ring_action(a: &Action) -> &'static str {
    match a {
        Action::ShareRing { pages } => {
            tracing::debug!(pages, "granting the ring and allocating an event channel");
            "share"
        }
        Action::MapRing { ring, port } => {
            tracing::debug!(grefs = ?ring.refs(), port, "mapping the ring and binding its event channel");
            "map"
        }
        Action::ReleaseRing { grefs, port } => {
            tracing::debug!(
                ?grefs,
                port,
                "ending access to the ring's grants and closing the event channel"
            );
            "release"
        }
        Action::UnmapRing { grefs, port } => {
            tracing::debug!(
                ?grefs,
                port,
                "unmapping the ring and unbinding its event channel"
            );
            "unmap"
        }
        Action::Connect(c) => {
            tracing::debug!(grefs = ?c.ring.refs(), port = c.port, "data path attached");
            "connect"
        }
        Action::Disconnect => {
            tracing::debug!("data path detached");
            "disconnect"
        }
        _ => "other",
    }
}

fn trace_ring_answer(what: &'static str, answer: Option<&Event>) {
    match answer {
        Some(Event::RingShared { grefs, port }) => {
            tracing::debug!(?grefs, port, "ring granted, event channel allocated");
        }
        Some(Event::RingMapped) => tracing::debug!("ring mapped, event channel bound"),
        Some(Event::RingFailed(why)) => {
            tracing::warn!(action = what, reason = %why, "ring set-up failed")
        }
        _ => {}
    }
}

/// Records that the peer broke the ring's rules and the device closes for
/// good: which index, which rule.
pub(crate) fn trace_ring_fault(span: &tracing::Span, role: &str, e: &xenmq::driver::Error) {
    let _entered = span.enter();
    match e {
        xenmq::driver::Error::Ring(xenmq::ring::Error::PeerOverflow { prod, cons, max }) => {
            let (index, rule) = match role {
                "backend" => (
                    "req_prod",
                    "at most the ring's free room past req_cons (RING_REQUEST_PROD_OVERFLOW)",
                ),
                _ => ("rsp_prod", "no more responses than requests pushed"),
            };
            tracing::warn!(
                index,
                prod,
                cons,
                max,
                rule,
                "hostile peer: closing the device"
            );
        }
        other => tracing::warn!(error = %other, "ring failed: closing the device"),
    }
}

/// Reads a key the toolstack wrote.
pub(crate) fn setup_key<S: Store>(store: &S, dir: &str, key: &str) -> Result<String, Error> {
    let path = format!("{dir}/{key}");
    match store.read_string(Tx::NONE, &path) {
        Ok(v) if !v.is_empty() && v.len() <= 256 => Ok(v),
        Ok(_) => Err(Error::Setup {
            path,
            what: "empty or too long",
        }),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Err(Error::Setup {
            path,
            what: "missing (was the device created by the toolstack?)",
        }),
        Err(e) => Err(e.into()),
    }
}
