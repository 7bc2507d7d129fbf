//! `xenmq attach`, `status` and `detach` as a user runs them, against our
//! Xenstore server on a private socket.

use std::path::Path;
use std::process::{Command, Output};

use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::xenstore::server::{Limits, Xenstored};
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

#[test]
fn attach_status_detach_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("xenmq-cli-device-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("socket");
    let server = Xenstored::new(Limits::default());
    let listener = server.listen(&socket, 0).unwrap();

    let out = xenmq(&["status"], &socket);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no devices");

    let attach = [
        "attach",
        "--frontend-domain",
        "3",
        "--device",
        "vblk",
        "--id",
        "51712",
        "--key",
        "params=/srv/disk.img",
    ];
    let out = xenmq(&attach, &socket);
    assert!(out.status.success(), "{}", text(&out));
    let xs = Connection::connect(&socket).unwrap();
    let be = "/local/domain/0/backend/vblk/3/51712";
    assert_eq!(
        xs.read(Tx::NONE, &format!("{be}/params")).unwrap(),
        b"/srv/disk.img"
    );

    let out = xenmq(&attach, &socket);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    let out = xenmq(&["status"], &socket);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("vblk") && shown.contains("51712") && shown.contains("1:Initialising"),
        "{shown}"
    );

    let detach = [
        "detach",
        "--frontend-domain",
        "3",
        "--device",
        "vblk",
        "--id",
        "51712",
    ];
    let out = xenmq(&[&detach[..], &["--force"]].concat(), &socket);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!xs.exists(Tx::NONE, be).unwrap());
    let out = xenmq(&detach, &socket);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no device vblk/51712"),
        "{}",
        text(&out)
    );

    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let nowhere = Path::new("/nonexistent/xenmq-socket");
    for args in [
        &["attach", "--device", "vkv"][..],
        &["attach", "--frontend-domain", "x", "--device", "vkv"],
        &["attach", "--frontend-domain", "70000", "--device", "vkv"],
        &[
            "attach",
            "--frontend-domain",
            "1",
            "--device",
            "vkv",
            "--key",
            "novalue",
        ],
        &["detach", "--frontend-domain", "1"],
        &["status", "--bogus"],
    ] {
        let out = xenmq(args, nowhere);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("usage: xenmq"), "{}", text(&out));
    }
    let out = xenmq(&["status"], nowhere);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot reach a Xenstore"),
        "{}",
        text(&out)
    );
}
