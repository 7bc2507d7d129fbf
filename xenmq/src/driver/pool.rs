//! Bulk data: a pool of pages the frontend grants once per connection
//! (persistent grants), one page per slot. A request borrows a slot (a
//! [`Lease`]) and names it in its message; whoever fills the slot writes in
//! place, the other end copies out once.
//!
//! The frontend publishes the pool's grant references in its directory
//! under [`POOL_KEY`], read by the backend as part of the frontend's keys.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Error;
use crate::grant::{GrantRef, PAGE_SIZE};
use crate::shm::Region;
use crate::xenbus::config::{self, Config};

/// Bytes in one buffer slot: one page.
pub const SLOT_SIZE: usize = PAGE_SIZE;

/// The key holding the pool's grant references, space-separated.
pub const POOL_KEY: &str = crate::xenbus::key::XENMQ_POOL_REFS;

/// The most pages a pool may have (what a backend accepts).
pub const MAX_POOL_PAGES: usize = 256;

/// A window onto the pool's pages. Like a [`Region`] it does not own them:
/// the runtime keeps the granted or mapped pages alive while the pool is
/// in use.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    region: Region,
    slots: u32,
}

impl Pool {
    /// A pool over `region`, one slot per page.
    pub fn new(region: Region) -> Self {
        let slots = u32::try_from(region.len() / SLOT_SIZE).unwrap_or(u32::MAX);
        Pool { region, slots }
    }

    /// The number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    fn at(&self, slot: u32, offset: usize, len: usize) -> Result<usize, Error> {
        if slot >= self.slots {
            return Err(Error::BadSlot {
                slot,
                slots: self.slots,
            });
        }
        match offset.checked_add(len) {
            Some(end) if end <= SLOT_SIZE => {}
            _ => {
                return Err(Error::BufferBounds {
                    offset,
                    len,
                    size: SLOT_SIZE,
                })
            }
        }
        // slot < slots = len / SLOT_SIZE and offset < SLOT_SIZE: in bounds.
        Ok((slot as usize)
            .saturating_mul(SLOT_SIZE)
            .saturating_add(offset))
    }

    /// Copies `out.len()` bytes at `offset` of `slot` out of the page, once.
    pub fn read(&self, slot: u32, offset: usize, out: &mut [u8]) -> Result<(), Error> {
        let at = self.at(slot, offset, out.len())?;
        self.region.read_bytes(at, out).map_err(|_| Error::BadSlot {
            slot,
            slots: self.slots,
        })
    }

    /// Writes `data` at `offset` of `slot`, in place.
    pub fn write(&self, slot: u32, offset: usize, data: &[u8]) -> Result<(), Error> {
        let at = self.at(slot, offset, data.len())?;
        self.region
            .write_bytes(at, data)
            .map_err(|_| Error::BadSlot {
                slot,
                slots: self.slots,
            })
    }
}

/// A borrowed buffer slot of the frontend's pool. It travels with the
/// request it is submitted with and comes back with the completion;
/// dropping it returns nothing (give it back with
/// [`Client::release`](super::Client::release)).
#[derive(Debug, PartialEq, Eq)]
pub struct Lease {
    pub(crate) slot: u32,
}

impl Lease {
    /// The slot number, to put in the request.
    pub fn slot(&self) -> u32 {
        self.slot
    }
}

/// The pool's grant references, as the frontend publishes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolKeys {
    /// One reference per page, in slot order.
    pub refs: Vec<GrantRef>,
}

impl Config for PoolKeys {
    fn keys(out: &mut Vec<String>) {
        out.push(POOL_KEY.to_string());
    }

    fn read(dir: &str, get: &mut dyn FnMut(&str) -> Option<String>) -> Result<Self, config::Error> {
        let Some(value) = config::get_bounded(dir, POOL_KEY, get)? else {
            return Ok(PoolKeys::default());
        };
        let mut refs = Vec::new();
        for word in value.split(' ').filter(|w| !w.is_empty()) {
            let bad = || config::Error::invalid(dir, POOL_KEY, &value, "grant references");
            if refs.len() >= MAX_POOL_PAGES || word.len() > 10 || word.starts_with('+') {
                return Err(bad());
            }
            refs.push(word.parse::<GrantRef>().map_err(|_| bad())?);
        }
        Ok(PoolKeys { refs })
    }

    fn write(&self, put: &mut dyn FnMut(&str, String)) {
        if self.refs.is_empty() {
            return;
        }
        let mut s = String::new();
        for (i, r) in self.refs.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&r.to_string());
        }
        put(POOL_KEY, s);
    }
}
