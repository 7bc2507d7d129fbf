//! The full xenbus handshake between a frontend and a backend machine.
//!
//! Pure state-machine tests: the two machines talk through the in-memory
//! store of `xenbus_sim` (see its docs), not through a real Xenstore.

mod xenbus_sim;

use xenbus_sim::{Side, World, BE_DIR, FE_DIR};
use xenmq::xenbus::{Action, Error, Event, State};

fn connected_world(front_max: u8, back_max: u8) -> World {
    let mut w = World::new(front_max, back_max);
    w.start();
    w.run();
    assert!(w.connected(), "no connection: {:?}", w.errors);
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    w.assert_same_ring();
    w
}

#[test]
fn single_page_handshake_publishes_xen_keys() {
    let w = connected_world(0, 0);
    // BackMachine: identity, limits, instance.
    assert_eq!(w.key(Side::Back, "max-ring-page-order"), Some("0"));
    assert_eq!(w.key(Side::Back, "xenmq-protocol"), Some("vkv"));
    assert_eq!(w.key(Side::Back, "xenmq-version"), Some("1"));
    assert_eq!(
        w.key(Side::Back, "xenmq-fingerprint"),
        Some("0123456789abcdef")
    );
    assert_eq!(w.key(Side::Back, "xenmq-ring-layout"), Some("ring.h"));
    assert_eq!(w.key(Side::Back, "xenmq-instance"), Some("1"));
    // FrontMachine: one page is a bare `ring-ref`, no order key.
    let gref = w.granted.iter().next().copied().expect("a grant");
    assert_eq!(
        w.key(Side::Front, "ring-ref"),
        Some(gref.to_string().as_str())
    );
    assert_eq!(w.key(Side::Front, "ring-page-order"), None);
    assert_eq!(w.key(Side::Front, "ring-ref0"), None);
    let port = w.ports.iter().next().copied().expect("a port");
    assert_eq!(
        w.key(Side::Front, "event-channel"),
        Some(port.to_string().as_str())
    );
    assert_eq!(
        w.key(Side::Front, "protocol"),
        Some(xenmq::xenbus::NATIVE_ABI)
    );
    assert_eq!(
        w.key(Side::Front, "xenmq-fingerprint"),
        Some("0123456789abcdef")
    );
    assert_eq!(w.key(Side::Front, "xenmq-ring-layout"), Some("ring.h"));
    assert_eq!(w.key(Side::Front, "xenmq-backend-instance"), Some("1"));
    assert_eq!(w.key(Side::Front, "xenmq-instance"), Some("1"));
    // The backend's Connected names the frontend it serves.
    assert_eq!(w.key(Side::Back, "xenmq-frontend-instance"), Some("1"));
    assert_eq!(w.granted.len(), 1);
}

#[test]
fn frontend_publishes_everything_in_one_transaction_with_initialised() {
    let w = connected_world(2, 2);
    let commits: Vec<_> = w
        .log
        .iter()
        .filter_map(|(s, a)| match a {
            Action::Commit { writes, state } if *s == Side::Front => Some((writes, state)),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 1);
    let (writes, state) = commits[0];
    assert_eq!(*state, Some(State::Initialised));
    let keys: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "ring-page-order",
        "ring-ref0",
        "ring-ref3",
        "event-channel",
        "protocol",
        "xenmq-protocol",
        "xenmq-version",
        "xenmq-fingerprint",
        "xenmq-ring-layout",
        "xenmq-backend-instance",
        "xenmq-instance",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
}

#[test]
fn ring_size_is_the_smaller_maximum() {
    for (fe, be, want) in [(4u8, 2u8, 2u8), (1, 4, 1), (0, 4, 0), (4, 0, 0), (3, 3, 3)] {
        let w = connected_world(fe, be);
        assert_eq!(w.granted.len(), 1 << want, "fe {fe} be {be}");
        if want > 0 {
            assert_eq!(
                w.key(Side::Front, "ring-page-order"),
                Some(want.to_string().as_str())
            );
            let last = format!("ring-ref{}", (1u32 << want) - 1);
            assert!(w.key(Side::Front, &last).is_some());
        }
    }
}

#[test]
fn conflicting_transactions_are_retried() {
    let mut w = World::new(0, 0);
    w.eagain = 5;
    w.start();
    w.run();
    assert!(w.connected());
    let commits = w
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Commit { .. }))
        .count();
    // BackMachine InitWait, frontend Initialised, backend Connected, + 5 retries.
    assert_eq!(commits, 3 + 5);
}

