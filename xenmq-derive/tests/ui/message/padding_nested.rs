// Padding the macro cannot see (it depends on the nested message's
// alignment) is found by the constant checks.
#[xenmq::message]
pub struct Inner {
    pub a: u64,
}

#[xenmq::message]
pub struct Outer {
    pub tag: u32,
    pub inner: Inner,
}

fn main() {}
