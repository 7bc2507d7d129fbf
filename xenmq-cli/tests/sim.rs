//! `xenmq sim`: the host in the foreground, the toolstack commands, and a
//! clean stop on SIGTERM/SIGINT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const XENMQ: &str = env!("CARGO_BIN_EXE_xenmq");

/// A run directory (mode 0700) removed when dropped, panics included.
fn run_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("xenmq-cli-{tag}-"))
        .tempdir()
        .expect("run directory")
}

/// The `xenmq sim` process, stopped on drop.
struct Sim(Child);

impl Sim {
    fn start(dir: &Path) -> Sim {
        let mut child = Command::new(XENMQ)
            .args(["sim", "--run-dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn xenmq sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.starts_with("xenmq sim: ready"), "{line}");
        Sim(child)
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "xenmq sim did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn xenmq(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(XENMQ)
        .arg("sim")
        .arg(args[0])
        .arg("--run-dir")
        .arg(dir)
        .args(&args[1..])
        .output()
        .expect("run xenmq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_creates_domains_and_stops_cleanly_on_sigterm() {
    let tmp = run_dir("term");
    let dir = tmp.path();
    let mut sim = Sim::start(dir);
    assert!(dir.join("control").exists());

    let (ok, id, err) = xenmq(dir, &["create", "guest-a", "--seed", "5", "--drop", "10"]);
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    // Debian's xenstore clients reach dom0's and the guest's Xenstore.
    let read = |sock: PathBuf, key: &str| {
        let out = Command::new("xenstore-read")
            .arg(key)
            .env("XENSTORED_PATH", sock)
            .env_remove("XENSTORED_RUNDIR")
            .output()
            .expect("xenstore-read (xenstore-utils installed?)");
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    assert_eq!(read(dir.join("socket"), "/local/domain/0/name"), "Domain-0");
    let guest_sock = dir.join("domain").join(&id).join("socket");
    assert_eq!(
        read(guest_sock.clone(), &format!("/local/domain/{id}/name")),
        "guest-a"
    );
    // A guest cannot read dom0's tree.
    assert_eq!(read(guest_sock, "/local/domain/0/name"), "");
    assert!(dir.join("domain").join(&id).join("control").exists());
    let (ok, list, _) = xenmq(dir, &["list"]);
    assert!(ok);
    assert!(list.lines().any(|l| l.contains("guest-a")), "{list}");
    let (ok, list, err) = xenmq(dir, &["list", "--json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&list).expect("list --json");
    let domains = doc["domains"].as_array().expect("domains");
    let names: Vec<&str> = domains.iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(names.contains(&"Domain-0"), "{doc}");
    let guest = domains
        .iter()
        .find(|d| d["name"] == "guest-a")
        .expect("guest-a listed");
    assert_eq!(guest["domid"].to_string(), id, "{doc}");
    assert_eq!(guest["grants"], 0, "{doc}");

    // `run` gives the command its domain's environment, and the domain is
    // destroyed afterwards.
    let (ok, out, err) = xenmq(
        dir,
        &[
            "run",
            "guest-b",
            "--",
            "sh",
            "-c",
            "echo $XENMQ_SIM_DOMID $XENSTORED_PATH; \
             xenstore-read /local/domain/$XENMQ_SIM_DOMID/name",
        ],
    );
    assert!(ok, "{err}");
    let mut words = out.split_whitespace();
    let bid = words.next().expect("domid").to_owned();
    assert_eq!(
        words.next().map(PathBuf::from),
        Some(dir.join("domain").join(&bid).join("socket"))
    );
    // Its Xenstore is its own domain's.
    assert_eq!(words.next(), Some("guest-b"), "{out}");
    let (_, list, _) = xenmq(dir, &["list"]);
    assert!(!list.contains("guest-b"), "{list}");
    // The exit status of the command is passed on.
    let (ok, _, _) = xenmq(dir, &["run", "guest-c", "--", "false"]);
    assert!(!ok);

    // A corruption of a grant that does not exist is refused.
    let (ok, _, err) = xenmq(dir, &["corrupt", &id, "8", "42", "0,4"]);
    assert!(!ok && err.contains("refused"), "{err}");
    // This test process attaches as the guest and shares a page; the CLI
    // corrupts it, repeatably.
    {
        use xenmq::grant::{Access, Grants, Shared as _};
        let guest = xenmq_runtime::sim::Domain::connect(dir, id.parse().unwrap()).unwrap();
        let page = guest.share(0, 1, Access::ReadWrite).unwrap();
        let gref = page.refs()[0].to_string();
        let (ok, out, err) = xenmq(dir, &["corrupt", &id, &gref, "42", "0,4"]);
        assert!(ok, "{err}");
        let expect = xenmq_runtime::sim::fault::corruption(42, &[0, 4]);
        let printed: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(
            printed,
            expect
                .iter()
                .map(|(o, v)| format!("{o} {v:#010x}"))
                .collect::<Vec<_>>()
        );
        for (off, val) in expect {
            let mut b = [0u8; 4];
            page.read(off as usize, &mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), val);
        }
        let (ok, _, err) = xenmq(dir, &["poke", &id, &gref, "8", "6869"]);
        assert!(ok, "{err}");
        let mut b = [0u8; 2];
        page.read(8, &mut b).unwrap();
        assert_eq!(&b, b"hi");
    }
    // The guest's process (this test's connection) went away; the domain
    // lives until it is destroyed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list, _) = xenmq(dir, &["list", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&list).expect("list --json");
        let me = doc["domains"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == "guest-a").cloned())
            .expect("guest-a outlives its processes");
        if me["processes"] == 0 {
            assert_eq!(me["grants"], 0, "{me}");
            break;
        }
        assert!(Instant::now() < deadline, "guest-a's process never left");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (ok, _, err) = xenmq(dir, &["destroy", &id]);
    assert!(ok, "{err}");
    let (ok, _, err) = xenmq(dir, &["destroy", &id]);
    assert!(!ok && err.contains("refused"), "{err}");
    let (ok, _, err) = xenmq(dir, &["poke", "0", "8", "0", "zz"]);
    assert!(!ok && err.contains("hex"), "{err}");

    let st = sim.signal("-TERM");
    assert!(st.success(), "{st:?}");
    assert!(!dir.join("control").exists());
    assert!(!dir.join("socket").exists());
}

/// The driver author's workbench (docs/simulator.md): a long-running host,
/// a domain with its device attached before its program starts, programs
/// run as domains with `exec` (the echo example's `backend DOMID` and
/// `frontend` roles, as `xenmq demo` has them), several processes one
/// after another as one domain, and ids not reused.
#[test]
fn drivers_run_as_domains_on_a_long_running_host() {
    let tmp = run_dir("workbench");
    let dir = tmp.path();
    let _sim = Sim::start(dir);
    let d = dir.to_str().expect("utf-8 run dir");
    // `run --attach`: the device exists before the command starts; the
    // command starts the backend as dom0 with `exec`, then is the
    // frontend, then reads its own Xenstore as the same domain.
    let script = format!(
        "test -n \"$(xenstore-read device/echo/0/backend-id)\" || exit 7; \
         {XENMQ} sim exec --run-dir {d} 0 -- {XENMQ} demo backend $XENMQ_SIM_DOMID >/dev/null & \
         {XENMQ} demo frontend 20 </dev/null || exit 8; wait $! || exit 9; \
         echo domid=$(xenstore-read domid)"
    );
    let (ok, out, err) = xenmq(
        dir,
        &[
            "run", "guest", "--attach", "echo", "--", "sh", "-c", &script,
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("pings one at a time"), "{out}");
    let first: u16 = out
        .lines()
        .find_map(|l| l.strip_prefix("domid="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no domid line: {out}"));
    // The domain and its device are gone afterwards.
    let (_, list, _) = xenmq(dir, &["list"]);
    assert!(!list.contains("guest"), "{list}");
    let status = Command::new(XENMQ)
        .args(["status", "--run-dir", d])
        .output()
        .expect("xenmq status");
    assert!(!String::from_utf8_lossy(&status.stdout).contains("echo"));

    // A created domain runs any number of programs, one after another.
    let (ok, id, err) = xenmq(dir, &["create", "workbench"]);
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    assert!(id.parse::<u16>().unwrap() > first, "ids are not reused");
    let attach = Command::new(XENMQ)
        .args(["attach", "--run-dir", d, "workbench", "echo"])
        .output()
        .expect("xenmq attach");
    assert!(attach.status.success(), "{attach:?}");
    for round in 0..2 {
        let mut back = Command::new(XENMQ)
            .args(["sim", "exec", "--run-dir", d, "0", "--", XENMQ])
            .args(["demo", "backend", &id])
            .stdout(Stdio::null())
            .spawn()
            .expect("backend");
        let (ok, out, err) = xenmq(
            dir,
            &["exec", "workbench", "--", XENMQ, "demo", "frontend", "10"],
        );
        assert!(ok, "round {round}: {out}\n{err}");
        assert!(
            out.contains(&format!("[frontend dom{id}] connected")),
            "{out}"
        );
        assert!(back.wait().expect("backend").success());
    }
    // A frontend process SIGKILLed mid-stream: its grants and port go,
    // the domain stays, and the next frontend process in it reconnects to
    // the same backend.
    let mut back = Command::new(XENMQ)
        .args(["sim", "exec", "--run-dir", d, "0", "--", XENMQ])
        .args(["demo", "backend", &id])
        .stdout(Stdio::null())
        .spawn()
        .expect("backend");
    let mut doomed = Command::new(XENMQ)
        .args(["sim", "exec", "--run-dir", d, &id, "--", XENMQ])
        .args(["demo", "frontend", "100000000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("frontend");
    let mut first = String::new();
    BufReader::new(doomed.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("frontend's first line");
    assert!(first.contains("connected"), "{first}");
    doomed.kill().expect("SIGKILL the frontend");
    let _ = doomed.wait();
    let (ok, out, err) = xenmq(dir, &["exec", &id, "--", XENMQ, "demo", "frontend", "10"]);
    assert!(ok, "after a killed frontend: {out}\n{err}");
    assert!(back.wait().expect("backend").success());
    let (ok, out, _) = xenmq(dir, &["exec", &id, "--", "sh", "-c", "exit 3"]);
    assert!(!ok && out.is_empty());
    let (ok, _, err) = xenmq(dir, &["exec", "nosuch", "--", "true"]);
    assert!(!ok && err.contains("no domain"), "{err}");
    let (ok, _, err) = xenmq(dir, &["destroy", &id]);
    assert!(ok, "{err}");
    // A re-created domain does not get the id whose device is still there.
    let (ok, again, err) = xenmq(dir, &["create", "workbench"]);
    assert!(ok, "{err}");
    assert_ne!(again.trim(), id);
}

#[test]
fn stops_cleanly_on_sigint() {
    let tmp = run_dir("int");
    let dir = tmp.path();
    let mut sim = Sim::start(dir);
    let (ok, _, err) = xenmq(dir, &["create", "guest"]);
    assert!(ok, "{err}");
    let st = sim.signal("-INT");
    assert!(st.success(), "{st:?}");
    assert!(!dir.join("control").exists());
    assert!(!dir.join("domain").join("1").exists());
}

#[test]
fn bad_usage_is_an_error() {
    let out = Command::new(XENMQ)
        .args(["sim", "create", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--run-dir"));
    let out = Command::new(XENMQ)
        .args([
            "sim",
            "faults",
            "--run-dir",
            "/nonexistent",
            "1",
            "--drop",
            "2000",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A command that runs and fails (no host there) is a run-time error:
    // exit 1, one line, no usage.
    let out = Command::new(XENMQ)
        .args(["sim", "list", "--run-dir", "/nonexistent"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("Usage"), "{stderr}");
    // With --json, the error is a JSON object on stdout.
    let out = Command::new(XENMQ)
        .args(["sim", "list", "--run-dir", "/nonexistent", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert!(
        doc["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
    // Every command answers --help.
    for cmd in [
        "create", "run", "exec", "destroy", "kill", "faults", "poke", "corrupt", "list",
    ] {
        let out = Command::new(XENMQ)
            .args(["sim", cmd, "--help"])
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {stdout}");
        assert!(
            stdout.contains(&format!("Usage: xenmq sim {cmd}")),
            "{stdout}"
        );
    }
}
