//! A hostile peer and a confused platform drive one xenbus machine (the
//! input's first byte picks frontend or backend): any peer states, any key
//! values, answers out of turn. Nothing may panic, no grant is released
//! that was not handed to the frontend or released twice, and a backend
//! unmaps exactly what it mapped. (`tests/tests/xenbus_fuzz.rs` runs the
//! same books on a stable toolchain, and also drains to a clean close.)

use std::collections::BTreeSet;

use crate::harness::Input;
use xenmq::xenbus::{
    Action, BackMachine, Event, FrontMachine, Identity, Keys, Output, Params, State,
};

const KEYS: [&str; 16] = [
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

#[derive(Default)]
struct Books {
    front: bool,
    asked_map: Option<Vec<u32>>,
    given: BTreeSet<u32>,
    released: BTreeSet<u32>,
    mapped: BTreeSet<u32>,
    next: u32,
}

impl Books {
    fn record(&mut self, out: &Output) {
        for a in &out.actions {
            match a {
                Action::MapRing { ring, .. } => self.asked_map = Some(ring.refs().to_vec()),
                Action::ReleaseRing { grefs, .. } => {
                    for g in grefs {
                        assert!(self.given.contains(g) && self.released.insert(*g));
                    }
                }
                Action::UnmapRing { grefs, .. } => {
                    let g: BTreeSet<u32> = grefs.iter().copied().collect();
                    assert_eq!(g, self.mapped);
                    self.mapped.clear();
                }
                _ => {}
            }
        }
    }
}

fn identity() -> Identity {
    Identity {
        name: "vkv".into(),
        version: 1,
        fingerprint: 0x0123_4567_89ab_cdef,
        ring: Default::default(),
    }
}

/// One execution.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(first) = input.byte() else { return };
    let mut params = Params::new("/fe", "/be", identity());
    params.max_ring_page_order = first % 5;
    let front = first & 0x80 != 0;
    let mut fe = FrontMachine::new(params.clone(), 1).expect("valid params");
    let mut be = BackMachine::new(params, 1).expect("valid params");
    let mut handle = |ev: Event| if front { fe.handle(ev) } else { be.handle(ev) };
    let mut books = Books {
        front,
        next: 1,
        ..Books::default()
    };
    while let Some(op) = input.byte() {
        let ev = match op % 14 {
            0 => Event::Start,
            1 => Event::Close,
            2 => Event::PeerState(State::ALL[usize::from(input.byte().unwrap_or(0) % 9)]),
            3 => Event::PeerStateValue(input.string()),
            4 => {
                let mut k = Keys::new();
                for _ in 0..input.byte().unwrap_or(0) % 12 {
                    let key = KEYS[usize::from(input.byte().unwrap_or(0) % 16)];
                    k.insert(key, input.string().unwrap_or_default());
                }
                Event::KeysRead(k)
            }
            5 => Event::Committed,
            6 => Event::CommitFailed {
                again: input.byte().unwrap_or(0).is_multiple_of(2),
            },
            7 => {
                let n = u32::from(input.byte().unwrap_or(1) % 20);
                let grefs: Vec<u32> = (books.next..books.next + n).collect();
                books.next += n;
                if books.front {
                    books.given.extend(&grefs);
                }
                Event::RingShared { grefs, port: 3 }
            }
            8 => {
                if let Some(g) = books.asked_map.take() {
                    books.mapped = g.into_iter().collect();
                }
                Event::RingMapped
            }
            9 => {
                books.asked_map = None;
                Event::RingFailed(input.string().unwrap_or_default())
            }
            10 => Event::Attached,
            11 => Event::Refused(input.string().unwrap_or_default()),
            12 => Event::PeerFault(input.string().unwrap_or_default()),
            _ => Event::PeerState(State::Closed),
        };
        let out = handle(ev);
        books.record(&out);
    }
}
