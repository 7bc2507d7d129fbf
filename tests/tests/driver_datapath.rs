//! The driver data path (`xenmq::driver::{Client, Server}`) between two
//! simulated domains, one thread each: real grants (memfds mapped by each
//! side) and real event channels (eventfds), no Xenstore (the ring's grant
//! references and port are handed over directly).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use xenmq::driver::{self, BackRingOf, Client, FrontRingOf, Pool, Protocol, Server};
use xenmq::evtchn::{Channel as _, Events};
use xenmq::grant::{Access, Grants, Pages, Shared as _};
use xenmq::prelude::*;
use xenmq::ring::{compat, BackSide, FrontSide};
use xenmq_runtime::sim::{Domain, Host};
use xenmq_tests::run_dir;

#[xenmq::message]
#[derive(Debug)]
pub struct Ping {
    pub id: u64,
    pub seq: u64,
    pub slot: u32,
    pub len: u32,
}

#[xenmq::message]
#[derive(Debug)]
pub struct Pong {
    pub id: u64,
    pub seq: u64,
    pub sum: u64,
}

#[xenmq::protocol(name = "dp", request = Ping, response = Pong, pool_pages = 4)]
pub struct Dp;

/// The same protocol on the native ring layout.
#[xenmq::protocol(name = "dp", request = Ping, response = Pong, pool_pages = 4, layout = native)]
pub struct DpNative;

/// Echoes `seq`; with a buffer, sums its bytes and writes them back reversed.
struct Echo<P>(std::marker::PhantomData<P>);

impl<P: Protocol<Request = Ping, Response = Pong>> Backend for Echo<P> {
    type Protocol = P;
    fn handle(&mut self, req: Ping, io: &mut Io<'_, P>) -> Reply<Pong> {
        let mut sum = 0;
        if req.len > 0 {
            let mut buf = vec![0u8; (req.len as usize).min(4096)];
            if io.read(req.slot, 0, &mut buf).is_ok() {
                sum = buf.iter().map(|&b| u64::from(b)).sum();
                buf.reverse();
                let _ = io.write(req.slot, 0, &buf);
            }
        }
        Reply::Now(Pong {
            id: 0,
            seq: req.seq,
            sum,
        })
    }
}

struct Offer {
    ring: Vec<u32>,
    pool: Vec<u32>,
    port: u32,
}

