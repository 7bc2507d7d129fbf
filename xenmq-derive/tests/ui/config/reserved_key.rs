// Keys the framework writes itself (the handshake's, the buffer pool's,
// the toolstack's) cannot be a config's: each collision is one error
// naming the key and the field, renamed keys included.
#[derive(xenmq::XenstoreConfig)]
struct Features {
    event_channel: u32,
    #[xenstore(rename = "state")]
    mode: u32,
    #[xenstore(rename = "ring-ref2")]
    extra: u32,
    xenmq_pool_refs: Option<String>,
    online: bool,
    ring: xenmq::xenbus::RingRefs,
    // A struct that reads the framework's keys on purpose says so.
    #[xenstore(reserved)]
    protocol: Option<String>,
    feature_persistent: bool,
}

fn main() {}
