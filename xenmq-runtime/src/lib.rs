//! The platforms xenmq drivers run on.
//!
//! - [`sim`]: a Xen host simulated on one Linux machine — a Xenstore server,
//!   grant tables over memfds and event channels over eventfds — for
//!   developing and testing drivers without Xen or root.
//! - [`linux`]: Linux userspace on real Xen, through `/dev/xen`.
//! - [`kernel`]: glue for running the `no_std` core inside a Linux module.
//! - [`xs`]: the Xenstore client every hosted platform shares.
#![deny(unsafe_code)]

pub mod device;
pub mod kernel;
pub mod linux;
pub mod sim;
pub mod toolstack;
pub mod xs;
