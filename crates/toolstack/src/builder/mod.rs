//! The ARM domain builder: carries out a [`DomainPlan`] on Xen, in the order
//! libxl/libxenguest 4.17 do it (libxl_create.c libxl__domain_make,
//! libxl_dom.c libxl__build_pre/libxl__build_dom, xg_dom_arm.c, xg_dom_boot.c,
//! xg_dom_core.c xc_dom_gnttab_seed):
//!
//! createdomain (GIC, SPIs, vCPUs, grant/maptrack frames, handle = UUID) → read
//! back the GIC Xen chose and the guest's address size → plan the DTB with them →
//! max_vcpus → setmaxmem → event channels for xenstore and console (unbound, for
//! dom0) → set_address_size → magic pages populated and cleared → HVM params →
//! grant entries 0 and 1 for dom0 ([`start`] ends here) → populate RAM with the
//! largest extents → copy kernel, initrd and DTB in (by grant copy through borrowed
//! grant entries when /dev/xen/gntdev is there, else through foreign mappings as
//! libxenguest; see `Copier`) → vpl011 (vuart) → vCPU 0's context ([`finish`]).
//! libxenguest makes the magic pages after RAM; here they come first, so that
//! everything the xenstore tree names exists once [`start`] returns and the caller
//! can write the tree while [`finish`] runs.
//!
//! Any failure destroys the domain and names the step that failed. The domain is
//! left paused; the caller writes xenstore ([`crate::domain`]), introduces it and
//! unpauses it.

use xen::abi::arch::arm::{VcpuGuestContext, VGCF_ONLINE};
use xen::abi::domctl::{cdf, grant_version};
use xen::abi::grant_table::{
    GrantEntryV1, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE, GTF_PERMIT_ACCESS,
};
use xen::abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen::abi::memory::{XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED};
use xen::abi::xen::GrantRef;
use xen::abi::xen::{DomId, EvtchnPort, XenPfn, XEN_PAGE_SIZE};
use xen::ctrl::CreateDomain;
use xen::{
    AffinityKind, CtrlError, DomainControl, FileImage, Gntdev, GntdevError, GrantPiece,
    MappedMemory, MemError, Privcmd, PrivcmdError,
};

use crate::arm::fdt::RNG_SEED_SIZE;
use crate::arm::layout::{ExtentRun, NR_MAGIC_PAGES, PAGE_SHIFT, PAGE_SIZE};
use crate::arm::loader::{GuestArch, KernelImage};
use crate::arm::plan::{plan_domain, DomainPlan, HostParams, PlanError};
use crate::arm::Gic;
use crate::config::{DomainConfig, GicVersion, Vuart};

/// The domain that runs xenstored and the console backend (dom0).
pub const BACKEND_DOMID: DomId = 0;
/// libxl's default event channel limit (`LIBXL_DEFAULT_EVENT_CHANNELS` is 1023).
pub const DEFAULT_MAX_EVTCHN_PORT: u32 = 1023;
/// libxl's grant frame default as Xen 4.17 applies it (`gnttab_max_frames`).
pub const DEFAULT_MAX_GRANT_FRAMES: i32 = 64;
/// libxl's maptrack frame default as Xen 4.17 applies it (`gnttab_max_maptrack_frames`).
pub const DEFAULT_MAX_MAPTRACK_FRAMES: i32 = 1024;
/// Grant table version for ARM guests (v2 is x86-only).
pub const GRANT_TABLE_VERSION: u32 = 1;
/// Slack libxl adds to a domain's maximum memory (`LIBXL_MAXMEM_CONSTANT`, KiB).
pub const MAXMEM_SLACK_KIB: u64 = 1024;
/// Guest address size assumed when Xen does not report one (before 4.17).
pub const DEFAULT_GPADDR_BITS: u32 = 40;
/// Frames mapped at once while copying images into the guest (4 MiB).
const COPY_CHUNK_PAGES: u64 = 1024;
/// The first grant reference the builder borrows for copying images in: the ones
/// below are the reserved entries (`GNTTAB_NR_RESERVED_ENTRIES`, xen/include/public/
/// grant_table.h), of which 0 and 1 are seeded for the console and xenstore.
const GRANT_COPY_FIRST_REF: GrantRef = 8;
/// Grant entries borrowed at once (frames copied per `IOCTL_GNTDEV_GRANT_COPY`); with
/// [`GRANT_COPY_FIRST_REF`] they stay within the table's first frame (512 v1 entries).
const GRANT_COPY_WINDOW: usize = 256;
/// At most this many threads copy an image in by grant copy at once, each with its
/// own share of the window's entries (one per dom0 vCPU, up to this): Xen's copies
/// then run on several CPUs. Under TCG, one thread's copy of a 31 MiB kernel took
/// ~300 ms of `rxl create`'s ~430.
const MAX_COPY_LANES: usize = 4;
/// Environment variable that makes the builder copy images through foreign mappings
/// even when grant copy is available (`RXL_COPY=map`), for comparing the two.
pub const COPY_MODE_ENV: &str = "RXL_COPY";
/// Extents per populate_physmap call (bounds the hypercall buffer).
const POPULATE_BATCH: usize = 512;
/// Order step between extent sizes (LPAE: 512 entries a level).
const EXTENT_ORDER_STEP: u32 = 9;

