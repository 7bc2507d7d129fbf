//! The two reference points: `memcpy` bandwidth (the ceiling for bulk
//! transfer) and a bare cache-line round trip between the two CPUs (the
//! floor for round-trip latency).

use std::hint::spin_loop;
use std::time::{Duration, Instant};

use xenmq::shm::Region;
use xenmq::sync::Ordering;

use crate::proto::{BUF, MAX_SLOTS};
use crate::{report, Error, Options};

/// GB/s of copying 4 KiB buffers out of a pool as large as the 4-page
/// ring's bulk pool into one private buffer — what a backend's copy-once
/// of a bulk buffer costs when the data is already in this CPU's cache
/// hierarchy.
pub fn memcpy_bw(budget: Duration) -> Result<f64, Error> {
    let pool = vec![0x5au8; MAX_SLOTS * BUF];
    let mut dst = vec![0u8; BUF];
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut i = 0;
    // At least one round, however late it starts.
    while bytes == 0 || start.elapsed() < budget {
        for _ in 0..64 {
            let off = (i % MAX_SLOTS) * BUF;
            dst.copy_from_slice(&pool[off..off + BUF]);
            std::hint::black_box(&mut dst);
            i += 1;
            bytes += BUF as u64;
        }
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e9)
}

/// The median round trip, in ns, of one atomic word bounced between this
/// process and a peer pinned to the other CPU: the frontend writes an odd
/// value, the peer answers with the next even one. Timed per round trip,
/// like the latency figures, so the clock's cost is in both.
pub fn cacheline(
    opts: &Options,
    peer_cpu: Option<usize>,
    lat: &mut Vec<u64>,
) -> Result<f64, Error> {
    let limit = opts.budget * 20 + Duration::from_secs(30);
    let (peer, map) = crate::spawn_cacheline_peer(peer_cpu, limit)?;
    let ctl = map.region().subregion(0, 4096)?;
    let word = crate::CTL_PING;
    let mut v = 0u64;
    let mut run = |budget: Duration, lat: &mut Vec<u64>| -> Result<(), Error> {
        lat.clear();
        let start = Instant::now();
        // At least one sample, however late it starts.
        while lat.is_empty() || (start.elapsed() < budget && lat.len() < lat.capacity()) {
            let t0 = Instant::now();
            // Release/Acquire: the word is the whole message; these pair
            // with the peer's Acquire load and Release store.
            ctl.store_u64(word, v + 1, Ordering::Release)?;
            while ctl.load_u64(word, Ordering::Acquire)? != v + 2 {
                spin_loop();
            }
            lat.push(t0.elapsed().as_nanos() as u64);
            v += 2;
        }
        Ok(())
    };
    run(opts.warmup, lat)?;
    run(opts.budget, lat)?;
    ctl.store_u64(word, u64::MAX, Ordering::Release)?;
    peer.finish()?;
    lat.sort_unstable();
    Ok(report::percentile(lat, 50.0))
}

/// The peer side of [`cacheline`]: answers odd values until `u64::MAX`.
pub fn cacheline_peer(ctl: Region, word: usize) -> Result<(), Error> {
    loop {
        // Acquire/Release: pair with the frontend's Release store and
        // Acquire load in `cacheline`.
        let v = ctl.load_u64(word, Ordering::Acquire)?;
        if v == u64::MAX {
            return Ok(());
        }
        if v % 2 == 1 {
            ctl.store_u64(word, v + 1, Ordering::Release)?;
        } else {
            spin_loop();
        }
    }
}
