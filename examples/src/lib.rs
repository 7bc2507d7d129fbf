//! Split drivers built with xenmq, small enough to read in one sitting.
//! Each runs as two processes on the simulator — the backend in dom0, the
//! frontend in a guest — from one command:
//!
//! ```text
//! cargo run -p xenmq-examples --bin echo
//! ```
#![forbid(unsafe_code)]

pub mod blk;
pub mod demo;
pub mod echo;
pub mod launch;
pub mod members;
pub mod vkv;
