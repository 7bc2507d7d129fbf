//! The simulated hypervisor and toolstack: grant tables, event channels and
//! domains, served over Unix sockets in a run directory.
//!
//! ```text
//! DIR/control                  dom0's control socket (grants, events, toolstack)
//! DIR/socket                   dom0's Xenstore
//! DIR/domain/<domid>/control   the guest's control socket: connecting is being it
//! DIR/domain/<domid>/socket    the guest's Xenstore
//! ```
//!
//! A guest lives from its creation until it is destroyed (or killed, or
//! crashed by its fault plan). Any number of processes may connect to its
//! control socket, at once or one after another: each is a driver loaded
//! into the guest. When one connection closes (clean exit, crash, SIGKILL)
//! the host releases what that connection held: its grants (mappings other
//! domains hold stay valid memory, but no new map succeeds), its ports
//! (peers see [`Status::Closed`](xenmq::evtchn::Status)) and its mappings.
//! Destroying the domain also cuts its connections (killing their
//! processes), removes `/local/domain/<domid>` and fires `@releaseDomain`.
//!
//! Domain ids are handed out in increasing order and not reused until they
//! wrap around (at `DOMID_FIRST_RESERVED`); even then an id that a backend
//! directory in Xenstore still names is skipped, so a new domain never
//! meets the devices of an old one.
//!
//! This file holds the host's state and its public face ([`Host`]); each
//! concern of the hypervisor has a file of its own: `dispatch` (accepting
//! connections, reading requests, the request switch), `grant` (the grant
//! table), `evtchn` (event channels), `domain` (creation, listing,
//! destruction) and `fault` (fault plans and pokes into granted pages).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xenmq::evtchn::Port;
use xenmq::grant::{DomId, GrantRef};
use xenmq::xenstore::{self, Store, Tx};

use crate::sim::fault::Faults;
use crate::sim::proto::{self, Code, Refusal};
use crate::sim::Error;
use crate::xenstore::Connection;

mod dispatch;
mod domain;
mod evtchn;
mod fault;
mod grant;

use dispatch::{store_acceptor, Acceptor};

/// What the host needs of a Xenstore server: serve a connection as a
/// domain, and announce domains coming and going. Implemented by the
/// simulator's [`Xenstored`](crate::xenstore::server::Xenstored) (see
/// [`Host::with_xenstored`]); any server honouring the
/// `xs_wire.h` protocol will do.
pub trait StoreHost: Send + Sync + 'static {
    /// Starts serving one connection as `domid` on the server's own
    /// threads and returns at once (the host calls it from its accept
    /// loop).
    fn serve(&self, stream: UnixStream, domid: DomId) -> io::Result<()>;
    /// Marks `domid` introduced and fires `@introduceDomain`.
    fn introduce(&self, domid: DomId);
    /// Drops `domid`'s connections, watches and transactions and fires
    /// `@releaseDomain`.
    fn release(&self, domid: DomId);
}

/// A domain as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Its id.
    pub domid: DomId,
    /// Its name.
    pub name: String,
    /// The first of the processes attached to its control socket, if any.
    pub pid: Option<u32>,
    /// Whether a process is attached.
    pub attached: bool,
    /// How many connections (processes, usually) are attached.
    pub processes: u32,
    /// Live grant entries it owns.
    pub grants: u32,
    /// Mappings of its grants held by other domains (pages).
    pub maps: u32,
    /// Open ports.
    pub ports: u32,
}

/// One grant entry as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// The domain allowed to map it.
    pub grantee: DomId,
    /// Whether it is read-only.
    pub readonly: bool,
    /// How many mappings of it exist.
    pub maps: u32,
}

struct Entry {
    grantee: DomId,
    readonly: bool,
    file: Arc<File>,
    page: u32,
    maps: u32,
    conn: u64,
}

struct PortEnt {
    conn: u64,
    remote: DomId,
    peer: Option<Port>,
    closed: bool,
    evfd: Arc<File>,
    status: Arc<File>,
}

