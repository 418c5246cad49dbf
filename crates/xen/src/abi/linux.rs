//! Linux's `/dev/xen` ioctl interface: include/uapi/xen/{privcmd,evtchn,gntdev,gntalloc}.h
//! and drivers/xen/xenbus/xenbus_dev_backend.c (the same values as Xen's copies in
//! tools/include/xen-sys/Linux/, installed as /usr/include/xen/sys/*.h).

use super::xen::DomId;
use super::{ioc, unsafe_impl_pod, IOC_NONE};
use std::mem::size_of;

// ---------------------------------------------------------------- privcmd

/// `struct privcmd_hypercall`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrivcmdHypercall {
    pub op: u64,
    pub arg: [u64; 5],
}

/// `struct privcmd_mmapbatch_v2`. `arr` points at `num` `xen_pfn_t`, `err` at `num`
/// ints that the kernel fills with a per-frame errno (0 or negative).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PrivcmdMmapBatchV2 {
    pub num: u32,
    pub dom: DomId,
    pub _pad: u16,
    pub addr: u64,
    pub arr: *const u64,
    pub err: *mut i32,
}

/// `struct privcmd_mmap_resource`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrivcmdMmapResource {
    pub dom: DomId,
    pub _pad: u16,
    pub type_: u32,
    pub id: u32,
    pub idx: u32,
    pub num: u64,
    pub addr: u64,
}

/// `IOCTL_PRIVCMD_HYPERCALL`.
pub const IOCTL_PRIVCMD_HYPERCALL: u64 = ioc(IOC_NONE, b'P', 0, size_of::<PrivcmdHypercall>());
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`.
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: u64 = ioc(IOC_NONE, b'P', 4, size_of::<PrivcmdMmapBatchV2>());
/// `IOCTL_PRIVCMD_MMAP_RESOURCE`.
pub const IOCTL_PRIVCMD_MMAP_RESOURCE: u64 =
    ioc(IOC_NONE, b'P', 7, size_of::<PrivcmdMmapResource>());

// ---------------------------------------------------------------- evtchn

/// `struct ioctl_evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlEvtchnBindVirq {
    pub virq: u32,
}

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlEvtchnBindInterdomain {
    pub remote_domain: u32,
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlEvtchnBindUnboundPort {
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (one port each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlEvtchnPort {
    pub port: u32,
}

/// `struct ioctl_evtchn_restrict_domid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlEvtchnRestrictDomid {
    pub domid: DomId,
}

/// `IOCTL_EVTCHN_BIND_VIRQ`.
pub const IOCTL_EVTCHN_BIND_VIRQ: u64 = ioc(IOC_NONE, b'E', 0, size_of::<IoctlEvtchnBindVirq>());
/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u64 =
    ioc(IOC_NONE, b'E', 1, size_of::<IoctlEvtchnBindInterdomain>());
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u64 =
    ioc(IOC_NONE, b'E', 2, size_of::<IoctlEvtchnBindUnboundPort>());
/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: u64 = ioc(IOC_NONE, b'E', 3, size_of::<IoctlEvtchnPort>());
/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: u64 = ioc(IOC_NONE, b'E', 4, size_of::<IoctlEvtchnPort>());
/// `IOCTL_EVTCHN_RESET`.
pub const IOCTL_EVTCHN_RESET: u64 = ioc(IOC_NONE, b'E', 5, 0);
/// `IOCTL_EVTCHN_RESTRICT_DOMID`.
pub const IOCTL_EVTCHN_RESTRICT_DOMID: u64 =
    ioc(IOC_NONE, b'E', 6, size_of::<IoctlEvtchnRestrictDomid>());

// ---------------------------------------------------------------- gntdev

/// `struct ioctl_gntdev_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoctlGntdevGrantRef {
    pub domid: u32,
    pub r#ref: u32,
}

/// The fixed head of `struct ioctl_gntdev_map_grant_ref`; `count` grant refs
/// follow it (the C struct declares `refs[1]`, so its `sizeof` is 24).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlGntdevMapGrantRef {
    pub count: u32,
    pub pad: u32,
    pub index: u64,
    pub refs: [IoctlGntdevGrantRef; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlGntdevUnmapGrantRef {
    pub index: u64,
    pub count: u32,
    pub pad: u32,
}

/// `struct ioctl_gntdev_set_max_grants`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlGntdevSetMaxGrants {
    pub count: u32,
}

/// `struct ioctl_gntdev_unmap_notify` (also `struct ioctl_gntalloc_unmap_notify`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlUnmapNotify {
    pub index: u64,
    pub action: u32,
    pub event_channel_port: u32,
}