#[test]
fn endless_conflicts_close_the_device_and_release_the_ring() {
    let mut w = World::new(0, 0);
    w.start();
    // Let the backend publish first, then make every commit conflict.
    while w.state(Side::Back) != Some(State::InitWait) {
        assert!(w.step());
    }
    w.eagain = u32::MAX;
    w.run();
    assert!(w
        .errors
        .iter()
        .any(|(s, e)| *s == Side::Front && *e == Error::CommitConflict(16)));
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    assert!(w.key(Side::Front, "error").unwrap().contains("16 attempts"));
    w.assert_clean();
}

#[test]
fn frontend_close_when_connected() {
    let mut w = connected_world(1, 1);
    w.push(Side::Front, Event::Close);
    w.run();
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    w.assert_clean();
    // The data path stops before the ring goes away, on both ends.
    for side in [Side::Front, Side::Back] {
        let acts: Vec<_> = w
            .log
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, a)| a)
            .collect();
        let d = acts
            .iter()
            .position(|a| matches!(a, Action::Disconnect))
            .unwrap();
        let r = acts
            .iter()
            .position(|a| matches!(a, Action::ReleaseRing { .. } | Action::UnmapRing { .. }))
            .unwrap();
        assert!(d < r, "{side:?}: release before disconnect");
    }
}

#[test]
fn backend_close_when_connected() {
    let mut w = connected_world(0, 0);
    w.push(Side::Back, Event::Close);
    w.run();
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    w.assert_clean();
}

/// Closing from either side after every possible prefix of the handshake
/// leaves both ends closed and nothing held.
#[test]
fn close_at_every_point_of_the_handshake() {
    for side in [Side::Front, Side::Back] {
        for k in 0.. {
            let mut w = World::new(2, 2);
            w.start();
            let mut done = false;
            for _ in 0..k {
                if !w.step() {
                    done = true;
                    break;
                }
            }
            w.push(side, Event::Close);
            w.run();
            assert!(w.errors.is_empty(), "{side:?} k={k}: {:?}", w.errors);
            assert_eq!(w.state(side), Some(State::Closed), "{side:?} k={k}");
            let other = w.state(side.other());
            assert!(
                matches!(other, Some(State::Closed) | Some(State::Initialising)),
                "{side:?} k={k}: peer left in {other:?}"
            );
            w.assert_clean();
            if done {
                break;
            }
        }
    }
}

#[test]
fn frontend_reconnects_after_backend_restart_while_connected() {
    let mut w = connected_world(1, 1);
    let old: Vec<u32> = w.granted.iter().copied().collect();
    w.restart_backend(2, 1);
    w.run();
    assert!(w.connected(), "{:?}", w.errors);
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    assert_eq!(w.key(Side::Front, "xenmq-backend-instance"), Some("2"));
    for g in old {
        assert!(!w.granted.contains(&g), "old grant {g} not released");
    }
    w.assert_same_ring();
}

/// The backend dies after the frontend published but before it connected:
/// its successor shows the same InitWait, and only the instance tells.
#[test]
fn frontend_republishes_for_a_backend_restarted_behind_initwait() {
    let mut w = World::new(0, 0);
    w.start();
    while w.state(Side::Front) != Some(State::Initialised) {
        assert!(w.step());
    }
    w.restart_backend(7, 0);
    w.run();
    assert!(w.connected(), "{:?}", w.errors);
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    assert_eq!(w.key(Side::Front, "xenmq-backend-instance"), Some("7"));
}

#[test]
fn backend_resets_after_frontend_restart_while_connected() {
    let mut w = connected_world(2, 2);
    let old: Vec<u32> = w.mapped.iter().copied().collect();
    w.restart_frontend(2);
    w.run();
    assert!(w.connected(), "{:?}", w.errors);
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    for g in old {
        assert!(!w.mapped.contains(&g), "old mapping {g} kept");
    }
    assert!(w.deferred.is_empty());
    w.assert_same_ring();
}

#[test]
fn local_close_then_start_again() {
    let mut w = connected_world(0, 0);
    w.push(Side::Front, Event::Close);
    w.run();
    w.assert_clean();
    w.push(Side::Front, Event::Start);
    w.run();
    assert!(w.connected(), "{:?}", w.errors);
    // And the backend the same way.
    w.push(Side::Back, Event::Close);
    w.run();
    w.assert_clean();
    w.push(Side::Back, Event::Start);
    w.run();
    // The frontend closed after the backend and waits for its InitWait.
    assert!(w.connected(), "{:?}", w.errors);
}

