//! Two-process plumbing for ring tests and benchmarks: pages in a memfd
//! mapped shared, eventfds as notification channels, and fds handed to a
//! child process by number. Include with `#[path = "support/shmem.rs"] mod shmem;`.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::io::{fcntl_setfd, read, write, Errno, FdFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use xenmq::grant::PAGE_SIZE;
use xenmq::shm::Region;

/// Zeroed pages in a memfd, mapped shared read-write into this process.
pub struct SharedPages {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedPages {
    pub fn new(pages: usize) -> io::Result<Self> {
        let len = pages * PAGE_SIZE;
        let fd = memfd_create("xenmq-ring", MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, len as u64)?;
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) of
        // a memfd we just sized to `len`: it overlaps nothing of ours.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(io::ErrorKind::Other)?;
        Ok(SharedPages { fd, ptr, len })
    }

    /// A region over the pages. Valid while `self` lives: callers drop their
    /// rings before the pages.
    pub fn region(&self) -> Region {
        // SAFETY: the mapping is `len` bytes, readable and writable, and
        // page-aligned; it stays mapped until `self` is dropped, which the
        // callers (these tests) do only after the last use of the region. No
        // Rust reference into it is ever made: another process writes it.
        unsafe { Region::new(self.ptr, self.len) }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, and no
        // region over it is used after this point (see `region`).
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A non-blocking eventfd used as a one-way notification channel.
pub struct Event(OwnedFd);

impl Event {
    pub fn new() -> io::Result<Self> {
        Ok(Event(eventfd(
            0,
            EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
        )?))
    }

    pub fn notify(&self) -> io::Result<()> {
        write(&self.0, &1u64.to_ne_bytes())?;
        Ok(())
    }

    /// Takes the counter (notifications since the last take), 0 if none.
    pub fn take(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        match read(&self.0, &mut buf) {
            Ok(_) => Ok(u64::from_ne_bytes(buf)),
            Err(Errno::AGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits up to `timeout` for a notification and takes the counter;
    /// `Ok(None)` on timeout.
    pub fn wait(&self, timeout: Duration) -> io::Result<Option<u64>> {
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(self.take()?)),
            Err(Errno::INTR) => Ok(Some(0)),
            Err(e) => Err(e.into()),
        }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.0
    }
}

/// Lets a child process inherit `fd` at its own number (clears close-on-exec)
/// and returns that number for the child's command line.
pub fn inheritable(fd: &impl AsFd) -> io::Result<RawFd> {
    fcntl_setfd(fd, FdFlags::empty())?;
    Ok(fd.as_fd().as_raw_fd())
}
