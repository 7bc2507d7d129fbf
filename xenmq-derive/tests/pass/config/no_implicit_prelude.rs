#![no_implicit_prelude]
#![forbid(unsafe_code)]

#[derive(::xenmq::XenstoreConfig)]
pub struct Backend {
    // The handshake's own keys, read on purpose.
    #[xenstore(default = 0, max = 4, reserved)]
    pub max_ring_page_order: u8,
    pub feature_persistent: bool,
    #[xenstore(rename = "feature-max-indirect-segments", min = 1)]
    pub segments: ::core::option::Option<u32>,
    #[xenstore(default = "x86_64-abi", reserved)]
    pub protocol: ::xenmq::__private::String,
    #[xenstore(reserved)]
    pub ring_ref: ::xenmq::xenbus::RingRefs,
    pub fingerprint: ::xenmq::xenbus::Fingerprint,
    #[xenstore(min = -3, max = 3)]
    pub r#type: i64,
    // Names the generated code uses for its own locals.
    pub dir: u8,
    pub get: u8,
    pub out: u8,
    pub put: u8,
}

fn main() {
    use ::xenmq::xenbus::Config;
    let mut keys = ::xenmq::__private::Vec::new();
    Backend::keys(&mut keys);
    let r = Backend::read("/d", &mut |_| ::core::option::Option::None);
    ::core::assert!(r.is_err());
}
