pub struct Vkv;
impl ::xenmq::driver::Protocol for Vkv {
    const NAME: &'static str = "vkv";
    const VERSION: u32 = 2u32;
    const FINGERPRINT: u64 = ::xenmq::__private::combine_fingerprints(
        &[
            <Req as ::xenmq::wire::Message>::FINGERPRINT,
            <Rsp as ::xenmq::wire::Message>::FINGERPRINT,
        ],
    );
    const RING_PAGE_ORDER: u8 = 1u8;
    const MAX_RING_PAGE_ORDER: u8 = 3u8;
    const POOL_PAGES: u32 = 16u32;
    type Rings = ::xenmq::ring::Native;
    type Request = Req;
    type Response = Rsp;
    type FrontendConfig = ::xenmq::driver::NoConfig;
    type BackendConfig = Limits;
    #[inline]
    fn request_id(req: &Req) -> u64 {
        ::xenmq::__private::IdType::get(<Req as ::xenmq::__private::IdField>::id(req))
    }
    #[inline]
    fn set_request_id(req: &mut Req, id: u64) {
        ::xenmq::__private::IdType::set(
            <Req as ::xenmq::__private::IdField>::id_mut(req),
            id,
        );
    }
    #[inline]
    fn response_id(rsp: &Rsp) -> u64 {
        ::xenmq::__private::IdType::get(<Rsp as ::xenmq::__private::IdField>::id(rsp))
    }
    #[inline]
    fn set_response_id(rsp: &mut Rsp, id: u64) {
        ::xenmq::__private::IdType::set(
            <Rsp as ::xenmq::__private::IdField>::id_mut(rsp),
            id,
        );
    }
}
