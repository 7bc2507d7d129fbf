//! One data path over either ring layout.
//!
//! A protocol picks its layout once, at declaration
//! (`#[xenmq::protocol(layout = native)]`): [`Compat`], byte-compatible with
//! `xen/io/ring.h` (the default, and the only choice for a protocol whose
//! other end is an existing C driver), or [`Native`], the layout of
//! [`native`](super::native) for protocols that are xenmq's at both ends.
//! The driver's [`Client`](crate::driver::Client) and
//! [`Server`](crate::driver::Server) are generic over [`FrontSide`] and
//! [`BackSide`], so the choice costs no dispatch at run time; both ends
//! publish the layout's [`Kind`] in Xenstore and refuse a peer using the
//! other one.

use core::fmt;

use super::{compat, native, Entry, Error};
use crate::shm::Region;

/// A ring layout, as both ends publish it (`xenmq-ring-layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Kind {
    /// `xen/io/ring.h`'s layout: [`compat::Front`] and [`compat::Back`].
    #[default]
    Compat,
    /// xenmq's own layout: [`native::Front`] and [`native::Back`].
    Native,
}

impl Kind {
    /// Both layouts.
    pub const ALL: [Kind; 2] = [Kind::Compat, Kind::Native];

    /// The value published in Xenstore: `ring.h` or `native`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Compat => "ring.h",
            Kind::Native => "native",
        }
    }

    /// The layout a published value names.
    pub fn parse(value: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == value)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frontend's end of a ring, whatever its layout: it produces requests
/// and consumes responses.
pub trait FrontSide<Req, Rsp>: Sized {
    /// Lays out a fresh ring in `region` and attaches at index 0 (do it
    /// before the backend learns of the ring).
    fn init(region: Region) -> Result<Self, Error>;
    /// Slots in the ring: the most requests in flight.
    fn size(&self) -> u32;
    /// Whether every slot holds a request in flight.
    fn is_full(&self) -> bool;
    /// Writes a request into the next free slot.
    fn produce_request(&mut self, req: &Req) -> Result<(), Error>;
    /// Publishes the requests produced; `true` if the backend must be
    /// notified.
    fn push_requests(&mut self) -> Result<bool, Error>;
    /// Copies the next response out, once, if one is waiting.
    fn consume_response(&mut self) -> Result<Option<Rsp>, Error>;
    /// Whether a response is waiting.
    fn has_responses(&mut self) -> Result<bool, Error>;
    /// Re-arms the response event index and checks once more: `false`
    /// means it is safe to sleep until the next notification.
    fn final_check_for_responses(&mut self) -> Result<bool, Error>;
}

/// A backend's end of a ring, whatever its layout: it consumes requests
/// and produces responses.
pub trait BackSide<Req, Rsp>: Sized {
    /// Attaches to a ring the frontend initialised.
    fn attach(region: Region) -> Result<Self, Error>;
    /// Slots in the ring.
    fn size(&self) -> u32;
    /// Copies the next request out, once, if one is waiting.
    fn consume_request(&mut self) -> Result<Option<Req>, Error>;
    /// Writes the response to the oldest unanswered request.
    fn produce_response(&mut self, rsp: &Rsp) -> Result<(), Error>;
    /// Requests consumed and not yet answered.
    fn pending_responses(&self) -> u32;
    /// Publishes the responses produced; `true` if the frontend must be
    /// notified.
    fn push_responses(&mut self) -> Result<bool, Error>;
    /// Whether a request is waiting.
    fn has_requests(&mut self) -> Result<bool, Error>;
    /// Re-arms the request event index and checks once more: `false`
    /// means it is safe to sleep until the next notification.
    fn final_check_for_requests(&mut self) -> Result<bool, Error>;
}

/// A ring layout as a type: which [`FrontSide`] and [`BackSide`] a
/// protocol's data path uses.
pub trait Rings: 'static {
    /// The layout's published name.
    const KIND: Kind;
    /// The frontend's end.
    type Front<Req: Entry, Rsp: Entry>: FrontSide<Req, Rsp>;
    /// The backend's end.
    type Back<Req: Entry, Rsp: Entry>: BackSide<Req, Rsp>;
}

/// `xen/io/ring.h`'s layout ([`Kind::Compat`]).
#[derive(Debug)]
pub enum Compat {}

/// xenmq's native layout ([`Kind::Native`]).
#[derive(Debug)]
pub enum Native {}

impl Rings for Compat {
    const KIND: Kind = Kind::Compat;
    type Front<Req: Entry, Rsp: Entry> = compat::Front<Req, Rsp>;
    type Back<Req: Entry, Rsp: Entry> = compat::Back<Req, Rsp>;
}

