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
//! A guest lives as long as its control connection: when it closes (clean
//! exit, crash, SIGKILL) the host releases the guest's grants (mappings other
//! domains hold stay valid memory, but no new map succeeds), closes its ports
//! (peers see [`Status::Closed`](xenmq::evtchn::Status)), removes
//! `/local/domain/<domid>` and fires `@releaseDomain`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xenmq::evtchn::Port;
use xenmq::grant::{DomId, GrantRef, DOMID_FIRST_RESERVED, PAGE_SIZE};
use xenmq::xenstore::perms::{Mode, Perm, Perms};
use xenmq::xenstore::{self, Store, Tx};

use crate::sim::fault::{self, Faults};
use crate::sim::proto::{self, Code, Refusal, Request, Writer};
use crate::sim::{sys, Error};
use crate::xenstore::Connection;

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
    /// The process attached to its control socket, if any.
    pub pid: Option<u32>,
    /// Whether a process is attached.
    pub attached: bool,
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
    attached: Option<u64>,
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
            attached: None,
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

/// A listening socket served by a thread; dropping it stops the thread and
/// removes the socket file.
struct Acceptor {
    path: PathBuf,
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn spawn(
        path: PathBuf,
        serve: impl Fn(UnixStream) + Send + 'static,
    ) -> Result<Acceptor, Error> {
        // A stale socket from a crashed run would make bind fail.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|source| Error::Listen {
            path: path.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let waker = listener.try_clone().map_err(|source| Error::Listen {
            path: path.clone(),
            source,
        })?;
        let thread = std::thread::Builder::new()
            .name("xenmq-sim-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    // Acquire: pairs with the Release store in Drop.
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        Ok(s) => serve(s),
                        // Shut down (see Drop) or out of descriptors: back
                        // off and look at the flag again.
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
            .map_err(|source| Error::Listen {
                path: path.clone(),
                source,
            })?;
        Ok(Acceptor {
            path,
            listener: waker,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        // Release: pairs with the accept loop's Acquire load.
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept: it fails once the socket is shut down.
        let _ = sys::shutdown_listener(self.listener.as_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
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

fn set_status(status: &File, value: u32) {
    // The word only ever holds small values; see sys::Mapping::load_u32.
    let _ = status.write_at(&value.to_le_bytes(), 0);
}

fn kick(evfd: &File) {
    // A full counter (never in practice) still leaves the fd readable.
    let _ = (&*evfd).write(&1u64.to_le_bytes());
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
        sys::raise_nofile_limit();
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
        let mut state = State::default();
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
    /// introduction and `/local/domain/<domid>` tree. Returns its id.
    pub fn create_domain(&self, name: &str) -> Result<DomId, Refusal> {
        self.shared.create_named(name)
    }

    /// Destroys a domain now, killing its process if it has one.
    pub fn destroy_domain(&self, domid: DomId) -> Result<(), Refusal> {
        self.shared.destroy(domid, true)
    }

    /// Kills a domain's process with SIGKILL (a domain in this process is
    /// cut off instead); the host then sees the connection close and tears
    /// the domain down as after any death.
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
        let plan = fault::corruption(seed, offsets);
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

    /// Waits until a process is attached to `domid`'s control socket;
    /// `false` on timeout or if the domain is gone.
    pub fn wait_attached(&self, domid: DomId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            match st.doms.get(&domid) {
                None => return false,
                Some(d) if d.attached.is_some() => return true,
                Some(_) => {}
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

fn store_acceptor(
    path: PathBuf,
    store: Arc<dyn StoreHost>,
    domid: DomId,
) -> Result<Acceptor, Error> {
    Acceptor::spawn(path, move |stream| {
        // The server bounds what one connection may cost (quotas) and
        // serves it on its own threads.
        let _ = store.serve(stream, domid);
    })
}

impl Shared {
    fn domain_dir(&self, domid: DomId) -> PathBuf {
        self.dir.join("domain").join(domid.to_string())
    }

    fn accept_control(this: &Arc<Shared>, stream: UnixStream, domid: DomId) {
        let pid = sys::peer_pid(&stream).ok();
        let id = {
            let mut st = lock(&this.state);
            let Some(dom) = st.doms.get(&domid) else {
                return;
            };
            if domid != 0 && dom.attached.is_some() {
                drop(st);
                let _ = (&stream).write_all(&Writer::new(Code::Busy as u8).u32(0).u32(0).frame());
                return;
            }
            let Ok(clone) = stream.try_clone() else {
                return;
            };
            let id = st.next_conn;
            st.next_conn += 1;
            st.conns.insert(
                id,
                Conn {
                    domid,
                    stream: clone,
                    pid,
                    maps: BTreeMap::new(),
                    mapped: 0,
                    next_handle: 1,
                },
            );
            if domid != 0 {
                if let Some(d) = st.doms.get_mut(&domid) {
                    d.attached = Some(id);
                }
            }
            id
        };
        this.changed.notify_all();
        let s = Arc::clone(this);
        let spawned = std::thread::Builder::new()
            .name(format!("xenmq-sim-dom{domid}"))
            .spawn(move || {
                s.serve_conn(&stream, id, domid, pid);
                s.drop_conn(id);
            });
        if spawned.is_err() {
            this.drop_conn(id);
        }
    }

    fn serve_conn(self: &Arc<Self>, stream: &UnixStream, id: u64, domid: DomId, pid: Option<u32>) {
        let mut reader = stream;
        loop {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).is_err() {
                return;
            }
            let len = u32::from_le_bytes(len) as usize;
            if len > proto::MAX_FRAME {
                // The stream cannot be resynchronised: refuse and hang up.
                let r = Refusal::new(
                    Code::BadCount,
                    u32::try_from(len).unwrap_or(u32::MAX),
                    proto::MAX_FRAME as u32,
                );
                let _ = send_reply(stream, Err(r));
                return;
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if self.count_request(domid) {
                // The fault plan says this domain dies here.
                match pid {
                    Some(p) if p != sys::own_pid() => {
                        let _ = sys::kill9(p);
                    }
                    _ => {}
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            let reply = self.handle(id, domid, &body);
            if send_reply(stream, reply).is_err() {
                return;
            }
        }
    }

    /// Counts a request; true if the domain's fault plan kills it now.
    fn count_request(&self, domid: DomId) -> bool {
        let mut st = lock(&self.state);
        let Some(d) = st.doms.get_mut(&domid) else {
            return false;
        };
        d.requests = d.requests.saturating_add(1);
        domid != 0 && d.faults.kill_at == Some(d.requests)
    }

    fn handle(
        self: &Arc<Self>,
        conn: u64,
        domid: DomId,
        body: &[u8],
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if domid != 0 && Request::is_toolstack_op(body) {
            return Err(Code::Denied.into());
        }
        let done = |r: Result<(), Refusal>| r.map(|()| (Writer::new(0), vec![]));
        match Request::parse(body)? {
            Request::Share {
                peer,
                pages,
                readonly,
            } => self.share(conn, domid, peer, pages, readonly),
            Request::Map {
                peer,
                readonly,
                refs,
            } => self.map(conn, domid, peer, &refs, readonly),
            Request::Unmap { handle } => done(self.unmap(conn, handle)),
            Request::EndAccess { refs } => done(self.end_access(conn, domid, &refs)),
            Request::AllocUnbound { remote } => self.alloc_unbound(conn, domid, remote),
            Request::Bind {
                remote,
                remote_port,
            } => self.bind(conn, domid, remote, remote_port),
            Request::PeerFd { port } => self.peer_fd(conn, domid, port),
            Request::Close { port } => done(self.close_port(conn, domid, port)),
            Request::Status { port } => self.port_status(conn, domid, port),
            Request::Create { name } => {
                let id = self.create_named(&name)?;
                Ok((Writer::new(0).u16(id), vec![]))
            }
            Request::Destroy { domid } => done(self.destroy(domid, true)),
            Request::Kill { domid } => done(self.kill(domid)),
            Request::SetFaults { domid, faults } => done(self.set_faults(domid, faults)),
            Request::Poke {
                domid,
                gref,
                offset,
                data,
            } => done(self.poke(domid, gref, offset, &data)),
            Request::List => {
                let list = self.list();
                let mut w = Writer::new(0).u16(list.len() as u16);
                for d in &list {
                    w = w
                        .u16(d.domid)
                        .u32(d.pid.unwrap_or(0))
                        .u8(u8::from(d.attached))
                        .u32(d.grants)
                        .u32(d.maps)
                        .u32(d.ports)
                        .u16(d.name.len() as u16)
                        .bytes(d.name.as_bytes());
                }
                Ok((w, vec![]))
            }
        }
    }

    fn share(
        &self,
        conn: u64,
        domid: DomId,
        peer: DomId,
        pages: u32,
        ro: bool,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if pages == 0 || pages as usize > proto::MAX_PAGES {
            return Err(Refusal::new(Code::BadCount, pages, proto::MAX_PAGES as u32));
        }
        if peer >= DOMID_FIRST_RESERVED {
            return Err(Refusal::new(Code::NoDomain, peer.into(), 0));
        }
        {
            let st = lock(&self.state);
            let d = st
                .doms
                .get(&domid)
                .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
            if d.grants.len() + pages as usize > proto::MAX_GRANTS {
                return Err(Refusal::new(
                    Code::NoSpace,
                    d.grants.len() as u32,
                    proto::MAX_GRANTS as u32,
                ));
            }
            // Each share holds a descriptor in the host: bound them per
            // domain so one guest cannot exhaust the host's descriptors.
            let files = live_files(d);
            if files >= proto::MAX_SHARES {
                return Err(Refusal::new(
                    Code::NoSpace,
                    files as u32,
                    proto::MAX_SHARES as u32,
                ));
            }
        }
        let fd = sys::memfd(c"xenmq-grant", pages as usize * PAGE_SIZE).map_err(internal)?;
        let file = Arc::new(File::from(fd));
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        if d.grants.len() + pages as usize > proto::MAX_GRANTS {
            return Err(Refusal::new(
                Code::NoSpace,
                d.grants.len() as u32,
                proto::MAX_GRANTS as u32,
            ));
        }
        let mut w = Writer::new(0).u32(pages);
        for page in 0..pages {
            // Bounded: fewer than MAX_GRANTS entries are in use.
            let mut gref = d.next_gref;
            while d.grants.contains_key(&gref) || gref < proto::FIRST_GREF {
                gref = gref.wrapping_add(1);
            }
            d.next_gref = gref.wrapping_add(1);
            d.grants.insert(
                gref,
                Entry {
                    grantee: peer,
                    readonly: ro,
                    file: Arc::clone(&file),
                    page,
                    maps: 0,
                    conn,
                },
            );
            w = w.u32(gref);
        }
        Ok((w, vec![file]))
    }

    fn map(
        &self,
        conn: u64,
        domid: DomId,
        peer: DomId,
        refs: &[GrantRef],
        ro: bool,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let mut st = lock(&self.state);
        let State { doms, conns, .. } = &mut *st;
        let c = conns.get_mut(&conn).ok_or(Code::Internal)?;
        if c.maps.len() >= proto::MAX_MAPS {
            return Err(Refusal::new(
                Code::NoSpace,
                c.maps.len() as u32,
                proto::MAX_MAPS as u32,
            ));
        }
        if c.mapped + refs.len() > proto::MAX_MAPPED_PAGES {
            return Err(Refusal::new(
                Code::NoSpace,
                c.mapped as u32,
                proto::MAX_MAPPED_PAGES as u32,
            ));
        }
        let pd = doms
            .get_mut(&peer)
            .ok_or(Refusal::new(Code::NoDomain, peer.into(), 0))?;
        // Check every reference before touching any.
        let mut files: Vec<Arc<File>> = Vec::new();
        // (file index, first page, pages)
        let mut pieces: Vec<(u16, u32, u32)> = Vec::new();
        for &gref in refs {
            let e = pd
                .grants
                .get(&gref)
                .filter(|e| e.grantee == domid)
                .ok_or(Refusal::new(Code::BadRef, peer.into(), gref))?;
            if e.readonly && !ro {
                return Err(Refusal::new(Code::ReadOnly, peer.into(), gref));
            }
            let idx = match files.iter().position(|f| Arc::ptr_eq(f, &e.file)) {
                Some(i) => i,
                None => {
                    if files.len() >= sys::MAX_FDS {
                        return Err(Refusal::new(
                            Code::BadCount,
                            refs.len() as u32,
                            sys::MAX_FDS as u32,
                        ));
                    }
                    files.push(Arc::clone(&e.file));
                    files.len() - 1
                }
            } as u16;
            match pieces.last_mut() {
                Some((i, first, n)) if *i == idx && first.checked_add(*n) == Some(e.page) => {
                    *n += 1
                }
                _ => pieces.push((idx, e.page, 1)),
            }
        }
        for &gref in refs {
            if let Some(e) = pd.grants.get_mut(&gref) {
                e.maps = e.maps.saturating_add(1);
            }
        }
        let mut handle = c.next_handle;
        while c.maps.contains_key(&handle) || handle == 0 {
            handle = handle.wrapping_add(1);
        }
        c.next_handle = handle.wrapping_add(1);
        c.mapped += refs.len();
        c.maps
            .insert(handle, refs.iter().map(|&g| (peer, g)).collect());
        let mut w = Writer::new(0).u32(handle).u16(pieces.len() as u16);
        for (i, first, n) in pieces {
            w = w.u16(i).u32(first).u32(n);
        }
        Ok((w, files))
    }

    fn unmap_refs(doms: &mut BTreeMap<DomId, Dom>, refs: &[(DomId, GrantRef)]) {
        for (peer, gref) in refs {
            // A revoked grant (its owner died) is simply gone.
            if let Some(e) = doms.get_mut(peer).and_then(|d| d.grants.get_mut(gref)) {
                e.maps = e.maps.saturating_sub(1);
            }
        }
    }

    fn unmap(&self, conn: u64, handle: u32) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let State { doms, conns, .. } = &mut *st;
        let c = conns.get_mut(&conn).ok_or(Code::Internal)?;
        let refs = c
            .maps
            .remove(&handle)
            .ok_or(Refusal::new(Code::BadRef, u32::MAX, handle))?;
        c.mapped = c.mapped.saturating_sub(refs.len());
        Shared::unmap_refs(doms, &refs);
        Ok(())
    }

    fn end_access(&self, conn: u64, domid: DomId, refs: &[GrantRef]) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        for &gref in refs {
            let e = d
                .grants
                .get(&gref)
                .filter(|e| e.conn == conn)
                .ok_or(Refusal::new(Code::BadRef, domid.into(), gref))?;
            if e.maps > 0 {
                return Err(Refusal::new(Code::StillMapped, domid.into(), gref));
            }
        }
        for gref in refs {
            d.grants.remove(gref);
        }
        Ok(())
    }

    fn alloc_unbound(
        &self,
        conn: u64,
        domid: DomId,
        remote: DomId,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if remote >= DOMID_FIRST_RESERVED {
            return Err(Refusal::new(Code::NoDomain, remote.into(), 0));
        }
        let evfd = Arc::new(File::from(sys::eventfd().map_err(internal)?));
        let status = Arc::new(File::from(
            sys::memfd(c"xenmq-evtchn", PAGE_SIZE).map_err(internal)?,
        ));
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        let port = free_port(d)?;
        d.ports.insert(
            port,
            PortEnt {
                conn,
                remote,
                peer: None,
                closed: false,
                evfd: Arc::clone(&evfd),
                status: Arc::clone(&status),
            },
        );
        let w = Writer::new(0).u32(port).faults(&d.faults);
        Ok((w, vec![evfd, status]))
    }

    fn bind(
        &self,
        conn: u64,
        domid: DomId,
        remote: DomId,
        rport: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let evfd = Arc::new(File::from(sys::eventfd().map_err(internal)?));
        let mut st = lock(&self.state);
        let bad = Refusal::new(Code::BadPort, remote.into(), rport);
        let rd = st
            .doms
            .get(&remote)
            .ok_or(Refusal::new(Code::NoDomain, remote.into(), 0))?;
        let rp = rd
            .ports
            .get(&rport)
            .filter(|p| p.peer.is_none() && !p.closed && p.remote == domid)
            .ok_or(bad)?;
        let status = Arc::clone(&rp.status);
        let peer_evfd = Arc::clone(&rp.evfd);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        let port = free_port(d)?;
        d.ports.insert(
            port,
            PortEnt {
                conn,
                remote,
                peer: Some(rport),
                closed: false,
                evfd: Arc::clone(&evfd),
                status: Arc::clone(&status),
            },
        );
        let faults = d.faults;
        if let Some(rp) = st
            .doms
            .get_mut(&remote)
            .and_then(|d| d.ports.get_mut(&rport))
        {
            rp.peer = Some(port);
        }
        set_status(&status, proto::PORT_CONNECTED);
        let w = Writer::new(0).u32(port).faults(&faults);
        Ok((w, vec![evfd, status, peer_evfd]))
    }

    fn own_port(st: &State, conn: u64, domid: DomId, port: Port) -> Result<&PortEnt, Refusal> {
        st.doms
            .get(&domid)
            .and_then(|d| d.ports.get(&port))
            .filter(|p| p.conn == conn)
            .ok_or(Refusal::new(Code::BadPort, domid.into(), port))
    }

    fn peer_fd(
        &self,
        conn: u64,
        domid: DomId,
        port: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let st = lock(&self.state);
        let p = Shared::own_port(&st, conn, domid, port)?;
        if p.closed {
            return Err(Code::PeerClosed.into());
        }
        let rport = p
            .peer
            .ok_or(Refusal::new(Code::BadPort, domid.into(), port))?;
        let rp = st
            .doms
            .get(&p.remote)
            .and_then(|d| d.ports.get(&rport))
            .ok_or(Refusal::from(Code::PeerClosed))?;
        Ok((Writer::new(0), vec![Arc::clone(&rp.evfd)]))
    }

    fn port_status(
        &self,
        conn: u64,
        domid: DomId,
        port: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let st = lock(&self.state);
        let p = Shared::own_port(&st, conn, domid, port)?;
        let w = match (p.closed, p.peer) {
            (true, _) => Writer::new(0).u8(2).u16(p.remote).u32(0),
            (false, Some(rp)) => Writer::new(0).u8(1).u16(p.remote).u32(rp),
            (false, None) => Writer::new(0).u8(0).u16(p.remote).u32(0),
        };
        Ok((w, vec![]))
    }

    /// Removes a port and tells its peer (if any) that it is closed.
    fn remove_port(doms: &mut BTreeMap<DomId, Dom>, domid: DomId, port: Port) {
        if let Some(p) = doms.get_mut(&domid).and_then(|d| d.ports.remove(&port)) {
            Shared::closed(doms, port, &p);
        }
    }

    /// Port `port` (entry `p`, already out of its table) is gone: mark the
    /// channel closed and wake the peer so it notices.
    fn closed(doms: &mut BTreeMap<DomId, Dom>, port: Port, p: &PortEnt) {
        set_status(&p.status, proto::PORT_CLOSED);
        let Some(rport) = p.peer else { return };
        if let Some(rp) = doms
            .get_mut(&p.remote)
            .and_then(|d| d.ports.get_mut(&rport))
        {
            if rp.peer == Some(port) {
                rp.closed = true;
                kick(&rp.evfd);
            }
        }
    }

    fn close_port(&self, conn: u64, domid: DomId, port: Port) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        Shared::own_port(&st, conn, domid, port)?;
        Shared::remove_port(&mut st.doms, domid, port);
        Ok(())
    }

    fn create_named(self: &Arc<Self>, name: &str) -> Result<DomId, Refusal> {
        let valid = !name.is_empty()
            && name.len() <= proto::MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(Refusal::new(
                Code::Malformed,
                name.len() as u32,
                proto::MAX_NAME as u32,
            ));
        }
        let domid = {
            let mut st = lock(&self.state);
            if st.stopping {
                return Err(Code::Internal.into());
            }
            if st.doms.len() >= proto::MAX_DOMAINS {
                return Err(Refusal::new(
                    Code::NoSpace,
                    st.doms.len() as u32,
                    proto::MAX_DOMAINS as u32,
                ));
            }
            let domid = (1..DOMID_FIRST_RESERVED)
                .find(|d| !st.doms.contains_key(d) && !st.dying.contains(d))
                .ok_or(Code::NoSpace)?;
            st.doms.insert(domid, Dom::new(name.to_owned()));
            domid
        };
        match self.setup_domain(domid, name) {
            Ok(acceptors) => {
                let mut st = lock(&self.state);
                match st.doms.get_mut(&domid) {
                    Some(d) => d.acceptors = acceptors,
                    None => {
                        drop(st);
                        drop(acceptors);
                    }
                }
                Ok(domid)
            }
            Err(e) => {
                let _ = self.destroy(domid, false);
                Err(e)
            }
        }
    }

    fn setup_domain(self: &Arc<Self>, domid: DomId, name: &str) -> Result<Vec<Acceptor>, Refusal> {
        let dir = self.domain_dir(domid);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let mut acceptors = Vec::new();
        let me = Arc::clone(self);
        acceptors.push(
            Acceptor::spawn(dir.join("control"), move |stream| {
                Shared::accept_control(&me, stream, domid)
            })
            .map_err(|_| Refusal::from(Code::Internal))?,
        );
        if let Some(store) = &self.store {
            acceptors.push(
                store_acceptor(dir.join("socket"), Arc::clone(store), domid)
                    .map_err(|_| Refusal::from(Code::Internal))?,
            );
            store.introduce(domid);
            self.write_tree(domid, name).map_err(internal)?;
        }
        Ok(acceptors)
    }

    /// The tree libxl writes for a new domain: the domain directory owned
    /// by dom0 and readable by the domain, and the nodes the domain writes
    /// (`device`, `data`, `control/shutdown`, ...) owned by the domain.
    ///
    /// Written in one transaction, as libxl does, so a watcher never sees
    /// half a domain.
    fn write_tree(&self, domid: DomId, name: &str) -> io::Result<()> {
        let Some(xs) = &self.xs else { return Ok(()) };
        let id = u32::from(domid);
        let base = format!("/local/domain/{domid}");
        let ro = Perms::from_entries(vec![
            Perm {
                id: 0,
                access: Mode::None,
            },
            Perm {
                id,
                access: Mode::Read,
            },
        ])
        .ok_or_else(|| io::Error::other("empty permission list"))?;
        let rw = Perms::new(id, Mode::None);
        xenstore::transaction(xs, |tx| {
            xs.mkdir(tx, &base)?;
            xs.set_perms(tx, &base, &ro)?;
            xs.write(tx, &format!("{base}/name"), name.as_bytes())?;
            xs.write(tx, &format!("{base}/domid"), domid.to_string().as_bytes())?;
            xs.mkdir(tx, &format!("{base}/control"))?;
            xs.set_perms(tx, &format!("{base}/control"), &ro)?;
            for node in [
                "device",
                "data",
                "drivers",
                "feature",
                "attr",
                "error",
                "control/shutdown",
            ] {
                let path = format!("{base}/{node}");
                xs.mkdir(tx, &path)?;
                xs.set_perms(tx, &path, &rw)?;
            }
            Ok(())
        })
        .map_err(io::Error::other)
    }

    fn destroy(&self, domid: DomId, kill_process: bool) -> Result<(), Refusal> {
        if domid == 0 {
            return Err(Code::Denied.into());
        }
        let (acceptors, streams, pids) = {
            let mut st = lock(&self.state);
            let Some(dom) = st.doms.remove(&domid) else {
                return Err(Refusal::new(Code::NoDomain, domid.into(), 0));
            };
            st.dying.insert(domid);
            let Dom {
                grants,
                ports,
                acceptors,
                ..
            } = dom;
            // Revoke its grants: dropping the entries makes new maps fail;
            // existing mappings keep their memory (the memfd is refcounted).
            drop(grants);
            // Its ports: the peers see "closed".
            for (port, p) in &ports {
                Shared::closed(&mut st.doms, *port, p);
            }
            // Unbound ports other domains reserved for it can never be bound.
            for d in st.doms.values_mut() {
                for p in d.ports.values_mut() {
                    if p.remote == domid && !p.closed {
                        p.closed = true;
                        set_status(&p.status, proto::PORT_CLOSED);
                        kick(&p.evfd);
                    }
                }
            }
            let mut streams = Vec::new();
            let mut pids = Vec::new();
            for c in st.conns.values().filter(|c| c.domid == domid) {
                if let Ok(s) = c.stream.try_clone() {
                    streams.push(s);
                }
                pids.extend(c.pid);
            }
            (acceptors, streams, pids)
        };
        if kill_process {
            for pid in pids.into_iter().filter(|&p| p != sys::own_pid()) {
                let _ = sys::kill9(pid);
            }
        }
        for s in streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        drop(acceptors);
        let _ = std::fs::remove_dir_all(self.domain_dir(domid));
        if let Some(store) = &self.store {
            if let Some(xs) = &self.xs {
                let _ = xs.rm(Tx::NONE, &format!("/local/domain/{domid}"));
            }
            store.release(domid);
        }
        lock(&self.state).dying.remove(&domid);
        self.changed.notify_all();
        Ok(())
    }

    fn kill(&self, domid: DomId) -> Result<(), Refusal> {
        if domid == 0 {
            return Err(Code::Denied.into());
        }
        let targets: Vec<(Option<u32>, Option<UnixStream>)> = {
            let st = lock(&self.state);
            if !st.doms.contains_key(&domid) {
                return Err(Refusal::new(Code::NoDomain, domid.into(), 0));
            }
            st.conns
                .values()
                .filter(|c| c.domid == domid)
                .map(|c| (c.pid, c.stream.try_clone().ok()))
                .collect()
        };
        if targets.is_empty() {
            // Nothing runs in it: a kill is a destroy.
            return self.destroy(domid, false);
        }
        for (pid, stream) in targets {
            match pid {
                Some(p) if p != sys::own_pid() => sys::kill9(p).map_err(internal)?,
                // A domain living in this process: cut its connection.
                _ => {
                    if let Some(s) = stream {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
        Ok(())
    }

    fn set_faults(&self, domid: DomId, faults: Faults) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        d.faults = faults;
        d.requests = 0;
        Ok(())
    }

    fn poke(&self, domid: DomId, gref: GrantRef, offset: u32, data: &[u8]) -> Result<(), Refusal> {
        let end = (offset as usize)
            .checked_add(data.len())
            .filter(|&e| e <= PAGE_SIZE);
        if end.is_none() {
            return Err(Refusal::new(Code::BadCount, offset, PAGE_SIZE as u32));
        }
        let (file, page) = {
            let st = lock(&self.state);
            let e = st
                .doms
                .get(&domid)
                .and_then(|d| d.grants.get(&gref))
                .ok_or(Refusal::new(Code::BadRef, domid.into(), gref))?;
            (Arc::clone(&e.file), e.page)
        };
        let at = u64::from(page) * PAGE_SIZE as u64 + u64::from(offset);
        file.write_all_at(data, at).map_err(internal)
    }

    fn list(&self) -> Vec<DomainInfo> {
        let st = lock(&self.state);
        st.doms
            .iter()
            .map(|(&domid, d)| {
                let conn = d.attached.and_then(|c| st.conns.get(&c));
                DomainInfo {
                    domid,
                    name: d.name.clone(),
                    pid: conn.and_then(|c| c.pid),
                    attached: conn.is_some(),
                    grants: d.grants.len() as u32,
                    maps: d.grants.values().map(|e| e.maps).sum(),
                    ports: d.ports.len() as u32,
                }
            })
            .collect()
    }

    /// A connection closed: release what it held; a guest dies with it.
    fn drop_conn(&self, id: u64) {
        let domid = {
            let mut st = lock(&self.state);
            let Some(c) = st.conns.remove(&id) else {
                return;
            };
            let State { doms, .. } = &mut *st;
            for refs in c.maps.values() {
                Shared::unmap_refs(doms, refs);
            }
            if c.domid == 0 {
                // dom0 outlives its connections: drop only this one's
                // grants and ports.
                if let Some(d) = doms.get_mut(&0) {
                    d.grants.retain(|_, e| e.conn != id);
                }
                let ports: Vec<Port> = doms
                    .get(&0)
                    .map(|d| {
                        d.ports
                            .iter()
                            .filter(|(_, p)| p.conn == id)
                            .map(|(&k, _)| k)
                            .collect()
                    })
                    .unwrap_or_default();
                for p in ports {
                    Shared::remove_port(doms, 0, p);
                }
                None
            } else {
                Some(c.domid)
            }
        };
        match domid {
            Some(d) => {
                let _ = self.destroy(d, false);
            }
            None => self.changed.notify_all(),
        }
    }
}

/// How many distinct memory files back a domain's live grants.
fn live_files(d: &Dom) -> usize {
    let files: std::collections::BTreeSet<*const File> =
        d.grants.values().map(|e| Arc::as_ptr(&e.file)).collect();
    files.len()
}

fn free_port(d: &Dom) -> Result<Port, Refusal> {
    if d.ports.len() >= proto::MAX_PORTS {
        return Err(Refusal::new(
            Code::NoSpace,
            d.ports.len() as u32,
            proto::MAX_PORTS as u32,
        ));
    }
    // Port 0 is never valid, as on Xen; lowest free first.
    (1..=proto::MAX_PORTS as Port)
        .find(|p| !d.ports.contains_key(p))
        .ok_or(Code::NoSpace.into())
}

fn send_reply(
    stream: &UnixStream,
    reply: Result<(Writer, Vec<Arc<File>>), Refusal>,
) -> io::Result<()> {
    match reply {
        Ok((w, files)) => {
            let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
            sys::send_with_fds(stream, &w.frame(), &fds)
        }
        Err(r) => (&*stream).write_all(&Writer::new(r.code as u8).u32(r.a).u32(r.b).frame()),
    }
}
