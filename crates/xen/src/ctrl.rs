//! Domain control: a safe API over the xen_version, sysctl, domctl, memory,
//! event-channel, grant-table and HVM-param hypercalls ([`XenCtrl`]), behind the
//! [`DomainControl`] trait so that callers can be unit-tested with a fake.
//!
//! The domctl interface version is chosen at run time from `XENVER_version`
//! (0x15 for Xen 4.17, 0x16 for 4.18, 0x17 for 4.19 and 4.20); hypercall arguments
//! live in buffers from `/dev/xen/hypercall`.

use crate::abi::arch::ArchDomainConfig;
use crate::abi::domctl::{
    self, cmd, dominf, XenDomctl, XenDomctlAddressSize, XenDomctlCreateDomainV15,
    XenDomctlCreateDomainV17, XenDomctlGetDomainInfo, XenDomctlMaxMem, XenDomctlMaxVcpus,
};
use crate::abi::domctl::{
    vcpu_affinity, XenDomctlGetVcpuInfo, XenDomctlVcpuAffinity, XenDomctlVcpuContext,
};
use crate::abi::event_channel::{EvtchnAllocUnbound, EVTCHNOP_ALLOC_UNBOUND};
use crate::abi::grant_table::{GnttabQuerySize, GNTST_OKAY, GNTTABOP_QUERY_SIZE};
use crate::abi::hvm::{XenHvmParam, HVMOP_GET_PARAM, HVMOP_SET_PARAM};
use crate::abi::memory::{
    XenMemoryReservation, XENMEM_GET_SHARING_FREED_PAGES, XENMEM_GET_SHARING_SHARED_PAGES,
    XENMEM_POPULATE_PHYSMAP,
};
use crate::abi::sysctl::{
    XenSysctl, XenSysctlCpupoolOp, XenSysctlDebugKeys, XenSysctlGetDomainInfoList,
    XenSysctlPhysinfo, XenSysctlReadconsole, XenSysctlSchedId, XenctlBitmap, XEN_SYSCTL_CPUPOOL_OP,
    XEN_SYSCTL_CPUPOOL_OP_FREEINFO, XEN_SYSCTL_DEBUG_KEYS, XEN_SYSCTL_GETDOMAININFOLIST,
    XEN_SYSCTL_INTERFACE_VERSION_4_17, XEN_SYSCTL_PHYSINFO, XEN_SYSCTL_READCONSOLE,
    XEN_SYSCTL_SCHED_ID,
};
use crate::abi::version::*;
use crate::abi::xen::{hypercall, DomId, EvtchnPort, XenPfn, DOMID_SELF};
use crate::abi::{c_string, Pod};
use crate::mem::{MappedMemory, MemError};
use crate::privcmd::{Privcmd, PrivcmdError};

