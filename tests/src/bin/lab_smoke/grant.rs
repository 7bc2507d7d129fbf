//! Phase `grant`: the `/dev/xen` devices through `xenmq_runtime::linux`'s
//! own API.
//!
//! - domU: shares a page with dom0 through gntalloc, allocates an unbound
//!   event channel for dom0, publishes both under
//!   `/local/domain/<domU>/data/xenmq-lab/` through `/dev/xen/xenbus`, and
//!   waits for dom0's reply in the page; acknowledges it; then waits for the
//!   unmap notification dom0's mapping sends when it goes away.
//! - dom0: reads the keys, maps the page with gntdev, binds the channel
//!   interdomain (checking it with `EVTCHNOP_status`), arms an unmap
//!   notification (clear a byte + send an event), replies in the page and
//!   notifies; waits for the acknowledgement, unmaps, and waits for Xen to
//!   show the domU closed its end.
//!
//! (`EVTCHNOP_status` goes through `/dev/xen/privcmd`, which Linux restricts
//! in an unprivileged domU: only dom0 checks port status.)
//!

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xenmq_runtime::linux::{Evtchn, Gntalloc, Gntdev, Mapping, PortStatus};
use xenmq_runtime::xenstore::Connection;

use crate::{e, env_u16, xs_read, xs_write, Res};

const PING: &[u8] = b"xenmq-lab ping";
const PONG: &[u8] = b"pong from dom0";
/// u32 dom0 sets (Release) once PONG is written.
const REPLY_AT: usize = 64;
const REPLY: u32 = 0x600d_f00d;
/// u32 the domU sets (Release) once it has seen the reply.
const ACK_AT: usize = 68;
const ACK: u32 = 0x0000_0acc;
/// Byte dom0 sets to 1 and arms to be cleared when it unmaps.
const ALIVE_AT: usize = 72;
const PONG_AT: usize = 128;

fn read_bytes(m: &Mapping, at: usize, len: usize) -> Res<Vec<u8>> {
    let mut b = vec![0u8; len];
    m.read(at, &mut b).map_err(e("read page"))?;
    Ok(b)
}

pub fn domu(xs: &Connection) -> Res<()> {
    let me = env_u16("XENMQ_LAB_DOMID")?;
    let peer = env_u16("XENMQ_LAB_PEER_DOMID")?;
    let ga = Gntalloc::open().map_err(e("gntalloc"))?;
    let ev = Evtchn::open().map_err(e("evtchn"))?;

    let page = ga.share(peer, 1, true).map_err(e("share"))?;
    page.mapping().write(0, PING).map_err(e("write page"))?;
    let port = ev.bind_unbound(peer).map_err(e("bind unbound"))?;
    let gref = page.grefs()[0];
    let dir = format!("/local/domain/{me}/data/xenmq-lab");
    xs_write(xs, &format!("{dir}/gref"), &gref.to_string())?;
    xs_write(xs, &format!("{dir}/port"), &port.to_string())?;
    println!(
        "domU {me}: shared gref {gref}, unbound port {port} for dom{peer}, published in {dir}"
    );

    let m = page.mapping();
    // Wait for an event, then check the page (events carry no data).
    let deadline = Instant::now() + Duration::from_secs(60);
    let reply = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no reply from dom0".into());
        }
        if ev.wait(Some(left)).map_err(e("wait"))? == Some(port) {
            // Acquire: pairs with dom0's Release store of REPLY after PONG.
            let reply = m.load_u32(REPLY_AT, Ordering::Acquire).map_err(e("load"))?;
            if reply == REPLY {
                break reply;
            }
        }
    };
    let pong = read_bytes(m, PONG_AT, PONG.len())?;
    let alive = read_bytes(m, ALIVE_AT, 1)?[0];
    println!(
        "domU: event on port {port}; reply {reply:#x}, text {:?}, dom0 alive byte {alive}",
        String::from_utf8_lossy(&pong)
    );
    // Release: publishes nothing but the ack itself; pairs with dom0's Acquire.
    m.store_u32(ACK_AT, ACK, Ordering::Release)
        .map_err(e("store"))?;
    ev.notify(port).map_err(e("notify"))?;

    // dom0 unmaps after the ack: its unmap notification clears the alive
    // byte and fires our port.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no unmap notification from dom0".into());
        }
        if ev.wait(Some(left)).map_err(e("wait"))? == Some(port)
            && read_bytes(m, ALIVE_AT, 1)?[0] == 0
        {
            break;
        }
    }
    println!("domU: dom0 unmapped (alive byte cleared, event received)");
    page.close().map_err(e("end access"))?;
    ev.unbind(port).map_err(e("unbind"))?;
    println!("domU: PASS");
    Ok(())
}

