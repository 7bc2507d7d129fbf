//! [`Events`] on Linux's event channels: `xenbus_alloc_evtchn` +
//! `bind_evtchn_to_irqhandler` for a frontend's port,
//! `bind_interdomain_evtchn_to_irqhandler_lateeoi` for a backend's
//! (XSA-332: the interrupt stays masked until the backend has taken the
//! event, so a frontend's event storm cannot keep a CPU in the handler).
//!
//! The shim's interrupt handler only sets a flag, wakes the channel's wait
//! queue and queues the device's work item; [`Chan::poll`] and
//! [`Chan::wait`] take the flag in process context. The late EOI of the
//! events taken is sent by [`Chan::end_of_events`] once the ring is
//! drained (or by the next `poll`/`wait`: the driver came back for more,
//! so it is done with the previous ones).
#![allow(unsafe_code)]

use core::ffi::c_long;
use core::ptr::NonNull;
use core::time::Duration;

use xenmq::evtchn::{Channel, Error, Events, Port, Status};
use xenmq::grant::DomId;

use crate::sys;

/// The event channels as one device sees them.
#[derive(Debug)]
pub struct Ports {
    dev: NonNull<sys::Dev>,
    peer: DomId,
}

impl Ports {
    /// The event channels of `dev`, whose peer is `peer`.
    ///
    /// # Safety
    ///
    /// `dev` is the shim's live device and outlives every channel made
    /// through this value.
    pub unsafe fn new(dev: NonNull<sys::Dev>, peer: DomId) -> Ports {
        Ports { dev, peer }
    }

    fn bind(&self, port: Port, remote: bool) -> Result<Chan, Error> {
        let mut err = 0;
        // SAFETY: the device is live (Ports::new); `err` is valid for writes.
        let ch = unsafe { sys::xenmq_k_bind(self.dev.as_ptr(), port, i32::from(remote), &mut err) };
        match NonNull::new(ch) {
            Some(ch) => Ok(Chan {
                ch,
                peer: self.peer,
                remote,
            }),
            None if remote => Err(Error::BadPort {
                domid: self.peer,
                port,
            }),
            None => Err(os(err)),
        }
    }
}

fn os(rc: i32) -> Error {
    match rc.wrapping_neg() {
        sys::errno::ENOSPC | sys::errno::ENOMEM => Error::NoSpace,
        e => Error::Os(e),
    }
}

/// One bound port; dropping it unbinds the interrupt and closes the port.
#[derive(Debug)]
pub struct Chan {
    ch: NonNull<sys::Chan>,
    peer: DomId,
    remote: bool,
}

impl Chan {
    /// Says the events taken so far are handled: a backend's (lateeoi)
    /// interrupt stays masked from its event until this call, so that a
    /// frontend cannot make it fire faster than the backend serves. A no-op
    /// for a frontend's channel or when no event was taken.
    pub fn end_of_events(&self) {
        // SAFETY: `ch` is live until drop; called in process context.
        unsafe { sys::xenmq_k_eoi(self.ch.as_ptr()) }
    }
}

impl Channel for Chan {
    /// A frontend's allocated port; for a backend, the frontend's port it
    /// was bound to (Linux does not export `evtchn_from_irq`, so the local
    /// end of an interdomain binding cannot be learned).
    fn port(&self) -> Port {
        // SAFETY: `ch` is live until drop.
        unsafe { sys::xenmq_k_chan_port(self.ch.as_ptr()) }
    }

    fn notify(&self) -> Result<(), Error> {
        // SAFETY: `ch` is live until drop; notify_remote_via_irq only
        // sends an event (callable from any context).
        unsafe { sys::xenmq_k_notify(self.ch.as_ptr()) };
        Ok(())
    }

    fn poll(&self) -> Result<bool, Error> {
        // SAFETY: `ch` is live until drop; called in process context.
        Ok(unsafe { sys::xenmq_k_poll(self.ch.as_ptr()) } > 0)
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let ms = match timeout {
            None => -1,
            Some(t) => c_long::try_from(t.as_millis()).unwrap_or(c_long::MAX),
        };
        // SAFETY: `ch` is live until drop; the caller is in process
        // context (the glue waits only from its kthread or work item).
        match unsafe { sys::xenmq_k_wait(self.ch.as_ptr(), ms) } {
            rc if rc > 0 => Ok(true),
            0 => Ok(false),
            rc => Err(Error::Os(rc.wrapping_neg())),
        }
    }

    /// Linux exports no `EVTCHNOP_status`: the kernel knows only that the
    /// port is bound, so a backend's channel reads as connected to the
    /// frontend's port and a frontend's as unbound for its peer.
    fn status(&self) -> Result<Status, Error> {
        Ok(if self.remote {
            Status::Interdomain {
                remote: self.peer,
                remote_port: self.port(),
            }
        } else {
            Status::Unbound { remote: self.peer }
        })
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        // SAFETY: `ch` came from xenmq_k_bind and is unbound once, here.
        unsafe { sys::xenmq_k_unbind(self.ch.as_ptr()) }
    }
}

impl Events for Ports {
    type Channel = Chan;

    fn alloc_unbound(&self, remote: DomId) -> Result<Chan, Error> {
        if remote != self.peer {
            return Err(Error::NoDomain(remote));
        }
        let mut port = 0;
        // SAFETY: the device is live; `port` is valid for writes.
        let rc = unsafe { sys::xenmq_k_alloc_evtchn(self.dev.as_ptr(), &mut port) };
        if rc < 0 {
            return Err(os(rc));
        }
        self.bind(port, false).inspect_err(|_| {
            // SAFETY: `port` was allocated just above and is not bound.
            unsafe { sys::xenmq_k_free_evtchn(self.dev.as_ptr(), port) };
        })
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Chan, Error> {
        if remote != self.peer {
            return Err(Error::NoDomain(remote));
        }
        self.bind(remote_port, true)
    }
}
