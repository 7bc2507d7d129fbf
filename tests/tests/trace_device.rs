//! Tracing (issue 16): a device pair on the simulator, both ends in this
//! process, recorded by a capturing subscriber. The log shows each end's
//! span (type, devid, both domains, role), every transition of its
//! lifecycle, a driver's refusal with its reason, and a hostile frontend's
//! ring fault with the index and the rule it broke.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use xenmq::driver::{Frontend, Refused};
use xenmq::xenbus::State;
use xenmq::xenstore::{Store, Tx};
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_runtime::device::sim::{attach, SimBack, SimFront};
use xenmq_runtime::sim::Host;
use xenmq_runtime::toolstack::{self, Device};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::run_dir;

/// One event as recorded: its level, fields (the message under
/// `message`) and the fields of the spans it happened in.
#[derive(Debug, Clone)]
struct Record {
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    span: BTreeMap<String, String>,
}

impl Record {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_owned(), v.to_owned());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_owned(), format!("{v:?}"));
    }
}

struct Capture(Arc<Mutex<Vec<Record>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(f.0);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let mut span = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for s in scope.from_root() {
                if let Some(fields) = s.extensions().get::<BTreeMap<String, String>>() {
                    span.extend(fields.clone());
                }
            }
        }
        self.0.lock().unwrap().push(Record {
            level: *event.metadata().level(),
            fields: f.0,
            span,
        });
    }
}

/// Everything recorded in this process (the host's threads included).
fn log() -> Arc<Mutex<Vec<Record>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<Record>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(Capture(Arc::clone(&log)));
        tracing::subscriber::set_global_default(sub).expect("the only subscriber");
        log
    })
    .clone()
}

/// Runs the tests of this file one at a time (each host has its own guest
/// 1); returns where this test's records start.
fn begin() -> (std::sync::MutexGuard<'static, ()>, usize) {
    static ONE: Mutex<()> = Mutex::new(());
    let guard = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let start = log().lock().unwrap().len();
    (guard, start)
}

/// The records since `start` of the device end `role` of domain `domid`
/// with `peer`.
fn of(start: usize, domid: u16, peer: u16, role: &str) -> Vec<Record> {
    log().lock().unwrap()[start..]
        .iter()
        .filter(|r| {
            r.span.get("role").map(String::as_str) == Some(role)
                && r.span.get("domid") == Some(&domid.to_string())
                && r.span.get("peer") == Some(&peer.to_string())
        })
        .cloned()
        .collect()
}

/// The own transitions recorded for an end, as `from->to`.
fn transitions(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.get("message") == "state changed")
        .map(|r| format!("{}->{}", r.get("from"), r.get("to")))
        .collect()
}

fn until(what: &str, secs: u64, mut step: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !step() {
        assert!(Instant::now() < end, "timed out: {what}");
    }
}

struct World {
    host: Host,
    dir: xenmq_tests::RunDir,
    guest: u16,
}

impl World {
    fn new(tag: &str) -> World {
        let dir = run_dir(tag);
        let host = Host::with_xenstored(&dir).expect("start host");
        let guest = host.create_domain("guest").expect("create guest");
        let xs = Connection::connect(&dir.join("socket")).expect("dom0 xenstore");
        let dev = Device {
            device_type: "echo".into(),
            id: 0,
            frontend: guest,
            backend: 0,
        };
        toolstack::attach(&xs, &dev, &[]).expect("create the device");
        World { host, dir, guest }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.host.destroy_domain(self.guest);
    }
}

