//! Shared mappings of memory files and devices, unmapped on drop.
//!
//! The memory may be shared with another domain (or process), which can
//! change any byte at any moment. So a [`Mapping`] never hands out a `&[u8]`
//! into it: reads and writes are volatile copies and atomics, through the
//! [`Region`] the mapping is viewed as.
//!
//! The module opts out of the crate's `deny(unsafe_code)` for the `mmap`
//! and `munmap` calls and the one [`Region::new`] over what they mapped.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

use rustix::mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use xenmq::shm::Region;

/// The page size of the mappings (Xen's, and x86 Linux's).
pub const PAGE_SIZE: usize = xenmq::grant::PAGE_SIZE;

/// An access outside a [`Mapping`] or a write to a read-only one.
#[derive(Debug, thiserror::Error)]
#[error("access of {len} bytes at offset {offset} is outside the {size}-byte {kind} mapping")]
pub struct BadAccess {
    /// First byte of the access.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The mapping's length.
    pub size: usize,
    /// "read-write" or "read-only".
    pub kind: &'static str,
}

/// One piece of a [`Mapping`]: `len` bytes of `fd` from byte `offset`, both
/// whole pages.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    /// The memory file or device.
    pub fd: BorrowedFd<'a>,
    /// Where in it the piece starts, in bytes (a multiple of the page size).
    pub offset: u64,
    /// How many bytes (a non-zero multiple of the page size).
    pub len: usize,
}

/// A `MAP_SHARED` mapping of one or more pieces of memory files or devices,
/// contiguous in this process, unmapped on drop.
///
/// Several pieces gather pages of several files into one window, as gntdev
/// does with grants of several pages: the whole range is reserved first,
/// then each piece mapped over its part of it.
#[derive(Debug)]
pub struct Mapping {
    /// The whole mapped range; its pointer and length are what `munmap`
    /// gets in `Drop`. Kept private until every piece is mapped.
    region: Region,
    writable: bool,
}

impl Mapping {
    /// Maps `pieces` one after the other, shared (writes reach the files),
    /// read-write if `writable`, else read-only.
    pub fn new(pieces: &[Piece<'_>], writable: bool) -> io::Result<Mapping> {
        let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
        for p in pieces {
            if p.len == 0 || !p.len.is_multiple_of(PAGE_SIZE) {
                return Err(invalid());
            }
            if !p.offset.is_multiple_of(PAGE_SIZE as u64) {
                return Err(invalid());
            }
        }
        let len = pieces
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.len))
            .filter(|&l| l > 0 && isize::try_from(l).is_ok())
            .ok_or_else(invalid)?;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        if let [only] = pieces {
            let base = map_piece(None, only, prot)?;
            return Ok(Mapping::owning(base, len, writable));
        }
        // SAFETY: a null hint lets the kernel pick a fresh range, so the new
        // PROT_NONE pages replace no existing memory of this process; `len`
        // is non-zero (checked above).
        let base =
            unsafe { mmap_anonymous(ptr::null_mut(), len, ProtFlags::empty(), MapFlags::PRIVATE) }?;
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        // From here the reservation is owned by `mapping`, so an early
        // return unmaps it.
        let mapping = Mapping::owning(base, len, writable);
        let mut at = 0usize;
        for p in pieces {
            // `at + p.len <= len`: the pieces sum to `len` without overflow
            // (checked above), so the target lies inside the reservation.
            let target = base.as_ptr().wrapping_add(at);
            map_piece(NonNull::new(target), p, prot)?;
            at = at.wrapping_add(p.len);
        }
        Ok(mapping)
    }

    /// Maps `len` bytes of `fd` from byte `offset` (both whole pages).
    pub fn file(fd: impl AsFd, offset: u64, len: usize, writable: bool) -> io::Result<Mapping> {
        Mapping::new(
            &[Piece {
                fd: fd.as_fd(),
                offset,
                len,
            }],
            writable,
        )
    }

    /// Zeroed read-write memory of `len` bytes (whole pages) of a new
    /// memory file of its own: what fakes of devices hand out in tests.
    pub fn anonymous(len: usize) -> io::Result<Mapping> {
        let fd = crate::fd::memfd(c"xenmq-anon", len, crate::MemfdFlags::CLOEXEC)?;
        Mapping::file(&fd, 0, len, true)
    }

    /// Takes ownership of the mapped range `base..base + len`.
    fn owning(base: NonNull<u8>, len: usize, writable: bool) -> Mapping {
        // SAFETY: `base..base + len` was just mapped by this module (whole,
        // page-aligned hence 64-byte aligned, pages) and is unmapped only in
        // `Drop`; the region stays private to `self` until every piece over it
        // is mapped readable (and writable if `writable`), and is handed out
        // only by `region`, whose contract passes "not used after the
        // mapping is dropped" on to the caller. No Rust reference is ever
        // formed into it. A read-only mapping is PROT_READ: a write through
        // its region faults (SIGSEGV) instead of landing, which is how the
        // platforms enforce a read-only grant (as gntdev does on Xen).
        let region = unsafe { Region::new(base, len) };
        Mapping { region, writable }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the mapping is empty (never: mappings are at least a page).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Whether writes are allowed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte, for handing to the OS or to C code that keeps the
    /// mapping alive.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    /// The mapping as an [`Region`], for the rings and the other
    /// platform-free code. **Valid only while `self` lives**: the caller
    /// must not use the region (or a copy) after dropping the mapping (the
    /// contract of `xenmq::grant::Pages::region`, through which the
    /// platforms hand it out). Writes through the region of a read-only
    /// mapping fault.
    pub fn region(&self) -> Region {
        self.region
    }

    fn bad(&self, offset: usize, len: usize) -> BadAccess {
        BadAccess {
            offset,
            len,
            size: self.len(),
            kind: if self.writable {
                "read-write"
            } else {
                "read-only"
            },
        }
    }

    fn check_write(&self, offset: usize, len: usize) -> Result<(), BadAccess> {
        if self.writable {
            Ok(())
        } else {
            Err(self.bad(offset, len))
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping (volatile:
    /// the peer may be writing them; the copy is what gets checked).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), BadAccess> {
        self.region
            .read_bytes(offset, buf)
            .map_err(|_| self.bad(offset, buf.len()))
    }

    /// Copies `data` into the mapping at `offset` (volatile). Refused on a
    /// read-only mapping.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), BadAccess> {
        self.check_write(offset, data.len())?;
        self.region
            .write_bytes(offset, data)
            .map_err(|_| self.bad(offset, data.len()))
    }

    /// Atomically loads the aligned `u32` at `offset`.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, BadAccess> {
        self.region
            .load_u32(offset, order)
            .map_err(|_| self.bad(offset, 4))
    }

    /// Atomically stores the aligned `u32` at `offset`. Refused on a
    /// read-only mapping.
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), BadAccess> {
        self.check_write(offset, 4)?;
        self.region
            .store_u32(offset, value, order)
            .map_err(|_| self.bad(offset, 4))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region's pointer and length are exactly the range this
        // Mapping mapped (`owning`) and owns; no Region derived from it is
        // used after its owner is dropped (the documented rule of `region`),
        // and no Rust reference points into it. An error leaves the pages
        // mapped (a leak, never a dangling access), so it is ignored.
        let _ = unsafe { munmap(self.region.as_ptr().cast(), self.region.len()) };
    }
}