/// Maps guest memory for the builder: by frame and the grant table by resource.
/// `Sync`: images are copied in by several threads at once (see `Copier`).
pub trait GuestMemory: Sync {
    /// Maps `gfns` of `domid` contiguously, failing if any frame fails.
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError>;
    /// Maps the first frame of `domid`'s (shared) grant table, writable.
    fn map_grant_table(&self, domid: DomId) -> Result<MappedMemory, PrivcmdError>;
    /// Whether [`GuestMemory::copy_to_grants`] is available; without it images are
    /// copied through foreign mappings.
    fn has_grant_copy(&self) -> bool {
        false
    }
    /// Copies consecutive bytes of `src` to `pieces` of `domid`'s grants without
    /// mapping them (grant copy); `None` when this memory has no grant device.
    fn copy_to_grants(
        &self,
        _domid: DomId,
        _src: &[u8],
        _pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        None
    }
    /// Like [`GuestMemory::copy_to_grants`], from `src`'s bytes at `offset` on,
    /// straight from the file's mapping; `None` when this memory cannot (the
    /// builder then reads those bytes into a buffer and uses `copy_to_grants`).
    fn copy_file_to_grants(
        &self,
        _domid: DomId,
        _src: &FileImage,
        _offset: usize,
        _pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        None
    }
}

/// An image's bytes as the builder copies them in: in memory (the DTB) or a
/// file mapped by [`FileImage`] (kernel and initrd: Xen's grant copy reads
/// them from the page cache, with no read pass into a buffer first).
#[derive(Debug, Clone, Copy)]
pub enum ImageBytes<'a> {
    Memory(&'a [u8]),
    File {
        image: &'a FileImage,
        offset: usize,
        len: usize,
    },
}

impl<'a> ImageBytes<'a> {
    /// The whole of a mapped file.
    pub fn file(image: &'a FileImage) -> Self {
        Self::File {
            image,
            offset: 0,
            len: image.len(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Memory(b) => b.len(),
            Self::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `at` (clamped to what there is).
    fn slice(self, at: usize, len: usize) -> Self {
        let at = at.min(self.len());
        let len = len.min(self.len() - at);
        match self {
            Self::Memory(b) => Self::Memory(&b[at..at + len]),
            Self::File { image, offset, .. } => Self::File {
                image,
                offset: offset + at,
                len,
            },
        }
    }

    /// Consecutive pieces of `size` bytes (the last one shorter).
    fn chunks(self, size: usize) -> impl Iterator<Item = ImageBytes<'a>> {
        let size = size.max(1);
        (0..self.len().div_ceil(size)).map(move |i| self.slice(i * size, size))
    }

    /// The bytes themselves: borrowed from memory, or read from the file (once,
    /// with `pread`) into `buf`.
    fn bytes<'b>(self, buf: &'b mut Vec<u8>) -> Result<&'b [u8], MemError>
    where
        'a: 'b,
    {
        match self {
            Self::Memory(b) => Ok(b),
            Self::File { image, offset, len } => {
                buf.resize(len, 0);
                image.read_at(offset, buf)?;
                Ok(buf)
            }
        }
    }
}

/// Guest memory on real Xen: privcmd's foreign mappings, and the grant device for
/// copying kernel and initrd in when it is there (see `Copier`).
#[derive(Debug)]
pub struct XenGuestMemory<'a> {
    privcmd: &'a Privcmd,
    gntdev: Option<Gntdev>,
}

impl<'a> XenGuestMemory<'a> {
    /// Opens /dev/xen/gntdev next to `privcmd`; without it (module not loaded, or
    /// `RXL_COPY=map`) images are copied through foreign mappings only.
    pub fn new(privcmd: &'a Privcmd) -> Self {
        let gntdev = if std::env::var(COPY_MODE_ENV).is_ok_and(|v| v == "map") {
            None
        } else {
            Gntdev::open()
                .inspect_err(|e| tracing::debug!("no grant copy for the builder: {e}"))
                .ok()
        };
        Self { privcmd, gntdev }
    }
}

impl GuestMemory for XenGuestMemory<'_> {
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        self.privcmd.map_foreign(domid, gfns, writable)
    }
    fn map_grant_table(&self, domid: DomId) -> Result<MappedMemory, PrivcmdError> {
        GuestMemory::map_grant_table(self.privcmd, domid)
    }
    fn has_grant_copy(&self) -> bool {
        self.gntdev.is_some()
    }
    fn copy_to_grants(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        Some(self.gntdev.as_ref()?.copy_to_grants(domid, src, pieces))
    }
    fn copy_file_to_grants(
        &self,
        domid: DomId,
        src: &FileImage,
        offset: usize,
        pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        Some(
            self.gntdev
                .as_ref()?
                .copy_file_to_grants(domid, src, offset, pieces),
        )
    }
}

impl GuestMemory for Privcmd {
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        Privcmd::map_foreign(self, domid, gfns, writable)
    }
    fn map_grant_table(&self, domid: DomId) -> Result<MappedMemory, PrivcmdError> {
        self.map_resource(
            domid,
            XENMEM_RESOURCE_GRANT_TABLE.into(),
            XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
            0,
            1,
            true,
        )
    }
}

