//! What every target shares: a reader of the fuzzer's bytes and memory
//! that stands in for pages shared with a peer.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use xenmq::shm::Region;

/// The fuzzer's input, read front to back; every read is `None` once the
/// bytes run out, which ends the execution.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    /// A little-endian `u32`.
    pub fn word(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }

    /// Up to `max` bytes, the count read first.
    pub fn bytes(&mut self, max: usize) -> Option<&'a [u8]> {
        let n = (usize::from(self.u16()?) % max.saturating_add(1)).min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(s)
    }

    /// A short string (up to 23 bytes, lossily UTF-8).
    pub fn string(&mut self) -> Option<String> {
        let n = usize::from(self.byte()? % 24).min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(String::from_utf8_lossy(s).into_owned())
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = usize::from(self.byte()?) % items.len();
        items.get(i).copied()
    }
}

/// Page-aligned zeroed memory owned by the target, standing in for pages
/// granted by or to a peer.
pub struct Pages {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Pages {
    /// `pages` zeroed pages.
    pub fn new(pages: usize) -> Pages {
        let layout = Layout::from_size_align(pages * 4096, 4096).expect("a page layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        Pages { ptr, layout }
    }

    /// A region over the pages; valid while `self` lives.
    pub fn region(&self) -> Region {
        // SAFETY: the allocation is valid for reads and writes of its size,
        // page-aligned, lives until `self` drops (callers drop it after the
        // last use of the region), and no reference into it is ever formed.
        unsafe { Region::new(self.ptr, self.layout.size()) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
