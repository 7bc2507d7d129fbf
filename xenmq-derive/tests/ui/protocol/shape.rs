#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Req, response = Rsp)]
pub struct Fields {
    x: u32,
}

#[xenmq::protocol(name = "b", request = Req, response = Rsp)]
pub struct Generic<T>(T);

#[xenmq::protocol(name = "c", request = Req, response = Rsp)]
pub enum NotAStruct {}

fn main() {}
