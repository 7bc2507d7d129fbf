//! Waiting for descriptors to become readable: one `poll` loop for the
//! whole workspace, restarted on `EINTR` with the time left.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// Waits until `fd` is readable (or hung up) or `timeout` passes (`None`:
/// for ever). Returns whether it became readable; an error condition on the
/// descriptor (`POLLERR`, `POLLNVAL`) is an error.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    if wait(&mut pfd, timeout)?.is_none() {
        return Ok(false);
    }
    let r = pfd[0].revents();
    if r.intersects(PollFlags::ERR | PollFlags::NVAL) && !r.contains(PollFlags::IN) {
        return Err(io::Error::other("poll reported an error on the descriptor"));
    }
    Ok(true)
}

/// Waits until any of `fds` is ready (readable, hung up or in error) or
/// `timeout` passes (`None`: for ever); returns the index of the first ready
/// one, whose read then tells which.
pub fn poll_any(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Option<usize>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&f| PollFd::from_borrowed_fd(f, PollFlags::IN))
        .collect();
    wait(&mut pfds, timeout)
}

/// The loop: `poll` until one of `pfds` has events (its index) or the
/// timeout passes (`None`), restarted on `EINTR` with the time left.
fn wait(pfds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<Option<usize>> {
    // A timeout too long to add to now is as good as for ever.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ts = left.map(timespec);
        match poll(pfds, ts.as_ref()) {
            Ok(0) => {}
            Ok(_) => {
                if let Some(i) = pfds.iter().position(|p| !p.revents().is_empty()) {
                    return Ok(Some(i));
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// A duration as poll's timeout (the kernel rounds up to its clock tick,
/// so a short timeout still sleeps).
fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn times_out_and_sees_data() {
        let (r, mut w) = UnixStream::pair().unwrap();
        assert!(!poll_in(r.as_fd(), Some(Duration::from_millis(20))).unwrap());
        assert!(!poll_in(r.as_fd(), Some(Duration::ZERO)).unwrap());
        w.write_all(b"x").unwrap();
        assert!(poll_in(r.as_fd(), Some(Duration::from_secs(5))).unwrap());
        assert!(poll_in(r.as_fd(), None).unwrap());
    }

    #[test]
    fn any_names_the_ready_one() {
        let (a, _a) = UnixStream::pair().unwrap();
        let (b, mut bw) = UnixStream::pair().unwrap();
        let fds = [a.as_fd(), b.as_fd()];
        assert_eq!(
            poll_any(&fds, Some(Duration::from_millis(10))).unwrap(),
            None
        );
        bw.write_all(b"x").unwrap();
        assert_eq!(
            poll_any(&fds, Some(Duration::from_secs(5))).unwrap(),
            Some(1)
        );
        drop(_a);
        assert_eq!(poll_any(&fds, None).unwrap(), Some(0), "hang-up counts");
    }
}
