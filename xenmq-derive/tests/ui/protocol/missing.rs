#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(request = Req, response = Rsp)]
pub struct Anon;

#[xenmq::protocol(name = "echo")]
pub struct NoMessages;

fn main() {}
