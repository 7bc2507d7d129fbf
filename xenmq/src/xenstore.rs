//! The Xenstore wire protocol (`xen/io/xs_wire.h`), platform-free.
