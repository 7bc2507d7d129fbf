//! Named queues (`xenmq_runtime::mq`) measured beside the rings: the same
//! 64-byte messages through a queue on an in-process simulator (two
//! domains as two threads pinned to the two CPUs, their pages memfds and
//! their notifications eventfds, as the ring contenders' processes have).
//!
//! - `mq.tput.rate`: one sender, one receiver, the sender's quota (one
//!   ring page's worth, 32) kept full (`Sender::queue` while there is
//!   room, one `flush`); messages per second. A message and
//!   its acknowledgement cross the ring as a request and its response do,
//!   so it compares with `xenmq-native.tput.spin.rate`.
//! - `mq.lat.p50`, `mq.lat.p99`: one message to the other domain and one
//!   back through a second queue, each round trip timed; compares with
//!   `xenmq-native.lat.spin.p50`.
//! - `mq.fanin.N.rate` (N = 1, 2, 4, 8): N senders in N domains, one
//!   receiver, messages per second in all.
//!
//! Both ends wait as the queue's do: spin (adaptive) then block.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use xenmq::grant::DomId;
use xenmq_runtime::device::Env;
use xenmq_runtime::mq::{self, Mode, Receiver, Sender, Spec};
use xenmq_runtime::sim::{Domain, Host};
use xenmq_runtime::xenstore::Connection;

use crate::options::Options;
use crate::report::{percentile, Figures};
use crate::Error;

/// A 64-byte message, as the ring contenders' requests.
#[xenmq::message]
pub struct Msg {
    /// Its number; `u64::MAX` ends a run.
    pub seq: u64,
    /// Payload.
    pub data: [u8; 56],
}

const STOP: u64 = u64::MAX;

fn msg(seq: u64) -> Msg {
    Msg {
        seq,
        data: [0x5a; 56],
    }
}

type SimEnv = Env<Connection, Domain, Domain>;
type Tx = Sender<Msg, Connection, Domain, Domain>;
type Rx = Receiver<Msg, Connection, Domain, Domain>;

fn setup(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Setup(format!("mq bench, {what}: {e}"))
}

struct World {
    dir: PathBuf,
    host: Option<Host>,
}

