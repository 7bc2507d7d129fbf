//! dom0: attaches the devices and serves them: echo/0 with the echo
//! example's backend, vkv and xmblk with a thread each, and echo/1..4 (the
//! killed, the hostile and the bystander frontend) all from one thread with
//! `device::Backends`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xenmq::driver::Backend;
use xenmq::xenstore::{Store as _, Tx};
use xenmq_examples::blk::FileDisk;
use xenmq_examples::echo::{Echo, EchoBack};
use xenmq_examples::vkv::KvBack;
use xenmq_runtime::device::BackDevice;
use xenmq_runtime::platform::Platform;
use xenmq_runtime::toolstack::{self, Device};

use crate::{e, env_u16, verdict, Res};

/// Disk size served to the domU.
pub const DISK_BYTES: u64 = 1 << 20;

/// The devices: type, id.
pub const DEVICES: &[(&str, u32)] = &[
    ("echo", 0),
    ("vkv", 0),
    ("xmblk", 0),
    ("echo", 1),
    ("echo", 2),
    ("echo", 3),
    ("echo", 4),
    ("echo", 5),
];

/// How long dom0 waits for the domU to finish.
const DEADLINE: Duration = Duration::from_secs(400);

/// Where dom0 tells the domU what it holds: `<gntdev mappings> <fds>`,
/// rewritten on every change (under the domU's `data`, so it can read it).
pub fn held_key(fe: u16) -> String {
    format!("/local/domain/{fe}/data/xen-e2e/dom0-held")
}

/// `start` / `stop` from the domU around its notification storm.
pub fn storm_key(fe: u16) -> String {
    format!("/local/domain/{fe}/data/xen-e2e/storm")
}

/// dom0's answer once the storm stopped: `<serving thread %> <process %>
/// <seconds>`.
pub fn storm_cpu_key(fe: u16) -> String {
    format!("/local/domain/{fe}/data/xen-e2e/storm-cpu")
}

/// The name of the thread serving echo/1.. (its CPU time is the storm's
/// figure).
const ECHOES: &str = "echoes";

/// CPU time (utime + stime, in clock ticks) of this process, or of its
/// thread named `name`.
fn cpu_ticks(name: Option<&str>) -> Res<u64> {
    let stat = match name {
        None => std::fs::read_to_string("/proc/self/stat").map_err(e("/proc/self/stat"))?,
        Some(name) => {
            let tasks = std::fs::read_dir("/proc/self/task").map_err(e("/proc/self/task"))?;
            let mut found = None;
            for t in tasks.flatten() {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                if comm.trim() == name {
                    found =
                        Some(std::fs::read_to_string(t.path().join("stat")).map_err(e("stat"))?);
                }
            }
            found.ok_or(format!("no thread named {name}"))?
        }
    };
    // Fields after the command's closing parenthesis: state is the 3rd
    // field of stat, utime the 14th, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Res<u64> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("stat field {i} in {stat:?}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on x86-64).
const USER_HZ: f64 = 100.0;

/// Open descriptors of this process.
pub fn fds() -> Res<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .map_err(e("/proc/self/fd"))?
        .count())
}

/// The storm's measurement: started at `.0` with `.1` thread and `.2`
/// process ticks.
type Storm = Option<(Instant, u64, u64)>;

/// Follows the domU's storm key: on `start` takes the CPU clocks, on
/// `stop` writes the serving thread's and the process's shares.
fn storm_watch<S: xenmq::xenstore::Store>(xs: &S, fe: u16, storm: &mut Storm) -> Res<()> {
    let Ok(v) = xs.read_string(Tx::NONE, &storm_key(fe)) else {
        return Ok(());
    };
    match (v.as_str(), *storm) {
        ("start", None) => {
            *storm = Some((Instant::now(), cpu_ticks(Some(ECHOES))?, cpu_ticks(None)?));
        }
        ("stop", Some((t, thread, process))) => {
            let secs = t.elapsed().as_secs_f64();
            let share =
                |ticks: u64, was: u64| ticks.saturating_sub(was) as f64 / USER_HZ / secs * 100.0;
            let thread = share(cpu_ticks(Some(ECHOES))?, thread);
            let process = share(cpu_ticks(None)?, process);
            println!(
                "FIGURE storm-cpu: dom0's serving thread {thread:.1}% of a CPU, the backend \
                 process {process:.1}%, over {secs:.1} s of storm"
            );
            xs.write(
                Tx::NONE,
                &storm_cpu_key(fe),
                format!("{thread:.2} {process:.2} {secs:.2}").as_bytes(),
            )
            .map_err(e("write storm-cpu"))?;
            xs.rm(Tx::NONE, &storm_key(fe)).map_err(e("rm storm"))?;
            *storm = None;
        }
        _ => {}
    }
    Ok(())
}

