//! The simulated hypervisor with domains as threads of this process: grant
//! tables, event channels, domain death and hostile control messages.

use std::time::Duration;

use xenmq::evtchn::{self, Channel as _, Events, Status};
use xenmq::grant::{self, Access, Grants, Pages, Shared as _, PAGE_SIZE};
use xenmq_runtime::sim::{fault, proto, Code, Domain, Faults, Host};
use xenmq_tests::{run_dir, RunDir};

struct Fixture {
    host: Host,
    dir: RunDir,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = run_dir(tag);
        let host = Host::start(&dir).expect("start host");
        Fixture { host, dir }
    }
    fn dom0(&self) -> Domain {
        Domain::connect(&self.dir, 0).expect("connect dom0")
    }
    fn guest(&self, name: &str) -> (u16, Domain) {
        let id = self.host.create_domain(name).expect("create domain");
        (id, Domain::connect(&self.dir, id).expect("connect guest"))
    }
}

#[test]
fn share_map_and_see_each_others_writes() {
    let f = Fixture::new("share");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let shared = guest.share(0, 3, Access::ReadWrite).unwrap();
    assert_eq!(shared.refs().len(), 3);
    assert!(shared.refs().iter().all(|&r| r >= proto::FIRST_GREF));
    assert_eq!(shared.pages(), 3);
    // Fresh pages are zero.
    let mut buf = [0xffu8; 16];
    shared.read(2 * PAGE_SIZE, &mut buf).unwrap();
    assert_eq!(buf, [0; 16]);

    // Map in reverse order: the mapping follows the refs' order.
    let rev: Vec<u32> = shared.refs().iter().rev().copied().collect();
    let mapped = dom0.map(id, &rev, Access::ReadWrite).unwrap();
    assert_eq!(mapped.pages(), 3);
    shared.write(0, b"first page").unwrap();
    shared.write(2 * PAGE_SIZE + 5, b"third page").unwrap();
    let mut got = [0u8; 10];
    mapped.read(2 * PAGE_SIZE, &mut got).unwrap();
    assert_eq!(&got, b"first page");
    mapped.read(5, &mut got).unwrap();
    assert_eq!(&got, b"third page");
    mapped.write(PAGE_SIZE, b"from dom0").unwrap();
    let mut back = [0u8; 9];
    shared.read(PAGE_SIZE, &mut back).unwrap();
    assert_eq!(&back, b"from dom0");
    assert!(mapped.read(3 * PAGE_SIZE - 1, &mut [0u8; 2]).is_err());

    assert_eq!(f.host.grant(id, shared.refs()[0]).unwrap().maps, 1);
    drop(mapped);
    assert_eq!(f.host.grant(id, shared.refs()[0]).unwrap().maps, 0);
    let first = shared.refs()[0];
    shared.end_access().unwrap();
    assert!(f.host.grant(id, first).is_none());
}

#[test]
fn map_checks_the_grant_entry() {
    let f = Fixture::new("check");
    let dom0 = f.dom0();
    let (a, ga) = f.guest("a");
    let (b, gb) = f.guest("b");
    let to_b = ga.share(b, 1, Access::ReadOnly).unwrap();
    let r = to_b.refs()[0];
    // Granted to b, not to dom0.
    assert_eq!(
        dom0.map(a, &[r], Access::ReadOnly).unwrap_err(),
        grant::Error::BadRef { domid: a, gref: r }
    );
    // Read-only grant: a read-write map is refused, a read-only one works.
    assert_eq!(
        gb.map(a, &[r], Access::ReadWrite).unwrap_err(),
        grant::Error::ReadOnly { domid: a, gref: r }
    );
    let ro = gb.map(a, &[r], Access::ReadOnly).unwrap();
    to_b.write(0, b"x").unwrap();
    let mut x = [0u8];
    ro.read(0, &mut x).unwrap();
    assert_eq!(&x, b"x");
    // Wrong granting domain, unknown refs, a domain that does not exist.
    assert!(matches!(
        gb.map(0, &[r], Access::ReadOnly),
        Err(grant::Error::BadRef { .. })
    ));
    assert!(matches!(
        gb.map(a, &[r + 1000], Access::ReadOnly),
        Err(grant::Error::BadRef { .. })
    ));
    assert_eq!(
        gb.map(77, &[r], Access::ReadOnly).unwrap_err(),
        grant::Error::NoDomain(77)
    );
    // Counts: zero and huge are refused before anything is allocated.
    assert!(matches!(
        gb.map(a, &[], Access::ReadOnly),
        Err(grant::Error::BadCount { .. })
    ));
    assert!(matches!(
        ga.share(b, 0, Access::ReadOnly),
        Err(grant::Error::BadCount { .. })
    ));
    assert!(matches!(
        ga.share(b, 1 << 30, Access::ReadOnly),
        Err(grant::Error::BadCount { .. })
    ));
    assert!(matches!(
        ga.share(0x7ff0, 1, Access::ReadOnly),
        Err(grant::Error::NoDomain(_))
    ));
    // One bad ref spoils the whole request, and maps nothing.
    assert!(gb.map(a, &[r, 5], Access::ReadOnly).is_err());
    assert_eq!(f.host.grant(a, r).unwrap().maps, 1);
    drop(ro);
}

