//! The test protocol of `tests/c/ring_msg.h` in Rust, and the Rust ends of
//! a two-process ring stream (the same loops as `tests/c/ring_peer.c`), for
//! the interop tests and the benchmarks. Include with
//! `#[path = "support/ring_stream.rs"] mod ring_stream;` next to `shmem`.
#![allow(dead_code)]

use std::process::Child;
use std::time::Duration;

use xenmq::ring::compat;
use xenmq::shm::Region;
use xenmq::sync::Ordering;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::shmem::Event;

/// `struct xq_req` of `tests/c/ring_msg.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct Req {
    pub id: u64,
    pub seed: u64,
    pub op: u32,
    pub len: u32,
    pub data: [u8; 16],
}

/// `struct xq_rsp` of `tests/c/ring_msg.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct Rsp {
    pub id: u64,
    pub sum: u64,
    pub status: i32,
    pub op: u32,
    pub echo: [u8; 32],
}

/// `xq_make_req`.
pub fn make_req(id: u64) -> Req {
    Req {
        id,
        seed: id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        op: (id % 7) as u32,
        len: 16,
        data: std::array::from_fn(|i| (id as u8).wrapping_add(i as u8 * 3)),
    }
}

/// `xq_make_rsp`.
pub fn make_rsp(q: &Req) -> Rsp {
    let sum = q
        .data
        .iter()
        .fold(q.seed.wrapping_add(q.op as u64), |s, &b| {
            s.wrapping_add(b as u64)
        });
    Rsp {
        id: q.id,
        sum,
        status: (q.id % 5) as i32 - 2,
        op: q.op,
        echo: std::array::from_fn(|i| q.data[i % 16] ^ i as u8),
    }
}

pub const STALL: Duration = Duration::from_secs(10);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub pushes: u64,
    pub notifies: u64,
    pub received: u64,
}

/// Sleeps until the peer notifies (a short spin on the peer's index first).
fn wait_peer(
    region: &Region,
    prod_field: usize,
    seen: u32,
    evt: &Event,
    st: &mut Stats,
) -> Result<(), String> {
    for _ in 0..200 {
        if region.load_u32(prod_field, Ordering::Relaxed).unwrap() != seen {
            return Ok(());
        }
        std::hint::spin_loop();
    }
    match evt.wait(STALL).map_err(|e| e.to_string())? {
        Some(n) => {
            st.received += n;
            Ok(())
        }
        None => Err("stalled 10 s waiting for the C peer (lost wakeup?)".into()),
    }
}

pub fn rust_front(
    region: Region,
    start: u32,
    count: u64,
    evt_in: &Event,
    evt_out: &Event,
) -> Result<Stats, String> {
    let mut front =
        compat::Front::<Req, Rsp>::attach_at(region, start).map_err(|e| e.to_string())?;
    let mut st = Stats::default();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < count {
        let mut progress = false;
        while sent < count && !front.is_full() {
            front.produce_request(&make_req(sent)).unwrap();
            sent += 1;
            progress = true;
        }
        if progress {
            st.pushes += 1;
            if front.push_requests().map_err(|e| e.to_string())? {
                st.notifies += 1;
                evt_out.notify().unwrap();
            }
        }
        loop {
            for rsp in front.responses().map_err(|e| e.to_string())? {
                if rsp != make_rsp(&make_req(got)) {
                    return Err(format!("bad response {got}: {rsp:?}"));
                }
                got += 1;
                progress = true;
            }
            if !front
                .final_check_for_responses()
                .map_err(|e| e.to_string())?
            {
                break;
            }
        }
        if !progress && got < count {
            wait_peer(&region, 8, front.rsp_cons(), evt_in, &mut st)?;
        }
    }
    Ok(st)
}

pub fn rust_back(
    region: Region,
    start: u32,
    count: u64,
    evt_in: &Event,
    evt_out: &Event,
) -> Result<Stats, String> {
    let mut back = compat::Back::<Req, Rsp>::attach_at(region, start).map_err(|e| e.to_string())?;
    let mut st = Stats::default();
    let mut done = 0u64;
    while done < count {
        let mut progress = false;
        // Copy each request out once, check the copy, answer it.
        while let Some(req) = back.consume_request().map_err(|e| e.to_string())? {
            if req != make_req(done) {
                return Err(format!("bad request {done}: {req:?}"));
            }
            back.produce_response(&make_rsp(&req)).unwrap();
            done += 1;
            progress = true;
        }
        if progress {
            st.pushes += 1;
            if back.push_responses().map_err(|e| e.to_string())? {
                st.notifies += 1;
                evt_out.notify().unwrap();
            }
        }
        if !back.final_check_for_requests().map_err(|e| e.to_string())? && done < count {
            wait_peer(&region, 0, back.req_cons(), evt_in, &mut st)?;
        }
    }
    Ok(st)
}

/// Kills the child if the test fails before reaping it.
pub struct Reaper(pub Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn parse_stats(line: &str) -> Stats {
    let mut st = Stats::default();
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=').expect("key=value");
        let v: u64 = v.parse().expect("number");
        match k {
            "pushes" => st.pushes = v,
            "notifies" => st.notifies = v,
            "received" => st.received = v,
            _ => panic!("unknown stat {k}"),
        }
    }
    st
}
