//! Sharing pages with a peer (`gntalloc`) and mapping a peer's pages
//! (`gntdev`), above the [`sys`](super::sys) seam.

use std::sync::Arc;

use xenmq::evtchn::Port;
use xenmq::grant::{DomId, GrantRef};

use super::sys::abi::{
    GntdevGrantRef, UnmapNotify, GNTALLOC_FLAG_WRITABLE, UNMAP_NOTIFY_CLEAR_BYTE,
    UNMAP_NOTIFY_SEND_EVENT,
};
use super::sys::{GntallocDev, GntallocIo, GntdevDev, GntdevIo, Mapping, PAGE_SIZE};
use super::{dev_err, Error, Result};

/// The most pages one share or map request may name (Linux's gntalloc
/// default limit for the whole device is 1024 grants).
pub const MAX_PAGES: usize = 1024;

fn check_pages(n: usize) -> Result<u32> {
    if n == 0 || n > MAX_PAGES {
        return Err(Error::PageCount(n));
    }
    u32::try_from(n).map_err(|_| Error::PageCount(n))
}

/// The unmap-notify request for the byte at `offset` of a mapping at `index`.
fn unmap_notify(index: u64, offset: usize, clear_byte: bool, port: Option<Port>) -> UnmapNotify {
    let mut action = 0;
    if clear_byte {
        action |= UNMAP_NOTIFY_CLEAR_BYTE;
    }
    if port.is_some() {
        action |= UNMAP_NOTIFY_SEND_EVENT;
    }
    UnmapNotify {
        // offset < mapping length <= MAX_PAGES pages: no overflow.
        index: index.wrapping_add(offset as u64),
        action,
        event_channel_port: port.unwrap_or(0),
    }
}

/// A handle on `/dev/xen/gntalloc` (or a fake of it in tests).
#[derive(Debug)]
pub struct Gntalloc<D: GntallocIo = GntallocDev> {
    dev: Arc<D>,
}

impl Gntalloc {
    /// Opens `/dev/xen/gntalloc`.
    pub fn open() -> Result<Self> {
        let dev = GntallocDev::open().map_err(|source| Error::Open {
            path: GntallocDev::PATH,
            source,
        })?;
        Ok(Self::with_device(dev))
    }
}

/// Another handle on the same open device.
impl<D: GntallocIo> Clone for Gntalloc<D> {
    fn clone(&self) -> Self {
        Gntalloc {
            dev: Arc::clone(&self.dev),
        }
    }
}

impl<D: GntallocIo> Gntalloc<D> {
    /// A handle over any implementation of the device seam.
    pub fn with_device(dev: D) -> Self {
        Gntalloc { dev: Arc::new(dev) }
    }

    /// Grants `pages` fresh zeroed pages to `peer` (read-write if
    /// `writable`) and maps them here.
    pub fn share(&self, peer: DomId, pages: usize, writable: bool) -> Result<Shared<D>> {
        let count = check_pages(pages)?;
        let mut grefs = vec![0; pages];
        let flags = if writable { GNTALLOC_FLAG_WRITABLE } else { 0 };
        let index = self
            .dev
            .alloc_gref(peer, flags, &mut grefs)
            .map_err(dev_err("IOCTL_GNTALLOC_ALLOC_GREF"))?;
        match self.dev.mmap(index, pages) {
            Ok(map) => Ok({
                tracing::debug!(peer, ?grefs, writable, "gntalloc: pages granted");
                Shared {
                    dev: Arc::clone(&self.dev),
                    index,
                    grefs,
                    peer,
                    writable,
                    map: Some(map),
                }
            }),
            Err(e) => {
                // Give the grants back; the mmap error is the one to report.
                let _ = self.dev.dealloc_gref(index, count);
                Err(Error::Device {
                    op: "mmap of /dev/xen/gntalloc",
                    source: e,
                })
            }
        }
    }
}

/// Pages granted to a peer and mapped here. Dropping it unmaps them and
/// releases the grants; if the peer still maps them, the kernel keeps the
/// pages until it unmaps (they are never reused meanwhile).
#[derive(Debug)]
pub struct Shared<D: GntallocIo = GntallocDev> {
    dev: Arc<D>,
    index: u64,
    grefs: Vec<GrantRef>,
    peer: DomId,
    writable: bool,
    map: Option<Mapping>,
}