struct Dom {
    name: String,
    grants: BTreeMap<GrantRef, Entry>,
    next_gref: GrantRef,
    ports: BTreeMap<Port, PortEnt>,
    faults: Faults,
    requests: u64,
    acceptors: Vec<Acceptor>,
}

impl Dom {
    fn new(name: String) -> Dom {
        Dom {
            name,
            grants: BTreeMap::new(),
            next_gref: proto::FIRST_GREF,
            ports: BTreeMap::new(),
            faults: Faults::default(),
            requests: 0,
            acceptors: Vec::new(),
        }
    }
}

struct Conn {
    domid: DomId,
    stream: UnixStream,
    pid: Option<u32>,
    maps: BTreeMap<u32, Vec<(DomId, GrantRef)>>,
    mapped: usize,
    next_handle: u32,
}

#[derive(Default)]
struct State {
    doms: BTreeMap<DomId, Dom>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// The id the next domain gets if it is free (ids are not reused
    /// until they wrap around).
    next_domid: DomId,
    /// Whether the ids have wrapped around (so any id may have been given).
    wrapped: bool,
    /// Domains being torn down: gone from `doms`, but their sockets and
    /// Xenstore tree not yet removed; their ids are not reused meanwhile.
    dying: std::collections::BTreeSet<DomId>,
    stopping: bool,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
    store: Option<Arc<dyn StoreHost>>,
    xs: Option<Connection>,
}

/// The simulated host: hypervisor, toolstack and (optionally) Xenstore.
/// Dropping it stops serving and removes its sockets.
pub struct Host {
    shared: Arc<Shared>,
    acceptors: Vec<Acceptor>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in another thread must not take the host down with it; the
    // state is only mutated in small steps that leave it consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: &io::Error) -> u32 {
    e.raw_os_error()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn internal(e: io::Error) -> Refusal {
    Refusal::new(Code::Internal, errno(&e), 0)
}

impl Host {
    /// Starts a host without Xenstore in `dir` (created if missing): only
    /// grants, event channels and domains.
    pub fn start(dir: impl AsRef<Path>) -> Result<Host, Error> {
        Host::start_inner(dir.as_ref(), None)
    }

    /// Starts a host in `dir` whose Xenstore is `store`, served at
    /// `DIR/socket` for dom0 and `DIR/domain/<domid>/socket` for guests.
    pub fn with_store(dir: impl AsRef<Path>, store: Arc<dyn StoreHost>) -> Result<Host, Error> {
        Host::start_inner(dir.as_ref(), Some(store))
    }

    fn start_inner(dir: &Path, store: Option<Arc<dyn StoreHost>>) -> Result<Host, Error> {
        let run_dir = |source| Error::RunDir {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir.join("domain")).map_err(run_dir)?;
        xenmq_sys::process::raise_nofile_limit();
        // Another host serving this directory would lose its sockets to us.
        let control = dir.join("control");
        if UnixStream::connect(&control).is_ok() {
            return Err(Error::Listen {
                path: control,
                source: io::Error::from(io::ErrorKind::AddrInUse),
            });
        }
        let xs = match &store {
            None => None,
            Some(store) => {
                let (ours, theirs) = UnixStream::pair().map_err(Error::Store)?;
                store.serve(theirs, 0).map_err(Error::Store)?;
                let client = Connection::from_stream(ours).map_err(Error::Store)?;
                let store_err = |e: xenstore::Error| Error::Store(io::Error::other(e));
                client
                    .write(Tx::NONE, "/local/domain/0/name", b"Domain-0")
                    .map_err(store_err)?;
                client
                    .write(Tx::NONE, "/local/domain/0/domid", b"0")
                    .map_err(store_err)?;
                Some(client)
            }
        };
        let mut state = State {
            next_domid: 1,
            ..State::default()
        };
        state.doms.insert(0, Dom::new("Domain-0".into()));
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            changed: Condvar::new(),
            store,
            xs,
        });
        let mut acceptors = Vec::new();
        let s = Arc::clone(&shared);
        acceptors.push(Acceptor::spawn(dir.join("control"), move |stream| {
            Shared::accept_control(&s, stream, 0)
        })?);
        if let Some(store) = &shared.store {
            acceptors.push(store_acceptor(dir.join("socket"), Arc::clone(store), 0)?);
        }
        Ok(Host { shared, acceptors })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Creates a guest domain: its sockets, and (with a Xenstore) its
    /// introduction and `/local/domain/<domid>` tree. Returns its id. The
    /// domain lives until [`Host::destroy_domain`] or
    /// [`Host::kill_domain`], whatever its processes do.
    pub fn create_domain(&self, name: &str) -> Result<DomId, Refusal> {
        self.shared.create_named(name)
    }