#[test]
fn a_device_s_life_and_a_hostile_frontend_are_in_the_log() {
    let (_one, start) = begin();
    let w = World::new("trace-life");
    let g = w.guest;
    let mut back = SimBack::<Echo, _>::new(attach(&w.dir, 0).unwrap(), g, 0, EchoBack::default())
        .expect("backend");
    let mut front =
        SimFront::<Echo, _>::new(attach(&w.dir, g).unwrap(), 0, EchoFront).expect("frontend");
    let tick = Duration::from_millis(2);
    until("connected", 10, || {
        back.step(tick).unwrap();
        front.pump(Some(tick)).unwrap();
        // Both ends connected, and each has seen the other's Connected.
        back.is_connected() && front.is_connected() && back.peer_state() == Some(State::Connected)
    });
    // The data path works, and leaves nothing in the log.
    let before = log().lock().unwrap().len();
    let pong = std::thread::scope(|s| {
        let t = s.spawn(|| front.call(Ping::new(7, b"hi"), Some(Duration::from_secs(5))));
        until("answered", 10, || {
            back.step(tick).unwrap();
            t.is_finished()
        });
        t.join().unwrap()
    })
    .expect("a pong");
    assert_eq!(pong.seq, 7);
    let during: Vec<Record> = log().lock().unwrap()[before..]
        .iter()
        .filter(|r| r.span.contains_key("role"))
        .cloned()
        .collect();
    assert!(during.is_empty(), "events per message: {during:?}");

    // The frontend turns hostile: its request producer index jumps.
    let xs = Connection::connect(&w.dir.join("socket")).unwrap();
    let fe = format!("/local/domain/{g}/device/echo/0");
    let gref: u32 = xs
        .read_string(Tx::NONE, &format!("{fe}/ring-ref"))
        .or_else(|_| xs.read_string(Tx::NONE, &format!("{fe}/ring-ref0")))
        .expect("ring-ref")
        .parse()
        .unwrap();
    w.host
        .poke(g, gref, 0, &0x4000_0000u32.to_le_bytes())
        .expect("poke req_prod");
    until("the backend closes", 10, || {
        back.step(tick).unwrap();
        front.pump(Some(tick)).unwrap();
        back.state() == State::Closing || back.state() == State::Closed
    });

    // Each end's span names the device.
    let b = of(start, 0, g, "backend");
    let f = of(start, g, 0, "frontend");
    for (records, domid, peer) in [(&b, 0, g), (&f, g, 0)] {
        let span = &records.first().expect("records in the span").span;
        assert_eq!(span["type"], "echo");
        assert_eq!(span["devid"], "0");
        assert_eq!(span["domid"], domid.to_string());
        assert_eq!(span["peer"], peer.to_string());
    }
    assert_eq!(
        transitions(&b)[..3],
        [
            "unknown->initialising",
            "initialising->initwait",
            "initwait->connected"
        ]
    );
    assert_eq!(
        transitions(&f)[..3],
        [
            "unknown->initialising",
            "initialising->initialised",
            "initialised->connected"
        ]
    );
    assert!(transitions(&b).contains(&"connected->closing".to_owned()));
    for (records, what) in [
        (&f, "ring granted, event channel allocated"),
        (&b, "mapping the ring and binding its event channel"),
        (&b, "ring mapped, event channel bound"),
        (&b, "data path attached"),
        (&b, "data path detached"),
        (&b, "unmapping the ring and unbinding its event channel"),
    ] {
        assert!(
            records.iter().any(|r| r.get("message") == what),
            "no {what:?} in {records:#?}"
        );
    }
    let fault = b
        .iter()
        .find(|r| r.get("message") == "hostile peer: closing the device")
        .unwrap_or_else(|| panic!("no closure in {b:#?}"));
    assert_eq!(fault.level, tracing::Level::WARN);
    assert_eq!(fault.get("index"), "req_prod");
    assert_eq!(fault.get("prod"), 0x4000_0000u32.to_string());
    assert!(
        fault.get("rule").contains("RING_REQUEST_PROD_OVERFLOW"),
        "{fault:?}"
    );
    // The ring itself said which layout and side found it.
    let ring = log().lock().unwrap()[start..]
        .iter()
        .find(|r| {
            r.get("message") == "hostile peer: producer index out of bounds"
                && r.get("prod") == 0x4000_0000u32.to_string()
        })
        .cloned()
        .expect("the ring's own event");
    assert_eq!(
        (ring.get("layout"), ring.get("side")),
        ("native", "backend")
    );

    // The simulator recorded the guest's grant and event channel.
    let host = log().lock().unwrap()[start..].to_vec();
    let host_req = |what: &str| {
        host.iter().any(|r| {
            r.get("message") == "host request"
                && r.get("domid") == g.to_string()
                && r.get("request").starts_with(what)
        })
    };
    assert!(host_req("Share {") && host_req("AllocUnbound {"));
    // And, at trace level, each Xenstore request: the guest's watch on
    // the backend's state among them.
    let watch = host.iter().find(|r| {
        r.get("message") == "xenstore request"
            && r.get("domid") == g.to_string()
            && r.get("op") == "Watch"
    });
    let watch = watch.unwrap_or_else(|| panic!("no Watch request of dom{g}"));
    assert!(
        watch
            .get("request")
            .starts_with("/local/domain/0/backend/echo/"),
        "{watch:?}"
    );
    assert_eq!(watch.level, tracing::Level::TRACE);
}

