//! Access to memory shared with a peer domain. The only module of this crate
//! that may use `unsafe`.
