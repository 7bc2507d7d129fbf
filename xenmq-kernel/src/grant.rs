//! [`Grants`] on Linux's grant table: `gnttab_grant_foreign_access` over
//! pages from `__get_free_pages` to share, `xenbus_map_ring_valloc` to map.
//!
//! One table per device: Linux maps a peer's grants through the xenbus
//! device (its `otherend_id` names the granting domain), so
//! [`Table::map`] only maps from that device's peer, read-write (xenbus
//! maps no other way; a read-only mapping is refused). Ending access
//! follows XSA-396: a page the peer still maps is handed to Linux's
//! deferred release (`gnttab_end_foreign_access` with the page), which
//! frees it once the peer unmaps and is never reused before.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::cell::Cell;
use core::ffi::c_void;
use core::ptr::NonNull;

use xenmq::grant::{
    self, Access, DomId, Error, GrantRef, Grants, Mapped, Pages, Shared, PAGE_SIZE,
};
use xenmq::shm::Region;

use crate::sys;

/// The most pages shared or mapped in one call (a ring of order 4, or a
/// pool of 16 pages).
pub const MAX_PAGES: usize = 16;

/// The grant table as one device sees it.
#[derive(Debug)]
pub struct Table {
    dev: NonNull<sys::Dev>,
    domid: DomId,
    peer: DomId,
    deferred: Cell<usize>,
}

impl Table {
    /// The table of `dev`, whose domain is `domid` and peer `peer`.
    ///
    /// # Safety
    ///
    /// `dev` is the shim's live device and outlives the table and every
    /// mapping made through it.
    pub unsafe fn new(dev: NonNull<sys::Dev>, domid: DomId, peer: DomId) -> Table {
        Table {
            dev,
            domid,
            peer,
            deferred: Cell::new(0),
        }
    }
}

fn os(rc: i32) -> Error {
    match rc.wrapping_neg() {
        sys::errno::ENOMEM | sys::errno::ENOSPC => Error::NoSpace,
        e => Error::Os(e),
    }
}

/// Pages this domain granted.
#[derive(Debug)]
pub struct Share {
    vaddr: NonNull<u8>,
    order: u32,
    refs: Vec<GrantRef>,
    peer: DomId,
    access: Access,
    deferred: NonNull<Cell<usize>>,
    /// The pages are still allocated (false once `end_access` freed them).
    live: bool,
}

impl Pages for Share {
    fn region(&self) -> Region {
        // SAFETY: the pages are ours (allocated in `share`) and live until
        // this value's drop; page addresses are 64-byte aligned; nothing
        // takes references into them.
        unsafe { Region::new(self.vaddr, PAGE_SIZE << self.order) }
    }
}

impl Shared for Share {
    fn peer(&self) -> DomId {
        self.peer
    }

    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    fn access(&self) -> Access {
        self.access
    }

    fn end_access(mut self) -> Result<(), (Self, Error)> {
        // SAFETY: vaddr/order/refs describe the allocation and grants made
        // in `share`; the shim marks ended refs with !0 so a retry skips them.
        let rc = unsafe {
            sys::xenmq_k_try_unshare(
                self.vaddr.as_ptr().cast(),
                self.order,
                self.refs.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err((self, Error::StillMapped));
        }
        self.live = false;
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        // SAFETY: as in end_access; after this call Linux owns every page
        // still mapped by the peer and the rest are freed.
        unsafe {
            sys::xenmq_k_unshare_deferred(
                self.vaddr.as_ptr().cast(),
                self.order,
                self.refs.as_mut_ptr(),
            );
        }
        // SAFETY: the counter lives in the Table, which outlives its shares
        // (the device glue drops shares before the table).
        let c = unsafe { self.deferred.as_ref() };
        c.set(
            c.get()
                .saturating_add(self.refs.iter().filter(|&&r| r != !0).count()),
        );
    }
}

/// A peer's pages mapped into this domain.
#[derive(Debug)]
pub struct Mapping {
    dev: NonNull<sys::Dev>,
    vaddr: NonNull<u8>,
    len: usize,
    refs: Vec<GrantRef>,
    peer: DomId,
}

impl Pages for Mapping {
    fn region(&self) -> Region {
        // SAFETY: the mapping lives until this value's drop; vmalloc'd
        // areas are page-aligned; nothing takes references into them.
        unsafe { Region::new(self.vaddr, self.len) }
    }
}

impl Mapped for Mapping {
    fn peer(&self) -> DomId {
        self.peer
    }

    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    fn access(&self) -> Access {
        Access::ReadWrite
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `vaddr` came from xenmq_k_map on this device, which is
        // still alive (Table::new's contract).
        let rc = unsafe { sys::xenmq_k_unmap(self.dev.as_ptr(), self.vaddr.as_ptr().cast()) };
        if rc < 0 {
            crate::error!("unmapping grants of domain {} failed ({rc})", self.peer);
        }
    }
}

impl Grants for Table {
    type Shared = Share;
    type Mapped = Mapping;

