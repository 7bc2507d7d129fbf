//! The keys each end publishes for the other, as configs.

use alloc::string::String;

use super::config::{Fingerprint, RingRefs};
use crate::XenstoreConfig;

/// The protocol identity, read first so that a peer speaking another
/// protocol is told so, rather than about its first unexpected key.
#[derive(XenstoreConfig)]
pub(crate) struct IdentityKeys {
    #[xenstore(reserved)]
    pub xenmq_protocol: String,
    #[xenstore(reserved)]
    pub xenmq_version: u32,
    #[xenstore(reserved)]
    pub xenmq_fingerprint: Fingerprint,
    /// Missing means `ring.h`: the only layout before the key existed.
    #[xenstore(reserved)]
    pub xenmq_ring_layout: Option<String>,
}

/// What a backend publishes with InitWait (besides the driver's features).
#[derive(XenstoreConfig)]
pub(crate) struct BackendKeys {
    /// Missing means single-page rings only, as in Xen.
    #[xenstore(default = 0)]
    #[xenstore(reserved)]
    pub max_ring_page_order: u32,
    #[xenstore(reserved)]
    pub xenmq_instance: u64,
}

/// What a frontend publishes with Initialised (besides the driver's features).
#[derive(XenstoreConfig)]
pub(crate) struct FrontendKeys {
    #[xenstore(rename = "ring-ref")]
    #[xenstore(reserved)]
    pub ring: RingRefs,
    #[xenstore(reserved)]
    pub event_channel: u32,
    #[xenstore(reserved)]
    pub protocol: Option<String>,
    #[xenstore(reserved)]
    pub xenmq_instance: u64,
    #[xenstore(reserved)]
    pub xenmq_backend_instance: u64,
}

/// What a backend commits with Connected: the frontend incarnation whose
/// ring it mapped.
#[derive(XenstoreConfig)]
pub(crate) struct ConnectedKeys {
    #[xenstore(reserved)]
    pub xenmq_frontend_instance: u64,
}

/// The backend incarnation a frontend's keys were published for, read
/// before anything else: keys published for a predecessor are ignored.
#[derive(XenstoreConfig)]
pub(crate) struct EchoKeys {
    #[xenstore(reserved)]
    pub xenmq_backend_instance: u64,
}
