#[xenmq::message]
pub struct M<T> {
    pub a: T,
}

fn main() {}
