//! `#[xenmq::message]`: a struct as a fixed wire layout, or a fieldless
//! enum as a wire enum. `parse` reads the `#[xenmq(...)]` helpers,
//! `layout` computes what it can of the layout, `valid` checks every rule
//! the syntax shows, `expand` emits the item, its checks and impls (or the
//! fallback after errors).

mod expand;
mod layout;
mod parse;
mod valid;

pub use expand::expand;
