//! Xenstore for the hosted platforms: the [`client`] every platform
//! connects with, and the [`server`] the simulator runs. Both speak the wire
//! protocol of [`xenmq::xenstore::wire`], and the client implements
//! [`xenmq::xenstore::Store`].

pub mod client;
#[cfg(feature = "sim")]
pub mod server;

pub use client::{Connection, Pollable};
