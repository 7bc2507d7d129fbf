#[derive(xenmq::XenstoreConfig)]
struct Cfg {
    event_channel: u32,
    #[xenstore(rename = "event-channel")]
    port: u32,
}

fn main() {}
