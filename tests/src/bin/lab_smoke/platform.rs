//! Phase `platform`: the platform traits (`xenmq::grant::Grants`,
//! `xenmq::evtchn::Events`) as `xenmq_runtime::linux` implements them.
//!
//! - domU: shares two read-write pages and one read-only page with dom0,
//!   allocates a channel, publishes refs and port in Xenstore, waits for
//!   dom0's reply in the shared region and acknowledges it.
//! - dom0: maps the read-write pages and checks both; asks to map the
//!   read-only grant read-write (must fail: `ReadOnly`), maps it read-only;
//!   maps a reference never granted (must fail: `BadRef`); binds the channel,
//!   replies, waits for the ack, then waits for the domU to go away
//!   (`PeerClosed`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xenmq::evtchn::{Channel as _, Error as EvError, Events as _, Status};
use xenmq::grant::{Access, Error as GrantError, Grants as _, Pages as _, Shared as _};
use xenmq::shm::Region;
use xenmq_runtime::linux::{Events, Grants};
use xenmq_runtime::xenstore::Connection;

use crate::{env_u16, xs_read, xs_write, Res};

const PING: &[u8] = b"platform ping";
const PAGE2: &[u8] = b"second page";
const RO_TEXT: &[u8] = b"read-only page";
const REPLY_AT: usize = 64;
const REPLY: u32 = 0x5eed_0001;
const ACK_AT: usize = 68;
const ACK: u32 = 0x5eed_0002;
const PAGE: usize = 4096;

/// `what: {err:?}` (for errors without a `std::error::Error` impl too).
fn e<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err:?}")
}

fn bytes(r: &Region, at: usize, n: usize) -> Res<Vec<u8>> {
    let mut b = vec![0u8; n];
    r.read_bytes(at, &mut b).map_err(e("read region"))?;
    Ok(b)
}

pub fn domu(xs: &Connection) -> Res<()> {
    let me = env_u16("XENMQ_LAB_DOMID")?;
    let grants = Grants::open(me).map_err(e("grants"))?;
    let events = Events::new();
    let rw = grants
        .share(0, 2, Access::ReadWrite)
        .map_err(e("share rw"))?;
    let ro = grants
        .share(0, 1, Access::ReadOnly)
        .map_err(e("share ro"))?;
    let r = rw.region();
    r.write_bytes(0, PING).map_err(e("write"))?;
    r.write_bytes(PAGE, PAGE2).map_err(e("write"))?;
    ro.region().write_bytes(0, RO_TEXT).map_err(e("write"))?;
    let ch = events.alloc_unbound(0).map_err(e("alloc unbound"))?;
    let dir = format!("/local/domain/{me}/data/xenmq-platform");
    let refs: Vec<String> = rw.refs().iter().map(u32::to_string).collect();
    xs_write(xs, &format!("{dir}/rw"), &refs.join(" "))?;
    xs_write(xs, &format!("{dir}/ro"), &ro.refs()[0].to_string())?;
    xs_write(xs, &format!("{dir}/port"), &ch.port().to_string())?;
    println!(
        "domU {me}: rw refs {refs:?}, ro ref {}, port {}",
        ro.refs()[0],
        ch.port()
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Acquire: pairs with dom0's Release store of REPLY.
        if r.load_u32(REPLY_AT, Ordering::Acquire).map_err(e("load"))? == REPLY {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no reply from dom0".into());
        }
        ch.wait(Some(left)).map_err(e("wait"))?;
    }
    println!("domU: reply seen in the region");
    // Release: the ack; pairs with dom0's Acquire load.
    r.store_u32(ACK_AT, ACK, Ordering::Release)
        .map_err(e("store"))?;
    ch.notify().map_err(e("notify"))?;
    // dom0 may still map the pages: end_access succeeds (Linux defers).
    rw.end_access()
        .map_err(|(_, err)| format!("end access: {err:?}"))?;
    println!("domU: PASS");
    Ok(())
}

pub fn dom0(xs: &Connection) -> Res<()> {
    let peer = env_u16("XENMQ_LAB_PEER_DOMID")?;
    let grants = Grants::open(0).map_err(e("grants"))?;
    let events = Events::new();
    let dir = format!("/local/domain/{peer}/data/xenmq-platform");
    let deadline = Instant::now() + Duration::from_secs(90);
    let (rw, ro, port) = loop {
        if let (Ok(rw), Ok(ro), Ok(p)) = (
            xs_read(xs, &format!("{dir}/rw")),
            xs_read(xs, &format!("{dir}/ro")),
            xs_read(xs, &format!("{dir}/port")),
        ) {
            let rw: Vec<u32> = rw
                .split(' ')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(e("rw refs"))?;
            break (
                rw,
                ro.parse::<u32>().map_err(e("ro ref"))?,
                p.parse::<u32>().map_err(e("port"))?,
            );
        }
        if Instant::now() > deadline {
            return Err(format!("the domU never published {dir}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("dom0: domU {peer} published rw {rw:?}, ro {ro}, port {port}");

    let m = grants
        .map(peer, &rw, Access::ReadWrite)
        .map_err(e("map rw"))?;
    let r = m.region();
    if bytes(&r, 0, PING.len())? != PING || bytes(&r, PAGE, PAGE2.len())? != PAGE2 {
        return Err("the mapped pages do not hold the domU's text".into());
    }
    println!(
        "dom0: mapped {} pages read-write, both hold the domU's text",
        m.pages()
    );

    match grants.map(peer, &[ro], Access::ReadWrite) {
        Err(GrantError::ReadOnly { .. }) => {
            println!("dom0: read-write map of a read-only grant refused: ReadOnly")
        }
        other => return Err(format!("read-write map of a read-only grant: {other:?}")),
    }
    let rom = grants
        .map(peer, &[ro], Access::ReadOnly)
        .map_err(e("map ro"))?;
    if bytes(&rom.region(), 0, RO_TEXT.len())? != RO_TEXT {
        return Err("the read-only page does not hold the domU's text".into());
    }
    println!("dom0: mapped the read-only grant read-only");
    match grants.map(peer, &[ro + 1000], Access::ReadWrite) {
        Err(GrantError::BadRef { gref, .. }) => {
            println!("dom0: map of a reference never granted refused: BadRef {gref}")
        }
        other => return Err(format!("map of a reference never granted: {other:?}")),
    }

    let ch = events.bind_interdomain(peer, port).map_err(e("bind"))?;
    let st = ch.status().map_err(e("status"))?;
    if st
        != (Status::Interdomain {
            remote: peer,
            remote_port: port,
        })
    {
        return Err(format!("channel status {st:?}"));
    }
    println!("dom0: channel port {} {st:?}", ch.port());
    // Release: pairs with the domU's Acquire load of REPLY.
    r.store_u32(REPLY_AT, REPLY, Ordering::Release)
        .map_err(e("store"))?;
    ch.notify().map_err(e("notify"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Acquire: pairs with the domU's Release store of ACK.
        if r.load_u32(ACK_AT, Ordering::Acquire).map_err(e("load"))? == ACK {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no ack from the domU".into());
        }
        ch.wait(Some(left)).map_err(e("wait"))?;
    }
    println!("dom0: ack seen");
    drop((m, rom));
    // The domU exits now; its port closes and ours reports the peer gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match ch.wait(Some(Duration::from_secs(5))) {
            Err(EvError::PeerClosed) => break,
            Ok(_) if Instant::now() < deadline => {}
            other => return Err(format!("waiting for the domU to close: {other:?}")),
        }
    }
    println!("dom0: PeerClosed after the domU left; PASS");
    Ok(())
}
