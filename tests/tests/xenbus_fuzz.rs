//! Random event streams, coherent and not, fed to each machine: no panic,
//! and the resource books balance. Every grant handed to a frontend is
//! released exactly once, a backend unmaps exactly what it mapped, the data
//! path stops before its ring goes, and after a close everything is back.
//! Pure state-machine tests with a seeded generator (repeatable).

use std::collections::BTreeSet;

use xenmq::xenbus::{Action, BackMachine, Event, FrontMachine, Keys, Output, Params, State};

mod xenbus_sim;
use xenbus_sim::{back_params, front_params};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Ask {
    Commit,
    Read,
    Share(usize),
    Map(Vec<u32>),
    /// A backend's `Connect`.
    Attach,
}

/// The books of one machine, kept from its actions and our answers.
#[derive(Default)]
struct Books {
    /// Books of a frontend: grants handed to it must come back. (A
    /// backend shares nothing; grants sent to it stray are not its own.)
    front: bool,
    ask: Option<Ask>,
    given: BTreeSet<u32>,
    released: BTreeSet<u32>,
    mapped: BTreeSet<u32>,
    connected: bool,
    /// The ring the data path runs on, while connected.
    live: BTreeSet<u32>,
    next_gref: u32,
}

impl Books {
    fn record(&mut self, out: &Output) {
        for a in &out.actions {
            match a {
                Action::Commit { .. } => self.set_ask(Ask::Commit),
                Action::ReadPeer { keys } => {
                    assert!(keys.len() < 64);
                    self.set_ask(Ask::Read)
                }
                Action::ShareRing { pages } => {
                    assert!(pages.is_power_of_two() && *pages <= 16);
                    self.set_ask(Ask::Share(*pages))
                }
                Action::MapRing { ring, .. } => self.set_ask(Ask::Map(ring.refs().to_vec())),
                Action::ReleaseRing { grefs, .. } => {
                    for g in grefs {
                        assert!(
                            !self.live.contains(g),
                            "ring released under a running data path"
                        );
                        assert!(self.given.contains(g), "released {g}, never given");
                        assert!(self.released.insert(*g), "released {g} twice");
                    }
                }
                Action::UnmapRing { grefs, .. } => {
                    assert!(
                        self.live.is_empty(),
                        "ring unmapped under a running data path"
                    );
                    let g: BTreeSet<u32> = grefs.iter().copied().collect();
                    assert_eq!(g, self.mapped, "unmapped something else than mapped");
                    self.mapped.clear();
                }
                Action::Connect(c) => {
                    assert!(!self.connected, "connected twice");
                    self.connected = true;
                    self.live = c.ring.refs().iter().copied().collect();
                    if !self.front {
                        self.set_ask(Ask::Attach);
                    }
                }
                Action::Disconnect => {
                    assert!(self.connected, "disconnected while not connected");
                    self.connected = false;
                    self.live.clear();
                }
                Action::SwitchState(_) | Action::WriteError(_) => {}
            }
        }
    }

    fn set_ask(&mut self, a: Ask) {
        assert_eq!(
            self.ask, None,
            "asked {a:?} while {:?} was outstanding",
            self.ask
        );
        self.ask = Some(a);
    }

    /// Feeds `ev`, updating what is outstanding and held.
    fn feed(&mut self, ev: Event, handle: &mut dyn FnMut(Event) -> Output) {
        match (&ev, &self.ask) {
            (Event::Committed | Event::CommitFailed { .. }, Some(Ask::Commit))
            | (Event::KeysRead(_), Some(Ask::Read))
            | (Event::RingShared { .. } | Event::RingFailed(_), Some(Ask::Share(_)))
            | (Event::RingFailed(_), Some(Ask::Map(_))) => self.ask = None,
            (Event::Attached, Some(Ask::Attach)) => self.ask = None,
            // Refused: the data path never started, nothing to disconnect.
            (Event::Refused(_), Some(Ask::Attach)) => {
                self.ask = None;
                self.connected = false;
                self.live.clear();
            }
            (Event::RingMapped, Some(Ask::Map(g))) => {
                self.mapped = g.iter().copied().collect();
                self.ask = None;
            }
            _ => {}
        }
        if let (true, Event::RingShared { grefs, .. }) = (self.front, &ev) {
            self.given.extend(grefs);
        }
        let out = handle(ev);
        self.record(&out);
    }

    fn grefs(&mut self, n: usize) -> Vec<u32> {
        let g: Vec<u32> = (0..n as u32).map(|i| self.next_gref + i).collect();
        self.next_gref += n as u32;
        g
    }
}

fn state(r: &mut Rng) -> State {
    State::ALL[r.below(9) as usize]
}

