//! The Linux userspace ABI of `/dev/xen/{gntalloc,gntdev,evtchn}`: ioctl
//! numbers and argument layouts, written from the kernel's uapi headers
//! (`xen/gntalloc.h`, `xen/gntdev.h`, `xen/evtchn.h`).
//!
//! Every constant and layout here is checked against the C headers by the
//! `linux_abi` integration test, which compiles a C program printing them.
//! No `unsafe` in this file: the structs are plain data (zerocopy proves it).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `_IOC_NONE`: the ioctl moves no data by the generic rules (these drivers
/// copy their argument themselves).
const IOC_NONE: u32 = 0;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_SIZEMASK: u32 = (1 << 14) - 1;

/// `_IOC(dir, type, nr, size)` from `asm-generic/ioctl.h`. Sizes above the
/// 14-bit field fail to compile where used in a `const`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size <= IOC_SIZEMASK as usize, "ioctl argument too large");
    (dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}

// ---- gntalloc ------------------------------------------------------------

/// `struct ioctl_gntalloc_alloc_gref` without its trailing `gref_ids[]`
/// (the header the kernel copies first; the ids follow at offset 16).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntallocAllocGrefHead {
    /// In: the domain given access.
    pub domid: u16,
    /// In: `GNTALLOC_FLAG_WRITABLE` or 0.
    pub flags: u16,
    /// In: number of pages.
    pub count: u32,
    /// Out: the mmap offset of the new pages.
    pub index: u64,
}

/// `sizeof(struct ioctl_gntalloc_alloc_gref)`: the header plus one id,
/// padded to 8. The ioctl number encodes this size.
pub const GNTALLOC_ALLOC_GREF_SIZE: usize = 24;

/// `IOCTL_GNTALLOC_ALLOC_GREF`.
pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc(IOC_NONE, b'G', 5, GNTALLOC_ALLOC_GREF_SIZE);

/// `GNTALLOC_FLAG_WRITABLE`: the peer may map the pages read-write.
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_dealloc_gref`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntallocDeallocGref {
    /// The mmap offset returned by `ALLOC_GREF`.
    pub index: u64,
    /// Number of pages to release.
    pub count: u32,
    /// Tail padding of the C struct, made explicit.
    pub pad: u32,
}

/// `IOCTL_GNTALLOC_DEALLOC_GREF`.
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc(
    IOC_NONE,
    b'G',
    6,
    core::mem::size_of::<GntallocDeallocGref>(),
);

/// `struct ioctl_gntalloc_unmap_notify` (same layout as gntdev's).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct UnmapNotify {
    /// mmap offset of a byte in the page (the byte cleared by `CLEAR_BYTE`).
    pub index: u64,
    /// `UNMAP_NOTIFY_CLEAR_BYTE` and/or `UNMAP_NOTIFY_SEND_EVENT`.
    pub action: u32,
    /// The event channel port notified by `SEND_EVENT`.
    pub event_channel_port: u32,
}

/// `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`.
pub const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u32 =
    ioc(IOC_NONE, b'G', 7, core::mem::size_of::<UnmapNotify>());

/// `UNMAP_NOTIFY_CLEAR_BYTE`: zero the byte at `index` when unmapped.
pub const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
/// `UNMAP_NOTIFY_SEND_EVENT`: notify `event_channel_port` when unmapped.
pub const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

// ---- gntdev --------------------------------------------------------------

/// `struct ioctl_gntdev_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GntdevGrantRef {
    /// The granting domain.
    pub domid: u32,
    /// Its grant reference.
    pub r#ref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` without its trailing `refs[]` (they
/// follow at offset 16, 8 bytes each).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevMapGrantRefHead {
    /// In: number of grants.
    pub count: u32,
    /// Padding.
    pub pad: u32,
    /// Out: the mmap offset of the mapping.
    pub index: u64,
}

/// `sizeof(struct ioctl_gntdev_map_grant_ref)`: header plus one ref.
pub const GNTDEV_MAP_GRANT_REF_SIZE: usize = 24;

/// `IOCTL_GNTDEV_MAP_GRANT_REF`.
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc(IOC_NONE, b'G', 0, GNTDEV_MAP_GRANT_REF_SIZE);

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevUnmapGrantRef {
    /// The mmap offset returned by `MAP_GRANT_REF`.
    pub index: u64,
    /// Number of pages.
    pub count: u32,
    /// Padding.
    pub pad: u32,
}

/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc(
    IOC_NONE,
    b'G',
    1,
    core::mem::size_of::<GntdevUnmapGrantRef>(),
);