impl<D: GntallocIo> Shared<D> {
    /// The domain the pages are granted to.
    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// Whether the peer may map them read-write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The grant references, one per page, to publish to the peer.
    pub fn grefs(&self) -> &[GrantRef] {
        &self.grefs
    }

    /// The pages.
    pub fn mapping(&self) -> &Mapping {
        // Some from construction until drop.
        self.map
            .as_ref()
            .unwrap_or_else(|| unreachable!("mapping taken before drop"))
    }

    /// Asks the kernel, when the pages are finally unmapped here (drop or
    /// process death), to zero the byte at `offset` (if `clear_byte`) and/or
    /// notify `port`: how a peer learns this side is gone.
    pub fn set_unmap_notify(
        &self,
        offset: usize,
        clear_byte: bool,
        port: Option<Port>,
    ) -> Result<()> {
        if offset >= self.mapping().len() {
            return Err(Error::Access(super::BadAccess {
                offset,
                len: 1,
                size: self.mapping().len(),
                kind: "read-write",
            }));
        }
        self.dev
            .set_unmap_notify(unmap_notify(self.index, offset, clear_byte, port))
            .map_err(dev_err("IOCTL_GNTALLOC_SET_UNMAP_NOTIFY"))
    }

    /// Releases the grants and unmaps the pages. If the peer still maps
    /// them, Linux keeps them until it unmaps (its `gnttab_end_foreign_access`
    /// defers the free, XSA-396), so this succeeds. On failure the pages stay
    /// shared and mapped, and come back with the error.
    pub fn try_close(mut self) -> core::result::Result<(), (Self, Error)> {
        match self.release() {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }

    /// As [`Shared::try_close`], dropping the pages on failure.
    pub fn close(self) -> Result<()> {
        self.try_close().map_err(|(_, e)| e)
    }

    fn release(&mut self) -> Result<()> {
        if self.map.is_none() {
            return Ok(());
        }
        // Release the grants first: the kernel keeps the pages while our
        // mapping (or the peer's) holds them, and if the release fails the
        // mapping is still intact for the caller.
        let count = self.grefs.len() as u32; // <= MAX_PAGES
        self.dev
            .dealloc_gref(self.index, count)
            .map_err(dev_err("IOCTL_GNTALLOC_DEALLOC_GREF"))?;
        self.map = None; // munmap
        tracing::debug!(peer = self.peer, grefs = ?self.grefs, "gntalloc: grants released");
        Ok(())
    }
}

impl<D: GntallocIo> Drop for Shared<D> {
    fn drop(&mut self) {
        // Nothing to do with an error here but to say it; `close` reports it.
        if let Err(e) = self.release() {
            tracing::warn!(peer = self.peer, grefs = ?self.grefs, error = %e, "gntalloc: grants not released");
        }
    }
}

/// A handle on `/dev/xen/gntdev` (or a fake of it in tests).
#[derive(Debug)]
pub struct Gntdev<D: GntdevIo = GntdevDev> {
    dev: Arc<D>,
}

impl Gntdev {
    /// Opens `/dev/xen/gntdev`.
    pub fn open() -> Result<Self> {
        let dev = GntdevDev::open().map_err(|source| Error::Open {
            path: GntdevDev::PATH,
            source,
        })?;
        Ok(Self::with_device(dev))
    }
}

/// Another handle on the same open device.
impl<D: GntdevIo> Clone for Gntdev<D> {
    fn clone(&self) -> Self {
        Gntdev {
            dev: Arc::clone(&self.dev),
        }
    }
}

impl<D: GntdevIo> Gntdev<D> {
    /// A handle over any implementation of the device seam.
    pub fn with_device(dev: D) -> Self {
        Gntdev { dev: Arc::new(dev) }
    }