#[test]
fn end_access_while_mapped_fails_and_drop_defers() {
    let f = Fixture::new("defer");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let shared = guest.share(0, 2, Access::ReadWrite).unwrap();
    let refs = shared.refs().to_vec();
    let mapped = dom0.map(id, &refs, Access::ReadWrite).unwrap();

    // XSA-396: access cannot end while dom0 maps the pages.
    let (shared, err) = shared.end_access().unwrap_err();
    assert_eq!(err, grant::Error::StillMapped);
    assert!(f.host.grant(id, refs[0]).is_some());

    // Dropping it defers the release: the grant stays, the pages are kept.
    drop(shared);
    assert_eq!(guest.deferred(), 2);
    assert_eq!(guest.deferred_total(), 2);
    assert!(f.host.grant(id, refs[1]).is_some());
    assert_eq!(guest.reclaim(), 0);
    // The peer's mapping is still the same memory and still works.
    mapped.write(0, b"late").unwrap();

    drop(mapped);
    assert_eq!(guest.reclaim(), 2);
    assert_eq!(guest.deferred(), 0);
    assert!(f.host.grant(id, refs[0]).is_none());
    assert_eq!(guest.deferred_total(), 2);
}

#[test]
fn event_channels_notify_and_wait() {
    let f = Fixture::new("evtchn");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let back = dom0.alloc_unbound(id).unwrap();
    assert_eq!(back.status().unwrap(), Status::Unbound { remote: id });
    // Notifying an unbound port is dropped silently.
    back.notify().unwrap();
    let front = guest.bind_interdomain(0, back.port()).unwrap();
    assert_eq!(
        front.status().unwrap(),
        Status::Interdomain {
            remote: 0,
            remote_port: back.port()
        }
    );
    assert_eq!(
        back.status().unwrap(),
        Status::Interdomain {
            remote: id,
            remote_port: front.port()
        }
    );
    // A second bind to the same port fails.
    assert!(matches!(
        guest.bind_interdomain(0, back.port()),
        Err(evtchn::Error::BadPort { .. })
    ));

    assert!(!front.poll().unwrap());
    assert!(!front.wait(Some(Duration::from_millis(20))).unwrap());
    back.notify().unwrap();
    back.notify().unwrap();
    // Coalesced: one wake-up, then nothing.
    assert!(front.wait(Some(Duration::from_secs(5))).unwrap());
    assert!(!front.poll().unwrap());

    // Blocking wait in another thread, woken by a notify.
    let waiter = std::thread::spawn(move || {
        let r = front.wait(None);
        (front, r)
    });
    std::thread::sleep(Duration::from_millis(30));
    back.notify().unwrap();
    let (front, r) = waiter.join().unwrap();
    assert!(r.unwrap());

    front.notify().unwrap();
    assert!(back.wait(Some(Duration::from_secs(5))).unwrap());

    // Close one end: the other sees it.
    drop(front);
    assert_eq!(back.status().unwrap(), Status::Closed);
    assert_eq!(back.notify().unwrap_err(), evtchn::Error::PeerClosed);
    // The closure wakes the waiter once, then reports the closed peer.
    let _ = back.wait(Some(Duration::from_secs(5)));
    assert_eq!(
        back.wait(Some(Duration::from_millis(10))).unwrap_err(),
        evtchn::Error::PeerClosed
    );
}

