//! A domain's side of the simulator: the [`Grants`](xenmq::grant::Grants) and [`Events`](xenmq::evtchn::Events)
//! implementations a driver uses, talking to the host over the domain's
//! control socket.
//!
//! The data path never goes through the host: granted and mapped pages are
//! memfds mapped in this process, and `notify` writes the peer's eventfd
//! directly.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use xenmq::evtchn::{self, Port, Status};
use xenmq::grant::{self, Access, DomId, GrantRef, PAGE_SIZE};
use xenmq::shm::Region;
use xenmq_sys::{Mapping, Piece};

use crate::sim::fault::{Fate, Faults, NotifyFaults};
use crate::sim::host::DomainInfo;
use crate::sim::proto::{self, Code, Reader, Refusal, Request};
use crate::sim::Error;

/// The environment variable naming the run directory.
pub const ENV_DIR: &str = "XENMQ_SIM_DIR";
/// The environment variable naming the domain id.
pub const ENV_DOMID: &str = "XENMQ_SIM_DOMID";

/// The control socket of `domid` in run directory `dir`.
pub fn control_path(dir: &Path, domid: DomId) -> PathBuf {
    if domid == 0 {
        dir.join("control")
    } else {
        dir.join("domain").join(domid.to_string()).join("control")
    }
}

/// The Xenstore socket of `domid` in run directory `dir` (what
/// `XENSTORED_PATH` should name).
pub fn store_path(dir: &Path, domid: DomId) -> PathBuf {
    if domid == 0 {
        dir.join("socket")
    } else {
        dir.join("domain").join(domid.to_string()).join("socket")
    }
}

/// A command that runs as domain `domid` of the host in `dir`: it gets
/// [`ENV_DIR`] and [`ENV_DOMID`] (for [`Domain::from_env`]) and
/// `XENSTORED_PATH` (for Xenstore clients).
pub fn domain_command(dir: &Path, domid: DomId, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env(ENV_DIR, dir)
        .env(ENV_DOMID, domid.to_string())
        .env("XENSTORED_PATH", store_path(dir, domid));
    cmd
}

/// Why a call to the host failed.
enum CallError {
    /// The host is gone or the connection broke.
    Gone,
    /// The host sent something we cannot parse.
    BadReply,
    /// The host refused.
    Refused(Refusal),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Gone => Error::Io(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
            CallError::BadReply => Error::BadReply,
            CallError::Refused(r) => Error::Refused(r),
        }
    }
}

fn grant_error(e: CallError) -> grant::Error {
    match e {
        CallError::Gone | CallError::BadReply => grant::Error::Unavailable,
        CallError::Refused(r) => match r.code {
            Code::BadRef => grant::Error::BadRef {
                domid: r.a as DomId,
                gref: r.b,
            },
            Code::ReadOnly => grant::Error::ReadOnly {
                domid: r.a as DomId,
                gref: r.b,
            },
            Code::StillMapped => grant::Error::StillMapped,
            Code::BadCount => grant::Error::BadCount {
                count: r.a as usize,
                limit: r.b as usize,
            },
            Code::NoSpace => grant::Error::NoSpace,
            Code::NoDomain => grant::Error::NoDomain(r.a as DomId),
            Code::Internal => grant::Error::Os(r.a as i32),
            _ => grant::Error::Unavailable,
        },
    }
}

fn event_error(e: CallError) -> evtchn::Error {
    match e {
        CallError::Gone | CallError::BadReply => evtchn::Error::Unavailable,
        CallError::Refused(r) => match r.code {
            Code::NoDomain => evtchn::Error::NoDomain(r.a as DomId),
            Code::BadPort => evtchn::Error::BadPort {
                domid: r.a as DomId,
                port: r.b,
            },
            Code::PeerClosed => evtchn::Error::PeerClosed,
            Code::NoSpace => evtchn::Error::NoSpace,
            Code::Internal => evtchn::Error::Os(r.a as i32),
            _ => evtchn::Error::Unavailable,
        },
    }
}

struct Deferred {
    refs: Vec<GrantRef>,
    // Kept mapped (never reused) until the peer lets go.
    _map: Mapping,
}

struct Inner {
    domid: DomId,
    dir: PathBuf,
    conn: Mutex<UnixStream>,
    deferred: Mutex<Vec<Deferred>>,
    deferred_pages: AtomicUsize,
    deferred_total: AtomicU64,
    delayed: AtomicUsize,
}

