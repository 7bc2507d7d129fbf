//! Debian's real `xenstore-utils` clients (libxenstore 4.17) against our
//! server, as dom0 and as a guest, with the same session run against the
//! real C xenstored: every command must give the expected exit status and
//! output on both, so that permissions deny exactly what C denies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use xenmq_tests::ours::OurXenstored;
use xenmq_tests::ref_xenstored::{wait_for, RefXenstored};

const GUEST: u16 = 5;

/// Runs one client; its exit status and standard output.
fn xs(sock: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("XENSTORED_PATH", sock)
        .env_remove("XENSTORED_RUNDIR")
        .env("COLUMNS", "400")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e} (is xenstore-utils installed?)", args[0]));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
    )
}

/// `xenstore-ls -p` output without the dots that align the permissions.
fn unpad(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.trim_end();
            match l.rfind('(') {
                Some(i) if l.ends_with(')') => {
                    format!("{} {}", l[..i].trim_end_matches([' ', '.']), &l[i..])
                }
                _ => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Check<'a> {
    sock: &'a Path,
    failures: Vec<String>,
    server: &'static str,
}

impl Check<'_> {
    fn step(&mut self, args: &[&str], rc: i32, out: Option<&str>) {
        let (got_rc, got_out) = xs(self.sock, args);
        let got_out = if args[0] == "xenstore-ls" {
            unpad(&got_out)
        } else {
            got_out
        };
        if got_rc != rc || out.is_some_and(|o| o != got_out) {
            self.failures.push(format!(
                "[{}] {:?}: rc {got_rc} (want {rc}), out {got_out:?} (want {:?})",
                self.server, args, out
            ));
        }
    }
}

