#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Req, response = Rsp, ring_pages = 3)]
pub struct Three;

#[xenmq::protocol(name = "b", request = Req, response = Rsp, ring_pages = 32)]
pub struct TooMany;

#[xenmq::protocol(name = "c", request = Req, response = Rsp, ring_pages = 4, max_ring_pages = 2)]
pub struct Below;

#[xenmq::protocol(name = "d", request = Req, response = Rsp, pool_pages = 257)]
pub struct BigPool;

#[xenmq::protocol(name = "e", request = Req, response = Rsp, version = 4294967296)]
pub struct BigVersion;

fn main() {}
