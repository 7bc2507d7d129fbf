#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(max = 4)]
    name: String,
}

fn main() {}