#[test]
fn fingerprint_mismatch_closes_with_an_error_naming_both() {
    let mut p = xenbus_sim::back_params(0);
    p.identity.fingerprint = 0xdead_beef;
    let back = xenmq::xenbus::BackMachine::new(p, 1).unwrap();
    let front = xenmq::xenbus::FrontMachine::new(xenbus_sim::front_params(0), 1).unwrap();
    let mut w = World::with(front, back);
    w.start();
    w.run();
    let want = format!(
        "{BE_DIR}/xenmq-fingerprint: protocol fingerprint mismatch: ours is \"0123456789abcdef\", \
         the backend's is \"00000000deadbeef\""
    );
    assert_eq!(w.key(Side::Front, "error"), Some(want.as_str()));
    assert!(matches!(
        &w.errors[..],
        [(
            Side::Front,
            Error::Mismatch {
                what: "fingerprint",
                ..
            }
        )]
    ));
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    w.assert_clean();
}

/// Two ends of one protocol whose ring layouts differ (one built with
/// `layout = native`) refuse each other, whichever end is native: the
/// frontend finds it in the backend's InitWait keys before sharing a ring.
#[test]
fn ring_layout_mismatch_closes_both_ends_before_a_ring_is_shared() {
    use xenmq::ring::Kind;
    for (fe, be) in [(Kind::Native, Kind::Compat), (Kind::Compat, Kind::Native)] {
        let mut fp = xenbus_sim::front_params(0);
        fp.identity.ring = fe;
        let mut bp = xenbus_sim::back_params(0);
        bp.identity.ring = be;
        let front = xenmq::xenbus::FrontMachine::new(fp, 1).unwrap();
        let back = xenmq::xenbus::BackMachine::new(bp, 1).unwrap();
        let mut w = World::with(front, back);
        w.start();
        w.run();
        assert_eq!(w.key(Side::Back, "xenmq-ring-layout"), Some(be.name()));
        let want = format!(
            "{BE_DIR}/xenmq-ring-layout: protocol ring layout mismatch: ours is \"{fe}\", \
             the backend's is \"{be}\""
        );
        assert_eq!(w.key(Side::Front, "error"), Some(want.as_str()));
        assert!(matches!(
            &w.errors[..],
            [(
                Side::Front,
                Error::Mismatch {
                    what: "ring layout",
                    ..
                }
            )]
        ));
        assert!(w.granted.is_empty(), "no ring was shared");
        assert_eq!(w.state(Side::Front), Some(State::Closed));
        assert_eq!(w.state(Side::Back), Some(State::Closed));
        w.assert_clean();
    }
}

/// Both ends native: the handshake is the same, with `native` published.
#[test]
fn native_layout_on_both_ends_connects() {
    let mut fp = xenbus_sim::front_params(2);
    fp.identity.ring = xenmq::ring::Kind::Native;
    let mut bp = xenbus_sim::back_params(2);
    bp.identity.ring = xenmq::ring::Kind::Native;
    let front = xenmq::xenbus::FrontMachine::new(fp, 1).unwrap();
    let back = xenmq::xenbus::BackMachine::new(bp, 1).unwrap();
    let mut w = World::with(front, back);
    w.start();
    w.run();
    assert!(w.connected(), "{:?}", w.errors);
    assert_eq!(w.key(Side::Front, "xenmq-ring-layout"), Some("native"));
    assert_eq!(w.key(Side::Back, "xenmq-ring-layout"), Some("native"));
    w.assert_same_ring();
}

#[test]
fn version_and_name_mismatch() {
    for (name, version, what) in [("vkv", 2u32, "version"), ("vblk", 1, "name")] {
        let mut p = xenbus_sim::front_params(0);
        p.identity.name = name.into();
        p.identity.version = version;
        let front = xenmq::xenbus::FrontMachine::new(p, 1).unwrap();
        let back = xenmq::xenbus::BackMachine::new(xenbus_sim::back_params(0), 1).unwrap();
        let mut w = World::with(front, back);
        w.start();
        w.run();
        let err = w.key(Side::Front, "error").expect("error node");
        assert!(err.contains(&format!("protocol {what} mismatch")), "{err}");
        assert_eq!(w.state(Side::Back), Some(State::Closed));
        w.assert_clean();
    }
}

