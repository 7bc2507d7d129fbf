//! Processes: killing, dying with the parent, CPU affinity, descriptor
//! limits.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::io::Errno;
use rustix::process::{Pid, Resource, Signal};
use rustix::thread::CpuSet;

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// Sends SIGKILL to process `pid`. Refuses 0 and numbers that are not a
/// single positive pid (never a process group or "every process").
pub fn kill9(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::kill_process(pid, Signal::KILL)?)
}

/// Makes the kernel kill this process (SIGKILL) when its parent dies, so a
/// helper process never outlives the one that spawned it. Fails if the
/// parent already died (this process was re-parented).
pub fn die_with_parent() -> io::Result<()> {
    let before = rustix::process::getppid();
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before the prctl: then we were re-parented,
    // to init or to a subreaper.
    let now = rustix::process::getppid();
    if now != before || now.is_some_and(|p| p.is_init()) {
        return Err(io::Error::other("parent exited"));
    }
    Ok(())
}

/// Makes the child that `cmd` spawns get SIGKILL when the thread that
/// spawned it dies (this process killed, Ctrl-C with the default action, a
/// panic that aborts), so it never outlives us. If we die before the child
/// is set up, the spawn fails instead (`ESRCH`).
#[allow(unsafe_code)]
pub fn die_with_parent_after_spawn(cmd: &mut Command) {
    let parent = Pid::from_raw(i32::try_from(own_pid()).unwrap_or(0));
    // SAFETY: the closure runs in the child between fork and exec, so it may
    // only do what is async-signal-safe: rustix's prctl and getppid are
    // single system calls, and the error it may return is built from an
    // errno without allocating. It touches no memory shared with the parent
    // besides the copied `parent` value, takes no lock and does not
    // allocate.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the prctl: then we were
            // re-parented and must not run.
            if rustix::process::getppid() != parent {
                return Err(Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Pins the calling thread (the process, if it has one thread) to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// (best effort: a failure leaves the limit as it was).
pub fn raise_nofile_limit() {
    let mut lim = rustix::process::getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = rustix::process::setrlimit(Resource::Nofile, lim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill9_refuses_groups_and_everyone() {
        assert!(kill9(0).is_err());
        assert!(kill9(u32::MAX).is_err(), "-1 is every process");
    }

    #[test]
    fn affinity_round_trips() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(pin_to(CpuSet::MAX_CPU).is_err());
        // Pin a thread of its own, so the test harness keeps its CPUs.
        let first = cpus[0];
        std::thread::spawn(move || {
            pin_to(first).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![first]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn child_dies_with_parent_set_up() {
        let mut cmd = Command::new("true");
        die_with_parent_after_spawn(&mut cmd);
        assert!(cmd.status().unwrap().success());
    }
}
