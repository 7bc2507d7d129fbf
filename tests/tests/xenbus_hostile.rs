//! Hostile peers: nonsense keys, impossible rings, garbage states and
//! stray answers. Each must give a typed error, an `error` node naming the
//! key, value and expectation, a close, and no leak; never a panic.
//! Pure state-machine tests, driven by hand.

mod xenbus_sim;

use xenbus_sim::{back_params, front_params, FE_DIR};
use xenmq::xenbus::{Action, BackMachine, Error, Event, FrontMachine, Keys, Output, State};

fn keys(pairs: &[(&str, String)]) -> Keys {
    let mut k = Keys::new();
    for (key, v) in pairs {
        k.insert(key, v.clone());
    }
    k
}

fn good_frontend() -> Vec<(&'static str, String)> {
    [
        ("state", "3"),
        ("xenmq-protocol", "vkv"),
        ("xenmq-version", "1"),
        ("xenmq-fingerprint", "0123456789abcdef"),
        ("ring-ref", "8"),
        ("event-channel", "20"),
        ("protocol", xenmq::xenbus::NATIVE_ABI),
        ("xenmq-instance", "1"),
        ("xenmq-backend-instance", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn with(
    mut base: Vec<(&'static str, String)>,
    set: &[(&'static str, &str)],
    drop: &[&str],
) -> Keys {
    base.retain(|(k, _)| !drop.contains(k));
    for (k, v) in set {
        base.retain(|(b, _)| b != k);
        base.push((k, v.to_string()));
    }
    keys(&base)
}

/// A backend (max order `max`) that has asked for the frontend's keys.
fn reading_backend(max: u8) -> BackMachine {
    let mut b = BackMachine::new(back_params(max), 1).unwrap();
    let _ = b.handle(Event::Start);
    let _ = b.handle(Event::Committed);
    let out = b.handle(Event::PeerState(State::Initialised));
    assert!(matches!(out.actions[..], [Action::ReadPeer { .. }]));
    b
}

/// The backend's answer to `k`, which must be: error node, Closing.
fn backend_rejects(max: u8, k: Keys) -> (Error, String) {
    let mut b = reading_backend(max);
    let out = b.handle(Event::KeysRead(k));
    let e = out.error.clone().expect("an error");
    match &out.actions[..] {
        [Action::WriteError(m), Action::SwitchState(State::Closing)] => {
            assert_eq!(*m, e.to_string());
            assert!(!b.holds_ring());
            (e, m.clone())
        }
        a => panic!("{a:?}"),
    }
}

/// A frontend naming another ring layout, or one that does not exist, is
/// refused with the value it wrote; one that writes none is a ring.h
/// frontend (the only layout before the key existed) and is served.
#[test]
fn ring_layout_other_or_unknown() {
    for v in ["native", "fast", "", "RING.H"] {
        let k = with(good_frontend(), &[("xenmq-ring-layout", v)], &[]);
        let (e, m) = backend_rejects(0, k);
        assert!(
            matches!(
                e,
                Error::Mismatch {
                    what: "ring layout",
                    ..
                }
            ),
            "{v:?}: {e:?}"
        );
        assert_eq!(
            m,
            format!(
                "{FE_DIR}/xenmq-ring-layout: protocol ring layout mismatch: ours is \"ring.h\", \
                 the frontend's is {v:?}"
            )
        );
    }
    for k in [
        with(good_frontend(), &[("xenmq-ring-layout", "ring.h")], &[]),
        with(good_frontend(), &[], &["xenmq-ring-layout"]),
    ] {
        let mut b = reading_backend(0);
        let out = b.handle(Event::KeysRead(k));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert!(
            matches!(out.actions[..], [Action::MapRing { .. }]),
            "{:?}",
            out.actions
        );
    }
}

#[test]
fn ring_page_order_out_of_range() {
    let k = with(
        good_frontend(),
        &[("ring-page-order", "9"), ("ring-ref0", "1")],
        &["ring-ref"],
    );
    let (_, m) = backend_rejects(4, k);
    assert_eq!(
        m,
        format!("{FE_DIR}/ring-page-order: \"9\" is out of range 0..=4")
    );
}

#[test]
fn huge_ring_page_order() {
    for v in [
        "4294967296",
        "99999999999999999999999",
        "-1",
        "",
        " 2",
        "2 ",
        "+2",
        "0x2",
        "²",
    ] {
        let k = with(good_frontend(), &[("ring-page-order", v)], &[]);
        let (e, m) = backend_rejects(4, k);
        assert!(
            matches!(
                e,
                Error::Config(xenmq::xenbus::config::Error::Invalid { .. })
            ),
            "{v:?}: {e:?}"
        );
        assert!(m.starts_with(&format!("{FE_DIR}/ring-page-order: ")), "{m}");
        assert!(m.ends_with("is not an unsigned 8-bit integer"), "{m}");
    }
}

#[test]
fn ring_larger_than_ours() {
    let mut set: Vec<(&str, String)> = vec![("ring-page-order", "3".into())];
    for i in 0..8 {
        set.push((
            Box::leak(format!("ring-ref{i}").into_boxed_str()),
            (100 + i).to_string(),
        ));
    }
    let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (e, m) = backend_rejects(2, with(good_frontend(), &set, &["ring-ref"]));
    assert!(matches!(
        e,
        Error::RingTooLarge {
            order: 3,
            max: 2,
            ..
        }
    ));
    assert_eq!(
        m,
        format!("{FE_DIR}/ring-page-order: ring of page order 3 is larger than our maximum of 2")
    );
}

#[test]
fn ring_ref_count_mismatch() {
    // Order 2 says four pages; three are given.
    let k = with(
        good_frontend(),
        &[
            ("ring-page-order", "2"),
            ("ring-ref0", "1"),
            ("ring-ref1", "2"),
            ("ring-ref2", "3"),
        ],
        &["ring-ref"],
    );
    let (_, m) = backend_rejects(4, k);
    assert_eq!(
        m,
        format!("{FE_DIR}/ring-ref3: missing, expected a grant reference")
    );
    // Neither form.
    let (_, m) = backend_rejects(4, with(good_frontend(), &[], &["ring-ref"]));
    assert_eq!(
        m,
        format!("{FE_DIR}/ring-ref: missing, expected a grant reference")
    );
}

#[test]
fn nonsense_values() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "ring-ref",
            "abc",
            "\"abc\" is not an unsigned 32-bit integer",
        ),
        (
            "event-channel",
            "-1",
            "\"-1\" is not an unsigned 32-bit integer",
        ),
        (
            "event-channel",
            "4294967296",
            "\"4294967296\" is not an unsigned 32-bit integer",
        ),
        (
            "xenmq-version",
            "one",
            "\"one\" is not an unsigned 32-bit integer",
        ),
        (
            "xenmq-fingerprint",
            "0123",
            "\"0123\" is not a fingerprint of 16 hex digits",
        ),
        (
            "protocol",
            "x86\u{1b}[2J",
            "\"x86\\u{1b}[2J\" is not a string",
        ),
    ];
    for (key, v, want) in cases {
        let (_, m) = backend_rejects(4, with(good_frontend(), &[(key, v)], &[]));
        assert_eq!(m, format!("{FE_DIR}/{key}: {want}"));
    }
}

#[test]
fn missing_event_channel() {
    let (_, m) = backend_rejects(4, with(good_frontend(), &[], &["event-channel"]));
    assert_eq!(
        m,
        format!("{FE_DIR}/event-channel: missing, expected an unsigned 32-bit integer")
    );
}

/// A frontend claiming Connected without having published anything.
#[test]
fn connected_without_the_keys() {
    let mut b = BackMachine::new(back_params(0), 1).unwrap();
    let _ = b.handle(Event::Start);
    let _ = b.handle(Event::Committed);
    let out = b.handle(Event::PeerState(State::Connected));
    assert!(matches!(out.actions[..], [Action::ReadPeer { .. }]));
    let out = b.handle(Event::KeysRead(keys(&[("state", "4".into())])));
    assert_eq!(
        out.error.unwrap().to_string(),
        format!("{FE_DIR}/xenmq-backend-instance: missing, expected an unsigned 64-bit integer")
    );
}

#[test]
fn overlong_values_are_refused_before_parsing() {
    let long = "7".repeat(5000);
    let (e, m) = backend_rejects(4, with(good_frontend(), &[("protocol", &long)], &[]));
    assert!(matches!(
        e,
        Error::Config(xenmq::xenbus::config::Error::TooLong {
            len: 5000,
            max: 4096,
            ..
        })
    ));
    assert_eq!(
        m,
        format!("{FE_DIR}/protocol: value of 5000 bytes is longer than 4096 bytes")
    );
    // A long bad value is quoted truncated.
    let (_, m) = backend_rejects(
        4,
        with(
            good_frontend(),
            &[("event-channel", &"x".repeat(4000))],
            &[],
        ),
    );
    assert!(m.len() < 200, "{m}");
    assert!(m.contains('…'));
}

#[test]
fn abi_and_identity_mismatch_name_both_values() {
    let (e, m) = backend_rejects(4, with(good_frontend(), &[("protocol", "x86_32-abi")], &[]));
    assert!(matches!(e, Error::Mismatch { what: "abi", .. }));
    assert_eq!(
        m,
        format!(
            "{FE_DIR}/protocol: protocol abi mismatch: ours is \"{}\", the frontend's is \"x86_32-abi\"",
            xenmq::xenbus::NATIVE_ABI
        )
    );
    let (_, m) = backend_rejects(
        4,
        with(
            good_frontend(),
            &[("xenmq-fingerprint", "ffffffffffffffff")],
            &[],
        ),
    );
    assert_eq!(
        m,
        format!(
            "{FE_DIR}/xenmq-fingerprint: protocol fingerprint mismatch: ours is \"0123456789abcdef\", \
             the frontend's is \"ffffffffffffffff\""
        )
    );
    let (_, m) = backend_rejects(4, with(good_frontend(), &[("xenmq-protocol", "vblk")], &[]));
    assert!(
        m.contains("protocol name mismatch: ours is \"vkv\", the frontend's is \"vblk\""),
        "{m}"
    );
}

#[test]
fn stale_keys_and_moved_on_frontends_are_ignored() {
    // Keys published for another backend incarnation: no error, no action.
    let mut b = reading_backend(0);
    let out = b.handle(Event::KeysRead(with(
        good_frontend(),
        &[("xenmq-backend-instance", "99")],
        &[],
    )));
    assert_eq!(out, Output::default());
    // A frontend whose state no longer offers a ring.
    let mut b = reading_backend(0);
    let out = b.handle(Event::KeysRead(with(
        good_frontend(),
        &[("state", "1")],
        &[],
    )));
    assert_eq!(out, Output::default());
}

#[test]
fn bad_grants_close_after_a_confirming_read() {
    let mut b = reading_backend(0);
    let out = b.handle(Event::KeysRead(keys(&good_frontend())));
    assert!(matches!(out.actions[..], [Action::MapRing { .. }]));
    let out = b.handle(Event::RingFailed("gref 8 not granted to domain 0".into()));
    assert!(matches!(out.actions[..], [Action::ReadPeer { .. }]));
    let out = b.handle(Event::KeysRead(keys(&good_frontend())));
    assert_eq!(
        out.error,
        Some(Error::Ring("gref 8 not granted to domain 0".into()))
    );
    assert!(matches!(
        out.actions[..],
        [Action::WriteError(_), Action::SwitchState(State::Closing)]
    ));
}

#[test]
fn garbage_peer_states() {
    for v in [
        "9",
        "",
        "-1",
        " 4",
        "4\n",
        "04",
        "4294967300",
        "connected",
        &"4".repeat(10_000),
    ] {
        let mut b = reading_backend(0);
        let _ = b.handle(Event::KeysRead(keys(&good_frontend())));
        let _ = b.handle(Event::RingMapped);
        let _ = b.handle(Event::Attached);
        let _ = b.handle(Event::Committed);
        assert!(b.holds_ring());
        let out = b.handle(Event::PeerStateValue(Some(v.to_string())));
        let e = out.error.clone().expect("an error");
        assert!(matches!(e, Error::BadState { .. }), "{v:?}");
        assert!(e.to_string().len() < 200);
        assert!(
            matches!(
                out.actions[..],
                [
                    Action::WriteError(_),
                    Action::Disconnect,
                    Action::UnmapRing { .. },
                    Action::SwitchState(State::Closing)
                ]
            ),
            "{v:?}: {:?}",
            out.actions
        );
        assert!(!b.holds_ring());
    }
    // A vanished state key reads as Unknown: the peer is gone.
    let mut b = BackMachine::new(back_params(0), 1).unwrap();
    let _ = b.handle(Event::Start);
    let _ = b.handle(Event::Committed);
    let out = b.handle(Event::PeerStateValue(None));
    assert_eq!(out.error, None);
    assert_eq!(out.actions, vec![Action::SwitchState(State::Closed)]);
}

fn good_backend() -> Vec<(&'static str, String)> {
    [
        ("state", "2"),
        ("xenmq-protocol", "vkv"),
        ("xenmq-version", "1"),
        ("xenmq-fingerprint", "0123456789abcdef"),
        ("max-ring-page-order", "2"),
        ("xenmq-instance", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn reading_frontend(max: u8) -> FrontMachine {
    let mut f = FrontMachine::new(front_params(max), 1).unwrap();
    let _ = f.handle(Event::Start);
    let out = f.handle(Event::PeerState(State::InitWait));
    assert!(matches!(out.actions[..], [Action::ReadPeer { .. }]));
    f
}

#[test]
fn frontend_takes_the_smaller_order_of_a_huge_backend_maximum() {
    let mut f = reading_frontend(3);
    let out = f.handle(Event::KeysRead(with(
        good_backend(),
        &[("max-ring-page-order", "4294967295")],
        &[],
    )));
    assert_eq!(out.actions, vec![Action::ShareRing { pages: 8 }]);
    // A backend without the key offers single pages, as in Xen.
    let mut f = reading_frontend(3);
    let out = f.handle(Event::KeysRead(with(
        good_backend(),
        &[],
        &["max-ring-page-order"],
    )));
    assert_eq!(out.actions, vec![Action::ShareRing { pages: 1 }]);
}

#[test]
fn frontend_rejects_bad_backend_keys() {
    for (set, drop, want) in [
        (
            vec![("max-ring-page-order", "-3")],
            vec![],
            "max-ring-page-order: \"-3\" is not an unsigned 32-bit integer",
        ),
        (
            vec![],
            vec!["xenmq-instance"],
            "xenmq-instance: missing, expected an unsigned 64-bit integer",
        ),
        (
            vec![("xenmq-fingerprint", "0123456789ABCDEG")],
            vec![],
            "is not a fingerprint of 16 hex digits",
        ),
        (
            vec![("xenmq-version", "2")],
            vec![],
            "protocol version mismatch: ours is \"1\", the backend's is \"2\"",
        ),
    ] {
        let mut f = reading_frontend(2);
        let out = f.handle(Event::KeysRead(with(good_backend(), &set, &drop)));
        let m = out.error.expect("an error").to_string();
        assert!(m.contains(want), "{m}");
        assert!(matches!(
            out.actions[..],
            [Action::WriteError(_), Action::SwitchState(State::Closing)]
        ));
    }
}

/// A frontend that shared its ring, then meets a backend claiming
/// Connected without saying to whom: release, error, close.
#[test]
fn connected_without_echo_releases_the_ring() {
    let mut f = reading_frontend(0);
    let _ = f.handle(Event::KeysRead(keys(&good_backend())));
    let _ = f.handle(Event::RingShared {
        grefs: vec![8],
        port: 3,
    });
    let _ = f.handle(Event::Committed);
    assert!(f.holds_ring());
    let out = f.handle(Event::PeerState(State::Connected));
    assert!(matches!(out.actions[..], [Action::ReadPeer { .. }]));
    let out = f.handle(Event::KeysRead(keys(&[("state", "4".into())])));
    assert!(out
        .error
        .unwrap()
        .to_string()
        .ends_with("xenmq-frontend-instance: missing, expected an unsigned 64-bit integer"));
    assert!(matches!(
        out.actions[..],
        [Action::WriteError(_), Action::SwitchState(State::Closing), Action::ReleaseRing { ref grefs, port: 3 }] if grefs == &[8]
    ));
    assert!(!f.holds_ring());
}

#[test]
fn wrong_grant_count_from_the_platform_is_released() {
    let mut f = reading_frontend(2);
    let out = f.handle(Event::KeysRead(keys(&good_backend())));
    assert_eq!(out.actions, vec![Action::ShareRing { pages: 4 }]);
    let out = f.handle(Event::RingShared {
        grefs: vec![1, 2, 3],
        port: 9,
    });
    assert_eq!(out.error, Some(Error::GrantCount { got: 3, want: 4 }));
    assert_eq!(
        out.actions[0],
        Action::ReleaseRing {
            grefs: vec![1, 2, 3],
            port: 9
        }
    );
    assert!(!f.holds_ring());
}

#[test]
fn stray_answers_are_reported_and_grants_in_them_released() {
    let mut f = FrontMachine::new(front_params(0), 1).unwrap();
    let _ = f.handle(Event::Start);
    let out = f.handle(Event::RingShared {
        grefs: vec![4],
        port: 2,
    });
    assert_eq!(
        out.actions,
        vec![Action::ReleaseRing {
            grefs: vec![4],
            port: 2
        }]
    );
    assert!(matches!(
        out.error,
        Some(Error::Unexpected {
            event: "ring-shared",
            ..
        })
    ));
    for ev in [
        Event::Committed,
        Event::KeysRead(Keys::new()),
        Event::RingMapped,
        Event::Start,
    ] {
        let out = f.handle(ev);
        assert!(out.actions.is_empty());
        assert!(matches!(out.error, Some(Error::Unexpected { .. })));
    }
    let mut b = BackMachine::new(back_params(0), 1).unwrap();
    for ev in [
        Event::Committed,
        Event::RingMapped,
        Event::RingFailed("x".into()),
    ] {
        let out = b.handle(ev);
        assert!(out.actions.is_empty());
        assert!(matches!(out.error, Some(Error::Unexpected { .. })));
    }
}

#[test]
fn stop_mid_handshake_releases_what_arrives_later() {
    let mut f = reading_frontend(1);
    let _ = f.handle(Event::KeysRead(keys(&good_backend())));
    // Closed locally while the platform is still sharing.
    assert_eq!(f.handle(Event::Close), Output::default());
    let out = f.handle(Event::RingShared {
        grefs: vec![1, 2],
        port: 7,
    });
    assert_eq!(
        out.actions,
        vec![
            Action::SwitchState(State::Closing),
            Action::ReleaseRing {
                grefs: vec![1, 2],
                port: 7
            }
        ]
    );
    assert_eq!(
        f.handle(Event::PeerState(State::Closing)).actions,
        vec![Action::SwitchState(State::Closed)]
    );
}

#[test]
fn params_are_checked() {
    let mut p = front_params(0);
    p.max_ring_page_order = 5;
    assert!(matches!(FrontMachine::new(p, 1), Err(Error::Params(_))));
}

// The same, with both machines wired through the in-memory store of
// `xenbus_sim` and one end's keys rewritten behind its machine's back.

use xenbus_sim::{Side, World, BE_DIR};

fn run_until(w: &mut World, side: Side, s: State) {
    while w.state(side) != Some(s) {
        assert!(w.step(), "never reached {s}");
    }
}

#[test]
fn backend_rewrites_its_keys_before_the_frontend_reads_them() {
    let mut w = World::new(2, 2);
    w.start();
    run_until(&mut w, Side::Back, State::InitWait);
    w.poke(Side::Back, "xenmq-instance", "0x1");
    w.run();
    assert_eq!(
        w.key(Side::Front, "error"),
        Some(
            format!("{BE_DIR}/xenmq-instance: \"0x1\" is not an unsigned 64-bit integer").as_str()
        )
    );
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    w.assert_clean();
}

#[test]
fn frontend_points_its_ring_at_grants_it_never_gave() {
    let mut w = World::new(0, 0);
    w.start();
    run_until(&mut w, Side::Front, State::Initialised);
    w.poke(Side::Front, "ring-ref", "4000");
    w.run();
    let e = w.key(Side::Back, "error").expect("an error node");
    assert_eq!(e, "ring set-up failed: grant not granted to us");
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    w.assert_clean();
}

#[test]
fn frontend_jumps_to_connected_without_keys() {
    let mut w = World::new(0, 0);
    w.push(Side::Back, Event::Start);
    w.run();
    w.poke(Side::Front, "state", "4");
    w.run();
    let e = w.key(Side::Back, "error").expect("an error node");
    assert!(
        e.ends_with("xenmq-backend-instance: missing, expected an unsigned 64-bit integer"),
        "{e}"
    );
    assert_eq!(w.state(Side::Back), Some(State::Closing));
    w.assert_clean();
}

#[test]
fn backend_state_garbage_mid_connection() {
    let mut w = World::new(1, 1);
    w.start();
    w.run();
    assert!(w.connected());
    w.poke(Side::Back, "state", "banana");
    w.run();
    assert_eq!(
        w.key(Side::Front, "error"),
        Some("state value \"banana\" is not a xenbus state")
    );
    // The frontend released its ring and closes; the backend machine, which
    // never wrote the garbage, follows and unmaps.
    assert_eq!(w.state(Side::Front), Some(State::Closed));
    assert_eq!(w.state(Side::Back), Some(State::Closed));
    w.assert_clean();
}
