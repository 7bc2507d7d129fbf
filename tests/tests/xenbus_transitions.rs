//! Every (phase, peer state) pair of both machines, against a table of
//! what each end must do. Pure state-machine tests: the machines are driven
//! by hand, no store involved.

use xenmq::xenbus::{Action, BackMachine, Error, Event, FrontMachine, Keys, Output, State};

mod xenbus_sim;
use xenbus_sim::{back_params, front_params};

/// One letter group per action: W error node, S<n> switch state, R read,
/// Sh share, M map, Rel release, Un unmap, C connect, D disconnect,
/// Co<n> commit (with state n).
fn summary(out: &Output) -> String {
    out.actions
        .iter()
        .map(|a| match a {
            Action::WriteError(_) => "W".to_string(),
            Action::SwitchState(s) => format!("S{}", s.as_str()),
            Action::ReadPeer { .. } => "R".into(),
            Action::ShareRing { .. } => "Sh".into(),
            Action::MapRing { .. } => "M".into(),
            Action::ReleaseRing { .. } => "Rel".into(),
            Action::UnmapRing { .. } => "Un".into(),
            Action::Connect(_) => "C".into(),
            Action::Disconnect => "D".into(),
            Action::Commit { state, .. } => {
                format!("Co{}", state.map(State::as_str).unwrap_or(""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn error_kind(e: &Option<Error>) -> &'static str {
    match e {
        None => "",
        Some(Error::WrongRole { .. }) => "wrong-role",
        Some(Error::Unsupported { .. }) => "unsupported",
        Some(Error::IllegalTransition { .. }) => "illegal",
        Some(Error::Refused(_)) => "refused",
        Some(Error::PeerFault(_)) => "peer-fault",
        Some(other) => panic!("unexpected error kind {other:?}"),
    }
}

fn keys(pairs: &[(&str, &str)]) -> Keys {
    let mut k = Keys::new();
    for (key, v) in pairs {
        k.insert(key, v.to_string());
    }
    k
}

pub fn backend_keys() -> Keys {
    keys(&[
        ("state", "2"),
        ("xenmq-protocol", "vkv"),
        ("xenmq-version", "1"),
        ("xenmq-fingerprint", "0123456789abcdef"),
        ("max-ring-page-order", "0"),
        ("xenmq-instance", "1"),
    ])
}

pub fn frontend_keys() -> Keys {
    keys(&[
        ("state", "3"),
        ("xenmq-protocol", "vkv"),
        ("xenmq-version", "1"),
        ("xenmq-fingerprint", "0123456789abcdef"),
        ("ring-ref", "8"),
        ("event-channel", "20"),
        ("protocol", xenmq::xenbus::NATIVE_ABI),
        ("xenmq-instance", "1"),
        ("xenmq-backend-instance", "1"),
    ])
}

/// Feeds events, requiring each to succeed without error.
fn feed<M>(m: &mut M, handle: fn(&mut M, Event) -> Output, evs: Vec<(Event, &str)>) {
    for (ev, want) in evs {
        let d = format!("{ev:?}");
        let out = handle(m, ev);
        assert_eq!(out.error, None, "setting up with {d}");
        assert_eq!(summary(&out), want, "setting up with {d}");
    }
}

fn front(recipe: &str) -> FrontMachine {
    let mut f = FrontMachine::new(front_params(0), 1).unwrap();
    let h = FrontMachine::handle;
    feed(&mut f, h, vec![(Event::Start, "S1")]);
    if recipe == "initialising" {
        return f;
    }
    feed(
        &mut f,
        h,
        vec![
            (Event::PeerState(State::InitWait), "R"),
            (Event::KeysRead(backend_keys()), "Sh"),
            (
                Event::RingShared {
                    grefs: vec![8],
                    port: 20,
                },
                "Co3",
            ),
            (Event::Committed, ""),
        ],
    );
    if recipe == "initialised" {
        return f;
    }
    let echo = keys(&[("state", "4"), ("xenmq-frontend-instance", "1")]);
    feed(
        &mut f,
        h,
        vec![
            (Event::PeerState(State::Connected), "R"),
            (Event::KeysRead(echo), "C S4"),
        ],
    );
    if recipe == "connected" {
        return f;
    }
    feed(
        &mut f,
        h,
        vec![(Event::PeerState(State::Closed), "D Rel S6")],
    );
    assert_eq!(recipe, "closed");
    f
}

fn back(recipe: &str) -> BackMachine {
    let mut b = BackMachine::new(back_params(0), 1).unwrap();
    let h = BackMachine::handle;
    feed(&mut b, h, vec![(Event::Start, "Co2")]);
    if recipe == "publishing" {
        return b;
    }
    feed(&mut b, h, vec![(Event::Committed, "")]);
    if recipe == "initwait" {
        return b;
    }
    feed(
        &mut b,
        h,
        vec![
            (Event::PeerState(State::Initialised), "R"),
            (Event::KeysRead(frontend_keys()), "M"),
            (Event::RingMapped, "C"),
            (Event::Attached, "Co4"),
            (Event::Committed, ""),
        ],
    );
    if recipe == "connected" {
        return b;
    }
    feed(
        &mut b,
        h,
        vec![(Event::PeerState(State::Closed), "D Un S6")],
    );
    assert_eq!(recipe, "closed");
    b
}

const STATES: [State; 9] = State::ALL;

/// For each recipe, the expected (actions, error) per peer state, in the
/// order Unknown, Initialising, InitWait, Initialised, Connected, Closing,
/// Closed, Reconfiguring, Reconfigured.
type Row = (&'static str, [(&'static str, &'static str); 9]);

const FRONT: [Row; 4] = [
    (
        "initialising",
        [
            ("", ""),
            ("", ""),
            ("R", ""),
            ("W S5", "wrong-role"),
            // A backend still connected to our predecessor: wait for its reset.
            ("", ""),
            ("", ""),
            ("", ""),
            ("W S5", "unsupported"),
            ("W S5", "unsupported"),
        ],
    ),
    (
        "initialised",
        [
            ("Rel S6", ""),
            ("Rel S1", ""),
            // InitWait again: re-check the backend's instance.
            ("R", ""),
            ("W S5 Rel", "wrong-role"),
            // Connected: read the echo before trusting it.
            ("R", ""),
            ("Rel S6", ""),
            ("Rel S6", ""),
            ("W S5 Rel", "unsupported"),
            ("W S5 Rel", "unsupported"),
        ],
    ),
    (
        "connected",
        [
            ("D Rel S6", ""),
            ("D Rel S1", ""),
            // The backend restarted: tear down, start over at once.
            ("D Rel S1 R", ""),
            ("W S5 D Rel", "wrong-role"),
            ("", ""),
            ("D Rel S6", ""),
            ("D Rel S6", ""),
            ("W S5 D Rel", "unsupported"),
            ("W S5 D Rel", "unsupported"),
        ],
    ),
    (
        "closed",
        [
            ("", ""),
            ("", ""),
            // A backend back in InitWait after closing: reconnect.
            ("S1 R", ""),
            ("W", "wrong-role"),
            ("W", "illegal"),
            ("", ""),
            ("", ""),
            ("W", "unsupported"),
            ("W", "unsupported"),
        ],
    ),
];

const BACK: [Row; 4] = [
    (
        "publishing",
        [
            ("", ""),
            ("", ""),
            ("W", "wrong-role"),
            ("", ""),
            ("", ""),
            ("", ""),
            ("", ""),
            ("W", "unsupported"),
            ("W", "unsupported"),
        ],
    ),
    (
        "initwait",
        [
            ("S6", ""),
            ("", ""),
            ("W S5", "wrong-role"),
            ("R", ""),
            ("R", ""),
            ("S5", ""),
            ("S6", ""),
            ("W S5", "unsupported"),
            ("W S5", "unsupported"),
        ],
    ),
    (
        "connected",
        [
            ("D Un S6", ""),
            // The frontend restarted: unmap, wait again.
            ("D Un S2", ""),
            ("W D Un S5", "wrong-role"),
            // Initialised again: has a successor published a new ring?
            ("R", ""),
            ("", ""),
            ("D Un S5", ""),
            ("D Un S6", ""),
            ("W D Un S5", "unsupported"),
            ("W D Un S5", "unsupported"),
        ],
    ),
    (
        "closed",
        [
            ("", ""),
            ("S2", ""),
            ("W", "wrong-role"),
            ("", ""),
            ("W", "illegal"),
            ("", ""),
            ("", ""),
            ("W", "unsupported"),
            ("W", "unsupported"),
        ],
    ),
];

#[test]
fn frontend_table() {
    for (recipe, row) in FRONT {
        for (s, (want, err)) in STATES.iter().zip(row) {
            let mut f = front(recipe);
            let out = f.handle(Event::PeerState(*s));
            assert_eq!(summary(&out), want, "frontend {recipe} + backend {s}");
            assert_eq!(
                error_kind(&out.error),
                err,
                "frontend {recipe} + backend {s}"
            );
        }
    }
}

#[test]
fn backend_table() {
    for (recipe, row) in BACK {
        for (s, (want, err)) in STATES.iter().zip(row) {
            let mut b = back(recipe);
            let out = b.handle(Event::PeerState(*s));
            assert_eq!(summary(&out), want, "backend {recipe} + frontend {s}");
            assert_eq!(
                error_kind(&out.error),
                err,
                "backend {recipe} + frontend {s}"
            );
        }
    }
}

/// The blkfront BUG_ON case: a backend going from Closing to Connected.
#[test]
fn closing_to_connected_is_an_error_not_a_panic() {
    let mut f = front("initialised");
    let out = f.handle(Event::PeerState(State::Closing));
    assert_eq!(summary(&out), "Rel S6");
    let mut f = front("initialising");
    assert_eq!(summary(&f.handle(Event::PeerState(State::Closing))), "");
    let out = f.handle(Event::PeerState(State::Connected));
    assert_eq!(summary(&out), "W S5");
    let e = out.error.unwrap();
    assert_eq!(
        e.to_string(),
        "the backend went from closing to connected, which is not a legal transition"
    );
    match &out.actions[0] {
        Action::WriteError(m) => assert_eq!(*m, e.to_string()),
        a => panic!("{a:?}"),
    }
    // Same for a frontend seen by a backend.
    let mut b = back("initwait");
    assert_eq!(summary(&b.handle(Event::PeerState(State::Closing))), "S5");
    let out = b.handle(Event::PeerState(State::Connected));
    assert_eq!(error_kind(&out.error), "illegal");
    assert_eq!(summary(&out), "W");
}

#[test]
fn pending_answers_delay_the_reaction_to_the_peer() {
    // A backend closing while the frontend shares its ring: the ring that
    // arrives afterwards is released at once.
    let mut f = front("initialising");
    assert_eq!(summary(&f.handle(Event::PeerState(State::InitWait))), "R");
    assert_eq!(summary(&f.handle(Event::KeysRead(backend_keys()))), "Sh");
    assert_eq!(summary(&f.handle(Event::PeerState(State::Closing))), "");
    let out = f.handle(Event::RingShared {
        grefs: vec![3],
        port: 4,
    });
    assert_eq!(summary(&out), "Rel S6");
    assert!(!f.holds_ring());
    // A local close while the backend maps: unmapped as soon as mapped.
    let mut b = back("initwait");
    assert_eq!(
        summary(&b.handle(Event::PeerState(State::Initialised))),
        "R"
    );
    assert_eq!(summary(&b.handle(Event::KeysRead(frontend_keys()))), "M");
    assert_eq!(summary(&b.handle(Event::Close)), "");
    assert_eq!(summary(&b.handle(Event::RingMapped)), "Un S5");
    assert!(!b.holds_ring());
}

#[test]
fn states_reported() {
    assert_eq!(front("initialising").state(), State::Initialising);
    assert_eq!(front("initialised").state(), State::Initialised);
    assert_eq!(front("connected").state(), State::Connected);
    assert_eq!(front("closed").state(), State::Closed);
    assert_eq!(back("publishing").state(), State::Initialising);
    assert_eq!(back("initwait").state(), State::InitWait);
    assert_eq!(back("connected").state(), State::Connected);
    assert_eq!(back("closed").state(), State::Closed);
}

#[test]
fn a_refusal_comes_before_connected() {
    let mut b = back("initwait");
    let h = BackMachine::handle;
    feed(
        &mut b,
        h,
        vec![
            (Event::PeerState(State::Initialised), "R"),
            (Event::KeysRead(frontend_keys()), "M"),
            (Event::RingMapped, "C"),
        ],
    );
    // Still InitWait while the data path starts: nothing said Connected.
    assert_eq!(b.state(), State::InitWait);
    let out = b.handle(Event::Refused("no buffer pool".into()));
    assert_eq!(summary(&out), "W Un S5");
    assert_eq!(error_kind(&out.error), "refused");
    assert!(out.error.unwrap().to_string().contains("no buffer pool"));
    // The frontend's standard reset brings the device back.
    assert_eq!(summary(&b.handle(Event::PeerState(State::Closing))), "");
    assert_eq!(summary(&b.handle(Event::PeerState(State::Closed))), "S6");
    assert_eq!(
        summary(&b.handle(Event::PeerState(State::Initialising))),
        "S2"
    );
}

#[test]
fn a_peer_fault_closes_until_the_reset_and_a_close_for_good() {
    let h = BackMachine::handle;
    for for_good in [false, true] {
        let mut b = back("connected");
        let out = b.handle(Event::PeerFault("producer index 9".into()));
        assert_eq!(summary(&out), "W D Un S5");
        assert_eq!(error_kind(&out.error), "peer-fault");
        assert!(!b.holds_ring());
        if for_good {
            assert_eq!(summary(&b.handle(Event::Close)), "");
        }
        feed(
            &mut b,
            h,
            vec![
                (Event::PeerState(State::Closing), ""),
                (Event::PeerState(State::Closed), "S6"),
            ],
        );
        let out = b.handle(Event::PeerState(State::Initialising));
        assert_eq!(summary(&out), if for_good { "" } else { "S2" });
    }
    // A fault seen while closed has nothing to tear down but is written.
    let mut b = back("closed");
    let out = b.handle(Event::PeerFault("late".into()));
    assert_eq!(summary(&out), "W");
}
