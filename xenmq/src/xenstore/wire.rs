//! The Xenstore wire protocol (`xen/io/xs_wire.h`), platform-free.
//!
//! Everything both ends of a Xenstore connection must agree on, with no I/O:
//! the 16-byte [`Header`], the message types ([`MsgType`]), the error names
//! carried by `XS_ERROR` replies ([`Errno`]) and the payload argument rules
//! ([`args`]). The server (`xenmq_runtime::xenstore::server`) and the client
//! (`xenmq_runtime::xenstore::client`) are both built on it, so they cannot
//! disagree.
//!
//! Every function here takes bytes a hostile peer wrote: none of them
//! panics, indexes out of bounds or overflows.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod args;

/// Bytes in a message header.
pub const HEADER_LEN: usize = 16;
/// Largest payload either side may send (`XENSTORE_PAYLOAD_MAX`). A server
/// receiving a longer one treats the connection as broken.
pub const PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Longest path relative to a domain's home (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;
/// Bytes in the shared ring of a guest's Xenstore page (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: usize = 1024;

/// A failure to decode bytes received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than a header holds.
    #[error("short message header: {0} of 16 bytes")]
    ShortHeader(usize),
    /// The header announces more payload than [`PAYLOAD_MAX`].
    #[error("payload of {0} bytes exceeds the 4096-byte limit")]
    PayloadTooLong(u32),
    /// The payload's length differs from the header's.
    #[error("payload is {actual} bytes, header says {declared}")]
    LengthMismatch {
        /// Length in the header.
        declared: u32,
        /// Bytes actually present.
        actual: usize,
    },
    /// An `XS_ERROR` payload that names no known error.
    #[error("unknown error name in an error reply")]
    UnknownErrno,
    /// A payload that lacks a required argument or its terminator.
    #[error("malformed payload for {0:?}")]
    Malformed(MsgType),
    /// A reply whose type is neither the request's nor `XS_ERROR`.
    #[error("reply of type {got} to a request of type {want:?}")]
    UnexpectedReply {
        /// The request's type.
        want: MsgType,
        /// The raw type of the reply.
        got: u32,
    },
}

/// A message type (`enum xsd_sockmsg_type`). Types not listed are carried as
/// raw numbers in [`Header::msg_type`]; [`MsgType::from_u32`] rejects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)] // the names are the protocol's own
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    ResetWatches = 21,
    DirectoryPart = 22,
}

impl MsgType {
    /// The type numbered `raw`, if the protocol defines it (20, the removed
    /// `XS_RESTRICT`, and anything from 23 up are not).
    pub fn from_u32(raw: u32) -> Option<Self> {
        use MsgType::*;
        Some(match raw {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            _ => return None,
        })
    }
}

impl From<MsgType> for u32 {
    fn from(t: MsgType) -> u32 {
        t as u32
    }
}

/// A message header (`struct xsd_sockmsg`), little-endian on the wire as on
/// every platform Xen runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The raw message type; see [`MsgType`].
    pub msg_type: u32,
    /// Chosen by the requester, echoed in the reply; 0 in watch events.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Bytes of payload that follow.
    pub len: u32,
}

impl Header {
    /// A header for `len` bytes of payload.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, len: u32) -> Self {
        Header {
            msg_type: msg_type.into(),
            req_id,
            tx_id,
            len,
        }
    }

    /// Decodes the first [`HEADER_LEN`] bytes of `bytes`. The length is not
    /// checked: see [`Header::check_len`].
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::ShortHeader(bytes.len()))?;
        let [t0, t1, t2, t3, r0, r1, r2, r3, x0, x1, x2, x3, l0, l1, l2, l3] = *b;
        Ok(Header {
            msg_type: u32::from_le_bytes([t0, t1, t2, t3]),
            req_id: u32::from_le_bytes([r0, r1, r2, r3]),
            tx_id: u32::from_le_bytes([x0, x1, x2, x3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        })
    }

    /// Fails if the announced payload exceeds [`PAYLOAD_MAX`].
    pub fn check_len(&self) -> Result<usize, Error> {
        match usize::try_from(self.len) {
            Ok(n) if n <= PAYLOAD_MAX => Ok(n),
            _ => Err(Error::PayloadTooLong(self.len)),
        }
    }

    /// The 16 bytes of this header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields = [self.msg_type, self.req_id, self.tx_id, self.len];
        for (chunk, v) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The type, if the protocol defines it.
    pub fn typ(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }
}