impl World {
    fn new() -> Result<World, Error> {
        let dir = std::env::temp_dir().join(format!(
            "xenmq-bench-mq-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let host = Host::with_xenstored(&dir).map_err(|e| setup("host")(e.to_string()))?;
        Ok(World {
            dir,
            host: Some(host),
        })
    }

    fn host(&self) -> &Host {
        // Set in `new`, taken only in `drop`.
        self.host.as_ref().expect("host")
    }

    fn domain(&self, name: &str) -> Result<DomId, Error> {
        self.host()
            .create_domain(name)
            .map_err(|e| setup("domain")(e.to_string()))
    }

    fn env(&self, domid: DomId) -> Result<SimEnv, Error> {
        let dom = Domain::connect(&self.dir, domid).map_err(|e| setup("connect")(e.to_string()))?;
        let store = Connection::connect(&dom.store_path())?;
        Ok(Env::new(store, dom.clone(), dom))
    }

    fn queue(&self, name: &str, quota: u32, senders: Vec<DomId>, r: DomId) -> Result<(), Error> {
        let cap = quota * senders.len() as u32;
        let spec = Spec::new::<Msg>(name, cap, Mode::FanOut, senders, vec![r])
            .map_err(|e| setup("spec")(e.to_string()))?;
        mq::create(&self.env(0)?.store, &spec).map_err(|e| setup("create")(e.to_string()))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        drop(self.host.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn q<T>(r: Result<T, mq::Error>) -> Result<T, Error> {
    r.map_err(|e| Error::Setup(format!("mq bench: {}", xenmq::error::Chain(&e))))
}

/// Opens a sender and waits until its receiver is connected.
fn sender(env: SimEnv, name: &str) -> Result<Tx, Error> {
    let mut tx = q(Tx::open(env, name))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tx.receivers().is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Setup(format!("mq bench: no receiver on {name}")));
        }
        thread::sleep(Duration::from_millis(1));
        q(tx.refresh())?;
    }
    Ok(tx)
}

fn pin(cpu: Option<usize>) {
    if let Some(c) = cpu {
        let _ = xenmq_sys::process::pin_to(c);
    }
}

/// Receives until `stops` senders said stop; returns the messages and the
/// time from the first to the last stop.
fn drain(rx: &mut Rx, stops: usize) -> Result<(u64, Duration), Error> {
    let (mut n, mut seen, mut first) = (0u64, 0, None);
    while seen < stops {
        let got = q(rx.recv_timeout(Some(Duration::from_secs(60))))?;
        first.get_or_insert_with(Instant::now);
        if got.msg.seq == STOP {
            seen += 1;
        } else {
            n += 1;
        }
    }
    Ok((n, first.map_or(Duration::ZERO, |f| f.elapsed())))
}

/// `n` senders stream for the budget into one receiver on `peer_cpu`:
/// messages per second in all.
fn stream(
    w: &World,
    name: &str,
    senders: &[DomId],
    recv: DomId,
    opts: &Options,
    cpus: Option<(usize, usize)>,
) -> Result<f64, Error> {
    let rx_env = w.env(recv)?;
    let name_rx = name.to_owned();
    let stops = senders.len();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let receiver = thread::spawn(move || -> Result<(u64, Duration), Error> {
        pin(cpus.map(|c| c.1));
        let mut rx = q(Rx::open(rx_env, &name_rx))?;
        let _ = ready_tx.send(());
        drain(&mut rx, stops)
    });
    ready
        .recv()
        .map_err(|_| Error::Setup("mq bench: the receiver failed to open".into()))?;
    let start = Arc::new(Barrier::new(senders.len()));
    let mut handles = Vec::new();
    for &s in senders {
        let env = w.env(s)?;
        let (name, start, warmup, budget) = (
            name.to_owned(),
            Arc::clone(&start),
            opts.warmup,
            opts.budget,
        );
        let alone = senders.len() == 1;
        handles.push(thread::spawn(move || -> Result<(), Error> {
            if alone {
                pin(cpus.map(|c| c.0));
            }
            let mut tx = sender(env, &name)?;
            start.wait();
            let until = Instant::now() + warmup + budget;
            let mut seq = 0;
            // As the ring contenders' frontends: fill the room there is,
            // publish once, wait only when full.
            while Instant::now() < until {
                for _ in 0..64 {
                    let m = msg(seq);
                    match tx.queue(&m) {
                        Ok(()) => {}
                        Err(mq::Error::Queue(xenmq::mq::Error::Full { .. })) => q(tx.send(&m))?,
                        Err(e) => return q(Err(e)),
                    }
                    seq += 1;
                }
                q(tx.flush())?;
            }
            q(tx.send(&msg(STOP)))?;
            q(tx.sync(Some(Duration::from_secs(60))))
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| Error::Setup("mq bench: a sender panicked".into()))??;
    }
    let (n, took) = receiver
        .join()
        .map_err(|_| Error::Setup("mq bench: the receiver panicked".into()))??;
    Ok(n as f64 / took.as_secs_f64().max(1e-9))
}

/// Round trips through two queues, one message in flight, for the budget.
fn round_trips(
    w: &World,
    a: DomId,
    b: DomId,
    opts: &Options,
    cpus: Option<(usize, usize)>,
    lat: &mut Vec<u64>,
) -> Result<(), Error> {
    let (b_rx, b_tx) = (w.env(b)?, w.env(b)?);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let echo = thread::spawn(move || -> Result<(), Error> {
        pin(cpus.map(|c| c.1));
        let mut rx = q(Rx::open(b_rx, "ping"))?;
        let _ = ready_tx.send(());
        let mut tx = sender(b_tx, "pong")?;
        loop {
            let got = q(rx.recv_timeout(Some(Duration::from_secs(60))))?;
            q(tx.send(&got.msg))?;
            if got.msg.seq == STOP {
                return q(tx.sync(Some(Duration::from_secs(60))));
            }
        }
    });
    ready
        .recv()
        .map_err(|_| Error::Setup("mq bench: the echo end failed to open".into()))?;
    let mut rx = q(Rx::open(w.env(a)?, "pong"))?;
    let mut tx = sender(w.env(a)?, "ping")?;
    lat.clear();
    // One untimed round trip first: both receivers find their channels.
    q(tx.send(&msg(0)))?;
    q(rx.recv_timeout(Some(Duration::from_secs(60))))?;
    let warm_until = Instant::now() + opts.warmup;
    let until = warm_until + opts.budget;
    let mut seq = 1;
    loop {
        let t0 = Instant::now();
        if t0 >= until && !lat.is_empty() {
            break;
        }
        q(tx.send(&msg(seq)))?;
        let got = q(rx.recv_timeout(Some(Duration::from_secs(60))))?;
        if got.msg.seq != seq {
            return Err(Error::Setup(format!(
                "mq bench: sent {seq}, got {} back",
                got.msg.seq
            )));
        }
        if t0 >= warm_until {
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        seq += 1;
    }
    q(tx.send(&msg(STOP)))?;
    let _ = q(rx.recv_timeout(Some(Duration::from_secs(60))))?;
    echo.join()
        .map_err(|_| Error::Setup("mq bench: the echo end panicked".into()))?
}

/// The fan-in sender counts measured.
pub const FAN_IN: [usize; 4] = [1, 2, 4, 8];

/// Measures every `mq.*` figure once into `figs`. `cpus`: the front and
/// peer CPUs the ring contenders are pinned to (this thread is on the
/// front one).
pub fn measure(
    opts: &Options,
    cpus: Option<(usize, usize)>,
    figs: &mut Figures,
    lat: &mut Vec<u64>,
) -> Result<(), Error> {
    let w = World::new()?;
    let a = w.domain("sender")?;
    let b = w.domain("receiver")?;
    // One ring page of 64-byte slots holds 32: the quota.
    w.queue("tput", 32, vec![a], b)?;
    w.queue("ping", 32, vec![a], b)?;
    w.queue("pong", 32, vec![b], a)?;
    figs.add(
        "mq.tput.rate".into(),
        "req/s",
        stream(&w, "tput", &[a], b, opts, cpus)?,
    );
    round_trips(&w, a, b, opts, cpus, lat)?;
    lat.sort_unstable();
    figs.add("mq.lat.p50".into(), "ns", percentile(lat, 50.0));
    figs.add("mq.lat.p99".into(), "ns", percentile(lat, 99.0));
    let many: Vec<DomId> = (0..8)
        .map(|i| w.domain(&format!("s{i}")))
        .collect::<Result<_, _>>()?;
    for n in FAN_IN {
        let name = format!("fanin-{n}");
        let senders = many[..n].to_vec();
        w.queue(&name, 32, senders.clone(), b)?;
        let rate = stream(&w, &name, &senders, b, opts, cpus)?;
        figs.add(format!("mq.fanin.{n}.rate"), "req/s", rate);
    }
    Ok(())
}
