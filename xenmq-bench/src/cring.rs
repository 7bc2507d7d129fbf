//! The C contender (`c/cring.c`, built by `build.rs`): its argument
//! structs and the calls into it. The only module of the crate with
//! `unsafe` code besides the allocation test's counting allocator; the
//! system calls are `xenmq_sys`'s.
#![allow(unsafe_code)]

use std::io;

use xenmq::shm::Region;
use xenmq_sys::EventFd;

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