/// Why a build failed: the step and the cause.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{step} failed")]
    Xen {
        step: &'static str,
        #[source]
        source: CtrlError,
    },
    #[error("{step} failed")]
    Map {
        step: &'static str,
        #[source]
        source: PrivcmdError,
    },
    #[error("{step} failed")]
    Memory {
        step: &'static str,
        #[source]
        source: MemError,
    },
    #[error("planning the guest's layout and device tree failed")]
    Plan(#[from] PlanError),
    #[error("{step} failed")]
    GrantCopy {
        step: &'static str,
        #[source]
        source: GntdevError,
    },
    #[error("{step}: {what}")]
    Refused { step: &'static str, what: String },
}

fn xen_step(step: &'static str) -> impl FnOnce(CtrlError) -> BuildError {
    move |source| BuildError::Xen { step, source }
}
fn map_step(step: &'static str) -> impl FnOnce(PrivcmdError) -> BuildError {
    move |source| BuildError::Map { step, source }
}
fn mem_step(step: &'static str) -> impl FnOnce(MemError) -> BuildError {
    move |source| BuildError::Memory { step, source }
}

/// What the builder needs besides the config.
#[derive(Debug)]
pub struct BuildInput<'a> {
    pub cfg: &'a DomainConfig,
    pub kernel: KernelImage,
    pub kernel_bytes: ImageBytes<'a>,
    pub initrd: Option<ImageBytes<'a>>,
    pub rng_seed: [u8; RNG_SEED_SIZE],
    /// Xen's (major, minor), for the DTB.
    pub xen_version: (u32, u32),
}

/// A built (paused) domain and what xenstore and the backends need to know of it.
#[derive(Debug, Clone)]
pub struct BuiltDomain {
    pub domid: DomId,
    pub plan: DomainPlan,
    pub store_port: EvtchnPort,
    pub console_port: EvtchnPort,
    pub store_gfn: XenPfn,
    pub console_gfn: XenPfn,
    /// The vpl011's ring frame and event channel, when vuart = "sbsa_uart".
    pub vuart: Option<(XenPfn, EvtchnPort)>,
}

/// The createdomain request for `cfg` (libxl__domain_make / libxl__arch_domain_prepare_config).
pub fn create_request(cfg: &DomainConfig, nr_spis: u32) -> CreateDomain {
    CreateDomain {
        handle: cfg.uuid.0,
        flags: cdf::HVM | cdf::HAP,
        max_vcpus: cfg.max_vcpus,
        max_evtchn_port: DEFAULT_MAX_EVTCHN_PORT,
        max_grant_frames: DEFAULT_MAX_GRANT_FRAMES,
        max_maptrack_frames: DEFAULT_MAX_MAPTRACK_FRAMES,
        grant_opts: grant_version(GRANT_TABLE_VERSION),
        arch: arch_config(cfg.gic_version, nr_spis),
        ..Default::default()
    }
}

#[cfg(target_arch = "aarch64")]
fn arch_config(gic: GicVersion, nr_spis: u32) -> xen::abi::arch::ArchDomainConfig {
    use xen::abi::arch::arm;
    arm::ArchDomainConfig {
        gic_version: match gic {
            GicVersion::V2 => arm::GIC_V2,
            GicVersion::V3 => arm::GIC_V3,
            GicVersion::Native => arm::GIC_NATIVE,
        },
        tee_type: arm::TEE_NONE,
        nr_spis,
        ..Default::default()
    }
}

/// Off arm64 the arch config is x86's: the builder's logic still runs over the fakes.
#[cfg(not(target_arch = "aarch64"))]
fn arch_config(_gic: GicVersion, _nr_spis: u32) -> xen::abi::arch::ArchDomainConfig {
    xen::abi::arch::ArchDomainConfig::default()
}

/// The GIC and timer frequency Xen chose, from createdomain's answer.
#[cfg(target_arch = "aarch64")]
fn arch_result(
    arch: &xen::abi::arch::ArchDomainConfig,
    _asked: GicVersion,
) -> Result<(Gic, u32), BuildError> {
    use xen::abi::arch::arm;
    let gic = match arch.gic_version {
        arm::GIC_V2 => Gic::V2,
        arm::GIC_V3 => Gic::V3,
        other => {
            return Err(BuildError::Refused {
                step: "createdomain",
                what: format!("Xen answered an unknown GIC version {other}"),
            })
        }
    };
    Ok((gic, arch.clock_frequency))
}

#[cfg(not(target_arch = "aarch64"))]
fn arch_result(
    _arch: &xen::abi::arch::ArchDomainConfig,
    asked: GicVersion,
) -> Result<(Gic, u32), BuildError> {
    Ok((
        match asked {
            GicVersion::V2 => Gic::V2,
            GicVersion::V3 | GicVersion::Native => Gic::V3,
        },
        0,
    ))
}

/// Maximum memory Xen allows the domain, KiB (libxl__build_pre).
pub fn max_mem_kib(cfg: &DomainConfig) -> u64 {
    cfg.maxmem_mib.max(cfg.memory_mib) * 1024 + MAXMEM_SLACK_KIB
}

/// Refuses a kernel whose guest type Xen does not run, before anything is made (as
/// libxenguest's xc_dom_compat_check does). Xen on arm64 lists "xen-3.0-armv7l" among
/// its capabilities only when the CPU implements AArch32 at EL1 (arch_get_xen_caps);
/// without it XEN_DOMCTL_set_address_size 32 fails with EINVAL. arm64 guests need no
/// look-up: Xen on arm64 always runs them.
fn check_guest_type<C: DomainControl>(ctl: &C, arch: GuestArch) -> Result<(), BuildError> {
    const STEP: &str = "checking the guest type";
    if arch == GuestArch::Aarch64 {
        return Ok(());
    }
    let caps = ctl.xen_version().map_err(xen_step(STEP))?.capabilities;
    if caps.split_whitespace().any(|c| c == arch.guest_type()) {
        return Ok(());
    }
    Err(BuildError::Refused {
        step: STEP,
        what: format!(
            "the kernel is a 32-bit ARM zImage ({}) but Xen runs only \"{}\" guests here: the CPU has no AArch32 at EL1",
            arch.guest_type(),
            caps.trim()
        ),
    })
}

