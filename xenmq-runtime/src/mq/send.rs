//! A queue's sending end: one ring per receiver, granted to it alone.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use xenmq::driver::Spin;
use xenmq::evtchn::{self, Channel, Events};
use xenmq::grant::{Access, DomId, Grants, Pages, Shared};
use xenmq::mq::{Ack, Credit, Link, Mode, Role};
use xenmq::ring::native::Front;
use xenmq::wire::Message;
use xenmq::xenstore::{self, Tx};

use super::{deadline, left, read_opt, Base, Error};
use crate::device::Env;
use crate::xenstore::Pollable;

/// The watch token for the receivers' nodes.
const TOKEN: &str = "xenmq-mq-receivers";

/// How many messages between two looks at Xenstore for new receivers.
const LOOK_EVERY: u32 = 4096;

/// One receiver's channel.
struct Out<M: Message, G: Grants, C> {
    // Declared before `pages`: the ring points into them.
    ring: Front<M, Ack>,
    chan: C,
    credit: Credit,
    /// Messages produced and not yet published.
    queued: bool,
    receiver: DomId,
    _pages: G::Shared,
}

/// The sending end of a queue of messages `M`.
///
/// [`send`](Sender::send) blocks while the quota for a receiver is used
/// up (or, in [`Mode::FanOut`], for any receiver), or while no receiver is
/// connected; [`try_send`](Sender::try_send) fails then with
/// [`Full`](xenmq::mq::Error::Full) or
/// [`NoReceiver`](xenmq::mq::Error::NoReceiver). A message is never
/// dropped: it is either in a receiver's ring or the call failed.
pub struct Sender<M: Message, S: xenmq::xenstore::Store, G: Grants, E: Events> {
    base: Base<S>,
    grants: G,
    events: E,
    outs: Vec<Out<M, G, E::Channel>>,
    /// The receiver generations this sender has made a channel for (or
    /// refused): never again.
    seen: BTreeMap<DomId, u64>,
    next: usize,
    since_look: u32,
    spin: Spin,
    _msg: PhantomData<M>,
}

