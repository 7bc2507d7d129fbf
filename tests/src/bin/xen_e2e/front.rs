//! The domU: the frontends, one scenario after another.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xenmq::xenstore::{Store as _, Tx};
use xenmq_examples::blk::{self, BlkFront, SECTOR};
use xenmq_examples::echo::{self, EchoFront, Ping};
use xenmq_examples::vkv::{self, KvError, KvFront};
use xenmq_runtime::device::FrontDevice;
use xenmq_runtime::platform::Platform;

use crate::back::{DEVICES, DISK_BYTES};
use crate::{e, hostile, verdict, Res};

/// The frontend directory of echo/`devid` in this domain.
pub fn fe_dir<P: Platform>(p: &P, devid: u32) -> String {
    format!("/local/domain/{}/device/echo/{devid}", p.domid())
}

pub const CONNECT: Duration = Duration::from_secs(30);
pub const CALL: Option<Duration> = Some(Duration::from_secs(5));
pub const CLOSE: Duration = Duration::from_secs(10);
/// Pongs the child frontend prints between progress lines.
const EVERY: u32 = 20;
/// Pongs seen before the child is killed.
const KILL_AFTER: u32 = 100;

type Scenario<P> = (&'static str, fn(&P) -> Res<()>);

pub fn domu<P: Platform>(p: &P) -> bool {
    if let Err(why) = wait_for_devices(p) {
        return verdict("devices", Err(why));
    }
    let scenarios: [Scenario<P>; 10] = [
        ("echo", echo_round_trips),
        ("vkv", vkv_values),
        ("blk", blk_disk),
        ("kill", killed_frontend),
        ("hostile", hostile::ring_violations),
        ("hostile-handshake", hostile::handshake),
        ("storm", hostile::storm),
        ("dead-frontend", hostile::dead_frontend),
        ("soak", hostile::soak),
        ("hostile-backend", crate::badback::domu),
    ];
    let mut passed = 0;
    for (name, f) in scenarios {
        let start = Instant::now();
        let ok = verdict(name, f(p));
        println!("domU: {name} took {:.1} s", start.elapsed().as_secs_f64());
        passed += usize::from(ok);
    }
    let summary = format!("{passed}/{}", scenarios.len());
    let done = p.env().map_err(e("env")).and_then(|env| {
        let key = format!("/local/domain/{}/data/xen-e2e/done", p.domid());
        env.store
            .write(Tx::NONE, &key, summary.as_bytes())
            .map_err(e("write done"))
    });
    verdict("done", done) && passed == scenarios.len()
}

/// Waits until dom0 has attached every device.
fn wait_for_devices<P: Platform>(p: &P) -> Res<()> {
    let env = p.env().map_err(e("env"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for &(kind, id) in DEVICES {
        let key = format!("/local/domain/{}/device/{kind}/{id}/backend", p.domid());
        while env.store.read(Tx::NONE, &key).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{key} never appeared"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// `count` round trips on an echo frontend, each payload distinct and
/// checked.
pub fn checked_pings<P: Platform>(
    f: &mut FrontDevice<echo::Echo, EchoFront, P::Store, P::Grants, P::Events>,
    count: u32,
) -> Res<()> {
    for i in 0..count {
        let text = format!("xen-e2e ping {i} {}", "x".repeat((i % 20) as usize));
        let pong = f
            .call(Ping::new(i, text.as_bytes()), CALL)
            .map_err(e("call"))?;
        if pong.seq != i || pong.payload() != text.as_bytes() {
            return Err(format!(
                "ping {i}: pong seq {} payload {:?}",
                pong.seq,
                String::from_utf8_lossy(pong.payload())
            ));
        }
    }
    Ok(())
}

fn echo_round_trips<P: Platform>(p: &P) -> Res<()> {
    let env = p.env().map_err(e("env"))?;
    let mut f =
        FrontDevice::<echo::Echo, _, _, _, _>::new(env, 0, EchoFront).map_err(e("front"))?;
    f.connect(CONNECT).map_err(e("connect"))?;
    // echo is a native-layout protocol: both ends must have said so.
    let env = p.env().map_err(e("env"))?;
    let be_dir = env
        .store
        .read_string(Tx::NONE, &format!("{}/backend", f.dir()))
        .map_err(e("read backend"))?;
    for dir in [f.dir().to_string(), be_dir] {
        let layout = env
            .store
            .read_string(Tx::NONE, &format!("{dir}/xenmq-ring-layout"))
            .map_err(e("read xenmq-ring-layout"))?;
        if layout != "native" {
            return Err(format!(
                "{dir}/xenmq-ring-layout is {layout:?}, not \"native\""
            ));
        }
    }
    checked_pings::<P>(&mut f, 100)?;
    let start = Instant::now();
    let n = echo::ping(f.client(), 1000, 16).map_err(e("pipelined pings"))?;
    let took = start.elapsed().as_secs_f64();
    println!(
        "domU: echo (native ring): 100 checked round trips, then {n} pipelined (depth 16) in \
         {took:.2} s"
    );
    f.close(CLOSE).map_err(e("close"))
}

fn value(i: usize) -> Vec<u8> {
    (0..(i * 131) % 4097).map(|j| (i * 7 + j) as u8).collect()
}

fn vkv_values<P: Platform>(p: &P) -> Res<()> {
    let env = p.env().map_err(e("env"))?;
    let mut f =
        FrontDevice::<vkv::Vkv, _, _, _, _>::new(env, 0, KvFront::default()).map_err(e("front"))?;
    f.connect(CONNECT).map_err(e("connect"))?;
    let n = 64;
    let c = f.client();
    for i in 0..n {
        vkv::put(c, format!("key-{i}").as_bytes(), &value(i)).map_err(e("put"))?;
    }
    let mut bytes = 0;
    for i in 0..n {
        let v = vkv::get(c, format!("key-{i}").as_bytes()).map_err(e("get"))?;
        if v != value(i) {
            return Err(format!("key-{i}: {} bytes back, other than put", v.len()));
        }
        bytes += v.len();
    }
    for i in (0..n).step_by(2) {
        vkv::delete(c, format!("key-{i}").as_bytes()).map_err(e("delete"))?;
    }
    match vkv::get(c, b"key-0") {
        Err(KvError::Refused(-2)) => {}
        other => return Err(format!("key-0 after delete: {other:?}")),
    }
    if vkv::get(c, b"key-1").map_err(e("get key-1"))? != value(1) {
        return Err("key-1 changed by the deletes".into());
    }
    println!("domU: vkv: {n} values, {bytes} bytes through the granted pool; deletes seen");
    f.close(CLOSE).map_err(e("close"))
}

fn blk_disk<P: Platform>(p: &P) -> Res<()> {
    let env = p.env().map_err(e("env"))?;
    let mut f = FrontDevice::<blk::Blk, _, _, _, _>::new(env, 0, BlkFront::default())
        .map_err(e("front"))?;
    f.connect(CONNECT).map_err(e("connect"))?;
    let disk = f.driver().disk;
    let bytes = disk.sectors * SECTOR;
    if bytes != DISK_BYTES {
        return Err(format!("disk of {bytes} bytes, dom0 serves {DISK_BYTES}"));
    }
    let data: Vec<u8> = (0..bytes as usize)
        .map(|i| (i / 4096 + i % 251) as u8)
        .collect();
    let mut back = vec![0u8; data.len()];
    let start = Instant::now();
    blk::write_read(f.client(), 0, &data, &mut back, 16).map_err(e("write and read"))?;
    let took = start.elapsed().as_secs_f64();
    blk::flush(f.client()).map_err(e("flush"))?;
    if back != data {
        let at = back.iter().zip(&data).position(|(a, b)| a != b);
        return Err(format!(
            "the disk gave back other data (first difference at {at:?})"
        ));
    }
    println!(
        "domU: blk: wrote and read back {} KiB in {took:.2} s, flush ok",
        bytes >> 10
    );
    f.close(CLOSE).map_err(e("close"))
}

/// The child of the `kill` scenario: pings on echo/1 until killed.
pub fn echo_child<P: Platform>(p: &P) -> bool {
    let r = (|| -> Res<()> {
        let env = p.env().map_err(e("env"))?;
        let mut f =
            FrontDevice::<echo::Echo, _, _, _, _>::new(env, 1, EchoFront).map_err(e("front"))?;
        f.connect(CONNECT).map_err(e("connect"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut n = 0u32;
        while Instant::now() < deadline {
            checked_pings::<P>(&mut f, EVERY)?;
            n += EVERY;
            println!("pongs {n}");
            std::io::stdout().flush().map_err(e("stdout"))?;
        }
        Err("never killed".into())
    })();
    verdict("echo-child", r)
}

fn killed_frontend<P: Platform>(p: &P) -> Res<()> {
    let exe = std::env::current_exe().map_err(e("current exe"))?;
    let mut child = Command::new(exe)
        .arg("echo-child")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(e("spawn the child frontend"))?;
    let out = child.stdout.take().ok_or("no child stdout")?;
    let mut seen = 0;
    let mut lines = BufReader::new(out).lines();
    while seen < KILL_AFTER {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(n) = line.strip_prefix("pongs ") {
                    seen = n.parse().unwrap_or(0);
                } else {
                    println!("domU: child: {line}");
                }
            }
            _ => {
                let status = child.wait().map_err(e("wait"))?;
                return Err(format!("the child frontend ended first ({status})"));
            }
        }
    }
    child.kill().map_err(e("SIGKILL the child"))?;
    let status = child.wait().map_err(e("wait"))?;
    println!("domU: kill: child killed after {seen} pongs ({status}); reconnecting");
    let env = p.env().map_err(e("env"))?;
    let mut f =
        FrontDevice::<echo::Echo, _, _, _, _>::new(env, 1, EchoFront).map_err(e("front"))?;
    f.connect(CONNECT).map_err(e("connect after the kill"))?;
    checked_pings::<P>(&mut f, 50)?;
    println!("domU: kill: a new frontend connected and got 50 checked pongs");
    f.close(CLOSE).map_err(e("close"))
}

/// Start addresses of this process's mappings of `dev`.
pub fn mappings(dev: &str) -> Res<Vec<u64>> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(e("/proc/self/maps"))?;
    Ok(maps
        .lines()
        .filter(|l| l.trim_end().ends_with(dev))
        .filter_map(|l| l.split('-').next())
        .filter_map(|a| u64::from_str_radix(a, 16).ok())
        .collect())
}
