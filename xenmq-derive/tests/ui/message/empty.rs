#[xenmq::message]
pub struct Named {}

#[xenmq::message]
pub struct Unit;

fn main() {}
