//! Transactions under contention, against our server and Debian's C
//! xenstored: threads, each with its own connection, increment shared
//! counters inside transactions, retrying on `EAGAIN`. A transaction
//! answered `EAGAIN` must have changed nothing and one answered OK must have
//! changed everything it wrote, so each counter ends equal to the number of
//! commits that were answered OK (too high: a refused transaction's write
//! leaked; too low: an acknowledged one was lost), and the tree a committed
//! transaction wrote is whole.

use std::path::Path;

use xenmq::xenstore::{Errno, Error, Store, Tx};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::ours::OurXenstored;
use xenmq_tests::ref_xenstored::RefXenstored;

const THREADS: u32 = 4;
const COMMITS: u32 = 150;
const COUNTERS: u32 = 3;

/// What one thread saw.
#[derive(Debug, Default)]
struct Outcome {
    ok: [u32; COUNTERS as usize],
    again: u32,
}

fn read_u32(xs: &Connection, tx: Tx, path: &str) -> Result<u32, Error> {
    match xs.read_string(tx, path) {
        Ok(v) => Ok(v.parse().expect("a counter holds a number")),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(0),
        Err(e) => Err(e),
    }
}

/// `COMMITS` acknowledged transactions, each incrementing counter
/// `i % COUNTERS` and writing a record of itself in the same transaction.
fn worker(socket: &Path, me: u32, base: &str) -> Outcome {
    let xs = Connection::connect(socket).expect("connect");
    let mut out = Outcome::default();
    let mut done = 0;
    while done < COMMITS {
        let c = (me + done) % COUNTERS;
        let tx = xs.transaction_start().expect("transaction start");
        let key = format!("{base}/c{c}");
        let n = read_u32(&xs, tx, &key).expect("read in transaction");
        xs.write(tx, &key, (n + 1).to_string().as_bytes())
            .expect("write in transaction");
        // A second node per commit: a partial commit would show one
        // without the other.
        let rec = format!("{base}/log/c{c}-{}", n + 1);
        xs.write(tx, &rec, format!("{me}").as_bytes())
            .expect("write in transaction");
        match xs.transaction_end(tx, true) {
            Ok(()) => {
                out.ok[c as usize] += 1;
                done += 1;
            }
            Err(e) if e.errno() == Some(Errno::EAGAIN) => out.again += 1,
            Err(e) => panic!("transaction end: {e}"),
        }
    }
    out
}

fn hammer(socket: &Path, base: &str) {
    let admin = Connection::connect(socket).expect("connect");
    let _ = admin.rm(Tx::NONE, base);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|me| s.spawn(move || worker(socket, me, base)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let again: u32 = outcomes.iter().map(|o| o.again).sum();
    eprintln!("{base}: {} commits, {again} EAGAIN", THREADS * COMMITS);
    assert!(again > 0, "no contention: the test proved nothing");
    for c in 0..COUNTERS {
        let acked: u32 = outcomes.iter().map(|o| o.ok[c as usize]).sum();
        let value = read_u32(&admin, Tx::NONE, &format!("{base}/c{c}")).unwrap();
        assert_eq!(
            value, acked,
            "counter c{c}: {value} after {acked} acknowledged increments"
        );
        // Every increment left its record, and no refused one did.
        let records = admin
            .directory(Tx::NONE, &format!("{base}/log"))
            .unwrap()
            .into_iter()
            .filter(|r| r.starts_with(&format!("c{c}-")))
            .count();
        assert_eq!(records as u32, acked, "records of c{c}");
    }
    admin.rm(Tx::NONE, base).unwrap();
}

#[test]
fn contended_transactions_against_our_server() {
    let xs = OurXenstored::start("txstress");
    hammer(&xs.socket(), "/stress");
}

#[test]
fn contended_transactions_against_c_xenstored() {
    let c = RefXenstored::start();
    hammer(&c.socket(), "/stress");
}
