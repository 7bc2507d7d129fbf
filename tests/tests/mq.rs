//! Named message queues on the simulator, domains as threads of this
//! process: the three patterns, permissions, fingerprints, quotas and
//! backpressure, departures, late receivers, removal.

use std::time::Duration;

use xenmq::grant::DomId;
use xenmq::mq::Error as QError;
use xenmq_runtime::device::Env;
use xenmq_runtime::mq::{self, Delivery, Error, Mode, Receiver, Sender, Spec};
use xenmq_runtime::sim::{Domain, Host};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::mq::Seq;
use xenmq_tests::{run_dir, RunDir};

type SimEnv = Env<Connection, Domain, Domain>;
type Tx = Sender<Seq, Connection, Domain, Domain>;
type Rx = Receiver<Seq, Connection, Domain, Domain>;

struct Fixture {
    host: Host,
    dir: RunDir,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = run_dir(tag);
        let host = Host::with_xenstored(&dir).expect("start host");
        Fixture { host, dir }
    }
    fn guest(&self) -> DomId {
        self.host.create_domain("guest").expect("create")
    }
    fn env(&self, domid: DomId) -> SimEnv {
        let dom = Domain::connect(&self.dir, domid).expect("connect");
        let store = Connection::connect(&dom.store_path()).expect("store");
        Env::new(store, dom.clone(), dom)
    }
    fn create(&self, name: &str, capacity: u32, mode: Mode, s: Vec<DomId>, r: Vec<DomId>) {
        let spec = Spec::new::<Seq>(name, capacity, mode, s, r).unwrap();
        mq::create(&self.env(0).store, &spec).unwrap();
    }
}

fn msg(seq: u64, claimed: u64) -> Seq {
    Seq { seq, claimed }
}

const T: Option<Duration> = Some(Duration::from_secs(10));

fn queue_err(e: Error) -> QError {
    match e {
        Error::Queue(q) => q,
        other => panic!("not a queue error: {other:?}"),
    }
}

#[test]
fn many_senders_one_receiver_with_true_senders() {
    let f = Fixture::new("mq-fanin");
    let (a, b) = (f.guest(), f.guest());
    f.create("in", 64, Mode::FanOut, vec![a, b], vec![0]);
    let mut rx = Rx::open(f.env(0), "in").unwrap();
    let mut ta = Tx::open(f.env(a), "in").unwrap();
    let mut tb = Tx::open(f.env(b), "in").unwrap();
    let n = 1000u64;
    let ha = std::thread::spawn(move || {
        for i in 0..n {
            ta.send(&msg(i, 999)).unwrap();
        }
        ta
    });
    let hb = std::thread::spawn(move || {
        for i in 0..n {
            tb.send(&msg(i, 999)).unwrap();
        }
        tb
    });
    let mut next = std::collections::BTreeMap::new();
    for _ in 0..2 * n {
        let got = rx.recv_timeout(T).unwrap();
        assert!(got.from == a || got.from == b);
        let e = next.entry(got.from).or_insert(0u64);
        assert_eq!(got.msg.seq, *e, "per-sender order from dom{}", got.from);
        *e += 1;
    }
    let (ta, tb) = (ha.join().unwrap(), hb.join().unwrap());
    assert_eq!((ta.sent(), tb.sent()), (n, n));
    assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![n, n]);
}

#[test]
fn fan_out_gives_every_receiver_every_message() {
    let f = Fixture::new("mq-fanout");
    let (r1, r2) = (f.guest(), f.guest());
    f.create("out", 16, Mode::FanOut, vec![0], vec![r1, r2]);
    let mut x1 = Rx::open(f.env(r1), "out").unwrap();
    let mut x2 = Rx::open(f.env(r2), "out").unwrap();
    let mut tx = Tx::open(f.env(0), "out").unwrap();
    assert_eq!(tx.receivers().len(), 2);
    let h = std::thread::spawn(move || {
        for i in 0..500 {
            tx.send(&msg(i, 0)).unwrap();
        }
        tx
    });
    let h2 = std::thread::spawn(move || {
        (0..500)
            .map(|_| x2.recv_timeout(T).unwrap().msg.seq)
            .collect::<Vec<_>>()
    });
    let got1: Vec<u64> = (0..500)
        .map(|_| x1.recv_timeout(T).unwrap().msg.seq)
        .collect();
    assert_eq!(got1, (0..500).collect::<Vec<_>>());
    assert_eq!(h2.join().unwrap(), got1);
    drop(h.join().unwrap());
}