impl Inner {
    fn call(&self, req: Request) -> Result<(Vec<u8>, Vec<OwnedFd>), CallError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // A failed write may still leave a reply to read (the host refused
        // the connection and hung up), so read regardless.
        let _ = (&*conn).write_all(&req.encode().frame());
        let mut fds = Vec::new();
        let mut len = [0u8; 4];
        recv_exact(&conn, &mut len, &mut fds)?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > proto::MAX_FRAME {
            return Err(CallError::BadReply);
        }
        let mut reply = vec![0u8; len];
        recv_exact(&conn, &mut reply, &mut fds)?;
        drop(conn);
        let status = reply.first().copied().ok_or(CallError::BadReply)?;
        if status == 0 {
            reply.remove(0);
            return Ok((reply, fds));
        }
        let mut r = Reader::new(reply.get(1..).unwrap_or(&[]));
        let code = Code::from_u8(status).ok_or(CallError::BadReply)?;
        let a = r.u32().ok_or(CallError::BadReply)?;
        let b = r.u32().ok_or(CallError::BadReply)?;
        Err(CallError::Refused(Refusal::new(code, a, b)))
    }

    /// Tries to end access to `refs`; `Ok(false)` if still mapped.
    fn end(&self, refs: &[GrantRef]) -> Result<bool, CallError> {
        match self.call(Request::EndAccess {
            refs: refs.to_vec(),
        }) {
            Ok(_) => Ok(true),
            Err(CallError::Refused(r)) if r.code == Code::StillMapped => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn defer(&self, refs: Vec<GrantRef>, map: Mapping) {
        let pages = refs.len();
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Deferred { refs, _map: map });
        // Relaxed: a statistic, ordered by the mutex above for anyone who
        // also looks at the list.
        self.deferred_pages.fetch_add(pages, Ordering::Relaxed);
        self.deferred_total
            .fetch_add(pages as u64, Ordering::Relaxed);
    }

    fn reclaim(&self) -> usize {
        let pending = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        let mut freed = 0;
        let mut keep = Vec::new();
        for d in pending {
            match self.end(&d.refs) {
                Ok(true) => freed += d.refs.len(),
                // Still mapped: keep waiting.
                Ok(false) => keep.push(d),
                // The host is gone (it revoked everything) or refuses the
                // refs (already revoked): the pages are ours alone again.
                Err(_) => freed += d.refs.len(),
            }
        }
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keep);
        // Relaxed: a statistic.
        self.deferred_pages.fetch_sub(freed, Ordering::Relaxed);
        freed
    }
}

fn recv_exact(
    conn: &UnixStream,
    mut buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<(), CallError> {
    while !buf.is_empty() {
        let n = xenmq_sys::sock::recv_with_fds(conn, buf, fds).map_err(|_| CallError::Gone)?;
        if n == 0 {
            return Err(CallError::Gone);
        }
        buf = buf.get_mut(n..).ok_or(CallError::BadReply)?;
    }
    Ok(())
}

/// One domain's connection to the simulated hypervisor: its grant table
/// ([`Grants`](xenmq::grant::Grants)) and event channels
/// ([`Events`](xenmq::evtchn::Events)). Cheap to clone; all clones are the
/// same connection. When the last clone (and every page and channel made
/// from it) is dropped, the connection closes, and for a guest that is its
/// death.
#[derive(Clone)]
pub struct Domain {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("domid", &self.inner.domid)
            .finish()
    }
}

impl Domain {
    /// Connects to the host in `dir` as domain `domid` (the domain must
    /// exist, and for a guest no other process may be attached).
    pub fn connect(dir: impl AsRef<Path>, domid: DomId) -> Result<Domain, Error> {
        let dir = dir.as_ref();
        let path = control_path(dir, domid);
        let stream =
            UnixStream::connect(&path).map_err(|source| Error::Connect { path, source })?;
        let dom = Domain {
            inner: Arc::new(Inner {
                domid,
                dir: dir.to_owned(),
                conn: Mutex::new(stream),
                deferred: Mutex::new(Vec::new()),
                deferred_pages: AtomicUsize::new(0),
                deferred_total: AtomicU64::new(0),
                delayed: AtomicUsize::new(0),
            }),
        };
        // A refused attach (busy) is answered at once; an accepted one is
        // silent, so probe with a harmless request to learn which it is.
        match dom.inner.call(Request::Status { port: 0 }) {
            Err(CallError::Refused(r)) if r.code == Code::BadPort => Ok(dom),
            Err(e) => Err(e.into()),
            Ok(_) => Err(Error::BadReply),
        }
    }