impl Rings for Native {
    const KIND: Kind = Kind::Native;
    type Front<Req: Entry, Rsp: Entry> = native::Front<Req, Rsp>;
    type Back<Req: Entry, Rsp: Entry> = native::Back<Req, Rsp>;
}

impl<Req: Entry, Rsp: Entry> FrontSide<Req, Rsp> for compat::Front<Req, Rsp> {
    fn init(region: Region) -> Result<Self, Error> {
        compat::Front::init(region)
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        compat::Front::size(self)
    }
    #[inline(always)]
    fn is_full(&self) -> bool {
        compat::Front::is_full(self)
    }
    #[inline(always)]
    fn produce_request(&mut self, req: &Req) -> Result<(), Error> {
        compat::Front::produce_request(self, req)
    }
    #[inline(always)]
    fn push_requests(&mut self) -> Result<bool, Error> {
        compat::Front::push_requests(self)
    }
    #[inline(always)]
    fn consume_response(&mut self) -> Result<Option<Rsp>, Error> {
        compat::Front::consume_response(self)
    }
    #[inline(always)]
    fn has_responses(&mut self) -> Result<bool, Error> {
        self.has_responses()
    }
    #[inline(always)]
    fn final_check_for_responses(&mut self) -> Result<bool, Error> {
        compat::Front::final_check_for_responses(self)
    }
}

impl<Req: Entry, Rsp: Entry> BackSide<Req, Rsp> for compat::Back<Req, Rsp> {
    fn attach(region: Region) -> Result<Self, Error> {
        compat::Back::attach(region)
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        compat::Back::size(self)
    }
    #[inline(always)]
    fn consume_request(&mut self) -> Result<Option<Req>, Error> {
        compat::Back::consume_request(self)
    }
    #[inline(always)]
    fn produce_response(&mut self, rsp: &Rsp) -> Result<(), Error> {
        compat::Back::produce_response(self, rsp)
    }
    #[inline(always)]
    fn pending_responses(&self) -> u32 {
        compat::Back::pending_responses(self)
    }
    #[inline(always)]
    fn push_responses(&mut self) -> Result<bool, Error> {
        compat::Back::push_responses(self)
    }
    #[inline(always)]
    fn has_requests(&mut self) -> Result<bool, Error> {
        self.has_requests()
    }
    #[inline(always)]
    fn final_check_for_requests(&mut self) -> Result<bool, Error> {
        compat::Back::final_check_for_requests(self)
    }
}

impl<Req: Entry, Rsp: Entry> FrontSide<Req, Rsp> for native::Front<Req, Rsp> {
    fn init(region: Region) -> Result<Self, Error> {
        native::Front::init(region)
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        native::Front::size(self)
    }
    #[inline(always)]
    fn is_full(&self) -> bool {
        native::Front::is_full(self)
    }
    #[inline(always)]
    fn produce_request(&mut self, req: &Req) -> Result<(), Error> {
        self.produce_request(req)
    }
    #[inline(always)]
    fn push_requests(&mut self) -> Result<bool, Error> {
        native::Front::push_requests(self)
    }
    #[inline(always)]
    fn consume_response(&mut self) -> Result<Option<Rsp>, Error> {
        self.consume_response()
    }
    #[inline(always)]
    fn has_responses(&mut self) -> Result<bool, Error> {
        native::Front::has_responses(self)
    }
    #[inline(always)]
    fn final_check_for_responses(&mut self) -> Result<bool, Error> {
        native::Front::final_check_for_responses(self)
    }
}

impl<Req: Entry, Rsp: Entry> BackSide<Req, Rsp> for native::Back<Req, Rsp> {
    fn attach(region: Region) -> Result<Self, Error> {
        native::Back::attach(region)
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        native::Back::size(self)
    }
    #[inline(always)]
    fn consume_request(&mut self) -> Result<Option<Req>, Error> {
        self.consume_request()
    }
    #[inline(always)]
    fn produce_response(&mut self, rsp: &Rsp) -> Result<(), Error> {
        self.produce_response(rsp)
    }
    #[inline(always)]
    fn pending_responses(&self) -> u32 {
        native::Back::pending_responses(self)
    }
    #[inline(always)]
    fn push_responses(&mut self) -> Result<bool, Error> {
        native::Back::push_responses(self)
    }
    #[inline(always)]
    fn has_requests(&mut self) -> Result<bool, Error> {
        native::Back::has_requests(self)
    }
    #[inline(always)]
    fn final_check_for_requests(&mut self) -> Result<bool, Error> {
        native::Back::final_check_for_requests(self)
    }
}
