//! A connection's queue of messages waiting to be written to it.
//!
//! Bounded: an unprivileged domain that does not read its socket cannot
//! make the server grow. Following C xenstored 4.17 (XSA-326): such a
//! domain's requests are not read while it has `max_outstanding` messages
//! unsent; a watch event identical to one already queued is dropped (except
//! `@` events); events queued longer than `event_timeout` are dropped; and,
//! in place of C's per-domain memory quota, events beyond `max_queued`
//! messages are dropped. Replies are never dropped: their number is bounded
//! by the request throttle.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

struct Queued {
    bytes: Vec<u8>,
    event_since: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Queued>,
    closed: bool,
    dropped_events: u64,
}

/// The output queue of one connection.
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    changed: Condvar,
    max_queued: usize,
    event_timeout: Duration,
}

impl Outbox {
    pub fn new(max_queued: usize, event_timeout: Duration) -> Self {
        Outbox {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            max_queued,
            event_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the queue half-updated: every
        // critical section below is a single push or pop.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a reply.
    pub fn reply(&self, bytes: Vec<u8>) {
        let mut g = self.lock();
        if g.closed {
            return;
        }
        g.queue.push_back(Queued {
            bytes,
            event_since: None,
        });
        self.changed.notify_all();
    }

    /// Queues a watch event, unless it must be dropped (see the module).
    pub fn event(&self, bytes: Vec<u8>, dedup: bool) {
        let mut g = self.lock();
        if g.closed {
            return;
        }
        let now = Instant::now();
        let timeout = self.event_timeout;
        let before = g.queue.len();
        g.queue.retain(|q| {
            q.event_since
                .is_none_or(|t| now.duration_since(t) < timeout)
        });
        let expired = before.saturating_sub(g.queue.len());
        g.dropped_events = g.dropped_events.saturating_add(expired as u64);
        let duplicate = dedup
            && g.queue
                .iter()
                .any(|q| q.event_since.is_some() && q.bytes == bytes);
        if duplicate || g.queue.len() >= self.max_queued {
            g.dropped_events = g.dropped_events.saturating_add(1);
            return;
        }
        g.queue.push_back(Queued {
            bytes,
            event_since: Some(now),
        });
        self.changed.notify_all();
    }

    /// The next message to write, waiting for one; `None` once closed.
    pub fn next(&self) -> Option<Vec<u8>> {
        let mut g = self.lock();
        loop {
            if let Some(q) = g.queue.pop_front() {
                self.changed.notify_all();
                return Some(q.bytes);
            }
            if g.closed {
                return None;
            }
            g = self.changed.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The next message to write, if one is queued.
    pub fn try_next(&self) -> Option<Vec<u8>> {
        let mut g = self.lock();
        let q = g.queue.pop_front()?;
        self.changed.notify_all();
        Some(q.bytes)
    }

    /// Waits until fewer than `limit` messages are queued (or closed).
    pub fn wait_below(&self, limit: usize) {
        let mut g = self.lock();
        while !g.closed && g.queue.len() >= limit {
            g = self.changed.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the queue: pending messages are discarded, waiters released.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.queue.clear();
        self.changed.notify_all();
    }

    /// Events dropped so far.
    pub fn dropped_events(&self) -> u64 {
        self.lock().dropped_events
    }
}
