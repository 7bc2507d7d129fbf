::core::compile_error! {
    "unknown protocol argument `reqest`; did you mean `request`?"
}
::core::compile_error! {
    "`version` takes an integer literal: `version = 1`"
}
pub struct Vkv;
impl ::xenmq::driver::Protocol for Vkv {
    const NAME: &'static str = "vkv";
    const VERSION: u32 = 0;
    const FINGERPRINT: u64 = 0;
    const RING_PAGE_ORDER: u8 = 0;
    const MAX_RING_PAGE_ORDER: u8 = 0;
    const POOL_PAGES: u32 = 0;
    type Rings = ::xenmq::ring::Compat;
    type Request = Rsp;
    type Response = Rsp;
    type FrontendConfig = ::xenmq::driver::NoConfig;
    type BackendConfig = ::xenmq::driver::NoConfig;
    fn request_id(_: &Rsp) -> u64 {
        ::core::unreachable!()
    }
    fn set_request_id(_: &mut Rsp, _: u64) {
        ::core::unreachable!()
    }
    fn response_id(_: &Rsp) -> u64 {
        ::core::unreachable!()
    }
    fn set_response_id(_: &mut Rsp, _: u64) {
        ::core::unreachable!()
    }
}
