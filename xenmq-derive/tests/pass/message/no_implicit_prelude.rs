#![no_implicit_prelude]
#![deny(warnings)]

#[::xenmq::message]
#[repr(u8)]
pub enum Op {
    Read = 0,
    Write = 1,
}

#[::xenmq::message]
#[xenmq(size = 8, align = 4)]
pub struct Segment {
    #[xenmq(offset = 0)]
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
    pub _pad: [u8; 2],
}

#[::xenmq::message]
#[xenmq(size = 32, align = 8)]
pub struct Request {
    pub op: ::xenmq::wire::Enum<Op>,
    pub r#type: i8,
    pub len: ::xenmq::wire::le::U16,
    pub _pad: [u8; 4],
    #[xenmq(offset = 8)]
    pub id: u64,
    pub seg: [Segment; 2],
}

fn main() {
    use ::xenmq::wire::Message;
    let _: usize = <Request as Message>::SIZE;
    let _: u64 = <Request as Message>::FINGERPRINT;
}