pub fn dom0(xs: &Connection) -> Res<()> {
    let peer = env_u16("XENMQ_LAB_PEER_DOMID")?;
    let gd = Gntdev::open().map_err(e("gntdev"))?;
    let ev = Evtchn::open().map_err(e("evtchn"))?;
    let dir = format!("/local/domain/{peer}/data/xenmq-lab");

    // Wait for the domU to publish (it boots after we start).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (gref, port) = loop {
        let g = xs_read(xs, &format!("{dir}/gref"));
        let p = xs_read(xs, &format!("{dir}/port"));
        if let (Ok(g), Ok(p)) = (g, p) {
            break (
                g.parse::<u32>().map_err(e("gref"))?,
                p.parse::<u32>().map_err(e("port"))?,
            );
        }
        if Instant::now() > deadline {
            return Err(format!("domU never published {dir}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("dom0: domU {peer} published gref {gref}, port {port}");

    let map = gd.map(peer, &[gref], true).map_err(e("map grant"))?;
    let m = map.mapping();
    let ping = read_bytes(m, 0, PING.len())?;
    if ping != PING {
        return Err(format!(
            "unexpected page contents {:?}",
            String::from_utf8_lossy(&ping)
        ));
    }
    let local = ev
        .bind_interdomain(peer, port)
        .map_err(e("bind interdomain"))?;
    println!(
        "dom0: mapped the page ({:?}), bound local port {local}",
        String::from_utf8_lossy(&ping)
    );
    let st = ev.status(local).map_err(e("status"))?;
    println!("dom0: port {local} status {st:?}");
    if st
        != (PortStatus::Interdomain {
            remote: peer,
            remote_port: port,
        })
    {
        return Err(format!("port {local} is not connected to dom{peer}:{port}"));
    }
    m.write(ALIVE_AT, &[1]).map_err(e("write page"))?;
    map.set_unmap_notify(ALIVE_AT, true, Some(local))
        .map_err(e("unmap notify"))?;
    m.write(PONG_AT, PONG).map_err(e("write page"))?;
    // Release: PONG and the alive byte before the flag; pairs with the
    // domU's Acquire load of REPLY_AT.
    m.store_u32(REPLY_AT, REPLY, Ordering::Release)
        .map_err(e("store"))?;
    ev.notify(local).map_err(e("notify"))?;

    // Events carry no data and coalesce (binding also leaves the new port
    // pending, as Xen does for a bind): recheck the page after each one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = 0;
    loop {
        // Acquire: pairs with the domU's Release store of ACK.
        let ack = m.load_u32(ACK_AT, Ordering::Acquire).map_err(e("load"))?;
        if ack == ACK {
            println!("dom0: ack {ack:#x} after {events} event(s)");
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no acknowledgement from the domU (ack word {ack:#x})"
            ));
        }
        match ev.wait(Some(left)).map_err(e("wait"))? {
            Some(p) if p == local => events += 1,
            Some(p) => return Err(format!("event on unexpected port {p}")),
            None => {}
        }
    }
    if events == 0 {
        // The ack was visible before we waited: its notification (perhaps
        // coalesced with the bind's) must still be pending.
        if ev.wait(Some(Duration::from_secs(5))).map_err(e("wait"))? != Some(local) {
            return Err("the ack arrived without an event".into());
        }
    }
    map.close().map_err(e("unmap"))?;
    println!("dom0: unmapped");
    // The unmap notification went out on our port; the domU then closes its
    // end, which Xen shows as our port unbound again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = ev.status(local).map_err(e("status"))?;
        if st == (PortStatus::Unbound { remote: peer }) {
            println!("dom0: the domU closed its end; port {local} status {st:?}; PASS");
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "port {local} still {st:?}; the domU never closed its end"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
