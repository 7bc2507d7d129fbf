//! A frontend that notifies its channel in a loop, without queueing
//! anything, costs the thread that serves it a bounded share of a CPU, and
//! both its own honest requests and another guest's keep being served.
//!
//! One dom0 thread serves two echo devices, with `device::Backends` or with
//! two `AsyncBack`s on a one-thread tokio runtime: a storming guest's and
//! an honest guest's. The storming guest notifies as
//! fast as it can and, every 50 ms, makes a real call; the honest guest
//! pings every 2 ms. Over the storm, the serving thread's CPU time comes
//! from the kernel's scheduler statistics. The same storm with the bound
//! turned off shows what it saves.

mod driver_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use driver_support::{cpu, tid, World};
use xenmq::evtchn::Channel as _;
use xenmq::xenbus::State;
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_runtime::device::sim::{attach, SimBack, SimFront};
use xenmq_runtime::device::tokio::AsyncBack;
use xenmq_runtime::device::{Backends, DEFAULT_STORM_LIMIT};
use xenmq_runtime::xenstore::Connection;

const T: Duration = Duration::from_secs(10);
/// How long the storm lasts.
const STORM: Duration = Duration::from_secs(2);

fn ping(front: &mut SimFront<Echo, EchoFront>, seq: u32) -> Duration {
    let t = Instant::now();
    let pong = front
        .call(Ping::new(seq, b"still there?"), Some(T))
        .expect("the backend answers");
    assert_eq!(pong.payload(), b"still there?");
    t.elapsed()
}

struct Figures {
    /// The serving thread's CPU time over wall time during the storm.
    share: f64,
    notifications: u64,
    /// The storming guest's own calls during the storm: count, slowest.
    own: (usize, Duration),
    /// The honest guest's pings during the storm: count, slowest.
    honest: (usize, Duration),
    deferrals: u64,
}

/// How dom0 serves the two devices.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Backends,
    Async,
}

/// Both devices served by `AsyncBack`s on a one-thread runtime with no
/// timers of its own (I/O only); returns their deferrals.
fn serve_async(
    dir: std::path::PathBuf,
    guests: [u16; 2],
    limit: Option<Duration>,
    tid_tx: mpsc::Sender<u32>,
) -> u64 {
    tid_tx.send(tid()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut backs = guests.map(|g| {
            let env = attach(&dir, 0).expect("attach as dom0");
            let mut dev = SimBack::<Echo, _>::new(env, g, 0, EchoBack::default()).unwrap();
            dev.set_storm_limit(limit);
            AsyncBack::new(dev).unwrap()
        });
        let [a, b] = &mut backs;
        let done = |d: &SimBack<Echo, EchoBack>| d.connects() > 0 && d.state() == State::Closed;
        let (ra, rb) = tokio::join!(a.run(done), b.run(done));
        ra.expect("serves until closed");
        rb.expect("serves until closed");
        backs.iter_mut().map(|b| b.device().storm_deferrals()).sum()
    })
}

fn storm(tag: &str, limit: Option<Duration>, how: Serve) -> Figures {
    let w = World::new(tag);
    let (loud, quiet) = (w.guest("echo"), w.guest("echo"));
    let dir = w.dir.to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    let stopped = stop.clone();
    let (atid_tx, atid_rx) = mpsc::channel();
    if how == Serve::Async {
        let dir = dir.clone();
        let serving = thread::spawn(move || serve_async(dir, [loud, quiet], limit, atid_tx));
        let tid = atid_rx.recv().unwrap();
        return measure(&w, tid, [loud, quiet], limit, move || {
            serving.join().expect("the serving thread ends")
        });
    }
    let serving = thread::spawn(move || {
        let env = attach(&dir, 0).expect("attach as dom0");
        let path = env.grants.store_path();
        let mut all = Backends::<Echo, EchoBack, _, _, _>::new(
            env,
            move || Ok(Connection::connect(&path)?),
            |_, _| EchoBack::default(),
        )
        .unwrap();
        tid_tx.send((tid(), all.waker().unwrap())).unwrap();
        all.run(|all| {
            for d in all.devices() {
                d.set_storm_limit(limit);
            }
            stopped.load(Ordering::SeqCst)
        })
        .expect("serves until stopped");
        all.devices()
            .iter()
            .map(|d| d.storm_deferrals())
            .sum::<u64>()
    });
    let (tid, waker) = tid_rx.recv().unwrap();
    measure(&w, tid, [loud, quiet], limit, move || {
        stop.store(true, Ordering::SeqCst);
        waker.wake().unwrap();
        serving.join().expect("the serving thread ends")
    })
}

