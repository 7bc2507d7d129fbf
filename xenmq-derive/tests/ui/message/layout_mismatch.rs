#[xenmq::message]
#[xenmq(size = 12, align = 4)]
pub struct Request {
    pub operation: u8,
    pub nr_segments: u8,
    pub handle: u16,
    pub _pad: [u8; 4],
    #[xenmq(offset = 4)]
    pub id: u64,
}

fn main() {}
