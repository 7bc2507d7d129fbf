//! The benchmark's system calls and its calls into the C contender: the only
//! module of the crate with `unsafe` code.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;

use xenmq::shm::Region;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Creates a memfd of `len` zeroed bytes. Not close-on-exec: the peer process
/// inherits it (the harness closes it right after spawning).
pub fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; flags 0 is valid.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), 0) })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len_off =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on an fd we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len_off) })?;
    Ok(fd)
}

/// A shared, read-write mapping of a whole memfd, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and read-write.
    pub fn new(fd: RawFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping at an address of the kernel's choosing
        // aliases no Rust object; failure is reported as MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The whole mapping as a region. The region must not be used after the
    /// mapping is dropped: callers keep the `Mapping` alive for the run.
    pub fn region(&self) -> Region {
        // SAFETY: the mapping is `len` bytes, readable and writable, and
        // page-aligned (so 64-byte aligned); it stays mapped until `self` is
        // dropped, and the harness drops it only after every region over it
        // is dead (regions are created per run, inside the mapping's scope).
        // No Rust reference is ever formed into it: all access goes through
        // Region's atomic and volatile accessors, or through the C contender,
        // which treats it as shared memory.
        unsafe { Region::new(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing uses the
        // mapping after the drop (see `region`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// An eventfd: the simulator's event channel, one per direction.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd (counter mode, blocking, inherited by the peer).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall; returns a new fd or -1.
        let fd = cvt(unsafe { libc::eventfd(0, 0) })?;
        // SAFETY: the fd was just created and is owned by no one else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adopts an eventfd inherited from the parent process.
    pub fn inherit(fd: RawFd) -> io::Result<EventFd> {
        Ok(EventFd(inherit(fd)?))
    }

    /// Signals the peer (`notify`).
    #[inline]
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live local to an fd we own.
            let n = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Blocks until the peer has signalled at least once since the last wait.
    #[inline]
    pub fn wait(&self) -> io::Result<()> {
        let mut v: u64 = 0;
        loop {
            // SAFETY: reads 8 bytes into a live local from an fd we own.
            let n = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut v).cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Waits up to `timeout` (`None`: for ever) for a signal and consumes
    /// it: `Ok(false)` if none came in time.
    pub fn wait_for(&self, timeout: Option<std::time::Duration>) -> io::Result<bool> {
        let Some(timeout) = timeout else {
            self.wait()?;
            return Ok(true);
        };
        // Rounded up to whole milliseconds, at most poll's largest timeout.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        if !self.readable(ms)? {
            return Ok(false);
        }
        self.wait()?;
        Ok(true)
    }

    /// Consumes a pending signal without blocking: `true` if there was one.
    pub fn try_take(&self) -> io::Result<bool> {
        if !self.readable(0)? {
            return Ok(false);
        }
        self.wait()?;
        Ok(true)
    }

    /// Whether a signal is pending, waiting up to `ms` milliseconds for one.
    fn readable(&self, ms: libc::c_int) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: passes one live, initialised pollfd and its count.
            let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if n >= 0 {
                return Ok(n > 0 && pfd.revents & libc::POLLIN != 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The raw fd, to hand to the peer process or to the C contender.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Takes ownership of an fd number inherited from the parent, after checking
/// that it is open.
pub fn inherit(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: the fd is open (checked above); the parent passed its number
    // to this process for this purpose, and `inherit` is called once per
    // number, so nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears close-on-exec on `fd` so a spawned peer inherits it.
pub fn keep_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller holds open.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
    Ok(())
}

/// A connected pair of Unix stream sockets, both inherited across exec.
pub fn socket_pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    keep_on_exec(b.as_raw_fd())?;
    Ok((a, b))
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: passes a live cpu_set_t and its exact size.
    cvt(unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set)
    })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `c` < CPU_SETSIZE of a live set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling process to one CPU.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: sets bit `cpu` < CPU_SETSIZE (checked above) of a live set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: passes a live cpu_set_t and its exact size.
    cvt(unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set)
    })?;
    Ok(())
}

// --- the C contender (c/cring.c) ------------------------------------------

/// `struct xb_front_args` of c/cring.c.
#[repr(C)]
#[derive(Debug)]
pub struct CFrontArgs {
    pub ring: *mut u8,
    pub ring_bytes: u64,
    pub data: *mut u8,
    pub nslots: u64,
    pub ev_wait: i32,
    pub ev_notify: i32,
    pub spin: u32,
    pub mode: u32,
    pub max_ops: u64,
    pub budget_ns: u64,
    pub lat: *mut u64,
    pub lat_cap: u64,
}

/// `struct xb_front_out` of c/cring.c.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CFrontOut {
    pub ops: u64,
    pub notifies: u64,
    pub errors: u64,
    pub elapsed_ns: u64,
    pub nlat: u64,
    pub pushes: u64,
}

/// `struct xb_back_args` of c/cring.c.
#[repr(C)]
#[derive(Debug)]
pub struct CBackArgs {
    pub ring: *mut u8,
    pub ring_bytes: u64,
    pub data: *mut u8,
    pub nslots: u64,
    pub ev_wait: i32,
    pub ev_notify: i32,
    pub spin: u32,
    pub pad: u32,
    pub notify_counter: *mut u64,
    pub error_counter: *mut u64,
}

/// Storage for the C frontend's private state (`struct xb_front`).
#[repr(C, align(16))]
#[derive(Debug)]
pub struct CFront([u8; 64]);

unsafe extern "C" {
    fn xb_c_front_size() -> usize;
    fn xb_c_front_init(f: *mut CFront, ring: *mut u8, bytes: u64) -> i32;
    fn xb_c_front_run(f: *mut CFront, a: *const CFrontArgs, o: *mut CFrontOut) -> i32;
    fn xb_c_back_run(a: *const CBackArgs) -> i32;
}

