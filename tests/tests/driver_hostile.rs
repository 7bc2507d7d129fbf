//! Hostile peers during the handshake, at the runtime level on the
//! simulator (issue 4, "Bad input").
//!
//! A real echo backend process serves every echo device; an honest guest
//! pings through it the whole time. Hostile guests, played here by hand
//! (a Xenstore connection and a grant table/event channels as the guest
//! domain), write nonsense into their keys, point at grants the backend
//! cannot map, lie about their ring size or stop mid-handshake. Each time
//! the backend writes an `error` node saying why (or, for a frontend that
//! merely stops, waits holding nothing), lets go of every mapping and port,
//! and the honest guest keeps being served.

mod driver_support;

use driver_support::{eventually, field, Proc, World};
use xenmq::evtchn::{Channel as _, Events, Port};
use xenmq::grant::{Access, DomId, GrantRef, Grants, Shared};
use xenmq::xenbus::NATIVE_ABI;
use xenmq::xenstore::{self, Store, Tx};
use xenmq_runtime::device::sim::{attach, SimEnv};
use xenmq_runtime::sim::{Channel, SharedPages};

/// A guest with an echo device whose frontend is played by hand.
struct Hostile {
    id: DomId,
    env: SimEnv,
    fe: String,
    be: String,
    pages: Vec<SharedPages>,
    chans: Vec<Channel>,
}

impl Hostile {
    fn new(w: &World) -> Hostile {
        let id = w.guest("echo");
        let env = attach(&w.dir, id).expect("attach as the hostile guest");
        Hostile {
            id,
            env,
            fe: format!("/local/domain/{id}/device/echo/0"),
            be: format!("/local/domain/0/backend/echo/{id}/0"),
            pages: Vec::new(),
            chans: Vec::new(),
        }
    }

    /// Waits for the backend's InitWait.
    fn wait_initwait(&self, w: &World) {
        eventually("the backend waits for the frontend", || {
            self.be_read(w, "state").as_deref() == Some("2")
        });
    }

    fn be_read(&self, w: &World, key: &str) -> Option<String> {
        w.xs_read(&format!("{}/{key}", self.be))
    }

    /// `pages` pages granted to `to`.
    fn grant(&mut self, to: DomId, pages: usize, access: Access) -> Vec<GrantRef> {
        let p = self.env.grants.share(to, pages, access).expect("grant");
        let refs = p.refs().to_vec();
        self.pages.push(p);
        refs
    }

    /// An unbound port for `to`.
    fn port(&mut self, to: DomId) -> Port {
        let c = self.env.events.alloc_unbound(to).expect("alloc unbound");
        let port = c.port();
        self.chans.push(c);
        port
    }

