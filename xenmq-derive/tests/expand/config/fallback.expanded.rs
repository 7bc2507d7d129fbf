::core::compile_error! {
    "invalid Xenstore key `a/b`: a key is 1 to 128 characters from `A-Z`, `a-z`, `0-9`, `-` and `_`"
}
::core::compile_error! {
    "`min = 3` is greater than `max = 1`"
}
::core::compile_error! {
    "field `state` uses the Xenstore key `state`, which the xenbus handshake writes (each end's state): a config may not use the framework's keys; rename it (`#[xenstore(rename = \"...\")]`), or mark a field that reads the framework's key on purpose `#[xenstore(reserved)]`"
}
impl ::xenmq::xenbus::config::Config for Bad {
    fn keys(_: &mut ::xenmq::__private::Vec<::xenmq::__private::String>) {}
    fn read(
        _: &::core::primitive::str,
        _: &mut dyn ::core::ops::FnMut(
            &::core::primitive::str,
        ) -> ::core::option::Option<::xenmq::__private::String>,
    ) -> ::core::result::Result<Self, ::xenmq::xenbus::config::Error> {
        ::core::unreachable!()
    }
    fn write(
        &self,
        _: &mut dyn ::core::ops::FnMut(
            &::core::primitive::str,
            ::xenmq::__private::String,
        ),
    ) {}
}
