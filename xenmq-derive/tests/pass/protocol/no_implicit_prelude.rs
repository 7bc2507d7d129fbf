#![no_implicit_prelude]

#[::xenmq::message]
pub struct Req {
    pub tag: u64,
    pub op: u32,
    pub len: u32,
}

#[::xenmq::message]
pub struct Rsp {
    pub tag: u64,
    pub status: i32,
    pub _pad: u32,
}

#[derive(::xenmq::XenstoreConfig, Default)]
pub struct Features {
    pub feature_barrier: bool,
}

/// Every argument given.
#[::xenmq::protocol(
    name = "vblk-2",
    version = 7,
    request = Req,
    response = Rsp,
    ring_pages = 2,
    max_ring_pages = 16,
    pool_pages = 256,
    id = tag,
    frontend_config = Features,
    backend_config = Features
)]
pub struct Full;

/// The fewest arguments.
#[::xenmq::protocol(name = "min", request = Req, response = Rsp, id = tag)]
pub struct Min;

#[::xenmq::message]
pub struct Ping {
    pub id: u64,
    pub seq: u64,
}

/// The request id in the messages' field `id`, the default.
#[::xenmq::protocol(name = "echo", request = Ping, response = Ping)]
pub struct Echo;

fn main() {
    use ::xenmq::driver::Protocol;
    let mut p = Ping { id: 0, seq: 3 };
    <Echo as Protocol>::set_request_id(&mut p, 5);
    ::std::assert_eq!(<Echo as Protocol>::request_id(&p), 5);
    <Echo as Protocol>::set_response_id(&mut p, 6);
    ::std::assert_eq!(<Echo as Protocol>::response_id(&p), 6);
    ::std::assert_eq!(p.seq, 3);
    ::std::assert_eq!(<Full as Protocol>::RING_PAGE_ORDER, 1);
    ::std::assert_eq!(<Full as Protocol>::MAX_RING_PAGE_ORDER, 4);
    ::std::assert_eq!(<Full as Protocol>::POOL_PAGES, 256);
    ::std::assert_eq!(<Full as Protocol>::VERSION, 7);
    ::std::assert_eq!(<Min as Protocol>::VERSION, 1);
    ::std::assert_eq!(<Min as Protocol>::MAX_RING_PAGE_ORDER, 0);
    ::std::assert_eq!(<Full as Protocol>::FINGERPRINT, <Min as Protocol>::FINGERPRINT);
    let mut r = Req { tag: 0, op: 0, len: 0 };
    <Min as Protocol>::set_request_id(&mut r, 9);
    ::std::assert_eq!(r.tag, 9);
}