impl<M, S, G, E> Sender<M, S, G, E>
where
    M: Message,
    S: Pollable,
    G: Grants,
    E: Events<Channel: AsFd>,
{
    /// Opens queue `name` as a sender; connects to every receiver that has
    /// it open, and later to those that open it.
    pub fn open(env: Env<S, G, E>, name: &str) -> Result<Self, Error> {
        let spec = Base::<S>::open::<M, G, E>(&env, name, Role::Sender)?;
        let domid = env.grants.domid();
        let node = xenmq::mq::member_path(name, Role::Sender, domid);
        // Channels of an earlier incarnation go; writing here is what the
        // store allows only this domain.
        let store = env.store;
        let stale = store
            .directory(Tx::NONE, &node)
            .map_err(|e| super::refusal(name, domid, "publish as a sender", e))?;
        for child in stale.iter().filter(|c| c.parse::<DomId>().is_ok()) {
            store
                .rm(Tx::NONE, &format!("{node}/{child}"))
                .map_err(|e| super::refusal(name, domid, "publish as a sender", e))?;
        }
        store
            .write(Tx::NONE, &format!("{node}/sent"), b"0")
            .map_err(|e| super::refusal(name, domid, "publish as a sender", e))?;
        let receivers = format!("{}/{}", xenmq::mq::path(name), Role::Receiver.dir());
        store.watch(&receivers, TOKEN)?;
        let mut tx = Sender {
            base: Base {
                spec,
                domid,
                store,
                node,
                count: 0,
                published: 0,
                removed: false,
            },
            grants: env.grants,
            events: env.events,
            outs: Vec::new(),
            seen: BTreeMap::new(),
            next: 0,
            since_look: 0,
            spin: Spin::default(),
            _msg: PhantomData,
        };
        tx.scan()?;
        Ok(tx)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.base.name()
    }

    /// The receivers this sender has a channel to.
    pub fn receivers(&self) -> Vec<DomId> {
        self.outs.iter().map(|o| o.receiver).collect()
    }

    /// Messages sent.
    pub fn sent(&self) -> u64 {
        self.base.count
    }

    /// Looks for receivers that opened the queue now. Sending looks on its
    /// own every few thousand messages and whenever it has to wait; a
    /// receiver that opened meanwhile starts with the messages sent after
    /// the sender saw it.
    pub fn refresh(&mut self) -> Result<(), Error> {
        while self.base.store.next_event(Some(Duration::ZERO))?.is_some() {}
        self.since_look = 0;
        self.scan()
    }

    /// Looks for receivers that opened the queue (and sees the queue
    /// removed).
    fn scan(&mut self) -> Result<(), Error> {
        let dir = xenmq::mq::path(self.base.name());
        if !self.base.store.exists(Tx::NONE, &dir)? {
            self.base.removed = true;
            return Ok(());
        }
        let receivers = self.base.spec.receivers.clone();
        for r in receivers {
            let node = xenmq::mq::member_path(self.base.name(), Role::Receiver, r);
            // A receiver's node this sender may not read (its owner can
            // change its permissions) is that receiver's loss alone.
            let generation =
                match read_opt(&self.base.store, Tx::NONE, &format!("{node}/generation")) {
                    Ok(g) => g,
                    Err(e @ (xenstore::Error::Closed | xenstore::Error::Transport(_))) => {
                        return Err(e.into())
                    }
                    Err(_) => continue,
                };
            // A malformed generation is a receiver that cannot be served:
            // skipped, not trusted.
            let Some(generation) = xenmq::mq::parse_generation(generation.as_deref()) else {
                continue;
            };
            if self.seen.get(&r) == Some(&generation) {
                continue;
            }
            self.seen.insert(r, generation);
            // A receiver that opened again replaces its earlier channel.
            self.outs.retain(|o| o.receiver != r);
            self.connect(r, generation)?;
        }
        Ok(())
    }

    fn connect(&mut self, receiver: DomId, generation: u64) -> Result<(), Error> {
        let pages = self.base.spec.ring_pages().unwrap_or(1);
        let shared = self.grants.share(receiver, pages, Access::ReadWrite)?;
        let ring = Front::<M, Ack>::init(shared.region())?;
        let chan = self.events.alloc_unbound(receiver)?;
        let link = Link {
            refs: shared.refs().to_vec(),
            port: chan.port(),
            generation,
        };
        let dir = xenmq::mq::link_path(self.base.name(), self.base.domid, receiver);
        let store = &self.base.store;
        xenstore::transaction(store, |tx| {
            for (k, v) in link.to_nodes() {
                store.write(tx, &format!("{dir}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })?;
        self.outs.push(Out {
            ring,
            chan,
            credit: Credit::new(self.base.spec.quota),
            queued: false,
            receiver,
            _pages: shared,
        });
        Ok(())
    }

    /// Takes the store's watch events; rescans if any came.
    fn look(&mut self) -> Result<(), Error> {
        self.since_look = 0;
        let mut any = false;
        while let Some(_ev) = self.base.store.next_event(Some(Duration::ZERO))? {
            any = true;
        }
        if any {
            self.scan()?;
        }
        Ok(())
    }

    /// Takes the acknowledgements of channel `i`; `false` if the channel
    /// broke (the receiver answered what was never sent, or its ring is
    /// faulted) and was dropped.
    fn reap(&mut self, i: usize) -> bool {
        let Some(out) = self.outs.get_mut(i) else {
            return false;
        };
        loop {
            match out.ring.consume_response() {
                Ok(Some(_)) => {
                    if !out.credit.give() {
                        self.drop_out(i);
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(_) => {
                    self.drop_out(i);
                    return false;
                }
            }
        }
    }

    fn drop_out(&mut self, i: usize) {
        if i < self.outs.len() {
            let out = self.outs.remove(i);
            let dir = xenmq::mq::link_path(self.base.name(), self.base.domid, out.receiver);
            let _ = self.base.store.rm(Tx::NONE, &dir);
            // Dropping the pages ends access, or defers it while the
            // receiver still maps them.
            drop(out);
            self.grants.reclaim();
        }
    }

    /// Writes `msg` into channel `i`'s ring (published by `flush`).
    fn put(&mut self, i: usize, msg: &M) -> Result<(), Error> {
        let Some(out) = self.outs.get_mut(i) else {
            return Ok(());
        };
        match out.ring.produce_request(msg) {
            Ok(()) => {
                out.credit.take();
                out.queued = true;
                Ok(())
            }
            Err(e) => {
                self.drop_out(i);
                Err(e.into())
            }
        }
    }

    /// Publishes the messages [`queue`](Sender::queue)d, one index store
    /// per receiver, and notifies the receivers that sleep.
    pub fn flush(&mut self) -> Result<(), Error> {
        let mut i = 0;
        while i < self.outs.len() {
            let Some(out) = self.outs.get_mut(i) else {
                break;
            };
            if !std::mem::take(&mut out.queued) {
                i += 1;
                continue;
            }
            match out.ring.push_requests() {
                Ok(true) => {
                    if let Err(evtchn::Error::PeerClosed) = out.chan.notify() {
                        // The receiver is gone: what it did not take is
                        // lost with it, as its own choice to leave.
                        self.drop_out(i);
                        continue;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    self.drop_out(i);
                    return Err(e.into());
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Whether channel `i` has room, after taking its acknowledgements.
    fn room(&mut self, i: usize) -> bool {
        match self.outs.get(i) {
            Some(o) if !o.credit.is_full() => true,
            Some(_) => self.reap(i) && self.outs.get(i).is_some_and(|o| !o.credit.is_full()),
            None => false,
        }
    }

    /// Sends `msg` if there is room now: to every receiver
    /// ([`Mode::FanOut`]) or to the next one with room ([`Mode::Compete`]).
    pub fn try_send(&mut self, msg: &M) -> Result<(), Error> {
        let queued = self.queue(msg);
        // Published even when this one found no room: what was queued
        // before must reach the receivers that are to make room.
        self.flush()?;
        queued
    }

    /// As [`try_send`](Sender::try_send), without publishing: the message
    /// goes out with the next [`flush`](Sender::flush) (or send), so that a
    /// batch costs one index store and at most one notification per
    /// receiver.
    pub fn queue(&mut self, msg: &M) -> Result<(), Error> {
        self.since_look = self.since_look.wrapping_add(1);
        if self.since_look >= LOOK_EVERY || self.outs.is_empty() {
            self.look()?;
        }
        if self.base.removed {
            return Err(self.base.err(|name| xenmq::mq::Error::Removed { name }));
        }
        if self.outs.is_empty() {
            return Err(self.base.err(|name| xenmq::mq::Error::NoReceiver { name }));
        }
        let quota = self.base.spec.quota;
        match self.base.spec.mode {
            Mode::FanOut => {
                let mut i = 0;
                while i < self.outs.len() {
                    let before = self.outs.len();
                    if !self.room(i) {
                        if self.outs.len() == before {
                            return Err(self
                                .base
                                .err(|name| xenmq::mq::Error::Full { name, quota }));
                        }
                        continue; // dropped: look at the one now at i
                    }
                    i += 1;
                }
                if self.outs.is_empty() {
                    return Err(self.base.err(|name| xenmq::mq::Error::NoReceiver { name }));
                }
                for i in (0..self.outs.len()).rev() {
                    self.put(i, msg)?;
                }
            }
            Mode::Compete => {
                let n = self.outs.len();
                let start = self.next % n.max(1);
                let found = (0..n).map(|k| (start + k) % n).find(|&i| {
                    // A channel dropped while looking shifts the others;
                    // the next call looks again.
                    self.room(i)
                });
                match found {
                    Some(i) if i < self.outs.len() => {
                        self.put(i, msg)?;
                        self.next = i + 1;
                    }
                    _ if self.outs.is_empty() => {
                        return Err(self.base.err(|name| xenmq::mq::Error::NoReceiver { name }))
                    }
                    _ => return Err(self.base.err(|name| xenmq::mq::Error::Full { name, quota })),
                }
            }
        }
        self.base.count += 1;
        self.base.publish_count("sent", false);
        Ok(())
    }

    /// Publishes what is queued, then waits until every receiver took
    /// every message sent to it (at most `timeout`; `None`: for ever). A
    /// sender that closes without it may leave messages that a receiver
    /// which had not mapped its channel yet never sees.
    pub fn sync(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.flush()?;
        let until = deadline(timeout);
        loop {
            let mut i = 0;
            while i < self.outs.len() {
                if self.reap(i) {
                    i += 1;
                }
            }
            if self.outs.iter().all(|o| o.credit.in_flight() == 0) {
                return Ok(());
            }
            if left(until) == Some(Duration::ZERO) {
                return Err(self.base.err(|name| xenmq::mq::Error::Timeout { name }));
            }
            self.wait_any(left(until))?;
        }
    }

    /// Sends `msg`, waiting while there is no room or no receiver.
    pub fn send(&mut self, msg: &M) -> Result<(), Error> {
        self.send_timeout(msg, None)
    }

    /// Sends `msg`, waiting at most `timeout` (`None`: for ever) for room;
    /// [`Timeout`](xenmq::mq::Error::Timeout) after that.
    pub fn send_timeout(&mut self, msg: &M, timeout: Option<Duration>) -> Result<(), Error> {
        // The clock is read only when there is no room.
        match self.try_send(msg) {
            Err(Error::Queue(xenmq::mq::Error::Full { .. }))
            | Err(Error::Queue(xenmq::mq::Error::NoReceiver { .. })) => {}
            other => return other,
        }
        let until = deadline(timeout);
        loop {
            if left(until) == Some(Duration::ZERO) {
                return Err(self.base.err(|name| xenmq::mq::Error::Timeout { name }));
            }
            self.wait(left(until))?;
            match self.try_send(msg) {
                Err(Error::Queue(xenmq::mq::Error::Full { .. }))
                | Err(Error::Queue(xenmq::mq::Error::NoReceiver { .. })) => {}
                other => return other,
            }
        }
    }

    /// Waits for an acknowledgement on a full channel or a change in the
    /// store: spins a little, then re-arms and sleeps.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.wait_for(timeout, |c| c.is_full())
    }

    /// As `wait`, for an acknowledgement on any channel with messages in
    /// flight.
    fn wait_any(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.wait_for(timeout, |c| c.in_flight() > 0)
    }

    fn wait_for(
        &mut self,
        timeout: Option<Duration>,
        pending: fn(&Credit) -> bool,
    ) -> Result<(), Error> {
        let outs = &mut self.outs;
        let ready = self.spin.run(|| {
            Ok(outs
                .iter_mut()
                .any(|o| pending(&o.credit) && o.ring.has_responses().unwrap_or(true)))
        });
        if matches!(ready, Ok(true)) {
            return Ok(());
        }
        for o in self.outs.iter_mut().filter(|o| pending(&o.credit)) {
            // Re-arm, then check once more (RING_FINAL_CHECK_FOR_RESPONSES).
            if o.ring.final_check_for_responses().unwrap_or(true) {
                return Ok(());
            }
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.base.store.watch_fd()];
        fds.extend(
            self.outs
                .iter()
                .filter(|o| pending(&o.credit))
                .map(|o| o.chan.as_fd()),
        );
        xenmq_sys::poll_any(&fds, timeout)?;
        drop(fds);
        // Take the notifications; a receiver gone shows here.
        let mut i = 0;
        while i < self.outs.len() {
            let closed = matches!(self.outs.get(i).map(|o| o.chan.poll()), Some(Err(_)));
            if !closed {
                i += 1;
                continue;
            }
            // The receiver is gone: take its last acknowledgements; if some
            // are still missing, nothing will bring them.
            if !self.reap(i) {
                continue; // dropped by `reap`
            }
            if self.outs.get(i).is_some_and(|o| pending(&o.credit)) {
                self.drop_out(i);
            } else {
                i += 1;
            }
        }
        self.look()
    }
}

impl<M: Message, S: xenmq::xenstore::Store, G: Grants, E: Events> Drop for Sender<M, S, G, E> {
    fn drop(&mut self) {
        // Queued messages go out: a sender never drops one silently.
        for out in &mut self.outs {
            if std::mem::take(&mut out.queued) && matches!(out.ring.push_requests(), Ok(true)) {
                let _ = out.chan.notify();
            }
        }
        self.base.publish_count("sent", true);
        for out in &self.outs {
            let dir = xenmq::mq::link_path(self.base.name(), self.base.domid, out.receiver);
            let _ = self.base.store.rm(Tx::NONE, &dir);
        }
        let receivers = format!(
            "{}/{}",
            xenmq::mq::path(self.base.name()),
            Role::Receiver.dir()
        );
        let _ = self.base.store.unwatch(&receivers, TOKEN);
    }
}
