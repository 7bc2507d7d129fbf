//! The toolstack side of custom devices (`xenmq attach`/`detach`/`status`)
//! against our Xenstore server and against Debian's real C xenstored, with
//! a guest connection checking that the permissions let each end do
//! exactly what libxl's let it do.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::wire::MsgType;
use xenmq::xenstore::{Errno, Store, Tx};
use xenmq_runtime::toolstack::{self, Detached, Device, Error};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::ours::OurXenstored;
use xenmq_tests::ref_xenstored::{wait_for, RefXenstored};

const GUEST: u16 = 5;
const N: Tx = Tx::NONE;

fn perms(s: &[&str]) -> Perms {
    Perms::parse(s.iter().map(|x| x.as_bytes())).expect("valid perms")
}

fn vkv() -> Device {
    Device {
        device_type: "vkv".into(),
        id: 0,
        frontend: GUEST,
        backend: 0,
    }
}

/// What a toolstack does for a new guest: introduce it and give it its home.
fn make_guest(xs: &Connection) {
    xs.request(
        MsgType::Introduce,
        N,
        format!("{GUEST}\x001\x001\0").as_bytes(),
    )
    .expect("introduce");
    for dir in ["", "/device"] {
        let path = format!("/local/domain/{GUEST}{dir}");
        xs.mkdir(N, &path).unwrap();
        xs.set_perms(N, &path, &perms(&[&format!("n{GUEST}")]))
            .unwrap();
    }
}

/// Plays a backend that closes when asked: waits for Closing, writes Closed.
fn closing_backend(dom0: PathBuf, dir: String) -> thread::JoinHandle<()> {
    let xs = Connection::connect(&dom0).expect("connect backend");
    let state = format!("{dir}/state");
    xs.watch(&state, "be").unwrap();
    thread::spawn(move || {
        for _ in 0..200 {
            let _ = xs.next_event(Some(Duration::from_millis(50)));
            if let Ok(v) = xs.read(N, &state) {
                if v == b"5" {
                    xs.write(N, &state, b"6").unwrap();
                    return;
                }
            }
        }
        panic!("the backend was never asked to close");
    })
}

fn refused<T: std::fmt::Debug>(r: Result<T, xenmq::xenstore::Error>) -> Errno {
    r.expect_err("must be refused").errno().expect("an errno")
}

