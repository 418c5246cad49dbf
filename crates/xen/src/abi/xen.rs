//! Basic types and constants from xen/include/public/xen.h.

/// A domain id (`domid_t`, xen.h).
pub type DomId = u16;
/// An event channel port (`evtchn_port_t`, event_channel.h).
pub type EvtchnPort = u32;
/// A grant reference (`grant_ref_t`, grant_table.h).
pub type GrantRef = u32;
/// A guest frame number (`xen_pfn_t`: u64 on arm64 and x86_64).
pub type XenPfn = u64;

/// `DOMID_FIRST_RESERVED` (xen.h): ids from here on are special.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// `DOMID_SELF` (xen.h).
pub const DOMID_SELF: DomId = 0x7FF0;
/// `DOMID_INVALID` (xen.h).
pub const DOMID_INVALID: DomId = 0x7FF4;

/// Hypercall numbers (`__HYPERVISOR_*`, xen.h).
pub mod hypercall {
    /// `__HYPERVISOR_memory_op`.
    pub const MEMORY_OP: u64 = 12;
    /// `__HYPERVISOR_xen_version`.
    pub const XEN_VERSION: u64 = 17;
    /// `__HYPERVISOR_grant_table_op`.
    pub const GRANT_TABLE_OP: u64 = 20;
    /// `__HYPERVISOR_sched_op`.
    pub const SCHED_OP: u64 = 29;
    /// `__HYPERVISOR_event_channel_op`.
    pub const EVENT_CHANNEL_OP: u64 = 32;
    /// `__HYPERVISOR_hvm_op`.
    pub const HVM_OP: u64 = 34;
    /// `__HYPERVISOR_sysctl`.
    pub const SYSCTL: u64 = 35;
    /// `__HYPERVISOR_domctl`.
    pub const DOMCTL: u64 = 36;
}

/// `VIRQ_DOM_EXC` (xen.h): a domain died or needs attention (dom0 only).
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_CONSOLE` (xen.h).
pub const VIRQ_CONSOLE: u32 = 2;

/// `XEN_PAGE_SHIFT`/`XEN_PAGE_SIZE`: Xen's ABI page is 4 KiB on arm64 and x86_64.
pub const XEN_PAGE_SHIFT: u32 = 12;
/// 4096.
pub const XEN_PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;
