//! The C shim's functions (`shim/xenmq_shim.c`), declared once. Every call
//! into the shim goes through this module; the safe wrappers around them
//! live next to their users and state each call's preconditions.
#![allow(unsafe_code)]

use core::ffi::{c_char, c_int, c_long, c_uint, c_void};

/// The shim's per-device struct (`struct xenmq_dev`), opaque to Rust.
#[repr(C)]
pub struct Dev {
    _opaque: [u8; 0],
}

/// The shim's bound event channel (`struct xenmq_chan`), opaque to Rust.
#[repr(C)]
pub struct Chan {
    _opaque: [u8; 0],
}

extern "C" {
    pub fn xenmq_k_alloc(size: usize, zero: c_int) -> *mut c_void;
    pub fn xenmq_k_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    pub fn xenmq_k_free(ptr: *mut c_void);
    pub fn xenmq_k_log(level: c_int, msg: *const c_char, len: usize);
    // Does not return (BUG()); declared as returning so that objtool, which
    // knows only the kernel's own noreturn functions, sees the caller's
    // code continue.
    pub fn xenmq_k_panic(msg: *const c_char, len: usize);

    pub fn xenmq_k_xs_read(
        tx: u32,
        path: *const c_char,
        out: *mut *mut c_char,
        len: *mut c_uint,
    ) -> c_int;
    pub fn xenmq_k_xs_write(tx: u32, path: *const c_char, value: *const c_char) -> c_int;
    pub fn xenmq_k_xs_mkdir(tx: u32, path: *const c_char) -> c_int;
    pub fn xenmq_k_xs_rm(tx: u32, path: *const c_char) -> c_int;
    pub fn xenmq_k_xs_directory(
        tx: u32,
        path: *const c_char,
        out: *mut *mut *mut c_char,
        num: *mut c_uint,
    ) -> c_int;
    pub fn xenmq_k_xs_tx_start(tx: *mut u32) -> c_int;
    pub fn xenmq_k_xs_tx_end(tx: u32, abort: c_int) -> c_int;

    pub fn xenmq_k_switch_state(dev: *mut Dev, state: c_int) -> c_int;
    pub fn xenmq_k_dev_error(dev: *mut Dev, err: c_int, msg: *const c_char);
    pub fn xenmq_k_otherend_id(dev: *mut Dev) -> u16;
    pub fn xenmq_k_requeue(dev: *mut Dev);

    pub fn xenmq_k_share(
        domid: u16,
        order: c_uint,
        readonly: c_int,
        vaddr: *mut *mut c_void,
        grefs: *mut u32,
    ) -> c_int;
    pub fn xenmq_k_try_unshare(vaddr: *mut c_void, order: c_uint, grefs: *mut u32) -> c_int;
    pub fn xenmq_k_unshare_deferred(vaddr: *mut c_void, order: c_uint, grefs: *mut u32);
    pub fn xenmq_k_map(dev: *mut Dev, grefs: *mut u32, n: c_uint, vaddr: *mut *mut c_void)
        -> c_int;
    pub fn xenmq_k_unmap(dev: *mut Dev, vaddr: *mut c_void) -> c_int;

    pub fn xenmq_k_alloc_evtchn(dev: *mut Dev, port: *mut u32) -> c_int;
    pub fn xenmq_k_free_evtchn(dev: *mut Dev, port: u32) -> c_int;
    pub fn xenmq_k_bind(dev: *mut Dev, port: u32, remote: c_int, err: *mut c_int) -> *mut Chan;
    pub fn xenmq_k_chan_port(ch: *mut Chan) -> u32;
    pub fn xenmq_k_notify(ch: *mut Chan);
    pub fn xenmq_k_poll(ch: *mut Chan) -> c_int;
    pub fn xenmq_k_eoi(ch: *mut Chan);
    pub fn xenmq_k_wait(ch: *mut Chan, timeout_ms: c_long) -> c_int;
    pub fn xenmq_k_unbind(ch: *mut Chan);
}

/// Linux errno values the glue tells apart.
pub mod errno {
    use core::ffi::c_int;
    pub const ENOENT: c_int = 2;
    pub const EINTR: c_int = 4;
    pub const ENOMEM: c_int = 12;
    pub const EBUSY: c_int = 16;
    pub const EEXIST: c_int = 17;
    pub const EINVAL: c_int = 22;
    pub const ENOSPC: c_int = 28;
    pub const EAGAIN: c_int = 11;
    pub const EACCES: c_int = 13;
    pub const E2BIG: c_int = 7;
    pub const EIO: c_int = 5;
}
