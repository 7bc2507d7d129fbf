//! Phase `xenstore`: `xenmq_runtime::xenstore::Connection` over `/dev/xen/xenbus` in
//! both domains, against the real xenstored in dom0.
//!
//! - domU: checks its home path, writes two keys in one transaction, lists
//!   them, says `ready`, and waits (a watch) for dom0's `go`.
//! - dom0: watches the domU's `ready` key, reads the two keys and the
//!   domU's name, answers `go` in the domU's directory.

use std::time::{Duration, Instant};

use xenmq::xenstore::{transaction, Store as _, Tx};
use xenmq_runtime::xenstore::Connection;

use crate::{e, env_u16, xs_read, xs_write, Res};

/// Waits for a watch event whose node then reads `want`, up to 90 s.
fn wait_for(xs: &Connection, path: &str, want: &str) -> Res<usize> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut events = 0;
    loop {
        // Xenstore fires a watch once when it is set: the node is checked
        // then, and after every event.
        if xs.read_string(Tx::NONE, path).is_ok_and(|v| v == want) {
            return Ok(events);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{path} never became {want:?}"));
        }
        if xs
            .next_event(Some(left))
            .map_err(e("next event"))?
            .is_some()
        {
            events += 1;
        }
    }
}

pub fn domu(xs: &Connection) -> Res<()> {
    let me = env_u16("XENMQ_LAB_DOMID")?;
    let home = xs
        .get_domain_path(u32::from(me))
        .map_err(e("get domain path"))?;
    if home != format!("/local/domain/{me}") {
        return Err(format!("home path {home:?}"));
    }
    let dir = format!("{home}/data/xenmq-xs");
    transaction(xs, |tx| {
        xs.write(tx, &format!("{dir}/a"), b"1")?;
        xs.write(tx, &format!("{dir}/b"), b"2")
    })
    .map_err(e("transaction"))?;
    let mut names = xs.directory(Tx::NONE, &dir).map_err(e("directory"))?;
    names.sort();
    if names != ["a", "b"] {
        return Err(format!("directory {dir}: {names:?}"));
    }
    xs.watch(&format!("{dir}/go"), "go").map_err(e("watch"))?;
    xs_write(xs, &format!("{dir}/ready"), "1")?;
    println!("domU: home {home}; wrote a, b in a transaction; ready");
    let events = wait_for(xs, &format!("{dir}/go"), "1")?;
    println!("domU: dom0 said go ({events} watch event(s)); PASS");
    xs.unwatch(&format!("{dir}/go"), "go")
        .map_err(e("unwatch"))?;
    Ok(())
}

pub fn dom0(xs: &Connection) -> Res<()> {
    let peer = env_u16("XENMQ_LAB_PEER_DOMID")?;
    let dir = format!("/local/domain/{peer}/data/xenmq-xs");
    xs.watch(&format!("{dir}/ready"), "ready")
        .map_err(e("watch"))?;
    let events = wait_for(xs, &format!("{dir}/ready"), "1")?;
    let (a, b) = (
        xs_read(xs, &format!("{dir}/a"))?,
        xs_read(xs, &format!("{dir}/b"))?,
    );
    let name = xs_read(xs, &format!("/local/domain/{peer}/name"))?;
    println!("dom0: domU {peer} ({name}) ready after {events} watch event(s); a={a} b={b}");
    if (a.as_str(), b.as_str()) != ("1", "2") {
        return Err("the domU's transaction did not land".into());
    }
    xs.unwatch(&format!("{dir}/ready"), "ready")
        .map_err(e("unwatch"))?;
    xs_write(xs, &format!("{dir}/go"), "1")?;
    println!("dom0: go; PASS");
    Ok(())
}
