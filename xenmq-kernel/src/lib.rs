//! The kernel-module platform of xenmq: a driver written against `xenmq`
//! alone, linked into a Linux module.
//!
//! Debian's kernels are built without `CONFIG_RUST`, so a module is a small
//! C shim (`shim/xenmq_shim.c`: module init/exit, the xenbus driver table,
//! interrupt handlers, one wrapper per Linux call) linked with one `no_std`
//! Rust object made from this crate, the driver and its [`module!`] line.
//! `xenmq-kmod` builds the `.ko`.
//!
//! - [`kalloc`]: the global allocator over `kmalloc`/`kfree`;
//! - [`xenstore`]: `xenmq::xenstore::Store` on Linux's xenbus client;
//! - [`grant`]: `xenmq::grant::Grants` on `gnttab_*` and xenbus ring maps;
//! - [`evtchn`]: `xenmq::evtchn::Events` on event-channel interrupts (late
//!   EOI for backends, XSA-332);
//! - [`device`]: the xenbus machines driven from `probe`,
//!   `otherend_changed` and `remove`, and the data path run from a work
//!   item.
//!
//! This is its own crate rather than a feature of `xenmq-runtime`: the
//! runtime is `std` (threads, files, sockets) in all its platforms, while
//! this crate must build for `x86_64-unknown-none` with `core` and `alloc`
//! only; a `kernel` feature would be incompatible with every other one.
//!
//! xen-sys is not used. Its 0.0.0-pre2 release builds for
//! `x86_64-unknown-none`, but its x86-64 hypercalls call into an extern
//! `HYPERCALL_PAGE`, which Linux 6.1 does not export to modules (the
//! module would not load), and the kernel API the shim calls takes care of
//! the hypercalls anyway; the ABI values the glue needs (xenbus states,
//! grant references, ports, domain ids) are `xenmq`'s own types already.
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

pub mod device;
pub mod evtchn;
pub mod grant;
pub mod kalloc;
pub mod log;
pub mod sys;
pub mod xenstore;

#[doc(hidden)]
pub mod __private {
    #![allow(unsafe_code)]
    //! What [`module!`](crate::module) expands to call.

    use alloc::boxed::Box;
    use alloc::string::String;
    use core::ffi::{c_char, c_int, c_void, CStr};
    use core::ptr::NonNull;

    pub use crate::device::{Back, Device, End, Front};
    use crate::sys;

    fn string(p: *const c_char) -> Option<String> {
        if p.is_null() {
            return None;
        }
        // SAFETY: the shim passes xenbus's NUL-terminated nodename and
        // otherend strings, alive for the duration of the call.
        Some(String::from_utf8_lossy(unsafe { CStr::from_ptr(p) }.to_bytes()).into_owned())
    }

    /// `xenmq_rs_probe`: builds the device, or null (the shim fails the
    /// probe with `-ENOMEM`) when it cannot start.
    ///
    /// # Safety
    ///
    /// Called by the shim with its live device and the xenbus strings.
    pub unsafe fn probe<E: End>(
        dev: *mut sys::Dev,
        nodename: *const c_char,
        otherend: *const c_char,
        peer: u16,
        end: impl FnOnce(u16) -> E,
    ) -> *mut c_void {
        let (Some(dev), Some(own), Some(other)) =
            (NonNull::new(dev), string(nodename), string(otherend))
        else {
            return core::ptr::null_mut();
        };
        // SAFETY: the shim keeps `dev` alive until after `remove`, which
        // drops the device.
        match unsafe { Device::probe(dev, own.clone(), other, peer, end(peer)) } {
            Ok(d) => Box::into_raw(d).cast(),
            Err(e) => {
                crate::error!("{own}: cannot start: {e}");
                core::ptr::null_mut()
            }
        }
    }

    /// # Safety
    ///
    /// `rust` came from [`probe`] with the same `E` and is not removed.
    pub unsafe fn changed<E: End>(rust: *mut c_void, state: c_int) {
        // SAFETY: this function's contract; the shim's mutex excludes
        // every other entry.
        let d = unsafe { &mut *rust.cast::<Device<E>>() };
        d.changed(u32::try_from(state).unwrap_or(u32::MAX));
    }

    /// # Safety
    ///
    /// As for [`changed`].
    pub unsafe fn kick<E: End>(rust: *mut c_void) {
        // SAFETY: as in `changed`.
        let d = unsafe { &mut *rust.cast::<Device<E>>() };
        d.kick();
    }

