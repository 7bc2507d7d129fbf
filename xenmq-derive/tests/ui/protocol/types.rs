#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

pub struct Plain {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Plain, response = Rsp)]
pub struct NotAMessage;

#[xenmq::message]
pub struct NoId {
    pub tag: u64,
}

#[xenmq::protocol(name = "b", request = Req, response = NoId)]
pub struct MissingId;

fn main() {}
