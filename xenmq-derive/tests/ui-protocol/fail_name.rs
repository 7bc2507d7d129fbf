#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "Echo!", request = Req, response = Rsp)]
pub struct BadName;

#[xenmq::protocol(name = "", request = Req, response = Rsp)]
pub struct Empty;

fn main() {}
