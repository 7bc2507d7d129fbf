//! A queue's receiving end: one mapped ring per sender.

use std::collections::{BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use xenmq::driver::Spin;
use xenmq::evtchn::{Channel, Events};
use xenmq::grant::{Access, DomId, GrantRef, Grants, Pages};
use xenmq::mq::{Ack, Link, Role};
use xenmq::ring::native::Back;
use xenmq::wire::Message;
use xenmq::xenstore::Tx;

use super::{deadline, left, read_opt, Base, Error};
use crate::device::Env;
use crate::xenstore::Pollable;

/// The watch token for the senders' nodes.
const TOKEN: &str = "xenmq-mq-senders";

/// What [`Receiver::recv_event`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<M> {
    /// A message, and the domain whose channel it came on.
    Message {
        /// The sender, known from the channel.
        from: DomId,
        /// The message.
        msg: M,
    },
    /// A sender's channel closed after every message it published was
    /// delivered (it closed the queue, or died), or was cut because the
    /// sender broke it (`fault`).
    Closed {
        /// The sender.
        from: DomId,
        /// Why the channel was cut, if the sender broke it.
        fault: Option<String>,
    },
}

/// A message and its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<M> {
    /// The sender, known from the channel.
    pub from: DomId,
    /// The message.
    pub msg: M,
}

/// One sender's channel.
struct In<M: Message, G: Grants, C> {
    // Declared before `pages`: the ring points into them.
    ring: Back<M, Ack>,
    chan: C,
    sender: DomId,
    unacked: u32,
    count: u64,
    _pages: G::Mapped,
}

/// The receiving end of a queue of messages `M`.
///
/// Messages come from every connected sender, each sender's in the order
/// it sent them, at most `quota` from one sender in a row while others
/// wait. A receiver that opens the queue late starts with the messages
/// sent after it opened.
pub struct Receiver<M: Message, S: xenmq::xenstore::Store, G: Grants, E: Events> {
    base: Base<S>,
    grants: G,
    events: E,
    generation: u64,
    ins: Vec<In<M, G, E::Channel>>,
    /// Channels (sender, first grant, port) already taken or refused.
    seen: BTreeSet<(DomId, GrantRef, u32)>,
    events_out: VecDeque<Delivery<M>>,
    next: usize,
    burst: u32,
    spin: Spin,
    _msg: PhantomData<M>,
}

