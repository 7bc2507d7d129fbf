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
    /// Removed when the world is dropped.
    _dir: tempfile::TempDir,
    socket: PathBuf,
    _listener: Listener,
    xs: Connection,
}

impl World {
    fn new(tag: &str) -> World {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xenmq-cli-{tag}-"))
            .tempdir()
            .unwrap();
        let socket = dir.path().join("socket");
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
            _dir: dir,
            socket,
            _listener: listener,
            xs,
        }
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

/// `xenmq status --json`'s stdout, parsed, and the exit code.
fn status_json(args: &[&str], socket: &Path) -> (serde_json::Value, Option<i32>) {
    let out = xenmq(&[&["status", "--json"][..], args].concat(), socket);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out)));
    (doc, out.status.code())
}

/// Error text a driver might write: quotes, braces, a newline, a tab, an
/// escape sequence, column-like words.
const NASTY: &str = "ring \"full\" {x}\n    vkv   9 9 4:Connected\t\u{1b}[31mred, \\ done";

/// Two devices: vkv/0 of guest (3) served by dom0, its ends connected and
/// its backend in error; vkv/1 of guest served by driver (4), fresh.
fn two_devices(w: &World) {
    for args in [
        &["attach", "guest", "vkv"][..],
        &["attach", "guest", "vkv", "--id", "1", "--backend", "driver"],
    ] {
        let out = xenmq(args, &w.socket);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (be, fe) = (
        "/local/domain/0/backend/vkv/3/0",
        "/local/domain/3/device/vkv/0",
    );
    for (path, value) in [
        (format!("{be}/state"), "4"),
        (format!("{be}/xenmq-protocol"), "vkv"),
        (format!("{be}/xenmq-version"), "2"),
        (format!("{be}/xenmq-ring-layout"), "native"),
        (format!("{be}/error"), NASTY),
        (format!("{fe}/state"), "4"),
        (format!("{fe}/ring-page-order"), "1"),
        (format!("{fe}/event-channel"), "17"),
    ] {
        w.xs.write(Tx::NONE, &path, value.as_bytes()).unwrap();
    }
}

#[test]
fn status_json_shows_both_ends_and_errors_in_their_own_field() {
    let w = World::new("json");
    let (doc, code) = status_json(&[], &w.socket);
    assert_eq!(code, Some(0));
    assert_eq!(doc["devices"].as_array().map(Vec::len), Some(0), "{doc}");

    two_devices(&w);
    let (doc, code) = status_json(&[], &w.socket);
    assert_eq!(code, Some(0), "{doc}");
    let devices = doc["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 2, "{doc}");
    let d = devices.iter().find(|d| d["id"] == 0).expect("vkv/0");
    assert_eq!(d["type"], "vkv");
    let (be, fe) = (&d["backend"], &d["frontend"]);
    assert_eq!(be["domain"], 0);
    assert_eq!(be["domain_name"], "Domain-0");
    assert_eq!(be["path"], "/local/domain/0/backend/vkv/3/0");
    assert_eq!(be["exists"], true);
    assert_eq!(be["state"], 4);
    assert_eq!(be["state_name"], "Connected");
    assert_eq!(be["error"], NASTY);
    assert_eq!(fe["domain"], 3);
    assert_eq!(fe["domain_name"], "guest");
    assert_eq!(fe["path"], "/local/domain/3/device/vkv/0");
    assert_eq!(fe["state"], 4);
    assert_eq!(fe["error"], serde_json::Value::Null);
    assert_eq!(d["protocol"]["name"], "vkv");
    assert_eq!(d["protocol"]["version"], "2");
    assert_eq!(d["protocol"]["layout"], "native");
    assert_eq!(d["ring_pages"], 2);
    assert_eq!(d["event_channel"], "17");
    let other = devices.iter().find(|d| d["id"] == 1).expect("vkv/1");
    assert_eq!(other["backend"]["domain_name"], "driver");
    assert_eq!(other["backend"]["state"], 1);
    assert_eq!(other["backend"]["state_name"], "Initialising");
    assert_eq!(other["backend"]["error"], serde_json::Value::Null);
    assert_eq!(other["protocol"], serde_json::Value::Null);
    assert_eq!(other["ring_pages"], serde_json::Value::Null);

    // The table keeps its columns: one line per device, each error on a
    // line of its own below its row, its control characters escaped.
    let out = xenmq(&["status"], &w.socket);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("TYPE"), "{table}");
    let columns = lines[0].split_whitespace().count();
    for row in [lines[1], lines[3]] {
        assert!(row.starts_with("vkv "), "{table}");
        // The protocol column holds three words.
        let want = if row.contains("native") {
            columns + 2
        } else {
            columns
        };
        assert_eq!(row.split_whitespace().count(), want, "{row:?}");
    }
    assert!(lines[1].contains("4:Connected"), "{table}");
    assert!(
        lines[2].starts_with("    backend error: ring \"full\""),
        "{table}"
    );
    assert!(lines[2].contains(r"{x}\n    vkv"), "{table}");
    assert!(
        !table.contains('\u{1b}') && !table.contains('\t'),
        "{table}"
    );
}

#[test]
fn status_filters_by_domain_and_fails_on_error_when_asked() {
    let w = World::new("filter");
    two_devices(&w);
    let ids = |doc: &serde_json::Value| -> Vec<u64> {
        let mut v: Vec<u64> = doc["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["id"].as_u64().expect("id"))
            .collect();
        v.sort_unstable();
        v
    };
    // By name or id; either end's domain matches.
    for (domain, want) in [
        ("driver", vec![1]),
        ("4", vec![1]),
        ("0", vec![0]),
        ("Domain-0", vec![0]),
        ("guest", vec![0, 1]),
        ("3", vec![0, 1]),
        // An id without devices (or without a domain): nothing.
        ("9", vec![]),
    ] {
        let (doc, code) = status_json(&["--domain", domain], &w.socket);
        assert_eq!(code, Some(0), "{domain}: {doc}");
        assert_eq!(ids(&doc), want, "{domain}: {doc}");
    }
    let out = xenmq(&["status", "--domain", "driver"], &w.socket);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(table.lines().count(), 2, "{table}");

    // --fail-on-error: 3 when a listed device's end wrote an error, the
    // document still printed; 0 when none did.
    let (doc, code) = status_json(&["--fail-on-error"], &w.socket);
    assert_eq!(code, Some(3), "{doc}");
    assert_eq!(ids(&doc), vec![0, 1]);
    let (doc, code) = status_json(&["--fail-on-error", "--domain", "driver"], &w.socket);
    assert_eq!(code, Some(0), "{doc}");
    let out = xenmq(&["status", "--fail-on-error"], &w.socket);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 device(s) in error"),
        "{}",
        text(&out)
    );
    // The frontend's error counts too.
    w.xs.write(Tx::NONE, "/local/domain/3/device/vkv/1/error", b"no ring")
        .unwrap();
    let (doc, code) = status_json(&["--fail-on-error", "--domain", "driver"], &w.socket);
    assert_eq!(code, Some(3), "{doc}");
    assert_eq!(doc["devices"][0]["frontend"]["error"], "no ring");
}

#[test]
fn json_errors_are_json_objects() {
    let w = World::new("jsonerr");
    let nowhere = Path::new("/nonexistent/xenmq-socket");
    for (args, socket, code, says) in [
        // A run-time error.
        (&[][..], nowhere, 1, "cannot reach a Xenstore"),
        // A domain the verb refuses once it looks.
        (&["--domain", "nosuch"], w.socket.as_path(), 2, "no domain"),
        // An argument clap refuses.
        (
            &["--domain", "70000"],
            w.socket.as_path(),
            2,
            "out of range",
        ),
        (&["--bogus"], w.socket.as_path(), 2, "--bogus"),
    ] {
        let (doc, got) = status_json(args, socket);
        assert_eq!(got, Some(code), "{args:?}: {doc}");
        let obj = doc.as_object().expect("an object");
        assert_eq!(obj.len(), 1, "{doc}");
        let msg = doc["error"].as_str().expect("error text");
        assert!(msg.contains(says), "{args:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg:?}");
    }
}
