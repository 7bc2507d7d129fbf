//! The platform traits on Linux userspace: [`Grants`] implements
//! `xenmq::grant::Grants` over gntalloc and gntdev, [`Events`] implements
//! `xenmq::evtchn::Events` over evtchn, one descriptor per [`Channel`] (so
//! each channel is pollable on its own).
//!
//! What Linux decides for us:
//! - Ending access while the peer still maps the pages: Linux's
//!   `gnttab_end_foreign_access` keeps such pages until the peer unmaps
//!   (XSA-396), so `end_access` succeeds and [`Grants::deferred`] is always 0;
//!   the deferral is the kernel's.
//! - Port status comes from `EVTCHNOP_status` through `/dev/xen/privcmd`,
//!   which Linux restricts in an unprivileged domU: there `status` fails with
//!   `Os(EPERM)` and `wait` cannot tell that the peer closed its end.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xenmq::evtchn::{self, Port};
use xenmq::grant::{self, Access, DomId, GrantRef, DOMID_FIRST_RESERVED};
use xenmq::shm::Region;

use super::sys::{EvtchnDev, EvtchnIo, GntallocDev, GntallocIo, GntdevDev, GntdevIo};
use super::{Error, Evtchn, Gntalloc, Gntdev, Mapped, PortStatus, Shared, MAX_PAGES};

