//! Debian's real C xenstored (Xen 4.17) as a reference server for tests.
//!
//! [`RefXenstored::start`] fetches `xen-utils-4.17` with `apt-get download`
//! (running `apt-get update` once if that fails) into
//! `target/ref-xenstored/`, unpacks it with `dpkg -x` (nothing is
//! installed), builds `tests/ref-xenstored/xenshim.c` (an `LD_PRELOAD`
//! library standing in for the hypervisor) and starts the daemon on a
//! private socket. Dropping it kills the daemon and removes its files.
//!
//! Guests: after dom0 INTRODUCEs domain `d`, the shim serves that domain's
//! ring on the socket [`RefXenstored::domain_socket`]; a client connected
//! there is domain `d` to xenstored.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running C xenstored.
pub struct RefXenstored {
    child: Child,
    dir: PathBuf,
}

fn base_dir() -> PathBuf {
    crate::cc::out_dir()
        .parent()
        .expect("target dir")
        .join("ref-xenstored")
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Unique scratch names: several test binaries may prepare at once, so
/// every step works in a private name and renames into place.
fn scratch(base: &Path, what: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    base.join(format!(
        "{what}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The unpacked package's xenstored and the built shim.
fn prepare() -> (PathBuf, PathBuf) {
    let base = base_dir();
    std::fs::create_dir_all(&base).expect("create target/ref-xenstored");
    let root = base.join("xen-utils");
    let daemon = root.join("usr/lib/xen-4.17/bin/xenstored");
    if !daemon.exists() {
        let dl = scratch(&base, "download");
        std::fs::create_dir_all(&dl).expect("create download dir");
        let get = || {
            run(Command::new("apt-get")
                .args(["download", "xen-utils-4.17"])
                .current_dir(&dl))
        };
        if !get() {
            // A fresh machine may have no package lists yet.
            run(Command::new("apt-get").args(["update", "-qq"]));
            assert!(get(), "apt-get download xen-utils-4.17 failed");
        }
        let deb = std::fs::read_dir(&dl)
            .expect("read download dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("downloaded .deb");
        let unpacked = scratch(&base, "unpack");
        assert!(
            run(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpacked)),
            "dpkg -x {} failed",
            deb.display()
        );
        // Another process may have won the race; either copy is good.
        let _ = std::fs::rename(&unpacked, &root);
        let _ = std::fs::remove_dir_all(&unpacked);
        let _ = std::fs::remove_dir_all(&dl);
        assert!(daemon.exists(), "no xenstored in xen-utils-4.17");
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("ref-xenstored/xenshim.c");
    let shim = base.join("xenshim.so");
    let stale = match (std::fs::metadata(&shim), std::fs::metadata(&src)) {
        (Ok(s), Ok(c)) => s.modified().ok() < c.modified().ok(),
        _ => true,
    };
    if stale {
        let tmp = scratch(&base, "xenshim.so");
        let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-o"])
            .arg(&tmp)
            .arg(&src)
            .args(["-ldl", "-lpthread"])
            .output()
            .expect("run the C compiler");
        assert!(
            out.status.success(),
            "building the xenstored shim failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &shim).expect("install shim");
    }
    (daemon, shim)
}

impl RefXenstored {
    /// Starts a fresh daemon with an empty store.
    pub fn start() -> Self {
        let (daemon, shim) = prepare();
        let dir = scratch(&base_dir(), "run");
        std::fs::create_dir_all(dir.join("dom")).expect("create run dir");
        let log = std::fs::File::create(dir.join("out.log")).expect("create log");
        // -N: stay in the foreground. No -D: dom0 is faked by the shim.
        let child = Command::new(&daemon)
            .args(["-N", "-T"])
            .arg(dir.join("trace"))
            .env("XENSTORED_RUNDIR", &dir)
            .env("XENSHIM_DOMAIN_DIR", dir.join("dom"))
            .env("LD_PRELOAD", &shim)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start xenstored");
        let me = RefXenstored { child, dir };
        wait_for(&me.socket());
        me
    }

    /// Dom0's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// Domain `domid`'s ring, as a socket; it appears once dom0 has
    /// introduced the domain (see [`wait_for`]).
    pub fn domain_socket(&self, domid: u16) -> PathBuf {
        self.dir.join("dom").join(format!("dom{domid}"))
    }
}

/// Waits (up to 5 s) for a socket to appear.
pub fn wait_for(path: &Path) {
    let until = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < until, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for RefXenstored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
