#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Req, response = Rsp, colour = 3)]
pub struct Unknown;

#[xenmq::protocol(name = "b", name = "c", request = Req, response = Rsp)]
pub struct Twice;

fn main() {}
