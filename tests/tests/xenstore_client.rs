//! The Xenstore client (`xenmq_runtime::xenstore::Connection`) against our server and
//! against Debian's real C xenstored: every `Store` operation, watch events
//! queued while a reply is awaited, transactions, conflicts and the
//! retry-on-EAGAIN helper, and a guest's view.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::wire::MsgType;
use xenmq::xenstore::{transaction, Errno, Error, Store, Tx, WatchEvent};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::ours::OurXenstored;
use xenmq_tests::ref_xenstored::{wait_for, RefXenstored};

const GUEST: u16 = 5;

fn ev(path: &str, token: &str) -> Option<WatchEvent> {
    Some(WatchEvent {
        path: path.into(),
        token: token.into(),
    })
}

fn perms(s: &[&str]) -> Perms {
    Perms::parse(s.iter().map(|x| x.as_bytes())).expect("perms")
}

fn refused(r: Result<impl std::fmt::Debug, Error>) -> Errno {
    match r {
        Err(Error::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const T: Option<Duration> = Some(Duration::from_secs(5));
const SHORT: Option<Duration> = Some(Duration::from_millis(150));

fn exercise(dom0: &Path, guest: &dyn Fn() -> PathBuf) {
    let xs = Connection::connect(dom0).expect("connect");
    let other = Connection::connect(dom0).expect("connect");
    let n = Tx::NONE;

    // Plain operations.
    xs.write(n, "/ct/a", b"hello").unwrap();
    assert_eq!(xs.read(n, "/ct/a").unwrap(), b"hello");
    assert_eq!(xs.read_string(n, "/ct/a").unwrap(), "hello");
    assert_eq!(xs.directory(n, "/ct").unwrap(), ["a"]);
    xs.mkdir(n, "/ct/d/e").unwrap();
    assert_eq!(xs.directory(n, "/ct").unwrap(), ["a", "d"]);
    assert!(xs.exists(n, "/ct/d/e").unwrap());
    xs.rm(n, "/ct/d").unwrap();
    assert!(!xs.exists(n, "/ct/d/e").unwrap());
    assert_eq!(refused(xs.read(n, "/ct/nope")), Errno::ENOENT);
    assert_eq!(refused(xs.read(n, "/ct//x")), Errno::EINVAL);
    assert!(matches!(xs.read(n, "/a\0b"), Err(Error::BadArgument(_))));
    let big = vec![b'x'; 5000];
    assert!(matches!(
        xs.write(n, "/ct/big", &big),
        Err(Error::BadArgument(_))
    ));
    assert_eq!(xs.get_perms(n, "/ct/a").unwrap(), perms(&["n0"]));
    xs.set_perms(n, "/ct/a", &perms(&["n0", "r5"])).unwrap();
    assert_eq!(xs.get_perms(n, "/ct/a").unwrap(), perms(&["n0", "r5"]));
    assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
    let raw = xs.request(MsgType::IsDomainIntroduced, n, b"0\0").unwrap();
    assert_eq!(raw, b"T\0");

    // Watches: the initial event, then events queued while replies are
    // awaited.
    xs.watch("/ct", "tok").unwrap();
    assert_eq!(xs.next_event(T).unwrap(), ev("/ct", "tok"));
    for i in 0..5 {
        xs.write(n, &format!("/ct/w{i}"), b"v").unwrap();
    }
    other.write(n, "/ct/from-other", b"v").unwrap();
    for i in 0..5 {
        assert_eq!(xs.next_event(T).unwrap(), ev(&format!("/ct/w{i}"), "tok"));
    }
    assert_eq!(xs.next_event(T).unwrap(), ev("/ct/from-other", "tok"));
    assert_eq!(xs.next_event(SHORT).unwrap(), None);

    // A transaction: invisible outside until committed, events at commit.
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "/ct/t1", b"in-tx").unwrap();
    assert_eq!(xs.read(tx, "/ct/t1").unwrap(), b"in-tx");
    assert_eq!(refused(other.read(n, "/ct/t1")), Errno::ENOENT);
    assert_eq!(xs.next_event(SHORT).unwrap(), None);
    xs.transaction_end(tx, true).unwrap();
    assert_eq!(other.read(n, "/ct/t1").unwrap(), b"in-tx");
    assert_eq!(xs.next_event(T).unwrap(), ev("/ct/t1", "tok"));
    // Aborted.
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "/ct/t2", b"x").unwrap();
    xs.transaction_end(tx, false).unwrap();
    assert!(!xs.exists(n, "/ct/t2").unwrap());
    assert_eq!(refused(xs.transaction_end(tx, true)), Errno::ENOENT);
    // Conflict.
    let tx = xs.transaction_start().unwrap();
    xs.read(tx, "/ct/t1").unwrap();
    other.write(n, "/ct/t1", b"outside").unwrap();
    xs.write(tx, "/ct/t3", b"x").unwrap();
    assert_eq!(refused(xs.transaction_end(tx, true)), Errno::EAGAIN);
    assert!(!xs.exists(n, "/ct/t3").unwrap());
    // The helper retries on EAGAIN.
    let mut attempts = 0;
    let got = transaction(&xs, |tx| {
        attempts += 1;
        let v = xs.read(tx, "/ct/t1")?;
        if attempts == 1 {
            other.write(Tx::NONE, "/ct/t1", b"again")?;
        }
        xs.write(tx, "/ct/t4", &v)?;
        Ok(v)
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(got, b"again");
    assert_eq!(xs.read(n, "/ct/t4").unwrap(), b"again");
    // The helper gives the body's error back and leaves nothing behind.
    let e = transaction(&xs, |tx| {
        xs.write(tx, "/ct/t5", b"x")?;
        xs.read(tx, "/ct/missing")
    });
    assert_eq!(e.unwrap_err().errno(), Some(Errno::ENOENT));
    assert!(!xs.exists(n, "/ct/t5").unwrap());
    while xs.next_event(SHORT).unwrap().is_some() {}
    xs.unwatch("/ct", "tok").unwrap();
    assert_eq!(refused(xs.unwatch("/ct", "tok")), Errno::ENOENT);
    other.write(n, "/ct/after", b"v").unwrap();
    assert_eq!(xs.next_event(SHORT).unwrap(), None);

    // A guest.
    xs.request(
        MsgType::Introduce,
        n,
        format!("{GUEST}\x001\x001\0").as_bytes(),
    )
    .unwrap();
    let home = format!("/local/domain/{GUEST}");
    xs.mkdir(n, &home).unwrap();
    xs.set_perms(n, &home, &perms(&["n5"])).unwrap();
    let g = Connection::connect(&guest()).expect("connect guest");
    g.write(n, "rel", b"mine").unwrap();
    assert_eq!(g.read(n, &format!("{home}/rel")).unwrap(), b"mine");
    assert_eq!(g.get_perms(n, "rel").unwrap(), perms(&["n5"]));
    assert_eq!(g.read(n, "/ct/a").unwrap(), b"hello");
    assert_eq!(refused(g.write(n, "/ct/a", b"no")), Errno::EACCES);
    assert_eq!(refused(g.read(n, "/ct/t1")), Errno::EACCES);
    assert_eq!(
        refused(g.set_perms(n, "rel", &perms(&["n0"]))),
        Errno::EPERM
    );
    g.watch("rel", "g").unwrap();
    assert_eq!(g.next_event(T).unwrap(), ev("rel", "g"));
    xs.write(n, &format!("{home}/rel/sub"), b"x").unwrap();
    assert_eq!(g.next_event(T).unwrap(), ev("rel/sub", "g"));
    let gtx = g.transaction_start().unwrap();
    g.write(gtx, "rel/t", b"1").unwrap();
    g.transaction_end(gtx, true).unwrap();
    assert_eq!(g.next_event(T).unwrap(), ev("rel/t", "g"));
    xs.rm(n, "/ct").unwrap();
}

#[test]
fn client_against_our_server() {
    let mut xs = OurXenstored::start("xsclient");
    let g = xs.listen(GUEST);
    exercise(&xs.socket(), &|| g.clone());
}

#[test]
fn client_against_c_xenstored() {
    let c = RefXenstored::start();
    exercise(&c.socket(), &|| {
        let p = c.domain_socket(GUEST);
        wait_for(&p);
        p
    });
}

#[test]
fn client_sees_the_connection_close() {
    let mut xs = OurXenstored::start("xsclose");
    xs.server.introduce(9);
    let g = Connection::connect(&xs.listen(9)).unwrap();
    g.watch("/", "t").unwrap();
    assert!(g.next_event(T).unwrap().is_some());
    xs.server.release(9);
    assert!(matches!(g.next_event(T), Err(Error::Closed)));
    assert!(matches!(g.read(Tx::NONE, "/"), Err(Error::Closed)));
}

/// The watch descriptor is readable exactly while events wait for
/// `next_event`, and for good once the connection is closed.
#[test]
fn the_watch_fd_is_readable_while_events_wait() {
    use xenmq_runtime::xenstore::Pollable;
    let readable =
        |c: &Connection, wait: Duration| xenmq_sys::poll_in(c.watch_fd(), Some(wait)).unwrap();
    let mut xs = OurXenstored::start("xswatchfd");
    let d = Connection::connect(&xs.socket()).unwrap();
    assert!(
        !readable(&d, Duration::from_millis(50)),
        "no watch, no event"
    );
    d.write(Tx::NONE, "/wfd", b"1").unwrap();
    d.watch("/wfd", "t").unwrap();
    // The event the watch fires when set, then two writes: three queued.
    d.write(Tx::NONE, "/wfd", b"2").unwrap();
    d.write(Tx::NONE, "/wfd", b"3").unwrap();
    for left in (0..3).rev() {
        // Waits for the event (the last ones may still be on their way).
        assert!(readable(&d, Duration::from_secs(5)), "{left} more to come");
        // Polling the descriptor does not take the events.
        assert!(readable(&d, Duration::ZERO));
        assert!(d.next_event(Some(Duration::ZERO)).unwrap().is_some());
    }
    assert!(
        !readable(&d, Duration::from_millis(50)),
        "the queue is empty"
    );
    assert_eq!(d.next_event(Some(Duration::ZERO)).unwrap(), None);
    xs.server.introduce(9);
    let g = Connection::connect(&xs.listen(9)).unwrap();
    assert!(!readable(&g, Duration::from_millis(20)));
    xs.server.release(9);
    assert!(
        readable(&g, Duration::from_secs(5)),
        "a closed connection wakes the poller"
    );
    assert!(matches!(g.next_event(T), Err(Error::Closed)));
    assert!(readable(&g, Duration::ZERO), "and stays readable");
}

/// A transport with no shutdown of its own (`/dev/xen/xenbus`, played here
/// by one end of a socket pair that nobody shuts down): a plain client's
/// reader thread stays blocked in `read` after the client is dropped,
/// holding the transport open; a cancellable client's thread ends with the
/// client, and every handle of the transport is closed.
#[test]
fn a_cancellable_client_ends_its_reader_thread_when_dropped() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    // Whether the client end of the transport is fully closed within
    // `wait`, as seen from the server end.
    let closed = |server: &mut UnixStream, wait: Duration| {
        server.set_read_timeout(Some(wait)).unwrap();
        matches!(server.read(&mut [0u8; 1]), Ok(0))
    };

    let (dev, mut server) = UnixStream::pair().unwrap();
    let plain = Connection::new(dev.try_clone().unwrap(), dev).unwrap();
    drop(plain);
    assert!(
        !closed(&mut server, Duration::from_millis(300)),
        "a plain client's reader still holds the transport"
    );

    let (dev, mut server) = UnixStream::pair().unwrap();
    let client = Connection::cancellable(dev.try_clone().unwrap(), dev).unwrap();
    drop(client);
    assert!(
        closed(&mut server, Duration::from_secs(10)),
        "the reader thread ended and closed its handle"
    );
}

/// A cancellable client is an ordinary client while it lives: it works
/// against our server over a socket it cannot shut down itself.
#[test]
fn a_cancellable_client_against_our_server() {
    use std::os::unix::net::UnixStream;
    let xs = OurXenstored::start("xscancel");
    let sock = UnixStream::connect(xs.socket()).unwrap();
    let c = Connection::cancellable(sock.try_clone().unwrap(), sock).unwrap();
    c.write(Tx::NONE, "/cancel/a", b"1").unwrap();
    c.watch("/cancel", "w").unwrap();
    assert_eq!(c.next_event(T).unwrap(), ev("/cancel", "w"));
    assert_eq!(c.read(Tx::NONE, "/cancel/a").unwrap(), b"1");
}
