// Padding that depends on the target (a u64 is 4-aligned on i386 and
// 8-aligned on x86_64) is found by the constant checks on the real target.
#[xenmq::message]
pub struct M {
    pub a: u32,
    pub b: u64,
}

fn main() {}
