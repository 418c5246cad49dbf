//! The guest device tree, node for node and property for property what libxl 4.17
//! writes (tools/libs/light/libxl_arm.c: libxl__prepare_dtb and the make_* and
//! finalize functions), one function per node.
//!
//! Differences from libxl's blob that do not change the tree: libxl writes both RAM
//! bank nodes and turns the unused one into NOP tokens; we leave it out. libxl
//! writes placeholders and patches them after placement; we write the final values
//! (the blob's size does not depend on them, see [`create_fdt`]).

use vm_fdt::{FdtWriter, FdtWriterNode};

use super::layout::{
    Range, GUEST_EVTCHN_PPI, GUEST_GICC_BASE, GUEST_GICC_SIZE, GUEST_GICD_BASE, GUEST_GICD_SIZE,
    GUEST_GICV3_GICD_BASE, GUEST_GICV3_GICD_SIZE, GUEST_GICV3_GICR0_BASE, GUEST_GICV3_GICR0_SIZE,
    GUEST_GNTTAB_BASE, GUEST_GNTTAB_SIZE, GUEST_PL011_BASE, GUEST_PL011_SIZE,
    GUEST_TIMER_PHYS_NS_PPI, GUEST_TIMER_PHYS_S_PPI, GUEST_TIMER_VIRT_PPI, GUEST_VPL011_SPI,
};
use super::loader::GuestArch;
use super::Gic;

/// The GIC's phandle (xen/include/public/device_tree_defs.h GUEST_PHANDLE_GIC).
pub const GUEST_PHANDLE_GIC: u32 = 65000;
/// Root cells (device_tree_defs.h GUEST_ROOT_ADDRESS_CELLS / _SIZE_CELLS).
pub const GUEST_ROOT_ADDRESS_CELLS: u32 = 2;
pub const GUEST_ROOT_SIZE_CELLS: u32 = 2;
/// GIC interrupt specifiers have 3 cells: type, number, flags
/// (Linux Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml).
pub const GIC_INTERRUPT_CELLS: u32 = 3;
pub const GIC_SPI: u32 = 0;
pub const GIC_PPI: u32 = 1;
/// First PPI and SPI INTIDs.
pub const GIC_PPI_BASE: u32 = 16;
pub const GIC_SPI_BASE: u32 = 32;
/// Trigger flags (device_tree_defs.h DT_IRQ_TYPE_*).
pub const DT_IRQ_TYPE_LEVEL_HIGH: u32 = 4;
pub const DT_IRQ_TYPE_LEVEL_LOW: u32 = 8;
/// PPIs go to all (up to 4 in the GICv2 binding's mask) CPUs.
pub const PPI_ALL_CPUS_MASK: u32 = 0xf;
/// PSCI function ids libxl writes for the 0.1 binding (xen/arch/arm/include/asm/psci.h).
pub const PSCI_CPU_OFF: u32 = 1;
pub const PSCI_CPU_ON: u32 = 2;
/// Size of /chosen/rng-seed: "1024 bit enough to mix Linux CRNG state several times".
pub const RNG_SEED_SIZE: usize = 128;
/// vpl011 baud rate libxl writes.
pub const VPL011_CURRENT_SPEED: u32 = 115_200;

/// FDT writing errors.
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    #[error("writing the device tree failed")]
    Write(#[from] vm_fdt::Error),
    #[error(
        "the device tree changed size between layout and final write ({before} -> {after} bytes)"
    )]
    SizeChanged { before: usize, after: usize },
}

/// Everything the guest's device tree describes.
#[derive(Debug, Clone)]
pub struct FdtConfig {
    pub arch: GuestArch,
    /// Xen's version (major, minor) as `xl info` reports it, for model and compatibles.
    pub xen_version: (u32, u32),
    /// cpu nodes written: libxl writes max_vcpus of them.
    pub max_vcpus: u32,
    pub gic: Gic,
    /// Populated RAM per bank.
    pub banks: Vec<Range>,
    /// Extended regions offered to the guest after the grant table region.
    pub ext_regions: Vec<Range>,
    pub bootargs: Option<String>,
    /// initrd as placed (end page-rounded like libxenguest's segment).
    pub initrd: Option<Range>,
    pub vuart: bool,
    pub rng_seed: [u8; RNG_SEED_SIZE],
    /// Timer frequency Xen reports at createdomain (0: leave it to the guest).
    pub clock_frequency: u32,
}

/// The MPIDR of vCPU `id` (libxl__compute_mpdir): Aff0 = id & 0xf, Aff1 = id >> 4.
pub fn mpidr(id: u32) -> u64 {
    u64::from(id & 0xf) | (u64::from((id >> 4) & 0xff) << 8)
}

