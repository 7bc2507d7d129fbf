//! Hostile Xenstore clients against the server's engine: dom0 and two
//! guests, each sending requests built from the input (any type, any
//! transaction id, paths from a small tree or raw bytes, values,
//! permissions) or raw stream bytes, with domains introduced and released
//! between. Nothing may panic; everything the server writes is a
//! well-formed frame within the protocol's limits; a reply answers the
//! request it follows (same type or an error, same request id) on an open
//! connection.

use xenmq::xenstore::wire::{Header, HEADER_LEN, PAYLOAD_MAX};
use xenmq_runtime::xenstore::server::{Engine, Limits};

use crate::harness::Input;

const PATHS: [&str; 12] = [
    "/",
    "/local",
    "/local/domain/1",
    "/local/domain/1/device/vkv/0/state",
    "/local/domain/2/data",
    "/local/domain/0/backend/vkv/1/0",
    "/tool/xenstored",
    "@introduceDomain",
    "@releaseDomain",
    "data/x",
    "/a/b/c/d",
    "",
];

/// Message types, as numbers (`xs_wire.h`), with a few that are not.
const TYPES: [u32; 25] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    128,
    u32::MAX,
];

fn payload(input: &mut Input<'_>) -> Option<Vec<u8>> {
    let mut p = Vec::new();
    for _ in 0..input.byte()? % 4 {
        match input.byte()? % 4 {
            0 => p.extend_from_slice(input.pick(&PATHS)?.as_bytes()),
            1 => p.extend_from_slice(format!("{}", input.byte()? % 5).as_bytes()),
            2 => p.extend_from_slice(input.pick(&["r0", "b1", "n2", "w0", "x", "rr"])?.as_bytes()),
            _ => p.extend_from_slice(input.bytes(64)?),
        }
        if input.byte()? % 8 != 0 {
            p.push(0);
        }
    }
    Some(p)
}

fn frame(typ: u32, req: u32, tx: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_LEN + body.len());
    for w in [typ, req, tx, body.len() as u32] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    f.extend_from_slice(body);
    f
}

/// Every message the server queued for `conn` is a frame within limits.
fn check_output(xs: &mut Engine, conn: u64, asked: Option<(u32, u32)>) {
    let out = xs.take_output(conn);
    for m in &out {
        let head = m.get(..HEADER_LEN).expect("a whole header");
        let hdr = Header::parse(head).expect("a valid header");
        let len = hdr.check_len().expect("a payload within the limit");
        assert!(len <= PAYLOAD_MAX);
        assert_eq!(
            m.len(),
            HEADER_LEN + len,
            "the frame's length is its payload's"
        );
    }
    // The reply to the request just sent is the last message queued (watch
    // events the request caused come before it; @releaseDomain may follow).
    if let Some((typ, req)) = asked {
        let reply = out.iter().rev().find_map(|m| {
            let h = Header::parse(&m[..HEADER_LEN]).ok()?;
            (h.req_id == req && h.msg_type != 15).then_some(h)
        });
        if let Some(h) = reply {
            assert!(
                h.msg_type == typ || h.msg_type == 16,
                "reply type {} to a request of type {typ}",
                h.msg_type
            );
        }
    }
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let limits = Limits {
        max_nodes: 1 + u32::from(input.byte()? % 64),
        max_watches: 1 + usize::from(input.byte()? % 8),
        max_transactions: 1 + usize::from(input.byte()? % 4),
        max_queued: 64,
        ..Limits::default()
    };
    let mut xs = Engine::new(limits);
    xs.introduce(1);
    xs.introduce(2);
    let mut conns = vec![
        (0u16, xs.connect(0)),
        (1, xs.connect(1)),
        (2, xs.connect(2)),
    ];
    let mut req = 0u32;
    while let Some(op) = input.byte() {
        let i = usize::from(input.byte()?) % conns.len();
        let (domid, conn) = conns[i];
        match op % 16 {
            0 => {
                // Raw stream bytes: partial frames, garbage headers.
                let raw = input.bytes(96)?;
                let _ = xs.receive(conn, raw);
                check_output(&mut xs, conn, None);
            }
            1 => {
                let guest = 1 + u16::from(input.byte()? % 2);
                if input.byte()? % 2 == 0 {
                    xs.release(guest);
                } else {
                    xs.introduce(guest);
                }
            }
            2 => {
                if !xs.is_open(conn) {
                    conns[i] = (domid, xs.connect(domid));
                }
            }
            _ => {
                let typ = input.pick(&TYPES)?;
                let tx = u32::from(input.byte()? % 4);
                let body = payload(&mut input)?;
                req = req.wrapping_add(1);
                let _ = xs.receive(conn, &frame(typ, req, tx, &body));
                check_output(&mut xs, conn, Some((typ, req)));
            }
        }
        for &(_, c) in &conns {
            check_output(&mut xs, c, None);
        }
    }
    Some(())
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