fn session(server: &'static str, dom0: &Path, guest: &dyn Fn() -> PathBuf) -> Vec<String> {
    let mut c = Check {
        sock: dom0,
        failures: Vec::new(),
        server,
    };
    let p = "/xsu";
    let big = "z".repeat(2000);
    let huge = "z".repeat(5000);
    c.step(&["xenstore-write", "/xsu/a", "hello"], 0, Some(""));
    c.step(&["xenstore-read", "/xsu/a"], 0, Some("hello"));
    c.step(
        &["xenstore-write", "/xsu/b/c", "x", "/xsu/d", "y"],
        0,
        Some(""),
    );
    c.step(
        &["xenstore-read", "-p", "/xsu/b/c", "/xsu/d"],
        0,
        Some("/xsu/b/c: x\n/xsu/d: y"),
    );
    c.step(&["xenstore-read", "/xsu/b"], 0, Some(""));
    c.step(&["xenstore-read", "/xsu/nope"], 1, Some(""));
    c.step(&["xenstore-exists", "/xsu/a"], 0, Some(""));
    c.step(&["xenstore-exists", "/xsu/nope"], 1, Some(""));
    c.step(&["xenstore-list", p], 0, Some("a\nb\nd"));
    c.step(&["xenstore-list", "/xsu/a"], 0, Some(""));
    c.step(&["xenstore-list", "/xsu/nope"], 1, Some(""));
    c.step(&["xenstore-write", "/xsu/esc", "x\\ty"], 0, Some(""));
    c.step(&["xenstore-read", "/xsu/esc"], 0, Some("x\\ty"));
    c.step(&["xenstore-read", "-R", "/xsu/esc"], 0, Some("x\ty"));
    c.step(&["xenstore-write", "/xsu/big", &big], 0, Some(""));
    c.step(&["xenstore-read", "/xsu/big"], 0, Some(&big));
    c.step(&["xenstore-write", "/xsu/huge", &huge], 1, Some(""));
    c.step(&["xenstore-write", "/xsu//bad", "v"], 1, Some(""));
    c.step(&["xenstore-write", "/xsu/b a d", "v"], 1, Some(""));
    c.step(&["xenstore-write", "/xsu/tr/", "v"], 1, Some(""));
    c.step(&["xenstore-chmod", "/xsu/a", "r5", "w7"], 0, Some(""));
    c.step(&["xenstore-ls", "-p", "/xsu/b"], 0, Some("c = \"x\" (n0)"));
    c.step(&["xenstore-chmod", "-r", "/xsu/b", "b3"], 0, Some(""));
    c.step(&["xenstore-ls", "-p", "/xsu/b"], 0, Some("c = \"x\" (b3)"));
    c.step(&["xenstore-chmod", "/xsu/a", "q5"], 1, Some(""));
    c.step(&["xenstore-chmod", "/xsu/nope", "n0"], 1, None);
    c.step(
        &["xenstore-ls", "-f", "/xsu/b"],
        0,
        Some("/xsu/b/c = \"x\""),
    );
    c.step(&["xenstore-rm", "/xsu/d"], 0, Some(""));
    c.step(&["xenstore-read", "/xsu/d"], 1, Some(""));
    c.step(&["xenstore-rm", "/xsu/d"], 0, Some(""));
    c.step(&["xenstore-rm", "/xsu/nope/child"], 1, Some(""));
    c.step(&["xenstore-rm", "-t", "/xsu/b/c"], 0, Some(""));
    c.step(&["xenstore-exists", "/xsu/b"], 1, Some(""));

    // Watches: initial event, a child, the node itself, recursive removal.
    let mut w = Command::new("xenstore-watch")
        .args(["-n", "4", "/xsu/w/sub"])
        .env("XENSTORED_PATH", dom0)
        .stdout(Stdio::piped())
        .spawn()
        .expect("xenstore-watch");
    std::thread::sleep(Duration::from_millis(400));
    for args in [
        &["xenstore-write", "/xsu/w/sub/x", "1"][..],
        &["xenstore-write", "/xsu/w/other", "1"],
        &["xenstore-write", "/xsu/w/sub", "2"],
        &["xenstore-rm", "/xsu/w"],
    ] {
        c.step(args, 0, Some(""));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = wait_output(&mut w);
    if out != "/xsu/w/sub\n/xsu/w/sub/x\n/xsu/w/sub\n/xsu/w/sub" {
        c.failures.push(format!("[{server}] watch output {out:?}"));
    }

    // A guest: its home, and what it may not touch.
    c.step(
        &["xenstore-write", "/local/domain/5/seed", "s"],
        0,
        Some(""),
    );
    c.step(
        &["xenstore-chmod", "-r", "/local/domain/5", "n5"],
        0,
        Some(""),
    );
    c.step(&["xenstore-write", "/xsu/pub", "p"], 0, Some(""));
    c.step(&["xenstore-chmod", "/xsu", "n0", "r5"], 0, Some(""));
    c.step(&["xenstore-chmod", "/xsu/pub", "n0", "r5"], 0, Some(""));
    c.step(&["xenstore-write", "/xsu/secret", "s"], 0, Some(""));
    c.step(&["xenstore-chmod", "/xsu/secret", "n0"], 0, Some(""));
    let gsock = guest();
    let mut g = Check {
        sock: &gsock,
        failures: Vec::new(),
        server,
    };
    g.step(&["xenstore-write", "mine", "m"], 0, Some(""));
    g.step(&["xenstore-read", "mine"], 0, Some("m"));
    g.step(&["xenstore-read", "/local/domain/5/mine"], 0, Some("m"));
    g.step(&["xenstore-list", "/local/domain/5"], 0, Some("seed\nmine"));
    g.step(&["xenstore-read", "/xsu/pub"], 0, Some("p"));
    g.step(&["xenstore-read", "/xsu/secret"], 1, Some(""));
    g.step(&["xenstore-write", "/xsu/pub", "no"], 1, Some(""));
    g.step(&["xenstore-write", "/xsu/new", "no"], 1, Some(""));
    g.step(&["xenstore-rm", "/xsu/pub"], 1, Some(""));
    g.step(&["xenstore-chmod", "/xsu/pub", "n5"], 1, Some(""));
    g.step(&["xenstore-chmod", "mine", "n0"], 1, Some(""));
    g.step(&["xenstore-chmod", "mine", "n5", "r0"], 0, Some(""));
    g.step(
        &["xenstore-ls", "-p", "/local/domain/5"],
        0,
        Some("seed = \"s\" (n5)\nmine = \"m\" (n5,r0)"),
    );
    g.step(&["xenstore-exists", "/tool"], 1, Some(""));
    g.step(&["xenstore-list", "/"], 1, Some(""));
    g.step(&["xenstore-rm", "mine"], 0, Some(""));
    g.step(&["xenstore-exists", "mine"], 1, Some(""));
    c.failures.append(&mut g.failures);
    c.step(&["xenstore-rm", "/xsu"], 0, Some(""));
    c.step(&["xenstore-exists", "/xsu"], 1, Some(""));
    c.failures
}

fn wait_output(child: &mut std::process::Child) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut s);
    }
    let _ = child.wait();
    s.trim_end().to_owned()
}

/// Introduces the guest the way a toolstack does (raw INTRODUCE as dom0).
fn introduce(dom0: &Path) {
    let mut c = xenmq_tests::wire::Conn::connect(dom0);
    c.send(8, 0, format!("{GUEST}\x001\x001\0").as_bytes());
    match c.recv(Duration::from_secs(5)) {
        xenmq_tests::wire::Got::Msg(m) if m.payload == b"OK\0" => {}
        other => panic!("INTRODUCE failed: {other:?}"),
    }
}

#[test]
fn xenstore_utils_against_our_server_and_c_xenstored() {
    let mut ours = OurXenstored::start("xsutils");
    let g = ours.listen(GUEST);
    introduce(&ours.socket());
    let mut failures = session("ours", &ours.socket(), &|| g.clone());
    drop(ours);

    let c = RefXenstored::start();
    introduce(&c.socket());
    failures.extend(session("C", &c.socket(), &|| {
        let p = c.domain_socket(GUEST);
        wait_for(&p);
        p
    }));
    drop(c);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