    /// Connects as the domain named by [`ENV_DIR`] and [`ENV_DOMID`].
    pub fn from_env() -> Result<Domain, Error> {
        let dir = std::env::var_os(ENV_DIR).ok_or(Error::Env(ENV_DIR))?;
        let domid = std::env::var(ENV_DOMID)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Env(ENV_DOMID))?;
        Domain::connect(PathBuf::from(dir), domid)
    }

    /// This domain's id.
    pub fn id(&self) -> DomId {
        self.inner.domid
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// This domain's Xenstore socket.
    pub fn store_path(&self) -> PathBuf {
        store_path(&self.inner.dir, self.inner.domid)
    }

    /// Pages ever deferred (dropped while still mapped by the peer).
    pub fn deferred_total(&self) -> u64 {
        // Relaxed: a statistic.
        self.inner.deferred_total.load(Ordering::Relaxed)
    }

    fn call(&self, req: Request) -> Result<(Vec<u8>, Vec<OwnedFd>), Error> {
        self.inner.call(req).map_err(Error::from)
    }

    /// Toolstack (dom0 only): creates a domain named `name`.
    pub fn create_domain(&self, name: &str) -> Result<DomId, Error> {
        if name.len() > proto::MAX_NAME {
            return Err(Error::Refused(Code::Malformed.into()));
        }
        let (body, _) = self.call(Request::Create {
            name: name.to_owned(),
        })?;
        Reader::new(&body).u16().ok_or(Error::BadReply)
    }

    /// Toolstack (dom0 only): destroys a domain, killing its process.
    pub fn destroy_domain(&self, domid: DomId) -> Result<(), Error> {
        self.call(Request::Destroy { domid }).map(drop)
    }

    /// Toolstack (dom0 only): SIGKILLs a domain's process.
    pub fn kill_domain(&self, domid: DomId) -> Result<(), Error> {
        self.call(Request::Kill { domid }).map(drop)
    }

    /// Toolstack (dom0 only): sets a domain's fault plan.
    pub fn set_faults(&self, domid: DomId, faults: &Faults) -> Result<(), Error> {
        self.call(Request::SetFaults {
            domid,
            faults: *faults,
        })
        .map(drop)
    }

    /// Toolstack (dom0 only): writes `data` at `offset` of the page behind
    /// `domid`'s grant `gref`.
    pub fn poke(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u32,
        data: &[u8],
    ) -> Result<(), Error> {
        if data.len() > PAGE_SIZE {
            return Err(Error::Refused(Refusal::new(
                Code::BadCount,
                data.len() as u32,
                PAGE_SIZE as u32,
            )));
        }
        self.call(Request::Poke {
            domid,
            gref,
            offset,
            data: data.to_vec(),
        })
        .map(drop)
    }

    /// Toolstack (dom0 only): writes seeded random `u32`s at `offsets` of
    /// the page behind `domid`'s grant `gref` (see
    /// [`Host::corrupt`](crate::sim::Host::corrupt)); returns what was
    /// written where.
    pub fn corrupt(
        &self,
        domid: DomId,
        gref: GrantRef,
        seed: u64,
        offsets: &[u32],
    ) -> Result<Vec<(u32, u32)>, Error> {
        let plan = crate::sim::fault::corruption(seed, offsets);
        for &(off, val) in &plan {
            self.poke(domid, gref, off, &val.to_le_bytes())?;
        }
        Ok(plan)
    }

    /// Toolstack (dom0 only): every domain.
    pub fn domains(&self) -> Result<Vec<DomainInfo>, Error> {
        let (body, _) = self.call(Request::List)?;
        let mut r = Reader::new(&body);
        let n = r.u16().ok_or(Error::BadReply)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let domid = r.u16().ok_or(Error::BadReply)?;
            let pid = r.u32().ok_or(Error::BadReply)?;
            let attached = r.u8().ok_or(Error::BadReply)? != 0;
            let grants = r.u32().ok_or(Error::BadReply)?;
            let maps = r.u32().ok_or(Error::BadReply)?;
            let ports = r.u32().ok_or(Error::BadReply)?;
            let len = r.u16().ok_or(Error::BadReply)?;
            let name = r.bytes(len.into()).ok_or(Error::BadReply)?;
            out.push(DomainInfo {
                domid,
                name: String::from_utf8_lossy(name).into_owned(),
                pid: Some(pid).filter(|&p| p != 0),
                attached,
                grants,
                maps,
                ports,
            });
        }
        Ok(out)
    }

    /// Sends raw bytes on the control connection and returns the raw reply
    /// frame body, for tests of the host's handling of hostile input.
    pub fn raw_request(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let conn = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        (&*conn).write_all(bytes).map_err(Error::Io)?;
        let mut len = [0u8; 4];
        (&*conn).read_exact(&mut len).map_err(Error::Io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > proto::MAX_FRAME {
            return Err(Error::BadReply);
        }
        let mut body = vec![0u8; len];
        (&*conn).read_exact(&mut body).map_err(Error::Io)?;
        Ok(body)
    }
}

