//! The server's protocol engine without sockets or threads: bytes in as a
//! connection's stream, bytes out as what it would write back. The same
//! [`State`] the socket server runs, for fuzzing and for tests that drive
//! many connections deterministically.

use std::collections::BTreeMap;
use std::sync::Arc;

use xenmq::xenstore::wire::{Header, HEADER_LEN};

use super::outbox::Outbox;
use super::state::{ConnState, State};
use super::Limits;

/// A connection the engine closed: it broke the protocol (a bad header, a
/// payload over 4096 bytes), or its domain was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("xenstore connection {0} is closed")]
pub struct Closed(pub u64);

/// The Xenstore server's protocol engine as a value, without sockets or
/// threads: bytes in as a connection's stream, bytes out as what the
/// server would write back. The same engine [`Xenstored`](super::Xenstored)
/// runs, for fuzzing and for tests that drive many connections
/// deterministically.
///
/// ```
/// use xenmq_runtime::xenstore::server::{Engine, Limits};
/// let mut xs = Engine::new(Limits::default());
/// let dom0 = xs.connect(0);
/// // XS_READ (2) of "/tool", req_id 7, no transaction.
/// let mut frame = Vec::new();
/// for w in [2u32, 7, 0, 6] {
///     frame.extend_from_slice(&w.to_le_bytes());
/// }
/// frame.extend_from_slice(b"/tool\0");
/// xs.receive(dom0, &frame)?;
/// let out = xs.take_output(dom0);
/// assert_eq!(out.len(), 1);
/// assert_eq!(&out[0][..8], &frame[..8]);
/// # Ok::<(), xenmq_runtime::xenstore::server::Closed>(())
/// ```
pub struct Engine {
    state: State,
    next: u64,
    /// Each open connection's bytes received short of a whole frame.
    partial: BTreeMap<u64, Vec<u8>>,
}

impl Engine {
    /// An engine with C xenstored's initial tree and domain 0 introduced.
    pub fn new(limits: Limits) -> Self {
        Engine {
            state: State::new(limits),
            next: 1,
            partial: BTreeMap::new(),
        }
    }

    /// Opens a connection as domain `domid`; returns its id.
    pub fn connect(&mut self, domid: u16) -> u64 {
        let cid = self.next;
        self.next = self.next.wrapping_add(1);
        let cfg = &self.state.cfg;
        let out = Arc::new(Outbox::new(cfg.max_queued, cfg.event_timeout));
        self.state
            .conns
            .insert(cid, ConnState::new(u32::from(domid), out, None));
        self.partial.insert(cid, Vec::new());
        cid
    }

    /// As [`Xenstored::introduce`](super::Xenstored::introduce).
    pub fn introduce(&mut self, domid: u16) {
        let mut ev = Vec::new();
        self.state.introduce_domain(u32::from(domid), &mut ev);
        self.state.fire_now(&ev);
    }

    /// As [`Xenstored::release`](super::Xenstored::release).
    pub fn release(&mut self, domid: u16) {
        let mut ev = Vec::new();
        self.state.release_domain(u32::from(domid), &mut ev);
        self.state.fire_now(&ev);
        self.forget_closed();
    }

    /// Takes `bytes` as the next part of connection `conn`'s stream and
    /// handles every whole frame in it, as the socket server's reader does.
    /// A connection that breaks the protocol is closed, as C closes its
    /// socket.
    pub fn receive(&mut self, conn: u64, bytes: &[u8]) -> Result<(), Closed> {
        let mut buf = self.partial.remove(&conn).ok_or(Closed(conn))?;
        buf.extend_from_slice(bytes);
        let mut at = 0usize;
        let result = loop {
            let Some(head) = buf.get(at..).and_then(|b| b.get(..HEADER_LEN)) else {
                break Ok(());
            };
            let Ok(hdr) = Header::parse(head) else {
                break Err(Closed(conn));
            };
            let Ok(len) = hdr.check_len() else {
                break Err(Closed(conn));
            };
            let start = at.saturating_add(HEADER_LEN);
            let Some(payload) = buf.get(start..start.saturating_add(len)) else {
                break Ok(());
            };
            let outcome = self.state.handle(conn, hdr, payload);
            at = start.saturating_add(len);
            if outcome.close || !self.state.conns.contains_key(&conn) {
                break Err(Closed(conn));
            }
        };
        match result {
            Ok(()) => {
                buf.drain(..at.min(buf.len()));
                self.partial.insert(conn, buf);
            }
            Err(_) => self.state.drop_conn(conn),
        }
        self.forget_closed();
        result
    }

    /// What the server queued for connection `conn` so far (replies and
    /// watch events, one message each), in order; nothing once closed.
    pub fn take_output(&mut self, conn: u64) -> Vec<Vec<u8>> {
        let Some(c) = self.state.conns.get(&conn) else {
            return Vec::new();
        };
        std::iter::from_fn(|| c.out.try_next()).collect()
    }

    /// Whether connection `conn` is open.
    pub fn is_open(&self, conn: u64) -> bool {
        self.state.conns.contains_key(&conn)
    }

    fn forget_closed(&mut self) {
        let conns = &self.state.conns;
        self.partial.retain(|c, _| conns.contains_key(c));
    }
}
