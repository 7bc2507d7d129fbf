//! A hostile backend in dom0, played by hand on echo/5 with the real ring
//! type (`BackRingOf<Echo>`), against the domU's real echo frontend: one
//! misbehaviour per frontend incarnation, then xenmq's own backend serves
//! the device. The domU checks that each frontend ends with typed errors,
//! every call answered exactly once (ok or error), its grants released, and
//! that it connects to the honest backend afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xenmq::driver::{BackRingOf, Protocol};
use xenmq::evtchn::{Channel as _, Events as _};
use xenmq::grant::{Access, Grants as _, Pages as _};
use xenmq::xenstore::{self, Store as _, Tx};
use xenmq_examples::echo::{Echo, EchoFront, Ping, Pong};
use xenmq_runtime::device::FrontDevice;
use xenmq_runtime::platform::Platform;

use crate::front::{checked_pings, mappings, CLOSE};
use crate::{e, Res};

/// The device the hostile backend serves.
pub const DEV: u32 = 5;

/// What the backend does wrong, one per frontend incarnation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// `rsp_prod` 2^24 past what was requested.
    RspForward,
    /// `rsp_prod` behind the frontend's consumer.
    RspBackward,
    /// A response for no request, every field garbage.
    Garbage,
    /// Notifications in a loop for 2 s, no response.
    Storm,
    /// Unmaps and unbinds without a word, as a killed backend process.
    Vanish,
    /// Flaps through states without ever serving.
    Flap,
    /// Refuses the frontend's ring before Connected.
    Refuse,
}

pub const CASES: [Bad; 7] = [
    Bad::RspForward,
    Bad::RspBackward,
    Bad::Garbage,
    Bad::Storm,
    Bad::Vanish,
    Bad::Flap,
    Bad::Refuse,
];

/// The most the refusing backend refuses: until the domU writes
/// `refused_key`, its frontend having given up.
const REFUSE_FOR: Duration = Duration::from_secs(60);

/// Written by the domU once its frontend's connect to the refusing
/// backend has failed.
fn refused_key(fe: u16) -> String {
    format!("/local/domain/{fe}/data/xen-e2e/refused")
}

/// Offset of `rsp_prod` in the native ring (`xenmq::ring::native`).
const RSP_PROD: usize = 128;