fn errno(e: &Error) -> Option<i32> {
    match e {
        Error::Open { source, .. } | Error::Device { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

fn grant_error(e: Error) -> grant::Error {
    match &e {
        Error::Open { .. } => grant::Error::Unavailable,
        Error::PageCount(n) => grant::Error::BadCount {
            count: *n,
            limit: MAX_PAGES,
        },
        _ => match errno(&e) {
            Some(libc::ENOMEM | libc::ENOSPC) => grant::Error::NoSpace,
            Some(n) => grant::Error::Os(n),
            None => grant::Error::Os(libc::EIO),
        },
    }
}

/// The grant table of this domain through `/dev/xen/gntalloc` and
/// `/dev/xen/gntdev` (or fakes of them in tests). Clones share the two open
/// devices, so that many device ends (a [`crate::device::Backends`]) use
/// one pair of descriptors.
#[derive(Debug)]
pub struct Grants<A: GntallocIo = GntallocDev, B: GntdevIo = GntdevDev> {
    domid: DomId,
    alloc: Gntalloc<A>,
    dev: Gntdev<B>,
}

impl<A: GntallocIo, B: GntdevIo> Clone for Grants<A, B> {
    fn clone(&self) -> Self {
        Grants {
            domid: self.domid,
            alloc: self.alloc.clone(),
            dev: self.dev.clone(),
        }
    }
}

impl Grants {
    /// Opens both devices. `domid` is this domain's id (Xenstore's `domid`
    /// key in a guest, 0 in dom0).
    pub fn open(domid: DomId) -> Result<Self, Error> {
        Ok(Grants {
            domid,
            alloc: Gntalloc::open()?,
            dev: Gntdev::open()?,
        })
    }
}

impl<A: GntallocIo, B: GntdevIo> Grants<A, B> {
    /// Over any implementations of the device seams.
    pub fn with_devices(domid: DomId, alloc: A, dev: B) -> Self {
        Grants {
            domid,
            alloc: Gntalloc::with_device(alloc),
            dev: Gntdev::with_device(dev),
        }
    }

    fn check(peer: DomId, pages: usize) -> Result<(), grant::Error> {
        if peer >= DOMID_FIRST_RESERVED {
            return Err(grant::Error::NoDomain(peer));
        }
        if pages == 0 || pages > MAX_PAGES {
            return Err(grant::Error::BadCount {
                count: pages,
                limit: MAX_PAGES,
            });
        }
        Ok(())
    }
}

impl<A: GntallocIo, B: GntdevIo> grant::Grants for Grants<A, B> {
    type Shared = Shared<A>;
    type Mapped = Mapped<B>;

    fn domid(&self) -> DomId {
        self.domid
    }

    fn share(&self, peer: DomId, pages: usize, access: Access) -> Result<Shared<A>, grant::Error> {
        Self::check(peer, pages)?;
        self.alloc
            .share(peer, pages, !access.is_read_only())
            .map_err(grant_error)
    }

    /// Xen refuses a reference that is not granted to us, or a read-write
    /// map of a read-only grant, when the pages are mapped (the mmap), and
    /// Linux reports both the same way (`EINVAL`/`EFAULT`). So a refused
    /// read-write map is retried read-only: if that works the answer is
    /// [`grant::Error::ReadOnly`], else [`grant::Error::BadRef`]. Either names
    /// the first reference (Linux does not say which one failed).
    fn map(
        &self,
        peer: DomId,
        refs: &[GrantRef],
        access: Access,
    ) -> Result<Mapped<B>, grant::Error> {
        Self::check(peer, refs.len())?;
        let writable = !access.is_read_only();
        let e = match self.dev.map(peer, refs, writable) {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        let gref = refs.first().copied().unwrap_or(0);
        let refused = matches!(&e, Error::Device { op, .. } if op.starts_with("mmap"))
            && matches!(
                errno(&e),
                Some(libc::EINVAL | libc::EFAULT | libc::ENOENT | libc::EPERM | libc::EACCES)
            );
        if !refused {
            return Err(grant_error(e));
        }
        if writable && self.dev.map(peer, refs, false).is_ok() {
            // (The probe mapping is dropped, i.e. unmapped, right here.)
            return Err(grant::Error::ReadOnly { domid: peer, gref });
        }
        Err(grant::Error::BadRef { domid: peer, gref })
    }

    /// Always 0: Linux keeps pages the peer still maps itself.
    fn deferred(&self) -> usize {
        0
    }

    /// Always 0, as [`grant::Grants::deferred`].
    fn reclaim(&self) -> usize {
        0
    }
}

impl<A: GntallocIo> grant::Pages for Shared<A> {
    fn region(&self) -> Region {
        self.mapping().region()
    }
}

impl<A: GntallocIo> grant::Shared for Shared<A> {
    fn peer(&self) -> DomId {
        Shared::peer(self)
    }

    fn refs(&self) -> &[GrantRef] {
        self.grefs()
    }

    fn access(&self) -> Access {
        if self.is_writable() {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        }
    }

    fn end_access(self) -> Result<(), (Self, grant::Error)> {
        self.try_close().map_err(|(s, e)| (s, grant_error(e)))
    }
}

impl<B: GntdevIo> grant::Pages for Mapped<B> {
    fn region(&self) -> Region {
        self.mapping().region()
    }
}

impl<B: GntdevIo> grant::Mapped for Mapped<B> {
    fn peer(&self) -> DomId {
        Mapped::peer(self)
    }

    fn refs(&self) -> &[GrantRef] {
        self.grefs()
    }

    fn access(&self) -> Access {
        if self.is_writable() {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        }
    }
}

fn event_error(e: Error) -> evtchn::Error {
    match &e {
        Error::Open { .. } => evtchn::Error::Unavailable,
        _ => match errno(&e) {
            Some(libc::ENOSPC | libc::EMFILE | libc::ENFILE) => evtchn::Error::NoSpace,
            Some(n) => evtchn::Error::Os(n),
            None => evtchn::Error::Os(libc::EIO),
        },
    }
}

/// Event channels through `/dev/xen/evtchn`: each [`Channel`] has its own
/// descriptor. `open` is how a channel gets its device (a fake in tests).
#[derive(Debug, Clone)]
pub struct Events<F = fn() -> io::Result<EvtchnDev>> {
    open: F,
}

impl Events {
    /// Channels on `/dev/xen/evtchn`.
    pub fn new() -> Self {
        Events {
            open: EvtchnDev::open,
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: EvtchnIo, F: Fn() -> io::Result<D>> Events<F> {
    /// Channels on devices made by `open`.
    pub fn with_opener(open: F) -> Self {
        Events { open }
    }

    fn device(&self) -> Result<Evtchn<D>, evtchn::Error> {
        (self.open)()
            .map(Evtchn::with_device)
            .map_err(|_| evtchn::Error::Unavailable)
    }
}

impl<D: EvtchnIo, F: Fn() -> io::Result<D>> evtchn::Events for Events<F> {
    type Channel = Channel<D>;

    fn alloc_unbound(&self, remote: DomId) -> Result<Channel<D>, evtchn::Error> {
        if remote >= DOMID_FIRST_RESERVED {
            return Err(evtchn::Error::NoDomain(remote));
        }
        let ev = self.device()?;
        let port = ev.bind_unbound(remote).map_err(|e| match errno(&e) {
            Some(libc::ESRCH) => evtchn::Error::NoDomain(remote),
            _ => event_error(e),
        })?;
        Ok(Channel {
            ev,
            port,
            connected: AtomicBool::new(false),
        })
    }

    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Channel<D>, evtchn::Error> {
        if remote >= DOMID_FIRST_RESERVED {
            return Err(evtchn::Error::NoDomain(remote));
        }
        let ev = self.device()?;
        let port = ev
            .bind_interdomain(remote, remote_port)
            .map_err(|e| match errno(&e) {
                Some(libc::ESRCH) => evtchn::Error::NoDomain(remote),
                Some(libc::EINVAL | libc::EPERM) => evtchn::Error::BadPort {
                    domid: remote,
                    port: remote_port,
                },
                _ => event_error(e),
            })?;
        Ok(Channel {
            ev,
            port,
            connected: AtomicBool::new(true),
        })
    }
}

/// How long a blocked [`Channel::wait`] sleeps between checks that the peer
/// is still there.
const PEER_CHECK: Duration = Duration::from_secs(1);

/// How often a loop sleeping on the channel's descriptor checks that the
/// peer is still there ([`evtchn::Channel::peer_check`]).
const PEER_PROBE: Duration = Duration::from_millis(500);

/// One bound local port, with its own `/dev/xen/evtchn` descriptor (closed,
/// and the port with it, on drop).
#[derive(Debug)]
pub struct Channel<D: EvtchnIo = EvtchnDev> {
    ev: Evtchn<D>,
    port: Port,
    /// Has been connected to a peer: a later "unbound" means it closed.
    connected: AtomicBool,
}

impl<D: EvtchnIo> Channel<D> {
    /// The peer closed its end, if Xen will tell us (`None`: it will not).
    fn peer_gone(&self) -> Option<bool> {
        match evtchn::Channel::status(self) {
            Ok(evtchn::Status::Closed) => Some(true),
            Ok(_) => Some(false),
            Err(_) => None,
        }
    }
}

impl<D: EvtchnIo> evtchn::Channel for Channel<D> {
    fn port(&self) -> Port {
        self.port
    }

    /// Xen drops a notification on a port nobody bound yet, and so do we.
    fn notify(&self) -> Result<(), evtchn::Error> {
        self.ev.notify(self.port).map_err(event_error)
    }

    fn poll(&self) -> Result<bool, evtchn::Error> {
        let mut any = false;
        while self
            .ev
            .wait(Some(Duration::ZERO))
            .map_err(event_error)?
            .is_some()
        {
            any = true;
        }
        Ok(any)
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool, evtchn::Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(PEER_CHECK, |l| l.min(PEER_CHECK));
            if self.ev.wait(Some(slice)).map_err(event_error)?.is_some() {
                // Relaxed: a hint for `status`, ordered by nothing else.
                self.connected.store(true, Ordering::Relaxed);
                return Ok(true);
            }
            if self.peer_gone() == Some(true) {
                return Err(evtchn::Error::PeerClosed);
            }
            if left.is_some_and(|l| l <= slice) {
                return Ok(false);
            }
        }
    }

    fn status(&self) -> Result<evtchn::Status, evtchn::Error> {
        match self.ev.status(self.port).map_err(event_error)? {
            PortStatus::Interdomain {
                remote,
                remote_port,
            } => {
                // Relaxed: see `wait`.
                self.connected.store(true, Ordering::Relaxed);
                Ok(evtchn::Status::Interdomain {
                    remote,
                    remote_port,
                })
            }
            PortStatus::Unbound { remote } => {
                if self.connected.load(Ordering::Relaxed) {
                    Ok(evtchn::Status::Closed)
                } else {
                    Ok(evtchn::Status::Unbound { remote })
                }
            }
            PortStatus::Closed => Ok(evtchn::Status::Closed),
            PortStatus::Other(_) => Err(evtchn::Error::Os(libc::EINVAL)),
        }
    }

    /// Xen does not notify a port whose peer closed: a sleeper asks
    /// `EVTCHNOP_status` twice a second, so that a dead peer is seen
    /// within one.
    fn peer_check(&self) -> Option<Duration> {
        Some(PEER_PROBE)
    }
}

impl<D: EvtchnIo + AsFd> AsFd for Channel<D> {
    /// Readable when a notification is pending; then `poll` consumes it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ev.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::sys::abi::{
        EvtchnStatus, GntdevGrantRef, UnmapNotify, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND,
    };
    use crate::linux::sys::{Mapping, PAGE_SIZE};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use xenmq::evtchn::{Channel as _, Events as _, Status};
    use xenmq::grant::{Grants as _, Mapped as _, Pages as _, Shared as _};

    /// gntalloc and gntdev stand-ins; gntdev's mmap fails with `mmap_errno`.
    #[derive(Debug, Default)]
    struct FakeGrants {
        mmap_errno: Option<i32>,
        /// Read-only mmaps succeed despite `mmap_errno` (a read-only grant).
        read_only_grant: bool,
        deallocs: Mutex<u32>,
    }

    impl GntallocIo for Arc<FakeGrants> {
        fn alloc_gref(&self, _domid: u16, _flags: u16, grefs: &mut [u32]) -> io::Result<u64> {
            for (i, g) in grefs.iter_mut().enumerate() {
                *g = 8 + i as u32;
            }
            Ok(0)
        }
        fn dealloc_gref(&self, _index: u64, _count: u32) -> io::Result<()> {
            *self.deallocs.lock().unwrap() += 1;
            Ok(())
        }
        fn set_unmap_notify(&self, _n: UnmapNotify) -> io::Result<()> {
            Ok(())
        }
        fn mmap(&self, _index: u64, pages: usize) -> io::Result<Mapping> {
            Mapping::anonymous(pages * PAGE_SIZE)
        }
    }

    impl GntdevIo for Arc<FakeGrants> {
        fn map_grant_ref(&self, _refs: &[GntdevGrantRef]) -> io::Result<u64> {
            Ok(0)
        }
        fn unmap_grant_ref(&self, _index: u64, _count: u32) -> io::Result<()> {
            Ok(())
        }
        fn set_unmap_notify(&self, _n: UnmapNotify) -> io::Result<()> {
            Ok(())
        }
        fn mmap(&self, _index: u64, pages: usize, writable: bool) -> io::Result<Mapping> {
            match self.mmap_errno {
                Some(n) if writable || !self.read_only_grant => {
                    Err(io::Error::from_raw_os_error(n))
                }
                _ => Mapping::anonymous(pages * PAGE_SIZE),
            }
        }
    }

    fn grants(
        mmap_errno: Option<i32>,
    ) -> (Arc<FakeGrants>, Grants<Arc<FakeGrants>, Arc<FakeGrants>>) {
        let f = Arc::new(FakeGrants {
            mmap_errno,
            ..FakeGrants::default()
        });
        (Arc::clone(&f), Grants::with_devices(1, Arc::clone(&f), f))
    }

    #[test]
    fn grants_share_and_map_through_the_trait() {
        let (fake, g) = grants(None);
        assert_eq!(g.domid(), 1);
        let s = g.share(0, 2, Access::ReadOnly).unwrap();
        assert_eq!(
            (s.peer(), s.refs(), s.access()),
            (0, &[8, 9][..], Access::ReadOnly)
        );
        assert_eq!(s.region().len(), 2 * PAGE_SIZE);
        assert_eq!(s.pages(), 2);
        s.end_access().unwrap();
        assert_eq!(*fake.deallocs.lock().unwrap(), 1);
        let m = g.map(0, &[5], Access::ReadWrite).unwrap();
        assert_eq!(
            (m.peer(), m.refs(), m.access()),
            (0, &[5][..], Access::ReadWrite)
        );
        assert_eq!((g.deferred(), g.reclaim()), (0, 0));
    }

    #[test]
    fn grants_refuse_bad_requests_with_typed_errors() {
        let (_, g) = grants(None);
        assert_eq!(
            g.share(DOMID_FIRST_RESERVED, 1, Access::ReadWrite)
                .unwrap_err(),
            grant::Error::NoDomain(0x7ff0)
        );
        assert!(matches!(
            g.share(0, 0, Access::ReadWrite),
            Err(grant::Error::BadCount { count: 0, .. })
        ));
        assert!(matches!(
            g.map(0, &[], Access::ReadWrite),
            Err(grant::Error::BadCount { count: 0, .. })
        ));
        let (_, g) = grants(Some(libc::EINVAL));
        assert_eq!(
            g.map(3, &[77, 78], Access::ReadWrite).unwrap_err(),
            grant::Error::BadRef { domid: 3, gref: 77 }
        );
        assert_eq!(
            g.map(3, &[77], Access::ReadOnly).unwrap_err(),
            grant::Error::BadRef { domid: 3, gref: 77 }
        );
        // A read-only grant: the read-write map fails, the read-only probe works.
        let f = Arc::new(FakeGrants {
            mmap_errno: Some(libc::EINVAL),
            read_only_grant: true,
            ..FakeGrants::default()
        });
        let g = Grants::with_devices(1, Arc::clone(&f), Arc::clone(&f));
        assert_eq!(
            g.map(3, &[77], Access::ReadWrite).unwrap_err(),
            grant::Error::ReadOnly { domid: 3, gref: 77 }
        );
        assert!(g.map(3, &[77], Access::ReadOnly).is_ok());
        let (_, g) = grants(Some(libc::ENOMEM));
        assert_eq!(
            g.map(3, &[77], Access::ReadWrite).unwrap_err(),
            grant::Error::NoSpace
        );
    }

    /// A tiny event channel hypervisor: ports, their states, and a pending
    /// queue per device (descriptor).
    #[derive(Debug, Default)]
    struct Hub {
        next_port: u32,
        next_dev: u32,
        /// port -> (device, remote domain, connected peer port)
        ports: BTreeMap<u32, (u32, u16, Option<u32>)>,
        pending: BTreeMap<u32, Vec<u32>>,
        status_allowed: bool,
    }

    #[derive(Debug)]
    struct HubDev {
        hub: Arc<Mutex<Hub>>,
        id: u32,
    }

    impl HubDev {
        fn close(&self, port: u32) {
            let mut h = self.hub.lock().unwrap();
            if let Some((_, _, Some(peer))) = h.ports.remove(&port) {
                if let Some(p) = h.ports.get_mut(&peer) {
                    p.2 = None;
                }
            }
        }
    }

    impl Drop for HubDev {
        fn drop(&mut self) {
            let mine: Vec<u32> = {
                let h = self.hub.lock().unwrap();
                h.ports
                    .iter()
                    .filter(|(_, v)| v.0 == self.id)
                    .map(|(k, _)| *k)
                    .collect()
            };
            for p in mine {
                self.close(p);
            }
        }
    }

    impl EvtchnIo for HubDev {
        fn bind_unbound_port(&self, remote: u32) -> io::Result<u32> {
            let mut h = self.hub.lock().unwrap();
            h.next_port += 1;
            let p = h.next_port;
            h.ports.insert(p, (self.id, remote as u16, None));
            Ok(p)
        }
        fn bind_interdomain(&self, remote: u32, rport: u32) -> io::Result<u32> {
            let mut h = self.hub.lock().unwrap();
            if !matches!(h.ports.get(&rport), Some((_, _, None))) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            h.next_port += 1;
            let p = h.next_port;
            h.ports.insert(p, (self.id, remote as u16, Some(rport)));
            if let Some(r) = h.ports.get_mut(&rport) {
                r.2 = Some(p);
            }
            Ok(p)
        }
        fn unbind(&self, port: u32) -> io::Result<()> {
            self.close(port);
            Ok(())
        }
        fn notify(&self, port: u32) -> io::Result<()> {
            let mut h = self.hub.lock().unwrap();
            if let Some(&(_, _, Some(peer))) = h.ports.get(&port) {
                let dev = h.ports[&peer].0;
                let q = h.pending.entry(dev).or_default();
                if !q.contains(&peer) {
                    q.push(peer);
                }
            }
            Ok(())
        }
        fn read_pending(&self, ports: &mut [u32]) -> io::Result<usize> {
            let mut h = self.hub.lock().unwrap();
            let q = h.pending.entry(self.id).or_default();
            let n = q.len().min(ports.len());
            for (i, p) in q.drain(..n).enumerate() {
                ports[i] = p;
            }
            Ok(n)
        }
        fn unmask(&self, _ports: &[u32]) -> io::Result<()> {
            Ok(())
        }
        fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
            let end = Instant::now() + timeout.unwrap_or(Duration::from_secs(5));
            loop {
                if !self
                    .hub
                    .lock()
                    .unwrap()
                    .pending
                    .get(&self.id)
                    .is_none_or(Vec::is_empty)
                {
                    return Ok(true);
                }
                if Instant::now() >= end {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn status(&self, port: u32) -> io::Result<EvtchnStatus> {
            let h = self.hub.lock().unwrap();
            if !h.status_allowed {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            let (_, remote, peer) = h.ports[&port];
            let mut st = EvtchnStatus {
                port,
                remote_dom: remote,
                ..Default::default()
            };
            match peer {
                Some(p) => {
                    st.status = EVTCHNSTAT_INTERDOMAIN;
                    st.remote_port = p;
                }
                None => st.status = EVTCHNSTAT_UNBOUND,
            }
            Ok(st)
        }
    }

    fn events(hub: &Arc<Mutex<Hub>>) -> Events<impl Fn() -> io::Result<HubDev>> {
        let hub = Arc::clone(hub);
        Events::with_opener(move || {
            let mut h = hub.lock().unwrap();
            h.next_dev += 1;
            Ok(HubDev {
                hub: Arc::clone(&hub),
                id: h.next_dev,
            })
        })
    }

    #[test]
    fn channels_connect_notify_and_see_the_peer_close() {
        let hub = Arc::new(Mutex::new(Hub {
            status_allowed: true,
            ..Hub::default()
        }));
        let ev = events(&hub);
        let a = ev.alloc_unbound(2).unwrap();
        assert_eq!(a.status().unwrap(), Status::Unbound { remote: 2 });
        a.notify().unwrap(); // nobody bound: dropped, as on Xen
        let b = ev.bind_interdomain(2, a.port()).unwrap();
        assert_eq!(
            b.status().unwrap(),
            Status::Interdomain {
                remote: 2,
                remote_port: a.port()
            }
        );
        assert!(!a.poll().unwrap());
        b.notify().unwrap();
        b.notify().unwrap();
        assert!(a.wait(Some(Duration::from_secs(1))).unwrap());
        assert!(!a.poll().unwrap(), "the two notifications coalesced");
        assert!(!a.wait(Some(Duration::from_millis(10))).unwrap());
        drop(b);
        assert_eq!(a.status().unwrap(), Status::Closed);
        assert_eq!(a.wait(None).unwrap_err(), evtchn::Error::PeerClosed);
        assert!(matches!(
            ev.bind_interdomain(2, 999),
            Err(evtchn::Error::BadPort {
                domid: 2,
                port: 999
            })
        ));
        assert_eq!(
            ev.alloc_unbound(0x7ff5).unwrap_err(),
            evtchn::Error::NoDomain(0x7ff5)
        );
    }

    #[test]
    fn without_privcmd_status_fails_and_wait_still_times_out() {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let ev = events(&hub);
        let a = ev.alloc_unbound(2).unwrap();
        assert_eq!(a.status().unwrap_err(), evtchn::Error::Os(libc::EPERM));
        let t = Instant::now();
        assert!(!a.wait(Some(Duration::from_millis(30))).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
