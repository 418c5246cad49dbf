//! `__HYPERVISOR_grant_table_op` and grant entries (xen/include/public/grant_table.h).

use super::unsafe_impl_pod;
use super::xen::DomId;

/// `GNTTABOP_setup_table`.
pub const GNTTABOP_SETUP_TABLE: u64 = 2;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u64 = 6;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;

/// `GTF_permit_access`: the grantee may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1 << 0;
/// `GTF_readonly`.
pub const GTF_READONLY: u16 = 1 << 2;

/// The first grant references reserved for the toolstack (`GNTTAB_RESERVED_CONSOLE`,
/// `GNTTAB_RESERVED_XENSTORE`, grant_table.h).
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: DomId,
    pub frame: u32,
}

/// `struct gnttab_setup_table`. `frame_list` is a `XEN_GUEST_HANDLE` of `xen_pfn_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetupTable {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub _pad1: [u16; 3],
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub _pad1: u16,
}

unsafe_impl_pod!(GrantEntryV1, GnttabSetupTable, GnttabQuerySize);