    /// Maps the peer's `grefs` (granted by `peer`) as one contiguous range,
    /// read-write if `writable`. A bad or foreign gref fails here, at mmap
    /// time, with Xen's refusal.
    pub fn map(&self, peer: DomId, grefs: &[GrantRef], writable: bool) -> Result<Mapped<D>> {
        let count = check_pages(grefs.len())?;
        let refs: Vec<GntdevGrantRef> = grefs
            .iter()
            .map(|&r| GntdevGrantRef {
                domid: u32::from(peer),
                r#ref: r,
            })
            .collect();
        let index = self
            .dev
            .map_grant_ref(&refs)
            .map_err(dev_err("IOCTL_GNTDEV_MAP_GRANT_REF"))?;
        match self.dev.mmap(index, grefs.len(), writable) {
            Ok(map) => Ok({
                tracing::debug!(peer, ?grefs, writable, "gntdev: grants mapped");
                Mapped {
                    dev: Arc::clone(&self.dev),
                    index,
                    count,
                    peer,
                    grefs: grefs.to_vec(),
                    writable,
                    map: Some(map),
                }
            }),
            Err(e) => {
                let _ = self.dev.unmap_grant_ref(index, count);
                Err(Error::Device {
                    op: "mmap of /dev/xen/gntdev",
                    source: e,
                })
            }
        }
    }
}

/// A peer's pages mapped here; dropping it unmaps them.
#[derive(Debug)]
pub struct Mapped<D: GntdevIo = GntdevDev> {
    dev: Arc<D>,
    index: u64,
    count: u32,
    peer: DomId,
    grefs: Vec<GrantRef>,
    writable: bool,
    map: Option<Mapping>,
}

impl<D: GntdevIo> Mapped<D> {
    /// The granting domain.
    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// The references mapped, in page order.
    pub fn grefs(&self) -> &[GrantRef] {
        &self.grefs
    }

    /// Whether the mapping is read-write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The pages.
    pub fn mapping(&self) -> &Mapping {
        self.map
            .as_ref()
            .unwrap_or_else(|| unreachable!("mapping taken before drop"))
    }

    /// The number of pages.
    pub fn pages(&self) -> usize {
        self.count as usize
    }

    /// As [`Shared::set_unmap_notify`], for the mapping side.
    pub fn set_unmap_notify(
        &self,
        offset: usize,
        clear_byte: bool,
        port: Option<Port>,
    ) -> Result<()> {
        if offset >= self.count as usize * PAGE_SIZE {
            return Err(Error::Access(super::BadAccess {
                offset,
                len: 1,
                size: self.count as usize * PAGE_SIZE,
                kind: "mapped",
            }));
        }
        self.dev
            .set_unmap_notify(unmap_notify(self.index, offset, clear_byte, port))
            .map_err(dev_err("IOCTL_GNTDEV_SET_UNMAP_NOTIFY"))
    }

