#[xenmq::message]
pub enum NoRepr {
    A,
}

#[xenmq::message]
#[repr(usize)]
pub enum Usize {
    A,
}

#[xenmq::message]
#[repr(u8, u16)]
pub enum Two {
    A,
}

#[xenmq::message]
#[repr(u8)]
pub enum Data {
    A(u8),
    B { x: u8 },
    C,
}

#[xenmq::message]
#[repr(u8)]
pub enum Empty {}

#[xenmq::message]
#[repr(u8)]
#[xenmq(size = 1)]
pub enum Sized {
    A,
}

#[xenmq::message]
#[repr(u8)]
pub enum Generic<T> {
    A,
    B(core::marker::PhantomData<T>),
}

fn main() {}
