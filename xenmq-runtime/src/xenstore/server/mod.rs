//! A Xenstore server speaking the `xs_wire.h` protocol, in memory.
//!
//! It behaves as C xenstored 4.17 (Debian 12's `xen-utils-4.17`) does, and
//! the differential tests hold it to that: the same bytes sent to both give
//! the same bytes back, except for the differences listed, with reasons, in
//! `docs/xenstore-differences.md`.
//!
//! The simulator host serves each domain's socket with that domain's id:
//! connecting to it *is* being that domain, as opening `/dev/xen/xenbus` is
//! in a guest. Domain 0 is privileged; every other domain is subject to
//! permissions and quotas ([`Limits`]).
//!
//! ```no_run
//! use xenmq_runtime::xenstore::server::{Limits, Xenstored};
//! let xs = Xenstored::new(Limits::default());
//! let _dom0 = xs.listen("/tmp/xs-dom0.sock".as_ref(), 0)?;
//! xs.introduce(1);
//! let _dom1 = xs.listen("/tmp/xs-dom1.sock".as_ref(), 1)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Threads: each connection has a reader (parses and handles requests under
//! the one store lock) and a writer (drains the connection's bounded output
//! queue), so a client that stops reading stalls nobody else.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod engine;
mod outbox;
mod state;
mod tree;

pub use engine::{Closed, Engine};

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use xenmq::xenstore::wire::{Header, HEADER_LEN};

use outbox::Outbox;
use state::{ConnState, State};

/// Limits. [`Limits::default`] gives C xenstored 4.17's defaults; the
/// quotas apply to unprivileged domains only.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nodes a domain may own (`-E`, 1000).
    pub max_nodes: u32,
    /// Bytes a node may take, as C counts them (`-S`, 2048).
    pub max_node_size: usize,
    /// Watches a domain may hold; C allows one more than this (`-W`, 128).
    pub max_watches: usize,
    /// Open transactions per connection; C allows one more (`-t`, 10).
    pub max_transactions: usize,
    /// Permission entries per node (`-A`, 5).
    pub max_perms: usize,
    /// Nodes a transaction may touch (`transaction-nodes`, 1024).
    pub max_tx_nodes: usize,
    /// Unsent replies and events at which a domain's requests stop being
    /// read (`outstanding`, 20).
    pub max_outstanding: usize,
    /// Messages queued for one connection beyond which watch events are
    /// dropped (stands in for C's per-domain memory quota).
    pub max_queued: usize,
    /// Age at which an unsent watch event is dropped (C: 20 s).
    pub event_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 1000,
            max_node_size: 2048,
            max_watches: 128,
            max_transactions: 10,
            max_perms: 5,
            max_tx_nodes: 1024,
            max_outstanding: 20,
            max_queued: 4096,
            event_timeout: Duration::from_secs(20),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    next_conn: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Request handling never leaves the store half-changed at a panic
        // point reachable from input, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server. Cloning gives another handle to the same store.
#[derive(Clone)]
pub struct Xenstored {
    shared: Arc<Shared>,
}

