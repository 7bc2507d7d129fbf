//! The keys each end publishes for the other, as configs.

use alloc::string::String;

use super::config::{Fingerprint, RingRefs};
use crate::XenstoreConfig;

/// The protocol identity, read first so that a peer speaking another
/// protocol is told so, rather than about its first unexpected key.
#[derive(XenstoreConfig)]
pub(crate) struct IdentityKeys {
    pub xenmq_protocol: String,
    pub xenmq_version: u32,
    pub xenmq_fingerprint: Fingerprint,
    /// Missing means `ring.h`: the only layout before the key existed.
    pub xenmq_ring_layout: Option<String>,
}

/// What a backend publishes with InitWait (besides the driver's features).
#[derive(XenstoreConfig)]
pub(crate) struct BackendKeys {
    /// Missing means single-page rings only, as in Xen.
    #[xenstore(default = 0)]
    pub max_ring_page_order: u32,
    pub xenmq_instance: u64,
}

/// What a frontend publishes with Initialised (besides the driver's features).
#[derive(XenstoreConfig)]
pub(crate) struct FrontendKeys {
    #[xenstore(rename = "ring-ref")]
    pub ring: RingRefs,
    pub event_channel: u32,
    pub protocol: Option<String>,
    pub xenmq_instance: u64,
    pub xenmq_backend_instance: u64,
}

/// What a backend commits with Connected: the frontend incarnation whose
/// ring it mapped.
#[derive(XenstoreConfig)]
pub(crate) struct ConnectedKeys {
    pub xenmq_frontend_instance: u64,
}

/// The backend incarnation a frontend's keys were published for, read
/// before anything else: keys published for a predecessor are ignored.
#[derive(XenstoreConfig)]
pub(crate) struct EchoKeys {
    pub xenmq_backend_instance: u64,
}