/// `IOCTL_GNTDEV_SET_UNMAP_NOTIFY` (argument: [`UnmapNotify`]).
pub const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: u32 =
    ioc(IOC_NONE, b'G', 7, core::mem::size_of::<UnmapNotify>());

// ---- evtchn --------------------------------------------------------------

/// `struct ioctl_evtchn_bind_interdomain`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// The peer domain.
    pub remote_domain: u32,
    /// The peer's unbound port.
    pub remote_port: u32,
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`; returns the local port.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 = ioc(
    IOC_NONE,
    b'E',
    1,
    core::mem::size_of::<EvtchnBindInterdomain>(),
);

/// `struct ioctl_evtchn_bind_unbound_port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindUnboundPort {
    /// The domain allowed to bind the new port.
    pub remote_domain: u32,
}

/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`; returns the local port.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 = ioc(
    IOC_NONE,
    b'E',
    2,
    core::mem::size_of::<EvtchnBindUnboundPort>(),
);

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify`: one port.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnPort {
    /// The local port.
    pub port: u32,
}

/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc(IOC_NONE, b'E', 3, core::mem::size_of::<EvtchnPort>());

/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc(IOC_NONE, b'E', 4, core::mem::size_of::<EvtchnPort>());

// ---- privcmd (only the hypercall the platform needs) ------------------------

/// `struct privcmd_hypercall`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PrivcmdHypercall {
    /// The hypercall number.
    pub op: u64,
    /// Its arguments.
    pub arg: [u64; 5],
}

/// `IOCTL_PRIVCMD_HYPERCALL`; returns the hypercall's result.
pub const IOCTL_PRIVCMD_HYPERCALL: u32 =
    ioc(IOC_NONE, b'P', 0, core::mem::size_of::<PrivcmdHypercall>());

/// `__HYPERVISOR_event_channel_op`.
pub const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS: u64 = 5;
/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;
/// `EVTCHNSTAT_closed`.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;

/// `struct evtchn_status` (`xen/event_channel.h`), with its union flattened
/// to the `interdomain` member (whose `dom` is also `unbound.dom`).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnStatus {
    /// In: the domain (`DOMID_SELF`).
    pub dom: u16,
    /// Padding.
    pub pad0: u16,
    /// In: the port.
    pub port: u32,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out: the vcpu notified.
    pub vcpu: u32,
    /// Out: `u.unbound.dom` / `u.interdomain.dom`: the remote domain.
    pub remote_dom: u16,
    /// Padding.
    pub pad1: u16,
    /// Out: `u.interdomain.port`: the remote port.
    pub remote_port: u32,
}

