#[derive(xenmq::XenstoreConfig)]
#[xenstore(rename = "vkv")]
struct Cfg {
    order: u32,
}

fn main() {}
