//! xenmq's system calls, one layer for every crate of the workspace: the
//! simulator, the Linux platform, the benchmark and the lab.
//!
//! Almost everything here is [rustix]'s safe API with the loops and checks
//! xenmq needs around it (`EINTR` retried with the time left, counts
//! checked, descriptors owned). Hand-written `unsafe` is left only where no
//! safe crate can help:
//!
//! - [`map`]: `mmap` of memory shared with a peer, whose pointer becomes an
//!   [`xenmq::shm::Region`];
//! - [`fd::inherit`]: adopting a descriptor number inherited across `exec`;
//! - [`process::die_with_parent_after_spawn`]: a `pre_exec` hook;
//! - [`signal`]: the signal mask and `sigwait`, which rustix does not offer
//!   safely;
//! - [`sock::peer_pid`]: `SO_PEERCRED`, whose pid rustix cannot represent
//!   when the kernel reports 0.
//!
//! Each of those modules or items opts out of the crate's
//! `deny(unsafe_code)` on its own, with a `// SAFETY:` proof per block.
//! The Xen ioctls of `/dev/xen` stay beside their checked ABI, in
//! `xenmq_runtime::linux::sys`.
//!
//! Linux only: memfds, eventfds and `SO_PEERCRED` are Linux's.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("xenmq-sys wraps Linux system calls and builds on Linux only");

pub mod fd;
pub mod map;
pub mod poll;
pub mod process;
pub mod signal;
pub mod sock;
pub mod timer;

pub use fd::{eventfd, inherit, keep_on_exec, memfd, EventFd};
pub use map::{BadAccess, Mapping, Piece, PAGE_SIZE};
pub use poll::{poll_any, poll_in};
pub use rustix::event::EventfdFlags;
pub use rustix::fs::MemfdFlags;
pub use timer::Timer;
