#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(rename = "device/ring-ref")]
    a: u32,
    #[xenstore(rename = "")]
    b: u32,
    #[xenstore(rename = "ring ref")]
    c: u32,
}

fn main() {}
