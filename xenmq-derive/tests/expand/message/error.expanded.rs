::core::compile_error! {
    "`bool` cannot be in a message: the peer may send any byte and only 0 and 1 are valid; use `u8` and compare it"
}
::core::compile_error! {
    "slices have no fixed size and cannot be in a message: use an array `[T; N]`"
}
pub struct Bad {
    pub flag: bool,
    pub slice: (),
    pub a: u32,
}
