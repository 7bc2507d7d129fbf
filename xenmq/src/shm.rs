//! Access to memory shared with a peer domain.
//!
//! This is the only module of the core that may use `unsafe`. Everything
//! else reaches shared pages through [`Region`], whose accessors never form a
//! Rust reference into memory the peer can write: the peer may change any
//! byte at any time, so reads are volatile copies or atomic loads.
#![allow(unsafe_code)]

use core::ptr::NonNull;

/// A window onto memory shared with a peer (granted or mapped pages).
///
/// A `Region` is a raw view: it does not own the mapping. Whoever creates it
/// keeps the mapping alive for as long as the region (and its copies) is used.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Region is a pointer and a length; all accesses through it are
// volatile or atomic and tolerate concurrent modification by another party,
// so moving or sharing it between threads adds no hazard of its own.
unsafe impl Send for Region {}
// SAFETY: as for Send: no access through a Region assumes exclusivity.
unsafe impl Sync for Region {}

impl Region {
    /// Makes a region over `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads and writes of `len` bytes, and stays so for
    ///   as long as this region or any copy of it is used;
    /// - `ptr` is aligned to 64 bytes (a cache line; pages are);
    /// - nobody holds a Rust reference (`&`/`&mut`) into those bytes while
    ///   the region is used: they may be written concurrently by the peer.
    pub unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Region { ptr, len }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start address, for platforms that must hand it to the OS.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}
