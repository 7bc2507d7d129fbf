// Every rejected field type, in one struct: all errors are reported at once.
#[xenmq::message]
pub struct M {
    pub reference: &'static u32,
    pub pointer: *const u8,
    pub slice: [u8],
    pub tuple: (u8, u8),
    pub unit: (),
    pub function: fn(),
    pub object: dyn Send,
    pub never: !,
    pub size: usize,
    pub offset: isize,
    pub flag: bool,
    pub letter: char,
    pub single: f32,
    pub double: f64,
    pub text: String,
    pub bytes: Vec<u8>,
    pub boxed: Box<u32>,
    pub maybe: Option<u32>,
    pub name: [str; 1],
    pub nested: [[usize; 2]; 2],
    pub wrapped: Option<&'static u8>,
    pub inferred: _,
    pub shared: std::sync::Arc<[u8; 4]>,
}

fn main() {}
