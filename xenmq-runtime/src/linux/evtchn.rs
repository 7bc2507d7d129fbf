//! Event channels through `/dev/xen/evtchn`, above the [`sys`](super::sys)
//! seam.
//!
//! The device protocol: a `read` returns the numbers of pending ports, each
//! masked by the kernel as it was reported; writing a port number unmasks it.
//! [`Evtchn::wait`] reads, unmasks at once (so a notification arriving while
//! the caller works is not lost, only coalesced) and hands ports out one at a
//! time.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xenmq::evtchn::Port;
use xenmq::grant::DomId;

use super::sys::abi::{EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};
use super::sys::{EvtchnDev, EvtchnIo};
use super::{dev_err, Error, Result};

/// Ports read from the device per `read` call.
const BATCH: usize = 64;

#[derive(Debug, Default)]
struct State {
    /// Ports bound through this handle.
    bound: BTreeSet<Port>,
    /// Fired, not yet handed out; each at most once, all in `bound`, so the
    /// queue never outgrows the bound set.
    pending: VecDeque<Port>,
}

/// What a port is connected to, as Xen reports it (`EVTCHNOP_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortStatus {
    /// Not in use.
    Closed,
    /// Waiting for `remote` to bind it. A port that was connected reads so
    /// again once the peer closed its end.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote`.
    Interdomain {
        /// The peer.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to something else (pirq, virq, ipi): the `EVTCHNSTAT_*` value.
    Other(u32),
}

/// A handle on `/dev/xen/evtchn` (or a fake of it in tests). Ports bound
/// through it are unbound when it is dropped (the kernel does so when the
/// descriptor closes).
#[derive(Debug)]
pub struct Evtchn<D: EvtchnIo = EvtchnDev> {
    dev: D,
    state: Mutex<State>,
}

impl Evtchn {
    /// Opens `/dev/xen/evtchn`.
    pub fn open() -> Result<Self> {
        let dev = EvtchnDev::open().map_err(|source| Error::Open {
            path: EvtchnDev::PATH,
            source,
        })?;
        Ok(Self::with_device(dev))
    }
}

