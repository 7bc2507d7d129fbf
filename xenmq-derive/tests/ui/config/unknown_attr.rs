#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(optional)]
    value: u32,
}

fn main() {}