fn parse_refs(body: &[u8]) -> Option<Vec<GrantRef>> {
    let mut r = Reader::new(body);
    let n = r.u32()?;
    r.u32s(n, proto::MAX_PAGES)
}

/// An access outside a page range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes at offset {offset} are outside the pages")]
pub struct OutOfBounds {
    /// The offset asked for.
    pub offset: usize,
    /// The length asked for.
    pub len: usize,
}

/// Copies bytes out of a mapping (volatile). A range outside it, or no
/// mapping (only while the owner is being dropped), is `OutOfBounds`.
fn read_mapping(map: Option<&Mapping>, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
    let len = out.len();
    map.ok_or(OutOfBounds { offset, len })?
        .read(offset, out)
        .map_err(|_| OutOfBounds { offset, len })
}

/// Copies bytes into a mapping (volatile); errors as [`read_mapping`].
/// Through the region, not the mapping's checked `write`: on a read-only
/// mapping the first write faults (SIGSEGV), as a write to a read-only
/// grant does on Xen.
fn write_mapping(map: Option<&Mapping>, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
    let len = data.len();
    map.ok_or(OutOfBounds { offset, len })?
        .region()
        .write_bytes(offset, data)
        .map_err(|_| OutOfBounds { offset, len })
}

/// Pages this domain granted to a peer (see [`grant::Shared`]).
pub struct SharedPages {
    dom: Arc<Inner>,
    map: Option<Mapping>,
    refs: Vec<GrantRef>,
    peer: DomId,
    access: Access,
}

impl std::fmt::Debug for SharedPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPages")
            .field("peer", &self.peer)
            .field("refs", &self.refs)
            .field("access", &self.access)
            .finish()
    }
}

impl SharedPages {
    /// Copies bytes out of the pages (volatile; the peer may be writing).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        read_mapping(self.map.as_ref(), offset, out)
    }

    /// Copies bytes into the pages (volatile).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        write_mapping(self.map.as_ref(), offset, data)
    }
}

impl grant::Pages for SharedPages {
    fn region(&self) -> Region {
        match &self.map {
            Some(m) => m.region(),
            // Unreachable in practice: `map` is only taken in Drop and
            // `end_access`, which consume the value.
            None => empty_region(),
        }
    }
}

fn empty_region() -> Region {
    Region::empty()
}

impl grant::Shared for SharedPages {
    fn peer(&self) -> DomId {
        self.peer
    }

    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    fn access(&self) -> Access {
        self.access
    }

    fn end_access(mut self) -> Result<(), (Self, grant::Error)> {
        match self.dom.end(&self.refs) {
            Ok(true) => {
                self.map = None;
                Ok(())
            }
            Ok(false) => Err((self, grant::Error::StillMapped)),
            Err(e) => Err((self, grant_error(e))),
        }
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        let Some(map) = self.map.take() else { return };
        let refs = std::mem::take(&mut self.refs);
        match self.dom.end(&refs) {
            // Still mapped by the peer: keep the pages (XSA-396).
            Ok(false) => self.dom.defer(refs, map),
            // Ended, or the host is gone (and revoked everything): the
            // pages are ours alone, unmap them.
            Ok(true) | Err(_) => drop(map),
        }
    }
}

