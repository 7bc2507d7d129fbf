//! A domain's event channels: bound ports ([`Channel`]) whose
//! notifications are eventfd writes straight to the peer, and
//! [`wait_any`] over several.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use xenmq::evtchn::{self, Port, Status};
use xenmq::grant::{DomId, PAGE_SIZE};
use xenmq_sys::Mapping;

use crate::sim::fault::{Fate, NotifyFaults};
use crate::sim::proto::{self, Code, Reader, Request};

use super::{CallError, Domain, Inner};

pub(super) fn event_error(e: CallError) -> evtchn::Error {
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
pub(super) const MAX_DELAYED: usize = 64;

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

pub(super) fn signal(f: &File) {
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
        let notified = self.consume()?;
        // The host kicks a port whose peer closed: that kick is the news
        // of the closure, not work, and a loop sleeping on the descriptor
        // would not look at the state again.
        if self.state() == proto::PORT_CLOSED {
            return Err(evtchn::Error::PeerClosed);
        }
        Ok(notified)
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
