#[xenmq::message]
pub union U {
    pub a: u32,
    pub b: [u8; 4],
}

fn main() {}
