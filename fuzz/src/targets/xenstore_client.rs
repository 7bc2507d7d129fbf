//! A hostile Xenstore server against the client: the input, after the
//! client's operations, is every byte the server sends (any headers,
//! lengths, request ids, payloads, watch events), read as the client
//! waits for each reply, until the input ends. The client runs inline
//! (`Connection::inline`: no reader thread), so a run is one thread and
//! the same input always plays the same. Nothing may panic or hang; every
//! request returns (an answer or an error); what comes back is within the
//! protocol's limits.

use std::io;
use std::time::Duration;

use xenmq::xenstore::perms::{Mode, Perms};
use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::xenstore::Connection;

use crate::harness::Input;

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let ops: Vec<u8> = input.bytes(16)?.to_vec();
    let mut chunks = Vec::new();
    while !input.is_empty() {
        chunks.push(input.bytes(512)?.to_vec());
    }
    let server = io::Cursor::new(chunks.concat());
    let xs = Connection::inline(server, io::sink()).expect("a client");
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
