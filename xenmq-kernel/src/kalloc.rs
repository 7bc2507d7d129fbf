//! The global allocator of a module: `kmalloc`/`krealloc`/`kfree` with
//! `GFP_KERNEL`.
//!
//! `GFP_KERNEL` may sleep, so nothing may allocate in atomic context; the
//! glue never does (interrupt handlers are C and only wake a work item).
//! `kmalloc` aligns to 8 bytes (`ARCH_KMALLOC_MINALIGN` on x86-64) and a
//! power-of-two size to that size, so a larger alignment is met by asking
//! for the next power of two at or above both size and alignment; an
//! alignment above a page is refused (a null pointer, which `alloc`
//! reports as an allocation failure).
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use crate::sys;

/// The smallest alignment `kmalloc` guarantees on x86-64.
const MIN_ALIGN: usize = 8;
/// The largest alignment this allocator provides.
const MAX_ALIGN: usize = 4096;

/// The allocator; a module's staticlib installs it with
/// `#[global_allocator]` (done by [`crate::module!`]).
pub struct Kmalloc;

/// The size to ask `kmalloc` for, or `None` if the layout cannot be met.
fn size_for(layout: Layout) -> Option<usize> {
    if layout.align() <= MIN_ALIGN {
        return Some(layout.size().max(1));
    }
    if layout.align() > MAX_ALIGN {
        return None;
    }
    layout
        .size()
        .max(layout.align())
        .checked_next_power_of_two()
}

// SAFETY: kmalloc returns memory that is valid for `size` bytes, not
// aliased, and aligned as `size_for` requires (the kmalloc alignment rules
// in the module documentation); kfree/krealloc are only given pointers from
// kmalloc/krealloc, as GlobalAlloc's contract guarantees for `ptr`.
unsafe impl GlobalAlloc for Kmalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match size_for(layout) {
            // SAFETY: kmalloc accepts any size; it fails with null.
            Some(size) => unsafe { sys::xenmq_k_alloc(size, 0).cast() },
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match size_for(layout) {
            // SAFETY: as in `alloc`, with __GFP_ZERO.
            Some(size) => unsafe { sys::xenmq_k_alloc(size, 1).cast() },
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { sys::xenmq_k_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        match size_for(new) {
            // krealloc keeps kmalloc's alignment rules for the new size only
            // for the small alignments; larger ones move by hand.
            Some(size) if layout.align() <= MIN_ALIGN => {
                // SAFETY: `ptr` came from this allocator; krealloc keeps
                // the old contents up to the smaller size.
                unsafe { sys::xenmq_k_realloc(ptr.cast(), size).cast() }
            }
            Some(_) => {
                // SAFETY: `new` is a valid layout; on success both blocks are
                // live and distinct, and `layout.size().min(new_size)` bytes
                // are valid in each.
                unsafe {
                    let to = self.alloc(new);
                    if !to.is_null() {
                        core::ptr::copy_nonoverlapping(ptr, to, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    to
                }
            }
            None => core::ptr::null_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_meet_alignment() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(size_for(l(0, 1)), Some(1));
        assert_eq!(size_for(l(24, 8)), Some(24));
        assert_eq!(size_for(l(24, 16)), Some(32));
        assert_eq!(size_for(l(8, 64)), Some(64));
        assert_eq!(size_for(l(5000, 4096)), Some(8192));
        assert_eq!(size_for(l(64, 8192)), None);
    }
}
