//! A raw Xenstore connection for conformance tests: sends exactly the bytes
//! it is given and reads back whole messages, with a timeout.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Raw type.
    pub typ: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = String::from_utf8_lossy(&self.payload).replace('\0', "\\0");
        let p: String = p.chars().take(120).collect();
        write!(
            f,
            "t{} r{} x{} \"{}\"",
            self.typ, self.req_id, self.tx_id, p
        )
    }
}

/// What reading produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A message.
    Msg(Msg),
    /// Nothing within the timeout.
    Timeout,
    /// The server closed the connection.
    Closed,
}

/// A raw connection.
pub struct Conn {
    s: UnixStream,
    next_req: u32,
}

impl Conn {
    /// Connects.
    pub fn connect(path: &Path) -> Self {
        let s =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        Conn { s, next_req: 1 }
    }

    /// Sends raw bytes (a broken pipe is ignored: reading reports it).
    pub fn raw(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    /// Sends a well-formed message with the next request id.
    pub fn send(&mut self, typ: u32, tx: u32, payload: &[u8]) {
        let mut m = Vec::new();
        for v in [typ, self.next_req, tx, payload.len() as u32] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.extend_from_slice(payload);
        self.next_req += 1;
        self.raw(&m);
    }

    /// Reads one message, waiting up to `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Got {
        self.s.set_read_timeout(Some(timeout)).expect("set timeout");
        let mut head = [0u8; 16];
        match self.s.read(&mut head[..1]) {
            Ok(0) => return Got::Closed,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Got::Timeout
            }
            Err(_) => return Got::Closed,
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set timeout");
        if self.s.read_exact(&mut head[1..]).is_err() {
            return Got::Closed;
        }
        let f = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let mut payload = vec![0; f(12) as usize];
        if self.s.read_exact(&mut payload).is_err() {
            return Got::Closed;
        }
        Got::Msg(Msg {
            typ: f(0),
            req_id: f(4),
            tx_id: f(8),
            payload,
        })
    }

    /// Everything that arrives until `quiet` passes with nothing new.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            match self.recv(quiet) {
                Got::Timeout => return out,
                Got::Closed => {
                    out.push(Got::Closed);
                    return out;
                }
                m => out.push(m),
            }
        }
    }
}
