//! The echo driver across processes on the simulator: a dom0 process
//! backing every echo device, guest processes pinging through the ring.
//! Either end is killed mid-stream; the survivor reconnects, every request
//! completes exactly once (answered, or failed with `Disconnected`), and
//! nothing leaks.

mod driver_support;

use driver_support::{eventually, field, World};
use xenmq::driver::Protocol;
use xenmq::ring::{Kind, Rings};
use xenmq_examples::echo::Echo;

#[test]
fn echo_across_processes_and_nothing_leaks() {
    let w = World::new("echo");
    let guest = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    back.expect(&format!("connected {guest} 0 1"));
    front.expect("progress");
    front.send("stop");
    let summary = front.expect("summary");
    assert_eq!(field(&summary, "lost"), 0);
    assert_eq!(field(&summary, "dup"), 0);
    assert_eq!(field(&summary, "ok"), field(&summary, "submitted"));
    front.expect("closed");
    // Closed, with the process still alive: it holds nothing.
    let me = w
        .info(guest)
        .unwrap_or_else(|| panic!("guest alive: {:?}", w.host.domains()));
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front.close_stdin();
    front.wait_success();
}

#[test]
fn backend_killed_mid_stream_then_restarted() {
    let w = World::new("bekill");
    let guest = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    front.expect("progress");
    back.kill();
    // What was in flight fails, once each; the frontend waits for a backend.
    front.expect("reconnecting");
    let mut back2 = w.spawn(0, &["echo-backends"]);
    back2.expect("ready");
    front.expect("reconnected");
    back2.expect(&format!("connected {guest} 0 1"));
    front.expect("progress");
    front.send("stop");
    let summary = front.expect("summary");
    let (sub, ok, lost) = (
        field(&summary, "submitted"),
        field(&summary, "ok"),
        field(&summary, "lost"),
    );
    assert_eq!(field(&summary, "dup"), 0, "{summary}");
    assert_eq!(
        ok + lost,
        sub,
        "every request completes exactly once: {summary}"
    );
    assert!(lost <= 16, "at most the in-flight window fails: {summary}");
    assert_eq!(field(&summary, "connects"), 2, "{summary}");
    front.expect("closed");
    let me = w.info(guest).expect("guest alive");
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front.close_stdin();
    front.wait_success();
}

#[test]
fn frontend_killed_mid_stream_backend_serves_the_next_guest() {
    let w = World::new("fekill");
    let dom0_ports = || w.info(0).map(|d| d.ports).unwrap_or(0);
    let guest = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let baseline = dom0_ports();
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    front.expect("progress");
    // The guest crashes with its frontend.
    w.host.kill_domain(guest).expect("kill the guest");
    front.kill();
    assert!(
        w.host.wait_gone(guest, driver_support::WAIT),
        "guest torn down"
    );
    // The backend lets go of the dead guest's ring and port.
    eventually("the backend closed its port", || dom0_ports() == baseline);

    // The same backend process serves a new guest.
    let guest2 = w.guest("echo");
    let mut front2 = w.spawn(guest2, &["echo-frontend"]);
    front2.expect("connected");
    back.expect(&format!("connected {guest2} 0 1"));
    front2.expect("progress");
    front2.send("stop");
    let summary = front2.expect("summary");
    assert_eq!(field(&summary, "ok"), field(&summary, "submitted"));
    front2.expect("closed");
    let me = w.info(guest2).expect("guest alive");
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front2.close_stdin();
    front2.wait_success();
    eventually("the backend closed its port", || dom0_ports() == baseline);
}