fn random_keys(r: &mut Rng) -> Keys {
    let names = [
        "state",
        "ring-ref",
        "ring-page-order",
        "ring-ref0",
        "ring-ref1",
        "ring-ref2",
        "ring-ref3",
        "event-channel",
        "protocol",
        "xenmq-protocol",
        "xenmq-version",
        "xenmq-fingerprint",
        "xenmq-instance",
        "xenmq-backend-instance",
        "xenmq-frontend-instance",
        "max-ring-page-order",
    ];
    let values = [
        "0",
        "1",
        "2",
        "3",
        "4",
        "9",
        "-1",
        "",
        "vkv",
        "x86_64-abi",
        "0123456789abcdef",
        "4294967295",
        "18446744073709551615",
        "abc",
        "\u{7}",
    ];
    let mut k = Keys::new();
    // Mostly coherent: the identity and instances right, the rest random.
    if r.below(3) > 0 {
        for (key, v) in [
            ("xenmq-protocol", "vkv"),
            ("xenmq-version", "1"),
            ("xenmq-fingerprint", "0123456789abcdef"),
            ("xenmq-instance", "1"),
            ("xenmq-backend-instance", "1"),
            ("xenmq-frontend-instance", "1"),
            ("event-channel", "5"),
            ("ring-ref", "77"),
        ] {
            k.insert(key, v.into());
        }
    }
    for _ in 0..r.below(8) {
        let key = r.pick(&names);
        let v = r.pick(&values);
        k.insert(key, v.into());
    }
    k
}

fn random_event(r: &mut Rng, b: &mut Books) -> Event {
    let ask = b.ask.clone();
    match r.below(10) {
        0 | 1 => Event::PeerState(state(r)),
        2 => Event::PeerStateValue(match r.below(3) {
            0 => None,
            1 => Some(state(r).as_str().into()),
            _ => Some(r.pick(&["x", "", "44", "-2"]).into()),
        }),
        3..=6 if ask.is_some() => match ask.unwrap() {
            Ask::Commit => match r.below(3) {
                0 => Event::CommitFailed {
                    again: r.below(2) == 0,
                },
                _ => Event::Committed,
            },
            Ask::Read => Event::KeysRead(random_keys(r)),
            Ask::Share(pages) => match r.below(6) {
                0 => Event::RingFailed("out of grants".into()),
                1 => {
                    let n = r.below(20) as usize;
                    Event::RingShared {
                        grefs: b.grefs(n),
                        port: 3,
                    }
                }
                _ => Event::RingShared {
                    grefs: b.grefs(pages),
                    port: 3,
                },
            },
            Ask::Map(_) => match r.below(4) {
                0 => Event::RingFailed("bad grant".into()),
                _ => Event::RingMapped,
            },
            Ask::Attach => match r.below(4) {
                0 => Event::Refused("the driver says no".into()),
                _ => Event::Attached,
            },
        },
        3..=6 => Event::PeerState(state(r)),
        7 => match r.below(9) {
            6 => Event::Attached,
            7 => Event::Refused("stray".into()),
            8 => Event::PeerFault("the ring broke".into()),
            0 => Event::Committed,
            1 => Event::KeysRead(random_keys(r)),
            2 => Event::RingShared {
                grefs: b.grefs(1),
                port: 4,
            },
            3 => Event::RingMapped,
            4 => Event::RingFailed("stray".into()),
            _ => Event::CommitFailed { again: true },
        },
        8 => Event::Close,
        _ => Event::Start,
    }
}

/// Answers what is outstanding, then closes, until nothing is held.
fn drain(b: &mut Books, handle: &mut dyn FnMut(Event) -> Output) {
    for _ in 0..50 {
        let ev = match b.ask.clone() {
            Some(Ask::Commit) => Event::Committed,
            Some(Ask::Read) => Event::KeysRead(Keys::new()),
            Some(Ask::Share(n)) => Event::RingShared {
                grefs: b.grefs(n),
                port: 3,
            },
            Some(Ask::Map(_)) => Event::RingFailed("drain".into()),
            Some(Ask::Attach) => Event::Attached,
            None => break,
        };
        b.feed(ev, handle);
    }
    b.feed(Event::Close, handle);
    b.feed(Event::PeerState(State::Closed), handle);
    assert_eq!(b.ask, None);
    assert!(!b.connected, "still connected after close");
    assert!(
        b.mapped.is_empty(),
        "still mapped after close: {:?}",
        b.mapped
    );
    assert_eq!(b.given, b.released, "grants given but never released");
}

fn params(front: bool, r: &mut Rng) -> Params {
    let order = r.below(5) as u8;
    if front {
        front_params(order)
    } else {
        back_params(order)
    }
}

#[test]
fn random_streams_frontend() {
    for seed in 0..20_000u64 {
        let mut r = Rng(seed);
        let mut f = FrontMachine::new(params(true, &mut r), 1).unwrap();
        let mut b = Books {
            front: true,
            next_gref: 1,
            ..Books::default()
        };
        let mut h = |ev| f.handle(ev);
        for _ in 0..r.below(60) {
            let ev = random_event(&mut r, &mut b);
            b.feed(ev, &mut h);
        }
        drain(&mut b, &mut h);
        assert!(!f.holds_ring(), "seed {seed}");
    }
}

#[test]
fn random_streams_backend() {
    for seed in 0..20_000u64 {
        let mut r = Rng(seed);
        let mut k = BackMachine::new(params(false, &mut r), 1).unwrap();
        let mut b = Books {
            next_gref: 1,
            ..Books::default()
        };
        let mut h = |ev| k.handle(ev);
        for _ in 0..r.below(60) {
            let ev = random_event(&mut r, &mut b);
            b.feed(ev, &mut h);
        }
        drain(&mut b, &mut h);
        assert!(!k.holds_ring(), "seed {seed}");
    }
}
