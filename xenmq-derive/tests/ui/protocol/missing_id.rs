// A message without a field `id` as a protocol's request or response:
// the error hints at `id = FIELD`.
#[xenmq::message]
pub struct Req {
    pub tag: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Req, response = Rsp)]
pub struct NoId;

#[xenmq::message]
pub struct Narrow {
    pub id: u32,
}

#[xenmq::protocol(name = "b", request = Narrow, response = Rsp)]
pub struct NarrowId;

fn main() {}
