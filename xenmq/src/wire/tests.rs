//! Unit tests: checked enum read-back, message copy-out and fingerprints.

use super::{le, Enum, Error, Field, Fnv, Message, WireEnum};

#[crate::message]
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read = 0,
    Write = 1,
    Flush = 0x1234,
}

#[crate::message]
#[repr(i8)]
#[derive(Debug, PartialEq, Eq)]
enum Status {
    Error = -1,
    Okay = 0,
}

#[crate::message]
#[xenmq(size = 16, align = 8)]
struct Req {
    op: Enum<Op>,
    status: Enum<Status>,
    _pad: [u8; 5],
    #[xenmq(offset = 8)]
    id: u64,
}

#[test]
fn enum_round_trips_every_variant() {
    for op in [Op::Read, Op::Write, Op::Flush] {
        let e = Enum::new(op);
        assert_eq!(e.get(), Ok(op));
        assert_eq!(Op::from_raw(e.raw()), Some(op));
    }
    assert_eq!(Enum::new(Op::Flush).raw(), 0x1234);
    assert_eq!(Enum::<Status>::from_raw(-1).get(), Ok(Status::Error));
}

#[test]
fn enum_rejects_values_that_are_no_variant() {
    for raw in [2u16, 3, 0x1233, 0x1235, u16::MAX] {
        assert_eq!(
            Enum::<Op>::from_raw(raw).get(),
            Err(Error::UnknownVariant {
                name: "Op",
                value: i128::from(raw)
            })
        );
    }
    let err = Enum::<Status>::from_raw(-128).get().unwrap_err();
    assert_eq!(
        err,
        Error::UnknownVariant {
            name: "Status",
            value: -128
        }
    );
}

#[test]
fn peer_bytes_with_a_bad_enum_are_an_error_not_ub() {
    // Bytes as a hostile peer could write them: op = 7 (no variant).
    let mut bytes = [0u8; 16];
    bytes[0..2].copy_from_slice(&7u16.to_ne_bytes());
    bytes[2] = 0;
    bytes[8..16].copy_from_slice(&99u64.to_ne_bytes());
    let req = Req::from_wire(&bytes).unwrap();
    assert_eq!(req.id, 99);
    assert_eq!(req.status.get(), Ok(Status::Okay));
    assert!(matches!(
        req.op.get(),
        Err(Error::UnknownVariant {
            name: "Op",
            value: 7
        })
    ));
    assert_eq!(req.wire_bytes(), &bytes[..]);
}

#[test]
fn from_wire_checks_the_length() {
    assert_eq!(
        Req::from_wire(&[0u8; 15]).map(|_| ()),
        Err(Error::Length {
            name: "Req",
            expected: 16,
            actual: 15
        })
    );
    assert!(Req::from_wire(&[0u8; 17]).is_err());
}

#[test]
fn message_constants() {
    assert_eq!(Req::NAME, "Req");
    assert_eq!(Req::SIZE, 16);
    assert_eq!(Req::ALIGN, 8);
    assert_eq!(<Req as Field>::TYPE_FINGERPRINT, Req::FINGERPRINT);
}

// Fingerprints: four variations of one message, each differing in one thing.
mod base {
    #[crate::message]
    pub struct Msg {
        pub a: u32,
        pub b: u32,
    }
}
mod renamed_field {
    #[crate::message]
    pub struct Msg {
        pub a: u32,
        pub c: u32,
    }
}
mod retyped_field {
    #[crate::message]
    pub struct Msg {
        pub a: u32,
        pub b: crate::wire::le::U32,
    }
}
mod moved_field {
    #[crate::message]
    pub struct Msg {
        pub a: u32,
        pub _pad: u32,
        pub b: u32,
    }
}
mod renamed_struct {
    #[crate::message]
    pub struct Other {
        pub a: u32,
        pub b: u32,
    }
}
mod nested_a {
    #[crate::message]
    pub struct Outer {
        pub inner: super::base::Msg,
    }
}
mod nested_b {
    #[crate::message]
    pub struct Outer {
        pub inner: super::renamed_field::Msg,
    }
}

#[test]
fn fingerprint_is_stable() {
    // A fixed value: the hash must not change between builds, hosts or
    // runs, or peers built at different times would not agree. If this
    // changes, the fingerprint scheme changed: that is a protocol break.
    // The value was computed outside Rust, by an independent FNV-1a of the
    // documented sequence: "message", "Msg", then per field name,
    // fnv("u32"), offset, size, then size 8 and align 4.
    assert_eq!(base::Msg::FINGERPRINT, 0x533b_21e7_488b_6bc4);
    let by_hand = {
        let u32_fp = Fnv::new().str("u32").finish();
        Fnv::new()
            .str("message")
            .str("Msg")
            .str("a")
            .u64(u32_fp)
            .usize(0)
            .usize(4)
            .str("b")
            .u64(u32_fp)
            .usize(4)
            .usize(4)
            .usize(8)
            .usize(4)
            .finish()
    };
    assert_eq!(base::Msg::FINGERPRINT, by_hand);
}

#[test]
fn fingerprint_changes_with_the_layout() {
    let fps = [
        base::Msg::FINGERPRINT,
        renamed_field::Msg::FINGERPRINT,
        retyped_field::Msg::FINGERPRINT,
        moved_field::Msg::FINGERPRINT,
        renamed_struct::Other::FINGERPRINT,
    ];
    for (i, a) in fps.iter().enumerate() {
        for b in &fps[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_ne!(nested_a::Outer::FINGERPRINT, nested_b::Outer::FINGERPRINT);
    assert_ne!(nested_a::Outer::FINGERPRINT, base::Msg::FINGERPRINT);
}

#[test]
fn fingerprint_of_arrays_and_enums() {
    assert_ne!(<[u8; 4]>::TYPE_FINGERPRINT, <[u8; 5]>::TYPE_FINGERPRINT);
    assert_ne!(<[u8; 4]>::TYPE_FINGERPRINT, <u32>::TYPE_FINGERPRINT);
    assert_ne!(<u32>::TYPE_FINGERPRINT, <le::U32>::TYPE_FINGERPRINT);
    assert_ne!(Enum::<Op>::TYPE_FINGERPRINT, <u16>::TYPE_FINGERPRINT);
}

#[test]
fn prefix_copies_read_and_write_only_the_members_bytes() {
    let req = Req {
        op: Enum::new(Op::Flush),
        status: Enum::new(Status::Error),
        _pad: [0; 5],
        id: 42,
    };
    let mut bytes = [0xaau8; 24];
    super::write_prefix(&mut bytes, &req);
    assert_eq!(bytes[..16], *req.wire_bytes());
    assert_eq!(bytes[16..], [0xaa; 8]);
    let back: Req = super::read_prefix(&bytes);
    assert_eq!(back.id, 42);
    assert_eq!(back.op.get(), Ok(Op::Flush));
    // A member a hostile peer filled with a value that names no variant
    // reads back as an error from `get`, not as a bad enum.
    bytes[0..2].copy_from_slice(&7u16.to_ne_bytes());
    let bad: Req = super::read_prefix(&bytes);
    assert!(bad.op.get().is_err());
}