/// An interrupt specifier for INTID `irq` (libxl set_interrupt).
fn interrupt(irq: u32, cpumask: u32, level: u32) -> [u32; 3] {
    if irq < GIC_SPI_BASE {
        [GIC_PPI, irq - GIC_PPI_BASE, (cpumask << 8) | level]
    } else {
        [GIC_SPI, irq - GIC_SPI_BASE, (cpumask << 8) | level]
    }
}

/// `reg` cells for 2-cell address and size ranges.
fn reg64(ranges: &[(u64, u64)]) -> Vec<u64> {
    ranges.iter().flat_map(|&(b, s)| [b, s]).collect()
}

fn interrupts(fdt: &mut FdtWriter, ints: &[[u32; 3]]) -> Result<(), FdtError> {
    let cells: Vec<u32> = ints.iter().flatten().copied().collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
    Ok(())
}

fn compatible(fdt: &mut FdtWriter, list: &[&str]) -> Result<(), FdtError> {
    fdt.property_string_list("compatible", list.iter().map(|s| s.to_string()).collect())?;
    Ok(())
}

fn end(fdt: &mut FdtWriter, node: FdtWriterNode) -> Result<(), FdtError> {
    fdt.end_node(node)?;
    Ok(())
}

fn root_properties(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    let (maj, min) = c.xen_version;
    fdt.property_string("model", &format!("XENVM-{maj}.{min}"))?;
    compatible(fdt, &[&format!("xen,xenvm-{maj}.{min}"), "xen,xenvm"])?;
    fdt.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
    fdt.property_u32("#address-cells", GUEST_ROOT_ADDRESS_CELLS)?;
    fdt.property_u32("#size-cells", GUEST_ROOT_SIZE_CELLS)?;
    Ok(())
}

fn chosen_node(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    let n = fdt.begin_node("chosen")?;
    if let Some(args) = &c.bootargs {
        fdt.property_string("bootargs", args)?;
    }
    if let Some(initrd) = c.initrd {
        fdt.property_u64("linux,initrd-start", initrd.start)?;
        fdt.property_u64("linux,initrd-end", initrd.end)?;
    }
    fdt.property("rng-seed", &c.rng_seed)?;
    end(fdt, n)
}

fn cpus_node(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    let cpu_compat = match c.arch {
        GuestArch::Aarch64 => "arm,armv8",
        GuestArch::Arm32 => "arm,cortex-a15",
    };
    let n = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for id in 0..c.max_vcpus {
        let m = mpidr(id);
        let cpu = fdt.begin_node(&format!("cpu@{m:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        compatible(fdt, &[cpu_compat])?;
        fdt.property_string("enable-method", "psci")?;
        // One address cell: MPIDR affinity fits 32 bits for 128 vCPUs.
        fdt.property_array_u32("reg", &[u32::try_from(m).unwrap_or(u32::MAX)])?;
        end(fdt, cpu)?;
    }
    end(fdt, n)
}

fn psci_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let n = fdt.begin_node("psci")?;
    compatible(fdt, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])?;
    fdt.property_string("method", "hvc")?;
    fdt.property_u32("cpu_off", PSCI_CPU_OFF)?;
    fdt.property_u32("cpu_on", PSCI_CPU_ON)?;
    end(fdt, n)
}

fn memory_nodes(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    for bank in c.banks.iter().filter(|b| b.size() > 0) {
        let n = fdt.begin_node(&format!("memory@{:x}", bank.start))?;
        fdt.property_string("device_type", "memory")?;
        fdt.property_array_u64("reg", &reg64(&[(bank.start, bank.size())]))?;
        end(fdt, n)?;
    }
    Ok(())
}

fn gic_common(fdt: &mut FdtWriter, regs: &[(u64, u64)]) -> Result<(), FdtError> {
    fdt.property_u32("#interrupt-cells", GIC_INTERRUPT_CELLS)?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u64("reg", &reg64(regs))?;
    fdt.property_u32("linux,phandle", GUEST_PHANDLE_GIC)?;
    fdt.property_phandle(GUEST_PHANDLE_GIC)?;
    Ok(())
}

fn gicv2_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let n = fdt.begin_node(&format!("interrupt-controller@{GUEST_GICD_BASE:x}"))?;
    compatible(fdt, &["arm,cortex-a15-gic", "arm,cortex-a9-gic"])?;
    gic_common(
        fdt,
        &[
            (GUEST_GICD_BASE, GUEST_GICD_SIZE),
            (GUEST_GICC_BASE, GUEST_GICC_SIZE),
        ],
    )?;
    end(fdt, n)
}