/// `UNMAP_NOTIFY_CLEAR_BYTE`: on unmap, zero the byte at `index`.
pub const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
/// `UNMAP_NOTIFY_SEND_EVENT`: on unmap, notify `event_channel_port`.
pub const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

/// One side of a grant-copy segment: a local virtual address, or a foreign
/// `{ref u32, offset u16, domid u16}` (a C union of 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GntdevCopyPtr {
    pub bits: u64,
}

impl GntdevCopyPtr {
    /// A local address.
    pub fn virt(addr: usize) -> Self {
        Self { bits: addr as u64 }
    }
    /// A foreign grant (`foreign.ref`, `foreign.offset`, `foreign.domid`), laid out
    /// in native (little-endian) byte order as the C union is.
    pub fn foreign(gref: u32, offset: u16, domid: DomId) -> Self {
        Self {
            bits: u64::from(gref) | (u64::from(offset) << 32) | (u64::from(domid) << 48),
        }
    }
}

/// `struct ioctl_gntdev_grant_copy_segment`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoctlGntdevGrantCopySegment {
    pub source: GntdevCopyPtr,
    pub dest: GntdevCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub _pad: u16,
}

/// `GNTCOPY_source_gref` (grant_table.h): the source is a foreign grant.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a foreign grant.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `struct ioctl_gntdev_grant_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoctlGntdevGrantCopy {
    pub count: u32,
    pub _pad: u32,
    pub segments: *mut IoctlGntdevGrantCopySegment,
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`.
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u64 =
    ioc(IOC_NONE, b'G', 0, size_of::<IoctlGntdevMapGrantRef>());
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u64 =
    ioc(IOC_NONE, b'G', 1, size_of::<IoctlGntdevUnmapGrantRef>());
/// `IOCTL_GNTDEV_SET_MAX_GRANTS`.
pub const IOCTL_GNTDEV_SET_MAX_GRANTS: u64 =
    ioc(IOC_NONE, b'G', 3, size_of::<IoctlGntdevSetMaxGrants>());
/// `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`.
pub const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: u64 =
    ioc(IOC_NONE, b'G', 7, size_of::<IoctlUnmapNotify>());
/// `IOCTL_GNTDEV_GRANT_COPY`.
pub const IOCTL_GNTDEV_GRANT_COPY: u64 = ioc(IOC_NONE, b'G', 8, size_of::<IoctlGntdevGrantCopy>());

// ---------------------------------------------------------------- gntalloc

/// The fixed head of `struct ioctl_gntalloc_alloc_gref`; the kernel writes `count`
/// grant ids starting at `gref_ids` (the C struct declares `gref_ids[1]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlGntallocAllocGref {
    pub domid: u16,
    pub flags: u16,
    pub count: u32,
    pub index: u64,
    pub gref_ids: [u32; 1],
    pub _pad: u32,
}

/// `GNTALLOC_FLAG_WRITABLE`.
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoctlGntallocDeallocGref {
    pub index: u64,
    pub count: u32,
    pub _pad: u32,
}

/// `IOCTL_GNTALLOC_ALLOC_GREF`.
pub const IOCTL_GNTALLOC_ALLOC_GREF: u64 =
    ioc(IOC_NONE, b'G', 5, size_of::<IoctlGntallocAllocGref>());
/// `IOCTL_GNTALLOC_DEALLOC_GREF`.
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u64 =
    ioc(IOC_NONE, b'G', 6, size_of::<IoctlGntallocDeallocGref>());
/// `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`.
pub const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u64 =
    ioc(IOC_NONE, b'G', 7, size_of::<IoctlUnmapNotify>());

// ---------------------------------------------------------------- xenbus_backend

/// `IOCTL_XENBUS_BACKEND_EVTCHN` (include/xen/xenbus_dev.h): returns the event
/// channel of the dom0 xenstore connection.
pub const IOCTL_XENBUS_BACKEND_EVTCHN: u64 = ioc(IOC_NONE, b'B', 0, 0);

unsafe_impl_pod!(
    PrivcmdHypercall,
    PrivcmdMmapResource,
    IoctlEvtchnBindVirq,
    IoctlEvtchnBindInterdomain,
    IoctlEvtchnBindUnboundPort,
    IoctlEvtchnPort,
    IoctlEvtchnRestrictDomid,
    IoctlGntdevGrantRef,
    IoctlGntdevMapGrantRef,
    IoctlGntdevUnmapGrantRef,
    IoctlGntdevSetMaxGrants,
    IoctlUnmapNotify,
    IoctlGntdevGrantCopySegment,
    IoctlGntallocAllocGref,
    IoctlGntallocDeallocGref,
);
