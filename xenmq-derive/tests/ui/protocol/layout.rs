#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", request = Req, response = Rsp, layout = fast)]
pub struct Unknown;

#[xenmq::protocol(name = "b", request = Req, response = Rsp, layout = "native")]
pub struct Quoted;

#[xenmq::protocol(name = "c", request = Req, response = Rsp, layout = native)]
pub struct Native;

fn main() {
    use xenmq::driver::Protocol;
    use xenmq::ring::Rings;
    // A protocol that declares a layout gets it.
    let _: xenmq::ring::Kind = <<Native as Protocol>::Rings as Rings>::KIND;
}
