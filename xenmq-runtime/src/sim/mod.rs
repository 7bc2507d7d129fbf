//! The simulator: a Xen host on one Linux machine.

pub mod xenstored;
