#[derive(xenmq::XenstoreConfig)]
struct Refs(u32, u32);

fn main() {}
