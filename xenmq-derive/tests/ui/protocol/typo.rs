// A misspelt argument is one error with a suggestion, a value of the
// wrong kind one error on the value: neither makes `request` or
// `response` look missing.
#[xenmq::message]
pub struct Req {
    pub id: u64,
}

#[xenmq::message]
pub struct Rsp {
    pub id: u64,
}

#[xenmq::protocol(name = "a", reqest = Req, response = Rsp)]
pub struct Misspelt;

#[xenmq::protocol(name = "b", version = "1", request = Req, response = Rsp)]
pub struct Quoted;

#[xenmq::protocol(name = "c", request = "Req", respone = Rsp, ring_pages = two)]
pub struct Several;

fn main() {
    // The stub impl keeps uses of the protocols quiet (`Several` names no
    // message the stub could use, so it has none).
    use xenmq::driver::Protocol;
    let _ = (Misspelt::NAME, Quoted::NAME);
}
