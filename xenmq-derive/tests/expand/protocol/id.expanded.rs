pub struct Blk;
impl ::xenmq::driver::Protocol for Blk {
    const NAME: &'static str = "blk";
    const VERSION: u32 = 1u32;
    const FINGERPRINT: u64 = ::xenmq::__private::combine_fingerprints(
        &[
            <Req as ::xenmq::wire::Message>::FINGERPRINT,
            <Rsp as ::xenmq::wire::Message>::FINGERPRINT,
        ],
    );
    const RING_PAGE_ORDER: u8 = 0u8;
    const MAX_RING_PAGE_ORDER: u8 = 0u8;
    const POOL_PAGES: u32 = 0u32;
    type Rings = ::xenmq::ring::Compat;
    type Request = Req;
    type Response = Rsp;
    type FrontendConfig = ::xenmq::driver::NoConfig;
    type BackendConfig = ::xenmq::driver::NoConfig;
    #[inline]
    fn request_id(req: &Req) -> u64 {
        req.tag
    }
    #[inline]
    fn set_request_id(req: &mut Req, id: u64) {
        req.tag = id;
    }
    #[inline]
    fn response_id(rsp: &Rsp) -> u64 {
        rsp.tag
    }
    #[inline]
    fn set_response_id(rsp: &mut Rsp, id: u64) {
        rsp.tag = id;
    }
}
