// A type the macro cannot judge by its name: the compiler checks that it is
// a wire `Field`.
pub struct Plain {
    pub a: u32,
}

#[xenmq::message]
pub struct M {
    pub plain: Plain,
}

fn main() {}
