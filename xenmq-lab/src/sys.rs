//! The one unsafe corner of the lab: tying qemu's life to ours.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child get SIGKILL when the thread that spawned it dies (our
/// process killed, Ctrl-C with the default action, a panic that aborts), so
/// qemu never outlives the lab.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, so it
    // may only call async-signal-safe functions: prctl, getppid and _exit
    // are. It touches no memory shared with the parent besides the copied
    // `parent` integer, takes no lock and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then we were
            // re-parented and must not run.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
