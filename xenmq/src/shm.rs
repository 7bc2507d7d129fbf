//! Access to memory shared with a peer domain.
//!
//! This is the only module of the core that may use `unsafe`. Everything
//! else reaches shared pages through [`Region`], whose accessors never form a
//! Rust reference into memory the peer can write: the peer may change any
//! byte at any time, so reads are volatile copies or atomic loads.
#![allow(unsafe_code)]

use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::{self, NonNull};

use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
use crate::sync::raw::fence;
use crate::sync::raw::{AtomicU32, AtomicU64};
use crate::sync::{compiler_fence, Ordering};

/// A window onto memory shared with a peer (granted or mapped pages).
///
/// A `Region` is a raw view: it does not own the mapping. Whoever creates it
/// keeps the mapping alive for as long as the region (and its copies) is used.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    /// A model checker's memory instead of `ptr` (see [`Region::model`]).
    #[cfg(loom)]
    model: Option<model::Words>,
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
        Region {
            ptr,
            len,
            #[cfg(loom)]
            model: None,
        }
    }

    /// A region of `len` bytes (a multiple of 4) in loom's model memory:
    /// every access is a loom atomic access of the 4-byte words it
    /// touches, so loom explores what each read may see. Only in loom
    /// tests (`--cfg loom`), inside `loom::model`; the memory is leaked.
    #[cfg(loom)]
    pub fn model(len: usize) -> Self {
        let words: alloc::vec::Vec<crate::sync::AtomicU32> = (0..len.div_ceil(4))
            .map(|_| crate::sync::AtomicU32::new(0))
            .collect();
        #[repr(align(64))]
        struct Line;
        Region {
            ptr: NonNull::<Line>::dangling().cast(),
            len,
            model: Some(words.leak()),
        }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A region of no bytes, for owners whose pages are already gone:
    /// nothing can be accessed through it.
    pub fn empty() -> Self {
        #[repr(align(64))]
        struct Line;
        // No `unsafe` needed: `Region::new`'s conditions hold trivially over
        // zero bytes, and a dangling `Line` pointer is non-null and 64-byte
        // aligned.
        Region {
            ptr: NonNull::<Line>::dangling().cast(),
            len: 0,
            #[cfg(loom)]
            model: None,
        }
    }

    /// The start address, for platforms that must hand it to the OS.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

/// An access through a [`Region`] that does not fit it.
///
/// These are local bugs (an offset computed wrongly), never something the
/// peer can cause: callers derive offsets from their own validated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The access reaches past the end of the region.
    #[error("access of {size} bytes at offset {offset} is outside a region of {len} bytes")]
    OutOfBounds {
        /// Offset of the access.
        offset: usize,
        /// Size of the access.
        size: usize,
        /// Length of the region.
        len: usize,
    },
    /// The access is not aligned for its type.
    #[error("access at offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// Offset of the access.
        offset: usize,
        /// Required alignment.
        align: usize,
    },
}

impl Region {
    /// Checks that `size` bytes at `offset` lie inside the region and that
    /// their address is aligned to `align`, and returns that address.
    #[inline]
    fn span(&self, offset: usize, size: usize, align: usize) -> Result<*mut u8, Error> {
        let oob = Error::OutOfBounds {
            offset,
            size,
            len: self.len,
        };
        let end = offset.checked_add(size).ok_or(oob)?;
        if end > self.len {
            return Err(oob);
        }
        // `wrapping_add` cannot wrap here: offset < len (or size == 0 and
        // offset <= len), and the allocation is at most isize::MAX bytes.
        let ptr = self.ptr.as_ptr().wrapping_add(offset);
        // The base is 64-aligned (`Region::new`'s contract, kept by
        // `subregion`), so up to 64 the offset tells; the compiler can often
        // prove it aligned and drop the test.
        let aligned = if align <= 64 {
            offset.is_multiple_of(align)
        } else {
            (ptr as usize).is_multiple_of(align)
        };
        if !aligned {
            return Err(Error::Misaligned { offset, align });
        }
        Ok(ptr)
    }

