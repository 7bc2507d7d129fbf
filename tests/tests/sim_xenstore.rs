//! The simulator host with its Xenstore server: the toolstack's tree for a
//! new domain, permissions as libxl sets them, and domain death seen
//! through Xenstore — checked with Debian's own `xenstore-*` clients.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use xenmq_runtime::sim::{domain_command, Host};
use xenmq_tests::{run_dir, RunDir};

fn socket(dir: &Path, domid: u16) -> PathBuf {
    if domid == 0 {
        dir.join("socket")
    } else {
        dir.join("domain").join(domid.to_string()).join("socket")
    }
}

/// Runs a Debian xenstore client as `domid`; (success, trimmed stdout).
fn xs(dir: &Path, domid: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("XENSTORED_PATH", socket(dir, domid))
        .env_remove("XENSTORED_RUNDIR")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e} (xenstore-utils installed?)", args[0]));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
    )
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
}

#[test]
fn a_new_domain_gets_its_tree_with_libxl_permissions() {
    let f = Fixture::new("xstree");
    assert_eq!(
        xs(&f.dir, 0, &["xenstore-read", "/local/domain/0/name"]),
        (true, "Domain-0".into())
    );
    let id = f.host.create_domain("guest-1").unwrap();
    let base = format!("/local/domain/{id}");
    assert_eq!(
        xs(&f.dir, 0, &["xenstore-read", &format!("{base}/name")]),
        (true, "guest-1".into())
    );
    assert_eq!(
        xs(&f.dir, 0, &["xenstore-read", &format!("{base}/domid")]),
        (true, id.to_string())
    );
    for node in ["device", "control", "data", "control/shutdown"] {
        assert!(
            xs(&f.dir, 0, &["xenstore-exists", &format!("{base}/{node}")]).0,
            "{node}"
        );
    }

    // Seen from the guest's own socket: it reads its tree, writes the
    // nodes it owns, and cannot rename itself.
    assert_eq!(
        xs(&f.dir, id, &["xenstore-read", &format!("{base}/name")]),
        (true, "guest-1".into())
    );
    assert!(
        xs(
            &f.dir,
            id,
            &["xenstore-write", &format!("{base}/data/greeting"), "hi"]
        )
        .0
    );
    assert!(
        xs(
            &f.dir,
            id,
            &["xenstore-write", &format!("{base}/device/vif/0/state"), "1"]
        )
        .0
    );
    assert!(
        xs(
            &f.dir,
            id,
            &[
                "xenstore-write",
                &format!("{base}/control/shutdown"),
                "poweroff"
            ]
        )
        .0
    );
    assert!(
        !xs(
            &f.dir,
            id,
            &["xenstore-write", &format!("{base}/name"), "evil"]
        )
        .0
    );
    assert!(
        !xs(
            &f.dir,
            id,
            &["xenstore-write", &format!("{base}/control/evil"), "x"]
        )
        .0
    );
    // Nor read dom0's or another guest's.
    let other = f.host.create_domain("guest-2").unwrap();
    assert!(
        !xs(
            &f.dir,
            id,
            &["xenstore-read", &format!("/local/domain/{other}/name")]
        )
        .0
    );
    assert!(!xs(&f.dir, id, &["xenstore-read", "/local/domain/0/name"]).0);
    // dom0 sees what the guest wrote.
    assert_eq!(
        xs(
            &f.dir,
            0,
            &["xenstore-read", &format!("{base}/data/greeting")]
        ),
        (true, "hi".into())
    );
}

