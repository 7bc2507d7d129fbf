//! The simulated hypervisor with domains as separate processes (the
//! `sim-domain` helper, driven line by line over its stdin/stdout).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use xenmq_runtime::sim::{domain_command, Host};
use xenmq_tests::{run_dir, RunDir};

/// A domain process; killed on drop if still running.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    domid: u16,
}

impl Proc {
    fn spawn(dir: &Path, domid: u16) -> Proc {
        let mut child = domain_command(dir, domid, env!("CARGO_BIN_EXE_sim-domain"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sim-domain");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut p = Proc {
            child,
            stdin,
            stdout,
            domid,
        };
        assert_eq!(p.line(), format!("ready {domid}"));
        p
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_line(&mut s).expect("read from domain");
        s.trim_end().to_owned()
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("write to domain");
        stdin.flush().expect("flush");
    }

    fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.line()
    }

    fn wait(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a Debian xenstore client as dom0; whether it succeeded.
fn xs(dir: &Path, args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .env("XENSTORED_PATH", dir.join("socket"))
        .env_remove("XENSTORED_RUNDIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run a xenstore client (xenstore-utils installed?)")
        .success()
}

struct Fixture {
    host: Host,
    dir: RunDir,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = run_dir(tag);
        Fixture {
            host: Host::with_xenstored(&dir).expect("start host"),
            dir,
        }
    }
    fn domain(&self, name: &str) -> Proc {
        let id = self.host.create_domain(name).expect("create");
        Proc::spawn(&self.dir, id)
    }
}

impl Fixture {
    /// Waits until no process is attached to `domid`, which still exists.
    fn detached(&self, domid: u16) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            match self.host.domains().into_iter().find(|d| d.domid == domid) {
                None => return false,
                Some(d) if d.processes == 0 => return true,
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        false
    }
}

#[test]
fn two_processes_share_pages_and_ping_pong() {
    let f = Fixture::new("pp");
    let mut back = f.domain("back");
    let mut front = f.domain("front");
    let refs = back.cmd(&format!("share {} 2 rw", front.domid));
    let port = back.cmd(&format!("unbound {}", front.domid));
    back.cmd("swrite 4096 hello-from-back");
    assert_eq!(front.cmd(&format!("map {} {refs} rw", back.domid)), "ok");
    assert_eq!(front.cmd("mread 4096 15"), "hello-from-back");
    assert!(!front
        .cmd(&format!("bind {} {port}", back.domid))
        .starts_with("err"));
    assert_eq!(
        back.cmd("status"),
        format!("Interdomain {{ remote: {}, remote_port: 1 }}", front.domid)
    );

    // 200 round trips through shared memory and event channels, with both
    // processes doing their part at once.
    back.send("echo 200");
    front.send("ping 200");
    assert_eq!(front.line(), "pinged 200");
    assert_eq!(back.line(), "echoed 200");

    // The front exits cleanly: its mapping and port go with it, but its
    // domain lives on, empty, until the toolstack destroys it.
    let fid = front.domid;
    assert!(front.wait().success());
    assert!(f.detached(fid));
    assert_eq!(back.cmd("status"), "Closed");
    assert_eq!(back.cmd("notify"), "err PeerClosed");
    // Nobody maps the pages any more, so access ends.
    assert_eq!(back.cmd("end"), "ended");
    let empty = |id| {
        let d = f.host.domains().into_iter().find(|d| d.domid == id);
        d.map(|d| (d.processes, d.grants, d.ports))
    };
    assert_eq!(empty(fid), Some((0, 0, 0)));
    let bid = back.domid;
    assert!(back.wait().success());
    assert!(f.detached(bid));
    assert_eq!(empty(bid), Some((0, 0, 0)));
    for id in [fid, bid] {
        f.host.destroy_domain(id).unwrap();
        assert!(f.host.wait_gone(id, Duration::from_secs(5)));
    }
}

#[test]
fn a_sigkilled_process_releases_its_own_and_its_domain_lives_on() {
    let f = Fixture::new("procdeath");
    let mut owner = f.domain("owner");
    let mut peer = f.domain("peer");
    let oid = owner.domid;
    // A second process as the same domain, at the same time.
    let mut other = Proc::spawn(&f.dir, oid);
    let refs = owner.cmd(&format!("share {} 1 rw", peer.domid));
    let gref: u32 = refs.parse().unwrap();
    let port = owner.cmd(&format!("unbound {}", peer.domid));
    owner.cmd("swrite 0 written-before-death");
    let kept = other.cmd(&format!("share {} 1 ro", peer.domid));
    assert_eq!(peer.cmd(&format!("map {oid} {refs} rw")), "ok");
    peer.cmd(&format!("bind {oid} {port}"));

    owner.child.kill().unwrap();
    assert_eq!(owner.wait().signal(), Some(9));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.host.grant(oid, gref).is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its grant is revoked (the mapping stays memory), its port closed...
    assert!(f.host.grant(oid, gref).is_none());
    assert_eq!(peer.cmd("mread 0 20"), "written-before-death");
    assert_eq!(peer.cmd("status"), "Closed");
    // ... but the domain, its tree and the other process's grant are there.
    let kept: u32 = kept.parse().unwrap();
    assert!(f.host.grant(oid, kept).is_some());
    assert!(xs(
        &f.dir,
        &["xenstore-exists", &format!("/local/domain/{oid}")]
    ));
    assert!(other.wait().success());
    assert!(f.detached(oid));
    // A new process can be the domain again.
    let mut again = Proc::spawn(&f.dir, oid);
    assert!(!again
        .cmd(&format!("share {} 1 rw", peer.domid))
        .starts_with("err"));
    f.host.destroy_domain(oid).unwrap();
    assert!(f.host.wait_gone(oid, Duration::from_secs(5)));
}

#[test]
fn sigkilled_domain_while_its_pages_are_mapped() {
    let f = Fixture::new("sigkill");
    let mut owner = f.domain("owner");
    let mut peer = f.domain("peer");
    let refs = owner.cmd(&format!("share {} 1 rw", peer.domid));
    let gref: u32 = refs.parse().unwrap();
    let port = owner.cmd(&format!("unbound {}", peer.domid));
    owner.cmd("swrite 0 written-before-death");
    assert_eq!(peer.cmd(&format!("map {} {refs} rw", owner.domid)), "ok");
    peer.cmd(&format!("bind {} {port}", owner.domid));
    assert_eq!(f.host.grant(owner.domid, gref).unwrap().maps, 1);

    let oid = owner.domid;
    let base = format!("/local/domain/{oid}");
    assert!(xs(&f.dir, &["xenstore-exists", &base]));
    // dom0 watches @releaseDomain (the first line is the watch's own
    // firing).
    let mut watch = Command::new("xenstore-watch")
        .args(["-n", "2", "@releaseDomain"])
        .env("XENSTORED_PATH", f.dir.join("socket"))
        .env_remove("XENSTORED_RUNDIR")
        .stdout(Stdio::piped())
        .spawn()
        .expect("xenstore-watch (xenstore-utils installed?)");
    let mut events = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(events.next().unwrap().unwrap(), "@releaseDomain");

    f.host.kill_domain(oid).unwrap();
    let status = owner.wait();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(f.host.wait_gone(oid, Duration::from_secs(5)));

    // The peer's mapping is still valid memory, readable and writable.
    assert_eq!(peer.cmd("mread 0 20"), "written-before-death");
    assert_eq!(peer.cmd("mwrite 0 written-after-death"), "ok");
    assert_eq!(peer.cmd("mread 0 19"), "written-after-death");
    // But the grant is revoked, the port closed, the sockets gone.
    assert!(f.host.grant(oid, gref).is_none());
    assert!(peer.cmd(&format!("map {oid} {refs} rw")).starts_with("err"));
    assert_eq!(peer.cmd("status"), "Closed");
    assert_eq!(peer.cmd("notify"), "err PeerClosed");
    assert!(!f.dir.join("domain").join(oid.to_string()).exists());
    // Its Xenstore tree is gone and @releaseDomain fired.
    assert_eq!(events.next().unwrap().unwrap(), "@releaseDomain");
    assert!(watch.wait().unwrap().success());
    assert!(!xs(&f.dir, &["xenstore-exists", &base]));
    assert!(xs(
        &f.dir,
        &["xenstore-exists", &format!("/local/domain/{}", peer.domid)]
    ));
    assert_eq!(peer.cmd("unmap"), "ok");
}

#[test]
fn three_domains_cannot_use_each_others_grants_or_ports() {
    let f = Fixture::new("three");
    let mut a = f.domain("a");
    let mut b = f.domain("b");
    let mut c = f.domain("c");
    let refs = a.cmd(&format!("share {} 1 rw", b.domid));
    let port = a.cmd(&format!("unbound {}", b.domid));
    // c tries to take what a gave b.
    assert!(c
        .cmd(&format!("map {} {refs} rw", a.domid))
        .starts_with("err BadRef"));
    assert!(c
        .cmd(&format!("map {} {refs} ro", a.domid))
        .starts_with("err BadRef"));
    assert!(c
        .cmd(&format!("bind {} {port}", a.domid))
        .starts_with("err BadPort"));
    // b can.
    assert_eq!(b.cmd(&format!("map {} {refs} rw", a.domid)), "ok");
    assert!(!b
        .cmd(&format!("bind {} {port}", a.domid))
        .starts_with("err"));
    // And a chain a -> b -> c works independently.
    let refs_bc = b.cmd(&format!("share {} 1 ro", c.domid));
    assert_eq!(c.cmd(&format!("map {} {refs_bc} ro", b.domid)), "ok");
    b.cmd("swrite 0 b-to-c");
    assert_eq!(c.cmd("mread 0 6"), "b-to-c");
    a.send("echo 10");
    b.send("ping 10");
    assert_eq!(b.line(), "pinged 10");
    assert_eq!(a.line(), "echoed 10");
    for p in [a, b, c] {
        assert!(p.wait().success());
    }
}

#[test]
fn writing_a_read_only_mapping_faults() {
    let f = Fixture::new("rofault");
    let mut owner = f.domain("owner");
    let mut reader = f.domain("reader");
    let refs = owner.cmd(&format!("share {} 1 ro", reader.domid));
    owner.cmd("swrite 0 read-only-data");
    assert!(reader
        .cmd(&format!("map {} {refs} rw", owner.domid))
        .starts_with("err ReadOnly"));
    assert_eq!(reader.cmd(&format!("map {} {refs} ro", owner.domid)), "ok");
    assert_eq!(reader.cmd("mread 0 14"), "read-only-data");
    reader.send("mwrite 0 scribble");
    let rid = reader.domid;
    let status = reader.wait();
    assert_eq!(status.signal(), Some(11), "must die of SIGSEGV: {status:?}");
    // Its death unmapped the page: the owner can end access, and the data
    // was never touched. The domain itself outlives its process.
    assert!(f.detached(rid));
    assert_eq!(owner.cmd("sread 0 14"), "read-only-data");
    assert_eq!(owner.cmd("end"), "ended");
}

#[test]
fn end_access_while_mapped_fails_and_defers_across_processes() {
    let f = Fixture::new("xsa396");
    let mut owner = f.domain("owner");
    let mut peer = f.domain("peer");
    let refs = owner.cmd(&format!("share {} 3 rw", peer.domid));
    let first: u32 = refs.split(',').next().unwrap().parse().unwrap();
    assert_eq!(peer.cmd(&format!("map {} {refs} rw", owner.domid)), "ok");
    assert_eq!(owner.cmd("end"), "err StillMapped");
    assert_eq!(owner.cmd("sdrop"), "deferred 3");
    assert_eq!(owner.cmd("reclaim"), "reclaimed 0 deferred 3");
    // The pages are kept, not reused: the peer still sees the same memory.
    assert_eq!(peer.cmd("mwrite 0 kept"), "ok");
    assert!(f.host.grant(owner.domid, first).is_some());
    assert_eq!(peer.cmd("unmap"), "ok");
    assert_eq!(owner.cmd("reclaim"), "reclaimed 3 deferred 0");
    assert!(f.host.grant(owner.domid, first).is_none());
}

#[test]
fn notifications_cross_processes_and_coalesce() {
    let f = Fixture::new("notify");
    let mut a = f.domain("a");
    let mut b = f.domain("b");
    let port = a.cmd(&format!("unbound {}", b.domid));
    assert_eq!(
        a.cmd("status"),
        format!("Unbound {{ remote: {} }}", b.domid)
    );
    b.cmd(&format!("bind {} {port}", a.domid));
    assert_eq!(b.cmd("wait 10"), "timeout");
    assert_eq!(a.cmd("notify"), "ok");
    assert_eq!(a.cmd("notify"), "ok");
    assert_eq!(b.cmd("wait 5000"), "event");
    assert_eq!(b.cmd("wait 10"), "timeout");
    // A blocked wait is woken by the other process.
    b.send("wait 10000");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.cmd("notify"), "ok");
    assert_eq!(b.line(), "event");
    assert_eq!(b.cmd("notify"), "ok");
    assert_eq!(a.cmd("wait 5000"), "event");
}

