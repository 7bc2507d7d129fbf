//! The simulator's system calls: memfds, mappings, eventfds, descriptor
//! passing, peer credentials and signals.
//!
//! This is the only module of the simulator that may use `unsafe`; everything
//! above it is safe code over the types here.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xenmq::grant::PAGE_SIZE;
use xenmq::shm::Region;

/// The most descriptors one message may carry, sender and receiver alike.
pub const MAX_FDS: usize = 64;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Creates an anonymous memory file of `len` bytes, all zero
/// (`memfd_create` + `ftruncate`), closed on exec.
pub fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string (a `&CStr`) that
    // outlives the call; the flags are a valid combination.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by memfd_create, is open and owned by
    // nobody else, so the OwnedFd becomes its sole owner.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    let len = u64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    file.set_len(len)?;
    Ok(file.into())
}

/// Creates an eventfd (counter 0, non-blocking, closed on exec).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with valid flags; no pointers involved.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by eventfd, is open and owned by nobody
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable or `timeout` passes (`None`: for ever).
/// Returns whether it became readable. Retries on `EINTR`.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                // Round up so a short timeout still sleeps.
                let ms = left.as_micros().div_ceil(1000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd that lives across the call, and the
        // count (1) matches; `fd` is open for the call (a BorrowedFd).
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// A private mapping of pages, unmapped on drop.
///
/// The whole range is reserved at once, then each page (or run of pages) is
/// mapped over it from its memory file, so a mapping may gather pages of
/// several grants into one contiguous window, as gntdev does.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping owns its address range exclusively (nobody else unmaps
// it) and only exposes it through volatile/atomic accesses and `Region`, so
// it may move to and be shared with other threads.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: no method assumes exclusive access to the bytes.
unsafe impl Sync for Mapping {}

/// One piece of a [`Mapping`]: `pages` pages of `fd` starting at page
/// `first` of the file.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    /// The memory file.
    pub fd: BorrowedFd<'a>,
    /// The first page of the file to map.
    pub first: u64,
    /// How many pages.
    pub pages: usize,
}

