#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(min = 5, max = 2)]
    order: u32,
}

fn main() {}