/// Builds the domain; on failure it is destroyed and the error names the step.
pub fn build<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    input: &BuildInput<'_>,
) -> Result<BuiltDomain, BuildError> {
    let started = start(ctl, mem, input)?;
    finish(ctl, mem, input, started)
}

/// A domain created and set up short of its memory: createdomain, the plan, max
/// vCPUs and affinities, maxmem, the xenstore and console event channels, the
/// address size, and the magic pages with their HVM params and grant entries.
/// Everything its xenstore tree names exists from here on (but a vuart's event
/// channel, which [`finish`] allocates): the tree can be written while [`finish`]
/// populates RAM and copies the images in.
#[derive(Debug)]
pub struct StartedDomain {
    pub domid: DomId,
    pub plan: DomainPlan,
    pub store_port: EvtchnPort,
    pub console_port: EvtchnPort,
    t0: std::time::Instant,
}

impl StartedDomain {
    /// The [`BuiltDomain`] that [`finish`] will return, for a config without a
    /// vuart (`None` with one: its event channel does not exist yet).
    pub fn preview(&self, cfg: &DomainConfig) -> Option<BuiltDomain> {
        if cfg.vuart.is_some() {
            return None;
        }
        let magic = self.plan.layout.magic;
        Some(BuiltDomain {
            domid: self.domid,
            plan: self.plan.clone(),
            store_port: self.store_port,
            console_port: self.console_port,
            store_gfn: magic.xenstore_pfn,
            console_gfn: magic.console_pfn,
            vuart: None,
        })
    }
}

/// The first part of [`build`]: see [`StartedDomain`]. A failure destroys the domain.
pub fn start<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    input: &BuildInput<'_>,
) -> Result<StartedDomain, BuildError> {
    let cfg = input.cfg;
    check_guest_type(ctl, input.kernel.arch())?;
    let nr_spis = match cfg.vuart {
        Some(Vuart::SbsaUart) => {
            crate::arm::layout::GUEST_VPL011_SPI - crate::arm::fdt::GIC_SPI_BASE + 1
        }
        None => 0,
    };
    let req = create_request(cfg, nr_spis);
    let (domid, arch) = ctl
        .create_domain_arch(&req)
        .map_err(xen_step("createdomain"))?;
    tracing::info!(domid, "domain created");
    rollback_on_error(ctl, domid, start_created(ctl, mem, input, domid, &arch))
}

/// The rest of [`build`]: RAM, the images, the vuart and vCPU 0. A failure
/// destroys the domain.
pub fn finish<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    input: &BuildInput<'_>,
    started: StartedDomain,
) -> Result<BuiltDomain, BuildError> {
    let domid = started.domid;
    rollback_on_error(ctl, domid, finish_started(ctl, mem, input, started))
}

/// Destroys the domain when `r` is an error.
fn rollback_on_error<C: DomainControl, T>(
    ctl: &C,
    domid: DomId,
    r: Result<T, BuildError>,
) -> Result<T, BuildError> {
    if r.is_err() {
        if let Err(d) = ctl.destroy_domain(domid) {
            tracing::error!(domid, "rollback: destroying the domain failed: {d}");
        }
    }
    r
}

/// `cpus` and `cpus_soft`: each vCPU's hard and soft affinity, resolved against the
/// host's CPUs (a CPU the host lacks is refused, naming the key), set like
/// libxl__build_pre does right after max_vcpus.
fn set_affinities<C: DomainControl>(
    ctl: &C,
    domid: DomId,
    cfg: &DomainConfig,
) -> Result<(), BuildError> {
    let settings = [
        ("cpus", AffinityKind::Hard, &cfg.cpus),
        ("cpus_soft", AffinityKind::Soft, &cfg.cpus_soft),
    ];
    if settings.iter().all(|(_, _, a)| a.is_none()) {
        return Ok(());
    }
    let nr_cpus = ctl
        .physinfo()
        .map_err(xen_step("physinfo (for cpus)"))?
        .nr_cpus;
    for (key, kind, affinity) in settings {
        let Some(affinity) = affinity else { continue };
        for vcpu in 0..cfg.max_vcpus {
            let Some(list) = affinity.for_vcpu(vcpu) else {
                continue;
            };
            let cpus = list.resolve(nr_cpus).map_err(|e| BuildError::Refused {
                step: key,
                what: format!("vCPU {vcpu}: \"{list}\": {e}"),
            })?;
            let effective = ctl
                .set_vcpu_affinity(domid, vcpu, kind, &cpus)
                .map_err(xen_step("setting a vCPU's affinity"))?;
            tracing::debug!(domid, vcpu, ?kind, ?cpus, ?effective, "vCPU affinity set");
        }
    }
    Ok(())
}

