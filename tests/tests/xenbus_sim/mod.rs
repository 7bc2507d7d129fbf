//! A pure state-machine harness: a frontend and a backend machine wired
//! through an in-memory Xenstore-like map and a toy grant/port table.
//!
//! This is NOT a platform: no store server, no real grants, no event
//! channels. It performs the machines' actions on plain maps and feeds the
//! answers back, delivering watch events late (the peer's `state` is read
//! when the event is delivered, so events coalesce as on a real store) and,
//! with a seed, in a random order. Tests against the real store come when
//! the runtime integrates the machines.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use xenmq::xenbus::{
    Action, BackMachine, Error, Event, FrontMachine, Identity, Keys, Params, State,
};

pub const FE_DIR: &str = "/local/domain/3/device/vkv/0";
pub const BE_DIR: &str = "/local/domain/0/backend/vkv/3/0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Front,
    Back,
}

impl Side {
    pub fn dir(self) -> &'static str {
        match self {
            Side::Front => FE_DIR,
            Side::Back => BE_DIR,
        }
    }
    pub fn other(self) -> Side {
        match self {
            Side::Front => Side::Back,
            Side::Back => Side::Front,
        }
    }
}

#[derive(Debug, Clone)]
enum Item {
    Event(Event),
    /// The peer's `state` changed: read it at delivery.
    Watch,
}

pub fn identity() -> Identity {
    Identity {
        name: "vkv".into(),
        version: 1,
        fingerprint: 0x0123_4567_89ab_cdef,
        ring: Default::default(),
    }
}

pub fn front_params(max_order: u8) -> Params {
    let mut p = Params::new(FE_DIR, BE_DIR, identity());
    p.max_ring_page_order = max_order;
    p
}

pub fn back_params(max_order: u8) -> Params {
    let mut p = Params::new(BE_DIR, FE_DIR, identity());
    p.max_ring_page_order = max_order;
    p
}

pub struct World {
    pub store: BTreeMap<String, String>,
    pub front: FrontMachine,
    pub back: BackMachine,
    queue: Vec<(Side, Item)>,
    rng: Option<u64>,
    next_gref: u32,
    next_port: u32,
    /// Grants the frontend gave and has not ended.
    pub granted: BTreeSet<u32>,
    /// Grants ended while still mapped (freed later, as after XSA-396).
    pub deferred: BTreeSet<u32>,
    /// Ports the frontend allocated and has not closed.
    pub ports: BTreeSet<u32>,
    /// Grants the backend maps.
    pub mapped: BTreeSet<u32>,
    /// The port the backend bound.
    pub bound: Option<u32>,
    pub front_connected: bool,
    pub back_connected: bool,
    pub errors: Vec<(Side, Error)>,
    /// Every action performed, in order.
    pub log: Vec<(Side, Action)>,
    /// How many of the next commits fail with EAGAIN.
    pub eagain: u32,
    pub steps: usize,
    /// The last frontend incarnation started.
    pub front_instance: u64,
}

impl World {
    pub fn new(front_max: u8, back_max: u8) -> Self {
        World::with(
            FrontMachine::new(front_params(front_max), 1).expect("front params"),
            BackMachine::new(back_params(back_max), 1).expect("back params"),
        )
    }

    pub fn with(front: FrontMachine, back: BackMachine) -> Self {
        let mut store = BTreeMap::new();
        // What the toolstack writes before either driver runs.
        store.insert(format!("{FE_DIR}/state"), "1".to_string());
        store.insert(format!("{BE_DIR}/state"), "1".to_string());
        World {
            store,
            front,
            back,
            queue: Vec::new(),
            rng: None,
            next_gref: 8,
            next_port: 20,
            granted: BTreeSet::new(),
            deferred: BTreeSet::new(),
            ports: BTreeSet::new(),
            mapped: BTreeSet::new(),
            bound: None,
            front_connected: false,
            back_connected: false,
            errors: Vec::new(),
            log: Vec::new(),
            eagain: 0,
            steps: 0,
            front_instance: 1,
        }
    }

