//! Soak on the simulator (issue 15): ends killed at random points and a
//! device connected and disconnected over and over, with what every domain
//! holds counted after each round.
//!
//! The counts come from the environment, so that `scripts/soak.sh` runs the
//! long version (1,000 each) and `.ci/run` a short one: `XENMQ_SOAK_RUNS`
//! (kills per test, default 40). `XENMQ_SOAK_SEED` replays a run's random
//! delays; each test prints the seed it used. The connect/disconnect cycles
//! are in `soak_cycles.rs`, a process of their own, since they count this
//! process's descriptors and memory.

mod driver_support;

use std::time::{Duration, Instant};

use driver_support::{eventually, field, Proc, World};
use xenmq::grant::DomId;

fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A xorshift stream of delays, seeded from the clock or `XENMQ_SOAK_SEED`.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = count("XENMQ_SOAK_SEED", 0);
        let seed = if seed != 0 {
            seed
        } else {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            t | 1
        };
        eprintln!("{test}: XENMQ_SOAK_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Grants, mappings and ports a domain holds, as the host counts them.
fn held(w: &World, domid: DomId) -> (u32, u32, u32) {
    w.info(domid)
        .map_or((0, 0, 0), |d| (d.grants, d.maps, d.ports))
}

fn alive(p: &mut Proc, what: &str) {
    assert!(
        p.child.try_wait().expect("status").is_none(),
        "the {what} died: {:?}",
        p.drain()
    );
}

#[test]
fn frontends_killed_at_random_points_leave_the_backend_whole() {
    let runs = count("XENMQ_SOAK_RUNS", 40);
    let mut rng = Rng::new("frontend kills");
    let w = World::new("soak-fe");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let g = w.guest("echo");
    let base = held(&w, 0);
    let t = Instant::now();
    for run in 0..runs {
        let mut fe = w.spawn(g, &["echo-frontend"]);
        // Before, during or after the handshake; mid-stream; or during
        // the frontend's own close.
        let delay = rng.below(40);
        if run % 4 == 3 {
            let t = Instant::now();
            while !fe.seen.iter().any(|l| l.starts_with("connected")) {
                let _ = fe.drain();
                assert!(
                    t.elapsed() < driver_support::WAIT,
                    "run {run}: a frontend did not connect; backend state {:?} error {:?}, \
                     frontend state {:?}; frontend said {:?}",
                    w.xs_read(&format!("/local/domain/0/backend/echo/{g}/0/state")),
                    w.xs_read(&format!("/local/domain/0/backend/echo/{g}/0/error")),
                    w.xs_read(&format!("/local/domain/{g}/device/echo/0/state")),
                    fe.drain()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            fe.send("stop");
        }
        std::thread::sleep(Duration::from_millis(delay));
        fe.kill();
        drop(fe);
        // The dead process's grants and ports went with it; the backend
        // let go of its mapping and binding, and lives.
        eventually("the guest holds nothing", || held(&w, g) == (0, 0, 0));
        eventually("dom0 holds what it held before", || held(&w, 0) == base);
        alive(&mut back, "backend");
    }
    // The device still works: a frontend connects, is served, closes.
    let mut fe = w.spawn(g, &["echo-frontend"]);
    fe.expect("connected");
    fe.expect("progress");
    fe.send("stop");
    let summary = fe.expect("summary");
    assert_eq!(field(&summary, "lost"), 0, "{summary}");
    assert_eq!(field(&summary, "dup"), 0, "{summary}");
    assert_eq!(
        field(&summary, "ok"),
        field(&summary, "submitted"),
        "{summary}"
    );
    fe.expect("closed");
    fe.close_stdin();
    fe.wait_success();
    eprintln!("frontend kills: {runs} runs in {:?}", t.elapsed());
}

#[test]
fn backends_killed_at_random_points_lose_no_request() {
    let runs = count("XENMQ_SOAK_RUNS", 40);
    let mut rng = Rng::new("backend kills");
    let w = World::new("soak-be");
    let g = w.guest("echo");
    let mut back = w.spawn(0, &["echo-backends"]);
    back.expect("ready");
    let mut fe = w.spawn(g, &["echo-frontend"]);
    fe.expect("connected");
    let t = Instant::now();
    for _ in 0..runs {
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        back.kill();
        drop(back);
        eventually("dom0 holds nothing of the dead backend", || {
            let (_, maps, ports) = held(&w, 0);
            maps == 0 && ports == 0
        });
        back = w.spawn(0, &["echo-backends"]);
        back.expect("ready");
        alive(&mut fe, "frontend");
    }
    // The survivor reconnects to the last backend and is served again.
    fe.send("stop");
    let summary = fe.expect("summary");
    eprintln!("backend kills: {runs} runs in {:?}: {summary}", t.elapsed());
    // Every request completed exactly once: answered, or failed with
    // Disconnected when its backend died.
    assert_eq!(field(&summary, "dup"), 0, "{summary}");
    assert_eq!(
        field(&summary, "ok") + field(&summary, "lost"),
        field(&summary, "submitted"),
        "{summary}"
    );
    assert!(field(&summary, "connects") >= 2, "{summary}");
    fe.expect("closed");
    fe.close_stdin();
    fe.wait_success();
}
