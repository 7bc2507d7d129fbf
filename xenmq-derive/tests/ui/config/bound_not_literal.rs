const MAX: u32 = 4;

#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(max = MAX)]
    order: u32,
    #[xenstore(min = "1")]
    other: u32,
}

fn main() {}