fn start_created<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    input: &BuildInput<'_>,
    domid: DomId,
    arch: &xen::abi::arch::ArchDomainConfig,
) -> Result<StartedDomain, BuildError> {
    let cfg = input.cfg;
    let t0 = std::time::Instant::now();
    let step = |what: &str| tracing::info!(domid, ms = t0.elapsed().as_millis() as u64, "{what}");
    let (gic, clock_frequency) = arch_result(arch, cfg.gic_version)?;
    let info = ctl.domain_info(domid).map_err(xen_step("getdomaininfo"))?;
    let gpaddr_bits = match info.gpaddr_bits {
        0 => DEFAULT_GPADDR_BITS,
        b => u32::from(b),
    };
    let host = HostParams {
        native_gic: gic,
        xen_version: input.xen_version,
        gpaddr_bits,
        clock_frequency,
    };
    let plan = plan_domain(
        cfg,
        input.kernel,
        input.initrd.map(|i| i.len() as u64),
        host,
        input.rng_seed,
    )?;
    if plan.gic != gic {
        return Err(BuildError::Refused {
            step: "createdomain",
            what: format!(
                "asked for {} but Xen gave the domain {}",
                plan.gic.name(),
                gic.name()
            ),
        });
    }
    ctl.set_max_vcpus(domid, cfg.max_vcpus)
        .map_err(xen_step("max_vcpus"))?;
    set_affinities(ctl, domid, cfg)?;
    ctl.set_max_mem(domid, max_mem_kib(cfg))
        .map_err(xen_step("setmaxmem"))?;
    // libxl__build_pre: xenstore's port first, then the console's.
    let store_port = ctl
        .evtchn_alloc_unbound(domid, BACKEND_DOMID)
        .map_err(xen_step("allocating the xenstore event channel"))?;
    let console_port = ctl
        .evtchn_alloc_unbound(domid, BACKEND_DOMID)
        .map_err(xen_step("allocating the console event channel"))?;
    ctl.set_address_size(domid, plan.layout.arch.address_size())
        .map_err(xen_step("set_address_size"))?;
    step("planned; vCPUs, maxmem, event channels and address size set");
    // The magic pages, their HVM params and grant entries come before RAM (libxenguest
    // makes them after it): the tree names them, and is written while RAM is populated.
    let magic = plan.layout.magic;
    let magic_gfns: Vec<XenPfn> = (0..NR_MAGIC_PAGES).map(|i| magic.console_pfn + i).collect();
    let n = ctl
        .populate_physmap(domid, 0, &magic_gfns)
        .map_err(xen_step("populating the magic pages"))?;
    if n != magic_gfns.len() {
        return Err(BuildError::Refused {
            step: "populating the magic pages",
            what: format!("Xen populated {n} of {} pages", magic_gfns.len()),
        });
    }
    let pages = mem
        .map_foreign(domid, &magic_gfns, true)
        .map_err(map_step("mapping the magic pages"))?;
    pages
        .fill(0, pages.len(), 0)
        .map_err(mem_step("clearing the magic pages"))?;
    drop(pages);
    step("magic pages populated and cleared");
    let params = [
        (HVM_PARAM_CONSOLE_PFN, magic.console_pfn),
        (HVM_PARAM_STORE_PFN, magic.xenstore_pfn),
        (HVM_PARAM_MONITOR_RING_PFN, magic.memaccess_pfn),
        (HVM_PARAM_CONSOLE_EVTCHN, u64::from(console_port)),
        (HVM_PARAM_STORE_EVTCHN, u64::from(store_port)),
    ];
    for (index, value) in params {
        ctl.hvm_param_set(domid, index, value)
            .map_err(xen_step("setting the HVM params"))?;
    }
    step("HVM params set");
    seed_grant_table(mem, domid, magic.console_pfn, magic.xenstore_pfn)?;
    step("grant table seeded");
    Ok(StartedDomain {
        domid,
        plan,
        store_port,
        console_port,
        t0,
    })
}

fn finish_started<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    input: &BuildInput<'_>,
    started: StartedDomain,
) -> Result<BuiltDomain, BuildError> {
    let cfg = input.cfg;
    let StartedDomain {
        domid,
        plan,
        store_port,
        console_port,
        t0,
    } = started;
    let step = |what: &str| tracing::info!(domid, ms = t0.elapsed().as_millis() as u64, "{what}");
    for run in &plan.populate {
        populate(ctl, domid, *run)?;
    }
    step("RAM populated");
    let mut copier = Copier::new(mem, domid)?;
    copier.copy_in(
        plan.layout.kernel.start,
        input.kernel_bytes,
        "copying the kernel into guest memory",
    )?;
    if let (Some(r), Some(bytes)) = (plan.layout.initrd, input.initrd) {
        copier.copy_in(r.start, bytes, "copying the initrd into guest memory")?;
    }
    copier.copy_in(
        plan.layout.dtb.start,
        ImageBytes::Memory(&plan.dtb),
        "copying the device tree into guest memory",
    )?;
    copier.finish()?;
    step("kernel, initrd and DTB copied in");
    let magic = plan.layout.magic;
    let vuart = match cfg.vuart {
        Some(Vuart::SbsaUart) => {
            let port = ctl
                .vuart_init(domid, magic.vuart_pfn, BACKEND_DOMID)
                .map_err(xen_step("vuart_op init (vpl011)"))?;
            Some((magic.vuart_pfn, port))
        }
        None => None,
    };
    if vuart.is_some() {
        step("vuart set");
    }
    let ctx = boot_context(&plan);
    ctl.set_vcpu_context(domid, 0, &ctx)
        .map_err(xen_step("setvcpucontext for vCPU 0"))?;
    step("vCPU 0 context set");
    Ok(BuiltDomain {
        domid,
        store_port,
        console_port,
        store_gfn: magic.xenstore_pfn,
        console_gfn: magic.console_pfn,
        vuart,
        plan,
    })
}

