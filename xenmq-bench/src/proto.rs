//! The message stream every contender carries: 64-byte requests, 16-byte
//! responses, and 4 KiB bulk buffers named by slot. `c/cring.c` declares
//! the same layout (`struct xb_req`, `struct xb_rsp`).

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
