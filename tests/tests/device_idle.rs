//! An idle device costs nothing: a connected backend, and one thread
//! serving several connected devices, sleep in one `poll` on their event
//! channels and Xenstore watch descriptors and do not wake up until
//! something happens — no periodic tick. Counted two ways over an idle
//! window: the serving loop's iterations, and the serving thread's
//! voluntary context switches as the kernel reports them.

mod driver_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use driver_support::{switches, tid, World};
use xenmq::xenbus::State;
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_runtime::device::sim::{attach, SimBack, SimFront};
use xenmq_runtime::device::tokio::AsyncBack;
use xenmq_runtime::device::Backends;
use xenmq_runtime::xenstore::Connection;

/// How long the devices are left idle.
const IDLE: Duration = Duration::from_millis(1500);
/// Time for the last handshake events to settle before counting.
const SETTLE: Duration = Duration::from_millis(200);
const T: Duration = Duration::from_secs(10);

/// Both counts of an idle window.
fn idle_window(wakes: &AtomicU64, tid: u32) -> (u64, u64) {
    thread::sleep(SETTLE);
    let (w0, s0) = (wakes.load(Ordering::SeqCst), switches(tid));
    thread::sleep(IDLE);
    let (w1, s1) = (wakes.load(Ordering::SeqCst), switches(tid));
    (w1 - w0, s1 - s0)
}

fn ping(front: &mut SimFront<Echo, EchoFront>, seq: u32) {
    let pong = front
        .call(Ping::new(seq, b"are you there"), Some(T))
        .expect("the backend answers");
    assert_eq!(pong.payload(), b"are you there");
}

#[test]
fn an_idle_connected_backend_makes_no_wake_ups() {
    let w = World::new("idle1");
    let guest = w.guest("echo");
    let dir = w.dir.to_path_buf();
    let wakes = Arc::new(AtomicU64::new(0));
    let (tid_tx, tid_rx) = mpsc::channel();
    let counted = wakes.clone();
    let back = thread::spawn(move || {
        tid_tx.send(tid()).unwrap();
        let env = attach(&dir, 0).expect("attach as dom0");
        let mut back = SimBack::<Echo, _>::new(env, guest, 0, EchoBack::default()).unwrap();
        back.run(|b| {
            counted.fetch_add(1, Ordering::SeqCst);
            b.connects() > 0 && b.state() == State::Closed
        })
        .expect("serves until the frontend closes");
        back.driver().pings
    });
    let tid = tid_rx.recv().unwrap();
    let env = attach(&w.dir, guest).expect("attach as the guest");
    let mut front = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront).unwrap();
    front.connect(T).expect("connects");
    ping(&mut front, 1);

    let (loops, slept) = idle_window(&wakes, tid);
    assert_eq!(loops, 0, "the backend's loop turned while idle");
    assert_eq!(slept, 0, "the backend's thread woke while idle");

    // Still served at once, and the close still wakes it.
    ping(&mut front, 2);
    front.close(T).expect("closes");
    assert_eq!(back.join().expect("the backend ends"), 2);
}

#[test]
fn an_idle_async_backend_makes_no_wake_ups() {
    let w = World::new("idleasync");
    let guest = w.guest("echo");
    let dir = w.dir.to_path_buf();
    let wakes = Arc::new(AtomicU64::new(0));
    let (tid_tx, tid_rx) = mpsc::channel();
    let counted = wakes.clone();
    let back = thread::spawn(move || {
        tid_tx.send(tid()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let env = attach(&dir, 0).expect("attach as dom0");
            let dev = SimBack::<Echo, _>::new(env, guest, 0, EchoBack::default()).unwrap();
            let mut back = AsyncBack::new(dev).unwrap();
            back.run(|b| {
                counted.fetch_add(1, Ordering::SeqCst);
                b.connects() > 0 && b.state() == State::Closed
            })
            .await
            .expect("serves until the frontend closes");
            back.device().driver().pings
        })
    });
    let tid = tid_rx.recv().unwrap();
    let env = attach(&w.dir, guest).expect("attach as the guest");
    let mut front = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront).unwrap();
    front.connect(T).expect("connects");
    ping(&mut front, 1);

    let (loops, slept) = idle_window(&wakes, tid);
    assert_eq!(loops, 0, "the async backend's loop turned while idle");
    assert_eq!(slept, 0, "the runtime's thread woke while idle");

    ping(&mut front, 2);
    front.close(T).expect("closes");
    assert_eq!(back.join().expect("the backend ends"), 2);
}

#[test]
fn one_thread_serving_idle_devices_makes_no_wake_ups() {
    const DEVICES: usize = 3;
    let w = World::new("idlen");
    let guests: Vec<_> = (0..DEVICES).map(|_| w.guest("echo")).collect();
    let dir = w.dir.to_path_buf();
    let wakes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    let (counted, stopped) = (wakes.clone(), stop.clone());
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
        all.run(|_| {
            counted.fetch_add(1, Ordering::SeqCst);
            stopped.load(Ordering::SeqCst)
        })
        .expect("serves until stopped");
    });
    let (tid, waker) = tid_rx.recv().unwrap();
    let mut fronts: Vec<_> = guests
        .iter()
        .map(|&g| {
            let env = attach(&w.dir, g).expect("attach as a guest");
            let mut f = SimFront::<Echo, EchoFront>::new(env, 0, EchoFront).unwrap();
            f.connect(T).expect("connects");
            f
        })
        .collect();
    for (i, f) in fronts.iter_mut().enumerate() {
        ping(f, i as u32);
    }

    let (loops, slept) = idle_window(&wakes, tid);
    assert_eq!(
        loops, 0,
        "the serving loop turned while {DEVICES} devices idled"
    );
    assert_eq!(
        slept, 0,
        "the serving thread woke while {DEVICES} devices idled"
    );

    for (i, f) in fronts.iter_mut().enumerate() {
        ping(f, i as u32);
    }
    for f in fronts {
        f.close(T).expect("closes");
    }
    // Idle again: the waker is what makes the loop see the flag.
    stop.store(true, Ordering::SeqCst);
    waker.wake().unwrap();
    let deadline = std::time::Instant::now() + T;
    while !serving.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the waker did not wake the loop"
        );
        thread::sleep(Duration::from_millis(5));
    }
    serving.join().expect("the thread ends");
}