/// populate_physmap of one run; when Xen gives fewer extents than asked (no free
/// superpage), the rest is populated with the next smaller extents.
fn populate<C: DomainControl>(ctl: &C, domid: DomId, run: ExtentRun) -> Result<(), BuildError> {
    const STEP: &str = "populating guest RAM";
    let gfns: Vec<XenPfn> = (0..run.count)
        .map(|i| run.base_pfn + (i << run.shift))
        .collect();
    for (chunk_no, chunk) in gfns.chunks(POPULATE_BATCH).enumerate() {
        let done = ctl
            .populate_physmap(domid, run.shift, chunk)
            .map_err(xen_step(STEP))?;
        if done > chunk.len() {
            return Err(BuildError::Refused {
                step: STEP,
                what: format!("Xen claims {done} extents of {} asked", chunk.len()),
            });
        }
        if done < chunk.len() {
            if run.shift == 0 {
                return Err(BuildError::Refused {
                    step: STEP,
                    what: format!(
                        "out of memory: Xen populated {} of {} pages",
                        chunk_no * POPULATE_BATCH + done,
                        gfns.len()
                    ),
                });
            }
            let smaller = run.shift.saturating_sub(EXTENT_ORDER_STEP);
            let left = (chunk.len() - done) as u64;
            tracing::debug!(
                shift = run.shift,
                left,
                "superpages short, falling back to order {smaller}"
            );
            populate(
                ctl,
                domid,
                ExtentRun {
                    base_pfn: chunk[done],
                    shift: smaller,
                    count: left << (run.shift - smaller),
                },
            )?;
            // The fallback covered the rest of this chunk; later chunks go on.
        }
    }
    Ok(())
}

/// Copies images (kernel, initrd, DTB) into the new domain's memory, and counts
/// what each way cost for the step log.
///
/// By grant copy when the memory offers it ([`GuestMemory::copy_to_grants`]): the
/// builder borrows grant entries [`GRANT_COPY_FIRST_REF`].. of the new domain's
/// table, which nothing else uses (the domain has never run; entries 0 and 1,
/// seeded before, are not borrowed), points [`GRANT_COPY_WINDOW`] of them at
/// the next frames with dom0 allowed to write, has Xen copy those pages in one
/// `IOCTL_GNTDEV_GRANT_COPY`, clears them, and at the end zeroes every borrowed
/// entry, so the guest finds its table as Xen made it. This spares what a foreign
/// mapping costs per page on an auto-translated (ARM) dom0, where privcmd maps each
/// frame with its own XENMEM_add_to_physmap_range hypercall and unmaps it with its
/// own XENMEM_remove_from_physmap, a stage-2 change with a TLB flush
/// (drivers/xen/xlate_mmu.c), plus dom0's own copy loop.
///
/// Otherwise (no grant device, `RXL_COPY=map`, or the first grant copy refused)
/// through foreign mappings of [`COPY_CHUNK_PAGES`] frames, as libxenguest does.
struct Copier<'m, M: GuestMemory> {
    mem: &'m M,
    domid: DomId,
    /// The grant table's first frame, while grant copy is in use.
    grants: Option<MappedMemory>,
    /// Whether any grant copy has succeeded (a later failure is then an error, not
    /// a reason to fall back).
    granted: bool,
}

/// What copying one image cost.
#[derive(Debug, Default)]
struct CopyStats {
    /// Mapping ioctls (foreign mappings) or grant copy ioctls.
    calls: u32,
    pages: u64,
    map: std::time::Duration,
    copy: std::time::Duration,
    unmap: std::time::Duration,
}

impl<'m, M: GuestMemory> Copier<'m, M> {
    fn new(mem: &'m M, domid: DomId) -> Result<Self, BuildError> {
        const STEP: &str = "mapping the grant table to copy images in";
        let grants = if mem.has_grant_copy() {
            Some(mem.map_grant_table(domid).map_err(map_step(STEP))?)
        } else {
            None
        };
        Ok(Self {
            mem,
            domid,
            grants,
            granted: false,
        })
    }

    /// Copies `bytes` to guest physical address `addr` (page aligned).
    fn copy_in(
        &mut self,
        addr: u64,
        bytes: ImageBytes<'_>,
        step: &'static str,
    ) -> Result<(), BuildError> {
        if addr % PAGE_SIZE != 0 {
            return Err(BuildError::Refused {
                step,
                what: format!("address {addr:#x} is not page aligned"),
            });
        }
        let first = addr >> PAGE_SHIFT;
        let t0 = std::time::Instant::now();
        let mut stats = CopyStats::default();
        let mut done = 0usize;
        if self.grants.is_some() {
            done = self.copy_granted(first, bytes, &mut stats, step)?;
        }
        let via = if done == bytes.len() {
            "grant copy"
        } else {
            self.copy_mapped(first, bytes, done, &mut stats, step)?;
            "foreign mappings"
        };
        tracing::info!(
            domid = self.domid,
            bytes = bytes.len(),
            pages = stats.pages,
            ioctls = stats.calls,
            map_ms = stats.map.as_millis() as u64,
            copy_ms = stats.copy.as_millis() as u64,
            unmap_ms = stats.unmap.as_millis() as u64,
            ms = t0.elapsed().as_millis() as u64,
            "{step}: done through {via}"
        );
        Ok(())
    }