/// Every ioctl number, struct size and field offset above, by the name its
/// C expression is printed under in the `linux_abi` test (`name value`).
pub fn checked_constants() -> Vec<(&'static str, u64)> {
    use core::mem::{offset_of, size_of};
    let v = |x: usize| x as u64;
    vec![
        (
            "IOCTL_GNTALLOC_ALLOC_GREF",
            IOCTL_GNTALLOC_ALLOC_GREF.into(),
        ),
        (
            "IOCTL_GNTALLOC_DEALLOC_GREF",
            IOCTL_GNTALLOC_DEALLOC_GREF.into(),
        ),
        (
            "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY",
            IOCTL_GNTALLOC_SET_UNMAP_NOTIFY.into(),
        ),
        ("GNTALLOC_FLAG_WRITABLE", GNTALLOC_FLAG_WRITABLE.into()),
        ("UNMAP_NOTIFY_CLEAR_BYTE", UNMAP_NOTIFY_CLEAR_BYTE.into()),
        ("UNMAP_NOTIFY_SEND_EVENT", UNMAP_NOTIFY_SEND_EVENT.into()),
        (
            "sizeof(struct ioctl_gntalloc_alloc_gref)",
            v(GNTALLOC_ALLOC_GREF_SIZE),
        ),
        (
            "offsetof(struct ioctl_gntalloc_alloc_gref, domid)",
            v(offset_of!(GntallocAllocGrefHead, domid)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_alloc_gref, flags)",
            v(offset_of!(GntallocAllocGrefHead, flags)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_alloc_gref, count)",
            v(offset_of!(GntallocAllocGrefHead, count)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_alloc_gref, index)",
            v(offset_of!(GntallocAllocGrefHead, index)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids)",
            v(size_of::<GntallocAllocGrefHead>()),
        ),
        (
            "sizeof(struct ioctl_gntalloc_dealloc_gref)",
            v(size_of::<GntallocDeallocGref>()),
        ),
        (
            "offsetof(struct ioctl_gntalloc_dealloc_gref, index)",
            v(offset_of!(GntallocDeallocGref, index)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_dealloc_gref, count)",
            v(offset_of!(GntallocDeallocGref, count)),
        ),
        (
            "sizeof(struct ioctl_gntalloc_unmap_notify)",
            v(size_of::<UnmapNotify>()),
        ),
        (
            "offsetof(struct ioctl_gntalloc_unmap_notify, index)",
            v(offset_of!(UnmapNotify, index)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_unmap_notify, action)",
            v(offset_of!(UnmapNotify, action)),
        ),
        (
            "offsetof(struct ioctl_gntalloc_unmap_notify, event_channel_port)",
            v(offset_of!(UnmapNotify, event_channel_port)),
        ),
        (
            "IOCTL_GNTDEV_MAP_GRANT_REF",
            IOCTL_GNTDEV_MAP_GRANT_REF.into(),
        ),
        (
            "IOCTL_GNTDEV_UNMAP_GRANT_REF",
            IOCTL_GNTDEV_UNMAP_GRANT_REF.into(),
        ),
        (
            "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
            IOCTL_GNTDEV_SET_UNMAP_NOTIFY.into(),
        ),
        (
            "sizeof(struct ioctl_gntdev_grant_ref)",
            v(size_of::<GntdevGrantRef>()),
        ),
        (
            "offsetof(struct ioctl_gntdev_grant_ref, domid)",
            v(offset_of!(GntdevGrantRef, domid)),
        ),
        (
            "offsetof(struct ioctl_gntdev_grant_ref, ref)",
            v(offset_of!(GntdevGrantRef, r#ref)),
        ),
        (
            "sizeof(struct ioctl_gntdev_map_grant_ref)",
            v(GNTDEV_MAP_GRANT_REF_SIZE),
        ),
        (
            "offsetof(struct ioctl_gntdev_map_grant_ref, count)",
            v(offset_of!(GntdevMapGrantRefHead, count)),
        ),
        (
            "offsetof(struct ioctl_gntdev_map_grant_ref, index)",
            v(offset_of!(GntdevMapGrantRefHead, index)),
        ),
        (
            "offsetof(struct ioctl_gntdev_map_grant_ref, refs)",
            v(size_of::<GntdevMapGrantRefHead>()),
        ),
        (
            "sizeof(struct ioctl_gntdev_unmap_grant_ref)",
            v(size_of::<GntdevUnmapGrantRef>()),
        ),
        (
            "offsetof(struct ioctl_gntdev_unmap_grant_ref, index)",
            v(offset_of!(GntdevUnmapGrantRef, index)),
        ),
        (
            "offsetof(struct ioctl_gntdev_unmap_grant_ref, count)",
            v(offset_of!(GntdevUnmapGrantRef, count)),
        ),
        (
            "sizeof(struct ioctl_gntdev_unmap_notify)",
            v(size_of::<UnmapNotify>()),
        ),
        (
            "offsetof(struct ioctl_gntdev_unmap_notify, action)",
            v(offset_of!(UnmapNotify, action)),
        ),
        (
            "offsetof(struct ioctl_gntdev_unmap_notify, event_channel_port)",
            v(offset_of!(UnmapNotify, event_channel_port)),
        ),
        (
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            IOCTL_EVTCHN_BIND_INTERDOMAIN.into(),
        ),
        (
            "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
            IOCTL_EVTCHN_BIND_UNBOUND_PORT.into(),
        ),
        ("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND.into()),
        ("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY.into()),
        (
            "sizeof(struct ioctl_evtchn_bind_interdomain)",
            v(size_of::<EvtchnBindInterdomain>()),
        ),
        (
            "offsetof(struct ioctl_evtchn_bind_interdomain, remote_port)",
            v(offset_of!(EvtchnBindInterdomain, remote_port)),
        ),
        (
            "sizeof(struct ioctl_evtchn_bind_unbound_port)",
            v(size_of::<EvtchnBindUnboundPort>()),
        ),
        (
            "sizeof(struct ioctl_evtchn_unbind)",
            v(size_of::<EvtchnPort>()),
        ),
        (
            "sizeof(struct ioctl_evtchn_notify)",
            v(size_of::<EvtchnPort>()),
        ),
    ]
}

// Compile-time guards for the variable-length structs: the fixed sizes above
// must be the header plus one trailing element, rounded up to the alignment.
const _: () = assert!(core::mem::size_of::<GntallocAllocGrefHead>() == 16);
const _: () = assert!(GNTALLOC_ALLOC_GREF_SIZE == (16 + 4usize).next_multiple_of(8));
const _: () = assert!(core::mem::size_of::<GntdevMapGrantRefHead>() == 16);
const _: () = assert!(GNTDEV_MAP_GRANT_REF_SIZE == 16 + core::mem::size_of::<GntdevGrantRef>());