/// Storms device `loud`'s channel while `quiet` pings, measuring thread
/// `tid`; `end` stops the serving thread once both devices closed and
/// returns the deferrals.
fn measure(
    w: &World,
    tid: u32,
    [loud, quiet]: [u16; 2],
    limit: Option<Duration>,
    end: impl FnOnce() -> u64,
) -> Figures {
    let connect = |g| {
        let env = attach(&w.dir, g).expect("attach as a guest");
        let mut f = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront).unwrap();
        f.connect(T).expect("connects");
        f
    };
    let (mut front, mut other) = (connect(loud), connect(quiet));
    ping(&mut front, 0);
    ping(&mut other, 0);

    let storming = Arc::new(AtomicBool::new(true));
    let still = storming.clone();
    let honest = thread::spawn(move || {
        let mut times = Vec::new();
        while still.load(Ordering::SeqCst) {
            times.push(ping(&mut other, times.len() as u32 + 1));
            thread::sleep(Duration::from_millis(2));
        }
        other.close(T).expect("closes");
        times
    });

    let (c0, t0) = (cpu(tid), Instant::now());
    let mut notifications = 0u64;
    let mut own = Vec::new();
    while t0.elapsed() < STORM {
        let burst = Instant::now();
        {
            let chan = front.client().channel().expect("connected");
            while burst.elapsed() < Duration::from_millis(50) {
                chan.notify().expect("notify");
                notifications += 1;
            }
        }
        own.push(ping(&mut front, own.len() as u32 + 1));
    }
    let (c1, t1) = (cpu(tid), t0.elapsed());
    storming.store(false, Ordering::SeqCst);
    let honest = honest.join().expect("the honest guest");
    front.close(T).expect("the storming guest closes");
    let deferrals = end();

    let slowest = |v: &[Duration]| v.iter().copied().max().unwrap_or_default();
    let f = Figures {
        share: (c1 - c0).as_secs_f64() / t1.as_secs_f64(),
        notifications,
        own: (own.len(), slowest(&own)),
        honest: (honest.len(), slowest(&honest)),
        deferrals,
    };
    println!(
        "storm ({}): {} notifications in {:.1} s; serving thread {:.1}% of a CPU; \
         {} own calls (slowest {:?}); {} honest pings (slowest {:?}); {} deferrals",
        limit.map_or("no bound".to_owned(), |l| format!("bound {l:?}")),
        f.notifications,
        t1.as_secs_f64(),
        f.share * 100.0,
        f.own.0,
        f.own.1,
        f.honest.0,
        f.honest.1,
        f.deferrals,
    );
    f
}

/// One test, the storms one after the other: each takes a CPU of its own
/// (the stormer), and the figures are only fair without another beside it.
#[test]
fn an_event_storm_costs_a_bounded_share_of_a_cpu() {
    let bounded = storm("storm", Some(DEFAULT_STORM_LIMIT), Serve::Backends);
    let unbounded = storm("stormfree", None, Serve::Backends);
    check(&bounded, &unbounded);
    let bounded = storm("stormasync", Some(DEFAULT_STORM_LIMIT), Serve::Async);
    let unbounded = storm("stormasyncfree", None, Serve::Async);
    check(&bounded, &unbounded);
}

fn check(bounded: &Figures, unbounded: &Figures) {
    // The storm was a storm, and the bound did its work.
    assert!(bounded.notifications > 10_000, "{}", bounded.notifications);
    assert!(bounded.deferrals > 0);
    assert_eq!(unbounded.deferrals, 0);
    // With the honest guest's service included (a ping every 2 ms).
    assert!(
        bounded.share < 0.15,
        "the serving thread used {:.1}% of a CPU under a bounded storm",
        bounded.share * 100.0
    );
    assert!(
        bounded.share * 2.0 < unbounded.share,
        "the bound saved too little: {:.1}% vs {:.1}% without it",
        bounded.share * 100.0,
        unbounded.share * 100.0
    );

    // The storming guest's own requests were served, each within the
    // longest deferral (with room for a loaded machine).
    assert!(bounded.own.0 >= 10, "{} calls", bounded.own.0);
    assert!(
        bounded.own.1 < DEFAULT_STORM_LIMIT + Duration::from_millis(500),
        "a call of the storming guest took {:?}",
        bounded.own.1
    );
    // And the other guest's, all through the storm.
    assert!(bounded.honest.0 >= 50, "{} pings", bounded.honest.0);
    assert!(
        bounded.honest.1 < Duration::from_millis(500),
        "an honest ping took {:?}",
        bounded.honest.1
    );
}
