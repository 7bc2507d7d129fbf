impl ::xenmq::__private::Checked<0> for Response
where
    u64: ::xenmq::__private::FieldType,
    <u64 as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict,
{}
impl ::xenmq::__private::Checked<1> for Response
where
    ::xenmq::wire::Enum<Op>: ::xenmq::__private::FieldType,
    <::xenmq::wire::Enum<
        Op,
    > as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict,
{}
impl ::xenmq::__private::Checked<2> for Response
where
    u8: ::xenmq::__private::FieldType,
    <u8 as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict,
{}
impl ::xenmq::__private::Checked<3> for Response
where
    i16: ::xenmq::__private::FieldType,
    <i16 as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict,
{}
impl ::xenmq::__private::Checked<4> for Response
where
    [u8; 4]: ::xenmq::__private::FieldType,
    <[u8; 4] as ::xenmq::__private::FieldType>::Verdict: ::xenmq::__private::Verdict,
{}
impl ::xenmq::__private::Checked<5> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_gap(
                "id",
                ::core::mem::offset_of!(Response, id) + ::core::mem::size_of::<u64>(),
                "operation",
                ::core::mem::align_of::<::xenmq::wire::Enum<Op>>(),
                ::core::mem::offset_of!(Response, operation),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<6> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_gap(
                "operation",
                ::core::mem::offset_of!(Response, operation)
                    + ::core::mem::size_of::<::xenmq::wire::Enum<Op>>(),
                "_pad0",
                ::core::mem::align_of::<u8>(),
                ::core::mem::offset_of!(Response, _pad0),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<7> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_gap(
                "_pad0",
                ::core::mem::offset_of!(Response, _pad0) + ::core::mem::size_of::<u8>(),
                "status",
                ::core::mem::align_of::<i16>(),
                ::core::mem::offset_of!(Response, status),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<8> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_offset(
                "status",
                10,
                ::core::mem::offset_of!(Response, status),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<9> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_gap(
                "status",
                ::core::mem::offset_of!(Response, status)
                    + ::core::mem::size_of::<i16>(),
                "_pad1",
                ::core::mem::align_of::<[u8; 4]>(),
                ::core::mem::offset_of!(Response, _pad1),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<10> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_tail(
                "Response",
                "_pad1",
                ::core::mem::offset_of!(Response, _pad1)
                    + ::core::mem::size_of::<[u8; 4]>(),
                ::core::mem::size_of::<Response>(),
                ::core::mem::align_of::<Response>(),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<11> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_size(
                "Response",
                16,
                ::core::mem::size_of::<Response>(),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
impl ::xenmq::__private::Checked<12> for Response
where
    ::xenmq::__private::Check<
        {
            ::xenmq::__private::check_align(
                "Response",
                8,
                ::core::mem::align_of::<Response>(),
            );
            0
        },
    >: ::xenmq::__private::Passed,
{}
#[cfg(not(doc))]
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
    pub operation: <::xenmq::wire::Enum<Op> as ::xenmq::__private::FieldType>::Type,
    pub _pad0: u8,
    pub status: i16,
    pub _pad1: [u8; 4],
}
#[cfg(doc)]
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
        .u64(
            <<::xenmq::wire::Enum<
                Op,
            > as ::xenmq::__private::FieldType>::Type as ::xenmq::wire::Field>::TYPE_FINGERPRINT,
        )
        .usize(::core::mem::offset_of!(Response, operation))
        .usize(
            ::core::mem::size_of::<
                <::xenmq::wire::Enum<Op> as ::xenmq::__private::FieldType>::Type,
            >(),
        )
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
impl ::xenmq::__private::IdField for Response {
    type Id = u64;
    #[inline]
    fn id(&self) -> &u64 {
        &self.id
    }
    #[inline]
    fn id_mut(&mut self) -> &mut u64 {
        &mut self.id
    }
}