#[test]
fn binding_is_checked() {
    let f = Fixture::new("bind");
    let dom0 = f.dom0();
    let (a, ga) = f.guest("a");
    let (_b, gb) = f.guest("b");
    let for_a = dom0.alloc_unbound(a).unwrap();
    // Reserved for a, so b cannot bind it.
    assert!(matches!(
        gb.bind_interdomain(0, for_a.port()),
        Err(evtchn::Error::BadPort { .. })
    ));
    assert!(matches!(
        ga.bind_interdomain(0, 999),
        Err(evtchn::Error::BadPort { .. })
    ));
    assert!(matches!(
        ga.bind_interdomain(99, 1),
        Err(evtchn::Error::NoDomain(99))
    ));
    let ch = ga.bind_interdomain(0, for_a.port()).unwrap();
    assert_eq!(
        ch.status().unwrap(),
        Status::Interdomain {
            remote: 0,
            remote_port: for_a.port()
        }
    );
}

#[test]
fn a_dead_domain_is_released() {
    let f = Fixture::new("death");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let shared = guest.share(0, 1, Access::ReadWrite).unwrap();
    let gref = shared.refs()[0];
    let mapped = dom0.map(id, &[gref], Access::ReadWrite).unwrap();
    let back = dom0.alloc_unbound(id).unwrap();
    let front = guest.bind_interdomain(0, back.port()).unwrap();
    shared.write(0, b"alive").unwrap();

    // The guest crashes, its objects never released by their owner.
    std::mem::forget(shared);
    drop(front);
    drop(guest);
    f.host.kill_domain(id).unwrap();
    assert!(f.host.wait_gone(id, Duration::from_secs(5)));
    assert!(!f.dir.join("domain").join(id.to_string()).exists());

    // The grant is revoked but dom0's mapping is still valid memory.
    assert!(f.host.grant(id, gref).is_none());
    let mut buf = [0u8; 5];
    mapped.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"alive");
    mapped.write(0, b"still").unwrap();
    assert!(dom0.map(id, &[gref], Access::ReadWrite).is_err());
    assert_eq!(back.status().unwrap(), Status::Closed);
    assert_eq!(back.notify().unwrap_err(), evtchn::Error::PeerClosed);
    assert!(f.host.domains().iter().all(|d| d.domid != id));
    // Connecting there fails, and the id is not given again at once.
    assert!(Domain::connect(&f.dir, id).is_err());
    assert_ne!(f.host.create_domain("next").unwrap(), id);
}

#[test]
fn a_guest_takes_many_connections_and_outlives_them() {
    let f = Fixture::new("many");
    let dom0 = f.dom0();
    let (id, first) = f.guest("front");
    let second = Domain::connect(&f.dir, id).unwrap();
    let processes = || {
        f.host
            .domains()
            .into_iter()
            .find(|d| d.domid == id)
            .map(|d| d.processes)
    };
    assert_eq!(processes(), Some(2));
    // Both are the domain: dom0 maps what either shares.
    let a = first.share(0, 1, Access::ReadWrite).unwrap();
    let b = second.share(0, 1, Access::ReadWrite).unwrap();
    drop(dom0.map(id, a.refs(), Access::ReadWrite).unwrap());
    drop(dom0.map(id, b.refs(), Access::ReadWrite).unwrap());
    drop(a);
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while processes() != Some(1) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(processes(), Some(1));
    assert!(f.host.grant(id, b.refs()[0]).is_some());
    drop(b);
    drop(second);
    // With no process left the domain is still there, and takes another.
    let third = Domain::connect(&f.dir, id).unwrap();
    assert!(third.share(0, 1, Access::ReadOnly).is_ok());
}

#[test]
fn toolstack_ops_are_dom0_only() {
    let f = Fixture::new("dom0only");
    let dom0 = f.dom0();
    let id = dom0.create_domain("guest-1").unwrap();
    let guest = Domain::connect(&f.dir, id).unwrap();
    let denied = |e: xenmq_runtime::sim::Error| matches!(e, xenmq_runtime::sim::Error::Refused(r) if r.code == Code::Denied);
    assert!(denied(guest.create_domain("x").unwrap_err()));
    assert!(denied(guest.destroy_domain(0).unwrap_err()));
    assert!(denied(guest.domains().unwrap_err()));
    assert!(dom0.create_domain("bad name/with slash").is_err());
    assert!(dom0.create_domain("").is_err());
    let list = dom0.domains().unwrap();
    assert!(list
        .iter()
        .any(|d| d.domid == id && d.name == "guest-1" && d.attached));
    dom0.destroy_domain(id).unwrap();
    assert!(f.host.wait_gone(id, Duration::from_secs(5)));
    // The guest's connection was cut.
    assert!(guest.share(0, 1, Access::ReadOnly).is_err());
}