/// A peer's pages mapped into this domain (see [`grant::Mapped`]).
pub struct MappedPages {
    dom: Arc<Inner>,
    map: Option<Mapping>,
    refs: Vec<GrantRef>,
    peer: DomId,
    access: Access,
    handle: u32,
}

impl std::fmt::Debug for MappedPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedPages")
            .field("peer", &self.peer)
            .field("refs", &self.refs)
            .field("access", &self.access)
            .finish()
    }
}

impl MappedPages {
    /// Copies bytes out of the pages (volatile; the peer may be writing).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        read_mapping(self.map.as_ref(), offset, out)
    }

    /// Copies bytes into the pages (volatile). On a read-only mapping this
    /// faults (SIGSEGV), as writing a read-only grant does on Xen.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        write_mapping(self.map.as_ref(), offset, data)
    }
}

impl grant::Pages for MappedPages {
    fn region(&self) -> Region {
        match &self.map {
            Some(m) => m.region(),
            None => empty_region(),
        }
    }
}

impl grant::Mapped for MappedPages {
    fn peer(&self) -> DomId {
        self.peer
    }

    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    fn access(&self) -> Access {
        self.access
    }
}

impl Drop for MappedPages {
    fn drop(&mut self) {
        // Unmap first, then tell the host: once it hears, the owner may end
        // access and reuse the pages.
        drop(self.map.take());
        let _ = self.dom.call(Request::Unmap {
            handle: self.handle,
        });
    }
}

impl grant::Grants for Domain {
    type Shared = SharedPages;
    type Mapped = MappedPages;

    fn domid(&self) -> DomId {
        self.inner.domid
    }

    fn share(
        &self,
        peer: DomId,
        pages: usize,
        access: Access,
    ) -> Result<SharedPages, grant::Error> {
        let limit = proto::MAX_PAGES;
        let n = u32::try_from(pages)
            .ok()
            .filter(|&n| n > 0 && n as usize <= limit)
            .ok_or(grant::Error::BadCount {
                count: pages,
                limit,
            })?;
        // Opportunistically release pages the peer has let go of.
        if self.inner.deferred_pages.load(Ordering::Relaxed) > 0 {
            self.inner.reclaim();
        }
        let req = Request::Share {
            peer,
            pages: n,
            readonly: access.is_read_only(),
        };
        let (body, mut fds) = self.inner.call(req).map_err(grant_error)?;
        let refs = parse_refs(&body)
            .filter(|r| r.len() == pages)
            .ok_or(grant::Error::Unavailable)?;
        let fd = fds
            .pop()
            .filter(|_| fds.is_empty())
            .ok_or(grant::Error::Unavailable)?;
        let map = match Mapping::file(fd.as_fd(), 0, pages.saturating_mul(PAGE_SIZE), true) {
            Ok(m) => m,
            Err(e) => {
                let _ = self.inner.end(&refs);
                return Err(grant::Error::Os(e.raw_os_error().unwrap_or(0)));
            }
        };
        Ok(SharedPages {
            dom: Arc::clone(&self.inner),
            map: Some(map),
            refs,
            peer,
            access,
        })
    }

    fn map(
        &self,
        peer: DomId,
        refs: &[GrantRef],
        access: Access,
    ) -> Result<MappedPages, grant::Error> {
        let limit = proto::MAX_PAGES;
        if refs.is_empty() || refs.len() > limit {
            return Err(grant::Error::BadCount {
                count: refs.len(),
                limit,
            });
        }
        let req = Request::Map {
            peer,
            readonly: access.is_read_only(),
            refs: refs.to_vec(),
        };
        let (body, fds) = self.inner.call(req).map_err(grant_error)?;
        let mut r = Reader::new(&body);
        let handle = r.u32().ok_or(grant::Error::Unavailable)?;
        let unmap = || {
            let _ = self.inner.call(Request::Unmap { handle });
        };
        let Some(k) = r.u16() else {
            unmap();
            return Err(grant::Error::Unavailable);
        };
        let mut pieces = Vec::with_capacity(k.into());
        let mut total = 0usize;
        for _ in 0..k {
            let piece = (|| {
                let i = r.u16()?;
                let first = r.u32()?;
                let pages = r.u32()?;
                let fd = fds.get(usize::from(i))?;
                Some(Piece {
                    fd: fd.as_fd(),
                    offset: u64::from(first).checked_mul(PAGE_SIZE as u64)?,
                    len: (pages as usize).checked_mul(PAGE_SIZE)?,
                })
            })();
            match piece {
                Some(p) => {
                    total = total.saturating_add(p.len / PAGE_SIZE);
                    pieces.push(p);
                }
                None => {
                    unmap();
                    return Err(grant::Error::Unavailable);
                }
            }
        }
        if total != refs.len() {
            unmap();
            return Err(grant::Error::Unavailable);
        }
        let map = match Mapping::new(&pieces, access == Access::ReadWrite) {
            Ok(m) => m,
            Err(e) => {
                unmap();
                return Err(grant::Error::Os(e.raw_os_error().unwrap_or(0)));
            }
        };
        Ok(MappedPages {
            dom: Arc::clone(&self.inner),
            map: Some(map),
            refs: refs.to_vec(),
            peer,
            access,
            handle,
        })
    }

