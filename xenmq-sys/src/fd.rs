//! Descriptors: memory files, eventfds, and descriptors handed to a child
//! process by number.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::EventfdFlags;
use rustix::fs::MemfdFlags;
use rustix::io::{fcntl_getfd, fcntl_setfd, Errno, FdFlags};

/// Creates an anonymous memory file of `len` bytes, all zero
/// (`memfd_create` + `ftruncate`). Without [`MemfdFlags::CLOEXEC`] a child
/// process inherits it.
pub fn memfd(name: &CStr, len: usize, flags: MemfdFlags) -> io::Result<OwnedFd> {
    let len = u64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = rustix::fs::memfd_create(name, flags)?;
    rustix::fs::ftruncate(&fd, len)?;
    Ok(fd)
}

/// Creates an eventfd with counter 0.
pub fn eventfd(flags: EventfdFlags) -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(0, flags)?)
}

/// Clears close-on-exec on `fd`, so a spawned child inherits it at the same
/// number.
pub fn keep_on_exec(fd: impl AsFd) -> io::Result<()> {
    let flags = fcntl_getfd(&fd)?;
    fcntl_setfd(&fd, flags - FdFlags::CLOEXEC)?;
    Ok(())
}

/// Takes ownership of descriptor number `fd`, inherited from the parent
/// process (which passed the number, e.g. on the command line), after
/// checking that it is open.
///
/// The caller adopts each inherited number once; the process must not
/// otherwise use the number (the usual contract of a descriptor handed down
/// by number).
#[allow(unsafe_code)]
pub fn inherit(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: F_GETFD only queries the descriptor table, so borrowing a
    // number that may not be open is harmless for this one call: a closed
    // number fails with EBADF below instead of being adopted.
    fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })?;
    // SAFETY: `fd` is open (checked just above) and non-negative; the parent
    // passed its number to this process to adopt, and by this function's
    // contract it is adopted once and nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd as a notification channel: `notify` adds one, `wait` takes
/// what was added.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd with counter 0.
    pub fn new(flags: EventfdFlags) -> io::Result<EventFd> {
        eventfd(flags).map(EventFd)
    }

    /// Adopts an eventfd inherited from the parent process (see [`inherit`]).
    pub fn inherit(fd: RawFd) -> io::Result<EventFd> {
        inherit(fd).map(EventFd)
    }

    /// Adds one to the counter (wakes a waiter). Retries on `EINTR`.
    #[inline]
    pub fn notify(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        loop {
            match rustix::io::write(&self.0, &one) {
                Ok(8) => return Ok(()),
                Ok(_) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes the counter (notifications since the last take). Blocks while
    /// it is zero, or fails with `WouldBlock` if the eventfd is
    /// non-blocking. Retries on `EINTR`.
    #[inline]
    pub fn take(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                Ok(_) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Blocks until the peer has notified at least once since the last
    /// wait, and takes the counter.
    #[inline]
    pub fn wait(&self) -> io::Result<()> {
        self.take().map(drop)
    }

    /// Waits up to `timeout` (`None`: for ever) for a notification and takes
    /// it: `Ok(false)` if none came in time.
    pub fn wait_for(&self, timeout: Option<Duration>) -> io::Result<bool> {
        if timeout.is_some() && !crate::poll_in(self.0.as_fd(), timeout)? {
            return Ok(false);
        }
        self.wait()?;
        Ok(true)
    }

    /// Takes a pending notification without blocking: `true` if there was
    /// one.
    pub fn try_take(&self) -> io::Result<bool> {
        self.wait_for(Some(Duration::ZERO))
    }

    /// The raw descriptor number, to hand to a child process or to C code.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<EventFd> for OwnedFd {
    fn from(e: EventFd) -> OwnedFd {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_is_zeroed_and_sized() {
        let fd = memfd(c"t", 8192, MemfdFlags::CLOEXEC).unwrap();
        let f = std::fs::File::from(fd);
        assert_eq!(f.metadata().unwrap().len(), 8192);
    }

    #[test]
    fn eventfd_counts_and_times_out() {
        let e = EventFd::new(EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).unwrap();
        assert!(!e.try_take().unwrap());
        assert_eq!(
            e.take().unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "non-blocking and empty"
        );
        e.notify().unwrap();
        e.notify().unwrap();
        assert_eq!(e.take().unwrap(), 2);
        assert!(!e.wait_for(Some(Duration::from_millis(10))).unwrap());
        e.notify().unwrap();
        assert!(e.wait_for(Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn keep_on_exec_clears_cloexec_and_inherit_checks() {
        let e = EventFd::new(EventfdFlags::CLOEXEC).unwrap();
        keep_on_exec(&e).unwrap();
        assert!(!fcntl_getfd(&e).unwrap().contains(FdFlags::CLOEXEC));
        assert!(inherit(-1).is_err());
        // A number far above any open descriptor is refused, not adopted.
        assert!(inherit(1 << 30).is_err());
    }
}
