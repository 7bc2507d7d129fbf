//! Device ends driven from tokio (`device::tokio`), on the simulator with
//! domains as threads of this process: calls and the completion stream,
//! a backend served from a task, and calls dropped mid-way (the request
//! still completes, or fails with `Disconnected`, and the device stays
//! usable).

mod driver_support;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use driver_support::World;
use tokio::time::timeout;
use xenmq::driver;
use xenmq::grant::DomId;
use xenmq::xenbus::State;
use xenmq_examples::echo::{Echo, EchoBack, EchoFront, Ping};
use xenmq_runtime::device::sim::{attach, SimBack, SimFront};
use xenmq_runtime::device::tokio::{AsyncBack, AsyncFront};
use xenmq_runtime::device::Error;

const T: Duration = Duration::from_secs(10);

type Front = AsyncFront<
    Echo,
    EchoFront,
    xenmq_runtime::xenstore::Connection,
    xenmq_runtime::sim::Domain,
    xenmq_runtime::sim::Domain,
>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn front(dir: &Path, guest: DomId) -> Front {
    let env = attach(dir, guest).expect("attach as the guest");
    AsyncFront::new(SimFront::<Echo, _>::new(env, 0, EchoFront).unwrap()).unwrap()
}

async fn call(f: &mut Front, seq: u32) -> Result<u32, Error> {
    let payload = seq.to_le_bytes();
    let pong = timeout(T, f.call(Ping::new(seq, &payload)))
        .await
        .expect("the call ends")?;
    assert_eq!(pong.payload(), payload);
    Ok(pong.seq)
}

#[test]
fn both_ends_on_one_runtime() {
    let w = World::new("async1");
    let guest = w.guest("echo");
    runtime().block_on(async {
        let env = attach(&w.dir, 0).expect("attach as dom0");
        let dev = SimBack::<Echo, _>::new(env, guest, 0, EchoBack::default()).unwrap();
        let mut back = AsyncBack::new(dev).unwrap();
        let serve = async {
            back.run(|b| b.connects() > 0 && b.state() == State::Closed)
                .await
                .expect("serves until closed");
            back.device().driver().pings
        };
        let drive = async {
            let mut f = front(&w.dir, guest);
            timeout(T, f.connect()).await.unwrap().unwrap();
            for seq in 0..100 {
                assert_eq!(call(&mut f, seq).await.unwrap(), seq);
            }
            // A window of requests, answered through the stream.
            let mut tags: Vec<_> = (0..20)
                .map(|seq| f.submit(Ping::new(1000 + seq, b"x")).unwrap())
                .collect();
            while let Some(done) = timeout(T, f.next()).await.unwrap() {
                let done = done.unwrap();
                assert_eq!(done.result.unwrap().payload(), b"x");
                tags.retain(|&t| t != done.tag);
            }
            assert!(tags.is_empty(), "every request completed: {tags:?} left");
            timeout(T, f.close()).await.unwrap().unwrap();
        };
        let (pings, ()) = tokio::join!(serve, drive);
        assert_eq!(pings, 120);
    });
}

enum Cmd {
    Pause,
    Resume,
    Close,
}

/// A blocking backend on its own thread that stops serving on request,
/// so that a call can be left waiting.
fn paused_backend(dir: PathBuf, guest: DomId) -> (mpsc::Sender<Cmd>, mpsc::Receiver<()>) {
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (ack_tx, ack_rx) = mpsc::channel();
    thread::spawn(move || {
        let env = attach(&dir, 0).expect("attach as dom0");
        let mut back = SimBack::<Echo, _>::new(env, guest, 0, EchoBack::default()).unwrap();
        loop {
            match cmd_rx.try_recv() {
                Ok(Cmd::Pause) => {
                    ack_tx.send(()).unwrap();
                    match cmd_rx.recv() {
                        Ok(Cmd::Resume) => {}
                        Ok(Cmd::Close) => break back.close(),
                        _ => return,
                    }
                }
                Ok(Cmd::Close) => break back.close(),
                Ok(Cmd::Resume) => {}
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
            back.step(Duration::from_millis(10)).unwrap();
        }
        ack_tx.send(()).unwrap();
    });
    (cmd_tx, ack_rx)
}

#[test]
fn a_dropped_call_still_completes_and_the_device_stays_usable() {
    let w = World::new("asyncdrop");
    let guest = w.guest("echo");
    let (cmd, ack) = paused_backend(w.dir.to_path_buf(), guest);
    runtime().block_on(async {
        let mut f = front(&w.dir, guest);
        timeout(T, f.connect()).await.unwrap().unwrap();
        assert_eq!(call(&mut f, 1).await.unwrap(), 1);

        cmd.send(Cmd::Pause).unwrap();
        ack.recv_timeout(T).unwrap();
        let dropped = timeout(Duration::from_millis(100), f.call(Ping::new(2, b"dropped"))).await;
        assert!(dropped.is_err(), "no answer while the backend is paused");
        cmd.send(Cmd::Resume).unwrap();
        // The dropped call's request completes, through the stream.
        let done = timeout(T, f.next()).await.unwrap().unwrap().unwrap();
        let pong = done.result.unwrap();
        assert_eq!((pong.seq, pong.payload()), (2, &b"dropped"[..]));
        assert!(timeout(T, f.next()).await.unwrap().is_none());
        // And the device is as usable as before.
        for seq in 3..10 {
            assert_eq!(call(&mut f, seq).await.unwrap(), seq);
        }
    });
}

#[test]
fn a_dropped_call_fails_when_the_backend_closes() {
    let w = World::new("asyncgone");
    let guest = w.guest("echo");
    let (cmd, ack) = paused_backend(w.dir.to_path_buf(), guest);
    runtime().block_on(async {
        let mut f = front(&w.dir, guest);
        timeout(T, f.connect()).await.unwrap().unwrap();
        assert_eq!(call(&mut f, 1).await.unwrap(), 1);
        cmd.send(Cmd::Pause).unwrap();
        ack.recv_timeout(T).unwrap();
        let dropped = timeout(Duration::from_millis(100), f.call(Ping::new(2, b"lost?"))).await;
        assert!(dropped.is_err(), "no answer while the backend is paused");
        // The backend closes without answering: the frontend learns it
        // from Xenstore while it waits on the stream, and the request
        // fails instead of staying in flight for ever.
        cmd.send(Cmd::Close).unwrap();
        ack.recv_timeout(T).unwrap();
        let done = timeout(T, f.next()).await.unwrap().unwrap().unwrap();
        assert!(
            matches!(done.result, Err(driver::Error::Disconnected)),
            "{:?}",
            done.result.err()
        );
        assert_eq!(f.device().lost(), 1);
        assert!(!f.device().is_connected());
        assert!(timeout(T, f.next()).await.unwrap().is_none());
        // A call now fails at once, with a clear error.
        let err = call(&mut f, 3).await.unwrap_err();
        assert!(
            matches!(err, Error::Driver(driver::Error::NotConnected)),
            "{err}"
        );
    });
}