    fn deferred(&self) -> usize {
        // Relaxed: a statistic.
        self.inner.deferred_pages.load(Ordering::Relaxed)
    }

    fn reclaim(&self) -> usize {
        self.inner.reclaim()
    }
}

/// One bound port of this domain (see [`evtchn::Channel`]). Pollable: the
/// descriptor ([`AsFd`]) is readable while a notification is pending.
pub struct Channel {
    dom: Arc<Inner>,
    port: Port,
    own: File,
    status: Mapping,
    peer: OnceLock<Arc<File>>,
    faults: Option<Mutex<NotifyFaults>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("port", &self.port).finish()
    }
}

/// At most this many delayed notifications are in flight per domain; more
/// are delivered at once (the fault stays bounded).
const MAX_DELAYED: usize = 64;

impl Channel {
    fn new(dom: &Arc<Inner>, body: &[u8], fds: Vec<OwnedFd>) -> Result<Channel, evtchn::Error> {
        let mut r = Reader::new(body);
        let port = r.u32().ok_or(evtchn::Error::Unavailable)?;
        let plan = r.faults().ok_or(evtchn::Error::Unavailable)?;
        let mut fds = fds.into_iter();
        let own = fds.next().ok_or(evtchn::Error::Unavailable)?;
        let status = fds.next().ok_or(evtchn::Error::Unavailable)?;
        let status = Mapping::file(status.as_fd(), 0, PAGE_SIZE, false)
            .map_err(|e| evtchn::Error::Os(e.raw_os_error().unwrap_or(0)))?;
        let peer = OnceLock::new();
        if let Some(p) = fds.next() {
            let _ = peer.set(Arc::new(File::from(p)));
        }
        Ok(Channel {
            dom: Arc::clone(dom),
            port,
            own: File::from(own),
            status,
            peer,
            faults: plan
                .affects_notify()
                .then(|| Mutex::new(NotifyFaults::for_port(plan, port))),
        })
    }

    fn state(&self) -> u32 {
        // Acquire: pairs with the host's write of the word, so what the host
        // did before publishing it (e.g. closing the peer port) is visible.
        // The host writes the word with `pwrite`, not atomically, but only
        // ever values below 256, so even a torn write reads as the old or
        // the new value.
        self.status
            .load_u32(0, Ordering::Acquire)
            .unwrap_or(proto::PORT_CLOSED)
    }

    fn peer_fd(&self) -> Result<&Arc<File>, evtchn::Error> {
        if let Some(f) = self.peer.get() {
            return Ok(f);
        }
        let (_, mut fds) = self
            .dom
            .call(Request::PeerFd { port: self.port })
            .map_err(event_error)?;
        let fd = fds.pop().ok_or(evtchn::Error::Unavailable)?;
        let _ = self.peer.set(Arc::new(File::from(fd)));
        self.peer.get().ok_or(evtchn::Error::Unavailable)
    }

    fn consume(&self) -> Result<bool, evtchn::Error> {
        let mut buf = [0u8; 8];
        match (&self.own).read(&mut buf) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(evtchn::Error::Os(e.raw_os_error().unwrap_or(0))),
        }
    }
}

fn signal(f: &File) {
    // The counter cannot realistically overflow; a full counter still
    // leaves the descriptor readable, which is all a notification means.
    let _ = (&*f).write(&1u64.to_le_bytes());
}

