//! Legacy ring entries ported with `#[xenmq::message]`, checked against
//! the genuine `xen/io/blkif.h` and `xen/io/netif.h` as the system's C
//! compiler lays them out (x86_64): every field's offset and size, every
//! struct's size and alignment, and sample entries written by C read back
//! through `Message::from_wire`.
//!
//! The ports live here until the blkif and netif drivers get their crates.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;
use std::sync::OnceLock;

use xenmq::wire::{Enum, Error, Message};
use xenmq_tests::cc;

/// `BLKIF_OP_*`: the operations of a block request.
#[xenmq::message]
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkifOp {
    Read = 0,
    Write = 1,
    WriteBarrier = 2,
    FlushDiskcache = 3,
    // 4 is BLKIF_OP_RESERVED_1: not a variant, so a peer sending it is an error.
    Discard = 5,
    Indirect = 6,
}

/// `struct blkif_request_segment`: C pads it to 8 bytes after `last_sect`.
#[xenmq::message]
#[xenmq(size = 8, align = 4)]
pub struct BlkifRequestSegment {
    #[xenmq(offset = 0)]
    pub gref: u32,
    #[xenmq(offset = 4)]
    pub first_sect: u8,
    #[xenmq(offset = 5)]
    pub last_sect: u8,
    pub _pad: [u8; 2],
}

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;