/// Errors of domain control.
#[derive(Debug, thiserror::Error)]
pub enum CtrlError {
    /// A privcmd operation (open, buffer, hypercall) failed.
    #[error(transparent)]
    Privcmd(#[from] PrivcmdError),
    /// Access to a hypercall buffer failed.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// The hypervisor's version has no known domctl interface.
    #[error("Xen {major}.{minor} is not supported (rxen knows Xen 4.17 to 4.20)")]
    UnsupportedVersion { major: u32, minor: u32 },
    /// No such domain.
    #[error("domain {0} does not exist")]
    NoSuchDomain(DomId),
    /// A hypercall returned a status that says it failed.
    #[error("{op} failed with status {status}")]
    Status { op: &'static str, status: i64 },
    /// The operation needs an arm64 build of rxen (the vCPU context layout).
    #[error("{0} needs an arm64 build")]
    NeedsArm64(&'static str),
    /// A request was out of range.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}

impl CtrlError {
    /// The errno of a failed hypercall, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CtrlError::Privcmd(PrivcmdError::Hypercall { source, .. }) => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The hypervisor's version and build information (`xen_version` sub-commands).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XenVersion {
    pub major: u32,
    pub minor: u32,
    /// `XENVER_extraversion`, e.g. ".7" or "-unstable".
    pub extra: String,
    pub changeset: String,
    pub capabilities: String,
    pub pagesize: u64,
    /// `XENVER_platform_parameters.virt_start`.
    pub virt_start: u64,
    pub commandline: String,
    pub compiler: String,
    pub compile_by: String,
    pub compile_domain: String,
    pub compile_date: String,
    /// `XENVER_build_id` as lowercase hex; empty when Xen has none or refuses.
    pub build_id: String,
}

/// Host information (`XEN_SYSCTL_physinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhysInfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*` bits.
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
    /// `XENMEM_get_sharing_freed_pages`, when Xen answered.
    pub sharing_freed_pages: Option<u64>,
    /// `XENMEM_get_sharing_shared_pages`, when Xen answered.
    pub sharing_used_frames: Option<u64>,
}

impl From<XenSysctlPhysinfo> for PhysInfo {
    fn from(p: XenSysctlPhysinfo) -> Self {
        Self {
            threads_per_core: p.threads_per_core,
            cores_per_socket: p.cores_per_socket,
            nr_cpus: p.nr_cpus,
            max_cpu_id: p.max_cpu_id,
            nr_nodes: p.nr_nodes,
            max_node_id: p.max_node_id,
            cpu_khz: p.cpu_khz,
            capabilities: p.capabilities,
            arch_capabilities: p.arch_capabilities,
            total_pages: p.total_pages,
            free_pages: p.free_pages,
            scrub_pages: p.scrub_pages,
            outstanding_pages: p.outstanding_pages,
            max_mfn: p.max_mfn,
            hw_cap: p.hw_cap,
            sharing_freed_pages: None,
            sharing_used_frames: None,
        }
    }
}

/// One domain's state (`xen_domctl_getdomaininfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainInfo {
    pub domid: DomId,
    /// `XEN_DOMINF_*` bits.
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shared_info_frame: u64,
    /// CPU time used, in nanoseconds.
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
}

impl DomainInfo {
    pub fn dying(&self) -> bool {
        self.flags & dominf::DYING != 0
    }
    pub fn shutdown(&self) -> bool {
        self.flags & dominf::SHUTDOWN != 0
    }
    pub fn paused(&self) -> bool {
        self.flags & dominf::PAUSED != 0
    }
    pub fn blocked(&self) -> bool {
        self.flags & dominf::BLOCKED != 0
    }
    pub fn running(&self) -> bool {
        self.flags & dominf::RUNNING != 0
    }
    pub fn hvm(&self) -> bool {
        self.flags & dominf::HVM_GUEST != 0
    }
    /// `SHUTDOWN_*` reason (sched.h), meaningful when [`DomainInfo::shutdown`].
    pub fn shutdown_reason(&self) -> u32 {
        (self.flags >> dominf::SHUTDOWN_SHIFT) & dominf::SHUTDOWN_MASK
    }
}

impl From<XenDomctlGetDomainInfo> for DomainInfo {
    fn from(d: XenDomctlGetDomainInfo) -> Self {
        Self {
            domid: d.domain,
            flags: d.flags,
            tot_pages: d.tot_pages,
            max_pages: d.max_pages,
            outstanding_pages: d.outstanding_pages,
            shared_info_frame: d.shared_info_frame,
            cpu_time: d.cpu_time,
            nr_online_vcpus: d.nr_online_vcpus,
            max_vcpu_id: d.max_vcpu_id,
            ssidref: d.ssidref,
            handle: d.handle,
            cpupool: d.cpupool,
            gpaddr_bits: d.gpaddr_bits,
        }
    }
}

/// What `createdomain` needs, independent of the interface version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateDomain {
    /// The domain id to use, or 0 to let Xen choose.
    pub domid: DomId,
    pub ssidref: u32,
    /// The domain handle (UUID).
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    /// `XEN_DOMCTL_GRANT_version(v)` and other grant options.
    pub grant_opts: u32,
    /// Only sent to Xen 4.19 and later (domctl 0x17); must be 0 before.
    pub altp2m_opts: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub arch: ArchDomainConfig,
}

/// The domctl interface version of Xen `major.minor`, if rxen knows it.
pub fn domctl_interface_version(major: u32, minor: u32) -> Option<u32> {
    match (major, minor) {
        (4, 17) => Some(domctl::XEN_DOMCTL_INTERFACE_VERSION_4_17),
        (4, 18) => Some(domctl::XEN_DOMCTL_INTERFACE_VERSION_4_18),
        (4, 19) | (4, 20) => Some(domctl::XEN_DOMCTL_INTERFACE_VERSION_4_19),
        _ => None,
    }
}

/// The sysctl interface version of Xen `major.minor`, if rxen knows it.
pub fn sysctl_interface_version(major: u32, minor: u32) -> Option<u32> {
    match (major, minor) {
        (4, 17..=20) => Some(XEN_SYSCTL_INTERFACE_VERSION_4_17),
        _ => None,
    }
}

/// Encodes a [`CreateDomain`] in the layout of the given domctl version.
pub fn encode_createdomain(
    version: u32,
    c: &CreateDomain,
) -> Result<CreateDomainPayload, CtrlError> {
    if version >= domctl::XEN_DOMCTL_INTERFACE_VERSION_4_19 {
        Ok(CreateDomainPayload::V17(XenDomctlCreateDomainV17 {
            ssidref: c.ssidref,
            handle: c.handle,
            flags: c.flags,
            iommu_opts: c.iommu_opts,
            max_vcpus: c.max_vcpus,
            max_evtchn_port: c.max_evtchn_port,
            max_grant_frames: c.max_grant_frames,
            max_maptrack_frames: c.max_maptrack_frames,
            grant_opts: c.grant_opts,
            altp2m_opts: c.altp2m_opts,
            vmtrace_size: c.vmtrace_size,
            cpupool_id: c.cpupool_id,
            arch: c.arch,
        }))
    } else {
        if c.altp2m_opts != 0 {
            return Err(CtrlError::Invalid("altp2m_opts needs Xen 4.19 or later"));
        }
        #[cfg(target_arch = "aarch64")]
        if version < domctl::XEN_DOMCTL_INTERFACE_VERSION_4_18 && c.arch.sve_vl != 0 {
            return Err(CtrlError::Invalid("sve_vl needs Xen 4.18 or later"));
        }
        Ok(CreateDomainPayload::V15(XenDomctlCreateDomainV15 {
            ssidref: c.ssidref,
            handle: c.handle,
            flags: c.flags,
            iommu_opts: c.iommu_opts,
            max_vcpus: c.max_vcpus,
            max_evtchn_port: c.max_evtchn_port,
            max_grant_frames: c.max_grant_frames,
            max_maptrack_frames: c.max_maptrack_frames,
            grant_opts: c.grant_opts,
            vmtrace_size: c.vmtrace_size,
            cpupool_id: c.cpupool_id,
            arch: c.arch,
        }))
    }
}

/// A createdomain payload in the layout of one interface version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateDomainPayload {
    /// Domctl 0x15 and 0x16.
    V15(XenDomctlCreateDomainV15),
    /// Domctl 0x17.
    V17(XenDomctlCreateDomainV17),
}