impl<D: EvtchnIo> Evtchn<D> {
    /// A handle over any implementation of the device seam.
    pub fn with_device(dev: D) -> Self {
        Evtchn {
            dev,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the sets consistent
        // (every update is a single insert/remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates a port that `peer` may bind.
    pub fn bind_unbound(&self, peer: DomId) -> Result<Port> {
        let port = self
            .dev
            .bind_unbound_port(u32::from(peer))
            .map_err(dev_err("IOCTL_EVTCHN_BIND_UNBOUND_PORT"))?;
        self.state().bound.insert(port);
        tracing::debug!(peer, port, "evtchn: unbound port allocated");
        Ok(port)
    }

    /// Binds the peer's unbound `remote_port`; returns the local port.
    pub fn bind_interdomain(&self, peer: DomId, remote_port: Port) -> Result<Port> {
        let port = self
            .dev
            .bind_interdomain(u32::from(peer), remote_port)
            .map_err(dev_err("IOCTL_EVTCHN_BIND_INTERDOMAIN"))?;
        self.state().bound.insert(port);
        tracing::debug!(peer, remote_port, port, "evtchn: bound to the peer's port");
        Ok(port)
    }

    /// Sets the peer's pending bit for `port`.
    pub fn notify(&self, port: Port) -> Result<()> {
        if !self.state().bound.contains(&port) {
            return Err(Error::NotBound(port));
        }
        self.dev
            .notify(port)
            .map_err(dev_err("IOCTL_EVTCHN_NOTIFY"))
    }

    /// Unbinds `port`; a pending notification of it is dropped.
    pub fn unbind(&self, port: Port) -> Result<()> {
        {
            let mut st = self.state();
            if !st.bound.remove(&port) {
                return Err(Error::NotBound(port));
            }
            st.pending.retain(|&p| p != port);
        }
        self.dev
            .unbind(port)
            .map_err(dev_err("IOCTL_EVTCHN_UNBIND"))?;
        tracing::debug!(port, "evtchn: port unbound");
        Ok(())
    }

    /// What Xen says `port` is connected to. Needs `/dev/xen/privcmd`.
    pub fn status(&self, port: Port) -> Result<PortStatus> {
        if !self.state().bound.contains(&port) {
            return Err(Error::NotBound(port));
        }
        let st = self.dev.status(port).map_err(dev_err("EVTCHNOP_status"))?;
        Ok(match st.status {
            EVTCHNSTAT_CLOSED => PortStatus::Closed,
            EVTCHNSTAT_UNBOUND => PortStatus::Unbound {
                remote: st.remote_dom,
            },
            EVTCHNSTAT_INTERDOMAIN => PortStatus::Interdomain {
                remote: st.remote_dom,
                remote_port: st.remote_port,
            },
            other => PortStatus::Other(other),
        })
    }

    /// The next port that fired, waiting up to `timeout` (`None`: forever).
    /// `Ok(None)` on timeout. Notifications that arrive before the port is
    /// handed out coalesce into one.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Option<Port>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(p) = self.take_pending()? {
                return Ok(Some(p));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(None);
            }
            self.dev
                .wait_readable(left)
                .map_err(dev_err("poll of /dev/xen/evtchn"))?;
        }
    }

    /// Pops a queued port, refilling the queue from the device once without
    /// blocking.
    fn take_pending(&self) -> Result<Option<Port>> {
        let mut st = self.state();
        if let Some(p) = st.pending.pop_front() {
            return Ok(Some(p));
        }
        let mut buf = [0u32; BATCH];
        let n = self
            .dev
            .read_pending(&mut buf)
            .map_err(dev_err("read of /dev/xen/evtchn"))?;
        let fired = buf.get(..n).unwrap_or(&[]);
        if fired.is_empty() {
            return Ok(None);
        }
        // Unmask before handing out: a notification from now on fires again.
        self.dev
            .unmask(fired)
            .map_err(dev_err("write (unmask) of /dev/xen/evtchn"))?;
        for &p in fired {
            if st.bound.contains(&p) && !st.pending.contains(&p) {
                st.pending.push_back(p);
            }
        }
        Ok(st.pending.pop_front())
    }
}

impl<D: EvtchnIo + AsFd> AsFd for Evtchn<D> {
    /// Readable when a port may have fired: for `poll`/`epoll` loops, which
    /// then call [`Evtchn::wait`] with a zero timeout.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// An evtchn stand-in: ports pair up locally, notify marks the peer
    /// pending (masked until unmasked), as the kernel driver does.
    #[derive(Debug, Default)]
    struct Fake {
        inner: Mutex<FakeState>,
    }
    #[derive(Debug, Default)]
    struct FakeState {
        next: u32,
        peer_of: std::collections::BTreeMap<u32, u32>,
        fired: Vec<u32>,
        masked: BTreeSet<u32>,
        log: Vec<String>,
    }