#[test]
fn kill_at_a_chosen_request_in_a_process() {
    let f = Fixture::new("killat-proc");
    let id = f.host.create_domain("victim").unwrap();
    f.host
        .set_faults(
            id,
            xenmq_runtime::sim::Faults {
                // 1: connect probe, 2: share, 3: the unbound below.
                kill_at: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    let mut p = Proc::spawn(&f.dir, id);
    assert!(!p.cmd("share 0 1 rw").starts_with("err"));
    p.send("unbound 0");
    let status = p.wait();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(f.host.wait_gone(id, Duration::from_secs(5)));
}

#[test]
fn a_dom0_backend_process_dying_releases_only_its_own_resources() {
    let f = Fixture::new("dom0proc");
    let mut guest = f.domain("guest");
    let mut backend = Proc::spawn(&f.dir, 0);
    let mut toolstack = Proc::spawn(&f.dir, 0);
    let refs = backend.cmd(&format!("share {} 1 rw", guest.domid));
    let gref: u32 = refs.parse().unwrap();
    let port = backend.cmd(&format!("unbound {}", guest.domid));
    let other = toolstack.cmd(&format!("share {} 1 rw", guest.domid));
    assert_eq!(guest.cmd(&format!("map 0 {refs} rw")), "ok");
    guest.cmd(&format!("bind 0 {port}"));

    let status = {
        let mut b = backend;
        b.child.kill().unwrap();
        b.child.wait().unwrap()
    };
    assert_eq!(status.signal(), Some(9));
    // Its port closes and its grant is revoked; dom0 and the other dom0
    // process live on.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.host.grant(0, gref).is_some() {
        assert!(std::time::Instant::now() < deadline, "grant not revoked");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(guest.cmd("status"), "Closed");
    assert!(f.host.domains().iter().any(|d| d.domid == 0));
    assert!(f.host.grant(0, other.parse().unwrap()).is_some());
    assert_eq!(toolstack.cmd("end"), "ended");
    assert_eq!(guest.cmd("mread 0 1"), "\0");
}