/// The name of a scheduler id (`XEN_SCHEDULER_*`), as xl prints it.
pub fn scheduler_name(id: u32) -> Option<&'static str> {
    use crate::abi::domctl::scheduler::*;
    match id {
        CREDIT => Some("credit"),
        CREDIT2 => Some("credit2"),
        ARINC653 => Some("arinc653"),
        RTDS => Some("rtds"),
        NULL => Some("null"),
        _ => None,
    }
}

/// The buffer of one console ring read: libxl's size, Xen's default ring.
pub const CONSOLE_CHUNK: u32 = 16384;
/// Where [`DomainControl::read_console`] stops.
pub const MAX_CONSOLE_READ: usize = 64 << 20;

/// Domain control and host queries. Implemented by [`XenCtrl`] over privcmd and
/// by `fake::FakeXen` (feature `fake`) for unit tests.
pub trait DomainControl {
    /// Version and build information of the hypervisor.
    fn xen_version(&self) -> Result<XenVersion, CtrlError>;
    /// Host CPU and memory information.
    fn physinfo(&self) -> Result<PhysInfo, CtrlError>;
    /// The scheduler id of the default cpupool (`XEN_SCHEDULER_*`).
    fn sched_id(&self) -> Result<u32, CtrlError>;
    /// The CPUs that belong to no cpupool.
    fn free_cpus(&self) -> Result<Vec<u32>, CtrlError>;
    /// One read of the hypervisor's console ring (`XEN_SYSCTL_readconsole`,
    /// incremental): up to `max` bytes from `index` (or from the oldest byte
    /// still in the ring, if that is later), and the index after them. `clear`
    /// empties the ring after the read.
    fn read_console_chunk(
        &self,
        index: u32,
        max: u32,
        clear: bool,
    ) -> Result<(Vec<u8>, u32), CtrlError>;
    /// Presses `keys` on the hypervisor's debug console (`xl debug-keys`): each
    /// runs its handler, whose output goes to the console ring.
    fn send_debug_keys(&self, keys: &[u8]) -> Result<(), CtrlError>;
    /// The whole console ring, as `xl dmesg` reads it, in chunks of
    /// [`CONSOLE_CHUNK`] bytes (at most [`MAX_CONSOLE_READ`] in all, so that a
    /// hypervisor logging as fast as it is read cannot keep the reader going for
    /// ever). With `clear` the ring is emptied after the read. Xen clears up to
    /// where the ring ended when a read began, even when that read stopped
    /// short of it at a full buffer (libxl asks for the clear on every read,
    /// which loses all but the first 16 KiB of a larger ring), so the clear
    /// is asked for only once the reads have caught up.
    fn read_console(&self, clear: bool) -> Result<Vec<u8>, CtrlError> {
        let mut all = Vec::new();
        let mut index = 0;
        let mut caught_up = false;
        while all.len() < MAX_CONSOLE_READ {
            let clear_now = clear && caught_up;
            let (chunk, next) = self.read_console_chunk(index, CONSOLE_CHUNK, clear_now)?;
            all.extend_from_slice(&chunk);
            index = next;
            let short = chunk.len() < CONSOLE_CHUNK as usize;
            if short && (clear_now || !clear) {
                break;
            }
            caught_up = short;
        }
        Ok(all)
    }
    /// One domain's state.
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo, CtrlError>;
    /// Up to `max` domains with ids from `first` on, in id order.
    fn domain_info_list(&self, first: DomId, max: u32) -> Result<Vec<DomainInfo>, CtrlError>;
    /// Creates a domain (paused) and returns its id.
    fn create_domain(&self, config: &CreateDomain) -> Result<DomId, CtrlError>;
    /// Creates a domain (paused) and returns its id with the arch config Xen
    /// chose (e.g. the GIC version for `GIC_NATIVE`, the timer frequency).
    /// The default answers the requested arch config (for fakes).
    fn create_domain_arch(
        &self,
        config: &CreateDomain,
    ) -> Result<(DomId, crate::abi::arch::ArchDomainConfig), CtrlError> {
        self.create_domain(config).map(|d| (d, config.arch))
    }
    /// `XEN_DOMCTL_vuart_op` INIT of a vpl011 whose ring is guest frame `gfn`,
    /// served by `console_domid`; returns the guest's event channel port for it.
    /// The default refuses (fakes without a vuart).
    fn vuart_init(
        &self,
        _domid: DomId,
        _gfn: XenPfn,
        _console_domid: DomId,
    ) -> Result<EvtchnPort, CtrlError> {
        Err(CtrlError::Invalid("no vuart in this implementation"))
    }
    fn destroy_domain(&self, domid: DomId) -> Result<(), CtrlError>;
    fn pause_domain(&self, domid: DomId) -> Result<(), CtrlError>;
    fn unpause_domain(&self, domid: DomId) -> Result<(), CtrlError>;
    fn set_max_mem(&self, domid: DomId, max_memkb: u64) -> Result<(), CtrlError>;
    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<(), CtrlError>;
    /// `XEN_DOMCTL_set_address_size` (arm: 32 or 64).
    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<(), CtrlError>;
    /// Populates the guest frames `gfns` with extents of `2^extent_order` pages;
    /// returns how many extents were populated.
    fn populate_physmap(
        &self,
        domid: DomId,
        extent_order: u32,
        gfns: &[XenPfn],
    ) -> Result<usize, CtrlError>;
    fn hvm_param_get(&self, domid: DomId, index: u32) -> Result<u64, CtrlError>;
    fn hvm_param_set(&self, domid: DomId, index: u32, value: u64) -> Result<(), CtrlError>;
    /// Allocates an unbound port in `domid` that `remote` may bind to.
    fn evtchn_alloc_unbound(&self, domid: DomId, remote: DomId) -> Result<EvtchnPort, CtrlError>;
    /// `(nr_frames, max_nr_frames)` of a domain's grant table.
    fn gnttab_query_size(&self, domid: DomId) -> Result<(u32, u32), CtrlError>;
    /// Sets vCPU `vcpu`'s context (arm64 layout: rxen builds ARM guests).
    fn set_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
        ctx: &crate::abi::arch::arm::VcpuGuestContext,
    ) -> Result<(), CtrlError>;
    /// Reads vCPU `vcpu`'s context (arm64 layout).
    fn get_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
    ) -> Result<crate::abi::arch::arm::VcpuGuestContext, CtrlError>;
    /// `XEN_DOMCTL_setvcpuaffinity`: lets vCPU `vcpu` run (hard) or prefer to run
    /// (soft) only on the physical CPUs `cpus`; returns the effective set Xen
    /// reports back (the map intersected with the cpupool's online CPUs).
    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpus: &[u32],
    ) -> Result<Vec<u32>, CtrlError>;
    /// `XEN_DOMCTL_getvcpuaffinity`: the set last given to `set_vcpu_affinity`
    /// (all CPUs by default).
    fn get_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
    ) -> Result<Vec<u32>, CtrlError>;
    /// `XEN_DOMCTL_getvcpuinfo`: one vCPU's state, CPU and CPU time.
    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo, CtrlError>;
}

