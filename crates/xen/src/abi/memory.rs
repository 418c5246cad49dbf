//! `__HYPERVISOR_memory_op` (xen/include/public/memory.h).

use super::unsafe_impl_pod;
use super::xen::DomId;

/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_get_sharing_freed_pages`: returns the count, no argument.
pub const XENMEM_GET_SHARING_FREED_PAGES: u64 = 18;
/// `XENMEM_get_sharing_shared_pages`: returns the count, no argument.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u64 = 19;
/// `XENMEM_acquire_resource`.
pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;

/// `XENMEM_resource_ioreq_server`.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// `XENMEM_resource_grant_table`.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// `XENMEM_resource_grant_table_id_shared`.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;

/// `struct xen_memory_reservation`. `extent_start` is a `XEN_GUEST_HANDLE` of
/// `xen_pfn_t` (8 bytes on arm64, where it is a 64-bit union, and on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMemoryReservation {
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: DomId,
    pub _pad: [u16; 3],
}

/// `struct xen_mem_acquire_resource`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMemAcquireResource {
    pub domid: DomId,
    pub type_: u16,
    pub id: u32,
    pub nr_frames: u32,
    pub pad: u32,
    pub frame: u64,
    pub frame_list: u64,
}

unsafe_impl_pod!(XenMemoryReservation, XenMemAcquireResource);
