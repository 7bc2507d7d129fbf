//! What the parser makes of a header: the items a port emits, in order.

/// A comment as written (delimiters removed) and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub line: usize,
    pub text: String,
}

/// An integer type as C spells it and the Rust type it ports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int {
    pub c: &'static str,
    pub rust: &'static str,
}

/// A member's or typedef's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CType {
    Int(Int),
    /// A type alias of this header (`#define blkif_vdev_t uint16_t`,
    /// `typedef uint16_t x_t;`), by index into [`Header::aliases`].
    Alias(usize),
    /// A struct or union of this header, by index into [`Header::records`].
    Record(usize),
    /// An enum of this header, by index into [`Header::enums`].
    Enum(usize),
}

/// One array dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// `[expr]`, the expression as written (gcc gives the count).
    Fixed(String),
    /// `[]`: a flexible array member.
    Flexible,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ty: CType,
    pub dims: Vec<Dim>,
    pub line: usize,
    pub docs: Vec<Doc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Struct,
    Union,
}

impl Kind {
    pub fn c(self) -> &'static str {
        match self {
            Kind::Struct => "struct",
            Kind::Union => "union",
        }
    }
}

/// A struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    /// The C tag, if it has one.
    pub tag: Option<String>,
    /// For an anonymous record: the record and member it is the type of.
    pub parent: Option<(usize, String)>,
    /// Typedef names of it.
    pub typedefs: Vec<String>,
    pub members: Vec<Member>,
    pub line: usize,
    pub docs: Vec<Doc>,
    /// What the port left out of it (conditional members), as doc lines.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumerator {
    pub name: String,
    pub line: usize,
    pub docs: Vec<Doc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumDef {
    pub tag: Option<String>,
    pub typedefs: Vec<String>,
    pub variants: Vec<Enumerator>,
    pub line: usize,
    pub docs: Vec<Doc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub ty: Int,
    pub line: usize,
    pub docs: Vec<Doc>,
    /// `#define` rather than `typedef`.
    pub define: bool,
}

/// `#define NAME expr` with an integer constant expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Const {
    pub name: String,
    /// The expression as written.
    pub expr: String,
    pub line: usize,
    pub docs: Vec<Doc>,
    /// Defined inside a struct, right after this member's type: the
    /// constant takes it if its value fits.
    pub field: Option<CType>,
}

/// `#define NAME "text"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrConst {
    pub name: String,
    pub value: String,
    pub line: usize,
    pub docs: Vec<Doc>,
}

/// `DEFINE_RING_TYPES(name, req, rsp)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub name: String,
    pub request: usize,
    pub response: usize,
    pub line: usize,
    pub docs: Vec<Doc>,
}

/// An item to emit, in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Const(Const),
    Str(StrConst),
    Alias(usize),
    Record(usize),
    Enum(usize),
    Ring(Ring),
}

/// A parsed header.
#[derive(Debug, Default)]
pub struct Header {
    /// The comments before the first declaration.
    pub file_docs: Vec<Doc>,
    /// Comments attached to nothing, in order.
    pub free_docs: Vec<Doc>,
    /// What was left out, with its line, as doc lines.
    pub notes: Vec<(usize, String)>,
    pub items: Vec<Item>,
    pub records: Vec<Record>,
    pub enums: Vec<EnumDef>,
    pub aliases: Vec<Alias>,
    /// The Xenstore nodes the header's comments document.
    pub nodes: Vec<Node>,
}

/// A Xenstore node a comment documents in Xen's format: its name alone on
/// a line, then a `Values:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub line: usize,
    /// `backend` or `frontend`, from the section heading above it.
    pub side: Option<&'static str>,
}