    /// Atomically loads the `u32` at `offset` (4-byte aligned).
    #[inline]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, Error> {
        let ptr = self.span(offset, 4, 4)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            return Ok(model::load(m, offset, order));
        }
        // SAFETY: `span` checked that the 4 bytes at `ptr` are inside the
        // region and 4-byte aligned; `Region::new`'s contract makes them valid
        // for reads and writes while the region is used. All accesses to this
        // word, ours and (by the ring protocol) the peer's, are atomic or
        // naturally aligned machine-word accesses, which is what
        // `AtomicU32::from_ptr` asks. The `&AtomicU32` lives only for this
        // statement and permits concurrent modification.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) }.load(order))
    }

    /// Atomically stores `value` into the `u32` at `offset` (4-byte aligned).
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), Error> {
        let ptr = self.span(offset, 4, 4)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            model::store(m, offset, value, order);
            return Ok(());
        }
        // SAFETY: as in `load_u32`: in bounds and aligned (checked by
        // `span`), valid by `Region::new`'s contract, atomic access only.
        unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) }.store(value, order);
        Ok(())
    }

    /// Copies a `T` out of the region at `offset`, each byte read once with
    /// volatile loads (8 bytes at a time where aligned).
    ///
    /// The peer may change the bytes concurrently, which can tear the value
    /// but never make it invalid, since any bytes are a valid `T`
    /// (`FromBytes`). Parse the returned copy, never the shared bytes again.
    #[inline(always)]
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T, Error> {
        let src = self.span(offset, size_of::<T>(), align_of::<T>())?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            let mut buf = alloc::vec![0u8; size_of::<T>()];
            model::read_bytes(m, offset, &mut buf);
            return T::read_from_bytes(&buf).map_err(|_| Error::OutOfBounds {
                offset,
                size: size_of::<T>(),
                len: self.len,
            });
        }
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `span` checked that `size_of::<T>()` bytes at `src` are in
        // the region and aligned to `align_of::<T>()`; `Region::new`'s
        // contract makes them valid for reads. `out` is a local, valid for
        // writes of `size_of::<T>()` bytes and disjoint from the region.
        unsafe {
            copy_in(
                src,
                out.as_mut_ptr().cast::<u8>(),
                size_of::<T>(),
                align_of::<T>(),
            )
        };
        // SAFETY: `copy_in` initialised every byte of `out`, and every bit
        // pattern is a valid `T` (`T: FromBytes`), whatever the peer wrote.
        Ok(unsafe { out.assume_init() })
    }

    /// Copies `value` into the region at `offset`, each byte written once
    /// with volatile stores (8 bytes at a time where aligned).
    ///
    /// `T: IntoBytes` has no padding, so no uninitialised byte reaches the
    /// peer.
    #[inline(always)]
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<(), Error> {
        let dst = self.span(offset, size_of::<T>(), align_of::<T>())?;
        let src = value.as_bytes();
        #[cfg(loom)]
        if let Some(m) = self.model {
            model::write_bytes(m, offset, src);
            return Ok(());
        }
        // SAFETY: `span` checked that `size_of::<T>()` bytes at `dst` are in
        // the region and aligned to `align_of::<T>()`; `Region::new`'s
        // contract makes them valid for writes. `src` is a private slice of
        // exactly `size_of::<T>()` initialised bytes (`IntoBytes`), disjoint
        // from the region (no reference into the region exists).
        unsafe { copy_out(src.as_ptr(), dst, src.len(), align_of::<T>()) };
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`, each byte read once
    /// with volatile loads (one `rep movsb` on x86-64 from 512 bytes, as
    /// [`read_words`](Self::read_words) does: bulk buffers).
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let src = self.span(offset, buf.len(), 1)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            model::read_bytes(m, offset, buf);
            return Ok(());
        }
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if buf.len() >= REP_MOVS_MIN {
            // SAFETY: `span` checked that `buf.len()` bytes at `src` are in
            // the region (valid for reads by `Region::new`'s contract); `buf`
            // is a private slice of that length, disjoint from the region.
            unsafe { rep_movsb(src, buf.as_mut_ptr(), buf.len()) };
            return Ok(());
        }
        // SAFETY: `span` checked that `buf.len()` bytes at `src` are in the
        // region (valid for reads by `Region::new`'s contract); `buf` is a
        // private slice of that length, disjoint from the region.
        unsafe { copy_in(src, buf.as_mut_ptr(), buf.len(), 1) };
        Ok(())
    }

    /// Copies `buf` into the region at `offset`, each byte written once with
    /// volatile stores (one `rep movsb` on x86-64 from 512 bytes, as
    /// [`write_words`](Self::write_words) does).
    pub fn write_bytes(&self, offset: usize, buf: &[u8]) -> Result<(), Error> {
        let dst = self.span(offset, buf.len(), 1)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            model::write_bytes(m, offset, buf);
            return Ok(());
        }
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if buf.len() >= REP_MOVS_MIN {
            // SAFETY: `span` checked that `buf.len()` bytes at `dst` are in
            // the region (valid for writes by `Region::new`'s contract);
            // `buf` is a private slice of that many initialised bytes,
            // disjoint from the region.
            unsafe { rep_movsb(buf.as_ptr(), dst, buf.len()) };
            return Ok(());
        }
        // SAFETY: `span` checked that `buf.len()` bytes at `dst` are in the
        // region (valid for writes by `Region::new`'s contract); `buf` is a
        // private slice of that length, disjoint from the region.
        unsafe { copy_out(buf.as_ptr(), dst, buf.len(), 1) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte` with volatile writes.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), Error> {
        let ptr = self.span(offset, len, 1)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            model::write_bytes(m, offset, &alloc::vec![byte; len]);
            return Ok(());
        }
        for i in 0..len {
            // SAFETY: `span` checked that `len` bytes at `ptr` are in the
            // region (valid by `Region::new`'s contract) and i < len.
            unsafe { ptr::write_volatile(ptr.add(i), byte) };
        }
        Ok(())
    }

    /// The `len` bytes at `offset`, as a region of their own (for several
    /// rings in one allocation). `offset` must keep the 64-byte alignment.
    pub fn subregion(&self, offset: usize, len: usize) -> Result<Region, Error> {
        let ptr = self.span(offset, len, 64)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            // 64-aligned and in bounds (checked above), so whole words.
            let words = m.get(offset / 4..(offset + len).div_ceil(4)).unwrap_or(&[]);
            return Ok(Region {
                ptr: self.ptr,
                len,
                model: Some(words),
            });
        }
        Ok(Region {
            // `ptr` is inside (or one past) the region, whose pointer is non-null
            // and does not wrap, so it is non-null too.
            ptr: NonNull::new(ptr).ok_or(Error::OutOfBounds {
                offset,
                size: len,
                len: self.len,
            })?,
            len,
            #[cfg(loom)]
            model: None,
        })
    }
}

