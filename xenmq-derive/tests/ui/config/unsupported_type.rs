#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    blob: Vec<u8>,
}

fn main() {}
