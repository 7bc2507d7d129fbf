//! Wire types: fixed layouts checked against the C headers they port.