#[test]
fn a_frontend_corrupting_its_ring_is_closed_recovers_and_others_are_served() {
    let w = World::new("hostile");
    let guest = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    front.expect("progress");
    // Play the hostile guest: claim far more requests than the ring holds.
    let fe = format!("/local/domain/{guest}/device/echo/0");
    let be = format!("/local/domain/0/backend/echo/{guest}/0");
    let gref: u32 = w
        .xs_read(&format!("{fe}/ring-ref"))
        .unwrap()
        .parse()
        .unwrap();
    eventually("the backend reports the hostile ring", || {
        let _ = w.host.poke(guest, gref, 0, &0x4000_0000u32.to_le_bytes());
        w.xs_read(&format!("{be}/error")).is_some()
    });
    let error = w.xs_read(&format!("{be}/error")).unwrap();
    assert!(error.contains("producer index"), "{error}");
    // The backend closed the device; the frontend's standard reset brings
    // it back, on a new ring, and it is served again.
    front.expect("reconnected");
    front.expect("progress");
    front.kill();
    // The backend process survives and serves the next guest.
    let guest2 = w.guest("echo");
    let mut front2 = w.spawn(guest2, &["echo-frontend"]);
    front2.expect("connected");
    front2.expect("progress");
    front2.send("stop");
    let summary = front2.expect("summary");
    assert_eq!(field(&summary, "ok"), field(&summary, "submitted"));
}

#[test]
fn a_frontend_of_another_version_or_layout_is_told_why() {
    let w = World::new("mismatch");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    for (role, what) in [
        ("echo-v2-frontend", "version"),
        ("echo-layout-frontend", "fingerprint"),
        ("echo-ring-frontend", "ring layout"),
    ] {
        let guest = w.guest("echo");
        let mut front = w.spawn(guest, &[role]);
        let refused = front.expect("refused");
        assert!(
            refused.contains(&format!("protocol {what} mismatch")),
            "guest {guest}: {refused}; backend: {:?}; backend state {:?}",
            back.drain(),
            w.xs_read(&format!("/local/domain/0/backend/echo/{guest}/0/state"))
        );
        let node = w
            .xs_read(&format!("/local/domain/{guest}/device/echo/0/error"))
            .unwrap_or_default();
        assert!(node.contains(what), "error node: {node:?}");
        front.expect("closed");
        let me = w.info(guest).expect("guest alive");
        assert_eq!((me.grants, me.ports), (0, 0), "{me:?}");
        front.close_stdin();
        front.wait_success();
    }
    // The backend still serves a frontend that speaks its protocol.
    let guest = w.guest("echo");
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    front.expect("progress");
    front.send("stop");
    front.expect("summary");
}

/// Where the backend's producer index is in echo's ring: after req_prod
/// and req_event in ring.h's header, on the third cache line in the
/// native layout (see `xenmq::ring::native`).
const RSP_PROD: u32 = match <<Echo as Protocol>::Rings as Rings>::KIND {
    Kind::Compat => 8,
    Kind::Native => 128,
};

#[test]
fn a_backend_corrupting_the_ring_is_closed_by_the_frontend() {
    let w = World::new("hostile-be");
    let guest = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut front = w.spawn(guest, &["echo-frontend"]);
    front.expect("connected");
    front.expect("progress");
    // Play the hostile backend: claim more responses than requests.
    let fe = format!("/local/domain/{guest}/device/echo/0");
    let gref: u32 = w
        .xs_read(&format!("{fe}/ring-ref"))
        .unwrap()
        .parse()
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Keep poking until the frontend notices (it may overwrite nothing
        // here: the index is the backend's to write).
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = w
                    .host
                    .poke(guest, gref, RSP_PROD, &0x4000_0000u32.to_le_bytes());
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let refused = front.expect("refused");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(refused.contains("producer index"), "{refused}");
    });
    // Every request in flight failed once; the frontend released all.
    front.expect("closed");
    let lost = front.seen.iter().filter(|l| l.starts_with("lost")).count();
    assert!(lost <= 16, "{:?}", front.seen);
    let error = w.xs_read(&format!("{fe}/error")).unwrap_or_default();
    assert!(error.contains("producer index"), "error node: {error:?}");
    let me = w.info(guest).expect("guest alive");
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front.close_stdin();
    front.wait_success();
}
