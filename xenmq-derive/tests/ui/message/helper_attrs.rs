#[xenmq::message]
#[xenmq(size = 4, alignment = 4)]
#[xenmq(size = 4)]
pub struct M {
    #[xenmq(offset = "0")]
    pub a: u32,
    #[xenmq(size = 4)]
    pub b: u32,
    #[xenmq(offset = 4, offset = 4)]
    pub c: u32,
    #[xenmq(offset = -1)]
    pub d: u32,
    #[xenmq(offset)]
    pub e: u32,
}

fn main() {}