/// What a backend saw.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    connects: u64,
    served: u64,
}

fn serve<P, B>(p: P, fe: u16, id: u32, driver: B, stop: Arc<AtomicBool>) -> Res<Seen>
where
    P: Platform,
    B: Backend,
{
    let env = p.env().map_err(e("backend env"))?;
    let mut back = BackDevice::<B::Protocol, B, _, _, _>::new(env, fe, id, driver)
        .map_err(e("backend set-up"))?;
    // Relaxed: a flag; the joins order everything else.
    while !stop.load(Ordering::Relaxed) {
        back.step(Duration::from_millis(20))
            .map_err(e("backend step"))?;
    }
    Ok(Seen {
        connects: back.connects(),
        served: back.served(),
    })
}

/// Serves echo/1 to /4 from this one thread (echo/0 is the example
/// backend's), sleeping on all their event channels at once. Returns what
/// each device's backend saw, summed over its incarnations (a device that
/// closed and was set up again gets a new `BackDevice`).
fn serve_echoes<P: Platform>(p: P, stop: Arc<AtomicBool>) -> Res<BTreeMap<u32, Seen>> {
    let mut all = p
        .backends::<Echo, _>(|_, _| EchoBack::default())
        .map_err(e("backends set-up"))?
        .only(|_, devid| devid != 0 && devid != crate::badback::DEV);
    let mut done: BTreeMap<u32, Seen> = BTreeMap::new();
    let mut now: BTreeMap<u32, Seen> = BTreeMap::new();
    // Relaxed: a flag; the join orders everything else.
    while !stop.load(Ordering::Relaxed) {
        all.step(Duration::from_millis(20))
            .map_err(e("backends step"))?;
        for d in all.devices() {
            let cur = Seen {
                connects: d.connects(),
                served: d.served(),
            };
            let last = now.entry(d.key().1).or_default();
            if cur.connects < last.connects || cur.served < last.served {
                // A new incarnation: bank the old one's counts.
                let sum = done.entry(d.key().1).or_default();
                sum.connects += last.connects;
                sum.served += last.served;
            }
            *last = cur;
        }
    }
    for ((fe, devid), why) in all.failed() {
        println!("dom0: echo/{devid} of dom{fe} failed: {why}");
    }
    for (devid, last) in now {
        let sum = done.entry(devid).or_default();
        sum.connects += last.connects;
        sum.served += last.served;
    }
    Ok(done)
}

fn spawn<P, B>(p: &P, fe: u16, id: u32, driver: B, stop: &Arc<AtomicBool>) -> JoinHandle<Res<Seen>>
where
    P: Platform,
    B: Backend + Send + 'static,
{
    let (p, stop) = (p.clone(), Arc::clone(stop));
    std::thread::spawn(move || serve(p, fe, id, driver, stop))
}

fn disk() -> Res<FileDisk> {
    let path = std::env::temp_dir().join("xen-e2e-disk.img");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(e("disk file"))?;
    file.set_len(DISK_BYTES).map_err(e("disk size"))?;
    FileDisk::new(file).map_err(e("disk"))
}

pub fn dom0<P: Platform>(p: &P) -> bool {
    match run(p) {
        Ok(ok) => ok,
        Err(why) => verdict("dom0", Err(why)),
    }
}

