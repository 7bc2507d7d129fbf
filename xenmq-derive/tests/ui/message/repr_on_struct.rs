#[xenmq::message]
#[repr(C, align(8))]
pub struct M {
    pub a: u32,
}

fn main() {}