/// The error names an `XS_ERROR` reply carries (`xsd_errors[]`), as
/// NUL-terminated strings such as `"ENOENT\0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // errno names
pub enum Errno {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl Errno {
    const ALL: [Errno; 16] = [
        Errno::EINVAL,
        Errno::EACCES,
        Errno::EEXIST,
        Errno::EISDIR,
        Errno::ENOENT,
        Errno::ENOMEM,
        Errno::ENOSPC,
        Errno::EIO,
        Errno::ENOTEMPTY,
        Errno::ENOSYS,
        Errno::EROFS,
        Errno::EBUSY,
        Errno::EAGAIN,
        Errno::EISCONN,
        Errno::E2BIG,
        Errno::EPERM,
    ];

    /// The name as sent on the wire, without the terminating NUL.
    pub fn name(self) -> &'static str {
        match self {
            Errno::EINVAL => "EINVAL",
            Errno::EACCES => "EACCES",
            Errno::EEXIST => "EEXIST",
            Errno::EISDIR => "EISDIR",
            Errno::ENOENT => "ENOENT",
            Errno::ENOMEM => "ENOMEM",
            Errno::ENOSPC => "ENOSPC",
            Errno::EIO => "EIO",
            Errno::ENOTEMPTY => "ENOTEMPTY",
            Errno::ENOSYS => "ENOSYS",
            Errno::EROFS => "EROFS",
            Errno::EBUSY => "EBUSY",
            Errno::EAGAIN => "EAGAIN",
            Errno::EISCONN => "EISCONN",
            Errno::E2BIG => "E2BIG",
            Errno::EPERM => "EPERM",
        }
    }

    /// Decodes an `XS_ERROR` payload: a name, optionally NUL-terminated.
    pub fn from_payload(payload: &[u8]) -> Result<Self, Error> {
        let name = payload.split(|&b| b == 0).next().unwrap_or(&[]);
        Errno::ALL
            .into_iter()
            .find(|e| e.name().as_bytes() == name)
            .ok_or(Error::UnknownErrno)
    }

    /// The payload of an `XS_ERROR` reply: the name and a NUL.
    pub fn payload(self) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec::Vec::with_capacity(self.name().len().saturating_add(1));
        v.extend_from_slice(self.name().as_bytes());
        v.push(0);
        v
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Encodes a whole message: header and payload. `None` if the payload is
/// longer than [`PAYLOAD_MAX`].
pub fn encode(
    msg_type: MsgType,
    req_id: u32,
    tx_id: u32,
    payload: &[u8],
) -> Option<alloc::vec::Vec<u8>> {
    if payload.len() > PAYLOAD_MAX {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?;
    let mut out = alloc::vec::Vec::with_capacity(HEADER_LEN.saturating_add(payload.len()));
    out.extend_from_slice(&Header::new(msg_type, req_id, tx_id, len).to_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_limits() {
        let h = Header::new(MsgType::Write, 7, 3, 12);
        let b = h.to_bytes();
        assert_eq!(b[..4], [11, 0, 0, 0]);
        assert_eq!(Header::parse(&b), Ok(h));
        assert_eq!(Header::parse(&b[..15]), Err(Error::ShortHeader(15)));
        assert_eq!(h.check_len(), Ok(12));
        let big = Header { len: 4097, ..h };
        assert_eq!(big.check_len(), Err(Error::PayloadTooLong(4097)));
        assert_eq!(Header { len: 4096, ..h }.check_len(), Ok(4096));
    }

    #[test]
    fn message_types() {
        for raw in 0..30u32 {
            match MsgType::from_u32(raw) {
                Some(t) => assert_eq!(u32::from(t), raw),
                None => assert!(raw == 20 || raw > 22),
            }
        }
    }

    #[test]
    fn errno_names() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_payload(&e.payload()), Ok(e));
        }
        assert_eq!(Errno::from_payload(b"ENOENT"), Ok(Errno::ENOENT));
        assert_eq!(Errno::from_payload(b"ENOEN\0"), Err(Error::UnknownErrno));
        assert_eq!(Errno::from_payload(b""), Err(Error::UnknownErrno));
    }

    #[test]
    fn encode_limits() {
        assert!(encode(MsgType::Write, 1, 0, &[0; 4096]).is_some());
        assert!(encode(MsgType::Write, 1, 0, &[0; 4097]).is_none());
    }
}
