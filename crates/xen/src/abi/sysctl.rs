//! `__HYPERVISOR_sysctl` (xen/include/public/sysctl.h).
//!
//! The sysctl interface version is 0x15 in Xen 4.17, 4.18, 4.19 and 4.20, and the
//! structs used here did not change in that range.

use super::domctl::XenDomctlGetDomainInfo;
use super::unsafe_impl_pod;
use super::xen::DomId;

/// `XEN_SYSCTL_INTERFACE_VERSION` for Xen 4.17 to 4.20.
pub const XEN_SYSCTL_INTERFACE_VERSION_4_17: u32 = 0x15;

/// `XEN_SYSCTL_readconsole`: read (and optionally clear) the hypervisor's console ring.
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_debug_keys`: press keys on the hypervisor's debug console.
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// `XEN_SYSCTL_sched_id`.
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// `XEN_SYSCTL_getdomaininfolist`.
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;

/// `XEN_SYSCTL_cpupool_op`.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// `XEN_SYSCTL_CPUPOOL_OP_FREEINFO`: the CPUs in no cpupool.
pub const XEN_SYSCTL_CPUPOOL_OP_FREEINFO: u32 = 7;

/// `XEN_SYSCTL_PHYSCAP_*` bits of [`XenSysctlPhysinfo::capabilities`].
pub mod physcap {
    pub const HVM: u32 = 1 << 0;
    pub const PV: u32 = 1 << 1;
    pub const DIRECTIO: u32 = 1 << 2;
    pub const HAP: u32 = 1 << 3;
    pub const SHADOW: u32 = 1 << 4;
    pub const IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
    pub const VMTRACE: u32 = 1 << 6;
    pub const VPMU: u32 = 1 << 7;
    pub const GNTTAB_V1: u32 = 1 << 8;
    pub const GNTTAB_V2: u32 = 1 << 9;
}

/// `struct xen_sysctl_physinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlPhysinfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub pad: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_sched_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlSchedId {
    pub sched_id: u32,
}

/// `struct xen_sysctl_getdomaininfolist`. `buffer` is a `XEN_GUEST_HANDLE_64` of
/// [`XenDomctlGetDomainInfo`]: a 64-bit address on both architectures.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlGetDomainInfoList {
    pub first_domain: DomId,
    pub _pad0: u16,
    pub max_domains: u32,
    pub buffer: u64,
    pub num_domains: u32,
    pub _pad1: u32,
}

/// `struct xen_sysctl_readconsole`. `buffer` is a `XEN_GUEST_HANDLE_64(char)`;
/// `index` is where an incremental read starts (in) and where it stopped (out),
/// `count` the buffer's size (in) and the bytes written (out).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlReadconsole {
    pub clear: u8,
    pub incremental: u8,
    pub pad0: u8,
    pub pad1: u8,
    pub index: u32,
    pub buffer: u64,
    pub count: u32,
    pub _pad: u32,
}

/// `struct xen_sysctl_debug_keys`: `keys` is a `XEN_GUEST_HANDLE_64(const_char)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlDebugKeys {
    pub keys: u64,
    pub nr_keys: u32,
    pub _pad: u32,
}

/// `struct xenctl_bitmap` (xen.h): a `XEN_GUEST_HANDLE_64(uint8)` and a bit count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenctlBitmap {
    pub bitmap: u64,
    pub nr_bits: u32,
    pub _pad: u32,
}

/// `struct xen_sysctl_cpupool_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenSysctlCpupoolOp {
    pub op: u32,
    pub cpupool_id: u32,
    pub sched_id: u32,
    pub domid: u32,
    pub cpu: u32,
    pub n_dom: u32,
    pub cpumap: XenctlBitmap,
}

/// Size of the payload union of `struct xen_sysctl` (`uint8_t pad[128]`).
pub const XEN_SYSCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_sysctl`: a command, the interface version and a 128-byte union
/// (8-byte aligned) holding one of the payload structs above.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenSysctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u64; XEN_SYSCTL_PAYLOAD_SIZE / 8],
}

unsafe_impl_pod!(
    XenSysctlReadconsole,
    XenSysctlDebugKeys,
    XenSysctlPhysinfo,
    XenSysctlSchedId,
    XenSysctlGetDomainInfoList,
    XenctlBitmap,
    XenSysctlCpupoolOp,
    XenSysctl
);

// The payloads must fit the union.
const _: () = assert!(std::mem::size_of::<XenSysctlPhysinfo>() <= XEN_SYSCTL_PAYLOAD_SIZE);
const _: () = assert!(std::mem::size_of::<XenSysctlGetDomainInfoList>() <= XEN_SYSCTL_PAYLOAD_SIZE);
const _: () = assert!(std::mem::size_of::<XenDomctlGetDomainInfo>() > 0);
