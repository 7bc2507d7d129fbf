//! `xenmq attach`, `status` and `detach` as a user runs them, against our
//! Xenstore server on a private socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::xenstore::server::{Limits, Listener, Xenstored};
use xenmq_runtime::xenstore::Connection;

fn xenmq(args: &[&str], socket: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenmq"))
        .args(args)
        .arg("--xenstore")
        .arg(socket)
        .env_remove("XENSTORED_PATH")
        .env_remove("XENSTORED_RUNDIR")
        .output()
        .expect("run xenmq")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Xenstore server on a private socket, holding the domains a toolstack
/// would have created: dom0 (`Domain-0`), 3 (`guest`) and 4 (`driver`).
struct World {
    dir: PathBuf,
    socket: PathBuf,
    _listener: Listener,
    xs: Connection,
}

impl World {
    fn new(tag: &str) -> World {
        let dir = std::env::temp_dir().join(format!("xenmq-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("socket");
        let server = Xenstored::new(Limits::default());
        let listener = server.listen(&socket, 0).unwrap();
        let xs = Connection::connect(&socket).unwrap();
        for (id, name) in [(0, "Domain-0"), (3, "guest"), (4, "driver")] {
            xs.write(
                Tx::NONE,
                &format!("/local/domain/{id}/name"),
                name.as_bytes(),
            )
            .unwrap();
        }
        World {
            dir,
            socket,
            _listener: listener,
            xs,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn attach_status_detach_from_the_command_line() {
    let w = World::new("device");
    let socket = &w.socket;
    let xs = &w.xs;

    let out = xenmq(&["status"], socket);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no devices");

    let attach = [
        "attach",
        "3",
        "vblk",
        "--id",
        "51712",
        "--key",
        "params=/srv/disk.img",
    ];
    let out = xenmq(&attach, socket);
    assert!(out.status.success(), "{}", text(&out));
    let be = "/local/domain/0/backend/vblk/3/51712";
    assert_eq!(
        xs.read(Tx::NONE, &format!("{be}/params")).unwrap(),
        b"/srv/disk.img"
    );

    let out = xenmq(&attach, socket);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    let out = xenmq(&["status"], socket);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("vblk") && shown.contains("51712") && shown.contains("1:Initialising"),
        "{shown}"
    );

    let detach = ["detach", "3", "vblk", "--id", "51712"];
    let out = xenmq(&[&detach[..], &["--force"]].concat(), socket);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!xs.exists(Tx::NONE, be).unwrap());
    let out = xenmq(&detach, socket);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no device vblk/51712"),
        "{}",
        text(&out)
    );
}

#[test]
fn domains_are_named_by_id_or_name_and_must_exist() {
    let w = World::new("domains");
    // By name, both ends, with `--flag=value`.
    let out = xenmq(&["attach", "guest", "vkv", "--backend=driver"], &w.socket);
    assert!(out.status.success(), "{}", text(&out));
    assert!(w
        .xs
        .exists(Tx::NONE, "/local/domain/4/backend/vkv/3/0/state")
        .unwrap());
    assert!(w
        .xs
        .exists(Tx::NONE, "/local/domain/3/device/vkv/0")
        .unwrap());
    // A domain that does not exist, by id or by name, on either end: refused
    // before anything is written, as libxl would.
    for args in [
        &["attach", "7", "vkv"][..],
        &["attach", "nosuch", "vkv"],
        &["attach", "3", "vkv", "--id", "1", "--backend", "9"],
    ] {
        let out = xenmq(args, &w.socket);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("no domain"), "{}", text(&out));
        assert!(text(&out).contains("Usage: xenmq attach"), "{}", text(&out));
    }
    assert!(!w.xs.exists(Tx::NONE, "/local/domain/7").unwrap());
    assert!(!w
        .xs
        .exists(Tx::NONE, "/local/domain/3/device/vkv/1")
        .unwrap());
    // Detach by name too.
    let out = xenmq(
        &["detach", "guest", "vkv", "--backend", "driver", "--force"],
        &w.socket,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!w
        .xs
        .exists(Tx::NONE, "/local/domain/3/device/vkv/0")
        .unwrap());
}

#[test]
fn keys_the_handshake_owns_are_refused() {
    let w = World::new("keys");
    for key in [
        "state=4",
        "ring-ref=8",
        "ring-ref0=8",
        "event-channel=5",
        "protocol=x86_32-abi",
        "error=x",
        "online=0",
        "frontend-id=9",
        "xenmq-protocol=evil",
        "xenmq-pool-refs=1",
    ] {
        let out = xenmq(&["attach", "3", "vkv", "--key", key], &w.socket);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", text(&out));
        assert!(
            text(&out).contains("cannot be set"),
            "{key}: {}",
            text(&out)
        );
    }
    assert!(!w.xs.exists(Tx::NONE, "/local/domain/3/device/vkv").unwrap());
}

#[test]
fn a_closed_backend_detaches_at_once() {
    let w = World::new("closed");
    let out = xenmq(&["attach", "3", "vkv"], &w.socket);
    assert!(out.status.success(), "{}", text(&out));
    // The backend closed (its driver went away) before the detach.
    let be = "/local/domain/0/backend/vkv/3/0";
    w.xs.write(Tx::NONE, &format!("{be}/state"), b"6").unwrap();
    let start = Instant::now();
    let out = xenmq(&["detach", "3", "vkv", "--timeout", "10"], &w.socket);
    let took = start.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(text(&out).contains("the backend closed"), "{}", text(&out));
    assert!(!w.xs.exists(Tx::NONE, be).unwrap());
}

#[test]
fn help_answers_and_bad_arguments_are_usage_errors() {
    let nowhere = Path::new("/nonexistent/xenmq-socket");
    for verb in ["attach", "detach", "status"] {
        let out = xenmq(&[verb, "--help"], nowhere);
        assert_eq!(out.status.code(), Some(0), "{verb}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("Usage: xenmq {verb}")),
            "{}",
            text(&out)
        );
    }
    for args in [
        &["attach", "vkv"][..],
        &["attach", "1", "vkv", "--id", "x"],
        &["attach", "70000", "vkv"],
        &["attach", "1", "vkv", "--key", "novalue"],
        &["attach", "1", "vkv", "--key", "bad/name=1"],
        &["attach", "1", "Bad"],
        &["detach", "1"],
        &["status", "--bogus"],
    ] {
        let out = xenmq(args, nowhere);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("Usage: xenmq"), "{}", text(&out));
    }
    let out = xenmq(&["status"], nowhere);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot reach a Xenstore"),
        "{}",
        text(&out)
    );
    // A run-time error is one line, without the usage.
    assert_eq!(text(&out).trim().lines().count(), 1, "{}", text(&out));
}
