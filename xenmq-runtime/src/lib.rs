//! The platforms xenmq drivers run on, each a Cargo feature:
//!
//! - `sim` ([`sim`]): a Xen host simulated on one Linux machine — a Xenstore
//!   server, grant tables over memfds and event channels over eventfds — for
//!   developing and testing drivers without Xen or root;
//! - `linux` ([`linux`]): Linux userspace on real Xen, through `/dev/xen`.
//!
//! Both are on by default and need Linux. Beside them:
//!
//! - [`xenstore`]: the Xenstore client every hosted platform shares
//!   ([`xenstore::client`]) and the server the simulator runs
//!   ([`xenstore::server`]);
//! - [`device`]: one end of a device on any platform — the xenbus machine,
//!   the driver and the platform's grants, event channels and Xenstore
//!   connection, driven together;
//! - [`log`]: where the tracing events go in a program (stderr, filtered by
//!   `RUST_LOG` and `-v`);
//! - [`platform`]: the platform chosen at run time from the environment;
//! - [`toolstack`]: what libxl writes to create and remove a device.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!("xenmq-runtime's platforms (`sim`, `linux`) run on Linux only");

pub mod device;
#[cfg(feature = "linux")]
pub mod linux;
pub mod log;
pub mod mq;
pub mod platform;
#[cfg(feature = "sim")]
pub mod sim;
pub mod toolstack;
pub mod xenstore;
