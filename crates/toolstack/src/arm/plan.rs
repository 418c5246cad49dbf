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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_text;
    use crate::dtb::{self, Node, Property};

    /// Renders a node the way `dtc -O dts` prints it, one line per property or
    /// node boundary (blank lines left out), skipping the properties named in `skip`.
    fn render(n: &Node, depth: usize, skip: &[&str], out: &mut Vec<String>) {
        let ind = "\t".repeat(depth);
        let name = if n.name.is_empty() { "/" } else { &n.name };
        out.push(format!("{ind}{name} {{"));
        for p in n
            .properties
            .iter()
            .filter(|p| !skip.contains(&p.name.as_str()))
        {
            out.push(format!("{ind}\t{}", render_prop(p)));
        }
        for c in &n.children {
            render(c, depth + 1, skip, out);
        }
        out.push(format!("{ind}}};"));
    }

    /// dtc's heuristics: empty, a printable string list, u32 cells, else bytes.
    fn render_prop(p: &Property) -> String {
        let v = &p.value;
        if v.is_empty() {
            return format!("{};", p.name);
        }
        let printable = v.last() == Some(&0)
            && v[0] != 0
            && !v.windows(2).any(|w| w == [0, 0])
            && v.iter().all(|&c| c == 0 || (0x20..0x7f).contains(&c));
        if printable {
            let s: Vec<String> = p.strings();
            return format!("{} = \"{}\";", p.name, s.join("\\0"));
        }
        if let Some(cells) = p.cells() {
            let c: Vec<String> = cells.iter().map(|c| format!("{c:#04x}")).collect();
            return format!("{} = <{}>;", p.name, c.join(" "));
        }
        let b: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} = [{}];", p.name, b.join(" "))
    }

    /// The fixture's lines, without comments, the dts header and blank lines.
    fn fixture_lines(dts: &str) -> Vec<String> {
        dts.lines()
            .filter(|l| !l.starts_with("//") && !l.trim().is_empty() && l.trim() != "/dts-v1/;")
            .map(str::to_string)
            .collect()
    }

    /// Our DTB for the config of a real xl run, rendered like dtc, line by line.
    fn ours_for(cfg_text: &str, initrd_size: u64) -> (Vec<String>, DomainPlan) {
        // Debian's 6.1.0-56-arm64 Image, as its header says.
        let kernel = KernelImage {
            format: crate::arm::loader::KernelFormat::Arm64Image {
                text_offset: 0,
                image_size: 0x201_0000,
                flags: 0b1010,
            },
            file_size: 32_956_352,
        };
        ours_for_kernel(cfg_text, kernel, initrd_size)
    }

    fn ours_for_kernel(
        cfg_text: &str,
        kernel: KernelImage,
        initrd_size: u64,
    ) -> (Vec<String>, DomainPlan) {
        let cfg = from_text(cfg_text, "guest.cfg", &[]).expect("config");
        let host = HostParams {
            native_gic: Gic::V3,
            xen_version: (4, 17),
            gpaddr_bits: 40,
            clock_frequency: 0,
        };
        let plan =
            plan_domain(&cfg, kernel, Some(initrd_size), host, [0; RNG_SEED_SIZE]).expect("plan");
        let tree = dtb::parse(&plan.dtb).expect("parse").root;
        let mut ours = Vec::new();
        render(&tree, 0, &["rng-seed"], &mut ours);
        (ours, plan)
    }

    /// Our DTB equals what libxl wrote for the same guest on real Xen, property for
    /// property, except the rng-seed (random, and consumed by the guest).
    #[test]
    fn same_dtb_as_libxl_gicv3_2_vcpus() {
        let (ours, plan) = ours_for(
            "name='guest'\nkernel='/guest/Image'\nramdisk='/guest/guest.cpio.gz'\nmemory=128\nvcpus=2\ngic_version='v3'\nextra='console=hvc0 rdinit=/init'\n",
            986_720,
        );
        assert_eq!(
            ours,
            fixture_lines(include_str!("testdata/libxl-4.17.7-gicv3-2vcpu-128m.dts"))
        );
        assert_eq!(
            plan.layout.dtb.start, 0x47ff_f000,
            "libxenguest: devicetree at 0x47fff000"
        );
        assert_eq!(plan.nr_spis, 0);
    }

    #[test]
    fn same_dtb_as_libxl_gicv2_4_vcpus_vuart() {
        let (ours, plan) = ours_for(
            "name='guest'\nkernel='/guest/Image'\nramdisk='/guest/guest.cpio.gz'\nmemory=256\nvcpus=4\ngic_version='v2'\nvuart='sbsa_uart'\nextra='console=hvc0 rdinit=/init'\n",
            2_266_756,
        );
        assert_eq!(
            ours,
            fixture_lines(include_str!(
                "testdata/libxl-4.17.7-gicv2-4vcpu-256m-vuart.dts"
            ))
        );
        // libxenguest: "ramdisk: 0x48000000 -> 0x4822a000", "devicetree: 0x4822a000".
        assert_eq!(
            plan.layout.initrd.map(|r| (r.start, r.end)),
            Some((0x4800_0000, 0x4822_a000))
        );
        assert_eq!(plan.layout.dtb.start, 0x4822_a000);
        assert_eq!(plan.nr_spis, 1);
    }

    #[test]
    fn same_dtb_as_libxl_arm32_zimage() {
        // Debian's 6.1.0-50-armmp-lpae zImage: start 0, end = its size.
        let kernel = KernelImage {
            format: crate::arm::loader::KernelFormat::Arm32Zimage {
                start: 0,
                end: 5_526_016,
            },
            file_size: 5_526_016,
        };
        let (ours, plan) = ours_for_kernel(
            "name='guest'\nkernel='/guest/zImage'\nramdisk='/guest/guest.cpio.gz'\nmemory=1024\nvcpus=2\ngic_version='v2'\nextra='console=hvc0 rdinit=/init'\n",
            kernel,
            2_266_760,
        );
        assert_eq!(
            ours,
            fixture_lines(include_str!(
                "testdata/libxl-4.17.7-arm32-gicv2-2vcpu-1g.dts"
            ))
        );
        // libxenguest: "xen-3.0-armv7l: 0x40008000 -> 0x4054d200", modules at 0x48000000,
        // "devicetree: 0x4822a000".
        assert_eq!(
            (plan.layout.kernel.start, plan.layout.kernel.end),
            (0x4000_8000, 0x4054_d200)
        );
        assert_eq!(plan.layout.initrd.map(|r| r.start), Some(0x4800_0000));
        assert_eq!(plan.layout.dtb.start, 0x4822_a000);
        assert_eq!(
            plan.layout.boot_cpu_state().regs,
            vec![0, 0xffff_ffff, 0x4822_a000]
        );
    }

    #[test]
    fn vuart_asks_for_one_spi_and_default_gic_follows_the_host() {
        let cfg =
            from_text("name='g'\nkernel='/k'\nvuart='sbsa_uart'\n", "g.cfg", &[]).expect("config");
        let kernel = KernelImage {
            format: crate::arm::loader::KernelFormat::Arm64Image {
                text_offset: 0,
                image_size: 0,
                flags: 0,
            },
            file_size: 1 << 20,
        };
        let host = HostParams {
            native_gic: Gic::V2,
            xen_version: (4, 19),
            gpaddr_bits: 40,
            clock_frequency: 0,
        };
        let plan = plan_domain(&cfg, kernel, None, host, [1; RNG_SEED_SIZE]).expect("plan");
        assert_eq!(plan.nr_spis, 1);
        assert_eq!(plan.gic, Gic::V2);
        let tree = dtb::parse(&plan.dtb).expect("parse").root;
        assert!(tree.child("sbsa-pl011").is_some());
        assert!(tree
            .child("hypervisor")
            .expect("hyp")
            .is_compatible("xen,xen-4.19"));
        assert!(tree
            .child("chosen")
            .expect("chosen")
            .property("linux,initrd-start")
            .is_none());
    }
}