#[test]
fn hostile_control_messages_get_error_replies() {
    let f = Fixture::new("hostile");
    let (a, ga) = f.guest("a");
    let (_b, gb) = f.guest("b");
    let secret = ga.share(0, 1, Access::ReadWrite).unwrap();
    let frame = |body: &[u8]| {
        let mut v = (body.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    let code = |reply: Vec<u8>| Code::from_u8(reply[0]);
    // Empty body, unknown op, truncated fields.
    assert_eq!(
        code(gb.raw_request(&frame(&[])).unwrap()),
        Some(Code::Malformed)
    );
    assert_eq!(
        code(gb.raw_request(&frame(&[200])).unwrap()),
        Some(Code::UnknownOp)
    );
    assert_eq!(
        code(gb.raw_request(&frame(&[proto::op::MAP, 1])).unwrap()),
        Some(Code::Malformed)
    );
    // A map claiming 4 billion refs, and one claiming 2 but carrying 1.
    let mut huge = vec![proto::op::MAP];
    huge.extend_from_slice(&a.to_le_bytes());
    huge.push(1);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        code(gb.raw_request(&frame(&huge)).unwrap()),
        Some(Code::BadCount)
    );
    let mut short = vec![proto::op::MAP];
    short.extend_from_slice(&a.to_le_bytes());
    short.push(1);
    short.extend_from_slice(&2u32.to_le_bytes());
    short.extend_from_slice(&secret.refs()[0].to_le_bytes());
    assert_eq!(
        code(gb.raw_request(&frame(&short)).unwrap()),
        Some(Code::Malformed)
    );
    // Another domain's grant (made for dom0): refused.
    let mut steal = vec![proto::op::MAP];
    steal.extend_from_slice(&a.to_le_bytes());
    steal.push(0);
    steal.extend_from_slice(&1u32.to_le_bytes());
    steal.extend_from_slice(&secret.refs()[0].to_le_bytes());
    assert_eq!(
        code(gb.raw_request(&frame(&steal)).unwrap()),
        Some(Code::BadRef)
    );
    // Ending access to someone else's grant, closing someone else's port.
    let mut end = vec![proto::op::END_ACCESS];
    end.extend_from_slice(&1u32.to_le_bytes());
    end.extend_from_slice(&secret.refs()[0].to_le_bytes());
    assert_eq!(
        code(gb.raw_request(&frame(&end)).unwrap()),
        Some(Code::BadRef)
    );
    let port = ga.alloc_unbound(0).unwrap();
    let mut close = vec![proto::op::CLOSE];
    close.extend_from_slice(&port.port().to_le_bytes());
    assert_eq!(
        code(gb.raw_request(&frame(&close)).unwrap()),
        Some(Code::BadPort)
    );
    // A poke from a guest.
    assert_eq!(
        code(gb.raw_request(&frame(&[proto::op::POKE, 0, 0])).unwrap()),
        Some(Code::Denied)
    );
    // The connection still works after all that.
    assert!(f.host.grant(a, secret.refs()[0]).is_some());
    let mine = gb.share(a, 1, Access::ReadOnly).unwrap();
    assert_eq!(mine.refs().len(), 1);
    // An oversized frame is refused, then the host hangs up (the stream
    // cannot be resynchronised).
    let big = (proto::MAX_FRAME as u32 + 1).to_le_bytes();
    assert_eq!(code(gb.raw_request(&big).unwrap()), Some(Code::BadCount));
}

#[test]
fn notification_faults_repeat_under_a_seed() {
    fn pattern(seed: u64) -> Vec<bool> {
        let f = Fixture::new("faults");
        let dom0 = f.dom0();
        let id = f.host.create_domain("front").unwrap();
        f.host
            .set_faults(
                id,
                Faults {
                    seed,
                    drop: 500,
                    ..Faults::default()
                },
            )
            .unwrap();
        let guest = Domain::connect(&f.dir, id).unwrap();
        let back = dom0.alloc_unbound(id).unwrap();
        let front = guest.bind_interdomain(0, back.port()).unwrap();
        (0..64)
            .map(|_| {
                front.notify().unwrap();
                back.poll().unwrap()
            })
            .collect()
    }
    let a = pattern(42);
    assert_eq!(a, pattern(42));
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
    assert_ne!(a, pattern(43));
}

#[test]
fn fault_plans_are_deterministic() {
    let plan = Faults {
        seed: 7,
        drop: 200,
        duplicate: 200,
        delay: 200,
        delay_ms: 5,
        kill_at: None,
    };
    let run = |port| {
        let mut n = fault::NotifyFaults::for_port(plan, port);
        (0..100).map(|_| n.fate()).collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    let seq = run(3);
    for fate in [
        fault::Fate::Drop,
        fault::Fate::Duplicate,
        fault::Fate::Deliver,
        fault::Fate::Delay(Duration::from_millis(5)),
    ] {
        assert!(seq.contains(&fate), "{fate:?} missing");
    }
    assert_eq!(fault::corruption(9, &[0, 8]), fault::corruption(9, &[0, 8]));
}

#[test]
fn corrupting_a_grant_is_seen_by_the_mapper() {
    let f = Fixture::new("poke");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let shared = guest.share(0, 1, Access::ReadWrite).unwrap();
    let mapped = dom0.map(id, shared.refs(), Access::ReadOnly).unwrap();
    let written = f.host.corrupt(id, shared.refs()[0], 1234, &[0, 8]).unwrap();
    assert_eq!(written, fault::corruption(1234, &[0, 8]));
    for (off, val) in written {
        let mut b = [0u8; 4];
        mapped.read(off as usize, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), val);
        shared.read(off as usize, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), val);
    }
    dom0.poke(id, shared.refs()[0], 100, b"hostile").unwrap();
    let mut b = [0u8; 7];
    shared.read(100, &mut b).unwrap();
    assert_eq!(&b, b"hostile");
    assert!(dom0.poke(id, shared.refs()[0], 4090, b"too long").is_err());
    assert!(dom0.poke(id, 3, 0, b"x").is_err());
}