    /// What an honest frontend publishes for a one-page ring, with the
    /// ring and port given.
    fn keys(&self, w: &World, ring: GrantRef, port: Port) -> Vec<(String, String)> {
        let be = |k: &str| self.be_read(w, k).unwrap_or_default();
        [
            ("ring-ref", ring.to_string()),
            ("event-channel", port.to_string()),
            ("protocol", NATIVE_ABI.to_string()),
            ("xenmq-protocol", be("xenmq-protocol")),
            ("xenmq-version", be("xenmq-version")),
            ("xenmq-fingerprint", be("xenmq-fingerprint")),
            ("xenmq-ring-layout", be("xenmq-ring-layout")),
            ("xenmq-instance", "4242".to_string()),
            ("xenmq-backend-instance", be("xenmq-instance")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A fresh ring page and port for dom0, and the keys naming them.
    fn honest_keys(&mut self, w: &World) -> Vec<(String, String)> {
        let ring = self.grant(0, 1, Access::ReadWrite)[0];
        let port = self.port(0);
        self.keys(w, ring, port)
    }

    /// Writes `pairs` (and `state`, if any) in one transaction, as the guest.
    fn publish(&self, pairs: &[(String, String)], state: Option<&str>) {
        let s = &self.env.store;
        xenstore::transaction(s, |tx| {
            for (k, v) in pairs {
                s.write(tx, &format!("{}/{k}", self.fe), v.as_bytes())?;
            }
            if let Some(st) = state {
                s.write(tx, &format!("{}/state", self.fe), st.as_bytes())?;
            }
            Ok(())
        })
        .expect("publish as the guest");
    }

    fn rm(&self, key: &str) {
        let _ = self.env.store.rm(Tx::NONE, &format!("{}/{key}", self.fe));
    }

    /// Mappings the backend holds of this guest's grants.
    fn mapped(&self, w: &World) -> u32 {
        w.info(self.id).map_or(0, |d| d.maps)
    }
}

/// Replaces the value of `key` in `keys` (or adds it).
fn set(mut keys: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    keys.retain(|(k, _)| k != key);
    keys.push((key.into(), value.into()));
    keys
}

fn without(mut keys: Vec<(String, String)>, key: &str) -> Vec<(String, String)> {
    keys.retain(|(k, _)| k != key);
    keys
}

/// The honest guest is still being answered: a progress line printed after now.
fn still_served(honest: &mut Proc) {
    honest.drain();
    honest.expect("progress");
}

/// What dom0 holds, as the host counts it.
fn dom0(w: &World) -> (u32, u32, u32) {
    let d = w.info(0).expect("dom0");
    (d.grants, d.maps, d.ports)
}

/// The backend refused the hostile guest with an error naming `why`,
/// closed the device and let go of everything; then the guest dies and
/// the backend drops the device.
fn refused(w: &World, h: Hostile, base: (u32, u32, u32), why: &[&str], back: &mut Proc) {
    eventually(&format!("an error node for {why:?}"), || {
        h.be_read(w, "error").is_some()
    });
    let error = h.be_read(w, "error").unwrap();
    eprintln!("guest {}: {error}", h.id);
    for part in why {
        assert!(error.contains(part), "error node {error:?} lacks {part:?}");
    }
    eventually("the backend closes the device", || {
        matches!(h.be_read(w, "state").as_deref(), Some("5" | "6"))
    });
    eventually("the backend lets go of the guest's ring and port", || {
        h.mapped(w) == 0 && dom0(w) == base
    });
    gone(w, h, base, back);
}

/// The guest dies; the backend drops its device and holds what it held before.
fn gone(w: &World, h: Hostile, base: (u32, u32, u32), back: &mut Proc) {
    let (id, be) = (h.id, h.be.clone());
    drop(h);
    // Killed already, or destroyed now.
    let _ = w.host.destroy_domain(id);
    assert!(
        w.host.wait_gone(id, driver_support::WAIT),
        "guest {id} gone"
    );
    eventually("the backend removes the dead guest's device", || {
        w.xs_read(&format!("{be}/state")).is_none()
    });
    eventually("dom0 holds what it held before", || dom0(w) == base);
    assert!(
        back.child.try_wait().expect("backend status").is_none(),
        "the backend process died: {:?}",
        back.drain()
    );
}

#[test]
fn hostile_frontends_are_refused_and_the_honest_guest_is_served() {
    let w = World::new("hostile-fe");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let good = w.guest("echo");
    let mut honest = w.spawn(good, &["echo-frontend"]);
    honest.expect("connected");
    back.expect(&format!("connected {good} 0 1"));
    still_served(&mut honest);
    let base = dom0(&w);

    // (1) Nonsense in the keys.
    let nonsense: [(&str, &str, &[&str]); 6] = [
        (
            "ring-ref",
            "banana",
            &["ring-ref", "\"banana\"", "unsigned 32-bit integer"],
        ),
        (
            "event-channel",
            "-1",
            &["event-channel", "\"-1\"", "unsigned"],
        ),
        ("xenmq-instance", "1e3", &["xenmq-instance", "\"1e3\""]),
        (
            "xenmq-backend-instance",
            "0x10",
            &["xenmq-backend-instance", "\"0x10\""],
        ),
        ("protocol", "x86_32-abi", &["abi mismatch", "x86_32-abi"]),
        (
            "xenmq-ring-layout",
            "ring.h",
            &["ring layout mismatch", "\"ring.h\""],
        ),
    ];
    for (key, value, why) in nonsense {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = set(h.honest_keys(&w), key, value);
        h.publish(&keys, Some("3"));
        refused(&w, h, base, why, &mut back);
        still_served(&mut honest);
    }
    // A state that is no state, after a valid ring was offered and mapped.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys, Some("3"));
        eventually("the backend connects", || {
            h.be_read(&w, "state").as_deref() == Some("4")
        });
        assert_eq!(h.mapped(&w), 1, "the backend maps the one ring page");
        h.publish(&[], Some("banana"));
        refused(
            &w,
            h,
            base,
            &["\"banana\"", "not a xenbus state"],
            &mut back,
        );
        still_served(&mut honest);
    }

    // States a frontend has no business in, or Connected with no keys.
    for (state, why) in [
        ("2", &["frontend entered initwait", "never does"][..]),
        ("7", &["reconfiguration is not supported"][..]),
        ("4", &["missing"][..]),
    ] {
        let h = Hostile::new(&w);
        h.wait_initwait(&w);
        h.publish(&[], Some(state));
        refused(&w, h, base, why, &mut back);
        still_served(&mut honest);
    }
    // Keys published for another backend incarnation are not an offer:
    // the backend keeps waiting, holding nothing, blaming no one.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let ours: u64 = h.be_read(&w, "xenmq-instance").unwrap().parse().unwrap();
        let other = (ours ^ 1).to_string();
        let keys = set(h.honest_keys(&w), "xenmq-backend-instance", &other);
        h.publish(&keys, Some("3"));
        still_served(&mut honest);
        assert_eq!(h.be_read(&w, "state").as_deref(), Some("2"));
        assert_eq!(h.be_read(&w, "error"), None);
        assert_eq!((h.mapped(&w), dom0(&w)), (0, base));
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }
    // A refused frontend that starts over properly is served again.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = set(h.honest_keys(&w), "ring-ref", "banana");
        h.publish(&keys, Some("3"));
        eventually("the backend closes the device", || {
            h.be_read(&w, "state").as_deref() == Some("5")
        });
        assert!(h
            .be_read(&w, "error")
            .is_some_and(|e| e.contains("ring-ref")));
        h.publish(&[], Some("1"));
        h.wait_initwait(&w);
        let keys = set(h.honest_keys(&w), "xenmq-instance", "4343");
        h.publish(&keys, Some("3"));
        eventually("the backend connects", || {
            h.be_read(&w, "state").as_deref() == Some("4")
        });
        assert_eq!(
            h.be_read(&w, "xenmq-frontend-instance").as_deref(),
            Some("4343")
        );
        // Connected again: the old complaint no longer describes the device.
        assert_eq!(h.be_read(&w, "error"), None);
        assert_eq!((h.mapped(&w), dom0(&w).2), (1, base.2 + 1));
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }
    // Back to Initialised out of Closing: not a legal move.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys, Some("3"));
        eventually("the backend connects", || {
            h.be_read(&w, "state").as_deref() == Some("4")
        });
        h.publish(&[], Some("5"));
        eventually("the backend follows the close", || {
            h.be_read(&w, "state").as_deref() == Some("5") && h.mapped(&w) == 0
        });
        h.publish(&[], Some("3"));
        refused(
            &w,
            h,
            base,
            &[
                "frontend went from closing to initialised",
                "not a legal transition",
            ],
            &mut back,
        );
        still_served(&mut honest);
    }
    // A ring page whose indices are nonsense before anything was sent.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.pages[0]
            .write(0, &0x4000_0000u32.to_le_bytes())
            .expect("poke the ring");
        h.publish(&keys, Some("3"));
        refused(&w, h, base, &["producer index"], &mut back);
        still_served(&mut honest);
    }
    // A buffer pool the protocol does not have.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let pool = h.grant(0, 1, Access::ReadWrite)[0];
        let keys = set(h.honest_keys(&w), "xenmq-pool-refs", &pool.to_string());
        h.publish(&keys, Some("3"));
        eventually("an error node", || h.be_read(&w, "error").is_some());
        // The refusal came before Connected: the frontend instance echo,
        // committed with Connected, was never written.
        assert_eq!(h.be_read(&w, "xenmq-frontend-instance"), None);
        refused(
            &w,
            h,
            base,
            &["xenmq-pool-refs", "1 buffer pages"],
            &mut back,
        );
        still_served(&mut honest);
    }
    // A frontend that keeps restarting with new rings: the backend follows,
    // holding one ring at most.
    {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        for i in 0..10 {
            let keys = set(h.honest_keys(&w), "xenmq-instance", &(100 + i).to_string());
            h.publish(&keys, Some("3"));
            if i % 2 == 0 {
                eventually("the backend connects", || {
                    h.be_read(&w, "state").as_deref() == Some("4")
                });
            }
            assert!(h.mapped(&w) <= 1, "one ring mapped at most");
            h.publish(&[], Some("1"));
        }
        eventually("the backend waits again, holding nothing", || {
            h.be_read(&w, "state").as_deref() == Some("2") && h.mapped(&w) == 0 && dom0(&w) == base
        });
        assert_eq!(h.be_read(&w, "error"), None);
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }

    // (2) Grants and ports the backend cannot use.
    type Bad = fn(&mut Hostile, &World, DomId) -> Vec<(String, String)>;
    let bad_grants: [(&str, Bad, &[&str]); 5] = [
        (
            "a ring-ref never granted",
            |h, w, _| {
                let port = h.port(0);
                h.keys(w, 999, port)
            },
            &["ring set-up failed", "reference 999", "not granted"],
        ),
        (
            "a ring granted to another domain",
            |h, w, other| {
                let ring = h.grant(other, 1, Access::ReadWrite)[0];
                let port = h.port(0);
                h.keys(w, ring, port)
            },
            &["ring set-up failed", "not granted to this domain"],
        ),
        (
            "a read-only ring",
            |h, w, _| {
                let ring = h.grant(0, 1, Access::ReadOnly)[0];
                let port = h.port(0);
                h.keys(w, ring, port)
            },
            &["ring set-up failed", "read-only"],
        ),
        (
            "a port never allocated",
            |h, w, _| {
                let ring = h.grant(0, 1, Access::ReadWrite)[0];
                h.keys(w, ring, 999)
            },
            &["ring set-up failed", "port 999", "cannot be bound"],
        ),
        (
            "a port for another domain",
            |h, w, other| {
                let ring = h.grant(0, 1, Access::ReadWrite)[0];
                let port = h.port(other);
                h.keys(w, ring, port)
            },
            &["ring set-up failed", "event channel", "cannot be bound"],
        ),
    ];
    for (what, play, why) in bad_grants {
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = play(&mut h, &w, good);
        h.publish(&keys, Some("3"));
        eprintln!("{what}:");
        refused(&w, h, base, why, &mut back);
        still_served(&mut honest);
    }

    // (3) Lies about the ring's size (echo accepts up to order 2).
    {
        // Order 3, eight real grants: larger than the backend's maximum.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        assert_eq!(h.be_read(&w, "max-ring-page-order").as_deref(), Some("2"));
        let refs = h.grant(0, 8, Access::ReadWrite);
        let port = h.port(0);
        let mut keys = without(h.keys(&w, refs[0], port), "ring-ref");
        keys.push(("ring-page-order".into(), "3".into()));
        for (i, r) in refs.iter().enumerate() {
            keys.push((format!("ring-ref{i}"), r.to_string()));
        }
        h.publish(&keys, Some("3"));
        refused(
            &w,
            h,
            base,
            &["ring-page-order", "page order 3", "maximum of 2"],
            &mut back,
        );
        still_served(&mut honest);
    }
    {
        // Order 2 claimed, two references given.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let refs = h.grant(0, 2, Access::ReadWrite);
        let port = h.port(0);
        let mut keys = without(h.keys(&w, refs[0], port), "ring-ref");
        keys.push(("ring-page-order".into(), "2".into()));
        keys.push(("ring-ref0".into(), refs[0].to_string()));
        keys.push(("ring-ref1".into(), refs[1].to_string()));
        h.publish(&keys, Some("3"));
        refused(&w, h, base, &["ring-ref2", "missing"], &mut back);
        still_served(&mut honest);
    }
    {
        // Order 2 claimed with four references, only one of them granted.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let refs = h.grant(0, 1, Access::ReadWrite);
        let port = h.port(0);
        let mut keys = without(h.keys(&w, refs[0], port), "ring-ref");
        keys.push(("ring-page-order".into(), "2".into()));
        for i in 0..4u32 {
            keys.push((format!("ring-ref{i}"), (refs[0] + i).to_string()));
        }
        h.publish(&keys, Some("3"));
        refused(
            &w,
            h,
            base,
            &["ring set-up failed", "not granted"],
            &mut back,
        );
        still_served(&mut honest);
    }
    {
        // An order no ring has.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = set(h.honest_keys(&w), "ring-page-order", "200");
        h.publish(&keys, Some("3"));
        refused(
            &w,
            h,
            base,
            &["ring-page-order", "\"200\"", "0..=4"],
            &mut back,
        );
        still_served(&mut honest);
    }

    // (4) Stopping mid-handshake.
    {
        // Half the keys, Initialised: the missing one is named.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = without(h.honest_keys(&w), "event-channel");
        h.publish(&keys, Some("3"));
        refused(&w, h, base, &["event-channel", "missing"], &mut back);
        still_served(&mut honest);
    }
    {
        // Half the keys, never Initialised, then dead: nothing to blame,
        // nothing held meanwhile.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys[..2], None);
        still_served(&mut honest);
        assert_eq!(h.be_read(&w, "state").as_deref(), Some("2"));
        assert_eq!(h.be_read(&w, "error"), None);
        assert_eq!((h.mapped(&w), dom0(&w)), (0, base));
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }
    {
        // Initialised with a good ring, then dead before saying Connected.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys, Some("3"));
        eventually("the backend connects", || {
            h.be_read(&w, "state").as_deref() == Some("4")
        });
        assert_eq!(dom0(&w).2, base.2 + 1, "the backend bound a port");
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }
    for _ in 0..3 {
        // Initialised, then killed at once: the backend maps a ring being
        // torn down, or finds it gone; either way it ends holding nothing.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys, Some("3"));
        let _ = w.host.kill_domain(h.id);
        gone(&w, h, base, &mut back);
        still_served(&mut honest);
    }
    {
        // Keys withdrawn between Initialised and the backend's read.
        let mut h = Hostile::new(&w);
        h.wait_initwait(&w);
        let keys = h.honest_keys(&w);
        h.publish(&keys, Some("3"));
        h.rm("ring-ref");
        // Mapped (it read in time) or refused (it did not): never stuck
        // holding a half-set-up ring.
        eventually("the backend connects or refuses", || {
            matches!(h.be_read(&w, "state").as_deref(), Some("4" | "5" | "6"))
        });
        if h.be_read(&w, "state").as_deref() == Some("4") {
            assert_eq!(h.mapped(&w), 1);
            gone(&w, h, base, &mut back);
        } else {
            refused(&w, h, base, &["ring-ref", "missing"], &mut back);
        }
        still_served(&mut honest);
    }

    // The honest guest lost nothing and never reconnected.
    honest.send("stop");
    let summary = honest.expect("summary");
    assert_eq!(field(&summary, "lost"), 0, "{summary}");
    assert_eq!(field(&summary, "dup"), 0, "{summary}");
    assert_eq!(field(&summary, "connects"), 1, "{summary}");
    assert_eq!(field(&summary, "ok"), field(&summary, "submitted"));
    honest.expect("closed");
    honest.close_stdin();
    honest.wait_success();
}

