#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(default = Some(3))]
    order: Option<u32>,
}

fn main() {}