/// One vCPU as `XEN_DOMCTL_getvcpuinfo` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    pub vcpu: u32,
    pub online: bool,
    pub blocked: bool,
    pub running: bool,
    /// Nanoseconds of CPU time used.
    pub cpu_time: u64,
    /// The physical CPU it runs or last ran on.
    pub cpu: u32,
}

/// Which of a vCPU's two CPU affinities (xl's `cpus` and `cpus_soft`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AffinityKind {
    /// Where the vCPU may run at all.
    Hard,
    /// Where the scheduler prefers to run it.
    Soft,
}

impl AffinityKind {
    fn flag(self) -> u32 {
        match self {
            AffinityKind::Hard => vcpu_affinity::HARD,
            AffinityKind::Soft => vcpu_affinity::SOFT,
        }
    }
}

/// Bits in the CPU maps rxen hands to Xen: Xen copies min(nr_bits, its
/// nr_cpu_ids) bits either way, and 4096 is Xen's largest NR_CPUS.
pub const CPUMAP_BITS: u32 = 4096;

/// The CPU numbers `cpus` as a `struct xenctl_bitmap` byte map of `CPUMAP_BITS`.
pub fn cpumap_bytes(cpus: &[u32]) -> Result<Vec<u8>, CtrlError> {
    let mut map = vec![0u8; CPUMAP_BITS as usize / 8];
    for &c in cpus {
        if c >= CPUMAP_BITS {
            return Err(CtrlError::Invalid(
                "CPU number beyond Xen's largest NR_CPUS",
            ));
        }
        map[c as usize / 8] |= 1 << (c % 8);
    }
    Ok(map)
}

/// The CPU numbers set in a `struct xenctl_bitmap` byte map.
pub fn cpumap_cpus(map: &[u8]) -> Vec<u32> {
    (0..map.len() as u32 * 8)
        .filter(|&c| map[c as usize / 8] & (1 << (c % 8)) != 0)
        .collect()
}

/// Offset of the payload union in `struct xen_domctl`/`struct xen_sysctl` buffers.
const DOMCTL_PAYLOAD_OFFSET: usize = std::mem::offset_of!(XenDomctl, u);
const SYSCTL_PAYLOAD_OFFSET: usize = std::mem::offset_of!(XenSysctl, u);

/// The real implementation over `/dev/xen/privcmd`.
#[derive(Debug)]
pub struct XenCtrl {
    privcmd: Privcmd,
    major: u32,
    minor: u32,
    domctl_version: u32,
    sysctl_version: u32,
}

impl XenCtrl {
    /// Opens privcmd and learns the hypervisor's version, which chooses the
    /// domctl and sysctl interface versions.
    pub fn open() -> Result<Self, CtrlError> {
        let privcmd = Privcmd::open()?;
        // SAFETY: XENVER_version takes no argument pointer.
        let v = unsafe { privcmd.hypercall(hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) }?;
        let (major, minor) = ((v as u64 >> 16) as u32, (v as u64 & 0xffff) as u32);
        let domctl_version = domctl_interface_version(major, minor)
            .ok_or(CtrlError::UnsupportedVersion { major, minor })?;
        let sysctl_version = sysctl_interface_version(major, minor)
            .ok_or(CtrlError::UnsupportedVersion { major, minor })?;
        tracing::debug!(
            major,
            minor,
            domctl_version,
            sysctl_version,
            "opened privcmd"
        );
        Ok(Self {
            privcmd,
            major,
            minor,
            domctl_version,
            sysctl_version,
        })
    }

    /// The privcmd device, for foreign mappings.
    pub fn privcmd(&self) -> &Privcmd {
        &self.privcmd
    }

