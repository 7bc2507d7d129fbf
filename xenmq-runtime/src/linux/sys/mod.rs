//! The unsafe floor of the Linux platform: the ioctls of `/dev/xen`, over
//! the checked ABI in [`abi`]. Mapping the devices' pages and waiting on
//! them are `xenmq_sys`'s ([`Mapping`], `xenmq_sys::poll_in`).
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
use std::time::Duration;

use zerocopy::IntoBytes;

use abi::{
    EvtchnBindInterdomain, EvtchnBindUnboundPort, EvtchnPort, EvtchnStatus, GntallocAllocGrefHead,
    GntallocDeallocGref, GntdevGrantRef, GntdevMapGrantRefHead, GntdevUnmapGrantRef,
    PrivcmdHypercall, UnmapNotify,
};

pub use xenmq_sys::{BadAccess, Mapping, PAGE_SIZE};

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
        Mapping::file(&self.0, index, len, true)
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
        Mapping::file(&self.0, index, len, writable)
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
        xenmq_sys::poll_in(self.dev.as_fd(), timeout)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_follow_ioc() {
        // _IOC(_IOC_NONE, 'E', 4, 4): dir 0, size 4 << 16, type 'E' << 8, nr 4.
        assert_eq!(abi::IOCTL_EVTCHN_NOTIFY, (4 << 16) | (0x45 << 8) | 4);
    }
}
