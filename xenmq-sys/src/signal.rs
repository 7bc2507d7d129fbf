//! Termination signals collected by a thread instead of killing the
//! process: SIGINT and SIGTERM blocked, then waited for.
//!
//! rustix offers the signal mask and `sigwait` only as unsafe functions of
//! its `runtime` module, so these two calls go through libc here.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;

/// The set {SIGINT, SIGTERM}.
fn termination_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is valid for writes of a sigset_t; sigemptyset
    // initialises all of it (it cannot fail for a valid pointer), after
    // which it is initialised for `assume_init`; SIGINT and SIGTERM are
    // valid signal numbers, so the sigaddset calls cannot fail either.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        set.assume_init()
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and so in the threads
/// it spawns afterwards: call it first), so that [`wait_termination`] can
/// collect them.
pub fn block_termination() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised signal set living across the call; the
    // old-set pointer may be null (not wanted).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (blocked first by [`block_termination`]);
/// returns the signal number.
pub fn wait_termination() -> io::Result<i32> {
    let set = termination_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is an initialised signal set and `sig` a valid place
    // for the result; both live across the call.
    let r = unsafe { libc::sigwait(&set, &mut sig) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(sig)
}