impl evtchn::Channel for Channel {
    fn port(&self) -> Port {
        self.port
    }

    fn notify(&self) -> Result<(), evtchn::Error> {
        match self.state() {
            // Not bound yet: dropped, as Xen does.
            proto::PORT_UNBOUND => return Ok(()),
            proto::PORT_CONNECTED => {}
            _ => return Err(evtchn::Error::PeerClosed),
        }
        let peer = self.peer_fd()?;
        let fate = match &self.faults {
            None => Fate::Deliver,
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).fate(),
        };
        match fate {
            Fate::Deliver => signal(peer),
            Fate::Drop => {}
            Fate::Duplicate => {
                signal(peer);
                signal(peer);
            }
            Fate::Delay(d) => {
                // Relaxed: only bounds the number of sleeper threads.
                if self.dom.delayed.fetch_add(1, Ordering::Relaxed) >= MAX_DELAYED {
                    self.dom.delayed.fetch_sub(1, Ordering::Relaxed);
                    signal(peer);
                } else {
                    let late = Arc::clone(peer);
                    let dom = Arc::clone(&self.dom);
                    let spawned = std::thread::Builder::new()
                        .name("xenmq-sim-delay".into())
                        .spawn(move || {
                            std::thread::sleep(d);
                            signal(&late);
                            dom.delayed.fetch_sub(1, Ordering::Relaxed);
                        });
                    if spawned.is_err() {
                        self.dom.delayed.fetch_sub(1, Ordering::Relaxed);
                        signal(peer);
                    }
                }
            }
        }
        Ok(())
    }

    fn poll(&self) -> Result<bool, evtchn::Error> {
        if self.consume()? {
            return Ok(true);
        }
        if self.state() == proto::PORT_CLOSED {
            return Err(evtchn::Error::PeerClosed);
        }
        Ok(false)
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool, evtchn::Error> {
        if evtchn::Channel::poll(self)? {
            return Ok(true);
        }
        let ready = xenmq_sys::poll_in(self.own.as_fd(), timeout)
            .map_err(|e| evtchn::Error::Os(e.raw_os_error().unwrap_or(0)))?;
        if !ready {
            return Ok(false);
        }
        evtchn::Channel::poll(self)
    }

    fn status(&self) -> Result<Status, evtchn::Error> {
        let (body, _) = self
            .dom
            .call(Request::Status { port: self.port })
            .map_err(event_error)?;
        let mut r = Reader::new(&body);
        let state = r.u8().ok_or(evtchn::Error::Unavailable)?;
        let remote = r.u16().ok_or(evtchn::Error::Unavailable)?;
        let remote_port = r.u32().ok_or(evtchn::Error::Unavailable)?;
        Ok(match state {
            0 => Status::Unbound { remote },
            1 => Status::Interdomain {
                remote,
                remote_port,
            },
            _ => Status::Closed,
        })
    }
}

/// Waits until one of `channels` has a notification pending, or `timeout`
/// passes (`None`: for ever). Returns the index of a ready channel without
/// consuming its notification (call [`poll`](evtchn::Channel::poll) on it),
/// or `None` on timeout. At most 1024 channels.
pub fn wait_any(
    channels: &[&Channel],
    timeout: Option<Duration>,
) -> Result<Option<usize>, evtchn::Error> {
    if channels.len() > 1024 {
        return Err(evtchn::Error::Os(libc::EINVAL));
    }
    let fds: Vec<BorrowedFd<'_>> = channels.iter().map(|c| c.own.as_fd()).collect();
    xenmq_sys::poll_any(&fds, timeout).map_err(|e| evtchn::Error::Os(e.raw_os_error().unwrap_or(0)))
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.own.as_fd()
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = self.dom.call(Request::Close { port: self.port });
    }
}

impl evtchn::Events for Domain {
    type Channel = Channel;

    fn alloc_unbound(&self, remote: DomId) -> Result<Channel, evtchn::Error> {
        let (body, fds) = self
            .inner
            .call(Request::AllocUnbound { remote })
            .map_err(event_error)?;
        Channel::new(&self.inner, &body, fds)
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Channel, evtchn::Error> {
        let req = Request::Bind {
            remote,
            remote_port,
        };
        let (body, fds) = self.inner.call(req).map_err(event_error)?;
        Channel::new(&self.inner, &body, fds)
    }
}
