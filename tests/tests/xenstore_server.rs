//! Our server under misbehaving clients: one that never reads its watch
//! events, and one that floods requests without reading replies. Neither
//! may stall the others or make the server grow without bound.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::xenstore::server::{Limits, Xenstored};
use xenmq_runtime::xenstore::Connection;

fn setup(
    tag: &str,
) -> (
    Xenstored,
    xenmq_tests::RunDir,
    Vec<xenmq_runtime::xenstore::server::Listener>,
) {
    let dir = xenmq_tests::run_dir(&format!("xssrv-{tag}"));
    let xs = Xenstored::new(Limits::default());
    let mut ls = vec![xs.listen(&dir.join("dom0"), 0).unwrap()];
    for d in [5u16, 6] {
        xs.introduce(d);
        ls.push(xs.listen(&dir.join(format!("dom{d}")), d).unwrap());
    }
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    for d in [5, 6] {
        let home = format!("/local/domain/{d}");
        dom0.mkdir(Tx::NONE, &home).unwrap();
        let p = Perms::parse([format!("n{d}").as_bytes()]).unwrap();
        dom0.set_perms(Tx::NONE, &home, &p).unwrap();
    }
    (xs, dir, ls)
}

#[test]
fn a_guest_that_never_reads_its_events_stalls_nobody() {
    let (xs, dir, _ls) = setup("events");
    let raw = UnixStream::connect(dir.join("dom5")).unwrap();
    let mut w = raw.try_clone().unwrap();
    // WATCH "/local/domain/5" and then never read again.
    let mut m = Vec::new();
    let body = b"/local/domain/5\0tok\0";
    for v in [4u32, 1, 0, body.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(body);
    w.write_all(&m).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    let other = Connection::connect(&dir.join("dom6")).unwrap();
    let start = Instant::now();
    for i in 0..6000 {
        dom0.write(Tx::NONE, &format!("/local/domain/5/x{i}"), b"v")
            .unwrap();
        if i % 1000 == 0 {
            // Another guest is served promptly meanwhile.
            let t = Instant::now();
            other.write(Tx::NONE, "mine", b"v").unwrap();
            assert!(t.elapsed() < Duration::from_secs(2));
        }
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    // The events beyond the bound were dropped, not queued.
    assert!(xs.dropped_events() > 0, "events should have been dropped");
    drop(raw);
}

#[test]
fn a_request_flood_is_throttled_and_stalls_nobody() {
    let (_xs, dir, _ls) = setup("flood");
    let flood = UnixStream::connect(dir.join("dom5")).unwrap();
    flood.set_nonblocking(true).unwrap();
    let mut f = flood.try_clone().unwrap();
    let mut req = Vec::new();
    let body = b"/local/domain/5\0";
    for v in [2u32, 1, 0, body.len() as u32] {
        req.extend_from_slice(&v.to_le_bytes());
    }
    req.extend_from_slice(body);
    // Write until the server stops reading (it must, at 20 outstanding).
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f.write(&req) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("flood write: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the server never stopped reading"
        );
    }
    assert!(
        sent < 16 << 20,
        "server read {sent} bytes without replies read"
    );
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    let t = Instant::now();
    for i in 0..100 {
        dom0.write(Tx::NONE, &format!("/d0/{i}"), b"v").unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(flood);
}

#[test]
fn oversize_and_garbage_close_only_that_connection() {
    let (_xs, dir, _ls) = setup("garbage");
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    let mut bad = UnixStream::connect(dir.join("dom5")).unwrap();
    let mut m = Vec::new();
    for v in [11u32, 1, 0, 5000] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    bad.write_all(&m).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut bad, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the connection should be closed");
    assert_eq!(dom0.read(Tx::NONE, "/tool").unwrap(), b"");
}

/// xorshift64*: a fixed-seed generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random well-framed requests of every type with random arguments, as
/// dom0 and as a guest: every request gets exactly one reply with its id
/// (watch events may come between), and the server keeps serving.
#[test]
fn random_requests_always_get_one_reply() {
    use xenmq_tests::wire::{Conn, Got};
    let (_xs, dir, _ls) = setup("random");
    let pieces: [&[u8]; 16] = [
        b"/",
        b"a",
        b"b/c",
        b"/local/domain/5",
        b"/local/domain/6/x",
        b"@introduceDomain",
        b"@releaseDomain",
        b"\0",
        b"\0",
        b"n5",
        b"r0",
        b"b6",
        b"T",
        b"F",
        b"5",
        b"/tool",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for sock in ["dom0", "dom5"] {
        let mut c = Conn::connect(&dir.join(sock));
        for i in 0..1500u32 {
            let typ = rng.below(25) as u32;
            let tx = [0, 0, 0, 1, 2, rng.next() as u32][rng.below(6)];
            let mut payload = Vec::new();
            for _ in 0..rng.below(8) {
                payload.extend_from_slice(pieces[rng.below(pieces.len())]);
            }
            if rng.below(10) == 0 {
                payload.extend(std::iter::repeat_n(b'x', rng.below(3000)));
            }
            c.send(typ, tx, &payload);
            let want = i + 1;
            loop {
                match c.recv(Duration::from_secs(5)) {
                    Got::Msg(m) if m.typ == 15 => continue,
                    Got::Msg(m) => {
                        assert_eq!(m.req_id, want, "reply to request {want} ({typ})");
                        break;
                    }
                    other => panic!("request {want} (type {typ}) on {sock}: {other:?}"),
                }
            }
        }
    }
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    dom0.write(Tx::NONE, "/still/alive", b"yes").unwrap();
    assert_eq!(dom0.read(Tx::NONE, "/still/alive").unwrap(), b"yes");
}

/// The quotas come from `Limits`, not constants.
#[test]
fn quotas_follow_the_config() {
    let dir = xenmq_tests::run_dir("xscfg");
    let xs = Xenstored::new(Limits {
        max_nodes: 3,
        max_watches: 1,
        max_transactions: 0,
        max_perms: 2,
        max_node_size: 64,
        ..Limits::default()
    });
    xs.introduce(5);
    let _l0 = xs.listen(&dir.join("dom0"), 0).unwrap();
    let _l5 = xs.listen(&dir.join("dom5"), 5).unwrap();
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    dom0.mkdir(Tx::NONE, "/local/domain/5").unwrap();
    let p = |s: &[&str]| Perms::parse(s.iter().map(|x| x.as_bytes())).unwrap();
    dom0.set_perms(Tx::NONE, "/local/domain/5", &p(&["n5"]))
        .unwrap();
    let g = Connection::connect(&dir.join("dom5")).unwrap();
    let refused = |r: Result<(), xenmq::xenstore::Error>| r.unwrap_err().errno().unwrap();
    use xenmq::xenstore::Errno;
    g.write(Tx::NONE, "a", b"").unwrap();
    g.write(Tx::NONE, "b", b"").unwrap();
    assert_eq!(refused(g.write(Tx::NONE, "c", b"")), Errno::ENOSPC);
    assert_eq!(refused(g.write(Tx::NONE, "a", &[b'x'; 40])), Errno::ENOSPC);
    g.write(Tx::NONE, "a", &[b'x'; 20]).unwrap();
    assert_eq!(
        refused(g.set_perms(Tx::NONE, "b", &p(&["n5", "r1", "r2"]))),
        Errno::ENOSPC
    );
    g.set_perms(Tx::NONE, "b", &p(&["n5", "r1"])).unwrap();
    g.watch("a", "1").unwrap();
    g.watch("a", "2").unwrap();
    assert_eq!(refused(g.watch("a", "3")), Errno::E2BIG);
    let t = g.transaction_start().unwrap();
    assert_eq!(
        g.transaction_start().unwrap_err().errno(),
        Some(Errno::ENOSPC)
    );
    g.transaction_end(t, false).unwrap();
    // Dom0 is not subject to quotas.
    for i in 0..10 {
        dom0.write(Tx::NONE, &format!("/local/domain/5/d{i}"), &[b'x'; 100])
            .unwrap();
    }
    drop((_l0, _l5));
}

/// Events a guest leaves unread expire after `event_timeout`.
#[test]
fn unread_events_expire() {
    let dir = xenmq_tests::run_dir("xsexp");
    let xs = Xenstored::new(Limits {
        event_timeout: Duration::from_millis(50),
        ..Limits::default()
    });
    xs.introduce(5);
    let _l0 = xs.listen(&dir.join("dom0"), 0).unwrap();
    let _l5 = xs.listen(&dir.join("dom5"), 5).unwrap();
    let dom0 = Connection::connect(&dir.join("dom0")).unwrap();
    let raw = UnixStream::connect(dir.join("dom5")).unwrap();
    let mut w = raw.try_clone().unwrap();
    let body = b"/\0t\0";
    let mut m = Vec::new();
    for v in [4u32, 1, 0, body.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(body);
    w.write_all(&m).unwrap();
    dom0.write(Tx::NONE, "/x", b"").unwrap();
    dom0.set_perms(Tx::NONE, "/x", &Perms::parse([&b"n0"[..], b"r5"]).unwrap())
        .unwrap();
    // Enough distinct events to fill the socket, then wait and add more.
    for i in 0..3000 {
        dom0.write(Tx::NONE, &format!("/x/{i}"), b"").unwrap();
    }
    let before = xs.dropped_events();
    std::thread::sleep(Duration::from_millis(120));
    dom0.write(Tx::NONE, "/x/late", b"").unwrap();
    assert!(
        xs.dropped_events() > before,
        "expired events should be dropped"
    );
    drop(raw);
    drop((_l0, _l5));
}

/// `connect` serves a socket pair; dom0's `XS_CONTROL` is not provided.
#[test]
fn in_process_connections() {
    use xenmq::xenstore::wire::MsgType;
    use xenmq::xenstore::Errno;
    let xs = Xenstored::new(Limits::default());
    let dom0 = Connection::from_stream(xs.connect(0).unwrap()).unwrap();
    xs.introduce(3);
    let g = Connection::from_stream(xs.connect(3).unwrap()).unwrap();
    dom0.write(Tx::NONE, "/local/domain/3/x", b"1").unwrap();
    assert_eq!(
        g.read(Tx::NONE, "/local/domain/3/x").unwrap_err().errno(),
        Some(Errno::EACCES)
    );
    let ctl = dom0.request(MsgType::Control, Tx::NONE, b"print\0x\0");
    assert_eq!(ctl.unwrap_err().errno(), Some(Errno::ENOSYS));
    let ctl = g.request(MsgType::Control, Tx::NONE, b"print\0x\0");
    assert_eq!(ctl.unwrap_err().errno(), Some(Errno::EACCES));
    xs.release(3);
    assert!(g.read(Tx::NONE, "/").is_err());
    assert_eq!(dom0.read(Tx::NONE, "/local/domain/3/x").unwrap(), b"1");
}