/// Serves until the frontend's port closes.
fn backend<P: Protocol<Request = Ping, Response = Pong>>(
    dir: PathBuf,
    fe: u16,
    offer: mpsc::Receiver<Offer>,
) -> u64 {
    let dom0 = Domain::connect(&dir, 0).unwrap();
    let o = offer.recv().unwrap();
    let ring = dom0.map(fe, &o.ring, Access::ReadWrite).unwrap();
    let pool = dom0.map(fe, &o.pool, Access::ReadWrite).unwrap();
    let chan = dom0.bind_interdomain(fe, o.port).unwrap();
    let mut server = Server::<P, _>::new();
    server.attach(
        BackRingOf::<P>::attach(ring.region()).unwrap(),
        chan,
        Some(Pool::new(pool.region())),
    );
    let mut echo = Echo(std::marker::PhantomData);
    loop {
        server.serve(&mut echo).unwrap();
        match server.wait(Some(Duration::from_millis(50))) {
            Ok(_) => {}
            Err(driver::Error::Event(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let served = server.served();
    drop(server);
    drop((ring, pool));
    served
}

#[test]
fn pipelined_requests_and_bulk_data_across_domains() {
    pipelined::<Dp>();
}

#[test]
fn pipelined_requests_and_bulk_data_on_the_native_ring() {
    pipelined::<DpNative>();
}

fn pipelined<P: Protocol<Request = Ping, Response = Pong>>() {
    let dir = run_dir("pipe");
    let host = Host::start(&dir).unwrap();
    let fe_id = host.create_domain("front").unwrap();
    let (tx, rx) = mpsc::channel();
    let d = dir.to_path_buf();
    let back = std::thread::spawn(move || backend::<P>(d, fe_id, rx));

    let fe = Domain::connect(&dir, fe_id).unwrap();
    let ring = fe.share(0, 1, Access::ReadWrite).unwrap();
    let pool = fe.share(0, 4, Access::ReadWrite).unwrap();
    let chan = fe.alloc_unbound(0).unwrap();
    let mut client = Client::<P, _>::new();
    client.attach(
        FrontRingOf::<P>::init(ring.region()).unwrap(),
        chan,
        Some(Pool::new(pool.region())),
    );
    tx.send(Offer {
        ring: ring.refs().to_vec(),
        pool: pool.refs().to_vec(),
        port: client.channel().unwrap().port(),
    })
    .unwrap();

    // Many in flight at once, completed in any order, each exactly once.
    const N: u64 = 20_000;
    let mut next = 0;
    let mut done = vec![false; N as usize];
    let mut completed = 0;
    while completed < N {
        while next < N && client.in_flight() < 24 {
            client
                .queue(
                    Ping {
                        id: 0,
                        seq: next,
                        slot: 0,
                        len: 0,
                    },
                    None,
                )
                .unwrap();
            next += 1;
        }
        client.flush().unwrap();
        let c = client.wait(Some(Duration::from_secs(10))).unwrap();
        let pong = c.result.unwrap();
        assert!(!done[pong.seq as usize], "answered twice");
        done[pong.seq as usize] = true;
        completed += 1;
    }
    assert_eq!(client.stray_responses(), 0);

    // Bulk data: the frontend writes in place, the backend copies out once
    // and writes back in place.
    let lease = client.lease().unwrap();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    client.write(&lease, 0, &data).unwrap();
    let slot = lease.slot();
    let tag = client
        .submit_with(
            Ping {
                id: 0,
                seq: 7,
                slot,
                len: 3000,
            },
            lease,
        )
        .unwrap();
    let c = client.wait_for(tag, Some(Duration::from_secs(10))).unwrap();
    let expect: u64 = data.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(c.result.unwrap().sum, expect);
    let lease = c.lease.unwrap();
    let mut back_data = vec![0u8; 3000];
    client.read(&lease, 0, &mut back_data).unwrap();
    let mut rev = data.clone();
    rev.reverse();
    assert_eq!(back_data, rev);

    // A call is a submit and a wait.
    let pong = client
        .call(
            Ping {
                id: 0,
                seq: 99,
                slot: 0,
                len: 0,
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!(pong.seq, 99);

    // Closing our port ends the backend's loop.
    let (_, chan) = client.detach();
    drop(chan);
    assert_eq!(back.join().unwrap(), N + 2);
    drop((ring, pool));
    let me = host
        .domains()
        .into_iter()
        .find(|d| d.domid == fe_id)
        .unwrap();
    assert_eq!((me.grants, me.ports), (0, 0), "nothing leaks: {me:?}");
    drop(fe);
}

#[test]
fn requests_in_flight_when_the_backend_vanishes_fail_once() {
    let dir = run_dir("vanish");
    let host = Host::start(&dir).unwrap();
    let fe_id = host.create_domain("front").unwrap();
    let fe = Domain::connect(&dir, fe_id).unwrap();
    let dom0 = Domain::connect(&dir, 0).unwrap();
    let ring = fe.share(0, 1, Access::ReadWrite).unwrap();
    let chan = fe.alloc_unbound(0).unwrap();
    let port = chan.port();
    let mut client = Client::<Dp, _>::new();
    client.set_spin(0);
    client.attach(compat::Front::init(ring.region()).unwrap(), chan, None);

    let mapped = dom0.map(fe_id, ring.refs(), Access::ReadWrite).unwrap();
    let bchan = dom0.bind_interdomain(fe_id, port).unwrap();
    let mut server = Server::<Dp, _>::new();
    server.attach(compat::Back::attach(mapped.region()).unwrap(), bchan, None);

    // Three requests: the backend answers the first only, then vanishes.
    let tags: Vec<Tag> = (0..3)
        .map(|seq| {
            client
                .submit(Ping {
                    id: 0,
                    seq,
                    slot: 0,
                    len: 0,
                })
                .unwrap()
        })
        .collect();
    struct One(bool);
    impl Backend for One {
        type Protocol = Dp;
        fn handle(&mut self, req: Ping, io: &mut Io<'_, Dp>) -> Reply<Pong> {
            if std::mem::replace(&mut self.0, true) {
                // Keep the others waiting for ever.
                return Reply::Later(io.defer().unwrap());
            }
            Reply::Now(Pong {
                id: 0,
                seq: req.seq,
                sum: 0,
            })
        }
    }
    server.serve(&mut One(false)).unwrap();
    drop(server.detach());
    drop(server);
    drop(mapped);

    let first = client.wait(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first.tag, tags[0]);
    assert!(first.result.is_ok());
    // The backend's port is closed: the wait fails, the client detaches,
    // and the two others complete with Disconnected, once each.
    let err = client.wait(Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(err, driver::Error::Event(_)), "{err}");
    let (lost, _chan) = client.detach();
    assert_eq!(lost, 2);
    let mut failed = Vec::new();
    while let Some(c) = client.poll().unwrap() {
        assert_eq!(c.result.unwrap_err(), driver::Error::Disconnected);
        failed.push(c.tag);
    }
    assert_eq!(failed, &tags[1..]);
}
