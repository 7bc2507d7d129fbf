//! The unsafe floor of the Linux platform: ioctl and mmap on `/dev/xen`.
//!
//! Each device has a *seam* trait ([`GntallocIo`], [`GntdevIo`],
//! [`EvtchnIo`]) naming the operations the logic above needs, with typed
//! arguments and safe signatures. The real devices ([`GntallocDev`],
//! [`GntdevDev`], [`EvtchnDev`]) implement them with system calls; unit
//! tests implement them with recording fakes, so everything above this
//! module is testable without Xen. Mappings are [`Mapping`]s, which unmap on
//! drop and are only reached through volatile copies and atomics.
#![allow(unsafe_code)]

pub mod abi;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use zerocopy::IntoBytes;

use abi::{
    EvtchnBindInterdomain, EvtchnBindUnboundPort, EvtchnPort, EvtchnStatus, GntallocAllocGrefHead,
    GntallocDeallocGref, GntdevGrantRef, GntdevMapGrantRefHead, GntdevUnmapGrantRef,
    PrivcmdHypercall, UnmapNotify,
};

/// The page size of the mappings (Xen's, and x86 Linux's).
pub const PAGE_SIZE: usize = 4096;

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

/// Memory mapped from a device (or anonymous memory standing in for it in
/// tests), unmapped on drop.
///
/// The memory may be shared with another domain, which can change any byte
/// at any moment. So there is no way to get a `&[u8]` into it: reads and
/// writes are volatile copies ([`Mapping::read`], [`Mapping::write`]) or
/// atomics ([`Mapping::load_u32`], [`Mapping::store_u32`]).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: a Mapping owns its pages (nobody else unmaps them) and every access
// through it is volatile or atomic, tolerating concurrent writers; moving it
// to another thread or sharing it adds no hazard.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `&Mapping` only allows volatile/atomic accesses.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(MAP_SHARED)` of `len` bytes of `fd` at `offset`.
    fn map_fd(fd: BorrowedFd<'_>, offset: u64, len: usize, writable: bool) -> io::Result<Self> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a NULL hint lets the kernel pick a fresh range, so no
        // existing Rust object is replaced; fd is a live descriptor borrowed
        // for the call; len is non-zero and page-sized (checked above). The
        // result is checked for MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mapping { ptr, len, writable })
    }

    /// Anonymous zeroed read-write memory of `len` bytes (a whole number of
    /// pages): what fakes of the device traits hand out in tests.
    pub fn anonymous(len: usize) -> io::Result<Self> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: NULL hint (fresh range, nothing replaced), no fd, non-zero
        // page-sized len; MAP_FAILED is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mapping {
            ptr,
            len,
            writable: true,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mappings are at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether writes are allowed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte, for handing to code that keeps the mapping alive
    /// (e.g. to build an `xenmq::shm::Region`, whose constructor states the
    /// obligations).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapping as an `xenmq::shm::Region`, for the ring and the other
    /// platform-free code. **Valid only while `self` lives** (the contract
    /// of `xenmq::grant::Pages::region`, through which the platform hands it
    /// out).
    pub fn region(&self) -> xenmq::shm::Region {
        // SAFETY: ptr..ptr+len is the live mapping owned by `self` (unmapped
        // only in Drop); mmap returns page-aligned memory, so 64-byte
        // alignment holds; this module never forms a Rust reference into it.
        // That the region is not used after `self` is gone is passed on to
        // the caller, as documented above and in `Pages::region`. A read-only
        // mapping is PROT_READ: a write through its region faults (SIGSEGV),
        // as writing a read-only grant does on Xen; the owner's `access`
        // says which mappings are writable.
        unsafe { xenmq::shm::Region::new(self.ptr, self.len) }
    }

    fn check(&self, offset: usize, len: usize, write: bool, align: usize) -> Result<(), BadAccess> {
        let inside = offset.checked_add(len).is_some_and(|end| end <= self.len);
        if !inside || (write && !self.writable) || !offset.is_multiple_of(align) {
            return Err(BadAccess {
                offset,
                len,
                size: self.len,
                kind: if self.writable {
                    "read-write"
                } else {
                    "read-only"
                },
            });
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping (volatile:
    /// the peer may be writing them; the copy is what gets checked).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), BadAccess> {
        self.check(offset, buf.len(), false, 1)?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < offset + buf.len() <= self.len (check
            // above), so the byte is inside the live mapping owned by self,
            // which is readable (PROT_READ always). Volatile because another
            // domain may write it concurrently; u8 has no alignment needs.
            *b = unsafe { self.ptr.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` into the mapping at `offset` (volatile).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), BadAccess> {
        self.check(offset, data.len(), true, 1)?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds as in `read` (checked above), and the mapping
            // is writable (PROT_WRITE: `check` refused otherwise). Volatile:
            // shared memory, no Rust reference to it exists.
            unsafe { self.ptr.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }

    fn atomic_u32(&self, offset: usize, write: bool) -> Result<&AtomicU32, BadAccess> {
        self.check(offset, 4, write, 4)?;
        // SAFETY: offset is 4-aligned and offset+4 <= len (checked), and the
        // mapping starts page-aligned, so the pointer is valid and aligned for
        // an AtomicU32 for as long as `self` lives (the returned borrow is
        // tied to `&self`). All accesses to shared words go through atomics
        // or volatile copies, which is what AtomicU32::from_ptr requires of
        // concurrent non-Rust writers (the peer's CPU accesses are atomic at
        // this size and alignment on x86).
        Ok(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast::<u32>()) })
    }

    /// Atomically loads the aligned `u32` at `offset`.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, BadAccess> {
        Ok(self.atomic_u32(offset, false)?.load(order))
    }

    /// Atomically stores the aligned `u32` at `offset`.
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), BadAccess> {
        self.atomic_u32(offset, true)?.store(value, order);
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned for this object,
        // which owns the range; no reference into it can outlive `self`
        // (accessors hand out copies or borrows of `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Opens a `/dev/xen` node read-write, close-on-exec.
fn open_dev(path: &str, nonblock: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    o.custom_flags(libc::O_CLOEXEC | if nonblock { libc::O_NONBLOCK } else { 0 });
    o.open(path)
}

/// `ioctl(fd, req, arg)`, returning the non-negative result.
///
/// # Safety
///
/// The driver behind `fd` must, for `req`, access at most the bytes of `arg`
/// (the caller names the driver and the sizes it copies in its proof).
unsafe fn ioctl(fd: &File, req: u32, arg: &mut [u8]) -> io::Result<i32> {
    // SAFETY: fd is live (borrowed); arg is a valid, exclusively borrowed
    // buffer for the call; the caller guarantees the driver stays inside it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An 8-byte-aligned zeroed buffer of at least `bytes` bytes (ioctl
/// arguments hold `u64` fields).
fn aligned_buf(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes.div_ceil(8)]
}

// ---- gntalloc ------------------------------------------------------------

/// What the grant-sharing logic needs from `/dev/xen/gntalloc`.
pub trait GntallocIo: Send + Sync + 'static {
    /// `IOCTL_GNTALLOC_ALLOC_GREF`: grants `grefs.len()` new pages to
    /// `domid`, fills `grefs`, returns the mmap offset.
    fn alloc_gref(&self, domid: u16, flags: u16, grefs: &mut [u32]) -> io::Result<u64>;
    /// `IOCTL_GNTALLOC_DEALLOC_GREF`.
    fn dealloc_gref(&self, index: u64, count: u32) -> io::Result<()>;
    /// `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`.
    fn set_unmap_notify(&self, notify: UnmapNotify) -> io::Result<()>;
    /// mmap of `pages` pages at `index`, read-write.
    fn mmap(&self, index: u64, pages: usize) -> io::Result<Mapping>;
}

/// `/dev/xen/gntalloc`.
#[derive(Debug)]
pub struct GntallocDev(File);

impl GntallocDev {
    /// The device node.
    pub const PATH: &'static str = "/dev/xen/gntalloc";

    /// Opens [`Self::PATH`].
    pub fn open() -> io::Result<Self> {
        open_dev(Self::PATH, false).map(GntallocDev)
    }
}

impl GntallocIo for GntallocDev {
    fn alloc_gref(&self, domid: u16, flags: u16, grefs: &mut [u32]) -> io::Result<u64> {
        let count = u32::try_from(grefs.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        if count == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let head_len = core::mem::size_of::<GntallocAllocGrefHead>();
        let len = (head_len + 4 * grefs.len()).max(abi::GNTALLOC_ALLOC_GREF_SIZE);
        let mut buf = aligned_buf(len);
        let bytes = buf.as_mut_bytes();
        let head = GntallocAllocGrefHead {
            domid,
            flags,
            count,
            index: 0,
        };
        bytes[..head_len].copy_from_slice(head.as_bytes());
        // SAFETY: self.0 is /dev/xen/gntalloc (only `open` makes one). For
        // ALLOC_GREF its driver copies sizeof(struct ioctl_gntalloc_alloc_gref)
        // = 24 bytes in and out, and writes count * 4 bytes of ids at offset
        // 16; bytes holds max(24, 16 + 4 * count) bytes.
        unsafe { ioctl(&self.0, abi::IOCTL_GNTALLOC_ALLOC_GREF, bytes)? };
        let index = u64::from_ne_bytes(bytes[8..16].try_into().map_err(|_| io::ErrorKind::Other)?);
        for (g, chunk) in grefs.iter_mut().zip(bytes[head_len..].chunks_exact(4)) {
            *g = u32::from_ne_bytes(chunk.try_into().map_err(|_| io::ErrorKind::Other)?);
        }
        Ok(index)
    }

    fn dealloc_gref(&self, index: u64, count: u32) -> io::Result<()> {
        let mut arg = GntallocDeallocGref {
            index,
            count,
            pad: 0,
        };
        // SAFETY: /dev/xen/gntalloc reads sizeof(struct
        // ioctl_gntalloc_dealloc_gref) = 16 bytes for DEALLOC_GREF, the size
        // of `arg` (checked against the header by the linux_abi test).
        unsafe {
            ioctl(
                &self.0,
                abi::IOCTL_GNTALLOC_DEALLOC_GREF,
                arg.as_mut_bytes(),
            )?
        };
        Ok(())
    }

    fn set_unmap_notify(&self, mut notify: UnmapNotify) -> io::Result<()> {
        // SAFETY: /dev/xen/gntalloc reads sizeof(struct
        // ioctl_gntalloc_unmap_notify) = 16 bytes, the size of `notify`.
        unsafe {
            ioctl(
                &self.0,
                abi::IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
                notify.as_mut_bytes(),
            )?
        };
        Ok(())
    }

    fn mmap(&self, index: u64, pages: usize) -> io::Result<Mapping> {
        let len = pages
            .checked_mul(PAGE_SIZE)
            .ok_or(io::ErrorKind::InvalidInput)?;
        Mapping::map_fd(self.0.as_fd(), index, len, true)
    }
}

// ---- gntdev --------------------------------------------------------------

/// What the grant-mapping logic needs from `/dev/xen/gntdev`.
pub trait GntdevIo: Send + Sync + 'static {
    /// `IOCTL_GNTDEV_MAP_GRANT_REF`: reserves a mapping of `refs`, returns
    /// its mmap offset.
    fn map_grant_ref(&self, refs: &[GntdevGrantRef]) -> io::Result<u64>;
    /// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
    fn unmap_grant_ref(&self, index: u64, count: u32) -> io::Result<()>;
    /// `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`.
    fn set_unmap_notify(&self, notify: UnmapNotify) -> io::Result<()>;
    /// mmap of `pages` pages at `index` (this is when Xen maps the grants).
    fn mmap(&self, index: u64, pages: usize, writable: bool) -> io::Result<Mapping>;
}

/// `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct GntdevDev(File);

impl GntdevDev {
    /// The device node.
    pub const PATH: &'static str = "/dev/xen/gntdev";

    /// Opens [`Self::PATH`].
    pub fn open() -> io::Result<Self> {
        open_dev(Self::PATH, false).map(GntdevDev)
    }
}

impl GntdevIo for GntdevDev {
    fn map_grant_ref(&self, refs: &[GntdevGrantRef]) -> io::Result<u64> {
        let count = u32::try_from(refs.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        if count == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let head_len = core::mem::size_of::<GntdevMapGrantRefHead>();
        let len = head_len + std::mem::size_of_val(refs);
        let mut buf = aligned_buf(len);
        let bytes = buf.as_mut_bytes();
        let head = GntdevMapGrantRefHead {
            count,
            pad: 0,
            index: 0,
        };
        bytes[..head_len].copy_from_slice(head.as_bytes());
        bytes[head_len..len].copy_from_slice(refs.as_bytes());
        // SAFETY: self.0 is /dev/xen/gntdev. For MAP_GRANT_REF its driver
        // copies sizeof(struct ioctl_gntdev_map_grant_ref) = 24 bytes in and
        // out and reads count * 8 bytes of refs at offset 16; bytes holds
        // 16 + 8 * count >= 24 bytes (count >= 1).
        unsafe { ioctl(&self.0, abi::IOCTL_GNTDEV_MAP_GRANT_REF, bytes)? };
        let index = u64::from_ne_bytes(bytes[8..16].try_into().map_err(|_| io::ErrorKind::Other)?);
        Ok(index)
    }

    fn unmap_grant_ref(&self, index: u64, count: u32) -> io::Result<()> {
        let mut arg = GntdevUnmapGrantRef {
            index,
            count,
            pad: 0,
        };
        // SAFETY: /dev/xen/gntdev copies sizeof(struct
        // ioctl_gntdev_unmap_grant_ref) = 16 bytes in, the size of `arg`.
        unsafe {
            ioctl(
                &self.0,
                abi::IOCTL_GNTDEV_UNMAP_GRANT_REF,
                arg.as_mut_bytes(),
            )?
        };
        Ok(())
    }

    fn set_unmap_notify(&self, mut notify: UnmapNotify) -> io::Result<()> {
        // SAFETY: /dev/xen/gntdev copies sizeof(struct
        // ioctl_gntdev_unmap_notify) = 16 bytes in, the size of `notify`.
        unsafe {
            ioctl(
                &self.0,
                abi::IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
                notify.as_mut_bytes(),
            )?
        };
        Ok(())
    }

    fn mmap(&self, index: u64, pages: usize, writable: bool) -> io::Result<Mapping> {
        let len = pages
            .checked_mul(PAGE_SIZE)
            .ok_or(io::ErrorKind::InvalidInput)?;
        Mapping::map_fd(self.0.as_fd(), index, len, writable)
    }
}

// ---- evtchn --------------------------------------------------------------

/// What the event-channel logic needs from `/dev/xen/evtchn`.
pub trait EvtchnIo: Send + Sync + 'static {
    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: a new port `remote_domain` may bind.
    fn bind_unbound_port(&self, remote_domain: u32) -> io::Result<u32>;
    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: binds the peer's unbound port.
    fn bind_interdomain(&self, remote_domain: u32, remote_port: u32) -> io::Result<u32>;
    /// `IOCTL_EVTCHN_UNBIND`.
    fn unbind(&self, port: u32) -> io::Result<()>;
    /// `IOCTL_EVTCHN_NOTIFY`.
    fn notify(&self, port: u32) -> io::Result<()>;
    /// Reads pending ports (each now masked) without blocking; `Ok(0)` when
    /// none are pending.
    fn read_pending(&self, ports: &mut [u32]) -> io::Result<usize>;
    /// Unmasks `ports` (a write of their numbers).
    fn unmask(&self, ports: &[u32]) -> io::Result<()>;
    /// Waits until [`EvtchnIo::read_pending`] has something, up to `timeout`
    /// (`None`: forever). `Ok(false)` on timeout.
    fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool>;
    /// `EVTCHNOP_status` of our own `port` (through `/dev/xen/privcmd`).
    fn status(&self, port: u32) -> io::Result<EvtchnStatus>;
}

/// `/dev/xen/evtchn`, opened non-blocking, with `/dev/xen/privcmd` (if
/// present) for port status.
#[derive(Debug)]
pub struct EvtchnDev {
    dev: File,
    privcmd: Option<File>,
}

impl EvtchnDev {
    /// The device node.
    pub const PATH: &'static str = "/dev/xen/evtchn";
    /// The hypercall device, used for `EVTCHNOP_status`.
    pub const PRIVCMD: &'static str = "/dev/xen/privcmd";

    /// Opens [`Self::PATH`], and [`Self::PRIVCMD`] if it can.
    pub fn open() -> io::Result<Self> {
        let dev = open_dev(Self::PATH, true)?;
        Ok(EvtchnDev {
            dev,
            privcmd: open_dev(Self::PRIVCMD, false).ok(),
        })
    }
}

impl AsFd for EvtchnDev {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

impl EvtchnIo for EvtchnDev {
    fn bind_unbound_port(&self, remote_domain: u32) -> io::Result<u32> {
        let mut arg = EvtchnBindUnboundPort { remote_domain };
        // SAFETY: self.dev is /dev/xen/evtchn, which copies sizeof(struct
        // ioctl_evtchn_bind_unbound_port) = 4 bytes in, the size of `arg`.
        let port = unsafe {
            ioctl(
                &self.dev,
                abi::IOCTL_EVTCHN_BIND_UNBOUND_PORT,
                arg.as_mut_bytes(),
            )?
        };
        u32::try_from(port).map_err(|_| io::ErrorKind::Other.into())
    }

    fn bind_interdomain(&self, remote_domain: u32, remote_port: u32) -> io::Result<u32> {
        let mut arg = EvtchnBindInterdomain {
            remote_domain,
            remote_port,
        };
        // SAFETY: /dev/xen/evtchn copies sizeof(struct
        // ioctl_evtchn_bind_interdomain) = 8 bytes in, the size of `arg`.
        let port = unsafe {
            ioctl(
                &self.dev,
                abi::IOCTL_EVTCHN_BIND_INTERDOMAIN,
                arg.as_mut_bytes(),
            )?
        };
        u32::try_from(port).map_err(|_| io::ErrorKind::Other.into())
    }

    fn unbind(&self, port: u32) -> io::Result<()> {
        let mut arg = EvtchnPort { port };
        // SAFETY: /dev/xen/evtchn copies sizeof(struct ioctl_evtchn_unbind)
        // = 4 bytes in, the size of `arg`.
        unsafe { ioctl(&self.dev, abi::IOCTL_EVTCHN_UNBIND, arg.as_mut_bytes())? };
        Ok(())
    }

    fn notify(&self, port: u32) -> io::Result<()> {
        let mut arg = EvtchnPort { port };
        // SAFETY: /dev/xen/evtchn copies sizeof(struct ioctl_evtchn_notify)
        // = 4 bytes in, the size of `arg`.
        unsafe { ioctl(&self.dev, abi::IOCTL_EVTCHN_NOTIFY, arg.as_mut_bytes())? };
        Ok(())
    }

    fn read_pending(&self, ports: &mut [u32]) -> io::Result<usize> {
        // The kernel writes whole native-endian ports; read them in place.
        match (&self.dev).read(ports.as_mut_bytes()) {
            Ok(n) => Ok(n / 4),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn unmask(&self, ports: &[u32]) -> io::Result<()> {
        (&self.dev).write_all(ports.as_bytes())
    }

    fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_in(self.dev.as_fd(), timeout)
    }

    fn status(&self, port: u32) -> io::Result<EvtchnStatus> {
        let privcmd = self.privcmd.as_ref().ok_or(io::ErrorKind::NotFound)?;
        let mut st = EvtchnStatus {
            dom: abi::DOMID_SELF,
            port,
            ..EvtchnStatus::default()
        };
        let addr = std::ptr::from_mut(&mut st).expose_provenance() as u64;
        let mut call = PrivcmdHypercall {
            op: abi::HYPERVISOR_EVENT_CHANNEL_OP,
            arg: [abi::EVTCHNOP_STATUS, addr, 0, 0, 0],
        };
        // SAFETY: privcmd is /dev/xen/privcmd (opened in `open`), whose
        // HYPERCALL ioctl copies sizeof(struct privcmd_hypercall) = 48 bytes
        // in, the size of `call`, and issues event_channel_op(status, addr).
        // Xen reads and writes sizeof(struct evtchn_status) = 24 bytes at
        // addr, which is `st`: live on this frame until after the call, not
        // otherwise borrowed during it, its pointer exposed above so the
        // write through the integer address is visible to Rust; the layout
        // is checked against the C header by the linux_abi test.
        unsafe { ioctl(privcmd, abi::IOCTL_PRIVCMD_HYPERCALL, call.as_mut_bytes())? };
        Ok(st)
    }
}

/// `poll(POLLIN)` on one descriptor, restarted on `EINTR` with the time left.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so a sub-millisecond remainder still waits.
                libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is one valid, exclusively borrowed pollfd and nfds is 1;
        // the fd is borrowed for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(false);
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other("poll reported an error on the descriptor"));
        }
        return Ok(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_bounds_and_atomics() {
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
    }

    #[test]
    fn poll_times_out_and_sees_data() {
        let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!poll_in(r.as_fd(), Some(Duration::from_millis(20))).unwrap());
        w.write_all(b"x").unwrap();
        assert!(poll_in(r.as_fd(), Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn ioctl_numbers_follow_ioc() {
        // _IOC(_IOC_NONE, 'E', 4, 4): dir 0, size 4 << 16, type 'E' << 8, nr 4.
        assert_eq!(abi::IOCTL_EVTCHN_NOTIFY, (4 << 16) | (0x45 << 8) | 4);
    }
}
