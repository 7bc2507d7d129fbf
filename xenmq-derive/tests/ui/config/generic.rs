#[derive(xenmq::XenstoreConfig)]
struct Generic<T> {
    value: T,
}

fn main() {}
