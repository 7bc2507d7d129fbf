//! The backend peer: the second process of every run. The frontend (this
//! process) lays out the shared memory, spawns a copy of the running binary
//! with [`PEER_ENV`] naming what to serve, and the copy runs the backend of
//! one contender ([`peer_main`]) until the frontend sends STOP.

use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xenmq::error::Chain;
use xenmq::ring::native;
use xenmq::shm::Region;
use xenmq::sync::Ordering;

use xenmq_sys::process::{die_with_parent, kill9, pin_to};
use xenmq_sys::{EventFd, Mapping, MemfdFlags};

use crate::proto::{Compat1, Compat4, Native1, Native4, Request, Response, BUF, MAX_SLOTS};
use crate::{floor, socket, xring, Error, Impl};

/// The environment variable that turns a re-executed benchmark binary into
/// a backend peer.
pub const PEER_ENV: &str = "XENMQ_BENCH_PEER";

/// The shared memory of a run: a control page, the ring (up to 4 pages),
/// then the bulk buffers.
pub(crate) const PAGE: usize = 4096;
pub(crate) const CTL_LEN: usize = PAGE;
pub(crate) const RING_OFF: usize = CTL_LEN;
pub(crate) const RING_MAX: usize = 4 * PAGE;
pub(crate) const DATA_OFF: usize = RING_OFF + RING_MAX;
pub(crate) const DATA_LEN: usize = MAX_SLOTS * BUF;
pub(crate) const SHM_LEN: usize = DATA_OFF + DATA_LEN;

// Control page words, each on its own cache line but the two counters.
pub(crate) const CTL_READY: usize = 0;
pub(crate) const CTL_NOTIFIES: usize = 64;
pub(crate) const CTL_ERRORS: usize = 72;
pub(crate) const CTL_PING: usize = 128;

/// The peer's instructions, passed in [`PEER_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerSpec {
    pub what: PeerKind,
    pub pages: u32,
    pub spin: u32,
    pub memfd: i32,
    pub ev_back: i32,
    pub ev_front: i32,
    pub sock: i32,
    pub cpu: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    Ring(Impl),
    CacheLine,
}

impl PeerSpec {
    fn encode(&self) -> String {
        let what = match self.what {
            PeerKind::Ring(i) => i.name(),
            PeerKind::CacheLine => "cacheline",
        };
        format!(
            "{what} {} {} {} {} {} {} {}",
            self.pages, self.spin, self.memfd, self.ev_back, self.ev_front, self.sock, self.cpu
        )
    }

    fn decode(s: &str) -> Option<PeerSpec> {
        let mut f = s.split(' ');
        let what = match f.next()? {
            "cacheline" => PeerKind::CacheLine,
            name => PeerKind::Ring(Impl::parse(name)?),
        };
        let mut n = || f.next().and_then(|v| v.parse::<i64>().ok());
        Some(PeerSpec {
            what,
            pages: u32::try_from(n()?).ok()?,
            spin: u32::try_from(n()?).ok()?,
            memfd: i32::try_from(n()?).ok()?,
            ev_back: i32::try_from(n()?).ok()?,
            ev_front: i32::try_from(n()?).ok()?,
            sock: i32::try_from(n()?).ok()?,
            cpu: n()?,
        })
    }
}

/// The backend process: `Some(exit code)` when this process was started as
/// a peer (the [`PEER_ENV`] variable is set), `None` otherwise.
pub fn peer_main() -> Option<ExitCode> {
    let spec = std::env::var(PEER_ENV).ok()?;
    Some(match PeerSpec::decode(&spec) {
        None => {
            eprintln!("error: bench peer: bad {PEER_ENV}={spec:?}");
            ExitCode::from(2)
        }
        Some(spec) => match peer(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: bench peer: {}", Chain(&e));
                ExitCode::FAILURE
            }
        },
    })
}

pub(crate) fn ring_bytes(pages: u32) -> usize {
    (pages as usize * PAGE).min(RING_MAX)
}

