#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(rename = "a", rename = "b")]
    value: u32,
    #[xenstore(max = 1)]
    #[xenstore(max = 2)]
    other: u32,
}

fn main() {}
