//! A backend that keeps its state in a std HashMap: it must not build as
//! a kernel module.

use std::collections::HashMap;

use xenmq::prelude::*;

/// A request.
#[xenmq::message]
pub struct Req {
    pub id: u64,
    pub key: u32,
}

/// The answer.
#[xenmq::message]
pub struct Rsp {
    pub id: u64,
    pub hits: u32,
}

/// The protocol.
#[xenmq::protocol(name = "stdy", version = 1, request = Req, response = Rsp)]
pub struct Stdy;

/// The backend.
#[derive(Debug, Default)]
pub struct Back {
    seen: HashMap<u32, u32>,
}

impl Backend for Back {
    type Protocol = Stdy;

    fn handle(&mut self, req: Req, _io: &mut Io<'_, Stdy>) -> Reply<Rsp> {
        let n = self.seen.entry(req.key).or_default();
        *n += 1;
        Reply::Now(Rsp { id: 0, hits: *n })
    }
}
