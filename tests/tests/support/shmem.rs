//! Two-process plumbing for ring tests and benchmarks: pages in a memfd
//! mapped shared, eventfds as notification channels, and fds handed to a
//! child process by number. Include with `#[path = "support/shmem.rs"] mod shmem;`.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use xenmq::grant::PAGE_SIZE;
use xenmq::shm::Region;
use xenmq_sys::{EventFd, EventfdFlags, Mapping, MemfdFlags};

/// Zeroed pages in a memfd, mapped shared read-write into this process.
pub struct SharedPages {
    // Declared first, so the pages are unmapped before the file is closed.
    map: Mapping,
    fd: OwnedFd,
}

impl SharedPages {
    pub fn new(pages: usize) -> io::Result<Self> {
        let len = pages * PAGE_SIZE;
        let fd = xenmq_sys::memfd(c"xenmq-ring", len, MemfdFlags::CLOEXEC)?;
        let map = Mapping::file(&fd, 0, len, true)?;
        Ok(SharedPages { map, fd })
    }

    /// A region over the pages. Valid while `self` lives: callers drop their
    /// rings before the pages.
    pub fn region(&self) -> Region {
        self.map.region()
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// A non-blocking eventfd used as a one-way notification channel.
pub struct Event(EventFd);

impl Event {
    pub fn new() -> io::Result<Self> {
        EventFd::new(EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).map(Event)
    }

    pub fn notify(&self) -> io::Result<()> {
        self.0.notify()
    }

    /// Takes the counter (notifications since the last take), 0 if none.
    pub fn take(&self) -> io::Result<u64> {
        match self.0.take() {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Waits up to `timeout` for a notification and takes the counter;
    /// `Ok(None)` on timeout.
    pub fn wait(&self, timeout: Duration) -> io::Result<Option<u64>> {
        if !xenmq_sys::poll_in(self.0.as_fd(), Some(timeout))? {
            return Ok(None);
        }
        Ok(Some(self.take()?))
    }

    pub fn fd(&self) -> &EventFd {
        &self.0
    }
}

/// Lets a child process inherit `fd` at its own number (clears close-on-exec)
/// and returns that number for the child's command line.
pub fn inheritable(fd: &impl AsFd) -> io::Result<RawFd> {
    xenmq_sys::keep_on_exec(fd)?;
    Ok(fd.as_fd().as_raw_fd())
}