/// The C frontend over `ring`, plus the bulk pool `data`.
#[derive(Debug)]
pub struct CFrontRing {
    state: Box<CFront>,
    ring: Region,
    data: Region,
}

impl CFrontRing {
    /// Initialises the shared ring in `ring` (XEN_FRONT_RING_INIT) and
    /// returns the front and the ring's size in slots.
    pub fn init(ring: Region, data: Region) -> io::Result<(CFrontRing, u32)> {
        // SAFETY: no arguments, returns a constant.
        if unsafe { xb_c_front_size() } > std::mem::size_of::<CFront>() {
            return Err(io::Error::other("C front state larger than its storage"));
        }
        let mut state = Box::new(CFront([0; 64]));
        // SAFETY: `state` is large enough (checked above) and aligned for the
        // C struct (two u32s, a pointer, a u64); `ring` is valid for
        // `ring.len()` bytes for the lifetime of the region (Mapping::region).
        let size = unsafe { xb_c_front_init(&raw mut *state, ring.as_ptr(), ring.len() as u64) };
        let size = u32::try_from(size).map_err(|_| io::Error::other("bad C ring size"))?;
        Ok((CFrontRing { state, ring, data }, size))
    }

    /// Runs one phase of the C frontend. `lat` receives round-trip times in
    /// latency mode.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        ev_wait: &EventFd,
        ev_notify: &EventFd,
        spin: u32,
        mode: u32,
        max_ops: u64,
        budget_ns: u64,
        nslots: u64,
        lat: &mut Vec<u64>,
    ) -> io::Result<CFrontOut> {
        lat.clear();
        let args = CFrontArgs {
            ring: self.ring.as_ptr(),
            ring_bytes: self.ring.len() as u64,
            data: self.data.as_ptr(),
            nslots,
            ev_wait: ev_wait.raw(),
            ev_notify: ev_notify.raw(),
            spin,
            mode,
            max_ops,
            budget_ns,
            lat: lat.as_mut_ptr(),
            lat_cap: lat.capacity() as u64,
        };
        if nslots.saturating_mul(4096) > self.data.len() as u64 {
            return Err(io::Error::other("bulk pool smaller than the ring"));
        }
        let mut out = CFrontOut::default();
        // SAFETY: `state` was initialised by xb_c_front_init over this ring;
        // the ring and data regions are live mappings (see Mapping::region)
        // of the sizes passed, the data pool holds `nslots` 4 KiB buffers
        // (checked above); `lat` has room for `lat_cap` u64s and the C code
        // writes at most that many; the eventfds are open for the call.
        let rc = unsafe { xb_c_front_run(&raw mut *self.state, &args, &mut out) };
        if rc != 0 {
            return Err(io::Error::other(
                "the C frontend failed (hostile index or eventfd error)",
            ));
        }
        let n = usize::try_from(out.nlat)
            .unwrap_or(usize::MAX)
            .min(lat.capacity());
        // SAFETY: the C code initialised the first `nlat` (<= capacity)
        // elements; u64 has no invalid bit patterns.
        unsafe { lat.set_len(n) };
        Ok(out)
    }
}

/// Runs the C backend until the frontend sends STOP. `counters` is where it
/// publishes its notification and error counts (two u64s in the control
/// page).
pub fn c_back_run(
    ring: Region,
    data: Region,
    nslots: u64,
    ev_wait: &EventFd,
    ev_notify: &EventFd,
    spin: u32,
    counters: Region,
) -> io::Result<()> {
    if nslots.saturating_mul(4096) > data.len() as u64 || counters.len() < 16 {
        return Err(io::Error::other("bulk pool or counters too small"));
    }
    let args = CBackArgs {
        ring: ring.as_ptr(),
        ring_bytes: ring.len() as u64,
        data: data.as_ptr(),
        nslots,
        ev_wait: ev_wait.raw(),
        ev_notify: ev_notify.raw(),
        spin,
        pad: 0,
        notify_counter: counters.as_ptr().cast(),
        error_counter: counters.as_ptr().wrapping_add(8).cast(),
    };
    // SAFETY: the regions are live shared mappings of the sizes passed (see
    // Mapping::region); the counters are two 8-byte aligned u64s inside the
    // 64-byte aligned `counters` region (checked len >= 16), written by C
    // with atomic stores; the eventfds are open for the call.
    let rc = unsafe { xb_c_back_run(&args) };
    if rc != 0 {
        return Err(io::Error::other(
            "the C backend failed (hostile index or eventfd error)",
        ));
    }
    Ok(())
}

/// Reads what is available on `fd` without blocking: `Ok(0)` only at end of
/// stream, `Err(WouldBlock)` when nothing is there yet.
#[inline]
pub fn recv_dontwait(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Makes the kernel kill this process when its parent dies, so a backend
/// never outlives the benchmark.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers involved.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    // The parent may have died before the prctl: then we were re-parented.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        return Err(io::Error::other("parent exited"));
    }
    Ok(())
}

/// Sends SIGKILL to `pid` (a child this process spawned).
pub fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A counting global allocator for the allocation test: counts only on
/// threads that asked, so tests running concurrently do not disturb it.
#[cfg(test)]
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    fn note() {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
    }

    // SAFETY: defers every operation to the system allocator unchanged; the
    // flag and counter are const-initialised thread-locals (touching them
    // neither allocates nor re-enters the allocator).
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f` and returns what it returned and how many allocations (and
    /// reallocations) it made on this thread.
    pub fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = ALLOCS.with(Cell::get);
        COUNTING.with(|c| c.set(true));
        let r = f();
        COUNTING.with(|c| c.set(false));
        (r, ALLOCS.with(Cell::get) - before)
    }
}