fn gicv3_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    let n = fdt.begin_node(&format!("interrupt-controller@{GUEST_GICV3_GICD_BASE:x}"))?;
    compatible(fdt, &["arm,gic-v3"])?;
    gic_common(
        fdt,
        &[
            (GUEST_GICV3_GICD_BASE, GUEST_GICV3_GICD_SIZE),
            (GUEST_GICV3_GICR0_BASE, GUEST_GICV3_GICR0_SIZE),
        ],
    )?;
    end(fdt, n)
}

fn timer_node(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    let timer_compat = match c.arch {
        GuestArch::Aarch64 => "arm,armv8-timer",
        GuestArch::Arm32 => "arm,armv7-timer",
    };
    let n = fdt.begin_node("timer")?;
    compatible(fdt, &[timer_compat])?;
    // Binding order: secure physical, non-secure physical, virtual.
    interrupts(
        fdt,
        &[
            interrupt(
                GUEST_TIMER_PHYS_S_PPI,
                PPI_ALL_CPUS_MASK,
                DT_IRQ_TYPE_LEVEL_LOW,
            ),
            interrupt(
                GUEST_TIMER_PHYS_NS_PPI,
                PPI_ALL_CPUS_MASK,
                DT_IRQ_TYPE_LEVEL_LOW,
            ),
            interrupt(
                GUEST_TIMER_VIRT_PPI,
                PPI_ALL_CPUS_MASK,
                DT_IRQ_TYPE_LEVEL_LOW,
            ),
        ],
    )?;
    if c.clock_frequency != 0 {
        fdt.property_u32("clock-frequency", c.clock_frequency)?;
    }
    end(fdt, n)
}

fn hypervisor_node(fdt: &mut FdtWriter, c: &FdtConfig) -> Result<(), FdtError> {
    let (maj, min) = c.xen_version;
    let n = fdt.begin_node("hypervisor")?;
    compatible(fdt, &[&format!("xen,xen-{maj}.{min}"), "xen,xen"])?;
    // reg 0: grant table space; reg 1..N: extended regions.
    let mut regs = vec![(GUEST_GNTTAB_BASE, GUEST_GNTTAB_SIZE)];
    regs.extend(c.ext_regions.iter().map(|r| (r.start, r.size())));
    fdt.property_array_u64("reg", &reg64(&regs))?;
    // Event channel upcall: active-low level-sensitive, all CPUs.
    interrupts(
        fdt,
        &[interrupt(
            GUEST_EVTCHN_PPI,
            PPI_ALL_CPUS_MASK,
            DT_IRQ_TYPE_LEVEL_LOW,
        )],
    )?;
    end(fdt, n)
}

fn vpl011_node(fdt: &mut FdtWriter) -> Result<(), FdtError> {
    // libxl names this node without a unit address.
    let n = fdt.begin_node("sbsa-pl011")?;
    compatible(fdt, &["arm,sbsa-uart"])?;
    fdt.property_array_u64("reg", &reg64(&[(GUEST_PL011_BASE, GUEST_PL011_SIZE)]))?;
    interrupts(
        fdt,
        &[interrupt(
            GUEST_VPL011_SPI,
            PPI_ALL_CPUS_MASK,
            DT_IRQ_TYPE_LEVEL_HIGH,
        )],
    )?;
    fdt.property_u32("current-speed", VPL011_CURRENT_SPEED)?;
    end(fdt, n)
}

/// Writes the guest's device tree.
///
/// The blob's size depends only on the node set (bootargs length, vCPU count, bank
/// and region counts, initrd present or not), not on the initrd's address, so a
/// caller can size it with a placeholder initrd range, place the modules, and write
/// it again with the final range.
pub fn create_fdt(c: &FdtConfig) -> Result<Vec<u8>, FdtError> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    root_properties(&mut fdt, c)?;
    chosen_node(&mut fdt, c)?;
    cpus_node(&mut fdt, c)?;
    psci_node(&mut fdt)?;
    memory_nodes(&mut fdt, c)?;
    match c.gic {
        Gic::V2 => gicv2_node(&mut fdt)?,
        Gic::V3 => gicv3_node(&mut fdt)?,
    }
    timer_node(&mut fdt, c)?;
    hypervisor_node(&mut fdt, c)?;
    if c.vuart {
        vpl011_node(&mut fdt)?;
    }
    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

#[cfg(test)]
mod tests;
