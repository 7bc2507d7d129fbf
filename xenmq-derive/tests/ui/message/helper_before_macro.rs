// `#[xenmq(...)]` only exists inside `#[xenmq::message]`: written above it,
// the compiler sees it before the macro runs and does not know it.
#[xenmq(size = 4)]
#[xenmq::message]
pub struct M {
    pub a: u32,
}

fn main() {}