/// dom0's side: the cases, then `honest` (xenmq's backend) until stopped.
pub fn dom0<P: Platform>(p: &P, fe: u16, stop: &Arc<AtomicBool>) -> Res<()> {
    let env = p.env().map_err(e("env"))?;
    let be = format!("/local/domain/{}/backend/echo/{fe}/{DEV}", p.domid());
    let fd = format!("/local/domain/{fe}/device/echo/{DEV}");
    let xs = &env.store;
    let read = |k: &str| xs.read_string(Tx::NONE, &format!("{fd}/{k}")).ok();
    let wait_fe = |states: &[&str], secs: u64| -> Res<()> {
        let t = Instant::now();
        loop {
            let s = read("state").unwrap_or_default();
            if states.contains(&s.as_str()) {
                return Ok(());
            }
            // Relaxed: a flag.
            if stop.load(Ordering::Relaxed) || t.elapsed() > Duration::from_secs(secs) {
                return Err(format!("frontend state {s:?}, want {states:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let publish = |pairs: &[(&str, String)], state: &str| -> Res<()> {
        xenstore::transaction(xs, |tx| {
            for (k, v) in pairs {
                xs.write(tx, &format!("{be}/{k}"), v.as_bytes())?;
            }
            xs.write(tx, &format!("{be}/state"), state.as_bytes())
        })
        .map_err(e("publish as the backend"))
    };
    for (i, case) in CASES.into_iter().enumerate() {
        wait_fe(&["1"], 120)?;
        let _ = xs.rm(Tx::NONE, &format!("{be}/error"));
        let init_wait = |instance: usize| {
            publish(
                &[
                    ("xenmq-protocol", Echo::NAME.to_string()),
                    ("xenmq-version", Echo::VERSION.to_string()),
                    ("xenmq-fingerprint", format!("{:016x}", Echo::FINGERPRINT)),
                    (
                        "xenmq-ring-layout",
                        Echo::identity().ring.name().to_string(),
                    ),
                    ("max-ring-page-order", "0".to_string()),
                    ("xenmq-instance", instance.to_string()),
                ],
                "2",
            )
        };
        init_wait(500 + i)?;
        if case == Bad::Flap {
            for s in ["4", "1", "2", "5", "2", "4", "3", "banana", "2", "4"] {
                publish(&[], s)?;
                std::thread::sleep(Duration::from_millis(10));
            }
            wait_fe(&["5", "6"], 60)?;
            publish(&[], "6")?;
            continue;
        }
        // The first frontend comes when the domU reaches this scenario.
        wait_fe(&["3"], if i == 0 { 400 } else { 30 }).map_err(|w| format!("{case:?}: {w}"))?;
        if case == Bad::Refuse {
            // Refuses every offer, and InitWaits again after each of the
            // frontend's restarts, until its connect has timed out.
            let until = Instant::now() + REFUSE_FOR;
            let (mut refusals, mut last) = (0, String::new());
            while Instant::now() < until && xs.read(Tx::NONE, &refused_key(fe)).is_err() {
                let s = read("state").unwrap_or_default();
                if s != last {
                    match s.as_str() {
                        "3" => {
                            publish(&[("error", "refused by the hostile backend".into())], "5")?;
                            refusals += 1;
                        }
                        "5" | "6" => publish(&[], "6")?,
                        "1" => init_wait(600 + refusals)?,
                        _ => {}
                    }
                    last = s;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("dom0: hostile-backend: {refusals} offers refused");
            wait_fe(&["5", "6"], 60)?;
            publish(&[], "6")?;
            continue;
        }
        let num = |k: &str| -> Res<u32> {
            read(k)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("frontend's {k}"))
        };
        let (gref, port) = (num("ring-ref")?, num("event-channel")?);
        let map = env
            .grants
            .map(fe, &[gref], Access::ReadWrite)
            .map_err(e("map the ring"))?;
        let chan = env.events.bind_interdomain(fe, port).map_err(e("bind"))?;
        let region = map.region();
        let mut ring = BackRingOf::<Echo>::attach(region).map_err(e("attach"))?;
        publish(
            &[(
                "xenmq-frontend-instance",
                read("xenmq-instance").unwrap_or_default(),
            )],
            "4",
        )?;
        // The frontend's first request.
        let t = Instant::now();
        let first = loop {
            if let Some(req) = ring.consume_request().map_err(e("consume"))? {
                break req;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!("{case:?}: no request"));
            }
            let _ = chan.wait(Some(Duration::from_millis(50)));
        };
        let honest = region
            .load_u32(RSP_PROD, Ordering::Acquire)
            .map_err(e("rsp_prod"))?;
        match case {
            Bad::RspForward | Bad::RspBackward => {
                let bad = match case {
                    Bad::RspForward => honest.wrapping_add(0x0100_0000),
                    _ => honest.wrapping_sub(5),
                };
                // Release: as a push would.
                region
                    .store_u32(RSP_PROD, bad, Ordering::Release)
                    .map_err(e("write rsp_prod"))?;
                chan.notify().map_err(e("notify"))?;
            }
            Bad::Garbage => {
                let rsp = Pong {
                    id: first.id ^ 0xdead_beef_0000_0000,
                    seq: !first.seq,
                    len: 0xffff_fff0,
                    data: [0xa5; xenmq_examples::echo::PAYLOAD],
                };
                ring.produce_response(&rsp).map_err(e("produce"))?;
                ring.push_responses().map_err(e("push"))?;
                chan.notify().map_err(e("notify"))?;
            }
            Bad::Storm => {
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(2) {
                    chan.notify().map_err(e("notify"))?;
                }
            }
            _ => {}
        }
        if case == Bad::Vanish {
            drop(chan);
            drop(map);
        }
        // The frontend gives up and closes.
        wait_fe(&["5", "6"], 60).map_err(|w| format!("{case:?}: {w}"))?;
        publish(&[], "6")?;
    }
    Ok(())
}

type Front<P> = FrontDevice<
    Echo,
    EchoFront,
    <P as Platform>::Store,
    <P as Platform>::Grants,
    <P as Platform>::Events,
>;

/// The domU's side.
pub fn domu<P: Platform>(p: &P) -> Res<()> {
    let maps_before = mappings("/dev/xen/gntalloc")?.len();
    let fds_before = crate::back::fds()?;
    for case in CASES {
        let t = Instant::now();
        let env = p.env().map_err(e("env"))?;
        let mut f: Front<P> = FrontDevice::new(env, DEV, EchoFront).map_err(e("front"))?;
        let (mut ok, mut failed, mut why) = (0, 0, Vec::new());
        match f.connect(Duration::from_secs(10)) {
            Err(err) => {
                failed += 1;
                why.push(format!("connect: {}", xenmq::error::Chain(&err)));
            }
            Ok(()) => {
                for i in 0..3u32 {
                    match f.call(
                        Ping::new(i, b"to a hostile backend"),
                        Some(Duration::from_secs(2)),
                    ) {
                        Ok(pong) if pong.seq == i && pong.payload() == b"to a hostile backend" => {
                            ok += 1
                        }
                        Ok(pong) => return Err(format!("{case:?}: a wrong pong {pong:?}")),
                        Err(err) => {
                            failed += 1;
                            why.push(xenmq::error::Chain(&err).to_string());
                        }
                    }
                }
            }
        }
        if case == Bad::Refuse {
            let env = p.env().map_err(e("env"))?;
            env.store
                .write(Tx::NONE, &refused_key(p.domid()), b"1")
                .map_err(e("write refused"))?;
        }
        let stray = f.client().stray_responses();
        let error = {
            let env = p.env().map_err(e("env"))?;
            env.store
                .read_string(Tx::NONE, &format!("{}/error", f.dir()))
                .ok()
        };
        f.close(CLOSE).map_err(e("close"))?;
        // What the frontend let go of may take its kernel a moment.
        let settle = Instant::now();
        let (mut maps, mut fds) = (mappings("/dev/xen/gntalloc")?.len(), crate::back::fds()?);
        while (maps > maps_before || fds > fds_before) && settle.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(100));
            (maps, fds) = (mappings("/dev/xen/gntalloc")?.len(), crate::back::fds()?);
        }
        why.dedup();
        println!(
            "FIGURE hostile-backend-{case:?}: {ok} calls ok, {failed} failed ({}), {stray} stray \
             responses, frontend error node {error:?}; closed in {} ms; domU grant mappings {maps}, \
             descriptors {fds}",
            why.join("; "),
            t.elapsed().as_millis()
        );
        if ok > 0 && !matches!(case, Bad::Storm) {
            return Err(format!(
                "{case:?}: {ok} calls answered by a backend that never answers"
            ));
        }
        if failed == 0 {
            return Err(format!("{case:?}: no call failed"));
        }
        if maps > maps_before || fds > fds_before {
            let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .map_err(e("/proc/self/fd"))?
                .flatten()
                .filter_map(|d| std::fs::read_link(d.path()).ok())
                .map(|l| l.display().to_string())
                .collect();
            return Err(format!(
                "{case:?}: the frontend holds {maps} mappings and {fds} descriptors, {maps_before} \
                 and {fds_before} before (open: {open:?})"
            ));
        }
    }
    // xenmq's own backend now serves echo/5.
    let env = p.env().map_err(e("env"))?;
    let mut f: Front<P> = FrontDevice::new(env, DEV, EchoFront).map_err(e("front"))?;
    f.connect(Duration::from_secs(30))
        .map_err(e("connect to the honest backend"))?;
    checked_pings::<P>(&mut f, 10)?;
    f.close(CLOSE).map_err(e("close"))?;
    println!("domU: hostile-backend: the frontend connected to the honest backend afterwards");
    Ok(())
}