    /// Unmaps, reporting a failure of the release.
    pub fn close(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let Some(map) = self.map.take() else {
            return Ok(());
        };
        drop(map);
        self.dev
            .unmap_grant_ref(self.index, self.count)
            .map_err(dev_err("IOCTL_GNTDEV_UNMAP_GRANT_REF"))?;
        tracing::debug!(peer = self.peer, grefs = ?self.grefs, "gntdev: grants unmapped");
        Ok(())
    }
}

impl<D: GntdevIo> Drop for Mapped<D> {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(peer = self.peer, grefs = ?self.grefs, error = %e, "gntdev: grants not unmapped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    /// A gntalloc/gntdev stand-in that records every call.
    #[derive(Debug, Default)]
    struct Fake {
        log: Mutex<Vec<String>>,
        fail_mmap: bool,
        fail_dealloc: bool,
    }

    impl Fake {
        fn push(&self, s: String) {
            self.log.lock().unwrap().push(s);
        }
        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
        fn mmap_result(&self, index: u64, pages: usize) -> io::Result<Mapping> {
            self.push(format!("mmap {index} {pages}"));
            if self.fail_mmap {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            Mapping::anonymous(pages * PAGE_SIZE)
        }
    }

    impl GntallocIo for Arc<Fake> {
        fn alloc_gref(&self, domid: u16, flags: u16, grefs: &mut [u32]) -> io::Result<u64> {
            self.push(format!("alloc {domid} {flags} {}", grefs.len()));
            for (i, g) in grefs.iter_mut().enumerate() {
                *g = 100 + i as u32;
            }
            Ok(0x7000)
        }
        fn dealloc_gref(&self, index: u64, count: u32) -> io::Result<()> {
            self.push(format!("dealloc {index} {count}"));
            if self.fail_dealloc {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            Ok(())
        }
        fn set_unmap_notify(&self, n: UnmapNotify) -> io::Result<()> {
            self.push(format!(
                "notify {} {} {}",
                n.index, n.action, n.event_channel_port
            ));
            Ok(())
        }
        fn mmap(&self, index: u64, pages: usize) -> io::Result<Mapping> {
            self.mmap_result(index, pages)
        }
    }

    impl GntdevIo for Arc<Fake> {
        fn map_grant_ref(&self, refs: &[GntdevGrantRef]) -> io::Result<u64> {
            let r: Vec<String> = refs
                .iter()
                .map(|r| format!("{}:{}", r.domid, r.r#ref))
                .collect();
            self.push(format!("map {}", r.join(",")));
            Ok(0x3000)
        }
        fn unmap_grant_ref(&self, index: u64, count: u32) -> io::Result<()> {
            self.push(format!("unmap {index} {count}"));
            Ok(())
        }
        fn set_unmap_notify(&self, n: UnmapNotify) -> io::Result<()> {
            self.push(format!(
                "notify {} {} {}",
                n.index, n.action, n.event_channel_port
            ));
            Ok(())
        }
        fn mmap(&self, index: u64, pages: usize, writable: bool) -> io::Result<Mapping> {
            self.push(format!("rw={writable}"));
            self.mmap_result(index, pages)
        }
    }

    #[test]
    fn share_maps_at_the_returned_index_and_releases_after_unmapping() {
        let fake = Arc::new(Fake::default());
        let ga = Gntalloc::with_device(Arc::clone(&fake));
        let s = ga.share(5, 2, true).unwrap();
        assert_eq!(s.grefs(), &[100, 101]);
        assert_eq!(s.mapping().len(), 2 * PAGE_SIZE);
        s.mapping()
            .store_u32(PAGE_SIZE, 7, Ordering::Relaxed)
            .unwrap();
        s.set_unmap_notify(8, true, Some(3)).unwrap();
        assert!(s.set_unmap_notify(2 * PAGE_SIZE, true, None).is_err());
        drop(s);
        assert_eq!(
            fake.log(),
            [
                "alloc 5 1 2",
                "mmap 28672 2",
                "notify 28680 3 3",
                "dealloc 28672 2"
            ]
        );
    }

    #[test]
    fn share_read_only_and_page_limits() {
        let fake = Arc::new(Fake::default());
        let ga = Gntalloc::with_device(Arc::clone(&fake));
        ga.share(1, 1, false).unwrap().close().unwrap();
        assert!(matches!(ga.share(1, 0, true), Err(Error::PageCount(0))));
        assert!(matches!(
            ga.share(1, MAX_PAGES + 1, true),
            Err(Error::PageCount(_))
        ));
        assert_eq!(
            fake.log(),
            ["alloc 1 0 1", "mmap 28672 1", "dealloc 28672 1"]
        );
    }

    #[test]
    fn a_failed_release_hands_the_pages_back_intact() {
        let fake = Arc::new(Fake {
            fail_dealloc: true,
            ..Fake::default()
        });
        let ga = Gntalloc::with_device(Arc::clone(&fake));
        let s = ga.share(4, 1, true).unwrap();
        s.mapping().write(0, b"kept").unwrap();
        let (s, e) = s.try_close().unwrap_err();
        assert!(e.to_string().contains("DEALLOC"), "{e}");
        let mut b = [0u8; 4];
        s.mapping().read(0, &mut b).unwrap();
        assert_eq!(&b, b"kept");
    }

    #[test]
    fn failed_mmap_gives_the_grants_back() {
        let fake = Arc::new(Fake {
            fail_mmap: true,
            ..Fake::default()
        });
        let ga = Gntalloc::with_device(Arc::clone(&fake));
        let e = ga.share(2, 3, true).unwrap_err();
        assert!(e.to_string().contains("mmap"), "{e}");
        assert_eq!(
            fake.log(),
            ["alloc 2 1 3", "mmap 28672 3", "dealloc 28672 3"]
        );

        let gd = Gntdev::with_device(Arc::clone(&fake));
        assert!(gd.map(2, &[9], true).is_err());
        assert_eq!(
            fake.log()[3..],
            ["map 2:9", "rw=true", "mmap 12288 1", "unmap 12288 1"]
        );
    }

    #[test]
    fn map_names_each_gref_with_the_peer_and_unmaps_on_drop() {
        let fake = Arc::new(Fake::default());
        let gd = Gntdev::with_device(Arc::clone(&fake));
        let m = gd.map(7, &[11, 12, 13], false).unwrap();
        assert_eq!(m.pages(), 3);
        m.set_unmap_notify(0, false, Some(4)).unwrap();
        drop(m);
        assert_eq!(
            fake.log(),
            [
                "map 7:11,7:12,7:13",
                "rw=false",
                "mmap 12288 3",
                "notify 12288 2 4",
                "unmap 12288 3"
            ]
        );
        assert!(matches!(gd.map(7, &[], true), Err(Error::PageCount(0))));
    }
}