fn exercise(dom0: &Path, guest: &dyn Fn() -> PathBuf) {
    let xs = Connection::connect(dom0).expect("connect dom0");
    make_guest(&xs);
    let dev = vkv();
    let (fe, be) = (dev.frontend_path(), dev.backend_path());
    let key = [("file".to_owned(), "/srv/vkv.db".to_owned())];
    toolstack::attach(&xs, &dev, &key).expect("attach");

    // The layout and permissions libxl gives its own devices.
    assert_eq!(xs.read(N, &format!("{fe}/backend")).unwrap(), be.as_bytes());
    assert_eq!(xs.read(N, &format!("{fe}/backend-id")).unwrap(), b"0");
    assert_eq!(
        xs.read(N, &format!("{be}/frontend")).unwrap(),
        fe.as_bytes()
    );
    assert_eq!(xs.read(N, &format!("{be}/frontend-id")).unwrap(), b"5");
    assert_eq!(xs.read(N, &format!("{be}/online")).unwrap(), b"1");
    assert_eq!(xs.read(N, &format!("{be}/file")).unwrap(), b"/srv/vkv.db");
    for dir in [&fe, &be] {
        assert_eq!(xs.read(N, &format!("{dir}/state")).unwrap(), b"1");
    }
    assert_eq!(xs.get_perms(N, &fe).unwrap(), perms(&["n5", "r0"]));
    assert_eq!(
        xs.get_perms(N, &format!("{fe}/state")).unwrap(),
        perms(&["n5", "r0"])
    );
    assert_eq!(xs.get_perms(N, &be).unwrap(), perms(&["n0", "r5"]));
    assert_eq!(
        xs.get_perms(N, &format!("{be}/file")).unwrap(),
        perms(&["n0", "r5"])
    );

    // The guest owns its end and may only read the backend's.
    let g = Connection::connect(&guest()).expect("connect guest");
    g.write(N, &format!("{fe}/state"), b"2").unwrap();
    g.write(N, &format!("{fe}/ring-ref"), b"8").unwrap();
    g.write(N, &format!("{fe}/event-channel"), b"11").unwrap();
    assert_eq!(g.read(N, &format!("{be}/file")).unwrap(), b"/srv/vkv.db");
    assert_eq!(
        refused(g.write(N, &format!("{be}/state"), b"4")),
        Errno::EACCES
    );
    assert_eq!(refused(g.rm(N, &be)), Errno::EACCES);

    // Twice is refused, and so is a type that is no path element.
    assert!(matches!(
        toolstack::attach(&xs, &dev, &[]),
        Err(Error::Exists(p)) if p == fe
    ));
    let bad = Device {
        device_type: "v/kv".into(),
        ..vkv()
    };
    assert!(matches!(
        toolstack::attach(&xs, &bad, &[]),
        Err(Error::BadType(_))
    ));

    // Status reads both ends.
    xs.write(N, &format!("{be}/xenmq-protocol"), b"vkv")
        .unwrap();
    xs.write(N, &format!("{be}/xenmq-version"), b"1").unwrap();
    xs.write(N, &format!("{be}/error"), b"nothing yet").unwrap();
    let all = toolstack::devices(&xs).expect("devices");
    assert_eq!(all.len(), 1, "{all:?}");
    let st = &all[0];
    assert_eq!(st.device, dev);
    assert_eq!(st.backend.state.as_deref(), Some("1"));
    assert_eq!(st.frontend.state.as_deref(), Some("2"));
    assert_eq!(st.backend.error.as_deref(), Some("nothing yet"));
    assert_eq!(
        st.protocol.as_ref().map(ToString::to_string).as_deref(),
        Some("vkv v1 ring.h")
    );
    assert_eq!(st.ring_pages, Some(1));
    assert_eq!(st.event_channel.as_deref(), Some("11"));
    xs.write(N, &format!("{be}/xenmq-ring-layout"), b"native")
        .unwrap();
    let st = toolstack::status(&xs, dev.clone()).expect("status");
    assert_eq!(
        st.protocol.as_ref().map(ToString::to_string).as_deref(),
        Some("vkv v1 native")
    );
    let line = st.to_string();
    assert!(
        line.contains("vkv v1 native")
            && line.contains("2:InitWait")
            && line.contains("backend error: nothing yet"),
        "{line}"
    );
    g.write(N, &format!("{fe}/ring-page-order"), b"2").unwrap();
    assert_eq!(
        toolstack::status(&xs, dev.clone()).unwrap().ring_pages,
        Some(4)
    );

    // Detach asks the backend to close, waits for Closed, removes both ends.
    let backend = closing_backend(dom0.to_owned(), be.clone());
    let how = toolstack::detach(&xs, &dev, Duration::from_secs(10), false).expect("detach");
    backend.join().expect("backend thread");
    assert_eq!(how, Detached::Closed);
    for dir in [&fe, &be, &format!("/local/domain/0/backend/vkv/{GUEST}")] {
        assert!(!xs.exists(N, dir).unwrap(), "{dir} left behind");
    }
    assert!(toolstack::devices(&xs).unwrap().is_empty());
    assert!(matches!(
        toolstack::detach(&xs, &dev, Duration::from_secs(1), false),
        Err(Error::NoDevice { .. })
    ));

    // A backend that never closes: a clear timeout, then --force.
    toolstack::attach(&xs, &dev, &[]).expect("attach again");
    match toolstack::detach(&xs, &dev, Duration::from_millis(300), false) {
        Err(Error::CloseTimeout { state, .. }) => assert_eq!(state, "5"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(xs.read(N, &format!("{be}/online")).unwrap(), b"0");
    assert_eq!(
        toolstack::detach(&xs, &dev, Duration::ZERO, true).unwrap(),
        Detached::Removed
    );
    assert!(!xs.exists(N, &fe).unwrap() && !xs.exists(N, &be).unwrap());
    // A frontend directory alone still shows up, with its backend missing.
    toolstack::attach(&xs, &dev, &[]).unwrap();
    xs.rm(N, &be).unwrap();
    let orphan = toolstack::devices(&xs).unwrap();
    assert_eq!(orphan.len(), 1);
    assert_eq!(orphan[0].backend.path, None);
    assert!(orphan[0].to_string().contains(" - "));
}

#[test]
fn toolstack_against_our_server() {
    let mut xs = OurXenstored::start("toolstack");
    let g = xs.listen(GUEST);
    exercise(&xs.socket(), &|| g.clone());
}

#[test]
fn toolstack_against_c_xenstored() {
    let c = RefXenstored::start();
    exercise(&c.socket(), &|| {
        let p = c.domain_socket(GUEST);
        wait_for(&p);
        p
    });
}
