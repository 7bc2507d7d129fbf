//! `vkv`: a key-value store in the backend. Keys travel in the request;
//! values travel in the frontend's persistent-grant buffer pool, written
//! in place by whoever produces them and copied out once by the other end.

use std::collections::HashMap;
use std::time::Duration;

use xenmq::driver::{self, Client, SLOT_SIZE};
use xenmq::evtchn::Channel;
use xenmq::prelude::*;

/// Longest key.
pub const KEY_MAX: usize = 48;
/// Most keys the backend holds (a frontend cannot grow it without bound).
pub const MAX_KEYS: usize = 4096;

/// Operations.
pub const GET: u32 = 0;
/// Store a value.
pub const PUT: u32 = 1;
/// Remove a key.
pub const DELETE: u32 = 2;

/// A request: `op` on `key`; the value is in buffer `slot`.
#[xenmq::message]
pub struct KvReq {
    pub id: u64,
    pub op: u32,
    pub slot: u32,
    pub key_len: u32,
    pub val_len: u32,
    pub key: [u8; KEY_MAX],
}

/// A response: a status (0 or a negative errno) and the value's length.
#[xenmq::message]
pub struct KvRsp {
    pub id: u64,
    pub status: i32,
    pub val_len: u32,
}

/// What the backend advertises.
#[derive(XenstoreConfig, Debug, Default)]
pub struct Limits {
    /// How many keys it holds at most.
    #[xenstore(default = 4096)]
    pub max_keys: u32,
}

/// The protocol: values up to a page, 16 buffer slots.
#[xenmq::protocol(name = "vkv", version = 1, request = KvReq, response = KvRsp, pool_pages = 16, backend_config = Limits)]
pub struct Vkv;

/// The backend: a bounded map.
#[derive(Debug, Default)]
pub struct KvBack {
    /// The entries.
    pub map: HashMap<Vec<u8>, Vec<u8>>,
}

impl Backend for KvBack {
    type Protocol = Vkv;

    fn handle(&mut self, req: KvReq, io: &mut Io<'_, Vkv>) -> Reply<KvRsp> {
        let key = req.key[..(req.key_len as usize).min(KEY_MAX)].to_vec();
        let (status, val_len) = match req.op {
            GET => match self.map.get(&key) {
                Some(v) if io.write(req.slot, 0, v).is_ok() => (0, v.len() as u32),
                Some(_) => (-22, 0),
                None => (-2, 0),
            },
            PUT if self.map.len() >= MAX_KEYS && !self.map.contains_key(&key) => (-28, 0),
            PUT => {
                let mut v = vec![0; (req.val_len as usize).min(SLOT_SIZE)];
                let read = io.read(req.slot, 0, &mut v).is_ok();
                read.then(|| self.map.insert(key, v)).map_or((-22, 0), |_| (0, 0))
            }
            DELETE => (self.map.remove(&key).map_or(-2, |_| 0), 0),
            _ => (-95, 0),
        };
        Reply::Now(KvRsp { id: 0, status, val_len })
    }

    fn config(&self) -> Limits {
        Limits { max_keys: MAX_KEYS as u32 }
    }
}

/// The frontend: remembers the backend's limits.
#[derive(Debug, Default)]
pub struct KvFront {
    /// The backend's `max-keys`.
    pub max_keys: u32,
}

impl Frontend for KvFront {
    type Protocol = Vkv;

    fn connect(&mut self, limits: &Limits) -> Result<(), driver::Refused> {
        self.max_keys = limits.max_keys;
        Ok(())
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The backend said no: -2 (no such key), -22 (bad key or value),
    /// -28 (store full).
    #[error("the backend refused the request (errno {0})")]
    Refused(i32),
    /// The device failed.
    #[error("device failure")]
    Driver(#[from] driver::Error),
}

/// One operation: the value goes out in (and comes back in) a buffer slot.
fn op<C: Channel>(
    c: &mut Client<Vkv, C>,
    op: u32,
    key: &[u8],
    val: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), KvError> {
    let mut k = [0; KEY_MAX];
    k.get_mut(..key.len()).ok_or(KvError::Refused(-22))?.copy_from_slice(key);
    let (key_len, val_len) = (key.len() as u32, val.len() as u32);
    let req = |slot| KvReq { id: 0, op, slot, key_len, val_len, key: k };
    let (rsp, lease) = c.call_with(val, req, Some(Duration::from_secs(5)))?;
    // A GET's value is in the slot; other answers carry none.
    out.resize((rsp.val_len as usize).min(SLOT_SIZE), 0);
    let read = c.read(&lease, 0, out);
    c.release(lease);
    match rsp.status {
        0 => Ok(read?),
        e => Err(KvError::Refused(e)),
    }
}

/// Stores `val` under `key`.
pub fn put<C: Channel>(c: &mut Client<Vkv, C>, key: &[u8], val: &[u8]) -> Result<(), KvError> {
    op(c, PUT, key, val, &mut Vec::new())
}

/// The value under `key`.
pub fn get<C: Channel>(c: &mut Client<Vkv, C>, key: &[u8]) -> Result<Vec<u8>, KvError> {
    let mut out = Vec::new();
    op(c, GET, key, &[], &mut out).map(|()| out)
}

/// Removes `key`.
pub fn delete<C: Channel>(c: &mut Client<Vkv, C>, key: &[u8]) -> Result<(), KvError> {
    op(c, DELETE, key, &[], &mut Vec::new())
}
