//! A domain's grant table: pages it shares ([`SharedPages`]) and peers'
//! pages it maps ([`MappedPages`]), as memfds mapped in this process; the
//! pages a peer still maps when they are ended stay mapped (deferred) until
//! the host says they are free.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use xenmq::grant::{self, Access, DomId, GrantRef, PAGE_SIZE};
use xenmq::shm::Region;
use xenmq_sys::{Mapping, Piece};

use crate::sim::proto::{self, Code, Reader, Request};

use super::{CallError, Domain, Inner};

impl Inner {
    /// Tries to end access to `refs`; `Ok(false)` if still mapped.
    pub(super) fn end(&self, refs: &[GrantRef]) -> Result<bool, CallError> {
        match self.call(Request::EndAccess {
            refs: refs.to_vec(),
        }) {
            Ok(_) => Ok(true),
            Err(CallError::Refused(r)) if r.code == Code::StillMapped => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) fn defer(&self, refs: Vec<GrantRef>, map: Mapping) {
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

    pub(super) fn reclaim(&self) -> usize {
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

pub(super) fn grant_error(e: CallError) -> grant::Error {
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

pub(super) struct Deferred {
    refs: Vec<GrantRef>,
    // Kept mapped (never reused) until the peer lets go.
    _map: Mapping,
}

pub(super) fn parse_refs(body: &[u8]) -> Option<Vec<GrantRef>> {
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
pub(super) fn read_mapping(
    map: Option<&Mapping>,
    offset: usize,
    out: &mut [u8],
) -> Result<(), OutOfBounds> {
    let len = out.len();
    map.ok_or(OutOfBounds { offset, len })?
        .read(offset, out)
        .map_err(|_| OutOfBounds { offset, len })
}

/// Copies bytes into a mapping (volatile); errors as [`read_mapping`].
/// Through the region, not the mapping's checked `write`: on a read-only
/// mapping the first write faults (SIGSEGV), as a write to a read-only
/// grant does on Xen.
pub(super) fn write_mapping(
    map: Option<&Mapping>,
    offset: usize,
    data: &[u8],
) -> Result<(), OutOfBounds> {
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

pub(super) fn empty_region() -> Region {
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
