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

// ---------------------------------------------------------------------------
// Typed accessors (added for the native ring and the benchmark).
//
// Every accessor checks its offset against the region's length and the
// access's natural alignment, so a wrong offset is an `Err`, never undefined
// behaviour. None of them forms a Rust reference into the region: words go
// through atomic operations on a raw pointer, byte runs through volatile
// copies, so the peer writing the same bytes concurrently is tolerated.
// ---------------------------------------------------------------------------

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// An access outside a [`Region`] or at a misaligned offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shared-memory access of {len} bytes at offset {offset} is outside the {region} byte region or misaligned")]
pub struct OutOfBounds {
    /// The offset asked for.
    pub offset: usize,
    /// The length asked for.
    pub len: usize,
    /// The region's length.
    pub region: usize,
}

impl Region {
    /// Returns the address of `len` bytes at `offset`, aligned to `align`
    /// (a power of two), after checking both.
    #[inline(always)]
    fn at(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8, OutOfBounds> {
        let fits = offset.checked_add(len).is_some_and(|end| end <= self.len);
        // `ptr` is 64-byte aligned (a precondition of `new`), so the offset's
        // alignment is the address's alignment for any `align` <= 64.
        if !fits || offset & (align - 1) != 0 || align > 64 {
            return Err(OutOfBounds {
                offset,
                len,
                region: self.len,
            });
        }
        // `wrapping_add` is plain address arithmetic; the check above keeps
        // the result inside the region.
        Ok(self.ptr.as_ptr().wrapping_add(offset))
    }

    /// Atomically loads the `u32` at `offset` (4-byte aligned).
    #[inline(always)]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        let p = self.at(offset, 4, 4)?;
        // SAFETY: `at` checked that the 4 bytes lie inside the region and are
        // 4-byte aligned; `new`'s contract makes them valid for reads and
        // writes for the region's lifetime and forbids non-atomic Rust
        // references to them, so an atomic view of them races with nothing
        // but other atomic (or foreign) accesses. The `&AtomicU32` lives only
        // for this expression.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }.load(order))
    }