/// Every interleaving the seeds draw reaches Connected, survives a restart
/// of either end, and closes clean.
#[test]
fn random_schedules() {
    for seed in 0..300u64 {
        let mut w = World::new((seed % 5) as u8, ((seed / 5) % 5) as u8);
        w.shuffle(seed);
        w.start();
        w.run();
        assert!(w.connected(), "seed {seed}: {:?}", w.errors);
        if seed % 2 == 0 {
            w.restart_backend(seed + 100, 4);
        } else {
            w.restart_frontend(4);
        }
        w.run();
        assert!(w.connected(), "seed {seed} after restart: {:?}", w.errors);
        assert!(w.errors.is_empty(), "seed {seed}: {:?}", w.errors);
        w.assert_same_ring();
        let side = if seed % 3 == 0 {
            Side::Back
        } else {
            Side::Front
        };
        w.push(side, Event::Close);
        w.run();
        assert_eq!(w.state(Side::Front), Some(State::Closed), "seed {seed}");
        assert_eq!(w.state(Side::Back), Some(State::Closed), "seed {seed}");
        w.assert_clean();
    }
}

#[test]
fn restart_in_the_middle_of_every_handshake_step() {
    for restart_front in [false, true] {
        for k in 0..40 {
            let mut w = World::new(1, 1);
            w.start();
            for _ in 0..k {
                if !w.step() {
                    break;
                }
            }
            if restart_front {
                w.restart_frontend(1);
            } else {
                w.restart_backend(9, 1);
            }
            w.run();
            assert!(w.connected(), "front={restart_front} k={k}: {:?}", w.errors);
            assert!(
                w.errors.is_empty(),
                "front={restart_front} k={k}: {:?}",
                w.errors
            );
            w.assert_same_ring();
        }
    }
}

/// Restarts at random points of randomly ordered handshakes.
#[test]
fn random_restarts_mid_handshake() {
    for seed in 0..400u64 {
        let restart_front = seed % 2 == 1;
        let mut w = World::new(2, (seed % 3) as u8);
        w.shuffle(seed);
        w.start();
        for _ in 0..(seed / 2) % 30 {
            if !w.step() {
                break;
            }
        }
        if restart_front {
            w.restart_frontend(2);
        } else {
            w.restart_backend(1000 + seed, (seed % 3) as u8);
        }
        w.run();
        assert!(w.connected(), "seed {seed}: {:?}", w.errors);
        // A frontend that dies while the backend maps its ring leaves its
        // keys behind; until its successor writes Initialising, the store
        // still offers the dead ring, which the backend cannot tell from bad
        // grants: it reports that and closes, then serves the successor
        // (connected, above). Nothing else may fail.
        let dead_ring = |(s, e): &(Side, Error)| {
            restart_front && *s == Side::Back && matches!(e, Error::Ring(_))
        };
        assert!(
            w.errors.iter().all(dead_ring),
            "seed {seed}: {:?}",
            w.errors
        );
        w.assert_same_ring();
        w.push(Side::Front, Event::Close);
        w.run();
        w.assert_clean();
    }
}

mod v1 {
    #[xenmq::message]
    pub struct Request {
        pub id: u64,
        pub key: u32,
        pub _pad: [u8; 4],
    }
    #[xenmq::message]
    pub struct Response {
        pub id: u64,
        pub status: i32,
        pub _pad: [u8; 4],
    }
}

mod v2 {
    /// The same protocol with `key` widened: a layout change.
    #[xenmq::message]
    pub struct Request {
        pub id: u64,
        pub key: u64,
    }
    #[xenmq::message]
    pub struct Response {
        pub id: u64,
        pub status: i32,
        pub _pad: [u8; 4],
    }
}

/// The fingerprint both ends publish comes from the message layouts
/// (`wire::Message::FINGERPRINT`, combined): a peer built with a changed
/// layout is refused at the handshake, not misread on the ring.
#[test]
fn a_layout_change_is_caught_by_the_handshake() {
    use xenmq::wire::{combine_fingerprints, Message};
    let fp1 = combine_fingerprints(&[v1::Request::FINGERPRINT, v1::Response::FINGERPRINT]);
    let fp2 = combine_fingerprints(&[v2::Request::FINGERPRINT, v2::Response::FINGERPRINT]);
    assert_ne!(fp1, fp2);
    let mut fp = xenbus_sim::front_params(0);
    fp.identity.fingerprint = fp1;
    let mut bp = xenbus_sim::back_params(0);
    bp.identity.fingerprint = fp2;
    let front = xenmq::xenbus::FrontMachine::new(fp, 1).unwrap();
    let back = xenmq::xenbus::BackMachine::new(bp, 1).unwrap();
    let mut w = World::with(front, back);
    w.start();
    w.run();
    let err = w.key(Side::Front, "error").expect("error node");
    assert!(
        err.contains(&format!(
            "ours is \"{fp1:016x}\", the backend's is \"{fp2:016x}\""
        )),
        "{err}"
    );
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    w.assert_clean();
    // The same layouts agree.
    let mut bp = xenbus_sim::back_params(0);
    bp.identity.fingerprint = fp1;
    let mut fp = xenbus_sim::front_params(0);
    fp.identity.fingerprint = fp1;
    let mut w = World::with(
        xenmq::xenbus::FrontMachine::new(fp, 1).unwrap(),
        xenmq::xenbus::BackMachine::new(bp, 1).unwrap(),
    );
    w.start();
    w.run();
    assert!(w.connected());
}

