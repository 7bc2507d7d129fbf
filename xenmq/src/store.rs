//! The Xenstore operations a driver needs, as a platform trait.