/// Copies `len` bytes from shared memory at `src` into private memory at
/// `dst`: every source byte is read exactly once, by a volatile load, 8
/// bytes at a time once `src` is 8-aligned.
///
/// # Safety
///
/// `src` is valid for reads of `len` bytes and aligned to `src_align` (a
/// power of two); `dst` is valid for writes of `len` bytes; the two do not
/// overlap; nobody holds a reference to the bytes at `dst`.
#[inline(always)]
unsafe fn copy_in(src: *const u8, dst: *mut u8, len: usize, src_align: usize) {
    let mut i = 0;
    if src_align < 8 {
        // `align_offset` may answer usize::MAX; then every byte goes here.
        let head = src.align_offset(8).min(len);
        while i < head {
            // SAFETY: i < len; both pointers valid for `len` bytes (caller).
            unsafe { dst.add(i).write(src.add(i).read_volatile()) };
            i += 1;
        }
    }
    while len - i >= 8 {
        // SAFETY: i + 8 <= len; `src + i` is 8-aligned (src_align >= 8, or
        // the head loop above stopped there); `dst` takes unaligned writes.
        unsafe {
            let word = src.add(i).cast::<u64>().read_volatile();
            dst.add(i).cast::<u64>().write_unaligned(word);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: i < len; both pointers valid for `len` bytes (caller).
        unsafe { dst.add(i).write(src.add(i).read_volatile()) };
        i += 1;
    }
}

/// Copies `len` bytes from private memory at `src` into shared memory at
/// `dst`: every destination byte is written exactly once, by a volatile
/// store, 8 bytes at a time once `dst` is 8-aligned.
///
/// # Safety
///
/// `src` is valid for reads of `len` initialised bytes; `dst` is valid for
/// writes of `len` bytes and aligned to `dst_align` (a power of two); the
/// two do not overlap.
#[inline(always)]
unsafe fn copy_out(src: *const u8, dst: *mut u8, len: usize, dst_align: usize) {
    let mut i = 0;
    if dst_align < 8 {
        let head = dst.align_offset(8).min(len);
        while i < head {
            // SAFETY: i < len; both pointers valid for `len` bytes (caller).
            unsafe { dst.add(i).write_volatile(src.add(i).read()) };
            i += 1;
        }
    }
    while len - i >= 8 {
        // SAFETY: i + 8 <= len; `dst + i` is 8-aligned (dst_align >= 8, or
        // the head loop above stopped there); `src` takes unaligned reads.
        unsafe {
            let word = src.add(i).cast::<u64>().read_unaligned();
            dst.add(i).cast::<u64>().write_volatile(word);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: i < len; both pointers valid for `len` bytes (caller).
        unsafe { dst.add(i).write_volatile(src.add(i).read()) };
        i += 1;
    }
}

/// A full memory barrier: no load or store after it is performed before a
/// load or store before it (Linux's `mb()`, ring.h's `xen_mb()`).
///
/// It is what a store-then-load handshake across two parties needs (publish
/// an index, then read the peer's event index; each side fences between the
/// two, so at least one of them sees the other's store). On x86-64 it is a
/// locked no-op on the stack, as Linux's `mb()`, which is cheaper than
/// `mfence` and just as strong for ordinary write-back memory.
#[inline]
pub fn full_fence() {
    // Under loom, the model's fence too (a no-op for real memory then, but
    // loom tests use model regions only).
    #[cfg(loom)]
    crate::sync::fence(Ordering::SeqCst);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // The compiler fence stops the compiler from moving memory accesses
        // across this point; the locked instruction does the same for the CPU.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `lock or` of 0 into the 4 bytes at the stack pointer
        // leaves them unchanged: the stack pointer is valid, writable and at
        // least 4-byte aligned, and the bytes at it belong to
        // this thread. The asm changes no register but the flags (so they
        // are not declared preserved), and it is not `nomem`: the compiler
        // also treats it as touching any memory.
        unsafe {
            core::arch::asm!("lock or dword ptr [rsp], 0", options(nostack));
        }
        compiler_fence(Ordering::SeqCst);
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    fence(Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// More accessors, for the native ring (`ring::native`) and the benchmark:
// a locked swap (publish and full barrier in one instruction), 64-bit words,
// word-wise bulk copies and a prefetch hint. Same rules as above: checked by
// `span`, atomic or volatile, no reference into the region.
// ---------------------------------------------------------------------------

/// Word copies of at least this many bytes use `rep movsb`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const REP_MOVS_MIN: usize = 512;

/// Copies `len` bytes from `src` to `dst` with one `rep movsb`: each source
/// byte is read once and each destination byte written once, by the CPU's
/// string-copy microcode (fast on CPUs with ERMS/FSRM), opaque to the
/// compiler like a volatile access, and through raw pointers only.
///
/// # Safety
///
/// `src` is valid for reads and `dst` for writes of `len` bytes; the two do
/// not overlap; nobody holds a reference to the bytes at `dst`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
unsafe fn rep_movsb(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: `rep movsb` with the direction flag clear (the ABI guarantees
    // it is clear at every call boundary and Rust code never sets it) copies
    // `rcx` bytes from `[rsi]` to `[rdi]` upwards: exactly the `len` bytes
    // the caller vouches for. It clobbers rsi, rdi and rcx (declared) and
    // touches no other memory; not `nomem`, so the compiler orders it with
    // the accesses around it.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
}

impl Region {
    /// Atomically swaps `value` into the `u32` at `offset` (4-byte aligned)
    /// and returns the old value. With `SeqCst` this is one locked
    /// instruction on x86-64: a release store and a full barrier together.
    #[inline]
    pub fn swap_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<u32, Error> {
        let ptr = self.span(offset, 4, 4)?;
        #[cfg(loom)]
        if let Some(m) = self.model {
            return Ok(model::swap(m, offset, value, order));
        }
        // SAFETY: as in `load_u32`: in bounds and aligned (checked by
        // `span`), valid by `Region::new`'s contract, atomic access only.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) }.swap(value, order))
    }

    /// Atomically loads the `u64` at `offset` (8-byte aligned).
    #[inline]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64, Error> {
        let ptr = self.span(offset, 8, 8)?;
        // SAFETY: as in `load_u32`, for 8 bytes aligned to 8.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast::<u64>()) }.load(order))
    }

    /// Atomically stores `value` into the `u64` at `offset` (8-byte aligned).
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<(), Error> {
        let ptr = self.span(offset, 8, 8)?;
        // SAFETY: as in `load_u32`, for 8 bytes aligned to 8.
        unsafe { AtomicU64::from_ptr(ptr.cast::<u64>()) }.store(value, order);
        Ok(())
    }

    /// Copies `buf.len()` words at `offset` (8-byte aligned) into `buf`, one
    /// volatile load per word (bulk buffers: no byte shuffling).
    #[inline]
    pub fn read_words(&self, offset: usize, buf: &mut [u64]) -> Result<(), Error> {
        let size = buf.len().checked_mul(8).ok_or(Error::OutOfBounds {
            offset,
            size: usize::MAX,
            len: self.len,
        })?;
        let src = self.span(offset, size, 8)?.cast::<u64>();
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if size >= REP_MOVS_MIN {
            // SAFETY: `span` checked that the `size` bytes at `src` are in
            // the region (valid for reads by `Region::new`'s contract); `buf`
            // is a private slice of `size` bytes, disjoint from the region.
            unsafe { rep_movsb(src.cast::<u8>(), buf.as_mut_ptr().cast::<u8>(), size) };
            return Ok(());
        }
        for (i, w) in buf.iter_mut().enumerate() {
            // SAFETY: word i < buf.len() lies inside the span checked above,
            // 8-aligned; the load is volatile and forms no reference.
            *w = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `buf` into the region at `offset` (8-byte aligned), one
    /// volatile store per word.
    #[inline]
    pub fn write_words(&self, offset: usize, buf: &[u64]) -> Result<(), Error> {
        let size = buf.len().checked_mul(8).ok_or(Error::OutOfBounds {
            offset,
            size: usize::MAX,
            len: self.len,
        })?;
        let dst = self.span(offset, size, 8)?.cast::<u64>();
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if size >= REP_MOVS_MIN {
            // SAFETY: `span` checked that the `size` bytes at `dst` are in
            // the region (valid for writes by `Region::new`'s contract);
            // `buf` is a private slice of `size` initialised bytes, disjoint
            // from the region.
            unsafe { rep_movsb(buf.as_ptr().cast::<u8>(), dst.cast::<u8>(), size) };
            return Ok(());
        }
        for (i, w) in buf.iter().enumerate() {
            // SAFETY: as in `read_words`, for stores.
            unsafe { dst.add(i).write_volatile(*w) };
        }
        Ok(())
    }

    /// Hints that the cache line at `offset` will be read soon. A hint
    /// only: it never faults and changes nothing; offsets outside the region
    /// are ignored.
    #[inline(always)]
    pub fn prefetch_read(&self, offset: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Ok(p) = self.span(offset, 1, 1) {
            // SAFETY: PREFETCHT0 has no architectural effect and never
            // faults; `p` is inside the region anyway.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    p.cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = offset;
    }
}

/// Loom's model memory: the words of a [`Region::model`].
///
/// Loom does not model `SeqCst` accesses (it treats them as `AcqRel`), but
/// it models `SeqCst` fences. A `SeqCst` store or swap is therefore the
/// access followed by a `SeqCst` fence, and a `SeqCst` load is an `Acquire`
/// load: x86-64's compilation of `SeqCst` (a locked `xchg`, a plain load).
/// Copies are `Relaxed` loads and stores of the words they touch, so a copy
/// not ordered by the ring's indices may see stale bytes, and loom finds it.
#[cfg(loom)]
mod model {
    use crate::sync::{fence, AtomicU32, Ordering};

    pub(super) type Words = &'static [AtomicU32];

    fn word(m: Words, offset: usize) -> &'static AtomicU32 {
        // Offsets were checked against the region by `span`.
        m.get(offset / 4).expect("checked by span")
    }

    pub(super) fn load(m: Words, offset: usize, order: Ordering) -> u32 {
        let order = match order {
            Ordering::SeqCst => Ordering::Acquire,
            o => o,
        };
        word(m, offset).load(order)
    }

    pub(super) fn store(m: Words, offset: usize, value: u32, order: Ordering) {
        match order {
            Ordering::SeqCst => {
                word(m, offset).store(value, Ordering::Release);
                fence(Ordering::SeqCst);
            }
            o => word(m, offset).store(value, o),
        }
    }

    pub(super) fn swap(m: Words, offset: usize, value: u32, order: Ordering) -> u32 {
        match order {
            Ordering::SeqCst => {
                let old = word(m, offset).swap(value, Ordering::AcqRel);
                fence(Ordering::SeqCst);
                old
            }
            o => word(m, offset).swap(value, o),
        }
    }

    pub(super) fn read_bytes(m: Words, offset: usize, buf: &mut [u8]) {
        let mut at = offset;
        let mut done = 0;
        while done < buf.len() {
            let bytes = word(m, at).load(Ordering::Relaxed).to_le_bytes();
            let first = at % 4;
            let n = (4 - first).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[first..first + n]);
            done += n;
            at += n;
        }
    }

    pub(super) fn write_bytes(m: Words, offset: usize, buf: &[u8]) {
        let mut at = offset;
        let mut done = 0;
        while done < buf.len() {
            let w = word(m, at);
            let first = at % 4;
            let n = (4 - first).min(buf.len() - done);
            // A whole word is one store; part of one keeps the other bytes.
            let mut bytes = if n == 4 {
                [0; 4]
            } else {
                w.load(Ordering::Relaxed).to_le_bytes()
            };
            bytes[first..first + n].copy_from_slice(&buf[done..done + n]);
            w.store(u32::from_le_bytes(bytes), Ordering::Relaxed);
            done += n;
            at += n;
        }
    }
}

/// Memory the tests own, leaked so that a [`Region`] over it stays valid
/// for the rest of the process.
#[cfg(test)]
pub(crate) fn leak_pages(pages: usize) -> Region {
    #[derive(Clone, Copy)]
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    let mem = alloc::vec![Page([0; 4096]); pages].leak();
    let len = core::mem::size_of_val(mem);
    let ptr = NonNull::from(mem).cast::<u8>();
    // SAFETY: the memory is leaked, so valid for reads and writes of `len`
    // bytes for the rest of the process; page-aligned (so 64-aligned); and
    // `leak` gave us the only reference, which we drop here, so no Rust
    // reference to the bytes exists while the region is used.
    unsafe { Region::new(ptr, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounds_and_alignment_checked() {
        let r = leak_pages(1);
        assert_eq!(r.len(), 4096);
        r.store_u32(4092, 7, Ordering::Relaxed).unwrap();
        assert_eq!(r.load_u32(4092, Ordering::Relaxed), Ok(7));
        assert_eq!(
            r.load_u32(4093, Ordering::Relaxed),
            Err(Error::OutOfBounds {
                offset: 4093,
                size: 4,
                len: 4096
            })
        );
        assert_eq!(
            r.load_u32(2, Ordering::Relaxed),
            Err(Error::Misaligned {
                offset: 2,
                align: 4
            })
        );
        assert!(r.store_u32(usize::MAX - 1, 0, Ordering::Relaxed).is_err());
        assert!(r.read::<u64>(4090).is_err());
        assert!(r.write(4095, &0u16).is_err());
        assert!(r.read_bytes(4000, &mut [0; 97]).is_err());
        assert!(r.write_bytes(usize::MAX, &[1]).is_err());
        assert!(r.fill(1, 4096, 0).is_err());
        assert!(r.subregion(32, 64).is_err());
        assert!(r.subregion(4096, 1).is_err());
    }

    #[test]
    fn the_empty_region_reaches_nothing() {
        let r = Region::empty();
        assert!(r.is_empty());
        assert_eq!(r.as_ptr() as usize % 64, 0);
        assert!(r.read_bytes(0, &mut [0; 1]).is_err());
        assert!(r.load_u32(0, Ordering::Relaxed).is_err());
        assert_eq!(r.subregion(0, 0).map(|s| s.len()), Ok(0));
    }

    #[test]
    fn copies_round_trip() {
        let r = leak_pages(2);
        r.write(8, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(r.read::<u64>(8), Ok(0x1122_3344_5566_7788));
        assert_eq!(r.read::<[u8; 2]>(8), Ok([0x88, 0x77]));
        r.write_bytes(4095, b"abc").unwrap();
        let mut buf = [0; 3];
        r.read_bytes(4095, &mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        r.fill(4095, 2, b'z').unwrap();
        r.read_bytes(4095, &mut buf).unwrap();
        assert_eq!(&buf, b"zzc");
        let sub = r.subregion(4096, 4096).unwrap();
        assert_eq!(sub.read::<[u8; 2]>(0), Ok(*b"zc"));
        assert_eq!(sub.len(), 4096);
        full_fence();
    }

    #[test]
    fn word_copies_round_trip_short_and_long() {
        let r = leak_pages(2);
        // Below and above the length where the copy changes method.
        for n in [0usize, 1, 3, 63, 64, 65, 512] {
            for offset in [0usize, 8, 4096 - 8] {
                let words: alloc::vec::Vec<u64> = (0..n as u64)
                    .map(|i| 0x0101_0101_0101_0101u64.wrapping_mul(i + 1) ^ offset as u64)
                    .collect();
                r.fill(0, 8192, 0xee).unwrap();
                r.write_words(offset, &words).unwrap();
                let mut back = alloc::vec![0u64; n];
                r.read_words(offset, &mut back).unwrap();
                assert_eq!(back, words);
                // The neighbouring words are untouched.
                let end = offset + n * 8;
                if end < 8192 {
                    assert_eq!(r.read::<u64>(end), Ok(0xeeee_eeee_eeee_eeee));
                }
                if offset > 0 {
                    assert_eq!(r.read::<u64>(offset - 8), Ok(0xeeee_eeee_eeee_eeee));
                }
            }
        }
        assert!(r.read_words(8192 - 8, &mut [0; 2]).is_err());
        assert!(r.write_words(8, &[0; 1024]).is_err());
        assert!(r.write_words(4, &[0]).is_err());
    }
}