#[test]
fn a_sigkilled_domain_loses_its_tree_and_release_domain_fires() {
    let f = Fixture::new("xsdeath");
    let id = f.host.create_domain("victim").unwrap();
    // A watcher on dom0's socket: the first event is the watch's own
    // firing, the second is the release.
    let mut watch = Command::new("xenstore-watch")
        .args(["-n", "2", "@releaseDomain"])
        .env("XENSTORED_PATH", socket(&f.dir, 0))
        .env_remove("XENSTORED_RUNDIR")
        .stdout(Stdio::piped())
        .spawn()
        .expect("xenstore-watch");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "@releaseDomain");

    let mut child = domain_command(&f.dir, id, env!("CARGO_BIN_EXE_sim-domain"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim_end(), format!("ready {id}"));
    assert!(f.host.wait_attached(id, Duration::from_secs(5)));
    assert!(
        xs(
            &f.dir,
            id,
            &["xenstore-write", &format!("/local/domain/{id}/data/x"), "1"]
        )
        .0
    );

    f.host.kill_domain(id).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    assert!(f.host.wait_gone(id, Duration::from_secs(5)));
    assert_eq!(lines.next().unwrap().unwrap(), "@releaseDomain");
    assert!(watch.wait().unwrap().success());
    assert!(
        !xs(
            &f.dir,
            0,
            &["xenstore-exists", &format!("/local/domain/{id}")]
        )
        .0
    );
    assert!(!socket(&f.dir, id).exists());
    drop(child.stdin.take());
}

#[test]
fn introduce_domain_fires_on_create() {
    let f = Fixture::new("xsintro");
    let mut watch = Command::new("xenstore-watch")
        .args(["-n", "2", "@introduceDomain"])
        .env("XENSTORED_PATH", socket(&f.dir, 0))
        .env_remove("XENSTORED_RUNDIR")
        .stdout(Stdio::piped())
        .spawn()
        .expect("xenstore-watch");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "@introduceDomain");
    f.host.create_domain("new").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "@introduceDomain");
    assert!(watch.wait().unwrap().success());
}

#[test]
fn a_simulated_domain_is_introduced_and_releasable_through_xenstore() {
    use xenmq::xenstore::perms::Perms;
    use xenmq::xenstore::wire::MsgType;
    use xenmq::xenstore::{Errno, Error, Store, Tx};
    use xenmq_runtime::xenstore::Connection;

    let f = Fixture::new("xsrelease");
    let id = f.host.create_domain("leaver").unwrap();
    let n = Tx::NONE;
    let dom0 = Connection::connect(&socket(&f.dir, 0)).unwrap();
    let arg = format!("{id}\0");
    let ask = |t| dom0.request(t, n, arg.as_bytes()).unwrap();
    assert_eq!(ask(MsgType::IsDomainIntroduced), b"T\0");

    // The guest owns a node; dom0 names it in a node's permissions.
    let guest = Connection::connect(&socket(&f.dir, id)).unwrap();
    let mine = format!("/local/domain/{id}/data/x");
    guest.write(n, &mine, b"1").unwrap();
    let grant = Perms::parse(["n0".as_bytes(), format!("b{id}").as_bytes()]).unwrap();
    dom0.write(n, "/granted", b"g").unwrap();
    dom0.set_perms(n, "/granted", &grant).unwrap();
    assert_eq!(guest.read(n, "/granted").unwrap(), b"g");

    assert_eq!(ask(MsgType::Release), b"OK\0");
    assert_eq!(ask(MsgType::IsDomainIntroduced), b"F\0");
    // Its connection is closed, what it owned is gone, the entry naming it
    // is still listed but grants a new connection as that id nothing.
    assert!(guest.read(n, "/granted").is_err());
    assert!(!dom0.exists(n, &format!("/local/domain/{id}/data")).unwrap());
    assert!(dom0.exists(n, &format!("/local/domain/{id}/name")).unwrap());
    assert_eq!(dom0.get_perms(n, "/granted").unwrap(), grant);
    let again = Connection::connect(&socket(&f.dir, id)).unwrap();
    assert!(matches!(
        again.read(n, "/granted"),
        Err(Error::Refused(Errno::EACCES))
    ));
    // A second release is refused, as for any domain not introduced.
    assert_eq!(
        dom0.request(MsgType::Release, n, arg.as_bytes())
            .err()
            .map(|e| e.to_string()),
        Some(Error::Refused(Errno::ENOENT).to_string())
    );
    f.host.destroy_domain(id).unwrap();
    assert!(!dom0.exists(n, &format!("/local/domain/{id}")).unwrap());
}
