//! The control protocol between a domain and the simulated hypervisor.
//!
//! A domain connects to its control socket (`DIR/control` for dom0,
//! `DIR/domain/<domid>/control` for a guest); the socket it connects to is
//! its identity. Each request is answered before the next is read.
//!
//! Framing: a little-endian `u32` length, then that many bytes (at most
//! [`MAX_FRAME`]). A request body starts with an op byte, then the op's
//! fields, little-endian. A reply body starts with a status byte: 0 and the
//! op's result, or an error [`Code`] and two `u32` of context. Descriptors
//! (memfds, eventfds) ride on a reply's first byte as `SCM_RIGHTS`.
//!
//! | op | request fields | reply fields (descriptors) |
//! |---|---|---|
//! | 1 share | peer u16, pages u32, readonly u8 | n u32, n × gref u32 (memfd) |
//! | 2 map | peer u16, readonly u8, n u32, n × gref u32 | handle u32, k u16, k × (fd u16, first page u32, pages u32) (k memfds) |
//! | 3 unmap | handle u32 | — |
//! | 4 end access | n u32, n × gref u32 | — |
//! | 5 alloc unbound | remote u16 | port u32, faults (own eventfd, status page) |
//! | 6 bind | remote u16, remote port u32 | port u32, faults (own eventfd, status page, peer eventfd) |
//! | 7 peer eventfd | port u32 | — (peer eventfd) |
//! | 8 close | port u32 | — |
//! | 9 status | port u32 | state u8, remote u16, remote port u32 |
//! | 20 create (dom0) | name len u16, name | domid u16 |
//! | 21 destroy (dom0) | domid u16 | — |
//! | 22 kill (dom0) | domid u16 | — |
//! | 23 set faults (dom0) | domid u16, faults | — |
//! | 24 poke (dom0) | domid u16, gref u32, offset u32, n u32, n bytes | — |
//! | 25 list (dom0) | — | n u16, n × (domid u16, pid u32, attached u8, grants u32, maps u32, ports u32, name len u16, name) |
//!
//! `faults` is seed u64, drop u16, duplicate u16, delay u16, delay ms u32,
//! kill at u64 (0: never). A status page holds a `u32` at offset 0:
//! 0 unbound, 1 connected, 2 closed.

use crate::sim::fault::Faults;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// The most pages one share or map may name.
pub const MAX_PAGES: usize = 512;
/// Grant entries per domain.
pub const MAX_GRANTS: usize = 16 * 1024;
/// Ports per domain (port 0 is never used, as on Xen).
pub const MAX_PORTS: usize = 1024;
/// Live mappings per connection.
pub const MAX_MAPS: usize = 4096;
/// Pages mapped at once per connection.
pub const MAX_MAPPED_PAGES: usize = 64 * 1024;
/// Domains per host.
pub const MAX_DOMAINS: usize = 1024;
/// The longest domain name.
pub const MAX_NAME: usize = 64;
/// The first grant reference handed out (Xen reserves 0..8 for the toolstack).
pub const FIRST_GREF: u32 = 8;

/// Status page values.
pub const PORT_UNBOUND: u32 = 0;
/// See [`PORT_UNBOUND`].
pub const PORT_CONNECTED: u32 = 1;
/// See [`PORT_UNBOUND`].
pub const PORT_CLOSED: u32 = 2;

/// Request op codes.
#[allow(missing_docs)]
pub mod op {
    pub const SHARE: u8 = 1;
    pub const MAP: u8 = 2;
    pub const UNMAP: u8 = 3;
    pub const END_ACCESS: u8 = 4;
    pub const ALLOC_UNBOUND: u8 = 5;
    pub const BIND: u8 = 6;
    pub const PEER_FD: u8 = 7;
    pub const CLOSE: u8 = 8;
    pub const STATUS: u8 = 9;
    pub const CREATE: u8 = 20;
    pub const DESTROY: u8 = 21;
    pub const KILL: u8 = 22;
    pub const SET_FAULTS: u8 = 23;
    pub const POKE: u8 = 24;
    pub const LIST: u8 = 25;
}

