#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore]
    order: u32,
}

fn main() {}
