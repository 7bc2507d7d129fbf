//! [`Store`] on Linux's in-kernel xenbus client (`xenbus_read`,
//! `xenbus_write`, `xenbus_directory`, `xenbus_transaction_*`).
//!
//! Linux exports no call for a node's permissions, and its watches are
//! callbacks (`register_xenbus_watch`) that the device glue does not need:
//! a module learns its peer's state from xenbus's `otherend_changed`. So
//! [`Xenbus::get_perms`], [`Xenbus::set_perms`], [`Xenbus::watch`],
//! [`Xenbus::unwatch`] and [`Xenbus::next_event`] answer
//! `Refused(ENOSYS)`, the answer xenstored gives an operation it lacks.
#![allow(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_uint, CStr};
use core::time::Duration;

use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::{Errno, Error, Store, Tx, WatchEvent};

use crate::sys;

/// The longest value Xenstore carries (`XENSTORE_PAYLOAD_MAX`).
const PAYLOAD_MAX: usize = 4096;

/// Linux's xenbus client (one per module; it has no state of its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct Xenbus;

/// `s` with a terminating NUL, or an error if it holds one already.
pub(crate) fn c_string(s: &[u8], what: &'static str) -> Result<Vec<u8>, Error> {
    if s.contains(&0) {
        return Err(Error::BadArgument(what));
    }
    if s.len() >= PAYLOAD_MAX {
        return Err(Error::BadArgument("longer than a xenstore payload"));
    }
    // s.len() < PAYLOAD_MAX: the NUL fits without overflow.
    let mut v = Vec::with_capacity(s.len().saturating_add(1));
    v.extend_from_slice(s);
    v.push(0);
    Ok(v)
}

/// Maps a negative Linux errno from xenbus to the store's error.
pub(crate) fn refused(rc: c_int) -> Error {
    use sys::errno::*;
    Error::Refused(match rc.wrapping_neg() {
        ENOENT => Errno::ENOENT,
        EAGAIN => Errno::EAGAIN,
        EACCES => Errno::EACCES,
        EEXIST => Errno::EEXIST,
        ENOMEM => Errno::ENOMEM,
        ENOSPC => Errno::ENOSPC,
        EBUSY => Errno::EBUSY,
        E2BIG => Errno::E2BIG,
        EINVAL => Errno::EINVAL,
        _ => Errno::EIO,
    })
}

fn check(rc: c_int) -> Result<(), Error> {
    if rc < 0 {
        Err(refused(rc))
    } else {
        Ok(())
    }
}

impl Store for Xenbus {
    fn read(&self, tx: Tx, path: &str) -> Result<Vec<u8>, Error> {
        let p = c_string(path.as_bytes(), "NUL in a path")?;
        let mut out: *mut c_char = core::ptr::null_mut();
        let mut len: c_uint = 0;
        // SAFETY: `p` is NUL-terminated and outlives the call; `out` and
        // `len` are valid for writes.
        check(unsafe { sys::xenmq_k_xs_read(tx.0, p.as_ptr().cast(), &mut out, &mut len) })?;
        // SAFETY: on success the shim set `out` to a kmalloc'd buffer of at
        // least `len` initialised bytes, which we own and free here.
        let value = unsafe {
            let v = core::slice::from_raw_parts(out.cast::<u8>(), len as usize).to_vec();
            sys::xenmq_k_free(out.cast());
            v
        };
        Ok(value)
    }

    fn write(&self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error> {
        let p = c_string(path.as_bytes(), "NUL in a path")?;
        // xenbus_write sends strlen(value) bytes: a NUL cannot be sent.
        let v = c_string(
            value,
            "NUL in a value (the kernel's xenbus_write takes a C string)",
        )?;
        // SAFETY: both strings are NUL-terminated and outlive the call.
        check(unsafe { sys::xenmq_k_xs_write(tx.0, p.as_ptr().cast(), v.as_ptr().cast()) })
    }

    fn mkdir(&self, tx: Tx, path: &str) -> Result<(), Error> {
        let p = c_string(path.as_bytes(), "NUL in a path")?;
        // SAFETY: `p` is NUL-terminated and outlives the call.
        check(unsafe { sys::xenmq_k_xs_mkdir(tx.0, p.as_ptr().cast()) })
    }

    fn rm(&self, tx: Tx, path: &str) -> Result<(), Error> {
        let p = c_string(path.as_bytes(), "NUL in a path")?;
        // SAFETY: `p` is NUL-terminated and outlives the call.
        check(unsafe { sys::xenmq_k_xs_rm(tx.0, p.as_ptr().cast()) })
    }

    fn directory(&self, tx: Tx, path: &str) -> Result<Vec<String>, Error> {
        let p = c_string(path.as_bytes(), "NUL in a path")?;
        let mut out: *mut *mut c_char = core::ptr::null_mut();
        let mut num: c_uint = 0;
        // SAFETY: `p` is NUL-terminated; `out` and `num` are valid for writes.
        check(unsafe { sys::xenmq_k_xs_directory(tx.0, p.as_ptr().cast(), &mut out, &mut num) })?;
        let mut names = Vec::with_capacity(num as usize);
        // SAFETY: on success `out` points to `num` pointers to NUL-terminated
        // strings, all in one kmalloc'd block that we own and free after
        // copying the names out.
        unsafe {
            for i in 0..num as usize {
                let s = CStr::from_ptr(*out.add(i));
                names.push(String::from_utf8_lossy(s.to_bytes()).into_owned());
            }
            sys::xenmq_k_free(out.cast());
        }
        Ok(names)
    }

    fn get_perms(&self, _tx: Tx, _path: &str) -> Result<Perms, Error> {
        Err(Error::Refused(Errno::ENOSYS))
    }

    fn set_perms(&self, _tx: Tx, _path: &str, _perms: &Perms) -> Result<(), Error> {
        Err(Error::Refused(Errno::ENOSYS))
    }

    fn watch(&self, _path: &str, _token: &str) -> Result<(), Error> {
        Err(Error::Refused(Errno::ENOSYS))
    }

    fn unwatch(&self, _path: &str, _token: &str) -> Result<(), Error> {
        Err(Error::Refused(Errno::ENOSYS))
    }

    fn next_event(&self, _timeout: Option<Duration>) -> Result<Option<WatchEvent>, Error> {
        Err(Error::Refused(Errno::ENOSYS))
    }

    fn transaction_start(&self) -> Result<Tx, Error> {
        let mut id = 0u32;
        // SAFETY: `id` is valid for writes.
        check(unsafe { sys::xenmq_k_xs_tx_start(&mut id) })?;
        Ok(Tx(id))
    }

    fn transaction_end(&self, tx: Tx, commit: bool) -> Result<(), Error> {
        // SAFETY: plain values; xenbus rejects an unknown id with an error.
        check(unsafe { sys::xenmq_k_xs_tx_end(tx.0, c_int::from(!commit)) })
    }

    fn get_domain_path(&self, domid: u32) -> Result<String, Error> {
        Ok(alloc::format!("/local/domain/{domid}"))
    }
}
