//! A one-shot timer that is a descriptor (`timerfd`), for loops that sleep
//! on descriptors only, such as an async reactor's.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// A monotonic one-shot timer, readable once it has expired.
#[derive(Debug)]
pub struct Timer(OwnedFd);

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl Timer {
    /// A disarmed timer (non-blocking, closed on exec).
    pub fn new() -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(Timer(fd))
    }

    /// Arms the timer to expire `after` from now (`None`: disarms it). An
    /// expiry not yet taken is forgotten.
    pub fn set(&self, after: Option<Duration>) -> io::Result<()> {
        // A zero value disarms a timerfd: "now" is the smallest delay.
        let value = after.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1)));
        let spec = Itimerspec {
            it_interval: timespec(Duration::ZERO),
            it_value: timespec(value),
        };
        timerfd_settime(&self.0, TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// Takes an expiry: `true` if the timer had expired.
    pub fn take(&self) -> io::Result<bool> {
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.0, &mut buf) {
            Ok(8) => Ok(true),
            Ok(n) => Err(io::Error::other(format!("timerfd read returned {n} bytes"))),
            Err(rustix::io::Errno::AGAIN) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn expires_once_after_its_delay() {
        let t = Timer::new().unwrap();
        assert!(!t.take().unwrap());
        let start = Instant::now();
        t.set(Some(Duration::from_millis(20))).unwrap();
        assert!(crate::poll_in(t.as_fd(), Some(Duration::from_secs(5))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(t.take().unwrap());
        assert!(!t.take().unwrap());
    }

    #[test]
    fn disarmed_or_zero() {
        let t = Timer::new().unwrap();
        t.set(Some(Duration::from_secs(60))).unwrap();
        t.set(None).unwrap();
        assert!(!crate::poll_in(t.as_fd(), Some(Duration::from_millis(20))).unwrap());
        t.set(Some(Duration::ZERO)).unwrap();
        assert!(crate::poll_in(t.as_fd(), Some(Duration::from_secs(5))).unwrap());
    }
}
