//! `xmblk`: a block device. The backend serves a file; data moves through
//! 64 pages the frontend grants once per connection (persistent grants),
//! one 4 KiB segment per request, many requests in flight.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use xenmq::driver::{self, Client, SLOT_SIZE};
use xenmq::evtchn::Channel;
use xenmq::prelude::*;

/// Bytes in a sector.
pub const SECTOR: u64 = 512;
/// Sectors in one request (one buffer slot).
pub const SEGMENT: u32 = (SLOT_SIZE as u64 / SECTOR) as u32;

/// Read sectors into the slot.
pub const READ: u32 = 0;
/// Write sectors from the slot.
pub const WRITE: u32 = 1;
/// Make written data durable.
pub const FLUSH: u32 = 2;

/// A request: `count` sectors from `sector`, through buffer `slot`.
#[xenmq::message]
pub struct BlkReq {
    pub id: u64,
    pub sector: u64,
    pub op: u32,
    pub slot: u32,
    pub count: u32,
    pub _pad: u32,
}

/// A response: 0, or a negative errno.
#[xenmq::message]
pub struct BlkRsp {
    pub id: u64,
    pub status: i32,
    pub _pad: u32,
}

/// The disk, as the backend publishes it.
#[derive(XenstoreConfig, Debug, Default, Clone, Copy)]
pub struct Disk {
    /// Size in sectors.
    pub sectors: u64,
    /// Whether FLUSH is honoured.
    pub feature_flush: bool,
}

/// The protocol: a two-page ring (up to eight), 64 buffer pages.
#[xenmq::protocol(name = "xmblk", request = BlkReq, response = BlkRsp, ring_pages = 2, max_ring_pages = 8, pool_pages = 64, backend_config = Disk)]
pub struct Blk;

/// The backend: a file, and one segment's buffer.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    sectors: u64,
    buf: Box<[u8; SLOT_SIZE]>,
}

impl FileDisk {
    /// Serves `file`, whose length is a whole number of sectors.
    pub fn new(file: File) -> std::io::Result<FileDisk> {
        let sectors = file.metadata()?.len() / SECTOR;
        Ok(FileDisk { file, sectors, buf: Box::new([0; SLOT_SIZE]) })
    }

    fn io(&mut self, req: &BlkReq, io: &mut Io<'_, Blk>) -> Result<(), i32> {
        let (end, n) = (req.sector.checked_add(req.count.into()), req.count as usize);
        if req.count > SEGMENT || end.is_none_or(|e| e > self.sectors) {
            return Err(-22);
        }
        let (at, buf) = (req.sector * SECTOR, &mut self.buf[..n * SECTOR as usize]);
        match req.op {
            READ => self.file.read_exact_at(buf, at).map_err(|_| -5)?,
            WRITE => {
                io.read(req.slot, 0, buf).map_err(|_| -22)?;
                return self.file.write_all_at(buf, at).map_err(|_| -5);
            }
            FLUSH => return self.file.sync_data().map_err(|_| -5),
            _ => return Err(-95),
        }
        io.write(req.slot, 0, buf).map_err(|_| -22)
    }
}

impl Backend for FileDisk {
    type Protocol = Blk;

    fn handle(&mut self, req: BlkReq, io: &mut Io<'_, Blk>) -> Reply<BlkRsp> {
        let status = self.io(&req, io).err().unwrap_or(0);
        Reply::Now(BlkRsp { id: 0, status, _pad: 0 })
    }

    fn config(&self) -> Disk {
        Disk { sectors: self.sectors, feature_flush: true }
    }
}

/// The frontend: remembers the disk's size.
#[derive(Debug, Default)]
pub struct BlkFront {
    /// The disk.
    pub disk: Disk,
}

impl Frontend for BlkFront {
    type Protocol = Blk;

    fn connect(&mut self, disk: &Disk) -> Result<(), driver::Refused> {
        self.disk = *disk;
        Ok(())
    }
}

/// Writes `data` (whole segments) from `sector` on, `depth` requests in
/// flight, then reads it back into `out`.
pub fn write_read<C: Channel>(
    c: &mut Client<Blk, C>,
    sector: u64,
    data: &[u8],
    out: &mut [u8],
    depth: usize,
) -> Result<(), driver::Error> {
    let segs = data.len().min(out.len()) / SLOT_SIZE;
    let mut segment_of = HashMap::with_capacity(depth);
    for op in [WRITE, READ] {
        let (mut next, mut done) = (0, 0);
        while done < segs {
            while next < segs && c.in_flight() < depth {
                let lease = c.lease()?;
                let seg = next * SLOT_SIZE..(next + 1) * SLOT_SIZE;
                if op == WRITE {
                    c.write(&lease, 0, &data[seg])?;
                }
                let s = sector + (next as u64) * u64::from(SEGMENT);
                let req =
                    BlkReq { id: 0, sector: s, op, slot: lease.slot(), count: SEGMENT, _pad: 0 };
                segment_of.insert(c.queue(req, Some(lease))?, next);
                next += 1;
            }
            c.flush()?;
            let comp = c.wait(Some(Duration::from_secs(5)))?;
            let lease = comp.lease.ok_or(driver::Error::BadAnswer("no buffer back"))?;
            let i = segment_of.remove(&comp.tag).unwrap_or(0);
            let read = match comp.result.map(|r| r.status) {
                Ok(0) if op == READ => {
                    c.read(&lease, 0, &mut out[i * SLOT_SIZE..(i + 1) * SLOT_SIZE])
                }
                Ok(0) => Ok(()),
                Ok(_) => Err(driver::Error::BadAnswer("the disk failed a request")),
                Err(e) => Err(e),
            };
            c.release(lease);
            read?;
            done += 1;
        }
    }
    Ok(())
}

/// Asks the disk to make what was written durable.
pub fn flush<C: Channel>(c: &mut Client<Blk, C>) -> Result<(), driver::Error> {
    let req = BlkReq { id: 0, sector: 0, op: FLUSH, slot: 0, count: 0, _pad: 0 };
    match c.call(req, Some(Duration::from_secs(5)))?.status {
        0 => Ok(()),
        _ => Err(driver::Error::BadAnswer("flush failed")),
    }
}