    /// `(major, minor)` of the hypervisor.
    pub fn version_numbers(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// The domctl interface version in use.
    pub fn domctl_version(&self) -> u32 {
        self.domctl_version
    }

    /// Runs hypercall `op` whose address arguments all point into `buf`.
    fn call_with_buf(&self, op: u64, args: [u64; 5], buf: &MappedMemory) -> Result<i64, CtrlError> {
        debug_assert!(!buf.is_empty());
        // SAFETY: every caller passes only addresses inside `buf` (or inside other
        // hypercall buffers it keeps alive across this call), sized for what Xen
        // reads and writes for `op`.
        Ok(unsafe { self.privcmd.hypercall(op, args) }?)
    }

    fn xenver_string(&self, cmd: u64, len: usize) -> Result<String, CtrlError> {
        let buf = self.privcmd.alloc_buffer(len)?;
        self.call_with_buf(
            hypercall::XEN_VERSION,
            [cmd, buf.addr() as u64, 0, 0, 0],
            &buf,
        )?;
        let mut bytes = vec![0u8; len];
        buf.read_bytes(0, &mut bytes)?;
        Ok(c_string(&bytes))
    }

    /// `XENVER_build_id` as hex, or empty when Xen has none (ENODATA), refuses
    /// (EPERM) or returns nothing, as libxl does.
    fn build_id(&self) -> Result<String, CtrlError> {
        let page = crate::abi::xen::XEN_PAGE_SIZE;
        let buf = self.privcmd.alloc_buffer(page)?;
        let len_field = std::mem::size_of::<u32>();
        buf.write::<u32>(0, (page - len_field) as u32)?;
        let n = match self.call_with_buf(
            hypercall::XEN_VERSION,
            [XENVER_BUILD_ID, buf.addr() as u64, 0, 0, 0],
            &buf,
        ) {
            Ok(n) => (n.max(0) as usize).min(page - len_field),
            Err(e) if matches!(e.errno(), Some(libc::EPERM) | Some(libc::ENODATA)) => 0,
            Err(e) => return Err(e),
        };
        let mut bytes = vec![0u8; n];
        buf.read_bytes(len_field, &mut bytes)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn domctl<P: Pod>(
        &self,
        command: u32,
        domid: DomId,
        payload: P,
    ) -> Result<(XenDomctl, P), CtrlError> {
        if std::mem::size_of::<P>() > domctl::XEN_DOMCTL_PAYLOAD_SIZE {
            return Err(CtrlError::Invalid("domctl payload larger than the union"));
        }
        let buf = self
            .privcmd
            .alloc_buffer(std::mem::size_of::<XenDomctl>())?;
        let mut d = XenDomctl::zeroed();
        d.cmd = command;
        d.interface_version = self.domctl_version;
        d.domain = domid;
        buf.write(0, d)?;
        buf.write(DOMCTL_PAYLOAD_OFFSET, payload)?;
        self.call_with_buf(hypercall::DOMCTL, [buf.addr() as u64, 0, 0, 0, 0], &buf)?;
        Ok((buf.read(0)?, buf.read(DOMCTL_PAYLOAD_OFFSET)?))
    }

    fn sysctl<P: Pod>(&self, command: u32, payload: P) -> Result<P, CtrlError> {
        if std::mem::size_of::<P>() > crate::abi::sysctl::XEN_SYSCTL_PAYLOAD_SIZE {
            return Err(CtrlError::Invalid("sysctl payload larger than the union"));
        }
        let buf = self
            .privcmd
            .alloc_buffer(std::mem::size_of::<XenSysctl>())?;
        let mut s = XenSysctl::zeroed();
        s.cmd = command;
        s.interface_version = self.sysctl_version;
        buf.write(0, s)?;
        buf.write(SYSCTL_PAYLOAD_OFFSET, payload)?;
        self.call_with_buf(hypercall::SYSCTL, [buf.addr() as u64, 0, 0, 0, 0], &buf)?;
        Ok(buf.read(SYSCTL_PAYLOAD_OFFSET)?)
    }

    fn op_with<P: Pod>(&self, hcall: u64, cmd: u64, payload: P) -> Result<(i64, P), CtrlError> {
        let buf = self.privcmd.alloc_buffer(std::mem::size_of::<P>())?;
        buf.write(0, payload)?;
        let rc = self.call_with_buf(hcall, [cmd, buf.addr() as u64, 0, 0, 0], &buf)?;
        Ok((rc, buf.read(0)?))
    }
}

impl DomainControl for XenCtrl {
    fn xen_version(&self) -> Result<XenVersion, CtrlError> {
        let extra = self.xenver_string(XENVER_EXTRAVERSION, XEN_EXTRAVERSION_LEN)?;
        let changeset = self.xenver_string(XENVER_CHANGESET, XEN_CHANGESET_INFO_LEN)?;
        let capabilities = self.xenver_string(XENVER_CAPABILITIES, XEN_CAPABILITIES_INFO_LEN)?;
        let commandline = self.xenver_string(XENVER_COMMANDLINE, XEN_COMMANDLINE_LEN)?;
        // SAFETY: XENVER_pagesize takes no argument pointer.
        let pagesize = unsafe {
            self.privcmd
                .hypercall(hypercall::XEN_VERSION, [XENVER_PAGESIZE, 0, 0, 0, 0])
        }?;
        let (_, pp) = self.op_with(
            hypercall::XEN_VERSION,
            XENVER_PLATFORM_PARAMETERS,
            XenPlatformParameters::default(),
        )?;
        let build_id = self.build_id()?;
        let (_, ci) = self.op_with(
            hypercall::XEN_VERSION,
            XENVER_COMPILE_INFO,
            XenCompileInfo::zeroed(),
        )?;
        Ok(XenVersion {
            major: self.major,
            minor: self.minor,
            extra,
            changeset,
            capabilities,
            pagesize: pagesize as u64,
            virt_start: pp.virt_start,
            commandline,
            compiler: c_string(&ci.compiler),
            compile_by: c_string(&ci.compile_by),
            compile_domain: c_string(&ci.compile_domain),
            compile_date: c_string(&ci.compile_date),
            build_id,
        })
    }

    fn physinfo(&self) -> Result<PhysInfo, CtrlError> {
        let mut p: PhysInfo = self
            .sysctl(XEN_SYSCTL_PHYSINFO, XenSysctlPhysinfo::default())?
            .into();
        let count = |cmd: u64| {
            // SAFETY: these memory_op sub-commands take no argument pointer.
            match unsafe {
                self.privcmd
                    .hypercall(hypercall::MEMORY_OP, [cmd, 0, 0, 0, 0])
            } {
                Ok(n) => Some(n as u64),
                Err(e) => {
                    tracing::debug!("memory_op {cmd}: {e}");
                    None
                }
            }
        };
        p.sharing_freed_pages = count(XENMEM_GET_SHARING_FREED_PAGES);
        p.sharing_used_frames = count(XENMEM_GET_SHARING_SHARED_PAGES);
        Ok(p)
    }

    fn read_console_chunk(
        &self,
        index: u32,
        max: u32,
        clear: bool,
    ) -> Result<(Vec<u8>, u32), CtrlError> {
        let buf = self.privcmd.alloc_buffer(max.max(1) as usize)?;
        let req = XenSysctlReadconsole {
            clear: u8::from(clear),
            incremental: 1,
            index,
            buffer: buf.addr() as u64,
            count: max,
            ..Default::default()
        };
        // `buf` stays alive across the call.
        let out = self.sysctl(XEN_SYSCTL_READCONSOLE, req)?;
        let mut bytes = vec![0u8; out.count.min(max) as usize];
        buf.read_bytes(0, &mut bytes)?;
        Ok((bytes, out.index))
    }

    fn send_debug_keys(&self, keys: &[u8]) -> Result<(), CtrlError> {
        let buf = self.privcmd.alloc_buffer(keys.len().max(1))?;
        buf.write_bytes(0, keys)?;
        let req = XenSysctlDebugKeys {
            keys: buf.addr() as u64,
            nr_keys: u32::try_from(keys.len()).map_err(|_| CtrlError::Invalid("too many keys"))?,
            ..Default::default()
        };
        // `buf` stays alive across the call.
        self.sysctl(XEN_SYSCTL_DEBUG_KEYS, req)?;
        Ok(())
    }

    fn free_cpus(&self) -> Result<Vec<u32>, CtrlError> {
        let p = self.sysctl(XEN_SYSCTL_PHYSINFO, XenSysctlPhysinfo::default())?;
        let nr_cpus = p.max_cpu_id as usize + 1;
        let map_bytes = nr_cpus.div_ceil(8);
        let map = self.privcmd.alloc_buffer(map_bytes)?;
        let op = XenSysctlCpupoolOp {
            op: XEN_SYSCTL_CPUPOOL_OP_FREEINFO,
            cpumap: XenctlBitmap {
                bitmap: map.addr() as u64,
                nr_bits: (map_bytes * 8) as u32,
                _pad: 0,
            },
            ..Default::default()
        };
        // `map` stays alive across the call.
        self.sysctl(XEN_SYSCTL_CPUPOOL_OP, op)?;
        let mut bits = vec![0u8; map_bytes];
        map.read_bytes(0, &mut bits)?;
        Ok((0..nr_cpus as u32)
            .filter(|&c| bits[c as usize / 8] & (1 << (c % 8)) != 0)
            .collect())
    }

    fn sched_id(&self) -> Result<u32, CtrlError> {
        Ok(self
            .sysctl(XEN_SYSCTL_SCHED_ID, XenSysctlSchedId::default())?
            .sched_id)
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo, CtrlError> {
        let r = self.domctl(cmd::GETDOMAININFO, domid, XenDomctlGetDomainInfo::zeroed());
        let (_, info) = match r {
            Err(e) if e.errno() == Some(libc::ESRCH) => return Err(CtrlError::NoSuchDomain(domid)),
            r => r?,
        };
        // Before domctl 0x16 Xen answered with the next existing domain.
        if info.domain != domid {
            return Err(CtrlError::NoSuchDomain(domid));
        }
        Ok(info.into())
    }

    fn domain_info_list(&self, first: DomId, max: u32) -> Result<Vec<DomainInfo>, CtrlError> {
        let entry = std::mem::size_of::<XenDomctlGetDomainInfo>();
        let list = self.privcmd.alloc_buffer(entry * max.max(1) as usize)?;
        let req = XenSysctlGetDomainInfoList {
            first_domain: first,
            max_domains: max,
            buffer: list.addr() as u64,
            ..Default::default()
        };
        // The sysctl buffer and `list` are both alive across the call.
        let out = self.sysctl(XEN_SYSCTL_GETDOMAININFOLIST, req)?;
        let n = out.num_domains.min(max) as usize;
        (0..n)
            .map(|i| Ok(list.read::<XenDomctlGetDomainInfo>(i * entry)?.into()))
            .collect()
    }

    fn create_domain(&self, config: &CreateDomain) -> Result<DomId, CtrlError> {
        // Xen writes the new domain's id back into the domctl's `domain` field.
        let (d, _) = match encode_createdomain(self.domctl_version, config)? {
            CreateDomainPayload::V15(p) => self
                .domctl(cmd::CREATEDOMAIN, config.domid, p)
                .map(|(d, _)| (d, ()))?,
            CreateDomainPayload::V17(p) => self
                .domctl(cmd::CREATEDOMAIN, config.domid, p)
                .map(|(d, _)| (d, ()))?,
        };
        Ok(d.domain)
    }

    fn create_domain_arch(
        &self,
        config: &CreateDomain,
    ) -> Result<(DomId, crate::abi::arch::ArchDomainConfig), CtrlError> {
        // Xen writes the id into `domain` and the chosen arch config back.
        match encode_createdomain(self.domctl_version, config)? {
            CreateDomainPayload::V15(p) => self
                .domctl(cmd::CREATEDOMAIN, config.domid, p)
                .map(|(d, p)| (d.domain, p.arch)),
            CreateDomainPayload::V17(p) => self
                .domctl(cmd::CREATEDOMAIN, config.domid, p)
                .map(|(d, p)| (d.domain, p.arch)),
        }
    }

    fn vuart_init(
        &self,
        domid: DomId,
        gfn: XenPfn,
        console_domid: DomId,
    ) -> Result<EvtchnPort, CtrlError> {
        let op = domctl::XenDomctlVuartOp {
            cmd: domctl::XEN_DOMCTL_VUART_OP_INIT,
            type_: domctl::XEN_DOMCTL_VUART_TYPE_VPL011,
            gfn,
            console_domid,
            ..Default::default()
        };
        Ok(self.domctl(cmd::VUART_OP, domid, op)?.1.evtchn)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.domctl(cmd::DESTROYDOMAIN, domid, 0u64).map(|_| ())
    }

    fn pause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.domctl(cmd::PAUSEDOMAIN, domid, 0u64).map(|_| ())
    }

    fn unpause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.domctl(cmd::UNPAUSEDOMAIN, domid, 0u64).map(|_| ())
    }

    fn set_max_mem(&self, domid: DomId, max_memkb: u64) -> Result<(), CtrlError> {
        self.domctl(cmd::MAX_MEM, domid, XenDomctlMaxMem { max_memkb })
            .map(|_| ())
    }

    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<(), CtrlError> {
        self.domctl(cmd::MAX_VCPUS, domid, XenDomctlMaxVcpus { max })
            .map(|_| ())
    }

    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<(), CtrlError> {
        self.domctl(
            cmd::SET_ADDRESS_SIZE,
            domid,
            XenDomctlAddressSize { size: bits },
        )
        .map(|_| ())
    }

    fn populate_physmap(
        &self,
        domid: DomId,
        extent_order: u32,
        gfns: &[XenPfn],
    ) -> Result<usize, CtrlError> {
        let list = self.privcmd.alloc_buffer(std::mem::size_of_val(gfns))?;
        for (i, g) in gfns.iter().enumerate() {
            list.write::<u64>(i * 8, *g)?;
        }
        let res = XenMemoryReservation {
            extent_start: list.addr() as u64,
            nr_extents: gfns.len() as u64,
            extent_order,
            mem_flags: 0,
            domid,
            _pad: [0; 3],
        };
        let (rc, _) = self.op_with(hypercall::MEMORY_OP, XENMEM_POPULATE_PHYSMAP, res)?;
        Ok(rc as usize)
    }

    fn hvm_param_get(&self, domid: DomId, index: u32) -> Result<u64, CtrlError> {
        let p = XenHvmParam {
            domid,
            index,
            ..Default::default()
        };
        Ok(self.op_with(hypercall::HVM_OP, HVMOP_GET_PARAM, p)?.1.value)
    }

    fn hvm_param_set(&self, domid: DomId, index: u32, value: u64) -> Result<(), CtrlError> {
        let p = XenHvmParam {
            domid,
            pad: 0,
            index,
            value,
        };
        self.op_with(hypercall::HVM_OP, HVMOP_SET_PARAM, p)
            .map(|_| ())
    }

    fn evtchn_alloc_unbound(&self, domid: DomId, remote: DomId) -> Result<EvtchnPort, CtrlError> {
        let a = EvtchnAllocUnbound {
            dom: domid,
            remote_dom: remote,
            port: 0,
        };
        Ok(self
            .op_with(hypercall::EVENT_CHANNEL_OP, EVTCHNOP_ALLOC_UNBOUND, a)?
            .1
            .port)
    }

    fn gnttab_query_size(&self, domid: DomId) -> Result<(u32, u32), CtrlError> {
        let q = GnttabQuerySize {
            dom: domid,
            ..Default::default()
        };
        let buf = self
            .privcmd
            .alloc_buffer(std::mem::size_of::<GnttabQuerySize>())?;
        buf.write(0, q)?;
        // GNTTABOP_*(cmd, uop, count)
        self.call_with_buf(
            hypercall::GRANT_TABLE_OP,
            [GNTTABOP_QUERY_SIZE, buf.addr() as u64, 1, 0, 0],
            &buf,
        )?;
        let q: GnttabQuerySize = buf.read(0)?;
        if q.status != GNTST_OKAY {
            return Err(CtrlError::Status {
                op: "GNTTABOP_query_size",
                status: i64::from(q.status),
            });
        }
        Ok((q.nr_frames, q.max_nr_frames))
    }

    fn set_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
        ctx: &crate::abi::arch::arm::VcpuGuestContext,
    ) -> Result<(), CtrlError> {
        require_arm64()?;
        let cbuf = self.privcmd.alloc_buffer(std::mem::size_of_val(ctx))?;
        cbuf.write(0, *ctx)?;
        let p = XenDomctlVcpuContext {
            vcpu,
            _pad: 0,
            ctxt: cbuf.addr() as u64,
        };
        // `cbuf` stays alive across the call.
        self.domctl(cmd::SETVCPUCONTEXT, domid, p).map(|_| ())
    }