fn peer(spec: &PeerSpec) -> Result<(), Error> {
    die_with_parent()?;
    if let Ok(cpu) = usize::try_from(spec.cpu) {
        pin_to(cpu)?;
    }
    let memfd = xenmq_sys::inherit(spec.memfd)?;
    let map = Mapping::file(&memfd, 0, SHM_LEN, true)?;
    let shm = map.region();
    let ctl = shm.subregion(0, CTL_LEN)?;
    let ring = shm.subregion(RING_OFF, ring_bytes(spec.pages))?;
    let data = shm.subregion(DATA_OFF, DATA_LEN)?;
    let publish = |c: xring::BackCounters| -> Result<(), Error> {
        // Relaxed: statistics read by the frontend after the run, ordered by
        // the STOP exchange and process exit.
        ctl.store_u64(CTL_NOTIFIES, c.notifies, Ordering::Relaxed)?;
        ctl.store_u64(CTL_ERRORS, c.errors, Ordering::Relaxed)?;
        Ok(())
    };
    let ready = || {
        // Release: everything the peer set up happens before the frontend
        // sees `ready` (pairs with its Acquire load in `wait_ready`).
        ctl.store_u64(CTL_READY, 1, Ordering::Release)
    };
    match spec.what {
        PeerKind::CacheLine => {
            ready()?;
            floor::cacheline_peer(ctl, CTL_PING)
        }
        PeerKind::Ring(Impl::Socket) => {
            let sock = std::os::unix::net::UnixStream::from(xenmq_sys::inherit(spec.sock)?);
            ready()?;
            let window = slots(Impl::Socket, spec.pages)?;
            socket::back_run(sock, window, spec.spin, publish)
        }
        PeerKind::Ring(which) => {
            let ev_wait = EventFd::inherit(spec.ev_back)?;
            let ev_notify = EventFd::inherit(spec.ev_front)?;
            match which {
                #[cfg(xenmq_cring)]
                Impl::CRing => {
                    ready()?;
                    let nslots = slots(which, spec.pages)?;
                    let counters = ctl.subregion(CTL_NOTIFIES - CTL_NOTIFIES % 64, 64)?;
                    crate::cring::c_back_run(
                        ring,
                        data,
                        u64::from(nslots),
                        &ev_wait,
                        &ev_notify,
                        spec.spin,
                        counters,
                    )
                    .map_err(Error::from)
                }
                #[cfg(not(xenmq_cring))]
                Impl::CRing => Err(Error::Setup(format!(
                    "c-ring is not in this build: {}",
                    crate::C_RING_ABSENT
                ))),
                Impl::Compat | Impl::Native => {
                    fn serve<P: xring::BenchProtocol>(
                        ring: Region,
                        data: Region,
                        (ev_wait, ev_notify): (&EventFd, &EventFd),
                        spin: u32,
                        ready: impl FnOnce() -> Result<(), xenmq::shm::Error>,
                        publish: impl FnMut(xring::BackCounters) -> Result<(), Error>,
                    ) -> Result<(), Error> {
                        let mut back = xring::Back::<P>::new(ring, data, ev_wait, ev_notify, spin)?;
                        ready()?;
                        back.run(publish)
                    }
                    let evs = (&ev_wait, &ev_notify);
                    match (which, spec.pages) {
                        (Impl::Compat, 1) => {
                            serve::<Compat1>(ring, data, evs, spec.spin, ready, publish)
                        }
                        (Impl::Compat, _) => {
                            serve::<Compat4>(ring, data, evs, spec.spin, ready, publish)
                        }
                        (_, 1) => serve::<Native1>(ring, data, evs, spec.spin, ready, publish),
                        (_, _) => serve::<Native4>(ring, data, evs, spec.spin, ready, publish),
                    }
                }
                Impl::Socket => Err(Error::Setup("unreachable contender".into())),
            }
        }
    }
}

/// Ring slots of a contender at a ring size: ring.h rounds 63 and 255
/// entries down to 32 and 128; the native layout fits the same counts; the
/// socket keeps as many requests in flight.
pub(crate) fn slots(which: Impl, pages: u32) -> Result<u32, Error> {
    let bytes = ring_bytes(pages);
    Ok(match which {
        Impl::Native => native::Layout::new::<Request, Response>(bytes)?.slots(),
        Impl::Compat => xenmq::ring::compat::Layout::new::<Request, Response>(bytes)?.size,
        Impl::CRing | Impl::Socket => {
            let n = ((bytes - 64) / 64) as u32;
            1 << (31 - n.leading_zeros())
        }
    })
}

/// A running backend peer, killed if it outlives its run.
pub(crate) struct Peer {
    child: Child,
    watchdog: mpsc::Sender<()>,
}

pub(crate) fn spawn_peer(spec: &PeerSpec, limit: Duration) -> Result<Peer, Error> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("bench")
        .env(PEER_ENV, spec.encode())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    // A run that hangs (a peer that died mid-run leaves the frontend asleep
    // on its eventfd) ends the benchmark instead of blocking forever.
    let (tx, rx) = mpsc::channel::<()>();
    let pid = child.id();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let _ = kill9(pid);
            eprintln!("\nxenmq bench: a run took longer than {limit:?}; giving up");
            std::process::exit(1);
        }
    });
    Ok(Peer {
        child,
        watchdog: tx,
    })
}

impl Peer {
    pub(crate) fn wait_ready(&mut self, ctl: &Region) -> Result<(), Error> {
        let t = Instant::now();
        // Acquire: pairs with the peer's Release store of `ready`.
        while ctl.load_u64(CTL_READY, Ordering::Acquire)? != 1 {
            if let Some(st) = self.child.try_wait()? {
                return Err(Error::Setup(format!(
                    "the backend process exited early ({st})"
                )));
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err(Error::Setup("the backend process did not start".into()));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<(), Error> {
        let st = self.child.wait()?;
        let _ = self.watchdog.send(());
        if !st.success() {
            return Err(Error::Setup(format!("the backend process failed ({st})")));
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = self.watchdog.send(());
    }
}

/// Spawns the cache-line peer; used by [`floor::cacheline`].
pub(crate) fn spawn_cacheline_peer(
    cpu: Option<usize>,
    limit: Duration,
) -> Result<(Peer, Mapping), Error> {
    let memfd = xenmq_sys::memfd(c"xenmq-bench-cl", SHM_LEN, MemfdFlags::empty())?;
    let map = Mapping::file(&memfd, 0, SHM_LEN, true)?;
    let spec = PeerSpec {
        what: PeerKind::CacheLine,
        pages: 1,
        spin: 0,
        memfd: memfd.as_raw_fd(),
        ev_back: -1,
        ev_front: -1,
        sock: -1,
        cpu: cpu.map_or(-1, |c| c as i64),
    };
    let mut peer = spawn_peer(&spec, limit)?;
    peer.wait_ready(&map.region())?;
    Ok((peer, map))
}
