//! `__HYPERVISOR_domctl` (xen/include/public/domctl.h).
//!
//! The domctl interface version is 0x15 in Xen 4.17, 0x16 in 4.18 and 0x17 in 4.19
//! and 4.20. Of the structs here only `xen_domctl_createdomain` changed layout in
//! that range: 0x17 inserted `altp2m_opts` after `grant_opts`. 0x16 gave byte 1 of
//! the arm `xen_arch_domainconfig` a meaning (`sve_vl`), which was padding before.

use super::arch::ArchDomainConfig;
use super::unsafe_impl_pod;
use super::xen::DomId;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_DOMCTL_INTERFACE_VERSION_4_17: u32 = 0x15;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.18.
pub const XEN_DOMCTL_INTERFACE_VERSION_4_18: u32 = 0x16;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.19 and 4.20.
pub const XEN_DOMCTL_INTERFACE_VERSION_4_19: u32 = 0x17;

/// `XEN_DOMCTL_*` commands.
pub mod cmd {
    pub const CREATEDOMAIN: u32 = 1;
    pub const DESTROYDOMAIN: u32 = 2;
    pub const PAUSEDOMAIN: u32 = 3;
    pub const UNPAUSEDOMAIN: u32 = 4;
    pub const GETDOMAININFO: u32 = 5;
    pub const MAX_MEM: u32 = 11;
    pub const SETVCPUCONTEXT: u32 = 12;
    pub const GETVCPUCONTEXT: u32 = 13;
    pub const GETVCPUINFO: u32 = 14;
    pub const SETVCPUAFFINITY: u32 = 9;
    pub const MAX_VCPUS: u32 = 15;
    pub const GETVCPUAFFINITY: u32 = 25;
    pub const SET_ADDRESS_SIZE: u32 = 35;
    pub const VUART_OP: u32 = 81;
}

/// `XEN_DOMCTL_CDF_*` flags of `createdomain`.
pub mod cdf {
    pub const HVM: u32 = 1 << 0;
    pub const HAP: u32 = 1 << 1;
    pub const S3_INTEGRITY: u32 = 1 << 2;
    pub const OOS_OFF: u32 = 1 << 3;
    pub const XS_DOMAIN: u32 = 1 << 4;
    pub const IOMMU: u32 = 1 << 5;
    pub const NESTED_VIRT: u32 = 1 << 6;
    pub const VPMU: u32 = 1 << 7;
}

/// `XEN_DOMINF_*` flags of [`XenDomctlGetDomainInfo::flags`].
pub mod dominf {
    pub const DYING: u32 = 1 << 0;
    pub const HVM_GUEST: u32 = 1 << 1;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const BLOCKED: u32 = 1 << 4;
    pub const RUNNING: u32 = 1 << 5;
    pub const DEBUGGED: u32 = 1 << 6;
    pub const XS_DOMAIN: u32 = 1 << 7;
    pub const HAP: u32 = 1 << 8;
    /// `XEN_DOMINF_shutdownmask`.
    pub const SHUTDOWN_MASK: u32 = 255;
    /// `XEN_DOMINF_shutdownshift`.
    pub const SHUTDOWN_SHIFT: u32 = 16;
}

/// `XEN_SCHEDULER_*` ids (domctl.h), as returned by `XEN_SYSCTL_sched_id`.
pub mod scheduler {
    pub const CREDIT: u32 = 5;
    pub const CREDIT2: u32 = 6;
    pub const ARINC653: u32 = 7;
    pub const RTDS: u32 = 8;
    pub const NULL: u32 = 9;
}

/// `struct xen_domctl_createdomain` of interface versions 0x15 and 0x16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlCreateDomainV15<A = ArchDomainConfig> {
    pub ssidref: u32,
    /// `xen_domain_handle_t`: the domain's UUID.
    pub handle: [u8; 16],
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub arch: A,
}

/// `struct xen_domctl_createdomain` of interface version 0x17 (Xen 4.19, 4.20).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlCreateDomainV17<A = ArchDomainConfig> {
    pub ssidref: u32,
    /// `xen_domain_handle_t`: the domain's UUID.
    pub handle: [u8; 16],
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub altp2m_opts: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub arch: A,
}

/// `XEN_DOMCTL_GRANT_version(v)`: the grant table version in `grant_opts`.
pub const fn grant_version(v: u32) -> u32 {
    v & 0xf
}

/// `struct xen_domctl_getdomaininfo` (unchanged from 0x15 to 0x17).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetDomainInfo<A = ArchDomainConfig> {
    pub domain: DomId,
    pub pad1: u16,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    pub shared_info_frame: u64,
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
    pub pad2: [u8; 7],
    pub arch_config: A,
}