/// A frontend driver that refuses every backend.
struct Picky;

impl Frontend for Picky {
    type Protocol = Echo;
    fn connect(&mut self, _peer: &xenmq::driver::NoConfig) -> Result<(), Refused> {
        Err(Refused("backend too slow for this test".into()))
    }
}

#[test]
fn a_refusal_is_in_the_log_with_its_reason() {
    let (_one, start) = begin();
    let w = World::new("trace-refuse");
    let g = w.guest;
    let mut back = SimBack::<Echo, _>::new(attach(&w.dir, 0).unwrap(), g, 0, EchoBack::default())
        .expect("backend");
    let mut front = SimFront::<Echo, _>::new(attach(&w.dir, g).unwrap(), 0, Picky).expect("fe");
    let tick = Duration::from_millis(2);
    until("the frontend refuses", 10, || {
        back.step(tick).unwrap();
        front.pump(Some(tick)).unwrap();
        of(start, g, 0, "frontend")
            .iter()
            .any(|r| r.get("message") == "refused: closing the device")
    });
    let f = of(start, g, 0, "frontend");
    let refusal = f
        .iter()
        .find(|r| r.get("message") == "refused: closing the device")
        .unwrap();
    assert_eq!(refusal.level, tracing::Level::WARN);
    assert_eq!(refusal.get("reason"), "backend too slow for this test");
}

#[test]
fn a_hostile_backend_is_in_the_frontend_s_log() {
    let (_one, start) = begin();
    let w = World::new("trace-hostile-back");
    let g = w.guest;
    let mut back = SimBack::<Echo, _>::new(attach(&w.dir, 0).unwrap(), g, 0, EchoBack::default())
        .expect("backend");
    let mut front =
        SimFront::<Echo, _>::new(attach(&w.dir, g).unwrap(), 0, EchoFront).expect("frontend");
    let tick = Duration::from_millis(2);
    until("connected", 10, || {
        back.step(tick).unwrap();
        front.pump(Some(tick)).unwrap();
        back.is_connected() && front.is_connected()
    });
    // The backend turns hostile (it is not stepped again): rsp_prod, the
    // native layout's third cache line, claims answers never asked for.
    let xs = Connection::connect(&w.dir.join("socket")).unwrap();
    let fe = format!("/local/domain/{g}/device/echo/0");
    let gref: u32 = xs
        .read_string(Tx::NONE, &format!("{fe}/ring-ref"))
        .or_else(|_| xs.read_string(Tx::NONE, &format!("{fe}/ring-ref0")))
        .expect("ring-ref")
        .parse()
        .unwrap();
    w.host
        .poke(g, gref, 128, &77u32.to_le_bytes())
        .expect("poke rsp_prod");
    front.submit(Ping::new(1, b"x")).expect("submit");
    // The request fails: with the ring's error, or Disconnected when the
    // fault was found while collecting and the device was torn down.
    match front.wait(Some(Duration::from_secs(5))) {
        Err(e) => assert!(matches!(e, xenmq::driver::Error::Ring(_)), "{e}"),
        Ok(c) => assert!(
            matches!(c.result, Err(xenmq::driver::Error::Disconnected)),
            "{c:?}"
        ),
    }

    let f = of(start, g, 0, "frontend");
    let fault = f
        .iter()
        .find(|r| r.get("message") == "hostile peer: closing the device")
        .unwrap_or_else(|| panic!("no closure in {f:#?}"));
    assert_eq!(fault.get("index"), "rsp_prod");
    assert_eq!(fault.get("prod"), "77");
    assert!(fault.get("rule").contains("requests pushed"), "{fault:?}");
    assert!(transitions(&f).contains(&"connected->closing".to_owned()));
}
