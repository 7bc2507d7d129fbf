//! Glue for running the `no_std` core inside a Linux kernel module.