/// Connects `h` with fresh honest keys (a new frontend incarnation).
fn connect(w: &World, h: &mut Hostile, instance: u32) {
    h.wait_initwait(w);
    let keys = set(h.honest_keys(w), "xenmq-instance", &instance.to_string());
    h.publish(&keys, Some("3"));
    eventually("the backend connects", || {
        h.be_read(w, "state").as_deref() == Some("4")
    });
    assert_eq!(h.be_read(w, "error"), None, "connected: no error left");
    assert_eq!(h.mapped(w), 1);
}

/// Breaks the connected ring (a producer index a ring's length ahead of
/// the consumer) and kicks the backend.
fn corrupt(h: &Hostile) {
    let ring = h.pages.last().expect("a ring page");
    ring.write(0, &0x4000_0000u32.to_le_bytes())
        .expect("poke the ring");
    h.chans.last().expect("a port").notify().expect("notify");
}

/// The backend closes the broken device within a second: `error` says why,
/// the ring is unmapped and the port closed.
fn closes_within_a_second(w: &World, h: &Hostile, base: (u32, u32, u32), why: &str) {
    let t = std::time::Instant::now();
    while !(h.be_read(w, "state").as_deref() == Some("5") && h.mapped(w) == 0 && dom0(w) == base) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "the backend did not close and unmap within 1 s: state {:?}, mapped {}",
            h.be_read(w, "state"),
            h.mapped(w)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let error = h.be_read(w, "error").expect("an error node");
    eprintln!("closed in {:?}: {error}", t.elapsed());
    assert!(error.contains(why), "error node {error:?} lacks {why:?}");
}

