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

#[xenmq::protocol(name = "a-device-type-name-that-is-longer-than-sixty-four-characters-long", request = Req, response = Rsp)]
pub struct TooLong;

// Xen's own types may start with a digit (`9pfs`): accepted.
#[xenmq::protocol(name = "9pfs", request = Req, response = Rsp)]
pub struct NinePfs;

fn main() {}
