#[xenmq::message(size = 4)]
pub struct M {
    pub a: u32,
}

fn main() {}
