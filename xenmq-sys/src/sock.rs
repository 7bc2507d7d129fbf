//! Unix sockets: descriptors passed with `SCM_RIGHTS`, the peer's
//! credentials, shutdown, and non-blocking receives.

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown,
};

/// The most descriptors one message may carry, sender and receiver alike.
pub const MAX_FDS: usize = 64;

/// Sends `data` on a stream socket with `fds` attached to its first byte
/// (`SCM_RIGHTS`), then the rest of the bytes. Retries on `EINTR`; never
/// raises `SIGPIPE`.
pub fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.is_empty() || data.is_empty() {
        return (&*sock).write_all(data);
    }
    if fds.len() > MAX_FDS {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let sent = loop {
        match sendmsg(
            sock,
            &[IoSlice::new(data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => break n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The descriptors went with the first chunk; the rest is plain bytes.
    (&*sock).write_all(data.get(sent..).unwrap_or(&[]))
}

/// Receives up to `buf.len()` bytes from a stream socket, appending any
/// descriptors that came with them to `fds` (close-on-exec). Returns the
/// byte count (0 at end of stream). More than [`MAX_FDS`] descriptors in one
/// message is an error (`InvalidData`); the extra ones are closed by the
/// kernel, those received are still appended.
pub fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many descriptors in one message",
        ));
    }
    Ok(msg.bytes)
}

/// The process id of the peer of a Unix socket (`SO_PEERCRED`); 0 when
/// the kernel cannot name it (a peer in a pid namespace this process does
/// not see).
///
/// Not rustix's `socket_peercred`: its `UCred` holds the pid as a non-zero
/// `Pid`, and the kernel reports 0 in that case.
#[allow(unsafe_code)]
pub fn peer_pid(sock: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes for the call, and `len`
    // holds the size of `cred`, as getsockopt(SO_PEERCRED) requires (the
    // kernel writes at most `len` bytes and updates `len`); every bit
    // pattern is a valid `ucred` (three integers); the socket is open
    // (borrowed from `sock`).
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(cred.pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Shuts a socket down both ways. On a listening socket this wakes a thread
/// blocked in `accept` on it (with `EINVAL`), on Linux.
pub fn shutdown(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::net::shutdown(fd, Shutdown::Both)?)
}

/// Reads what is available on a socket without blocking: `Ok(0)` only at
/// end of stream, `Err(WouldBlock)` when nothing is there yet. Retries on
/// `EINTR`.
#[inline]
pub fn recv_dontwait(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::net::recv(&fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[test]
    fn descriptors_travel_with_the_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = crate::memfd(c"x", 4096, crate::MemfdFlags::CLOEXEC).unwrap();
        let g = crate::eventfd(crate::EventfdFlags::CLOEXEC).unwrap();
        send_with_fds(&a, b"hello", &[f.as_fd(), g.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        let mut n = 0;
        while n < 5 {
            n += recv_with_fds(&b, &mut buf[n..], &mut got).unwrap();
        }
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(got.len(), 2);
        // The received memfd is the same file.
        let mut file = std::fs::File::from(got.remove(0));
        assert_eq!(file.metadata().unwrap().len(), 4096);
        let mut byte = [1u8];
        file.rewind().unwrap();
        file.read_exact(&mut byte).unwrap();
        assert_eq!(byte, [0]);
        assert!(send_with_fds(&a, b"x", &vec![f.as_fd(); MAX_FDS + 1]).is_err());
    }

    #[test]
    fn peer_pid_is_ours_for_a_pair() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_pid(&a).unwrap(), std::process::id());
    }

    #[test]
    fn recv_dontwait_would_block_then_reads() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            recv_dontwait(&b, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        (&a).write_all(b"ab").unwrap();
        assert_eq!(recv_dontwait(&b, &mut buf).unwrap(), 2);
        shutdown(&a).unwrap();
        assert_eq!(recv_dontwait(&b, &mut buf).unwrap(), 0);
    }
}