    /// # Safety
    ///
    /// As for [`changed`]; `rust` is not used again.
    pub unsafe fn remove<E: End>(rust: *mut c_void) {
        // SAFETY: `rust` came from Box::into_raw in `probe`.
        let mut d = unsafe { Box::from_raw(rust.cast::<Device<E>>()) };
        d.remove();
        drop(d);
    }

    /// The panic handler: reports and ends the task with `BUG()`.
    pub fn panicked(info: &core::panic::PanicInfo<'_>) -> ! {
        crate::log::panic(format_args!("{info}"))
    }
}

/// Makes the crate it is used in a module's Rust object: the entry points
/// the shim calls, the global allocator and the panic handler.
///
/// ```text
/// #![no_std]
/// xenmq_kernel::module!(backend: my_driver::Back);
/// ```
///
/// `backend: TYPE` serves every device of `TYPE`'s protocol attached to
/// this domain, with a `TYPE::default()` driver per device.
/// `frontend: TYPE` connects every device of `TYPE`'s protocol this domain
/// has; `frontend: TYPE, on_connect: FN` also runs
/// `FN(&mut Client) -> Result<u32, xenmq::driver::Error>` once per
/// connection (see [`device::OnConnect`]).
#[macro_export]
macro_rules! module {
    (backend: $driver:ty) => {
        $crate::module!(@common $crate::__private::Back<<$driver as ::xenmq::driver::Backend>::Protocol, $driver>,
            |peer| $crate::__private::Back::new(<$driver as ::core::default::Default>::default(), peer));
    };
    (frontend: $driver:ty) => {
        $crate::module!(@common $crate::__private::Front<<$driver as ::xenmq::driver::Frontend>::Protocol, $driver>,
            |peer| $crate::__private::Front::new(<$driver as ::core::default::Default>::default(), peer, None));
    };
    (frontend: $driver:ty, on_connect: $f:path) => {
        $crate::module!(@common $crate::__private::Front<<$driver as ::xenmq::driver::Frontend>::Protocol, $driver>,
            |peer| $crate::__private::Front::new(<$driver as ::core::default::Default>::default(), peer, Some($f)));
    };
    (@common $end:ty, $make:expr) => {
        #[cfg(target_os = "none")]
        #[global_allocator]
        static XENMQ_ALLOC: $crate::kalloc::Kmalloc = $crate::kalloc::Kmalloc;

        #[cfg(target_os = "none")]
        #[panic_handler]
        fn xenmq_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__private::panicked(info)
        }

        #[no_mangle]
        pub extern "C" fn xenmq_rs_init() -> ::core::ffi::c_int {
            0
        }

        #[no_mangle]
        pub extern "C" fn xenmq_rs_exit() {}

        /// # Safety
        ///
        /// Called by the shim only.
        #[no_mangle]
        pub unsafe extern "C" fn xenmq_rs_probe(
            dev: *mut $crate::sys::Dev,
            nodename: *const ::core::ffi::c_char,
            otherend: *const ::core::ffi::c_char,
            peer: u16,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the shim's contract (see __private::probe).
            unsafe { $crate::__private::probe::<$end>(dev, nodename, otherend, peer, $make) }
        }

        /// # Safety
        ///
        /// Called by the shim only.
        #[no_mangle]
        pub unsafe extern "C" fn xenmq_rs_changed(rust: *mut ::core::ffi::c_void, state: ::core::ffi::c_int) {
            // SAFETY: the shim's contract (see __private::changed).
            unsafe { $crate::__private::changed::<$end>(rust, state) }
        }

        /// # Safety
        ///
        /// Called by the shim only.
        #[no_mangle]
        pub unsafe extern "C" fn xenmq_rs_kick(rust: *mut ::core::ffi::c_void) {
            // SAFETY: the shim's contract (see __private::kick).
            unsafe { $crate::__private::kick::<$end>(rust) }
        }

        /// # Safety
        ///
        /// Called by the shim only.
        #[no_mangle]
        pub unsafe extern "C" fn xenmq_rs_remove(rust: *mut ::core::ffi::c_void) {
            // SAFETY: the shim's contract (see __private::remove).
            unsafe { $crate::__private::remove::<$end>(rust) }
        }
    };
}
