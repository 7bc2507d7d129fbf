// Derives may come before or after the macro; `#[xenmq(...)]` helpers come
// after it (see ui/message/helper_before_macro.rs).
#![no_implicit_prelude]

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[::xenmq::message]
#[xenmq(size = 4)]
#[derive(Hash)]
#[xenmq(align = 2)]
pub struct Pair {
    pub a: u16,
    #[xenmq(offset = 2)]
    pub b: u16,
}

fn main() {
    let p = Pair { a: 1, b: 2 };
    let q = p;
    ::std::assert_eq!(p, q);
    ::std::assert_eq!(<Pair as ::xenmq::wire::Message>::ALIGN, 2);
}
