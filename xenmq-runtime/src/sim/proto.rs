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
//! The host parses a request in full ([`Request::parse`]: counts bounded
//! before allocation, trailing bytes malformed) before acting on it; a
//! guest's toolstack request is refused on its op byte alone. Any refusal
//! leaves the connection usable, except a frame over [`MAX_FRAME`], after
//! which the stream cannot be resynchronised and the host hangs up.
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
//! | 25 list (dom0) | — | n u16, n × (domid u16, pid u32, processes u32, grants u32, maps u32, ports u32, name len u16, name) |
//!
//! `faults` is seed u64, drop u16, duplicate u16, delay u16, delay ms u32,
//! kill at u64 (0: never). A status page holds a `u32` at offset 0:
//! 0 unbound, 1 connected, 2 closed.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use crate::sim::fault::Faults;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// The most pages one share or map may name.
pub const MAX_PAGES: usize = 512;
/// Grant entries per domain.
pub const MAX_GRANTS: usize = 16 * 1024;
/// Live shares (each a memory file held by the host) per domain.
pub const MAX_SHARES: usize = 1024;
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
    /// The host is too busy for the request (not sent by this host, which
    /// takes any number of connections per domain; kept in the numbering).
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
        let mut out = Vec::with_capacity(self.0.len().saturating_add(4));
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
        raw.chunks_exact(4)
            .map(|c| <[u8; 4]>::try_from(c).ok().map(u32::from_le_bytes))
            .collect()
    }
    /// Whether the whole body was consumed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request, parsed and bounded. Parsing has no side effects: the host
/// parses the whole request, rejects trailing bytes, then acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Grant `pages` fresh pages to `peer`.
    Share {
        /// The grantee.
        peer: u16,
        /// How many pages.
        pages: u32,
        /// Read-only grant.
        readonly: bool,
    },
    /// Map `refs` granted by `peer`.
    Map {
        /// The granting domain.
        peer: u16,
        /// Map read-only.
        readonly: bool,
        /// The references, in mapping order.
        refs: Vec<u32>,
    },
    /// Forget a mapping (after unmapping it).
    Unmap {
        /// The handle the map reply gave.
        handle: u32,
    },
    /// End access to own grants.
    EndAccess {
        /// The references.
        refs: Vec<u32>,
    },
    /// Allocate a port for `remote` to bind.
    AllocUnbound {
        /// The domain allowed to bind.
        remote: u16,
    },
    /// Bind to `remote`'s unbound port.
    Bind {
        /// The remote domain.
        remote: u16,
        /// Its port.
        remote_port: u32,
    },
    /// Fetch the peer's eventfd of a port bound by the peer.
    PeerFd {
        /// The local port.
        port: u32,
    },
    /// Close a port.
    Close {
        /// The local port.
        port: u32,
    },
    /// A port's status.
    Status {
        /// The local port.
        port: u32,
    },
    /// Toolstack: create a domain.
    Create {
        /// Its name.
        name: String,
    },
    /// Toolstack: destroy a domain.
    Destroy {
        /// The domain.
        domid: u16,
    },
    /// Toolstack: SIGKILL a domain's process.
    Kill {
        /// The domain.
        domid: u16,
    },
    /// Toolstack: set a domain's fault plan.
    SetFaults {
        /// The domain.
        domid: u16,
        /// The plan.
        faults: Faults,
    },
    /// Toolstack: write into a granted page.
    Poke {
        /// The granting domain.
        domid: u16,
        /// Its grant.
        gref: u32,
        /// Offset in the page.
        offset: u32,
        /// The bytes (at most a page).
        data: Vec<u8>,
    },
    /// Toolstack: list domains.
    List,
}

fn count(n: u32, limit: usize) -> Result<usize, Refusal> {
    match usize::try_from(n) {
        Ok(c) if c > 0 && c <= limit => Ok(c),
        _ => Err(Refusal::new(Code::BadCount, n, limit as u32)),
    }
}

impl Request {
    /// Whether only dom0 may make this request, judged from the op byte of
    /// `body` alone (so a guest learns nothing from a malformed one).
    pub fn is_toolstack_op(body: &[u8]) -> bool {
        matches!(
            body.first().copied(),
            Some(op::CREATE | op::DESTROY | op::KILL | op::SET_FAULTS | op::POKE | op::LIST)
        )
    }

