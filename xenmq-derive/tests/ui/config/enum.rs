#[derive(xenmq::XenstoreConfig)]
enum State {
    Up,
    Down,
}

fn main() {}
