#[repr(u8)]
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Read = 0,
    Write = 1,
    Discard = 5,
}
impl ::xenmq::wire::WireEnum for Op {
    type Repr = u8;
    const NAME: &'static str = "Op";
    fn to_raw(self) -> u8 {
        self as u8
    }
    fn from_raw(__raw: u8) -> ::core::option::Option<Self> {
        if __raw == Op::Read as u8 {
            return ::core::option::Option::Some(Op::Read);
        }
        if __raw == Op::Write as u8 {
            return ::core::option::Option::Some(Op::Write);
        }
        if __raw == Op::Discard as u8 {
            return ::core::option::Option::Some(Op::Discard);
        }
        ::core::option::Option::None
    }
}
impl ::xenmq::__private::FieldType for Op {
    type Verdict = ::xenmq::wire::Enum<Op>;
    type Type = ::xenmq::wire::Enum<Op>;
}
