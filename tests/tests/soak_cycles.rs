//! Soak on the simulator (issue 15): one device connected and
//! disconnected over and over in this process, whose descriptors and
//! memory are counted, beside both domains' grants, mappings and ports.
//! `XENMQ_SOAK_CYCLES` sets the count (default 150; `scripts/soak.sh` runs
//! 1,000). Alone in its process, so that no other test's descriptors count.

mod driver_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driver_support::{eventually, World};
use xenmq::grant::DomId;
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_runtime::device::sim::{attach, SimBack, SimFront};

fn held(w: &World, domid: DomId) -> (u32, u32, u32) {
    w.info(domid)
        .map_or((0, 0, 0), |d| (d.grants, d.maps, d.ports))
}

/// Stops the backend thread however the test ends.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Open descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[test]
fn connect_cycles_hold_memory_descriptors_and_grants_flat() {
    let cycles: u64 = std::env::var("XENMQ_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let w = World::new("soak-cycles");
    let g = w.guest("echo");
    let stop = AtomicBool::new(false);
    let dir = w.dir.to_path_buf();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let env = attach(&dir, 0).expect("dom0");
            let mut back =
                SimBack::<Echo, _>::new(env, g, 0, EchoBack::default()).expect("backend");
            while !stop.load(Ordering::Relaxed) {
                back.step(Duration::from_millis(5)).expect("serve");
            }
            back.close();
        });
        let _stop = Stop(&stop);
        let cycle = || {
            let env = attach(&dir, g).expect("guest");
            let mut front = SimFront::<Echo, _>::new(env, 0, EchoFront).expect("frontend");
            front.connect(Duration::from_secs(10)).expect("connect");
            let pong = front
                .call(Ping::new(1, b"soak"), Some(Duration::from_secs(10)))
                .expect("a pong");
            assert_eq!(pong.seq, 1);
            front.close(Duration::from_secs(10)).expect("close");
        };
        // Warm up (allocator pools, lazily built tables), then measure.
        for _ in 0..10 {
            cycle();
        }
        eventually("the guest holds nothing", || held(&w, g) == (0, 0, 0));
        // Descriptors of connections just closed go a moment later (reader
        // threads end on their own): the floor of a few samples.
        let fd0 = (0..10)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                fds()
            })
            .min()
            .unwrap_or(0);
        let (rss0, dom0) = (rss_kib(), held(&w, 0));
        let t = Instant::now();
        for _ in 0..cycles {
            cycle();
        }
        let elapsed = t.elapsed();
        eventually("the guest holds nothing", || held(&w, g) == (0, 0, 0));
        eventually("dom0 holds what it held", || held(&w, 0) == dom0);
        // A leak grows with the cycles and never comes back down.
        let settled = Instant::now();
        while fds() > fd0 && settled.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (fd1, rss1) = (fds(), rss_kib());
        eprintln!(
            "connect cycles: {cycles} in {elapsed:?}; descriptors {fd0} -> {fd1}, \
             resident {rss0} KiB -> {rss1} KiB, dom0 holds {dom0:?}"
        );
        assert!(fd1 <= fd0, "descriptors leaked: {fd0} -> {fd1}");
        // Flat: the allocator may keep a little; a leak grows with cycles.
        assert!(
            rss1 <= rss0 + 2048,
            "resident memory grew from {rss0} KiB to {rss1} KiB over {cycles} cycles"
        );
        drop(_stop);
        server.join().expect("the backend thread");
    });
}
