//! From a validated [`DomainConfig`] and a probed kernel to the whole boot plan:
//! GIC, SPIs, RAM banks and extents, kernel/initrd/DTB placement, the DTB itself and
//! vCPU 0's state. Needs no hypervisor: `rxl create --dry-run` prints it, and the
//! builder will carry it out.

use super::fdt::{create_fdt, FdtConfig, FdtError, RNG_SEED_SIZE};
use super::layout::{self, BootLayout, ExtentRun, LayoutError, Range, GUEST_VPL011_SPI};
use super::loader::KernelImage;
use super::Gic;
use crate::config::{DomainConfig, GicVersion, Vuart};

/// What the host (Xen) decides, given to the plan: known on real Xen after
/// createdomain and `xl info`; assumed by a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostParams {
    /// What `gic_version = "default"` becomes.
    pub native_gic: Gic,
    /// Xen's version, written into the DTB's model and compatibles.
    pub xen_version: (u32, u32),
    /// The guest physical address size Xen gives the domain (limits extended regions).
    pub gpaddr_bits: u32,
    /// The timer frequency Xen returns from createdomain (0 when the host DT has none).
    pub clock_frequency: u32,
}

/// Plan errors.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Fdt(#[from] FdtError),
    #[error("memory {0} MiB does not fit the address space")]
    MemoryOverflow(u64),
}

/// Everything the builder needs to make the domain.
#[derive(Debug, Clone)]
pub struct DomainPlan {
    pub gic: Gic,
    /// SPIs to ask createdomain for (libxl: enough to reach the vpl011's SPI).
    pub nr_spis: u32,
    pub kernel: KernelImage,
    pub layout: BootLayout,
    /// populate_physmap calls, bank 0 then bank 1.
    pub populate: Vec<ExtentRun>,
    pub ext_regions: Vec<Range>,
    pub dtb: Vec<u8>,
}

/// Builds the plan. `initrd_size` is the initrd file's size; `rng_seed` fills
/// /chosen/rng-seed (the caller draws it from the host's random source).
pub fn plan_domain(
    cfg: &DomainConfig,
    kernel: KernelImage,
    initrd_size: Option<u64>,
    host: HostParams,
    rng_seed: [u8; RNG_SEED_SIZE],
) -> Result<DomainPlan, PlanError> {
    let gic = match cfg.gic_version {
        GicVersion::V2 => Gic::V2,
        GicVersion::V3 => Gic::V3,
        GicVersion::Native => host.native_gic,
    };
    let nr_spis = match cfg.vuart {
        Some(Vuart::SbsaUart) => GUEST_VPL011_SPI - super::fdt::GIC_SPI_BASE + 1,
        None => 0,
    };
    let memory_bytes = cfg
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or(PlanError::MemoryOverflow(cfg.memory_mib))?;
    let banks = layout::ram_banks(memory_bytes)?;
    let ext_regions = layout::extended_regions(&banks, host.gpaddr_bits);
    let mut fdt_cfg = FdtConfig {
        arch: kernel.arch(),
        xen_version: host.xen_version,
        max_vcpus: cfg.max_vcpus,
        gic,
        banks: banks.clone(),
        ext_regions: ext_regions.clone(),
        bootargs: cfg.cmdline.clone(),
        // Placeholder of the final size: only the address changes below.
        initrd: initrd_size.map(|_| Range { start: 0, end: 0 }),
        vuart: cfg.vuart.is_some(),
        rng_seed,
        clock_frequency: host.clock_frequency,
    };
    let sizing = create_fdt(&fdt_cfg)?;
    let layout = layout::plan(memory_bytes, &kernel, initrd_size, sizing.len() as u64)?;
    fdt_cfg.initrd = layout.initrd;
    let dtb = create_fdt(&fdt_cfg)?;
    if dtb.len() != sizing.len() {
        return Err(FdtError::SizeChanged {
            before: sizing.len(),
            after: dtb.len(),
        }
        .into());
    }
    let populate = layout
        .banks
        .iter()
        .flat_map(|b| layout::populate_plan(*b))
        .collect();
    Ok(DomainPlan {
        gic,
        nr_spis,
        kernel,
        layout,
        populate,
        ext_regions,
        dtb,
    })
}
