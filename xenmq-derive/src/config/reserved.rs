//! The Xenstore keys the framework writes itself, which a config may not
//! use. The list is `xenmq::xenbus::key::RESERVED` (and
//! `RESERVED_PREFIXES`); this copy, with what each key is for, is tested
//! to be identical to it (`tests::same_as_xenmq`), so the two cannot drift.

/// Each reserved key and who writes it, in `xenmq::xenbus::key::RESERVED`'s order.
pub const RESERVED: &[(&str, &str)] = &[
    ("state", "the xenbus handshake writes (each end's state)"),
    (
        "ring-ref",
        "the xenbus handshake writes (a one-page ring's grant)",
    ),
    (
        "ring-page-order",
        "the xenbus handshake writes (a multi-page ring's order)",
    ),
    (
        "max-ring-page-order",
        "the xenbus handshake writes (the backend's largest ring)",
    ),
    (
        "event-channel",
        "the xenbus handshake writes (the frontend's event channel)",
    ),
    (
        "protocol",
        "the xenbus handshake writes (the frontend's ABI)",
    ),
    (
        "error",
        "the xenbus handshake writes (why the device failed)",
    ),
    (
        "xenmq-protocol",
        "the xenbus handshake writes (the protocol name)",
    ),
    (
        "xenmq-version",
        "the xenbus handshake writes (the protocol version)",
    ),
    (
        "xenmq-fingerprint",
        "the xenbus handshake writes (the messages' fingerprint)",
    ),
    (
        "xenmq-ring-layout",
        "the xenbus handshake writes (the ring layout)",
    ),
    (
        "xenmq-instance",
        "the xenbus handshake writes (the end's incarnation)",
    ),
    (
        "xenmq-backend-instance",
        "the xenbus handshake writes (the backend incarnation)",
    ),
    (
        "xenmq-frontend-instance",
        "the xenbus handshake writes (the frontend incarnation)",
    ),
    (
        "xenmq-pool-refs",
        "the frontend writes (the buffer pool's grants)",
    ),
    ("backend", "the toolstack writes (the backend's directory)"),
    ("backend-id", "the toolstack writes (the backend's domain)"),
    (
        "frontend",
        "the toolstack writes (the frontend's directory)",
    ),
    (
        "frontend-id",
        "the toolstack writes (the frontend's domain)",
    ),
    (
        "online",
        "the toolstack writes (whether the device is attached)",
    ),
];

/// Prefixes of reserved keys, in `xenmq::xenbus::key::RESERVED_PREFIXES`'s order.
pub const RESERVED_PREFIXES: &[(&str, &str)] = &[(
    "ring-ref",
    "the xenbus handshake writes (`ring-ref0`.. are a multi-page ring's grants)",
)];

/// Who writes `key`, if the framework owns it.
pub fn owner(key: &str) -> Option<&'static str> {
    RESERVED
        .iter()
        .find(|(k, _)| *k == key)
        .or_else(|| RESERVED_PREFIXES.iter().find(|(p, _)| key.starts_with(p)))
        .map(|(_, owner)| *owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_xenmq() {
        let ours: Vec<&str> = RESERVED.iter().map(|(k, _)| *k).collect();
        assert_eq!(ours, xenmq::xenbus::key::RESERVED);
        let ours: Vec<&str> = RESERVED_PREFIXES.iter().map(|(k, _)| *k).collect();
        assert_eq!(ours, xenmq::xenbus::key::RESERVED_PREFIXES);
    }

    #[test]
    fn owners() {
        assert!(owner("event-channel").is_some());
        assert!(owner("ring-ref3").is_some());
        assert!(owner("feature-persistent").is_none());
        assert!(owner("multi-queue-num-queues").is_none());
    }
}