#[test]
fn kill_at_a_chosen_request() {
    let f = Fixture::new("killat");
    let id = f.host.create_domain("front").unwrap();
    // Request 1 is the connect probe; the domain dies on its 3rd request.
    f.host
        .set_faults(
            id,
            Faults {
                kill_at: Some(3),
                ..Faults::default()
            },
        )
        .unwrap();
    let guest = Domain::connect(&f.dir, id).unwrap();
    let first = guest.share(0, 1, Access::ReadWrite);
    assert!(first.is_ok());
    assert_eq!(
        guest.share(0, 1, Access::ReadWrite).unwrap_err(),
        grant::Error::Unavailable
    );
    assert!(f.host.wait_gone(id, Duration::from_secs(5)));
    drop(first);
}

#[test]
fn pages_expose_a_region() {
    let f = Fixture::new("region");
    let (_id, guest) = f.guest("front");
    let shared = guest.share(0, 2, Access::ReadWrite).unwrap();
    let region = shared.region();
    assert_eq!(region.len(), 2 * PAGE_SIZE);
    assert_eq!(region.as_ptr() as usize % PAGE_SIZE, 0);
}

#[test]
fn wait_any_reports_the_ready_channel() {
    let f = Fixture::new("waitany");
    let dom0 = f.dom0();
    let (id, guest) = f.guest("front");
    let b1 = dom0.alloc_unbound(id).unwrap();
    let b2 = dom0.alloc_unbound(id).unwrap();
    let f1 = guest.bind_interdomain(0, b1.port()).unwrap();
    let f2 = guest.bind_interdomain(0, b2.port()).unwrap();
    let chans = [&b1, &b2];
    assert_eq!(
        xenmq_runtime::sim::wait_any(&chans, Some(Duration::from_millis(10))).unwrap(),
        None
    );
    f2.notify().unwrap();
    assert_eq!(
        xenmq_runtime::sim::wait_any(&chans, Some(Duration::from_secs(5))).unwrap(),
        Some(1)
    );
    // Not consumed by wait_any; poll consumes it.
    assert!(b2.poll().unwrap());
    assert!(!b2.poll().unwrap());
    f1.notify().unwrap();
    assert_eq!(xenmq_runtime::sim::wait_any(&chans, None).unwrap(), Some(0));
}