    impl EvtchnIo for Fake {
        fn bind_unbound_port(&self, remote: u32) -> io::Result<u32> {
            let mut s = self.inner.lock().unwrap();
            s.next += 1;
            let p = s.next;
            s.log.push(format!("unbound {remote} -> {p}"));
            Ok(p)
        }
        fn bind_interdomain(&self, remote: u32, rport: u32) -> io::Result<u32> {
            let mut s = self.inner.lock().unwrap();
            s.next += 1;
            let p = s.next;
            s.peer_of.insert(p, rport);
            s.peer_of.insert(rport, p);
            s.log.push(format!("interdomain {remote}:{rport} -> {p}"));
            Ok(p)
        }
        fn unbind(&self, port: u32) -> io::Result<()> {
            self.inner
                .lock()
                .unwrap()
                .log
                .push(format!("unbind {port}"));
            Ok(())
        }
        fn notify(&self, port: u32) -> io::Result<()> {
            let mut s = self.inner.lock().unwrap();
            let peer = s.peer_of[&port];
            if !s.masked.contains(&peer) && !s.fired.contains(&peer) {
                s.fired.push(peer);
                s.masked.insert(peer);
            }
            Ok(())
        }
        fn read_pending(&self, ports: &mut [u32]) -> io::Result<usize> {
            let mut s = self.inner.lock().unwrap();
            let n = s.fired.len().min(ports.len());
            for (i, p) in s.fired.drain(..n).enumerate() {
                ports[i] = p;
            }
            Ok(n)
        }
        fn unmask(&self, ports: &[u32]) -> io::Result<()> {
            let mut s = self.inner.lock().unwrap();
            for p in ports {
                s.masked.remove(p);
            }
            s.log.push(format!("unmask {ports:?}"));
            Ok(())
        }
        fn status(&self, port: u32) -> io::Result<crate::linux::sys::abi::EvtchnStatus> {
            let s = self.inner.lock().unwrap();
            let mut st = crate::linux::sys::abi::EvtchnStatus {
                port,
                ..Default::default()
            };
            match s.peer_of.get(&port) {
                Some(&peer) => {
                    st.status = EVTCHNSTAT_INTERDOMAIN;
                    st.remote_dom = 3;
                    st.remote_port = peer;
                }
                None => {
                    st.status = EVTCHNSTAT_UNBOUND;
                    st.remote_dom = 3;
                }
            }
            Ok(st)
        }
        fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
            let ready = !self.inner.lock().unwrap().fired.is_empty();
            if !ready {
                std::thread::sleep(timeout.unwrap_or(Duration::from_millis(1)));
            }
            Ok(ready)
        }
    }

    #[test]
    fn notify_reaches_the_bound_peer_and_coalesces() {
        let ev = Evtchn::with_device(Fake::default());
        let a = ev.bind_unbound(3).unwrap();
        let b = ev.bind_interdomain(3, a).unwrap();
        assert_eq!(ev.wait(Some(Duration::from_millis(5))).unwrap(), None);
        ev.notify(b).unwrap();
        ev.notify(b).unwrap();
        assert_eq!(ev.wait(Some(Duration::ZERO)).unwrap(), Some(a));
        // The two notifications coalesced; the port was unmasked on the way.
        assert_eq!(ev.wait(Some(Duration::ZERO)).unwrap(), None);
        ev.notify(b).unwrap();
        assert_eq!(ev.wait(Some(Duration::from_secs(1))).unwrap(), Some(a));
        let log = ev.dev.inner.lock().unwrap().log.clone();
        assert_eq!(
            log,
            [
                "unbound 3 -> 1",
                "interdomain 3:1 -> 2",
                "unmask [1]",
                "unmask [1]"
            ]
        );
    }

    #[test]
    fn unknown_ports_are_refused_and_unbind_forgets() {
        let ev = Evtchn::with_device(Fake::default());
        assert!(matches!(ev.notify(9), Err(Error::NotBound(9))));
        assert!(matches!(ev.status(9), Err(Error::NotBound(9))));
        let a = ev.bind_unbound(3).unwrap();
        assert_eq!(ev.status(a).unwrap(), PortStatus::Unbound { remote: 3 });
        let b = ev.bind_interdomain(3, a).unwrap();
        assert_eq!(
            ev.status(b).unwrap(),
            PortStatus::Interdomain {
                remote: 3,
                remote_port: a
            }
        );
        ev.notify(b).unwrap();
        ev.unbind(a).unwrap();
        // a fired, but it is no longer ours: unmasked, never handed out.
        assert_eq!(ev.wait(Some(Duration::ZERO)).unwrap(), None);
        assert!(matches!(ev.unbind(a), Err(Error::NotBound(_))));
    }
}