#[test]
fn competing_receivers_get_each_message_once() {
    let f = Fixture::new("mq-compete");
    let (r1, r2) = (f.guest(), f.guest());
    f.create("work", 8, Mode::Compete, vec![0], vec![r1, r2]);
    let x1 = Rx::open(f.env(r1), "work").unwrap();
    let x2 = Rx::open(f.env(r2), "work").unwrap();
    let mut tx = Tx::open(f.env(0), "work").unwrap();
    let n = 400u64;
    let take = |mut x: Rx| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(r) = x.recv_timeout(Some(Duration::from_millis(500))) {
                got.push(r.msg.seq);
            }
            got
        })
    };
    let (h1, h2) = (take(x1), take(x2));
    for i in 0..n {
        tx.send_timeout(&msg(i, 0), T).unwrap();
    }
    let (g1, g2) = (h1.join().unwrap(), h2.join().unwrap());
    assert!(
        !g1.is_empty() && !g2.is_empty(),
        "both worked: {} {}",
        g1.len(),
        g2.len()
    );
    assert!(g1.windows(2).all(|w| w[0] < w[1]) && g2.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = g1.into_iter().chain(g2).collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}

#[test]
fn refusals_name_the_queue_and_the_reason() {
    let f = Fixture::new("mq-refuse");
    let (s, outsider) = (f.guest(), f.guest());
    f.create("q", 8, Mode::FanOut, vec![s], vec![0]);
    // Missing queue.
    match queue_err(Tx::open(f.env(s), "nope").err().unwrap()) {
        QError::NoQueue { name } => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
    // An outsider: the store refuses it the queue's node.
    let e = queue_err(Tx::open(f.env(outsider), "q").err().unwrap());
    assert!(
        matches!(&e, QError::NotPermitted { name, domid, .. } if name == "q" && *domid == outsider),
        "{e:?}"
    );
    assert!(e.to_string().contains("xenstore's permissions"), "{e}");
    // And it cannot publish a channel by writing the nodes itself.
    let env = f.env(outsider);
    use xenmq::xenstore::{Store, Tx as XTx};
    assert!(env
        .store
        .write(XTx::NONE, "/xenmq/mq/q/sender/9/0/ring-ref", b"1")
        .is_err());
    // A listed sender may not receive.
    let e = queue_err(Rx::open(f.env(s), "q").err().unwrap());
    assert!(matches!(e, QError::NotPermitted { .. }), "{e:?}");
    // Another message type.
    #[xenmq::message]
    struct Other {
        seq: u64,
        claimed: u32,
        pad: u32,
    }
    let e = Sender::<Other, _, _, _>::open(f.env(s), "q").err().unwrap();
    assert!(matches!(queue_err(e), QError::Fingerprint { name, .. } if name == "q"));
    // A bad name.
    assert!(matches!(
        queue_err(Tx::open(f.env(s), "../x").err().unwrap()),
        QError::BadName { .. }
    ));
    // Malformed nodes are rejected, not trusted.
    let dom0 = f.env(0);
    dom0.store
        .write(XTx::NONE, "/xenmq/mq/q/quota", b"lots")
        .unwrap();
    let e = queue_err(Tx::open(f.env(s), "q").err().unwrap());
    assert!(
        matches!(&e, QError::Malformed { key, .. } if key == "quota"),
        "{e:?}"
    );
    // Creating twice fails.
    let spec = Spec::new::<Seq>("q", 8, Mode::FanOut, vec![s], vec![0]).unwrap();
    assert!(mq::create(&dom0.store, &spec).is_err());
    // A guest may not create queues.
    let spec = Spec::new::<Seq>("mine", 8, Mode::FanOut, vec![s], vec![0]).unwrap();
    assert!(matches!(
        queue_err(mq::create(&f.env(s).store, &spec).err().unwrap()),
        QError::NotPermitted { domid, .. } if domid == s
    ));
}

#[test]
fn backpressure_is_a_typed_error_or_a_wait_never_a_drop() {
    let f = Fixture::new("mq-full");
    let s = f.guest();
    f.create("q", 4, Mode::FanOut, vec![s], vec![0]);
    let mut tx = Tx::open(f.env(s), "q").unwrap();
    // No receiver yet.
    assert!(matches!(
        queue_err(tx.try_send(&msg(0, 0)).err().unwrap()),
        QError::NoReceiver { .. }
    ));
    let mut rx = Rx::open(f.env(0), "q").unwrap();
    for i in 0..4 {
        tx.try_send(&msg(i, 0)).unwrap();
    }
    match queue_err(tx.try_send(&msg(4, 0)).err().unwrap()) {
        QError::Full { name, quota } => assert_eq!((name.as_str(), quota), ("q", 4)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        queue_err(
            tx.send_timeout(&msg(4, 0), Some(Duration::from_millis(50)))
                .err()
                .unwrap()
        ),
        QError::Timeout { .. }
    ));
    // A blocked send goes through once the receiver takes one.
    let h = std::thread::spawn(move || {
        tx.send_timeout(&msg(4, 0), T).unwrap();
        tx
    });
    std::thread::sleep(Duration::from_millis(50));
    let got: Vec<u64> = (0..5)
        .map(|_| rx.recv_timeout(T).unwrap().msg.seq)
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    drop(h.join().unwrap());
}

#[test]
fn a_departed_sender_is_drained_then_closed_and_late_receivers_start_now() {
    let f = Fixture::new("mq-depart");
    let s = f.guest();
    let r2 = f.guest();
    f.create("q", 16, Mode::FanOut, vec![s], vec![0, r2]);
    let mut rx = Rx::open(f.env(0), "q").unwrap();
    let mut tx = Tx::open(f.env(s), "q").unwrap();
    rx.refresh().unwrap();
    assert_eq!(rx.senders(), vec![s]);
    for i in 0..10 {
        tx.send(&msg(i, 0)).unwrap();
    }
    // A receiver joining now sees only what is sent from now on.
    let mut late = Rx::open(f.env(r2), "q").unwrap();
    tx.refresh().unwrap();
    assert_eq!(tx.receivers().len(), 2);
    tx.send(&msg(10, 0)).unwrap();
    assert_eq!(late.recv_timeout(T).unwrap().msg.seq, 10);
    drop(tx);
    // Everything published before leaving is delivered, then the channel closes.
    for i in 0..=10 {
        let d = rx.recv_event_timeout(T).unwrap().unwrap();
        assert_eq!(
            d,
            Delivery::Message {
                from: s,
                msg: msg(i, 0)
            }
        );
    }
    assert_eq!(
        rx.recv_event_timeout(T).unwrap(),
        Some(Delivery::Closed {
            from: s,
            fault: None
        })
    );
    assert!(rx.senders().is_empty());
    // The queue outlives its members: a sender opening again is served.
    let mut tx = Tx::open(f.env(s), "q").unwrap();
    tx.send(&msg(0, 0)).unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap().from, s);
    // Stat sees the members and counts.
    drop(tx);
    drop(late);
    let st = mq::stat(&f.env(0).store, "q").unwrap();
    assert_eq!(st.members.len(), 3);
    assert!(st.members.iter().any(|m| m.domid == s && m.count == 1));
    // Removed: the receiver drains, then learns it.
    mq::remove(&f.env(0).store, "q").unwrap();
    assert!(mq::list(&f.env(0).store).unwrap().is_empty());
    let e = loop {
        match rx.recv_event_timeout(T) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("timed out"),
            Err(e) => break e,
        }
    };
    assert!(matches!(queue_err(e), QError::Removed { .. }));
    drop(rx);
    let _ = &f.host;
}