    /// Parses a request body. Counts are checked against their limits
    /// before anything is allocated; trailing bytes are an error.
    pub fn parse(body: &[u8]) -> Result<Request, Refusal> {
        let m = || Refusal::from(Code::Malformed);
        let mut r = Reader::new(body);
        let opcode = r.u8().ok_or_else(m)?;
        let req = match opcode {
            op::SHARE => {
                let peer = r.u16().ok_or_else(m)?;
                let pages = r.u32().ok_or_else(m)?;
                count(pages, MAX_PAGES)?;
                let readonly = r.u8().ok_or_else(m)? != 0;
                Request::Share {
                    peer,
                    pages,
                    readonly,
                }
            }
            op::MAP => {
                let peer = r.u16().ok_or_else(m)?;
                let readonly = r.u8().ok_or_else(m)? != 0;
                let n = r.u32().ok_or_else(m)?;
                count(n, MAX_PAGES)?;
                let refs = r.u32s(n, MAX_PAGES).ok_or_else(m)?;
                Request::Map {
                    peer,
                    readonly,
                    refs,
                }
            }
            op::UNMAP => Request::Unmap {
                handle: r.u32().ok_or_else(m)?,
            },
            op::END_ACCESS => {
                let n = r.u32().ok_or_else(m)?;
                count(n, MAX_PAGES)?;
                Request::EndAccess {
                    refs: r.u32s(n, MAX_PAGES).ok_or_else(m)?,
                }
            }
            op::ALLOC_UNBOUND => Request::AllocUnbound {
                remote: r.u16().ok_or_else(m)?,
            },
            op::BIND => Request::Bind {
                remote: r.u16().ok_or_else(m)?,
                remote_port: r.u32().ok_or_else(m)?,
            },
            op::PEER_FD => Request::PeerFd {
                port: r.u32().ok_or_else(m)?,
            },
            op::CLOSE => Request::Close {
                port: r.u32().ok_or_else(m)?,
            },
            op::STATUS => Request::Status {
                port: r.u32().ok_or_else(m)?,
            },
            op::CREATE => {
                let n = r.u16().ok_or_else(m)?;
                let name = r.bytes(n.into()).ok_or_else(m)?;
                let name = std::str::from_utf8(name).map_err(|_| m())?;
                Request::Create {
                    name: name.to_owned(),
                }
            }
            op::DESTROY => Request::Destroy {
                domid: r.u16().ok_or_else(m)?,
            },
            op::KILL => Request::Kill {
                domid: r.u16().ok_or_else(m)?,
            },
            op::SET_FAULTS => Request::SetFaults {
                domid: r.u16().ok_or_else(m)?,
                faults: r.faults().ok_or_else(m)?,
            },
            op::POKE => {
                let domid = r.u16().ok_or_else(m)?;
                let gref = r.u32().ok_or_else(m)?;
                let offset = r.u32().ok_or_else(m)?;
                let n = r.u32().ok_or_else(m)?;
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= PAGE)
                    .ok_or(Refusal::new(Code::BadCount, n, PAGE as u32))?;
                let data = r.bytes(n).ok_or_else(m)?.to_vec();
                Request::Poke {
                    domid,
                    gref,
                    offset,
                    data,
                }
            }
            op::LIST => Request::List,
            other => return Err(Refusal::new(Code::UnknownOp, other.into(), 0)),
        };
        if !r.is_empty() {
            return Err(m());
        }
        Ok(req)
    }

    /// The request's body.
    pub fn encode(&self) -> Writer {
        match self {
            Request::Share {
                peer,
                pages,
                readonly,
            } => Writer::new(op::SHARE)
                .u16(*peer)
                .u32(*pages)
                .u8(u8::from(*readonly)),
            Request::Map {
                peer,
                readonly,
                refs,
            } => {
                let mut w = Writer::new(op::MAP)
                    .u16(*peer)
                    .u8(u8::from(*readonly))
                    .u32(refs.len() as u32);
                for &r in refs {
                    w = w.u32(r);
                }
                w
            }
            Request::Unmap { handle } => Writer::new(op::UNMAP).u32(*handle),
            Request::EndAccess { refs } => {
                let mut w = Writer::new(op::END_ACCESS).u32(refs.len() as u32);
                for &r in refs {
                    w = w.u32(r);
                }
                w
            }
            Request::AllocUnbound { remote } => Writer::new(op::ALLOC_UNBOUND).u16(*remote),
            Request::Bind {
                remote,
                remote_port,
            } => Writer::new(op::BIND).u16(*remote).u32(*remote_port),
            Request::PeerFd { port } => Writer::new(op::PEER_FD).u32(*port),
            Request::Close { port } => Writer::new(op::CLOSE).u32(*port),
            Request::Status { port } => Writer::new(op::STATUS).u32(*port),
            Request::Create { name } => Writer::new(op::CREATE)
                .u16(name.len() as u16)
                .bytes(name.as_bytes()),
            Request::Destroy { domid } => Writer::new(op::DESTROY).u16(*domid),
            Request::Kill { domid } => Writer::new(op::KILL).u16(*domid),
            Request::SetFaults { domid, faults } => {
                Writer::new(op::SET_FAULTS).u16(*domid).faults(faults)
            }
            Request::Poke {
                domid,
                gref,
                offset,
                data,
            } => Writer::new(op::POKE)
                .u16(*domid)
                .u32(*gref)
                .u32(*offset)
                .u32(data.len() as u32)
                .bytes(data),
            Request::List => Writer::new(op::LIST),
        }
    }
}

