#![no_implicit_prelude]

#[::xenmq::message]
pub struct Header {
    pub magic: ::xenmq::wire::be::U32,
    pub len: ::xenmq::wire::be::U16,
    pub flags: [u8; 2],
}

#[::xenmq::message]
#[xenmq(size = 16, align = 1)]
pub struct Packet {
    pub header: Header,
    #[xenmq(offset = 8)]
    pub body: [u8; 8],
}

fn main() {}