#[test]
fn ping_pong_through_two_queues() {
    let f = Fixture::new("mq-pingpong");
    let (a, b) = (f.guest(), f.guest());
    f.create("ping", 8, Mode::FanOut, vec![a], vec![b]);
    f.create("pong", 8, Mode::FanOut, vec![b], vec![a]);
    let (b_rx, b_tx) = (f.env(b), f.env(b));
    let echo = std::thread::spawn(move || {
        let mut rx = Rx::open(b_rx, "ping").unwrap();
        let mut tx = Tx::open(b_tx, "pong").unwrap();
        for _ in 0..100 {
            let got = rx.recv_timeout(T).unwrap();
            tx.send_timeout(&got.msg, T).unwrap();
        }
        // Every answer is acknowledged without another `recv`.
        tx.sync(T).unwrap();
    });
    let mut rx = Rx::open(f.env(a), "pong").unwrap();
    let mut tx = Tx::open(f.env(a), "ping").unwrap();
    for i in 0..100 {
        tx.send_timeout(&msg(i, 0), T).unwrap();
        assert_eq!(rx.recv_timeout(T).unwrap().msg.seq, i);
    }
    echo.join().unwrap();
}

#[test]
fn queued_messages_go_out_on_flush_or_drop() {
    let f = Fixture::new("mq-queue");
    let s = f.guest();
    f.create("q", 64, Mode::FanOut, vec![s], vec![0]);
    let mut rx = Rx::open(f.env(0), "q").unwrap();
    let mut tx = Tx::open(f.env(s), "q").unwrap();
    rx.refresh().unwrap();
    for i in 0..3 {
        tx.queue(&msg(i, 0)).unwrap();
    }
    // Not published yet.
    assert_eq!(rx.try_recv_event().unwrap(), None);
    tx.flush().unwrap();
    for i in 0..3 {
        assert_eq!(rx.recv_timeout(T).unwrap().msg.seq, i);
    }
    // A sender dropped with messages queued publishes them first.
    tx.queue(&msg(3, 0)).unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(T).unwrap().msg.seq, 3);
}

