//! `xenmq-lab-smoke`: both sides of the lab smoke test in one binary, the
//! role taken from `XENMQ_LAB_ROLE` (set by `xenmq lab run`). The phases run
//! in order on both sides; the exit code is 0 only if every check of every
//! phase passed. The Xenstore requests are written by hand in `xs_wire.h`
//! framing over `xenmq_runtime::linux::Xenbus`.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;

use xenmq_runtime::linux::Xenbus;

mod grant;

pub type Res<T> = Result<T, String>;

/// `what: error: its source: ...`, the whole chain.
pub fn e<E: std::error::Error>(what: &'static str) -> impl FnOnce(E) -> String {
    move |err| {
        let mut msg = format!("{what}: {err}");
        let mut src = err.source();
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg
    }
}

/// One Xenstore request over `/dev/xen/xenbus` (`xs_wire.h`: type, req_id,
/// tx_id, len, then the payload). Returns the reply payload.
pub fn xs(bus: &mut Xenbus, ty: u32, payload: &[u8]) -> Res<Vec<u8>> {
    let mut msg = Vec::with_capacity(16 + payload.len());
    for v in [ty, 7, 0, payload.len() as u32] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    msg.extend_from_slice(payload);
    bus.write_all(&msg).map_err(e("xenbus write"))?;
    let mut head = [0u8; 16];
    bus.read_exact(&mut head).map_err(e("xenbus read"))?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let len = word(12) as usize;
    if len > 4096 {
        return Err(format!("xenstore reply of {len} bytes"));
    }
    let mut body = vec![0u8; len];
    bus.read_exact(&mut body).map_err(e("xenbus read"))?;
    if word(0) == XS_ERROR {
        return Err(format!(
            "xenstore error {}",
            String::from_utf8_lossy(&body).trim_end_matches('\0')
        ));
    }
    Ok(body)
}

const XS_READ: u32 = 2;
const XS_WRITE: u32 = 11;
const XS_ERROR: u32 = 16;

pub fn xs_write(bus: &mut Xenbus, path: &str, value: &str) -> Res<()> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(value.as_bytes());
    xs(bus, XS_WRITE, &p).map(drop)
}

pub fn xs_read(bus: &mut Xenbus, path: &str) -> Res<String> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    let v = xs(bus, XS_READ, &p)?;
    String::from_utf8(v).map_err(e("xenstore value"))
}

pub fn env_u16(name: &str) -> Res<u16> {
    std::env::var(name)
        .map_err(e("environment"))?
        .parse()
        .map_err(e("domid"))
}

/// The phases: name, dom0 side, domU side.
type Phase = (&'static str, fn() -> Res<()>, fn() -> Res<()>);

const PHASES: &[Phase] = &[("grant", grant::dom0, grant::domu)];

fn main() -> ExitCode {
    let role = std::env::var("XENMQ_LAB_ROLE").unwrap_or_default();
    for (name, dom0, domu) in PHASES {
        println!("== phase {name}");
        let r = match role.as_str() {
            "dom0" => dom0(),
            "domu" => domu(),
            _ => Err(format!(
                "XENMQ_LAB_ROLE is `{role}`, not dom0 or domu (run me with `xenmq lab run`)"
            )),
        };
        if let Err(msg) = r {
            eprintln!("{role}: FAIL in phase {name}: {msg}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