fn run<P: Platform>(p: &P) -> Res<bool> {
    let fe = env_u16("XENMQ_LAB_PEER_DOMID")?;
    let xs = p.env().map_err(e("toolstack env"))?.store;
    for &(kind, id) in DEVICES {
        let dev = Device {
            device_type: kind.into(),
            id,
            frontend: fe,
            backend: p.domid(),
        };
        toolstack::attach(&xs, &dev, &[]).map_err(e("attach"))?;
        println!(
            "dom0: attached {kind}/{id}: {} <-> {}",
            dev.frontend_path(),
            dev.backend_path()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    // echo/0 is served by the echo example's own backend role (the code
    // `cargo run -p xenmq-examples --bin echo` runs on the simulator): it
    // picks the platform at run time and returns once its one frontend has
    // closed the device.
    let demo = std::thread::spawn(move || {
        xenmq_examples::demo::backend(&[fe.to_string()]).map_err(|err| err.to_string())
    });
    let threads = vec![
        ("vkv", spawn::<P, _>(p, fe, 0, KvBack::default(), &stop)),
        ("xmblk", spawn::<P, _>(p, fe, 0, disk()?, &stop)),
        ("hostile-backend", {
            // echo/5: the hostile backend's cases, then xenmq's backend.
            let (p, stop) = (p.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                crate::badback::dom0(&p, fe, &stop)?;
                println!("dom0: hostile-backend: every case played; xenmq's backend takes over");
                serve(p, fe, crate::badback::DEV, EchoBack::default(), stop)
            })
        }),
    ];
    let echoes = {
        let (p, stop) = (p.clone(), Arc::clone(&stop));
        std::thread::Builder::new()
            .name(ECHOES.into())
            .spawn(move || serve_echoes(p, stop))
            .map_err(e("spawn the echoes thread"))?
    };
    let done = format!("/local/domain/{fe}/data/xen-e2e/done");
    let start = Instant::now();
    // The most grant mappings dom0 held at once (the release check below
    // means nothing if they never show in /proc/self/maps).
    let mut peak = 0;
    let mut held = String::new();
    let mut storm: Storm = None;
    let finished = loop {
        let maps = crate::front::mappings("/dev/xen/gntdev")?.len();
        peak = peak.max(maps);
        let now = format!("{maps} {}", fds()?);
        if now != held {
            xs.write(Tx::NONE, &held_key(fe), now.as_bytes())
                .map_err(e("write dom0-held"))?;
            held = now;
        }
        storm_watch(&xs, fe, &mut storm)?;
        if let Ok(v) = xs.read_string(Tx::NONE, &done) {
            break Some(v);
        }
        if start.elapsed() > DEADLINE
            || (demo.is_finished()
                && echoes.is_finished()
                && threads.iter().all(|(_, t)| t.is_finished()))
        {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Every frontend has closed (or was killed and replaced, or refused):
    // every backend must have unmapped every grant it mapped.
    let released = (|| -> Res<()> {
        println!("dom0: at most {peak} grant mappings at once");
        if peak == 0 {
            return Err("no gntdev mapping ever seen in /proc/self/maps".into());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = crate::front::mappings("/dev/xen/gntdev")?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} gntdev mappings left in dom0", left.len()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    let hostile = format!("/local/domain/{}/backend/echo/{fe}/2/error", p.domid());
    let hostile = match xs.read_string(Tx::NONE, &hostile) {
        Ok(why) => {
            println!("dom0: backend hostile: error node: {why}");
            Ok(())
        }
        Err(err) => Err(e("no error node for the hostile frontend")(err)),
    };
    // Relaxed: see `serve`.
    stop.store(true, Ordering::Relaxed);
    println!(
        "dom0: the domU {} after {:.1} s",
        match &finished {
            Some(v) => format!("finished ({v})"),
            None => "never finished".into(),
        },
        start.elapsed().as_secs_f64()
    );
    let mut ok = finished.is_some();
    let r = match demo.is_finished() {
        true => demo
            .join()
            .unwrap_or_else(|_| Err("the example backend panicked".into())),
        false => Err("the example backend still runs after the domU is done".into()),
    };
    ok &= verdict("backend-echo", r);
    ok &= verdict("grants-released", released);
    let check = |name: &str, seen: Seen| -> Res<()> {
        println!(
            "dom0: backend {name}: {} connects, {} requests served",
            seen.connects, seen.served
        );
        let want = if name == "kill" { 2 } else { 1 };
        if name == "hostile" {
            hostile.clone()?;
        }
        if seen.connects < want {
            return Err(format!("{} connects, want {want}", seen.connects));
        }
        if seen.served == 0 {
            return Err("served nothing".into());
        }
        Ok(())
    };
    for (name, t) in threads {
        let r = match t.join() {
            Ok(r) => r,
            Err(_) => Err("the backend thread panicked".into()),
        };
        ok &= verdict(&format!("backend-{name}"), r.and_then(|s| check(name, s)));
    }
    let echoes = match echoes.join() {
        Ok(r) => r,
        Err(_) => Err("the echo backends thread panicked".into()),
    };
    for (name, devid) in [
        ("kill", 1),
        ("hostile", 2),
        ("bystander", 3),
        ("hostile-handshake", 4),
    ] {
        let r = echoes.clone().and_then(|all| {
            let seen = all
                .get(&devid)
                .copied()
                .ok_or(format!("echo/{devid} was never set up"))?;
            check(name, seen)
        });
        ok &= verdict(&format!("backend-{name}"), r);
    }
    Ok(ok)
}
