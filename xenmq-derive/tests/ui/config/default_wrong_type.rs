#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(default = "four")]
    order: u32,
}

fn main() {}
