// A `#[xenmq::message]` enum is carried as `Enum<E>`, which checks the
// integer the peer sent: the error says to write `Enum<Op>`.
#[xenmq::message]
#[repr(u8)]
#[derive(Clone, Copy)]
pub enum Op {
    Read = 0,
    Write = 1,
}

#[xenmq::message]
pub struct Request {
    pub id: u64,
    pub op: Op,
    pub _pad: [u8; 7],
}

fn main() {}
