//! The message stream every contender carries: 64-byte requests, 16-byte
//! responses, and 4 KiB bulk buffers named by slot. `c/cring.c` declares
//! the same layout (`struct xb_req`, `struct xb_rsp`) as [`Req`] and
//! [`Rsp`], which the socket carries too.
//!
//! The xenmq contenders go through the public driver API, where the
//! framework owns the `id` field of both messages: they carry the same
//! stream as [`Request`] and [`Response`] (same sizes), with the sequence
//! number in a field of its own, under the protocols [`Compat1`],
//! [`Compat4`], [`Native1`] and [`Native4`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A plain request: the backend checks `check` and answers.
pub const OP_DATA: u32 = 1;
/// A bulk request: the backend copies buffer `slot` out and checks it.
pub const OP_BULK: u32 = 2;
/// The last request of a run: the backend answers and exits.
pub const OP_STOP: u32 = 3;

/// Multiplier tying a request's `check` word to its id.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// The size of a bulk buffer.
pub const BUF: usize = 4096;
/// The most slots any ring in the benchmark has (4 pages of 64-byte entries).
pub const MAX_SLOTS: usize = 128;

/// A 64-byte request (`struct xb_req`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Req {
    /// Sequence number; responses come back in order.
    pub id: u64,
    /// One of the `OP_*` values.
    pub op: u32,
    /// Bulk buffer index.
    pub slot: u32,
    /// Bulk length (always [`BUF`]).
    pub len: u32,
    /// Zero.
    pub pad: u32,
    /// `id * GOLDEN`.
    pub check: u64,
    /// Unused payload, carried to make the request 64 bytes.
    pub payload: [u8; 32],
}

/// A 16-byte response (`struct xb_rsp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Rsp {
    /// The id of the request answered.
    pub id: u64,
    /// 0 when the request checked out.
    pub status: u32,
    /// Zero.
    pub pad: u32,
}

const _: () = assert!(core::mem::size_of::<Req>() == 64);
const _: () = assert!(core::mem::size_of::<Rsp>() == 16);

impl Req {
    /// The request with sequence number `id`.
    #[inline(always)]
    pub fn new(id: u64, op: u32, slot: u32) -> Req {
        Req {
            id,
            op,
            slot,
            len: if op == OP_BULK { BUF as u32 } else { 0 },
            pad: 0,
            check: id.wrapping_mul(GOLDEN),
            payload: [0; 32],
        }
    }
}

/// Fills a bulk buffer with the pattern of request `id`.
#[inline(always)]
pub fn fill(buf: &mut [u64; BUF / 8], id: u64) {
    for (i, w) in buf.iter_mut().enumerate() {
        *w = id.wrapping_add(i as u64);
    }
}

/// Whether a bulk buffer holds the pattern of request `id`.
#[inline(always)]
pub fn check_buf(buf: &[u64; BUF / 8], id: u64) -> bool {
    let mut bad = 0u64;
    for (i, w) in buf.iter().enumerate() {
        bad |= w ^ id.wrapping_add(i as u64);
    }
    bad == 0
}

/// Checks a request's header (what the backend does for every request
/// before anything else); bulk buffers are checked by the caller.
#[inline(always)]
pub fn check_req(req: &Req, nslots: u32) -> bool {
    req.check == req.id.wrapping_mul(GOLDEN)
        && match req.op {
            OP_DATA | OP_STOP => true,
            OP_BULK => req.slot < nslots && req.len as usize == BUF,
            _ => false,
        }
}

/// A 64-byte request of the xenmq contenders: [`Req`] with the id the
/// framework owns ([`xenmq::driver::Client`] numbers it) and the sequence
/// number in `seq`.
#[xenmq::message]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The framework's request id.
    pub id: u64,
    /// Sequence number; responses come back in order.
    pub seq: u64,
    /// One of the `OP_*` values.
    pub op: u32,
    /// Bulk buffer slot (a leased slot of the pool).
    pub slot: u32,
    /// Bulk length (always [`BUF`]).
    pub len: u32,
    /// Zero.
    pub pad: u32,
    /// `seq * GOLDEN`.
    pub check: u64,
    /// Unused payload, carried to make the request 64 bytes.
    pub payload: [u8; 24],
}

/// A 16-byte response of the xenmq contenders: the framework's id, the low
/// 32 bits of the sequence number answered, and the status.
#[xenmq::message]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The framework's id (that of the request answered).
    pub id: u64,
    /// The low 32 bits of the request's `seq`.
    pub seq: u32,
    /// 0 when the request checked out.
    pub status: u32,
}

const _: () = assert!(core::mem::size_of::<Request>() == 64);
const _: () = assert!(core::mem::size_of::<Response>() == 16);

impl Request {
    /// The request with sequence number `seq` (the id is the framework's).
    #[inline(always)]
    pub fn new(seq: u64, op: u32, slot: u32) -> Request {
        Request {
            id: 0,
            seq,
            op,
            slot,
            len: if op == OP_BULK { BUF as u32 } else { 0 },
            pad: 0,
            check: seq.wrapping_mul(GOLDEN),
            payload: [0; 24],
        }
    }

    /// Checks the header (as [`check_req`]); bulk buffers are checked by
    /// the caller.
    #[inline(always)]
    pub fn check(&self, nslots: u32) -> bool {
        self.check == self.seq.wrapping_mul(GOLDEN)
            && match self.op {
                OP_DATA | OP_STOP => true,
                OP_BULK => self.slot < nslots && self.len as usize == BUF,
                _ => false,
            }
    }
}

/// The bench stream over `xen/io/ring.h`'s layout, one-page ring (32
/// slots), a pool of one 4 KiB buffer per slot.
#[xenmq::protocol(
    name = "bench-compat",
    version = 1,
    request = Request,
    response = Response,
    ring_pages = 1,
    pool_pages = 32,
    layout = compat
)]
pub struct Compat1;

/// [`Compat1`] with a four-page ring (128 slots) and pool.
#[xenmq::protocol(
    name = "bench-compat-4p",
    version = 1,
    request = Request,
    response = Response,
    ring_pages = 4,
    pool_pages = 128,
    layout = compat
)]
pub struct Compat4;

/// The bench stream over xenmq's native layout, one-page ring (32 slots),
/// a pool of one 4 KiB buffer per slot.
#[xenmq::protocol(
    name = "bench-native",
    version = 1,
    request = Request,
    response = Response,
    ring_pages = 1,
    pool_pages = 32,
    layout = native
)]
pub struct Native1;

/// [`Native1`] with a four-page ring (128 slots) and pool.
#[xenmq::protocol(
    name = "bench-native-4p",
    version = 1,
    request = Request,
    response = Response,
    ring_pages = 4,
    pool_pages = 128,
    layout = native
)]
pub struct Native4;
