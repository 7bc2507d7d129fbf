//! A domain's side of the simulator: the [`Grants`](xenmq::grant::Grants) and [`Events`](xenmq::evtchn::Events)
//! implementations a driver uses, talking to the host over the domain's
//! control socket.
//!
//! The data path never goes through the host: granted and mapped pages are
//! memfds mapped in this process, and `notify` writes the peer's eventfd
//! directly.
//!
//! As in `linux/`, the grant table is in `grant.rs` and the event channels
//! in `evtchn.rs`; this file holds the domain's connection to the host.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use xenmq::grant::{DomId, GrantRef, PAGE_SIZE};

use crate::sim::fault::Faults;
use crate::sim::host::DomainInfo;
use crate::sim::proto::{self, Code, Reader, Refusal, Request};
use crate::sim::Error;

mod evtchn;
mod grant;

use grant::Deferred;

pub use evtchn::{wait_any, Channel};
pub use grant::{MappedPages, OutOfBounds, SharedPages};

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
/// from it) is dropped, the connection closes and the host releases what
/// it shared, mapped and bound; the domain lives on until it is destroyed.
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
    /// exist; other processes may be attached to it too). What this
    /// connection shares, maps and binds is released when it closes; the
    /// domain lives on.
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
        // An accepted attach is silent and a gone domain hangs up, so probe
        // with a harmless request to learn which it is.
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
            let processes = r.u32().ok_or(Error::BadReply)?;
            let grants = r.u32().ok_or(Error::BadReply)?;
            let maps = r.u32().ok_or(Error::BadReply)?;
            let ports = r.u32().ok_or(Error::BadReply)?;
            let len = r.u16().ok_or(Error::BadReply)?;
            let name = r.bytes(len.into()).ok_or(Error::BadReply)?;
            out.push(DomainInfo {
                domid,
                name: String::from_utf8_lossy(name).into_owned(),
                pid: Some(pid).filter(|&p| p != 0),
                attached: processes > 0,
                processes,
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
