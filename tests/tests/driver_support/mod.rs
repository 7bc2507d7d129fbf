//! Shared by the driver tests: a simulated host with Xenstore in a fresh
//! run directory, and domain processes whose output is read line by line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xenmq::grant::DomId;
use xenmq_runtime::sim::{self, DomainInfo, Host};
use xenmq_runtime::xenstore::Connection;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct World {
    pub host: Host,
    pub dir: xenmq_tests::RunDir,
    pub xs: Connection,
}

impl World {
    pub fn new(tag: &str) -> World {
        let dir = xenmq_tests::run_dir(&format!("drv-{tag}"));
        let host = Host::with_xenstored(&dir).expect("start host");
        let xs = Connection::connect(&dir.join("socket")).expect("dom0 xenstore");
        World { host, dir, xs }
    }

    /// A new guest with device `kind`/0 backed by dom0.
    pub fn guest(&self, kind: &str) -> DomId {
        let id = self.host.create_domain("guest").expect("create domain");
        let dev = xenmq_runtime::toolstack::Device {
            device_type: kind.into(),
            id: 0,
            frontend: id,
            backend: 0,
        };
        // Domain ids are not reused, so no device of an earlier guest is
        // in the way.
        xenmq_runtime::toolstack::attach(&self.xs, &dev, &[]).expect("create device");
        id
    }

    pub fn spawn(&self, domid: DomId, args: &[&str]) -> Proc {
        let child = sim::domain_command(&self.dir, domid, env!("CARGO_BIN_EXE_driver-domain"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn domain process");
        Proc::new(child)
    }

    /// A Xenstore value, read as dom0.
    pub fn xs_read(&self, path: &str) -> Option<String> {
        use xenmq::xenstore::{Store, Tx};
        self.xs.read_string(Tx::NONE, path).ok()
    }

    pub fn info(&self, domid: DomId) -> Option<DomainInfo> {
        self.host.domains().into_iter().find(|d| d.domid == domid)
    }
}

pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    fn new(mut child: Child) -> Proc {
        let out = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (others are kept in `seen`).
    pub fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?}; seen so far: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Every line printed so far (for failure messages).
    pub fn drain(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the domain process");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait_success(&mut self) {
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "domain process failed: {status}; saw {:?}",
            self.seen
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` fields of a summary line.
pub fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Waits until `cond` holds (polling), or panics with `what`.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This thread's id, as `/proc/self/task/<tid>` names it.
pub fn tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let name = link.file_name().expect("a task id").to_string_lossy();
    name.parse().expect("a task id is a number")
}

/// The voluntary context switches of thread `tid` of this process: each
/// time it slept and was woken.
pub fn switches(tid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .expect("the serving thread is alive");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("the kernel reports voluntary context switches");
    line.trim().parse().expect("a count")
}

/// Thread `tid`'s time on a CPU so far (the scheduler's statistics).
pub fn cpu(tid: u32) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .expect("the serving thread is alive");
    let ns = s
        .split_whitespace()
        .next()
        .expect("run time")
        .parse()
        .expect("ns");
    Duration::from_nanos(ns)
}