#[test]
fn delayed_and_duplicated_notifications() {
    let f = Fixture::new("delay");
    let dom0 = f.dom0();
    let id = f.host.create_domain("front").unwrap();
    f.host
        .set_faults(
            id,
            Faults {
                seed: 1,
                delay: 1000,
                delay_ms: 150,
                ..Faults::default()
            },
        )
        .unwrap();
    let guest = Domain::connect(&f.dir, id).unwrap();
    let back = dom0.alloc_unbound(id).unwrap();
    let front = guest.bind_interdomain(0, back.port()).unwrap();
    let t = std::time::Instant::now();
    front.notify().unwrap();
    // Had it arrived at once, the wait would return at once.
    assert!(back.wait(Some(Duration::from_secs(5))).unwrap());
    assert!(
        t.elapsed() >= Duration::from_millis(145),
        "{:?}",
        t.elapsed()
    );

    // Duplicates coalesce in the counter, so the receiver still sees one
    // wake-up per read; what matters is that none is lost.
    f.host
        .set_faults(
            id,
            Faults {
                seed: 2,
                duplicate: 1000,
                ..Faults::default()
            },
        )
        .unwrap();
    let back2 = dom0.alloc_unbound(id).unwrap();
    let front2 = guest.bind_interdomain(0, back2.port()).unwrap();
    for _ in 0..10 {
        front2.notify().unwrap();
        assert!(back2.poll().unwrap());
    }
}

#[test]
fn seeded_garbage_on_the_control_socket_never_breaks_the_host() {
    let f = Fixture::new("garbage");
    let (a, ga) = f.guest("a");
    let (_b, gb) = f.guest("b");
    let keep = ga.share(0, 1, Access::ReadWrite).unwrap();
    let mut rng = fault::Rng::new(0x5eed);
    for _ in 0..3000 {
        let len = rng.below(64) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        if let Some(first) = body.first_mut() {
            // Mostly real ops, so the fields get exercised, not just the
            // unknown-op path.
            if rng.below(4) != 0 {
                *first =
                    [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, 23, 24, 25][rng.below(15) as usize];
            }
        }
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let reply = gb
            .raw_request(&frame)
            .expect("the host answers every frame");
        assert!(!reply.is_empty());
        assert!(
            reply[0] == 0 || Code::from_u8(reply[0]).is_some(),
            "{reply:?}"
        );
    }
    // The host and the other domain are unharmed.
    assert!(f.host.grant(a, keep.refs()[0]).is_some());
    let again = gb.share(a, 1, Access::ReadOnly).unwrap();
    assert_eq!(again.refs().len(), 1);
    let info = f.host.domains();
    assert!(info.iter().any(|d| d.domid == a));
}

#[test]
fn tables_are_bounded_per_domain() {
    let f = Fixture::new("bounds");
    let (_id, guest) = f.guest("greedy");
    let mut shares = Vec::new();
    let err = loop {
        match guest.share(0, 1, Access::ReadOnly) {
            Ok(s) => shares.push(s),
            Err(e) => break e,
        }
        assert!(shares.len() <= proto::MAX_SHARES, "no bound on shares");
    };
    assert_eq!(err, grant::Error::NoSpace);
    assert_eq!(shares.len(), proto::MAX_SHARES);
    // Freeing one makes room for one.
    shares.pop().unwrap().end_access().unwrap();
    shares.push(guest.share(0, 1, Access::ReadOnly).unwrap());
    drop(shares);

    let mut ports = Vec::new();
    let err = loop {
        match guest.alloc_unbound(0) {
            Ok(p) => ports.push(p),
            Err(e) => break e,
        }
        assert!(ports.len() <= proto::MAX_PORTS, "no bound on ports");
    };
    assert_eq!(err, evtchn::Error::NoSpace);
    assert_eq!(ports.len(), proto::MAX_PORTS);
}

#[test]
fn a_second_host_on_the_same_directory_is_refused() {
    let f = Fixture::new("twohosts");
    let err = Host::start(&f.dir).unwrap_err();
    assert!(
        matches!(err, xenmq_runtime::sim::Error::Listen { .. }),
        "{err:?}"
    );
    // The first host still works.
    let (id, _guest) = f.guest("front");
    assert!(f.host.domains().iter().any(|d| d.domid == id));
}