/// `struct blkif_request`: on x86_64 `id` is 8-aligned, so C leaves 4 bytes
/// after `handle` (on i386 it would not; this port is the x86_64 ABI).
#[xenmq::message]
#[xenmq(size = 112, align = 8)]
pub struct BlkifRequest {
    #[xenmq(offset = 0)]
    pub operation: Enum<BlkifOp>,
    #[xenmq(offset = 1)]
    pub nr_segments: u8,
    #[xenmq(offset = 2)]
    pub handle: u16,
    pub _pad: [u8; 4],
    #[xenmq(offset = 8)]
    pub id: u64,
    #[xenmq(offset = 16)]
    pub sector_number: u64,
    #[xenmq(offset = 24)]
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_response`: a byte of padding before `status`, four after.
#[xenmq::message]
#[xenmq(size = 16, align = 8)]
pub struct BlkifResponse {
    #[xenmq(offset = 0)]
    pub id: u64,
    #[xenmq(offset = 8)]
    pub operation: Enum<BlkifOp>,
    pub _pad0: u8,
    #[xenmq(offset = 10)]
    pub status: i16,
    pub _pad1: [u8; 4],
}

/// `struct netif_tx_request`.
#[xenmq::message]
#[xenmq(size = 12, align = 4)]
pub struct NetifTxRequest {
    #[xenmq(offset = 0)]
    pub gref: u32,
    #[xenmq(offset = 4)]
    pub offset: u16,
    #[xenmq(offset = 6)]
    pub flags: u16,
    #[xenmq(offset = 8)]
    pub id: u16,
    #[xenmq(offset = 10)]
    pub size: u16,
}

/// `struct netif_rx_response`.
#[xenmq::message]
#[xenmq(size = 8, align = 2)]
pub struct NetifRxResponse {
    #[xenmq(offset = 0)]
    pub id: u16,
    #[xenmq(offset = 2)]
    pub offset: u16,
    #[xenmq(offset = 4)]
    pub flags: u16,
    #[xenmq(offset = 6)]
    pub status: i16,
}

/// What the C program printed.
#[derive(Default)]
struct CLayout {
    layouts: Layouts,
    fields: Fields,
    /// struct -> the sample entry's bytes
    bytes: BTreeMap<String, Vec<u8>>,
}

/// The C program's output, built and run once for all tests (they run
/// in parallel threads and would otherwise race on the executable).
fn c_layout() -> &'static CLayout {
    static C: OnceLock<CLayout> = OnceLock::new();
    C.get_or_init(run_c)
}

fn run_c() -> CLayout {
    let exe = cc::build("layout_xen_io", &cc::c_dir().join("layout_xen_io.c"), &[]);
    let out = Command::new(&exe).output().expect("run layout_xen_io");
    assert!(out.status.success(), "layout_xen_io failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let mut c = CLayout::default();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.parse::<usize>().unwrap_or_else(|e| panic!("{line}: {e}"));
        match w.as_slice() {
            ["layout", s, "sizeof", n, "alignof", a] => {
                c.layouts.insert((*s).to_owned(), (num(n), num(a)));
            }
            ["field", s, f, off, size] => {
                c.fields
                    .insert(((*s).to_owned(), (*f).to_owned()), (num(off), num(size)));
            }
            ["bytes", s, hex] => {
                let b = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                c.bytes.insert((*s).to_owned(), b);
            }
            _ => panic!("unexpected line from layout_xen_io: {line}"),
        }
    }
    c
}

/// Size of a field's type, from a projection closure.
fn size_of_field<S, F>(_: impl Fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// `(c struct, c field, rust offset, rust size)` for each named field.
macro_rules! rust_fields {
    ($c:literal => $t:ty { $($f:ident),* $(,)? }) => {
        [$(
            (
                $c,
                stringify!($f),
                offset_of!($t, $f),
                size_of_field(|s: &$t| &s.$f),
            ),
        )*]
    };
}

/// struct -> (size, align)
type Layouts = BTreeMap<String, (usize, usize)>;
/// (struct, field) -> (offset, size)
type Fields = BTreeMap<(String, String), (usize, usize)>;

fn rust_layout() -> (Layouts, Fields) {
    let layouts = [
        (
            "blkif_request_segment",
            size_of::<BlkifRequestSegment>(),
            align_of::<BlkifRequestSegment>(),
        ),
        (
            "blkif_request",
            size_of::<BlkifRequest>(),
            align_of::<BlkifRequest>(),
        ),
        (
            "blkif_response",
            size_of::<BlkifResponse>(),
            align_of::<BlkifResponse>(),
        ),
        (
            "netif_tx_request",
            size_of::<NetifTxRequest>(),
            align_of::<NetifTxRequest>(),
        ),
        (
            "netif_rx_response",
            size_of::<NetifRxResponse>(),
            align_of::<NetifRxResponse>(),
        ),
    ];
    let mut fields = Vec::new();
    fields.extend(
        rust_fields!("blkif_request_segment" => BlkifRequestSegment {
            gref, first_sect, last_sect
        }),
    );
    fields.extend(rust_fields!("blkif_request" => BlkifRequest {
        operation, nr_segments, handle, id, sector_number, seg
    }));
    fields.extend(rust_fields!("blkif_response" => BlkifResponse { id, operation, status }));
    fields.extend(rust_fields!("netif_tx_request" => NetifTxRequest {
        gref, offset, flags, id, size
    }));
    fields.extend(rust_fields!("netif_rx_response" => NetifRxResponse {
        id, offset, flags, status
    }));
    (
        layouts
            .into_iter()
            .map(|(s, size, align)| (s.to_owned(), (size, align)))
            .collect(),
        fields
            .into_iter()
            .map(|(s, f, off, size)| ((s.to_owned(), f.to_owned()), (off, size)))
            .collect(),
    )
}

#[test]
fn ports_match_the_c_headers_field_by_field() {
    let c = c_layout();
    let (layouts, fields) = rust_layout();
    // The same structs and the same fields on both sides, none forgotten.
    assert_eq!(
        c.layouts.keys().collect::<BTreeSet<_>>(),
        layouts.keys().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        c.fields.keys().collect::<BTreeSet<_>>(),
        fields.keys().collect::<BTreeSet<_>>()
    );
    for (name, c_layout) in &c.layouts {
        assert_eq!(
            layouts[name], *c_layout,
            "{name}: (size, align) in Rust vs C"
        );
    }
    for (key, c_field) in &c.fields {
        assert_eq!(
            fields[key], *c_field,
            "{}.{}: (offset, size) in Rust vs C",
            key.0, key.1
        );
    }
}

#[test]
fn message_constants_agree_with_c() {
    let c = c_layout();
    let check = |name: &str, size: usize, align: usize| {
        assert_eq!(c.layouts[name], (size, align), "{name}");
    };
    check("blkif_request", BlkifRequest::SIZE, BlkifRequest::ALIGN);
    check("blkif_response", BlkifResponse::SIZE, BlkifResponse::ALIGN);
    check(
        "netif_tx_request",
        NetifTxRequest::SIZE,
        NetifTxRequest::ALIGN,
    );
    check(
        "netif_rx_response",
        NetifRxResponse::SIZE,
        NetifRxResponse::ALIGN,
    );
    check(
        "blkif_request_segment",
        BlkifRequestSegment::SIZE,
        BlkifRequestSegment::ALIGN,
    );
}

#[test]
fn entries_written_by_c_read_back_in_rust() {
    let c = c_layout();

    let req = BlkifRequest::from_wire(&c.bytes["blkif_request"]).unwrap();
    assert_eq!(req.operation.get(), Ok(BlkifOp::Write));
    assert_eq!(req.nr_segments, 2);
    assert_eq!(req.handle, 0x1234);
    assert_eq!(req.id, 0x0102_0304_0506_0708);
    assert_eq!(req.sector_number, 0x1122_3344_5566_7788);
    assert_eq!(
        (req.seg[0].gref, req.seg[0].first_sect, req.seg[0].last_sect),
        (42, 0, 7)
    );
    assert_eq!(
        (
            req.seg[10].gref,
            req.seg[10].first_sect,
            req.seg[10].last_sect
        ),
        (0xdead_beef, 3, 5)
    );
    // And back: the same bytes as C wrote (C zeroed its padding too).
    assert_eq!(req.wire_bytes(), &c.bytes["blkif_request"][..]);

    let rsp = BlkifResponse::from_wire(&c.bytes["blkif_response"]).unwrap();
    assert_eq!(rsp.id, 0x0102_0304_0506_0708);
    assert_eq!(rsp.operation.get(), Ok(BlkifOp::FlushDiskcache));
    assert_eq!(rsp.status, -2); // BLKIF_RSP_EOPNOTSUPP

    let tx = NetifTxRequest::from_wire(&c.bytes["netif_tx_request"]).unwrap();
    assert_eq!(
        (tx.gref, tx.offset, tx.flags, tx.id, tx.size),
        (0xabcd_ef01, 100, 0b101, 77, 1514) // NETTXF_csum_blank | NETTXF_more_data
    );

    let rx = NetifRxResponse::from_wire(&c.bytes["netif_rx_response"]).unwrap();
    assert_eq!((rx.id, rx.offset, rx.flags, rx.status), (9, 14, 1, -1)); // NETRXF_data_validated
}

#[test]
fn a_reserved_operation_from_the_peer_is_an_error() {
    let c = c_layout();
    let mut bytes = c.bytes["blkif_request"].clone();
    for (raw, expected) in [
        (4u8, None),
        (7, None),
        (255, None),
        (6, Some(BlkifOp::Indirect)),
    ] {
        bytes[0] = raw;
        let req = BlkifRequest::from_wire(&bytes).unwrap();
        match expected {
            Some(op) => assert_eq!(req.operation.get(), Ok(op)),
            None => assert_eq!(
                req.operation.get(),
                Err(Error::UnknownVariant {
                    name: "BlkifOp",
                    value: i128::from(raw)
                })
            ),
        }
    }
    assert_eq!(
        BlkifRequest::from_wire(&bytes[..111]).map(|_| ()),
        Err(Error::Length {
            name: "BlkifRequest",
            expected: 112,
            actual: 111
        })
    );
}

#[test]
fn fingerprints_tell_the_ports_apart() {
    let fps = [
        BlkifRequest::FINGERPRINT,
        BlkifResponse::FINGERPRINT,
        NetifTxRequest::FINGERPRINT,
        NetifRxResponse::FINGERPRINT,
        BlkifRequestSegment::FINGERPRINT,
    ];
    let unique: BTreeSet<u64> = fps.iter().copied().collect();
    assert_eq!(unique.len(), fps.len());
}