/// `mmap(MAP_SHARED)` of `piece`, at a kernel-chosen address (`at` `None`)
/// or over `at..at + piece.len` (`MAP_FIXED`), which must lie inside a
/// reservation the caller owns and has not handed out.
fn map_piece(
    at: Option<NonNull<u8>>,
    piece: &Piece<'_>,
    prot: ProtFlags,
) -> io::Result<NonNull<u8>> {
    let (hint, flags) = match at {
        None => (ptr::null_mut(), MapFlags::SHARED),
        Some(p) => (p.as_ptr().cast(), MapFlags::SHARED | MapFlags::FIXED),
    };
    // SAFETY: with a null hint the kernel picks a fresh range, replacing
    // nothing. With `at`, the target range lies inside the PROT_NONE
    // reservation that `Mapping::new` made and owns (its caller's
    // precondition, established there by the pieces summing to the reserved
    // length), which no Region or reference has reached yet, so MAP_FIXED
    // replaces only those pages. `piece.fd` is open for the call (a
    // BorrowedFd); `piece.len` is non-zero and `piece.offset` page-aligned
    // (checked by `Mapping::new`).
    let p = unsafe { mmap(hint, piece.len, prot, flags, piece.fd, piece.offset) }?;
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_access_and_atomics() {
        let m = Mapping::anonymous(PAGE_SIZE).unwrap();
        m.write(10, b"hello").unwrap();
        let mut b = [0u8; 5];
        m.read(10, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert!(m.write(PAGE_SIZE - 2, b"abc").is_err());
        assert!(m.read(usize::MAX, &mut b).is_err());
        m.store_u32(64, 0xdead_beef, Ordering::Release).unwrap();
        assert_eq!(m.load_u32(64, Ordering::Acquire).unwrap(), 0xdead_beef);
        assert!(m.load_u32(65, Ordering::Relaxed).is_err(), "misaligned");
        assert!(m.load_u32(PAGE_SIZE - 2, Ordering::Relaxed).is_err());
        assert!(Mapping::anonymous(100).is_err());
        assert!(Mapping::anonymous(0).is_err());
    }

    #[test]
    fn pieces_gather_files_and_share_writes() {
        let a = crate::memfd(c"a", 2 * PAGE_SIZE, crate::MemfdFlags::CLOEXEC).unwrap();
        let b = crate::memfd(c"b", PAGE_SIZE, crate::MemfdFlags::CLOEXEC).unwrap();
        let whole_a = Mapping::file(&a, 0, 2 * PAGE_SIZE, true).unwrap();
        whole_a.write(PAGE_SIZE, b"second page of a").unwrap();
        let gathered = Mapping::new(
            &[
                Piece {
                    fd: b.as_fd(),
                    offset: 0,
                    len: PAGE_SIZE,
                },
                Piece {
                    fd: a.as_fd(),
                    offset: PAGE_SIZE as u64,
                    len: PAGE_SIZE,
                },
            ],
            false,
        )
        .unwrap();
        assert_eq!(gathered.len(), 2 * PAGE_SIZE);
        let mut buf = [0u8; 16];
        gathered.read(PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"second page of a");
        // Read-only: refused here, never reaching the CPU.
        assert_eq!(gathered.write(0, b"x").unwrap_err().kind, "read-only");
        assert!(gathered.store_u32(0, 1, Ordering::Relaxed).is_err());
        // Misaligned or empty pieces are refused.
        let bad = Piece {
            fd: a.as_fd(),
            offset: 1,
            len: PAGE_SIZE,
        };
        assert!(Mapping::new(&[bad], true).is_err());
        assert!(Mapping::new(&[], true).is_err());
    }
}
