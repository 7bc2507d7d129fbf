//! Rings in shared pages, byte-compatible with `xen/io/ring.h`.