/// The page size, for bounds in this module.
const PAGE: usize = xenmq::grant::PAGE_SIZE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Share {
                peer: 3,
                pages: 2,
                readonly: true,
            },
            Request::Map {
                peer: 1,
                readonly: false,
                refs: vec![8, 9, 10],
            },
            Request::Unmap { handle: 7 },
            Request::EndAccess { refs: vec![8] },
            Request::AllocUnbound { remote: 4 },
            Request::Bind {
                remote: 0,
                remote_port: 5,
            },
            Request::PeerFd { port: 1 },
            Request::Close { port: 2 },
            Request::Status { port: 3 },
            Request::Create {
                name: "guest".into(),
            },
            Request::Destroy { domid: 2 },
            Request::Kill { domid: 2 },
            Request::SetFaults {
                domid: 1,
                faults: Faults {
                    seed: 99,
                    drop: 1,
                    duplicate: 2,
                    delay: 3,
                    delay_ms: 4,
                    kill_at: Some(5),
                },
            },
            Request::Poke {
                domid: 1,
                gref: 8,
                offset: 16,
                data: vec![1, 2, 3],
            },
            Request::List,
        ];
        for req in all {
            let body = req.encode().0;
            assert_eq!(Request::parse(&body), Ok(req.clone()));
            // Every strict prefix is malformed (or a bad count), never a
            // different valid request; a trailing byte is malformed.
            for cut in 0..body.len() {
                assert!(
                    Request::parse(&body[..cut]).is_err(),
                    "{req:?} cut at {cut}"
                );
            }
            let mut longer = body.clone();
            longer.push(0);
            assert_eq!(Request::parse(&longer), Err(Code::Malformed.into()));
        }
    }

    #[test]
    fn counts_are_bounded_before_allocation() {
        let huge = Writer::new(op::MAP).u16(1).u8(0).u32(u32::MAX).0;
        assert_eq!(
            Request::parse(&huge),
            Err(Refusal::new(Code::BadCount, u32::MAX, MAX_PAGES as u32))
        );
        let zero = Writer::new(op::SHARE).u16(1).u32(0).u8(0).0;
        assert!(matches!(Request::parse(&zero), Err(r) if r.code == Code::BadCount));
        let poke = Writer::new(op::POKE).u16(1).u32(8).u32(0).u32(1 << 20).0;
        assert!(matches!(Request::parse(&poke), Err(r) if r.code == Code::BadCount));
        assert_eq!(Request::parse(&[]), Err(Code::Malformed.into()));
        assert!(matches!(Request::parse(&[99]), Err(r) if r.code == Code::UnknownOp));
    }
}