    fn get_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
    ) -> Result<crate::abi::arch::arm::VcpuGuestContext, CtrlError> {
        require_arm64()?;
        let cbuf = self
            .privcmd
            .alloc_buffer(std::mem::size_of::<crate::abi::arch::arm::VcpuGuestContext>())?;
        let p = XenDomctlVcpuContext {
            vcpu,
            _pad: 0,
            ctxt: cbuf.addr() as u64,
        };
        // `cbuf` stays alive across the call.
        self.domctl(cmd::GETVCPUCONTEXT, domid, p)?;
        Ok(cbuf.read(0)?)
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpus: &[u32],
    ) -> Result<Vec<u32>, CtrlError> {
        self.vcpu_affinity_op(cmd::SETVCPUAFFINITY, domid, vcpu, kind, cpus)
    }

    fn get_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
    ) -> Result<Vec<u32>, CtrlError> {
        self.vcpu_affinity_op(cmd::GETVCPUAFFINITY, domid, vcpu, kind, &[])
    }

    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo, CtrlError> {
        let (_, v) = self.domctl(
            cmd::GETVCPUINFO,
            domid,
            XenDomctlGetVcpuInfo {
                vcpu,
                ..Default::default()
            },
        )?;
        Ok(VcpuInfo {
            vcpu,
            online: v.online != 0,
            blocked: v.blocked != 0,
            running: v.running != 0,
            cpu_time: v.cpu_time,
            cpu: v.cpu,
        })
    }
}

