#[xenmq::message]
pub struct M(pub u32, pub u32);

fn main() {}