    /// Atomically stores `value` at `offset` (4-byte aligned).
    #[inline(always)]
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        let p = self.at(offset, 4, 4)?;
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }.store(value, order);
        Ok(())
    }

    /// Atomically swaps `value` into `offset` (4-byte aligned) and returns
    /// the old value. With `SeqCst` this is a locked instruction on x86: a
    /// store and a full barrier in one.
    #[inline(always)]
    pub fn swap_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<u32, OutOfBounds> {
        let p = self.at(offset, 4, 4)?;
        // SAFETY: as in `load_u32`.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }.swap(value, order))
    }

    /// Atomically loads the `u64` at `offset` (8-byte aligned).
    #[inline(always)]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64, OutOfBounds> {
        let p = self.at(offset, 8, 8)?;
        // SAFETY: as in `load_u32`, for 8 bytes aligned to 8.
        Ok(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }.load(order))
    }

    /// Atomically stores `value` at `offset` (8-byte aligned).
    #[inline(always)]
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<(), OutOfBounds> {
        let p = self.at(offset, 8, 8)?;
        // SAFETY: as in `load_u32`, for 8 bytes aligned to 8.
        unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }.store(value, order);
        Ok(())
    }

    /// Copies `dst.len()` bytes from `offset` into private memory, once, with
    /// volatile loads (8 bytes at a time where `offset` is 8-byte aligned).
    /// The copy is a snapshot: parse and validate `dst`, never the region.
    #[inline(always)]
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        let src = self.at(offset, dst.len(), 1)?;
        let words = if offset.is_multiple_of(8) {
            dst.len() / 8
        } else {
            0
        };
        for (i, chunk) in dst.chunks_exact_mut(8).take(words).enumerate() {
            // SAFETY: `at` checked that `dst.len()` bytes from `src` lie inside
            // the region; word `i` covers bytes 8i..8i+8 < dst.len(), and
            // `src` is 8-byte aligned (offset.is_multiple_of(8), base 64-aligned). The
            // load is volatile and forms no reference.
            let w = unsafe { src.add(i * 8).cast::<u64>().read_volatile() };
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        for (i, b) in dst.iter_mut().enumerate().skip(words * 8) {
            // SAFETY: byte `i` < dst.len() lies inside the checked range.
            *b = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` into the region at `offset` with volatile stores (8 bytes
    /// at a time where `offset` is 8-byte aligned).
    #[inline(always)]
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        let dst = self.at(offset, src.len(), 1)?;
        let words = if offset.is_multiple_of(8) {
            src.len() / 8
        } else {
            0
        };
        for (i, chunk) in src.chunks_exact(8).take(words).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            // SAFETY: as in `read_bytes`: word `i` lies inside the checked
            // range and is 8-byte aligned; the store is volatile.
            unsafe {
                dst.add(i * 8)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(w))
            };
        }
        for (i, b) in src.iter().enumerate().skip(words * 8) {
            // SAFETY: byte `i` < src.len() lies inside the checked range.
            unsafe { dst.add(i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Copies a `T` out of the region at `offset`, once, with volatile loads
    /// of 8 bytes at a time (what `RING_COPY_REQUEST` does in C). `offset`
    /// must be aligned to 8 or to `T`'s alignment, whichever is smaller. Any
    /// bytes are a valid `T` (`FromBytes`), so a peer writing concurrently can
    /// make the copy garbage, never undefined.
    #[inline(always)]
    pub fn read_obj<T: zerocopy::FromBytes>(&self, offset: usize) -> Result<T, OutOfBounds> {
        let size = core::mem::size_of::<T>();
        let src = self.at(offset, size, core::mem::align_of::<T>().min(8))?;
        let mut value = T::new_zeroed();
        let dst = (&raw mut value).cast::<u8>();
        let words = if offset.is_multiple_of(8) {
            size / 8
        } else {
            0
        };
        for i in 0..words {
            // SAFETY: bytes 8i..8i+8 < size lie inside the range `at` checked
            // and are 8-aligned (offset.is_multiple_of(8), base 64-aligned): the load
            // is a volatile read of region memory, forming no reference. The
            // store goes to bytes 8i..8i+8 of the private `value` (unaligned
            // write, any bytes valid for a FromBytes type).
            unsafe {
                let w = src.add(i * 8).cast::<u64>().read_volatile();
                dst.add(i * 8).cast::<u64>().write_unaligned(w);
            }
        }
        for i in words * 8..size {
            // SAFETY: byte i < size, inside the checked range and `value`.
            unsafe { dst.add(i).write(src.add(i).read_volatile()) };
        }
        Ok(value)
    }

    /// Writes `value` into the region at `offset` with volatile stores of 8
    /// bytes at a time (same alignment rule as [`read_obj`](Self::read_obj)).
    #[inline(always)]
    pub fn write_obj<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &self,
        offset: usize,
        value: &T,
    ) -> Result<(), OutOfBounds> {
        let bytes = value.as_bytes();
        let dst = self.at(offset, bytes.len(), core::mem::align_of::<T>().min(8))?;
        let src = bytes.as_ptr();
        let words = if offset.is_multiple_of(8) {
            bytes.len() / 8
        } else {
            0
        };
        for i in 0..words {
            // SAFETY: bytes 8i..8i+8 lie inside `bytes` (a live, initialised
            // private slice: IntoBytes has no padding) and inside the checked,
            // 8-aligned region range; the region store is volatile.
            unsafe {
                let w = src.add(i * 8).cast::<u64>().read_unaligned();
                dst.add(i * 8).cast::<u64>().write_volatile(w);
            }
        }
        for (i, b) in bytes.iter().enumerate().skip(words * 8) {
            // SAFETY: byte i < len lies inside the checked range.
            unsafe { dst.add(i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Copies `dst.len()` words from `offset` (8-byte aligned) into private
    /// memory, once, one volatile load per word.
    #[inline(always)]
    pub fn read_words(&self, offset: usize, dst: &mut [u64]) -> Result<(), OutOfBounds> {
        let len = dst.len().checked_mul(8).ok_or(OutOfBounds {
            offset,
            len: usize::MAX,
            region: self.len,
        })?;
        let src = self.at(offset, len, 8)?.cast::<u64>();
        for (i, w) in dst.iter_mut().enumerate() {
            // SAFETY: word `i` < dst.len() lies inside the checked, 8-aligned
            // range; the load is volatile and forms no reference.
            *w = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` into the region at `offset` (8-byte aligned), one volatile
    /// store per word.
    #[inline(always)]
    pub fn write_words(&self, offset: usize, src: &[u64]) -> Result<(), OutOfBounds> {
        let len = src.len().checked_mul(8).ok_or(OutOfBounds {
            offset,
            len: usize::MAX,
            region: self.len,
        })?;
        let dst = self.at(offset, len, 8)?.cast::<u64>();
        for (i, w) in src.iter().enumerate() {
            // SAFETY: as in `read_words`, for stores.
            unsafe { dst.add(i).write_volatile(*w) };
        }
        Ok(())
    }

    /// Hints that the cache line at `offset` will be read soon.
    #[inline(always)]
    pub fn prefetch_read(&self, offset: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Ok(p) = self.at(offset, 1, 1) {
            // SAFETY: PREFETCHT0 is a hint: it never faults and has no
            // architectural effect.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = offset;
    }

    /// A sub-region of `len` bytes at `offset` (64-byte aligned).
    pub fn sub(&self, offset: usize, len: usize) -> Result<Region, OutOfBounds> {
        let p = self.at(offset, len, 64)?;
        // `p` is non-null: it is inside a region whose base is non-null and
        // the offset did not wrap (checked by `at`).
        let ptr = NonNull::new(p).ok_or(OutOfBounds {
            offset,
            len,
            region: self.len,
        })?;
        Ok(Region { ptr, len })
    }
}

#[cfg(test)]
impl Region {
    /// A zeroed, 64-byte aligned region of `len` bytes that is never freed:
    /// lets the core's unit tests build rings without `unsafe` of their own.
    pub(crate) fn leaked_for_test(len: usize) -> Region {
        let layout = core::alloc::Layout::from_size_align(len.max(1), 64).expect("test layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).expect("test allocation");
        // SAFETY: the allocation is `len` bytes, 64-aligned, never freed, and
        // only ever reached through this region and its copies.
        unsafe { Region::new(ptr, len) }
    }
}