#[test]
fn a_member_hiding_its_node_hurts_only_itself() {
    let f = Fixture::new("mq-hide");
    let (good, bad, r1, r2) = (f.guest(), f.guest(), f.guest(), f.guest());
    f.create("q", 16, Mode::FanOut, vec![good, bad], vec![r1, r2]);
    use xenmq::xenstore::perms::{Mode as P, Perms};
    use xenmq::xenstore::{Store, Tx as XTx};
    // Members may change the permissions of the nodes they own.
    let hide = |domid: DomId, node: &str| {
        let perms = Perms::new(u32::from(domid), P::None);
        f.env(domid)
            .store
            .set_perms(XTx::NONE, node, &perms)
            .unwrap();
    };
    let mut rx = Rx::open(f.env(r1), "q").unwrap();
    // A receiver that hides its generation from the senders...
    let _r2 = Rx::open(f.env(r2), "q").unwrap();
    hide(r2, &format!("/xenmq/mq/q/receiver/{r2}"));
    hide(r2, &format!("/xenmq/mq/q/receiver/{r2}/generation"));
    // ... and a sender that hides its channels from the receivers.
    let mut tb = Tx::open(f.env(bad), "q").unwrap();
    hide(bad, &format!("/xenmq/mq/q/sender/{bad}"));
    for child in [
        "/sent",
        "/{r1}",
        "/{r1}/ring-ref",
        "/{r1}/event-channel",
        "/{r1}/generation",
    ] {
        hide(
            bad,
            &format!(
                "/xenmq/mq/q/sender/{bad}{}",
                child.replace("{r1}", &r1.to_string())
            ),
        );
    }
    let mut tg = Tx::open(f.env(good), "q").unwrap();
    assert_eq!(tg.receivers(), vec![r1], "the hidden receiver is skipped");
    tg.send_timeout(&msg(1, 0), T).unwrap();
    let _ = tb.try_send(&msg(2, 0));
    // The receiver still serves the sender it can see.
    let got = rx.recv_timeout(T).unwrap();
    assert_eq!((got.from, got.msg.seq), (good, 1));
}
