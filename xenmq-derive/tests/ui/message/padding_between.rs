#[xenmq::message]
pub struct Response {
    pub id: u64,
    pub operation: u8,
    pub status: i16,
    pub _pad: [u8; 4],
}

fn main() {}
