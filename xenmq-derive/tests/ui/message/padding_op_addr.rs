// The macro computes the layout of integer fields itself and names the
// field and the gap; zerocopy's own padding errors do not follow.
#[xenmq::message]
pub struct Request {
    pub id: u64,
    pub op: u32,
    pub addr: u64,
}

fn main() {}
