#[repr(C)]
#[derive(
    ::xenmq::__private::zerocopy::FromBytes,
    ::xenmq::__private::zerocopy::IntoBytes,
    ::xenmq::__private::zerocopy::Immutable,
    ::xenmq::__private::zerocopy::KnownLayout
)]
#[zerocopy(crate = "::xenmq::__private::zerocopy")]
pub struct Response {
    pub id: u64,
    pub operation: ::xenmq::wire::Enum<Op>,
    pub _pad0: u8,
    pub status: i16,
    pub _pad1: [u8; 4],
}
const _: () = ::xenmq::__private::assert_field::<u64>();
const _: () = ::xenmq::__private::assert_field::<::xenmq::wire::Enum<Op>>();
const _: () = ::xenmq::__private::assert_field::<u8>();
const _: () = ::xenmq::__private::assert_field::<i16>();
const _: () = ::xenmq::__private::assert_field::<[u8; 4]>();
const _: () = ::xenmq::__private::check_gap(
    "id",
    ::core::mem::offset_of!(Response, id) + ::core::mem::size_of::<u64>(),
    "operation",
    ::core::mem::offset_of!(Response, operation),
);
const _: () = ::xenmq::__private::check_gap(
    "operation",
    ::core::mem::offset_of!(Response, operation)
        + ::core::mem::size_of::<::xenmq::wire::Enum<Op>>(),
    "_pad0",
    ::core::mem::offset_of!(Response, _pad0),
);
const _: () = ::xenmq::__private::check_gap(
    "_pad0",
    ::core::mem::offset_of!(Response, _pad0) + ::core::mem::size_of::<u8>(),
    "status",
    ::core::mem::offset_of!(Response, status),
);
const _: () = ::xenmq::__private::check_offset(
    "status",
    10,
    ::core::mem::offset_of!(Response, status),
);
const _: () = ::xenmq::__private::check_gap(
    "status",
    ::core::mem::offset_of!(Response, status) + ::core::mem::size_of::<i16>(),
    "_pad1",
    ::core::mem::offset_of!(Response, _pad1),
);
const _: () = ::xenmq::__private::check_tail(
    "Response",
    "_pad1",
    ::core::mem::offset_of!(Response, _pad1) + ::core::mem::size_of::<[u8; 4]>(),
    ::core::mem::size_of::<Response>(),
);
const _: () = ::xenmq::__private::check_size(
    "Response",
    16,
    ::core::mem::size_of::<Response>(),
);
const _: () = ::xenmq::__private::check_align(
    "Response",
    8,
    ::core::mem::align_of::<Response>(),
);
impl ::xenmq::wire::Field for Response {
    const TYPE_FINGERPRINT: u64 = <Self as ::xenmq::wire::Message>::FINGERPRINT;
}
impl ::xenmq::wire::Message for Response {
    const NAME: &'static str = "Response";
    const SIZE: usize = ::core::mem::size_of::<Self>();
    const ALIGN: usize = ::core::mem::align_of::<Self>();
    const FINGERPRINT: u64 = ::xenmq::wire::Fnv::new()
        .str("message")
        .str("Response")
        .str("id")
        .u64(<u64 as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
        .usize(::core::mem::offset_of!(Response, id))
        .usize(::core::mem::size_of::<u64>())
        .str("operation")
        .u64(<::xenmq::wire::Enum<Op> as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
        .usize(::core::mem::offset_of!(Response, operation))
        .usize(::core::mem::size_of::<::xenmq::wire::Enum<Op>>())
        .str("_pad0")
        .u64(<u8 as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
        .usize(::core::mem::offset_of!(Response, _pad0))
        .usize(::core::mem::size_of::<u8>())
        .str("status")
        .u64(<i16 as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
        .usize(::core::mem::offset_of!(Response, status))
        .usize(::core::mem::size_of::<i16>())
        .str("_pad1")
        .u64(<[u8; 4] as ::xenmq::wire::Field>::TYPE_FINGERPRINT)
        .usize(::core::mem::offset_of!(Response, _pad1))
        .usize(::core::mem::size_of::<[u8; 4]>())
        .usize(::core::mem::size_of::<Self>())
        .usize(::core::mem::align_of::<Self>())
        .finish();
}
