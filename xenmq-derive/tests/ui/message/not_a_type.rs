#[xenmq::message]
pub fn f() {}

fn main() {}