    /// Delivers queued items in a random order drawn from `seed`.
    pub fn shuffle(&mut self, seed: u64) {
        self.rng = Some(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }

    /// Starts both ends: each registers its watch (which fires once) and
    /// gets `Start`.
    pub fn start(&mut self) {
        self.push(Side::Back, Event::Start);
        self.queue.push((Side::Back, Item::Watch));
        self.push(Side::Front, Event::Start);
        self.queue.push((Side::Front, Item::Watch));
    }

    pub fn push(&mut self, side: Side, ev: Event) {
        self.queue.push((side, Item::Event(ev)));
    }

    pub fn key(&self, side: Side, key: &str) -> Option<&str> {
        self.store
            .get(&format!("{}/{key}", side.dir()))
            .map(String::as_str)
    }

    pub fn state(&self, side: Side) -> Option<State> {
        self.key(side, "state").and_then(|s| State::parse(s).ok())
    }

    fn next_index(&mut self) -> usize {
        match &mut self.rng {
            None => 0,
            Some(r) => {
                *r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*r >> 33) as usize) % self.queue.len()
            }
        }
    }

    /// Delivers one queued item; false when none is left.
    pub fn step(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        self.steps += 1;
        assert!(self.steps < 100_000, "no quiescence: the machines livelock");
        let i = self.next_index();
        let (side, item) = self.queue.remove(i);
        let ev = match item {
            Item::Event(e) => e,
            Item::Watch => {
                Event::PeerStateValue(self.key(side.other(), "state").map(str::to_string))
            }
        };
        let out = match side {
            Side::Front => self.front.handle(ev),
            Side::Back => self.back.handle(ev),
        };
        if let Some(e) = out.error {
            self.errors.push((side, e));
        }
        for a in out.actions {
            self.perform(side, a);
        }
        true
    }

    /// Runs until nothing is left to deliver.
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// A write by `side` behind its machine's back (a hostile or buggy
    /// peer): fires the other side's watch if it is the state.
    pub fn poke(&mut self, side: Side, key: &str, value: &str) {
        self.write(side, key, value.to_string());
    }

    fn write(&mut self, side: Side, key: &str, value: String) {
        self.store.insert(format!("{}/{key}", side.dir()), value);
        if key == "state" {
            self.queue.push((side.other(), Item::Watch));
        }
    }

    fn perform(&mut self, side: Side, a: Action) {
        self.log.push((side, a.clone()));
        match a {
            Action::Commit { writes, state } => {
                if self.eagain > 0 {
                    self.eagain -= 1;
                    self.push(side, Event::CommitFailed { again: true });
                    return;
                }
                for (k, v) in writes {
                    self.write(side, &k, v);
                }
                if let Some(s) = state {
                    self.write(side, "state", s.as_str().to_string());
                }
                self.push(side, Event::Committed);
            }
            Action::SwitchState(s) => self.write(side, "state", s.as_str().to_string()),
            Action::ReadPeer { keys } => {
                let dir = side.other().dir();
                let store = &self.store;
                let k = Keys::read_with(&keys, |key| store.get(&format!("{dir}/{key}")).cloned());
                self.push(side, Event::KeysRead(k));
            }
            Action::ShareRing { pages } => {
                assert_eq!(side, Side::Front, "only a frontend shares");
                let grefs: Vec<u32> = (0..pages as u32).map(|i| self.next_gref + i).collect();
                self.next_gref += pages as u32;
                self.granted.extend(&grefs);
                let port = self.next_port;
                self.next_port += 1;
                self.ports.insert(port);
                self.push(side, Event::RingShared { grefs, port });
            }
            Action::MapRing { ring, port } => {
                assert_eq!(side, Side::Back, "only a backend maps");
                assert!(
                    self.mapped.is_empty(),
                    "mapping a second ring while one is mapped"
                );
                let ok = ring.refs().iter().all(|g| self.granted.contains(g))
                    && self.ports.contains(&port);
                if ok {
                    self.mapped.extend(ring.refs());
                    self.bound = Some(port);
                    self.push(side, Event::RingMapped);
                } else {
                    self.push(side, Event::RingFailed("grant not granted to us".into()));
                }
            }
            Action::ReleaseRing { grefs, port } => {
                assert_eq!(side, Side::Front);
                for g in grefs {
                    assert!(
                        self.granted.remove(&g),
                        "released gref {g} twice or never granted"
                    );
                    if self.mapped.contains(&g) {
                        self.deferred.insert(g);
                    }
                }
                assert!(self.ports.remove(&port), "closed port {port} twice");
            }
            Action::UnmapRing { grefs, port } => {
                assert_eq!(side, Side::Back);
                for g in grefs {
                    assert!(
                        self.mapped.remove(&g),
                        "unmapped gref {g} twice or never mapped"
                    );
                    self.deferred.remove(&g);
                }
                assert_eq!(self.bound.take(), Some(port), "unbound a port never bound");
            }
            Action::Connect(c) => {
                let flag = match side {
                    Side::Front => &mut self.front_connected,
                    Side::Back => &mut self.back_connected,
                };
                assert!(!*flag, "connected twice");
                *flag = true;
                if side == Side::Back {
                    assert_eq!(Some(c.port), self.bound);
                    self.push(side, Event::Attached);
                }
            }
            Action::Disconnect => {
                let flag = match side {
                    Side::Front => &mut self.front_connected,
                    Side::Back => &mut self.back_connected,
                };
                assert!(*flag, "disconnected while not connected");
                *flag = false;
            }
            Action::WriteError(m) => self.write(side, "error", m),
        }
    }

    /// The backend process dies: its mappings go with it, its store keys
    /// stay. A new incarnation (`instance`) starts.
    pub fn restart_backend(&mut self, instance: u64, max_order: u8) {
        for g in std::mem::take(&mut self.mapped) {
            self.deferred.remove(&g);
        }
        self.bound = None;
        self.back_connected = false;
        self.queue.retain(|(s, _)| *s != Side::Back);
        self.back = BackMachine::new(back_params(max_order), instance).expect("params");
        self.push(Side::Back, Event::Start);
        self.queue.push((Side::Back, Item::Watch));
    }

    /// The frontend process dies: its grants are ended (deferred if still
    /// mapped) and its ports closed; its store keys stay.
    pub fn restart_frontend(&mut self, max_order: u8) {
        for g in std::mem::take(&mut self.granted) {
            if self.mapped.contains(&g) {
                self.deferred.insert(g);
            }
        }
        self.ports.clear();
        self.front_connected = false;
        self.queue.retain(|(s, _)| *s != Side::Front);
        self.front_instance += 1;
        self.front =
            FrontMachine::new(front_params(max_order), self.front_instance).expect("params");
        self.push(Side::Front, Event::Start);
        self.queue.push((Side::Front, Item::Watch));
    }

    pub fn connected(&self) -> bool {
        self.state(Side::Front) == Some(State::Connected)
            && self.state(Side::Back) == Some(State::Connected)
            && self.front_connected
            && self.back_connected
            && self.front.holds_ring()
            && self.back.holds_ring()
    }

    /// Nothing granted, mapped, allocated or bound any more.
    pub fn assert_clean(&self) {
        assert!(self.granted.is_empty(), "leaked grants {:?}", self.granted);
        assert!(self.ports.is_empty(), "leaked ports {:?}", self.ports);
        assert!(self.mapped.is_empty(), "leaked mappings {:?}", self.mapped);
        assert!(
            self.deferred.is_empty(),
            "grants never freed {:?}",
            self.deferred
        );
        assert_eq!(self.bound, None, "port still bound");
        assert!(!self.front.holds_ring() && !self.back.holds_ring());
        assert!(!self.front_connected && !self.back_connected);
    }

    /// The ring the backend maps is exactly the one the frontend granted.
    pub fn assert_same_ring(&self) {
        assert_eq!(self.granted, self.mapped);
        assert_eq!(
            self.ports.iter().copied().collect::<Vec<_>>(),
            self.bound.into_iter().collect::<Vec<_>>()
        );
    }
}
