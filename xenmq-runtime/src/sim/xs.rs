//! A minimal Xenstore client for the toolstack side of the host: the few
//! `xs_wire.h` operations it needs to build and remove a domain's tree.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

const XS_RM: u32 = 13;
const XS_WRITE: u32 = 11;
const XS_MKDIR: u32 = 12;
const XS_SET_PERMS: u32 = 14;
const XS_WATCH_EVENT: u32 = 15;
const XS_ERROR: u32 = 16;
/// `XENSTORE_PAYLOAD_MAX`.
const PAYLOAD_MAX: usize = 4096;

/// A connection to a Xenstore server, as dom0.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    next: u32,
}

impl Client {
    /// A client over a connected stream.
    pub fn new(stream: UnixStream) -> Client {
        Client { stream, next: 1 }
    }

    fn call(&mut self, ty: u32, payload: &[u8]) -> io::Result<Vec<u8>> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= PAYLOAD_MAX)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "xenstore payload too long")
            })?;
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        let mut msg = Vec::with_capacity(16 + payload.len());
        for w in [ty, id, 0, len] {
            msg.extend_from_slice(&w.to_le_bytes());
        }
        msg.extend_from_slice(payload);
        self.stream.write_all(&msg)?;
        loop {
            let mut hdr = [0u8; 16];
            self.stream.read_exact(&mut hdr)?;
            let word = |i: usize| u32::from_le_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
            let (rty, rid, rlen) = (word(0), word(4), word(12) as usize);
            if rlen > PAYLOAD_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "xenstore reply too long",
                ));
            }
            let mut body = vec![0u8; rlen];
            self.stream.read_exact(&mut body)?;
            if rty == XS_WATCH_EVENT || rid != id {
                continue;
            }
            if rty == XS_ERROR {
                let text = String::from_utf8_lossy(&body);
                return Err(io::Error::other(format!(
                    "xenstore error {}",
                    text.trim_end_matches('\0')
                )));
            }
            return Ok(body);
        }
    }

    /// Writes `value` at `path`.
    pub fn write(&mut self, path: &str, value: &str) -> io::Result<()> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.call(XS_WRITE, &p).map(drop)
    }

    /// Creates `path` (and its parents).
    pub fn mkdir(&mut self, path: &str) -> io::Result<()> {
        self.call(XS_MKDIR, &nul(&[path])).map(drop)
    }

    /// Removes `path` and everything below it.
    pub fn rm(&mut self, path: &str) -> io::Result<()> {
        self.call(XS_RM, &nul(&[path])).map(drop)
    }

    /// Sets the permissions of `path`: `perms[0]` is the owner and the
    /// default for everyone else (`n0`, `r5`, ...).
    pub fn set_perms(&mut self, path: &str, perms: &[&str]) -> io::Result<()> {
        let mut all = vec![path];
        all.extend_from_slice(perms);
        self.call(XS_SET_PERMS, &nul(&all)).map(drop)
    }
}

fn nul(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}