    /// Destroys a domain now, killing its processes.
    pub fn destroy_domain(&self, domid: DomId) -> Result<(), Refusal> {
        self.shared.destroy(domid, true)
    }

    /// Crashes a domain: SIGKILLs every process attached to it (a
    /// connection from this process is cut instead) and destroys it.
    pub fn kill_domain(&self, domid: DomId) -> Result<(), Refusal> {
        self.shared.kill(domid)
    }

    /// Sets a domain's fault plan (for its channels bound from now on, and
    /// its request counter for `kill_at`).
    pub fn set_faults(&self, domid: DomId, faults: Faults) -> Result<(), Refusal> {
        self.shared.set_faults(domid, faults)
    }

    /// Writes `data` at `offset` of the page behind `domid`'s grant `gref`,
    /// as a hostile peer would (e.g. to corrupt ring indices).
    pub fn poke(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u32,
        data: &[u8],
    ) -> Result<(), Refusal> {
        self.shared.poke(domid, gref, offset, data)
    }

    /// Writes seeded random `u32`s at `offsets` of the page behind `gref`;
    /// returns what was written where. The same seed writes the same values.
    pub fn corrupt(
        &self,
        domid: DomId,
        gref: GrantRef,
        seed: u64,
        offsets: &[u32],
    ) -> Result<Vec<(u32, u32)>, Refusal> {
        let plan = crate::sim::fault::corruption(seed, offsets);
        for &(off, val) in &plan {
            self.poke(domid, gref, off, &val.to_le_bytes())?;
        }
        Ok(plan)
    }

    /// Every domain.
    pub fn domains(&self) -> Vec<DomainInfo> {
        self.shared.list()
    }

    /// A domain's grant entry, if it exists.
    pub fn grant(&self, domid: DomId, gref: GrantRef) -> Option<GrantInfo> {
        let st = lock(&self.shared.state);
        let e = st.doms.get(&domid)?.grants.get(&gref)?;
        Some(GrantInfo {
            grantee: e.grantee,
            readonly: e.readonly,
            maps: e.maps,
        })
    }

    /// Waits until `domid` no longer exists; `false` on timeout.
    pub fn wait_gone(&self, domid: DomId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        while st.doms.contains_key(&domid) || st.dying.contains(&domid) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Waits until a process is attached to `domid`'s control socket
    /// (for dom0, any connection); `false` on timeout or if the domain is
    /// gone.
    pub fn wait_attached(&self, domid: DomId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            if !st.doms.contains_key(&domid) {
                return false;
            }
            if st.conns.values().any(|c| c.domid == domid) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let (acceptors, streams) = {
            let mut st = lock(&self.shared.state);
            st.stopping = true;
            let acc: Vec<Acceptor> = st
                .doms
                .values_mut()
                .flat_map(|d| d.acceptors.drain(..))
                .collect();
            let streams: Vec<UnixStream> = st
                .conns
                .values()
                .filter_map(|c| c.stream.try_clone().ok())
                .collect();
            (acc, streams)
        };
        drop(acceptors);
        self.acceptors.clear();
        for s in streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Ok(rd) = std::fs::read_dir(self.shared.dir.join("domain")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