    /// Grant copy of `bytes` to frames from `first` on; returns how many bytes
    /// went in (all, or 0 when the very first copy was refused and the caller
    /// should fall back to mappings). The first window goes alone (a refusal there
    /// is the fallback's cue); the rest in [`copy_lanes`] threads, lane `l` taking
    /// every `l`-th chunk of `GRANT_COPY_WINDOW / lanes` pages with its own share of
    /// the borrowed entries.
    fn copy_granted(
        &mut self,
        first: XenPfn,
        bytes: ImageBytes<'_>,
        stats: &mut CopyStats,
        step: &'static str,
    ) -> Result<usize, BuildError> {
        let Some(gt) = self.grants.clone() else {
            return Ok(0);
        };
        let mut head = 0;
        if !self.granted {
            head = bytes.len().min(GRANT_COPY_WINDOW * XEN_PAGE_SIZE);
            let window = Window {
                mem: self.mem,
                domid: self.domid,
                gt: &gt,
                first_ref: GRANT_COPY_FIRST_REF,
                step,
            };
            match window.copy(first, bytes.slice(0, head), stats)? {
                Some(Ok(())) => self.granted = true,
                Some(Err(e)) => {
                    tracing::warn!(
                        domid = self.domid,
                        "grant copy refused ({e}); copying through foreign mappings"
                    );
                    self.grants = None;
                    self.clear_window(&gt, step)?;
                    return Ok(0);
                }
                None => return Ok(0),
            }
        }
        let lanes = copy_lanes();
        let lane_pages = GRANT_COPY_WINDOW / lanes;
        let rest_first = first + (head / XEN_PAGE_SIZE) as u64;
        let chunks: Vec<(XenPfn, ImageBytes<'_>)> = bytes
            .slice(head, bytes.len())
            .chunks(lane_pages * XEN_PAGE_SIZE)
            .enumerate()
            .map(|(i, c)| (rest_first + (i * lane_pages) as u64, c))
            .collect();
        let (mem, domid) = (self.mem, self.domid);
        let lane = |l: usize, stats: &mut CopyStats| -> Result<(), BuildError> {
            let window = Window {
                mem,
                domid,
                gt: &gt,
                first_ref: GRANT_COPY_FIRST_REF + (l * lane_pages) as GrantRef,
                step,
            };
            for (pfn, chunk) in chunks.iter().skip(l).step_by(lanes) {
                match window.copy(*pfn, *chunk, stats)? {
                    Some(Ok(())) => {}
                    Some(Err(source)) => return Err(BuildError::GrantCopy { step, source }),
                    None => {
                        return Err(BuildError::Refused {
                            step,
                            what: "the grant device went away during the copy".into(),
                        })
                    }
                }
            }
            Ok(())
        };
        if chunks.len() <= 1 || lanes == 1 {
            for l in 0..lanes {
                lane(l, stats)?;
            }
            return Ok(bytes.len());
        }
        let results: Vec<Result<CopyStats, BuildError>> = std::thread::scope(|s| {
            let lane = &lane;
            let handles: Vec<_> = (0..lanes)
                .map(|l| {
                    s.spawn(move || {
                        let mut st = CopyStats::default();
                        lane(l, &mut st).map(|()| st)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for r in results {
            let st = r?;
            stats.calls += st.calls;
            stats.pages += st.pages;
            stats.map += st.map;
            stats.copy += st.copy;
            stats.unmap += st.unmap;
        }
        Ok(bytes.len())
    }

    /// Foreign-mapping copy of `bytes[done..]` (`done` is page aligned) to frames
    /// from `first` on, [`COPY_CHUNK_PAGES`] frames a mapping.
    fn copy_mapped(
        &self,
        first: XenPfn,
        bytes: ImageBytes<'_>,
        done: usize,
        stats: &mut CopyStats,
        step: &'static str,
    ) -> Result<(), BuildError> {
        let chunk_bytes = (COPY_CHUNK_PAGES * PAGE_SIZE) as usize;
        let first = first + (done / XEN_PAGE_SIZE) as u64;
        let mut buf = Vec::new();
        for (i, chunk) in bytes
            .slice(done, bytes.len())
            .chunks(chunk_bytes)
            .enumerate()
        {
            let start = first + i as u64 * COPY_CHUNK_PAGES;
            let pages = chunk.len().div_ceil(XEN_PAGE_SIZE) as u64;
            let gfns: Vec<XenPfn> = (start..start + pages).collect();
            let t = std::time::Instant::now();
            let m = self
                .mem
                .map_foreign(self.domid, &gfns, true)
                .map_err(map_step(step))?;
            stats.map += t.elapsed();
            let t = std::time::Instant::now();
            let chunk = chunk.bytes(&mut buf).map_err(mem_step(step))?;
            m.write_bytes(0, chunk).map_err(mem_step(step))?;
            stats.copy += t.elapsed();
            let t = std::time::Instant::now();
            drop(m);
            stats.unmap += t.elapsed();
            stats.calls += 1;
            stats.pages += pages;
        }
        Ok(())
    }

    /// Zeroes every borrowed grant entry.
    fn clear_window(&self, gt: &MappedMemory, step: &'static str) -> Result<(), BuildError> {
        let entry = std::mem::size_of::<GrantEntryV1>();
        for i in 0..GRANT_COPY_WINDOW {
            let off = (GRANT_COPY_FIRST_REF as usize + i) * entry;
            gt.write(off, GrantEntryV1::default())
                .map_err(mem_step(step))?;
        }
        Ok(())
    }

    /// Leaves the borrowed entries as Xen made them (entries 0 and 1 are not borrowed).
    fn finish(self) -> Result<(), BuildError> {
        match &self.grants {
            Some(gt) => self.clear_window(gt, "clearing the grant entries used for copying"),
            None => Ok(()),
        }
    }
}

/// How many threads copy an image in by grant copy: one per CPU dom0 may run on,
/// at most [`MAX_COPY_LANES`]; a divisor of [`GRANT_COPY_WINDOW`].
fn copy_lanes() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lanes = cpus.clamp(1, MAX_COPY_LANES);
    // 1, 2 or 4 (powers of two divide the window).
    1 << lanes.ilog2()
}

/// Consecutive borrowed grant entries from `first_ref` and what copying through
/// them needs: one thread's share of the window.
struct Window<'a, M: GuestMemory> {
    mem: &'a M,
    domid: DomId,
    gt: &'a MappedMemory,
    first_ref: GrantRef,
    step: &'static str,
}

impl<M: GuestMemory> Window<'_, M> {
    /// Points the entries at the frames from `first` on (as many as `chunk` has
    /// pages, at most the window's), has Xen copy `chunk` into them, and clears
    /// them. The outer error is the grant table's; the inner the copy's answer.
    fn copy(
        &self,
        first: XenPfn,
        chunk: ImageBytes<'_>,
        stats: &mut CopyStats,
    ) -> Result<Option<Result<(), GntdevError>>, BuildError> {
        let step = self.step;
        let entry = std::mem::size_of::<GrantEntryV1>();
        let t = std::time::Instant::now();
        let mut pieces = Vec::with_capacity(chunk.len().div_ceil(XEN_PAGE_SIZE));
        for (i, page) in chunk.chunks(XEN_PAGE_SIZE).enumerate() {
            let gfn = first + i as u64;
            let frame = u32::try_from(gfn).map_err(|_| BuildError::Refused {
                step,
                what: format!("frame {gfn:#x} does not fit a v1 grant entry"),
            })?;
            let gref = self.first_ref + i as GrantRef;
            let e = GrantEntryV1 {
                flags: 0,
                domid: BACKEND_DOMID,
                frame,
            };
            self.gt
                .write(gref as usize * entry, e)
                .map_err(mem_step(step))?;
            pieces.push(GrantPiece {
                gref,
                offset: 0,
                // A page is XEN_PAGE_SIZE (4096) bytes at most: fits a u16.
                len: page.len() as u16,
            });
        }
        // As xc_dom_gnttab_seed: frame and domid before the flags that make the
        // entry valid.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        for p in &pieces {
            self.gt
                .write::<u16>(p.gref as usize * entry, GTF_PERMIT_ACCESS)
                .map_err(mem_step(step))?;
        }
        stats.map += t.elapsed();
        let t = std::time::Instant::now();
        let result = match chunk {
            ImageBytes::Memory(b) => self.mem.copy_to_grants(self.domid, b, &pieces),
            ImageBytes::File { image, offset, len } => {
                match self
                    .mem
                    .copy_file_to_grants(self.domid, image, offset, &pieces)
                {
                    Some(r) => Some(r),
                    None => {
                        let mut buf = vec![0u8; len];
                        image.read_at(offset, &mut buf).map_err(mem_step(step))?;
                        self.mem.copy_to_grants(self.domid, &buf, &pieces)
                    }
                }
            }
        };
        stats.copy += t.elapsed();
        stats.calls += 1;
        // The copy is synchronous: Xen holds none of the entries any more.
        let t = std::time::Instant::now();
        for p in &pieces {
            self.gt
                .write::<u16>(p.gref as usize * entry, 0)
                .map_err(mem_step(step))?;
        }
        stats.unmap += t.elapsed();
        if let Some(Ok(())) = result {
            stats.pages += pieces.len() as u64;
        }
        Ok(result)
    }
}

/// Grant entries 0 (console) and 1 (xenstore) for dom0, as xc_dom_gnttab_seed:
/// frame and domid first, the flags that make the entry valid last.
fn seed_grant_table<M: GuestMemory>(
    mem: &M,
    domid: DomId,
    console_gfn: XenPfn,
    xenstore_gfn: XenPfn,
) -> Result<(), BuildError> {
    const STEP: &str = "seeding the grant table";
    let gt = mem.map_grant_table(domid).map_err(map_step(STEP))?;
    let entry = std::mem::size_of::<GrantEntryV1>();
    for (gref, gfn) in [
        (GNTTAB_RESERVED_CONSOLE, console_gfn),
        (GNTTAB_RESERVED_XENSTORE, xenstore_gfn),
    ] {
        let frame = u32::try_from(gfn).map_err(|_| BuildError::Refused {
            step: STEP,
            what: format!("frame {gfn:#x} does not fit a v1 grant entry"),
        })?;
        let off = gref as usize * entry;
        let base = GrantEntryV1 {
            flags: 0,
            domid: BACKEND_DOMID,
            frame,
        };
        gt.write(off, base).map_err(mem_step(STEP))?;
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        gt.write::<u16>(off, GTF_PERMIT_ACCESS)
            .map_err(mem_step(STEP))?;
    }
    Ok(())
}

/// vCPU 0's context from the plan (xg_dom_arm.c vcpu_arm64/vcpu_arm32).
pub fn boot_context(plan: &DomainPlan) -> VcpuGuestContext {
    let st = plan.layout.boot_cpu_state();
    let mut ctx = VcpuGuestContext::default();
    ctx.user_regs.pc64 = st.pc;
    for (i, r) in st.regs.iter().enumerate() {
        ctx.user_regs.x[i] = *r;
    }
    ctx.user_regs.cpsr = st.cpsr;
    ctx.sctlr = st.sctlr;
    // AArch32 guests: r0..r2 and pc32 alias x0..x2 and pc64 in this layout.
    ctx.flags = VGCF_ONLINE;
    ctx
}

#[cfg(test)]
mod tests;