/// The standard frontend reset: Closing, Closed, Initialising.
fn reset(h: &Hostile) {
    for s in ["5", "6", "1"] {
        h.publish(&[], Some(s));
    }
}

#[test]
fn broken_devices_recover_on_reset_within_their_fault_budget() {
    let w = World::new("hostile-recovery");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut h = Hostile::new(&w);
    h.wait_initwait(&w);
    let base = dom0(&w);

    // Protocol violations within the budget (3 a minute): each closes the
    // device, each reset brings it back.
    for i in 0..3 {
        connect(&w, &mut h, 100 + i);
        corrupt(&h);
        closes_within_a_second(&w, &h, base, "producer index");
        reset(&h);
    }
    // A dead peer (its event channel closed) is not a violation: closed
    // and unmapped within a second, then served again after its reset.
    connect(&w, &mut h, 200);
    h.chans.clear();
    closes_within_a_second(&w, &h, base, "event channel");
    reset(&h);
    // The fourth violation within the minute: closed for good, reset or not.
    connect(&w, &mut h, 300);
    corrupt(&h);
    eventually("the backend closes the device", || {
        matches!(h.be_read(&w, "state").as_deref(), Some("5" | "6")) && h.mapped(&w) == 0
    });
    reset(&h);
    eventually("the backend follows the frontend to Closed", || {
        h.be_read(&w, "state").as_deref() == Some("6")
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(h.be_read(&w, "state").as_deref(), Some("6"), "stays closed");
    let error = h.be_read(&w, "error").expect("an error node");
    assert!(
        error.contains("producer index") && error.contains("until the toolstack re-creates it"),
        "{error}"
    );
    assert_eq!(dom0(&w), base);
    gone(&w, h, base, &mut back);
}

/// A real echo frontend facing a backend played by hand as dom0.
struct HostileBackend<'w> {
    w: &'w World,
    guest: DomId,
    fe: String,
    be: String,
    front: Proc,
}

impl<'w> HostileBackend<'w> {
    /// A guest whose frontend tries to connect for `ms` milliseconds.
    fn new(w: &'w World, ms: u64) -> Self {
        let guest = w.guest("echo");
        let front = w.spawn(guest, &["echo-connect", &ms.to_string()]);
        HostileBackend {
            w,
            guest,
            fe: format!("/local/domain/{guest}/device/echo/0"),
            be: format!("/local/domain/0/backend/echo/{guest}/0"),
            front,
        }
    }

    /// What an honest echo backend publishes with InitWait.
    fn keys() -> Vec<(String, String)> {
        use xenmq::driver::Protocol;
        use xenmq_examples::echo::Echo;
        [
            ("xenmq-protocol", Echo::NAME.to_string()),
            ("xenmq-version", Echo::VERSION.to_string()),
            ("xenmq-fingerprint", format!("{:016x}", Echo::FINGERPRINT)),
            (
                "xenmq-ring-layout",
                Echo::identity().ring.name().to_string(),
            ),
            ("max-ring-page-order", Echo::MAX_RING_PAGE_ORDER.to_string()),
            ("xenmq-instance", "77".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Writes `pairs` and `state` in one transaction, as dom0.
    fn publish(&self, pairs: &[(String, String)], state: &str) {
        let s = &self.w.xs;
        xenstore::transaction(s, |tx| {
            for (k, v) in pairs {
                s.write(tx, &format!("{}/{k}", self.be), v.as_bytes())?;
            }
            s.write(tx, &format!("{}/state", self.be), state.as_bytes())?;
            Ok(())
        })
        .expect("publish as dom0");
    }

    fn fe_read(&self, key: &str) -> Option<String> {
        self.w.xs_read(&format!("{}/{key}", self.fe))
    }

    /// (grants, ports) the guest holds.
    fn holds(&self) -> (u32, u32) {
        let d = self.w.info(self.guest).expect("guest alive");
        (d.grants, d.ports)
    }

    /// Waits for the frontend's Initialised, holding its ring and port.
    fn wait_initialised(&self) {
        eventually("the frontend offers its ring", || {
            self.fe_read("state").as_deref() == Some("3")
        });
        assert_eq!(self.holds(), (1, 1), "one ring page and one port");
    }

    /// The frontend gave up saying `why` (also in its `error` node if
    /// `node`: it closed the device) holding `held` (grants, ports), its
    /// state one of `states`; then it closes holding nothing.
    fn refused(mut self, why: &[&str], node: bool, held: (u32, u32), states: &[&str]) {
        let t = std::time::Instant::now();
        let line = self.front.expect("refused");
        for part in why {
            assert!(line.contains(part), "{line:?} lacks {part:?}");
        }
        if node {
            let error = self.fe_read("error").unwrap_or_default();
            for part in why {
                assert!(error.contains(part), "error node {error:?} lacks {part:?}");
            }
        }
        let state = self.fe_read("state").unwrap_or_default();
        assert!(states.contains(&state.as_str()), "state {state:?}");
        eprintln!("guest {}: {line} after {:?}", self.guest, t.elapsed());
        assert_eq!(self.holds(), held, "what the frontend holds once refused");
        // The backend follows the frontend's close, so that it need not
        // wait for it.
        self.publish(&[], "6");
        self.front.send("stop");
        self.front.expect("closed");
        assert_eq!(self.holds(), (0, 0));
        self.front.close_stdin();
        self.front.wait_success();
        // The backend's part of the clean-up: its directory goes.
        let _ = self.w.xs.rm(Tx::NONE, &self.be);
    }
}

#[test]
fn hostile_backends_are_refused_by_the_frontend() {
    let w = World::new("hostile-be-hs");
    let good = HostileBackend::keys;

    // Nonsense in the keys published with InitWait.
    for (key, value, why) in [
        (
            "max-ring-page-order",
            "banana",
            &["max-ring-page-order", "\"banana\"", "unsigned 32-bit"][..],
        ),
        (
            "max-ring-page-order",
            "4294967296",
            &["max-ring-page-order", "\"4294967296\""][..],
        ),
        ("xenmq-instance", "-5", &["xenmq-instance", "\"-5\""][..]),
        (
            "xenmq-fingerprint",
            "zz",
            &["xenmq-fingerprint", "\"zz\""][..],
        ),
        (
            "xenmq-ring-layout",
            "ring.h",
            &["xenmq-ring-layout", "ring layout mismatch"][..],
        ),
        (
            "xenmq-ring-layout",
            "banana",
            &["xenmq-ring-layout", "\"banana\""][..],
        ),
    ] {
        let b = HostileBackend::new(&w, 20_000);
        b.publish(&set(good(), key, value), "2");
        b.refused(why, true, (0, 0), &["5", "6"]);
    }

    // A state that is no state.
    let b = HostileBackend::new(&w, 20_000);
    b.publish(&[], "banana");
    b.refused(
        &["\"banana\"", "not a xenbus state"],
        true,
        (0, 0),
        &["5", "6"],
    );

    // States a backend has no business in.
    for (state, why) in [
        ("3", &["backend entered initialised", "never does"][..]),
        ("8", &["reconfiguration is not supported"][..]),
    ] {
        let b = HostileBackend::new(&w, 20_000);
        b.publish(&[], state);
        b.refused(why, true, (0, 0), &["5", "6"]);
    }

    // A huge maximum is no reason for a huge ring: the frontend shares
    // the single page it wants.
    let b = HostileBackend::new(&w, 1_000);
    b.publish(&set(good(), "max-ring-page-order", "99"), "2");
    b.wait_initialised();
    assert!(b.fe_read("ring-ref").is_some());
    assert_eq!(b.fe_read("ring-page-order"), None);
    b.refused(&["timed out", "connect"], false, (1, 1), &["3"]);

    // Connected without InitWait: nothing was offered, nothing is shared;
    // the frontend waits for a handshake and gives up in time.
    let b = HostileBackend::new(&w, 1_000);
    b.publish(&[], "4");
    b.refused(&["timed out", "connect"], false, (0, 0), &["1"]);

    // Connected naming a frontend instance that is no number, after the
    // frontend offered its ring.
    let b = HostileBackend::new(&w, 20_000);
    b.publish(&good(), "2");
    b.wait_initialised();
    b.publish(&[("xenmq-frontend-instance".into(), "banana".into())], "4");
    b.refused(
        &["xenmq-frontend-instance", "\"banana\""],
        true,
        (0, 0),
        &["5", "6"],
    );

    // A backend restarting again and again mid-handshake: the frontend
    // starts over each time, holding one ring and port at most.
    let b = HostileBackend::new(&w, 3_000);
    for i in 0..5u32 {
        let instance = (1000 + i).to_string();
        b.publish(&set(good(), "xenmq-instance", &instance), "2");
        eventually("the frontend offers a ring to the new backend", || {
            b.fe_read("state").as_deref() == Some("3")
                && b.fe_read("xenmq-backend-instance") == Some(instance.clone())
        });
        assert_eq!(b.holds(), (1, 1), "one ring page and one port");
        b.publish(&[], "1");
    }
    b.publish(&set(good(), "xenmq-instance", "2000"), "2");
    b.refused(&["timed out", "connect"], false, (1, 1), &["3"]);

    // The backend vanishes mid-handshake: the frontend lets go of its
    // ring and waits for a new backend, which never comes.
    let b = HostileBackend::new(&w, 1_500);
    b.publish(&good(), "2");
    b.wait_initialised();
    w.xs.rm(Tx::NONE, &b.be)
        .expect("remove the backend directory");
    eventually("the frontend lets go of its ring", || b.holds() == (0, 0));
    b.refused(&["timed out", "connect"], false, (0, 0), &["6"]);
}