    fn domid(&self) -> DomId {
        self.domid
    }

    fn share(&self, peer: DomId, pages: usize, access: Access) -> Result<Share, Error> {
        if pages == 0 || pages > MAX_PAGES || !pages.is_power_of_two() {
            return Err(Error::BadCount {
                count: pages,
                limit: MAX_PAGES,
            });
        }
        if peer >= grant::DOMID_FIRST_RESERVED {
            return Err(Error::NoDomain(peer));
        }
        let order = pages.trailing_zeros();
        let mut refs: Vec<GrantRef> = alloc::vec![!0; pages];
        let mut vaddr: *mut c_void = core::ptr::null_mut();
        // SAFETY: `refs` has room for 2^order references; `vaddr` is valid
        // for writes.
        let rc = unsafe {
            sys::xenmq_k_share(
                peer,
                order,
                i32::from(access.is_read_only()),
                &mut vaddr,
                refs.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(os(rc));
        }
        let vaddr = NonNull::new(vaddr.cast::<u8>()).ok_or(Error::NoSpace)?;
        Ok(Share {
            vaddr,
            order,
            refs,
            peer,
            access,
            deferred: NonNull::from(&self.deferred),
            live: true,
        })
    }

    fn map(&self, peer: DomId, refs: &[GrantRef], access: Access) -> Result<Mapping, Error> {
        if refs.is_empty() || refs.len() > MAX_PAGES {
            return Err(Error::BadCount {
                count: refs.len(),
                limit: MAX_PAGES,
            });
        }
        if peer != self.peer {
            return Err(Error::NoDomain(peer));
        }
        if access.is_read_only() {
            return Err(Error::Os(sys::errno::EINVAL));
        }
        // The count goes to C as a u32 and the mapping's length must not
        // wrap: a list that large is refused before anything is mapped.
        let (Ok(count), Some(len)) = (u32::try_from(refs.len()), refs.len().checked_mul(PAGE_SIZE))
        else {
            return Err(Error::Os(sys::errno::EINVAL));
        };
        let mut r = refs.to_vec();
        let mut vaddr: *mut c_void = core::ptr::null_mut();
        // SAFETY: the device is live (Table::new); `r` holds `r.len()`
        // references; `vaddr` is valid for writes.
        let rc = unsafe { sys::xenmq_k_map(self.dev.as_ptr(), r.as_mut_ptr(), count, &mut vaddr) };
        if rc < 0 {
            // xenbus reports GNTST_* failures as -ENOENT/-EINVAL.
            return Err(match rc.wrapping_neg() {
                sys::errno::ENOENT | sys::errno::EINVAL => Error::BadRef {
                    domid: peer,
                    gref: refs.first().copied().unwrap_or(0),
                },
                _ => os(rc),
            });
        }
        let vaddr = NonNull::new(vaddr.cast::<u8>()).ok_or(Error::Unavailable)?;
        Ok(Mapping {
            dev: self.dev,
            vaddr,
            len,
            refs: r,
            peer,
        })
    }

    /// Pages handed to Linux's deferred release because the peer still
    /// mapped them when they were dropped (Linux frees them once unmapped).
    fn deferred(&self) -> usize {
        self.deferred.get()
    }

    /// Linux retries deferred pages itself (a timer in grant-table.c).
    fn reclaim(&self) -> usize {
        0
    }
}