impl XenCtrl {
    /// Set or get one affinity of a vCPU through a CPU map in a hypercall buffer,
    /// which Xen writes back (effective map on a set, current map on a get).
    fn vcpu_affinity_op(
        &self,
        command: u32,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpus: &[u32],
    ) -> Result<Vec<u32>, CtrlError> {
        let bytes = cpumap_bytes(cpus)?;
        let map = self.privcmd.alloc_buffer(bytes.len())?;
        map.write_bytes(0, &bytes)?;
        let bitmap = XenctlBitmap {
            bitmap: map.addr() as u64,
            nr_bits: CPUMAP_BITS,
            _pad: 0,
        };
        let mut p = XenDomctlVcpuAffinity {
            vcpu,
            flags: kind.flag(),
            ..Default::default()
        };
        match kind {
            AffinityKind::Hard => p.cpumap_hard = bitmap,
            AffinityKind::Soft => p.cpumap_soft = bitmap,
        }
        // `map` stays alive across the call.
        self.domctl(command, domid, p)?;
        let mut back = vec![0u8; bytes.len()];
        map.read_bytes(0, &mut back)?;
        Ok(cpumap_cpus(&back))
    }
}

/// The vCPU context domctls use the arm64 layout: refuse them elsewhere.
fn require_arm64() -> Result<(), CtrlError> {
    if cfg!(target_arch = "aarch64") {
        Ok(())
    } else {
        Err(CtrlError::NeedsArm64("the vCPU context domctl"))
    }
}

