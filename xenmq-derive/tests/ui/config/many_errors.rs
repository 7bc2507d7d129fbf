// Every error of an item is reported at once.
#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    #[xenstore(rename = "a b")]
    one: u32,
    #[xenstore(min = 3, max = 1)]
    two: u32,
    #[xenstore(colour = "red")]
    three: u32,
}

fn main() {}
