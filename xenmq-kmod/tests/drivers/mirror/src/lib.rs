//! A minimal no_std backend for the module build tests: every request is
//! answered with its own payload.
#![no_std]
#![forbid(unsafe_code)]

use xenmq::prelude::*;

/// A request: `len` bytes of `data`.
#[xenmq::message]
pub struct Req {
    pub id: u64,
    pub len: u32,
    pub data: [u8; 52],
}

/// The answer: the request's bytes.
#[xenmq::message]
pub struct Rsp {
    pub id: u64,
    pub len: u32,
    pub data: [u8; 52],
}

/// The protocol.
#[xenmq::protocol(name = "mirror", version = 1, request = Req, response = Rsp)]
pub struct Mirror;

/// The backend.
#[derive(Debug, Default)]
pub struct Back {
    /// Requests answered.
    pub answered: u64,
}

impl Backend for Back {
    type Protocol = Mirror;

    fn handle(&mut self, req: Req, _io: &mut Io<'_, Mirror>) -> Reply<Rsp> {
        self.answered = self.answered.wrapping_add(1);
        Reply::Now(Rsp { id: 0, len: req.len.min(52), data: req.data })
    }
}