/// `DOMID_SELF`, re-exported for callers of [`DomainControl::evtchn_alloc_unbound`].
pub const SELF: DomId = DOMID_SELF;

/// Turns an errno into a hypercall error (for fakes).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn errno(e: i32) -> CtrlError {
    CtrlError::Privcmd(PrivcmdError::Hypercall {
        op: 0,
        source: std::io::Error::from_raw_os_error(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_versions_follow_xen_releases() {
        assert_eq!(domctl_interface_version(4, 17), Some(0x15));
        assert_eq!(domctl_interface_version(4, 18), Some(0x16));
        assert_eq!(domctl_interface_version(4, 19), Some(0x17));
        assert_eq!(domctl_interface_version(4, 20), Some(0x17));
        assert_eq!(domctl_interface_version(4, 16), None);
        assert_eq!(domctl_interface_version(4, 21), None);
        assert_eq!(sysctl_interface_version(4, 20), Some(0x15));
        assert_eq!(sysctl_interface_version(5, 0), None);
    }

    #[test]
    fn createdomain_encoding_depends_on_version() {
        let c = CreateDomain {
            max_vcpus: 2,
            grant_opts: 1,
            cpupool_id: 3,
            ..Default::default()
        };
        match encode_createdomain(0x15, &c).expect("encode") {
            CreateDomainPayload::V15(p) => {
                assert_eq!((p.max_vcpus, p.grant_opts, p.cpupool_id), (2, 1, 3))
            }
            other => panic!("wrong payload {other:?}"),
        }
        match encode_createdomain(0x17, &c).expect("encode") {
            CreateDomainPayload::V17(p) => {
                assert_eq!((p.max_vcpus, p.altp2m_opts, p.cpupool_id), (2, 0, 3))
            }
            other => panic!("wrong payload {other:?}"),
        }
        let alt = CreateDomain {
            altp2m_opts: 1,
            ..c
        };
        assert!(matches!(
            encode_createdomain(0x16, &alt),
            Err(CtrlError::Invalid(_))
        ));
    }

    #[test]
    fn domain_info_flags_decode() {
        let d = DomainInfo {
            flags: dominf::PAUSED | dominf::SHUTDOWN | (3 << dominf::SHUTDOWN_SHIFT),
            ..Default::default()
        };
        assert!(d.paused() && d.shutdown() && !d.running() && !d.dying());
        assert_eq!(d.shutdown_reason(), 3);
    }

    #[test]
    fn scheduler_names() {
        assert_eq!(scheduler_name(6), Some("credit2"));
        assert_eq!(scheduler_name(9), Some("null"));
        assert_eq!(scheduler_name(4), None);
    }
}