/// `struct xen_domctl_max_mem`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlMaxMem {
    pub max_memkb: u64,
}

/// `struct xen_domctl_vcpucontext`: `ctxt` is a `XEN_GUEST_HANDLE_64` of
/// `vcpu_guest_context_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlVcpuContext {
    pub vcpu: u32,
    pub _pad: u32,
    pub ctxt: u64,
}

/// `struct xen_domctl_max_vcpus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlMaxVcpus {
    pub max: u32,
}

/// `struct xen_domctl_address_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlAddressSize {
    pub size: u32,
}

/// `struct xen_domctl_getvcpuinfo`: IN `vcpu`, OUT the rest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlGetVcpuInfo {
    pub vcpu: u32,
    pub online: u8,
    pub blocked: u8,
    pub running: u8,
    pub _pad: u8,
    /// Nanoseconds of CPU time the vCPU has used.
    pub cpu_time: u64,
    /// The physical CPU it runs (or last ran) on.
    pub cpu: u32,
    pub _pad2: u32,
}

/// `XEN_VCPUAFFINITY_*` flags of `struct xen_domctl_vcpuaffinity`.
pub mod vcpu_affinity {
    /// Set or get the hard affinity (where the vCPU may run).
    pub const HARD: u32 = 1 << 0;
    /// Set or get the soft affinity (where the scheduler prefers to run it).
    pub const SOFT: u32 = 1 << 1;
}

/// `struct xen_domctl_vcpuaffinity`: the two maps are `struct xenctl_bitmap`s whose
/// handles point at hypercall buffers; on a set Xen writes back the effective maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenDomctlVcpuAffinity {
    pub vcpu: u32,
    pub flags: u32,
    pub cpumap_hard: crate::abi::sysctl::XenctlBitmap,
    pub cpumap_soft: crate::abi::sysctl::XenctlBitmap,
}

/// `XEN_DOMCTL_VUART_OP_INIT`.
pub const XEN_DOMCTL_VUART_OP_INIT: u32 = 0;
/// `XEN_DOMCTL_VUART_TYPE_VPL011`: the SBSA UART emulated by Xen on ARM.
pub const XEN_DOMCTL_VUART_TYPE_VPL011: u32 = 0;

/// `struct xen_domctl_vuart_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlVuartOp {
    pub cmd: u32,
    pub type_: u32,
    /// The guest frame of the ring page.
    pub gfn: u64,
    /// The domain running the console backend.
    pub console_domid: DomId,
    pub _pad: [u8; 2],
    /// OUT: the event channel port (in the guest) for the backend to bind.
    pub evtchn: u32,
}

/// Size of the payload union of `struct xen_domctl` (`uint8_t pad[128]`).
pub const XEN_DOMCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_domctl`: command, interface version, domain, and a 128-byte union
/// (8-byte aligned, at offset 16) holding one of the payload structs above.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenDomctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: DomId,
    pub _pad: [u16; 3],
    pub u: [u64; XEN_DOMCTL_PAYLOAD_SIZE / 8],
}

unsafe_impl_pod!(
    XenDomctlVuartOp,
    XenDomctlCreateDomainV15<super::arch::arm::ArchDomainConfig>,
    XenDomctlCreateDomainV15<super::arch::x86::ArchDomainConfig>,
    XenDomctlCreateDomainV17<super::arch::arm::ArchDomainConfig>,
    XenDomctlCreateDomainV17<super::arch::x86::ArchDomainConfig>,
    XenDomctlGetDomainInfo<super::arch::arm::ArchDomainConfig>,
    XenDomctlGetDomainInfo<super::arch::x86::ArchDomainConfig>,
    XenDomctlMaxMem,
    XenDomctlVcpuContext,
    XenDomctlMaxVcpus,
    XenDomctlAddressSize,
    XenDomctlVcpuAffinity,
    XenDomctlGetVcpuInfo,
    XenDomctl,
);

// Layout of `struct xen_domctl_vcpuaffinity` (domctl.h): 4 + 4 + 2 x 16 bytes.
const _: () = assert!(std::mem::size_of::<XenDomctlVcpuAffinity>() == 40);
const _: () = assert!(std::mem::offset_of!(XenDomctlVcpuAffinity, cpumap_soft) == 24);
// `struct xen_domctl_getvcpuinfo`: cpu_time 8-byte aligned at 8, cpu at 16.
const _: () = assert!(std::mem::offset_of!(XenDomctlGetVcpuInfo, cpu) == 16);

const _: () = assert!(std::mem::size_of::<XenDomctlCreateDomainV17>() <= XEN_DOMCTL_PAYLOAD_SIZE);
const _: () = assert!(std::mem::size_of::<XenDomctlGetDomainInfo>() <= XEN_DOMCTL_PAYLOAD_SIZE);
