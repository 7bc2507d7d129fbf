//! `xenmq mq create | ls | stat | rm` as a user runs them, against our
//! Xenstore server on a private socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A Xenstore holding dom0 and guests 3 (`web`) and 4 (`db`).
struct World {
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
        let listener = Xenstored::new(Limits::default())
            .listen(&socket, 0)
            .unwrap();
        let xs = Connection::connect(&socket).unwrap();
        for (id, name) in [(0, "Domain-0"), (3, "web"), (4, "db")] {
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

const CREATE: [&str; 13] = [
    "mq",
    "create",
    "logs",
    "--fingerprint",
    "0x0123456789abcdef",
    "--message-size",
    "128",
    "--capacity",
    "64",
    "--senders",
    "web,4",
    "--receivers",
    "0",
];

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn create_list_stat_remove() {
    let w = World::new("mq");
    let s = &w.socket;
    let out = xenmq(&["mq", "ls", "--json"], s);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["queues"], serde_json::json!([]));

    let out = xenmq(&CREATE, s);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out)
        .contains("created queue logs: 2 senders, 1 receivers, fan-out, capacity 64, quota 32"));
    // The nodes: the spec, and one node per member that it owns.
    assert_eq!(
        w.xs.read_string(Tx::NONE, "/xenmq/mq/logs/senders")
            .unwrap(),
        "3 4"
    );
    assert_eq!(
        w.xs.get_perms(Tx::NONE, "/xenmq/mq/logs/sender/3")
            .unwrap()
            .owner(),
        3
    );
    assert_eq!(
        w.xs.get_perms(Tx::NONE, "/xenmq/mq/logs/receiver/0")
            .unwrap()
            .owner(),
        0
    );

    // Members publish their counts and channels; stat shows them.
    w.xs.write(Tx::NONE, "/xenmq/mq/logs/sender/3/sent", b"10")
        .unwrap();
    w.xs.write(Tx::NONE, "/xenmq/mq/logs/sender/3/0/event-channel", b"5")
        .unwrap();
    w.xs.write(Tx::NONE, "/xenmq/mq/logs/receiver/0/received", b"7")
        .unwrap();
    w.xs.write(Tx::NONE, "/xenmq/mq/logs/receiver/0/generation", b"1")
        .unwrap();
    let out = xenmq(&["mq", "stat", "logs", "--json"], s);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["name"], "logs");
    assert_eq!(v["fingerprint"], "0x0123456789abcdef");
    assert_eq!(v["depth"], 3);
    assert_eq!(v["members"][0]["domain"], 3);
    assert_eq!(v["members"][0]["count"], 10);
    assert_eq!(v["members"][0]["links"], serde_json::json!([0]));
    assert_eq!(v["members"][2]["role"], "receiver");
    assert_eq!(v["members"][2]["open"], true);
    let out = xenmq(&["mq", "stat", "logs"], s);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("depth       3"), "{}", text(&out));
    let out = xenmq(&["mq", "ls"], s);
    assert!(text(&out).contains("logs"), "{}", text(&out));
    let out = xenmq(&["mq", "ls", "--json"], s);
    assert_eq!(json(&out)["queues"][0]["capacity"], 64);

    let out = xenmq(&["mq", "rm", "logs"], s);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!w.xs.exists(Tx::NONE, "/xenmq/mq/logs").unwrap());
}

#[test]
fn bad_input_gets_a_clear_error_and_the_usual_exit_code() {
    let w = World::new("mq-bad");
    let s = &w.socket;
    let code = |o: &Output| o.status.code();
    // No such queue: a run-time error (1) naming it.
    for verb in [&["mq", "stat", "nope"][..], &["mq", "rm", "nope"][..]] {
        let out = xenmq(verb, s);
        assert_eq!(code(&out), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("queue \"nope\" does not exist"),
            "{}",
            text(&out)
        );
    }
    let out = xenmq(&["mq", "stat", "nope", "--json"], s);
    assert_eq!(code(&out), Some(1));
    assert!(json(&out)["error"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // Not a name, not a fingerprint, not a mode, not a domain: usage (2).
    let mut bad_name = CREATE;
    bad_name[2] = "Logs/x";
    let mut bad_fp = CREATE;
    bad_fp[4] = "12";
    let mut bad_domain = CREATE;
    bad_domain[10] = "web,nosuch";
    let mut too_small = CREATE;
    too_small[8] = "1";
    for (args, says) in [
        (&bad_name[..], "is not a queue name"),
        (&bad_fp[..], "is not 0x and hex digits"),
        (&bad_domain[..], "nosuch"),
        (&too_small[..], "the quota is 0"),
        (&["mq", "stat", "a b"][..], "is not a queue name"),
    ] {
        let out = xenmq(args, s);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // Twice: the second fails (1).
    assert!(xenmq(&CREATE, s).status.success());
    let out = xenmq(&CREATE, s);
    assert_eq!(code(&out), Some(1));
    assert!(
        text(&out).contains("a queue of that name exists"),
        "{}",
        text(&out)
    );
    // A malformed node is named, not trusted.
    w.xs.write(Tx::NONE, "/xenmq/mq/logs/mode", b"broadcast")
        .unwrap();
    let out = xenmq(&["mq", "stat", "logs"], s);
    assert_eq!(code(&out), Some(1));
    assert!(
        text(&out).contains("node \"mode\" is malformed"),
        "{}",
        text(&out)
    );
    let out = xenmq(&["mq", "ls", "--json"], s);
    assert!(out.status.success());
    assert!(json(&out)["queues"][0]["error"]
        .as_str()
        .unwrap()
        .contains("mode"));
}
