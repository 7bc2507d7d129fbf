//! A hostile Xenstore server against the client: each request the client
//! writes releases the next chunk of the input as the server's reply bytes
//! (any headers, lengths, request ids, payloads, watch events), and the
//! stream ends with the input. Nothing may panic or hang; every request
//! returns (an answer or an error); what comes back is within the
//! protocol's limits.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use xenmq::xenstore::perms::{Mode, Perms};
use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::xenstore::Connection;

use crate::harness::Input;

/// How long the server waits for a request before sending its next chunk.
const PATIENCE: Duration = Duration::from_micros(20);

/// The server's side: a chunk of bytes for each request the client sends.
struct Server {
    chunks: std::vec::IntoIter<Vec<u8>>,
    current: io::Cursor<Vec<u8>>,
    written: Receiver<()>,
}

impl Read for Server {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // This chunk is out: the next answers the client's next
            // request. A client still waiting for an answer the chunk did
            // not hold sends nothing, so wait only briefly for it.
            if let Err(RecvTimeoutError::Disconnected) = self.written.recv_timeout(PATIENCE) {
                return Ok(0);
            }
            match self.chunks.next() {
                Some(c) => self.current = io::Cursor::new(c),
                None => return Ok(0),
            }
        }
    }
}

/// The client's side: every write is a request sent.
struct Wire(Sender<()>);

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.send(());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let ops: Vec<u8> = input.bytes(16)?.to_vec();
    let mut chunks = Vec::new();
    while !input.is_empty() {
        chunks.push(input.bytes(512)?.to_vec());
    }
    let (tx, rx) = mpsc::channel();
    let server = Server {
        chunks: chunks.into_iter(),
        current: io::Cursor::new(Vec::new()),
        written: rx,
    };
    let xs = Connection::new(server, Wire(tx)).expect("a client");
    for op in ops {
        let p = "/local/domain/1/x";
        match op % 10 {
            0 => {
                if let Ok(v) = xs.read(Tx::NONE, p) {
                    assert!(v.len() <= 4096);
                }
            }
            1 => {
                let _ = xs.write(Tx::NONE, p, b"v");
            }
            2 => {
                if let Ok(d) = xs.directory(Tx::NONE, p) {
                    assert!(d.iter().map(|e| e.len() + 1).sum::<usize>() <= 4096);
                }
            }
            3 => {
                let _ = xs.get_perms(Tx::NONE, p);
            }
            4 => {
                let _ = xs.watch(p, "tok");
            }
            5 => {
                if let Ok(t) = xs.transaction_start() {
                    let _ = xs.read(t, p);
                    let _ = xs.transaction_end(t, true);
                }
            }
            6 => {
                let _ = xs.set_perms(Tx::NONE, p, &Perms::new(1, Mode::Read));
            }
            7 => {
                let _ = xs.get_domain_path(1);
            }
            8 => {
                let _ = xs.rm(Tx::NONE, p);
            }
            _ => {
                while let Ok(Some(ev)) = xs.next_event(Some(Duration::ZERO)) {
                    assert!(ev.path.len() + ev.token.len() <= 4096);
                }
            }
        }
    }
    Some(())
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