impl Xenstored {
    /// A server with the initial tree of C xenstored (`/`, `/tool`,
    /// `/tool/xenstored`) and domain 0 introduced.
    pub fn new(config: Limits) -> Self {
        Xenstored {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(config)),
                next_conn: AtomicU64::new(1),
            }),
        }
    }

    /// Serves one connection as domain `domid`, on threads of its own;
    /// returns at once. The connection ends when the peer closes it, breaks
    /// the protocol (a payload over 4096 bytes) or the domain is released.
    pub fn serve(&self, stream: UnixStream, domid: u16) -> io::Result<()> {
        let domid = u32::from(domid);
        let cfg = self.shared.lock().cfg.clone();
        let out = Arc::new(Outbox::new(cfg.max_queued, cfg.event_timeout));
        let reader = stream.try_clone()?;
        let writer = stream.try_clone()?;
        // Relaxed: the id only needs to be unique.
        let cid = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
        self.shared
            .lock()
            .conns
            .insert(cid, ConnState::new(domid, out.clone(), Some(stream)));
        let shared = self.shared.clone();
        let out_w = out.clone();
        thread::Builder::new()
            .name(format!("xenstored-w{cid}"))
            .spawn(move || write_loop(writer, &out_w))?;
        thread::Builder::new()
            .name(format!("xenstored-r{cid}"))
            .spawn(move || read_loop(&shared, reader, cid, domid, &out))?;
        Ok(())
    }

    /// A connection served as `domid`, without a socket file: the client
    /// end of a socket pair (for the host's own use, e.g.
    /// `Connection::from_stream(xs.connect(0)?)` to act as dom0).
    pub fn connect(&self, domid: u16) -> io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        self.serve(ours, domid)?;
        Ok(theirs)
    }

    /// Listens on a Unix socket at `path` (replacing a stale one); every
    /// connection is served as `domid`. Dropping or closing the
    /// [`Listener`] stops accepting and removes the socket; connections
    /// already accepted go on.
    pub fn listen(&self, path: &Path, domid: u16) -> io::Result<Listener> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        // Non-blocking accept polled every 20 ms, so that closing works even
        // if the socket file has been removed meanwhile.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (xs, stop2) = (self.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name(format!("xenstored-listen-{domid}"))
            .spawn(move || {
                // Acquire: pairs with the Release store in Listener::shutdown.
                while !stop2.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            // A connection that cannot be set up is dropped
                            // (closed); the listener goes on.
                            if s.set_nonblocking(false).is_ok() {
                                let _ = xs.serve(s, domid);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(Listener {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    /// Records that domain `domid` exists (as `XS_INTRODUCE`); fires
    /// `@introduceDomain` if it was not known.
    pub fn introduce(&self, domid: u16) {
        let mut st = self.shared.lock();
        let mut ev = Vec::new();
        st.introduce_domain(u32::from(domid), &mut ev);
        st.fire_now(&ev);
    }

    /// Records that domain `domid` died, as C xenstored does when the
    /// hypervisor reports it gone or dom0 sends `XS_RELEASE`: removes the
    /// nodes it owns, makes permission entries naming it grant nothing,
    /// closes its connections (dropping their watches and transactions)
    /// and, if it was introduced, fires `@releaseDomain`. Nodes it does not
    /// own (`/local/domain/<domid>` as libxl sets it up) the host removes
    /// itself. Releasing a domain already released does nothing more.
    pub fn release(&self, domid: u16) {
        let mut st = self.shared.lock();
        let mut ev = Vec::new();
        st.release_domain(u32::from(domid), &mut ev);
        st.fire_now(&ev);
    }

    /// Watch events dropped so far on live connections (slow readers).
    pub fn dropped_events(&self) -> u64 {
        self.shared
            .lock()
            .conns
            .values()
            .map(|c| c.out.dropped_events())
            .sum()
    }
}

/// An accepting socket; see [`Xenstored::listen`].
pub struct Listener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Release: pairs with the Acquire load in the accept loop.
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The accept loop never panics; a join error has nothing to add.
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_loop(mut stream: UnixStream, out: &Outbox) {
    while let Some(msg) = out.next() {
        if stream.write_all(&msg).is_err() {
            break;
        }
    }
    // Make the reader see the end too (it may already have).
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn read_loop(shared: &Shared, mut stream: UnixStream, cid: u64, domid: u32, out: &Outbox) {
    let outstanding = shared.lock().cfg.max_outstanding;
    let mut payload = Vec::new();
    loop {
        if domid != 0 {
            // An unprivileged domain with too many unsent replies and
            // events is not read from until it catches up (C: outstanding).
            out.wait_below(outstanding);
        }
        let mut head = [0u8; HEADER_LEN];
        if stream.read_exact(&mut head).is_err() {
            break;
        }
        let Ok(hdr) = Header::parse(&head) else {
            break;
        };
        // A payload over the limit breaks the protocol: C closes the socket.
        let Ok(len) = hdr.check_len() else {
            break;
        };
        payload.resize(len, 0);
        if stream.read_exact(&mut payload).is_err() {
            break;
        }
        let outcome = shared.lock().handle(cid, hdr, &payload);
        if outcome.close {
            break;
        }
    }
    shared.lock().drop_conn(cid);
}