/// The backend's features, as a driver declares them.
#[derive(xenmq::XenstoreConfig, Debug, PartialEq)]
struct BackFeatures {
    feature_persistent: bool,
    #[xenstore(rename = "feature-max-indirect-segments", default = 0, max = 256)]
    max_segments: u32,
}

/// The frontend's features.
#[derive(xenmq::XenstoreConfig, Debug, PartialEq)]
struct FrontFeatures {
    feature_persistent: bool,
    #[xenstore(default = 1, min = 1, max = 8)]
    multi_queue_num_queues: u8,
}

fn featured(back: BackFeatures, front: FrontFeatures) -> World {
    use xenmq::xenbus::{BackMachine, Features, FrontMachine};
    let mut bp = xenbus_sim::back_params(0);
    bp.features = Features::new::<BackFeatures, FrontFeatures>(&back);
    let mut fp = xenbus_sim::front_params(0);
    fp.features = Features::new::<FrontFeatures, BackFeatures>(&front);
    let mut w = World::with(
        FrontMachine::new(fp, 1).unwrap(),
        BackMachine::new(bp, 1).unwrap(),
    );
    w.start();
    w.run();
    w
}

#[test]
fn features_are_published_checked_and_handed_to_the_driver() {
    let w = featured(
        BackFeatures {
            feature_persistent: true,
            max_segments: 64,
        },
        FrontFeatures {
            feature_persistent: true,
            multi_queue_num_queues: 4,
        },
    );
    assert!(w.connected(), "{:?}", w.errors);
    assert_eq!(w.key(Side::Back, "feature-persistent"), Some("1"));
    assert_eq!(
        w.key(Side::Back, "feature-max-indirect-segments"),
        Some("64")
    );
    assert_eq!(w.key(Side::Front, "multi-queue-num-queues"), Some("4"));
    // Each driver parses its peer's features from the connection.
    for (side, action) in &w.log {
        if let Action::Connect(c) = action {
            match side {
                Side::Front => assert_eq!(
                    c.peer.parse::<BackFeatures>(BE_DIR).unwrap(),
                    BackFeatures {
                        feature_persistent: true,
                        max_segments: 64
                    }
                ),
                Side::Back => assert_eq!(
                    c.peer.parse::<FrontFeatures>(FE_DIR).unwrap(),
                    FrontFeatures {
                        feature_persistent: true,
                        multi_queue_num_queues: 4
                    }
                ),
            }
        }
    }
}

#[test]
fn a_bad_peer_feature_closes_the_device() {
    // 9 queues: the frontend's own config allows it to be written, but the
    // backend's view of frontend features bounds it to 8.
    let w = featured(
        BackFeatures {
            feature_persistent: false,
            max_segments: 0,
        },
        FrontFeatures {
            feature_persistent: false,
            multi_queue_num_queues: 9,
        },
    );
    assert_eq!(
        w.key(Side::Back, "error"),
        Some(format!("{FE_DIR}/multi-queue-num-queues: \"9\" is out of range 1..=8").as_str())
    );
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    w.assert_clean();
}

#[test]
fn feature_keys_may_not_collide_with_the_handshake() {
    // The derive refuses the key at compile time; `reserved` lets it
    // through, so that the run-time check is what this test meets.
    #[derive(xenmq::XenstoreConfig)]
    struct Sneaky {
        #[xenstore(reserved)]
        event_channel: u32,
    }
    let mut p = xenbus_sim::front_params(0);
    p.features = xenmq::xenbus::Features::new::<Sneaky, Sneaky>(&Sneaky { event_channel: 1 });
    assert!(matches!(
        xenmq::xenbus::FrontMachine::new(p, 1),
        Err(Error::Params(_))
    ));
}
