#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(default = 9, max = 4)]
    order: u32,
    #[xenstore(default = -1, min = 0)]
    tilt: i32,
}

fn main() {}