impl<M, S, G, E> Receiver<M, S, G, E>
where
    M: Message,
    S: Pollable,
    G: Grants,
    E: Events<Channel: AsFd>,
{
    /// Opens queue `name` as a receiver: publishes a new generation, to
    /// which senders answer with a channel each.
    pub fn open(env: Env<S, G, E>, name: &str) -> Result<Self, Error> {
        let spec = Base::<S>::open::<M, G, E>(&env, name, Role::Receiver)?;
        let domid = env.grants.domid();
        let node = xenmq::mq::member_path(name, Role::Receiver, domid);
        let store = env.store;
        let generation = super::generation();
        let senders = format!("{}/{}", xenmq::mq::path(name), Role::Sender.dir());
        store.watch(&senders, TOKEN)?;
        store
            .write(Tx::NONE, &format!("{node}/received"), b"0")
            .and_then(|()| {
                store.write(
                    Tx::NONE,
                    &format!("{node}/generation"),
                    generation.to_string().as_bytes(),
                )
            })
            .map_err(|e| super::refusal(name, domid, "publish as a receiver", e))?;
        let mut rx = Receiver {
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
            generation,
            ins: Vec::new(),
            seen: BTreeSet::new(),
            events_out: VecDeque::new(),
            next: 0,
            burst: 0,
            spin: Spin::default(),
            _msg: PhantomData,
        };
        rx.scan()?;
        Ok(rx)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.base.name()
    }

    /// The senders this receiver has a channel from.
    pub fn senders(&self) -> Vec<DomId> {
        self.ins.iter().map(|i| i.sender).collect()
    }

    /// Looks for senders' channels now (receiving looks whenever it has to
    /// wait).
    pub fn refresh(&mut self) -> Result<(), Error> {
        while self.base.store.next_event(Some(Duration::ZERO))?.is_some() {}
        self.scan()
    }

    /// Messages received.
    pub fn received(&self) -> u64 {
        self.base.count
    }

    /// Looks for channels senders published for this generation.
    fn scan(&mut self) -> Result<(), Error> {
        if !self
            .base
            .store
            .exists(Tx::NONE, &xenmq::mq::path(self.base.name()))?
        {
            self.base.removed = true;
            return Ok(());
        }
        let senders = self.base.spec.senders.clone();
        for s in senders {
            let dir = xenmq::mq::link_path(self.base.name(), s, self.base.domid);
            let store = &self.base.store;
            let mut failed = None;
            let link = Link::parse(&self.base.spec, &mut |k| match read_opt(
                store,
                Tx::NONE,
                &format!("{dir}/{k}"),
            ) {
                Ok(v) => v,
                Err(e) => {
                    failed.get_or_insert(e);
                    None
                }
            });
            // A sender's node this receiver may not read (its owner can
            // change its permissions) is that sender's loss, not the
            // queue's; a connection that broke is everyone's.
            match failed {
                Some(
                    e @ (xenmq::xenstore::Error::Closed | xenmq::xenstore::Error::Transport(_)),
                ) => return Err(e.into()),
                Some(_) => continue,
                None => {}
            }
            // Absent, half-written or malformed: not a channel (yet). A
            // channel for another generation is stale.
            let Ok(link) = link else { continue };
            if link.generation != self.generation {
                continue;
            }
            let key = (s, link.refs.first().copied().unwrap_or(0), link.port);
            if !self.seen.insert(key) {
                continue;
            }
            match self.attach(s, &link) {
                Ok(()) => {}
                // A sender whose grant or port does not hold is its own
                // loss; the others go on.
                Err(e) => self.events_out.push_back(Delivery::Closed {
                    from: s,
                    fault: Some(xenmq::error::Chain(&e).to_string()),
                }),
            }
        }
        Ok(())
    }

    fn attach(&mut self, sender: DomId, link: &Link) -> Result<(), Error> {
        let pages = self.grants.map(sender, &link.refs, Access::ReadWrite)?;
        let ring = Back::<M, Ack>::attach(pages.region())?;
        let chan = self.events.bind_interdomain(sender, link.port)?;
        self.ins.push(In {
            ring,
            chan,
            sender,
            unacked: 0,
            count: 0,
            _pages: pages,
        });
        Ok(())
    }

    fn look(&mut self) -> Result<(), Error> {
        let mut any = false;
        while let Some(_ev) = self.base.store.next_event(Some(Duration::ZERO))? {
            any = true;
        }
        if any {
            self.scan()?;
        }
        Ok(())
    }

    /// Pushes channel `i`'s acknowledgements and notifies its sender.
    fn ack(&mut self, i: usize) {
        let Some(inn) = self.ins.get_mut(i) else {
            return;
        };
        if inn.unacked == 0 {
            return;
        }
        inn.unacked = 0;
        match inn.ring.push_responses() {
            Ok(true) => {
                let _ = inn.chan.notify();
            }
            Ok(false) => {}
            Err(e) => self.cut(i, Some(e.to_string())),
        }
    }

    /// Drops channel `i`; tells the caller.
    fn cut(&mut self, i: usize, fault: Option<String>) {
        if i < self.ins.len() {
            let inn = self.ins.remove(i);
            self.events_out.push_back(Delivery::Closed {
                from: inn.sender,
                fault,
            });
            drop(inn);
            if self.next > i {
                self.next -= 1;
            }
            self.burst = 0;
        }
    }

    /// Whether an older channel of the same sender is still open (its
    /// messages go first: per-sender order across a sender's restarts).
    fn behind(&self, i: usize) -> bool {
        let Some(s) = self.ins.get(i).map(|x| x.sender) else {
            return false;
        };
        self.ins.iter().take(i).any(|x| x.sender == s)
    }

    /// The next message or departure, if one is waiting now.
    pub fn try_recv_event(&mut self) -> Result<Option<Delivery<M>>, Error> {
        if let Some(ev) = self.events_out.pop_front() {
            return Ok(Some(ev));
        }
        let n = self.ins.len();
        let quota = self.base.spec.quota;
        let ack_every = (quota / 4).max(1);
        for k in 0..n {
            let i = (self.next + k) % n.max(1);
            if self.behind(i) {
                continue;
            }
            let Some(inn) = self.ins.get_mut(i) else {
                break;
            };
            match inn.ring.consume_request() {
                Ok(Some(msg)) => {
                    let from = inn.sender;
                    if let Err(e) = inn.ring.produce_response(&Ack::default()) {
                        self.cut(i, Some(e.to_string()));
                        return Ok(self.events_out.pop_front());
                    }
                    inn.unacked += 1;
                    inn.count += 1;
                    // Acknowledge per batch: every quarter quota, and when
                    // the ring is drained, so that a sender waiting for
                    // room (or in `flush`) is never kept waiting by an
                    // acknowledgement held back.
                    if inn.unacked >= ack_every || !inn.ring.has_requests().unwrap_or(true) {
                        self.ack(i);
                    }
                    // Fairness: at most `quota` from one sender in a row.
                    if k == 0 {
                        self.burst += 1;
                    } else {
                        self.burst = 1;
                    }
                    self.next = if self.burst >= quota {
                        self.burst = 0;
                        i + 1
                    } else {
                        i
                    };
                    self.base.count += 1;
                    self.base.publish_count("received", false);
                    return Ok(Some(Delivery::Message { from, msg }));
                }
                Ok(None) => self.ack(i),
                Err(e) => {
                    // A hostile sender's indices: its channel is cut,
                    // nobody else's.
                    self.cut(i, Some(e.to_string()));
                    return Ok(self.events_out.pop_front());
                }
            }
        }
        Ok(None)
    }

    /// The next message or departure, waiting at most `timeout` (`None`:
    /// for ever); `None` on timeout.
    pub fn recv_event_timeout(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Delivery<M>>, Error> {
        // The clock is read only when nothing is waiting.
        if let Some(ev) = self.try_recv_event()? {
            return Ok(Some(ev));
        }
        let until = deadline(timeout);
        loop {
            if let Some(ev) = self.try_recv_event()? {
                return Ok(Some(ev));
            }
            if self.base.removed && self.ins.is_empty() {
                return Err(self.base.err(|name| xenmq::mq::Error::Removed { name }));
            }
            if left(until) == Some(Duration::ZERO) {
                return Ok(None);
            }
            self.wait(left(until))?;
        }
    }

    /// The next message or departure, waiting for it.
    pub fn recv_event(&mut self) -> Result<Delivery<M>, Error> {
        loop {
            if let Some(ev) = self.recv_event_timeout(None)? {
                return Ok(ev);
            }
        }
    }

    /// The next message, waiting at most `timeout`; departures are
    /// skipped (see [`recv_event`](Receiver::recv_event) to see them).
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<Received<M>, Error> {
        if let Some(Delivery::Message { from, msg }) = self.try_recv_event()? {
            return Ok(Received { from, msg });
        }
        let until = deadline(timeout);
        loop {
            match self.recv_event_timeout(left(until))? {
                Some(Delivery::Message { from, msg }) => return Ok(Received { from, msg }),
                Some(Delivery::Closed { .. }) => {}
                None => return Err(self.base.err(|name| xenmq::mq::Error::Timeout { name })),
            }
        }
    }

    /// The next message, waiting for it; departures are skipped.
    pub fn recv(&mut self) -> Result<Received<M>, Error> {
        self.recv_timeout(None)
    }

    /// Spins a little, then re-arms every channel, sees which closed, and
    /// sleeps on them and on the store.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let ins = &mut self.ins;
        let ready = self.spin.run(|| {
            Ok(ins
                .iter_mut()
                .any(|x| x.ring.has_requests().unwrap_or(true)))
        });
        if matches!(ready, Ok(true)) {
            return Ok(());
        }
        for i in 0..self.ins.len() {
            self.ack(i);
        }
        let mut i = 0;
        while i < self.ins.len() {
            let Some(inn) = self.ins.get_mut(i) else {
                break;
            };
            match inn.ring.final_check_for_requests() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    self.cut(i, Some(e.to_string()));
                    return Ok(());
                }
            }
            // Nothing left in the ring: a closed channel is a departure.
            if inn.chan.poll().is_err() {
                self.cut(i, None);
                return Ok(());
            }
            i += 1;
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.base.store.watch_fd()];
        fds.extend(self.ins.iter().map(|x| x.chan.as_fd()));
        xenmq_sys::poll_any(&fds, timeout)?;
        drop(fds);
        self.look()
    }
}

impl<M: Message, S: xenmq::xenstore::Store, G: Grants, E: Events> Drop for Receiver<M, S, G, E> {
    fn drop(&mut self) {
        self.base.publish_count("received", true);
        let _ = self
            .base
            .store
            .rm(Tx::NONE, &format!("{}/generation", self.base.node));
        let senders = format!(
            "{}/{}",
            xenmq::mq::path(self.base.name()),
            Role::Sender.dir()
        );
        let _ = self.base.store.unwatch(&senders, TOKEN);
    }
}
