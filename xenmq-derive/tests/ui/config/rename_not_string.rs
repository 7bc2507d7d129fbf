#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(rename = ring_ref)]
    value: u32,
}

fn main() {}