/// Why the host refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Code {
    /// A grant reference is not granted to the caller (context: domid, gref).
    #[error("bad grant reference")]
    BadRef = 1,
    /// A read-write map of a read-only grant (context: domid, gref).
    #[error("grant is read-only")]
    ReadOnly = 2,
    /// End access while the peer maps the pages.
    #[error("pages still mapped")]
    StillMapped = 3,
    /// A count out of range (context: count, limit).
    #[error("bad count")]
    BadCount = 4,
    /// A table is full.
    #[error("no space")]
    NoSpace = 5,
    /// No such domain (context: domid).
    #[error("no such domain")]
    NoDomain = 6,
    /// A port that cannot be used so (context: domid, port).
    #[error("bad port")]
    BadPort = 7,
    /// The peer closed the channel.
    #[error("peer closed")]
    PeerClosed = 8,
    /// The request could not be parsed.
    #[error("malformed request")]
    Malformed = 9,
    /// Only dom0 may do this.
    #[error("permission denied")]
    Denied = 10,
    /// The host failed (context: errno).
    #[error("host failure")]
    Internal = 11,
    /// The domain already has a control connection.
    #[error("domain busy")]
    Busy = 12,
    /// An unknown op.
    #[error("unknown operation")]
    UnknownOp = 13,
}

impl Code {
    /// The code for a status byte, if known.
    pub fn from_u8(b: u8) -> Option<Code> {
        Some(match b {
            1 => Code::BadRef,
            2 => Code::ReadOnly,
            3 => Code::StillMapped,
            4 => Code::BadCount,
            5 => Code::NoSpace,
            6 => Code::NoDomain,
            7 => Code::BadPort,
            8 => Code::PeerClosed,
            9 => Code::Malformed,
            10 => Code::Denied,
            11 => Code::Internal,
            12 => Code::Busy,
            13 => Code::UnknownOp,
            _ => return None,
        })
    }
}

/// A refusal with its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({a}, {b})")]
pub struct Refusal {
    /// What went wrong.
    pub code: Code,
    /// First context word.
    pub a: u32,
    /// Second context word.
    pub b: u32,
}

impl Refusal {
    /// A refusal with context.
    pub fn new(code: Code, a: u32, b: u32) -> Refusal {
        Refusal { code, a, b }
    }
}

impl From<Code> for Refusal {
    fn from(code: Code) -> Refusal {
        Refusal { code, a: 0, b: 0 }
    }
}

/// Builds a message body.
#[derive(Default, Debug)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A body starting with `first` (an op or a status byte).
    pub fn new(first: u8) -> Writer {
        Writer(vec![first])
    }
    /// Appends a byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// Appends a `u16`.
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u32`.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u64`.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Appends a fault plan.
    pub fn faults(self, f: &Faults) -> Self {
        self.u64(f.seed)
            .u16(f.drop)
            .u16(f.duplicate)
            .u16(f.delay)
            .u32(f.delay_ms)
            .u64(f.kill_at.unwrap_or(0))
    }
    /// The framed message: length, then body.
    pub fn frame(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.len());
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.0);
        out
    }
}

/// Reads a message body; every getter fails (None) past the end.
#[derive(Debug)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads `body`.
    pub fn new(body: &'a [u8]) -> Reader<'a> {
        Reader(body)
    }
    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }
    /// A byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    /// A `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    /// A `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// A fault plan.
    pub fn faults(&mut self) -> Option<Faults> {
        Some(Faults {
            seed: self.u64()?,
            drop: self.u16()?,
            duplicate: self.u16()?,
            delay: self.u16()?,
            delay_ms: self.u32()?,
            kill_at: Some(self.u64()?).filter(|&k| k != 0),
        })
    }
    /// `n` little-endian `u32`s, where `n` was read from the message and is
    /// checked against `limit` and the bytes actually present before any
    /// allocation.
    pub fn u32s(&mut self, n: u32, limit: usize) -> Option<Vec<u32>> {
        let n = usize::try_from(n).ok().filter(|&n| n <= limit)?;
        let raw = self.bytes(n.checked_mul(4)?)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
    /// Whether the whole body was consumed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
