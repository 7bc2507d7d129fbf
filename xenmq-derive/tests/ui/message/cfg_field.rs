#[xenmq::message]
pub struct M {
    pub a: u32,
    #[cfg(target_pointer_width = "64")]
    pub b: u32,
}

fn main() {}
