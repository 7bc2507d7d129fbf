//! Our server under misbehaving clients: one that never reads its watch
//! events, and one that floods requests without reading replies. Neither
//! may stall the others or make the server grow without bound.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xenmq::store::{Store, Tx};
use xenmq::xenstore::perms::Perms;
use xenmq_runtime::sim::xenstored::{Config, Xenstored};
use xenmq_runtime::xs::Client;

fn setup(
    tag: &str,
) -> (
    Xenstored,
    std::path::PathBuf,
    Vec<xenmq_runtime::sim::xenstored::Listener>,
) {
    let dir = std::env::temp_dir().join(format!("xenmq-xssrv-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let xs = Xenstored::new(Config::default());
    let mut ls = vec![xs.listen(&dir.join("dom0"), 0).unwrap()];
    for d in [5u16, 6] {
        xs.introduce(d);
        ls.push(xs.listen(&dir.join(format!("dom{d}")), d).unwrap());
    }
    let dom0 = Client::connect(&dir.join("dom0")).unwrap();
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

    let dom0 = Client::connect(&dir.join("dom0")).unwrap();
    let other = Client::connect(&dir.join("dom6")).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
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
    let dom0 = Client::connect(&dir.join("dom0")).unwrap();
    let t = Instant::now();
    for i in 0..100 {
        dom0.write(Tx::NONE, &format!("/d0/{i}"), b"v").unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(flood);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversize_and_garbage_close_only_that_connection() {
    let (_xs, dir, _ls) = setup("garbage");
    let dom0 = Client::connect(&dir.join("dom0")).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}