impl Mapping {
    /// Maps `pieces` one after the other, shared (writes reach the file),
    /// read-write or read-only.
    pub fn new(pieces: &[Piece<'_>], writable: bool) -> io::Result<Mapping> {
        let pages = pieces
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.pages))
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let len = pages
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: asks the kernel for a fresh anonymous range (address hint
        // null), inaccessible; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        // From here the reservation is owned by `mapping`, so an early
        // return unmaps it.
        let mapping = Mapping { ptr, len };
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let mut at = 0usize;
        for p in pieces {
            let bytes = p.pages * PAGE_SIZE; // cannot overflow: bounded by `len` above
            let offset = p
                .first
                .checked_mul(PAGE_SIZE as u64)
                .and_then(|o| libc::off_t::try_from(o).ok())
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: `at + bytes <= len` (the pieces sum to `len`), so the
            // MAP_FIXED target lies inside the reservation this Mapping owns
            // and replaces only our own PROT_NONE pages; `p.fd` is open.
            let got = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(at).cast(),
                    bytes,
                    prot,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    p.fd.as_raw_fd(),
                    offset,
                )
            };
            if got == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            at += bytes;
        }
        Ok(mapping)
    }

    /// Maps a whole memory file of `pages` pages.
    pub fn file(fd: BorrowedFd<'_>, pages: usize, writable: bool) -> io::Result<Mapping> {
        Mapping::new(
            &[Piece {
                fd,
                first: 0,
                pages,
            }],
            writable,
        )
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The mapping as a raw window. Valid while `self` is alive: the caller
    /// must not use the region (or a copy) after dropping the mapping; the
    /// grant types document this rule to their users.
    pub fn region(&self) -> Region {
        // SAFETY: `ptr..ptr+len` is a live mapping owned by `self` (unmapped
        // only in Drop), page-aligned hence 64-byte aligned, and this module
        // never forms a Rust reference into it. The "stays valid while used"
        // condition is passed on to the caller as documented above: the only
        // ways to reach a Mapping's region are `Shared`/`Mapped::region`,
        // whose contract says the region dies with its owner.
        // One precondition holds only in part: a read-only mapping is
        // PROT_READ, so it is not "valid for writes". A write through such a
        // region never lands in memory: the CPU faults and the process dies
        // of SIGSEGV, which is how the platform enforces a read-only grant
        // (as gntdev does on Xen). Drivers write only to pages they mapped
        // read-write; the `Mapped::access` of the owner says which.
        unsafe { Region::new(self.ptr, self.len) }
    }

    fn range(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset <= end <= self.len`, so the result stays inside (or
        // one past the end of) our mapping.
        Some(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Copies bytes out at `offset` with volatile reads; `None` if out of
    /// bounds.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Option<()> {
        let p = self.range(offset, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `p + i` is inside the mapping (checked by `range`) and
            // readable (every mapping is at least PROT_READ); a volatile read
            // of a u8 tolerates concurrent writes by the peer.
            *b = unsafe { p.add(i).read_volatile() };
        }
        Some(())
    }

    /// Copies bytes in at `offset` with volatile writes; `None` if out of
    /// bounds. On a read-only mapping the first write faults (SIGSEGV), as a
    /// write to a read-only grant does on Xen.
    pub fn write(&self, offset: usize, data: &[u8]) -> Option<()> {
        let p = self.range(offset, data.len())?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `p + i` is inside the mapping (checked by `range`); no
            // Rust reference covers these bytes, and a volatile u8 write is
            // sound under concurrent access by the peer. If the mapping is
            // PROT_READ, the CPU faults before anything is written.
            unsafe { p.add(i).write_volatile(*b) };
        }
        Some(())
    }

    /// Atomically loads the little-endian `u32` at `offset` with Acquire;
    /// `None` if out of bounds or misaligned.
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        if offset & 3 != 0 {
            return None;
        }
        let p = self.range(offset, 4)?;
        // SAFETY: `p` is 4-byte aligned (page-aligned base, offset & 3 == 0),
        // inside the mapping and readable for its whole life, and the
        // reference does not outlive this expression. Other writers (the
        // host, through the file) only ever store values below 256, so even
        // a torn write reads as the old or the new value.
        let v = unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }.load(Ordering::Acquire);
        // Acquire: pairs with the host's write of the word, so what the host
        // did before publishing it (e.g. closing the peer port) is visible.
        Some(v)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the range this Mapping reserved and
        // owns; no Region derived from it is used after its owner is dropped
        // (the documented rule of `region`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sends `data` on a stream socket with `fds` attached to its first byte
/// (`SCM_RIGHTS`), then the rest of the bytes.
pub fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use std::io::Write;
    if fds.is_empty() || data.is_empty() {
        return (&*sock).write_all(data);
    }
    if fds.len() > MAX_FDS {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let payload = raw.len() * size_of::<RawFd>();
    let payload32 =
        u32::try_from(payload).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space = unsafe { libc::CMSG_SPACE(payload32) } as usize;
    // u64 elements keep the buffer aligned for cmsghdr.
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `cbuf`, which is at least CMSG_SPACE(payload)
    // bytes and aligned, so CMSG_FIRSTHDR returns a non-null header inside
    // it; we write that header's fields and then `payload` bytes at
    // CMSG_DATA, which CMSG_LEN(payload) <= CMSG_SPACE(payload) keeps inside
    // `cbuf`. `raw` holds `payload` bytes.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload32) as _;
        std::ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), payload);
    }
    let sent = loop {
        // SAFETY: `msg` describes valid buffers (`data` via `iov`, `cbuf`)
        // that outlive the call; the socket is open (borrowed from `sock`);
        // the descriptors in the control message are open (BorrowedFds).
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // The descriptors went with the first chunk; the rest is plain bytes.
    (&*sock).write_all(data.get(sent..).unwrap_or(&[]))
}

/// Receives up to `buf.len()` bytes from a stream socket, appending any
/// descriptors that came with them to `fds`. Returns the byte count (0 at
/// end of stream). Descriptors beyond [`MAX_FDS`] per call are an error.
pub fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    const PAYLOAD: u32 = (MAX_FDS * size_of::<RawFd>()) as u32;
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space = unsafe { libc::CMSG_SPACE(PAYLOAD) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: `msg` describes writable buffers (`buf` via `iov`, `cbuf`)
        // that outlive the call; the socket is open.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: after recvmsg, `msg.msg_control`/`msg_controllen` describe the
    // control messages the kernel wrote into `cbuf`; CMSG_FIRSTHDR and
    // CMSG_NXTHDR only return headers inside that range (or null). For an
    // SCM_RIGHTS header, the data holds (cmsg_len - CMSG_LEN(0)) / 4 open
    // descriptors now owned by this process, each taken into an OwnedFd
    // exactly once; unaligned reads because CMSG_DATA need not be aligned
    // for i32.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                for i in 0..bytes / size_of::<RawFd>() {
                    let fd = data
                        .add(i * size_of::<RawFd>())
                        .cast::<RawFd>()
                        .read_unaligned();
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many descriptors in one message",
        ));
    }
    Ok(n)
}

/// The process id of the peer of a Unix socket (`SO_PEERCRED`).
pub fn peer_pid(sock: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` holds the
    // size of `cred`, as getsockopt(SO_PEERCRED) requires; the socket is open.
    check(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    u32::try_from(cred.pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// Sends SIGKILL to process `pid`.
pub fn kill9(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: plain system call on a positive pid (never a process group or
    // "every process"); no memory is involved.
    check(unsafe { libc::kill(pid, libc::SIGKILL) }).map(drop)
}

fn term_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use,
    // and SIGINT/SIGTERM are valid signal numbers.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and so in the threads
/// it spawns afterwards), so that [`wait_termination`] can collect them.
pub fn block_termination() -> io::Result<()> {
    let set = term_set();
    // SAFETY: `set` is an initialised signal set; the old-set pointer may be
    // null.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (blocked first by [`block_termination`]);
/// returns the signal number.
pub fn wait_termination() -> io::Result<i32> {
    let set = term_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is valid for a write.
    let r = unsafe { libc::sigwait(&set, &mut sig) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(sig)
}

/// A zero-length region at a page-aligned static address, for owners whose
/// pages are already gone: nothing can be accessed through it.
pub fn empty_region() -> Region {
    #[repr(C, align(4096))]
    struct Anchor;
    static ANCHOR: Anchor = Anchor;
    let ptr = NonNull::from(&ANCHOR).cast::<u8>();
    // SAFETY: the region is zero bytes long, so "valid for reads and writes
    // of len bytes" holds trivially for as long as anyone likes; the static
    // is 4096-byte aligned; no reference covers zero bytes.
    unsafe { Region::new(ptr, 0) }
}

/// Shuts a listening socket down, which wakes a thread blocked in
/// `accept` on it (with `EINVAL`) on Linux.
pub fn shutdown_listener(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain system call on an open descriptor (a BorrowedFd); no
    // memory is involved.
    check(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) }).map(drop)
}

/// Waits until any of `fds` is readable or `timeout` passes (`None`: for
/// ever); returns the index of the first readable one. At most 1024
/// descriptors. Retries on `EINTR`.
pub fn poll_any(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Option<usize>> {
    if fds.len() > 1024 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `pfds` holds `pfds.len()` valid pollfd entries (at most
        // 1024, so the count fits nfds_t) for the whole call; every fd is
        // open (borrowed from the caller).
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n > 0 {
            return Ok(pfds.iter().position(|p| p.revents != 0));
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// (best effort): the host holds a few descriptors per grant and port.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the
        // hard limit needs no privilege and affects only this process.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}
