//! The ARM guest physical memory map and the placement of RAM, kernel, initrd, DTB
//! and magic pages, as Xen 4.17's libxl and libxenguest do it.
//!
//! Constants: xen/include/public/arch-arm.h (4.17). Placement rules:
//! tools/libs/guest/xg_dom_arm.c (meminit, populate_one_size, alloc_magic_pages) and
//! tools/libs/light/libxl_arm.c (finalize_hypervisor_node: extended regions).

use super::loader::{GuestArch, KernelImage};

/// Guest page size (XC_PAGE_SHIFT).
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

pub const GUEST_GICD_BASE: u64 = 0x0300_1000;
pub const GUEST_GICD_SIZE: u64 = 0x0000_1000;
pub const GUEST_GICC_BASE: u64 = 0x0300_2000;
pub const GUEST_GICC_SIZE: u64 = 0x0000_2000;
pub const GUEST_GICV3_GICD_BASE: u64 = 0x0300_1000;
pub const GUEST_GICV3_GICD_SIZE: u64 = 0x0001_0000;
/// One redistributor region, vCPUs 0..127.
pub const GUEST_GICV3_GICR0_BASE: u64 = 0x0302_0000;
pub const GUEST_GICV3_GICR0_SIZE: u64 = 0x0100_0000;
/// vpl011 (SBSA UART).
pub const GUEST_PL011_BASE: u64 = 0x2200_0000;
pub const GUEST_PL011_SIZE: u64 = 0x0000_1000;
pub const GUEST_GNTTAB_BASE: u64 = 0x3800_0000;
pub const GUEST_GNTTAB_SIZE: u64 = 0x0100_0000;
pub const GUEST_MAGIC_BASE: u64 = 0x3900_0000;
pub const GUEST_MAGIC_SIZE: u64 = 0x0100_0000;
/// 3 GiB of low RAM at 1 GiB.
pub const GUEST_RAM0_BASE: u64 = 0x4000_0000;
pub const GUEST_RAM0_SIZE: u64 = 0xc000_0000;
/// 1016 GiB of RAM at 8 GiB.
pub const GUEST_RAM1_BASE: u64 = 0x02_0000_0000;
pub const GUEST_RAM1_SIZE: u64 = 0xfe_0000_0000;
pub const GUEST_RAM_BANK_BASES: [u64; 2] = [GUEST_RAM0_BASE, GUEST_RAM1_BASE];
pub const GUEST_RAM_BANK_SIZES: [u64; 2] = [GUEST_RAM0_SIZE, GUEST_RAM1_SIZE];
pub const GUEST_RAM_MAX: u64 = GUEST_RAM0_SIZE + GUEST_RAM1_SIZE;

pub const GUEST_MAX_VCPUS: u32 = 128;
/// GICv2 has 8 CPU interfaces.
pub const GICV2_MAX_VCPUS: u32 = 8;

/// Interrupt numbers (GIC INTIDs): PPIs 16..31, SPIs from 32.
pub const GUEST_TIMER_VIRT_PPI: u32 = 27;
pub const GUEST_TIMER_PHYS_S_PPI: u32 = 29;
pub const GUEST_TIMER_PHYS_NS_PPI: u32 = 30;
pub const GUEST_EVTCHN_PPI: u32 = 31;
pub const GUEST_VPL011_SPI: u32 = 32;

/// Magic pages (xg_dom_arm.c): console, xenstore, memaccess ring, vuart.
pub const NR_MAGIC_PAGES: u64 = 4;
pub const CONSOLE_PFN_OFFSET: u64 = 0;
pub const XENSTORE_PFN_OFFSET: u64 = 1;
pub const MEMACCESS_PFN_OFFSET: u64 = 2;
pub const VUART_PFN_OFFSET: u64 = 3;

/// Boot modules go at RAM0 + 128 MiB when they fit there (xg_dom_arm.c meminit).
pub const MODULES_PREFERRED_OFFSET: u64 = 128 << 20;
/// The kernel's end is rounded up to 2 MiB before placing modules.
pub const KERNEL_END_ALIGN: u64 = 2 << 20;
/// Extended regions smaller than this are not offered (libxl_arm.c EXT_REGION_MIN_SIZE).
pub const EXT_REGION_MIN_SIZE: u64 = 64 << 20;
/// Extended regions start 2 MiB aligned.
pub const EXT_REGION_ALIGN: u64 = 2 << 20;

/// Extent orders tried when populating RAM (xg_dom_arm.c): 1 GiB, 2 MiB, 4 KiB
/// (512 GiB is never used: "no level zero super pages with current hardware").
const LPAE_SHIFT: u32 = 9;
pub const PFN_4K_SHIFT: u32 = 0;
pub const PFN_2M_SHIFT: u32 = PFN_4K_SHIFT + LPAE_SHIFT;
pub const PFN_1G_SHIFT: u32 = PFN_2M_SHIFT + LPAE_SHIFT;
/// populate_guest_memory works in chunks of at most this many pages.
const POPULATE_CHUNK_PFNS: u64 = 1024 * 1024;

/// Initial vCPU state (arch-arm.h): PSR_GUEST64_INIT = A|F|I masked, EL1h.
pub const PSR_GUEST64_INIT: u64 = 0x1c5;
/// PSR_GUEST32_INIT = Z|A|F|I masked, SVC mode.
pub const PSR_GUEST32_INIT: u64 = 0x4000_01d3;
pub const SCTLR_GUEST_INIT: u64 = 0x00c5_0078;

/// Layout errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("guest memory size is 0")]
    NoMemory,
    #[error("guest memory {0:#x} bytes is larger than the guest address space holds ({GUEST_RAM_MAX:#x})")]
    TooMuchMemory(u64),
    #[error("guest memory {0:#x} bytes is not a whole number of 4 KiB pages")]
    Unaligned(u64),
    #[error("not enough memory for the kernel+dtb+initrd in RAM bank 0")]
    ModulesDoNotFitBank,
    #[error("kernel ({kernel_end:#x}) does not fit in the guest's RAM bank 0 (ends at {bank_end:#x}); give the guest more memory")]
    KernelDoesNotFit { kernel_end: u64, bank_end: u64 },
    #[error("no room for the initrd and DTB ({size:#x} bytes) in RAM bank 0 around the kernel; give the guest more memory")]
    NoRoomForModules { size: u64 },
    #[error("the initrd/DTB at {modules:#x} would overlap the kernel's BSS (kernel image_size ends at {kernel_end:#x})")]
    ModulesOverlapKernelBss { modules: u64, kernel_end: u64 },
    #[error("the arm32 zImage's start address {entry:#x} (header @0x28) is outside the image as loaded ({start:#x}-{end:#x}): it was linked for another load address and would crash at once")]
    EntryOutsideKernel { entry: u64, start: u64, end: u64 },
}

/// A guest physical range [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// A run of `count` extents of order `shift` (pages) from `base_pfn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentRun {
    pub base_pfn: u64,
    pub shift: u32,
    pub count: u64,
}

/// RAM per bank: bank 0 first, then bank 1 (meminit).
pub fn ram_banks(memory_bytes: u64) -> Result<Vec<Range>, LayoutError> {
    if memory_bytes == 0 {
        return Err(LayoutError::NoMemory);
    }
    if memory_bytes > GUEST_RAM_MAX {
        return Err(LayoutError::TooMuchMemory(memory_bytes));
    }
    if memory_bytes % PAGE_SIZE != 0 {
        return Err(LayoutError::Unaligned(memory_bytes));
    }
    let mut left = memory_bytes;
    let mut banks = Vec::new();
    for (base, max) in GUEST_RAM_BANK_BASES.iter().zip(GUEST_RAM_BANK_SIZES) {
        if left == 0 {
            break;
        }
        let size = left.min(max);
        banks.push(Range {
            start: *base,
            end: base + size,
        });
        left -= size;
    }
    Ok(banks)
}

/// The populate_physmap calls libxenguest makes for one bank: in chunks of up to
/// 2^20 pages, the largest extent order (1 GiB, 2 MiB, 4 KiB) whose alignment the
/// current address has, stopping at the next larger boundary when misaligned for it.
pub fn populate_plan(bank: Range) -> Vec<ExtentRun> {
    let base_pfn = bank.start >> PAGE_SHIFT;
    let nr_pfns = bank.size() >> PAGE_SHIFT;
    let mut runs: Vec<ExtentRun> = Vec::new();
    let mut pfn = 0;
    while pfn < nr_pfns {
        let allocsz = POPULATE_CHUNK_PFNS.min(nr_pfns - pfn);
        let mut done = 0;
        for shift in [PFN_1G_SHIFT, PFN_2M_SHIFT, PFN_4K_SHIFT] {
            if let Some((count, pages)) = one_size(shift, base_pfn + pfn, allocsz) {
                push_run(
                    &mut runs,
                    ExtentRun {
                        base_pfn: base_pfn + pfn,
                        shift,
                        count,
                    },
                );
                done = pages;
                break;
            }
        }
        // 4 KiB extents always make progress when allocsz > 0.
        pfn += done.max(1);
    }
    runs
}

/// populate_one_size: how many extents of order `shift` from `base` (and pages covered).
fn one_size(shift: u32, base: u64, nr: u64) -> Option<(u64, u64)> {
    let mask = (1u64 << shift) - 1;
    let next_shift = shift + LPAE_SHIFT;
    let next_mask = (1u64 << next_shift) - 1;
    let next_boundary = (base + (1u64 << next_shift)) & !next_mask;
    if base & mask != 0 {
        return None;
    }
    let mut end = base + nr;
    if base & next_mask != 0 && end > next_boundary {
        end = next_boundary;
    }
    let count = (end - base) >> shift;
    (count > 0).then_some((count, count << shift))
}

fn push_run(runs: &mut Vec<ExtentRun>, r: ExtentRun) {
    if let Some(last) = runs.last_mut() {
        if last.shift == r.shift && last.base_pfn + (last.count << last.shift) == r.base_pfn {
            last.count += r.count;
            return;
        }
    }
    runs.push(r);
}

/// The magic pages' frame numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagicPages {
    pub console_pfn: u64,
    pub xenstore_pfn: u64,
    pub memaccess_pfn: u64,
    pub vuart_pfn: u64,
}

pub fn magic_pages() -> MagicPages {
    let base = GUEST_MAGIC_BASE >> PAGE_SHIFT;
    MagicPages {
        console_pfn: base + CONSOLE_PFN_OFFSET,
        xenstore_pfn: base + XENSTORE_PFN_OFFSET,
        memaccess_pfn: base + MEMACCESS_PFN_OFFSET,
        vuart_pfn: base + VUART_PFN_OFFSET,
    }
}

/// Extended regions offered in the hypervisor node: what is left of each bank
/// above the guest's RAM (2 MiB aligned), within the guest physical address size,
/// if at least 64 MiB (libxl_arm.c finalize_hypervisor_node).
pub fn extended_regions(banks: &[Range], gpaddr_bits: u32) -> Vec<Range> {
    let mut out = Vec::new();
    let limit = if gpaddr_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << gpaddr_bits) - 1
    };
    for (i, (bbase, bsize)) in GUEST_RAM_BANK_BASES
        .iter()
        .zip(GUEST_RAM_BANK_SIZES)
        .enumerate()
    {
        let used = banks.get(i).map_or(0, Range::size);
        let base = bbase + used.div_ceil(EXT_REGION_ALIGN) * EXT_REGION_ALIGN;
        let bank_end = limit.min(bbase + bsize - 1);
        if bank_end > base {
            let size = bank_end - base + 1;
            if size >= EXT_REGION_MIN_SIZE {
                out.push(Range {
                    start: base,
                    end: base + size,
                });
            }
        }
    }
    out
}

/// Where everything goes in the guest, and how vCPU 0 starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLayout {
    pub arch: GuestArch,
    pub banks: Vec<Range>,
    /// The kernel file's bytes as loaded (libxenguest's kernel segment).
    pub kernel: Range,
    /// The kernel's own idea of its size in memory (arm64 image_size), when larger.
    pub kernel_mem_end: u64,
    pub entry: u64,
    pub initrd: Option<Range>,
    pub dtb: Range,
    pub magic: MagicPages,
}

/// Places kernel, initrd and DTB like xg_dom_arm.c meminit: modules (initrd, then
/// DTB, each rounded up to pages) at RAM0 + 128 MiB if bank 0 reaches past them and
/// the kernel (end rounded to 2 MiB) ends below 128 MiB; else at the top of bank 0;
/// else just below the kernel.
pub fn plan(
    memory_bytes: u64,
    kernel: &KernelImage,
    initrd_size: Option<u64>,
    dtb_size: u64,
) -> Result<BootLayout, LayoutError> {
    let banks = ram_banks(memory_bytes)?;
    let seg = kernel.segment(GUEST_RAM0_BASE);
    let kernbase = seg.start;
    let kernend = seg.end.div_ceil(KERNEL_END_ALIGN) * KERNEL_END_ALIGN;
    let kernsize = kernend - kernbase;
    let dtb_size_r = dtb_size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let initrd_size_r = initrd_size.map_or(0, |s| s.div_ceil(PAGE_SIZE) * PAGE_SIZE);
    let modsize = dtb_size_r + initrd_size_r;
    if modsize + kernsize > GUEST_RAM0_SIZE {
        return Err(LayoutError::ModulesDoNotFitBank);
    }
    let bank0end = banks[0].end;
    // libxenguest lets a zImage start anywhere ("the guest will crash, but in guest
    // context"); refuse it here instead, where the user can be told why.
    let entry = kernel.entry(GUEST_RAM0_BASE);
    if !(seg.start..seg.end).contains(&entry) {
        return Err(LayoutError::EntryOutsideKernel {
            entry,
            start: seg.start,
            end: seg.end,
        });
    }
    let kernel_mem_end = kernel.mem_end(GUEST_RAM0_BASE);
    if kernel_mem_end > bank0end {
        return Err(LayoutError::KernelDoesNotFit {
            kernel_end: kernel_mem_end,
            bank_end: bank0end,
        });
    }
    let ram128mb = GUEST_RAM0_BASE + MODULES_PREFERRED_OFFSET;
    let mut modbase = if bank0end >= ram128mb + modsize && kernend < ram128mb {
        ram128mb
    } else if bank0end.checked_sub(modsize).is_some_and(|b| b > kernend) {
        bank0end - modsize
    } else if kernbase - GUEST_RAM0_BASE > modsize {
        kernbase - modsize
    } else {
        return Err(LayoutError::NoRoomForModules { size: modsize });
    };
    // libxenguest checks only the file's extent; refuse a placement that would land
    // in the kernel's BSS as the kernel's header describes it.
    if modsize > 0 && modbase < kernel_mem_end && modbase + modsize > kernbase {
        return Err(LayoutError::ModulesOverlapKernelBss {
            modules: modbase,
            kernel_end: kernel_mem_end,
        });
    }
    let initrd = initrd_size.map(|_| {
        let r = Range {
            start: modbase,
            end: modbase + initrd_size_r,
        };
        modbase += initrd_size_r;
        r
    });
    let dtb = Range {
        start: modbase,
        end: modbase + dtb_size_r,
    };
    Ok(BootLayout {
        arch: kernel.arch(),
        banks,
        kernel: seg,
        kernel_mem_end,
        entry,
        initrd,
        dtb,
        magic: magic_pages(),
    })
}

/// vCPU 0's registers at boot (xg_dom_arm.c vcpu_arm64 / vcpu_arm32, Linux's boot protocols).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCpuState {
    pub pc: u64,
    /// x0..x3 (arm64) or r0..r2 (arm32).
    pub regs: Vec<u64>,
    pub cpsr: u64,
    pub sctlr: u64,
}

impl BootLayout {
    pub fn boot_cpu_state(&self) -> BootCpuState {
        match self.arch {
            GuestArch::Aarch64 => BootCpuState {
                pc: self.entry,
                regs: vec![self.dtb.start, 0, 0, 0],
                cpsr: PSR_GUEST64_INIT,
                sctlr: SCTLR_GUEST_INIT,
            },
            GuestArch::Arm32 => BootCpuState {
                pc: self.entry,
                // r0 = 0, r1 = machine id ~0 (DT boot), r2 = DTB.
                regs: vec![0, 0xffff_ffff, self.dtb.start],
                cpsr: PSR_GUEST32_INIT,
                sctlr: SCTLR_GUEST_INIT,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::loader::KernelImage;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn banks_split_at_3_gib() {
        assert_eq!(
            ram_banks(128 * MIB).expect("ok"),
            vec![Range {
                start: GUEST_RAM0_BASE,
                end: GUEST_RAM0_BASE + 128 * MIB
            }]
        );
        let b = ram_banks(3584 * MIB).expect("ok");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].size(), GUEST_RAM0_SIZE);
        assert_eq!(
            b[1],
            Range {
                start: GUEST_RAM1_BASE,
                end: GUEST_RAM1_BASE + 512 * MIB
            }
        );
        assert_eq!(ram_banks(0), Err(LayoutError::NoMemory));
        assert!(matches!(
            ram_banks(GUEST_RAM_MAX + PAGE_SIZE),
            Err(LayoutError::TooMuchMemory(_))
        ));
        assert!(matches!(ram_banks(MIB + 1), Err(LayoutError::Unaligned(_))));
    }

    #[test]
    fn populate_uses_largest_aligned_extents() {
        // 128 MiB at 1 GiB: 64 x 2 MiB (not 1 GiB-sized).
        let p = populate_plan(Range {
            start: GUEST_RAM0_BASE,
            end: GUEST_RAM0_BASE + 128 * MIB,
        });
        assert_eq!(
            p,
            vec![ExtentRun {
                base_pfn: 0x40000,
                shift: PFN_2M_SHIFT,
                count: 64
            }]
        );
        // 3 GiB: chunks of 4 GiB max -> 3 x 1 GiB.
        let p = populate_plan(Range {
            start: GUEST_RAM0_BASE,
            end: GUEST_RAM0_BASE + 3 * GIB,
        });
        assert_eq!(
            p,
            vec![ExtentRun {
                base_pfn: 0x40000,
                shift: PFN_1G_SHIFT,
                count: 3
            }]
        );
        // 1 GiB + 2 MiB + 8 KiB.
        let size = GIB + 2 * MIB + 8192;
        let p = populate_plan(Range {
            start: GUEST_RAM0_BASE,
            end: GUEST_RAM0_BASE + size,
        });
        assert_eq!(
            p,
            vec![
                ExtentRun {
                    base_pfn: 0x40000,
                    shift: PFN_1G_SHIFT,
                    count: 1
                },
                ExtentRun {
                    base_pfn: 0x80000,
                    shift: PFN_2M_SHIFT,
                    count: 1
                },
                ExtentRun {
                    base_pfn: 0x80200,
                    shift: PFN_4K_SHIFT,
                    count: 2
                },
            ]
        );
        let pages: u64 = p.iter().map(|r| r.count << r.shift).sum();
        assert_eq!(pages, size >> PAGE_SHIFT);
    }

    #[test]
    fn populate_covers_every_page_exactly_once() {
        for size in [
            4096,
            2 * MIB - 4096,
            2 * MIB + 4096,
            5 * GIB + 3 * MIB + 12288,
            7 * GIB,
        ] {
            for bank in ram_banks(size).expect("ok") {
                let mut next = bank.start >> PAGE_SHIFT;
                for r in populate_plan(bank) {
                    assert_eq!(r.base_pfn, next, "gap or overlap for size {size:#x}");
                    assert_eq!(r.base_pfn & ((1 << r.shift) - 1), 0, "misaligned extent");
                    next += r.count << r.shift;
                }
                assert_eq!(next, bank.end >> PAGE_SHIFT);
            }
        }
    }

    #[test]
    fn modules_at_128_mib_when_room() {
        let k = KernelImage::synthetic_arm64(0x20_0000, 30 * MIB, 40 * MIB);
        let l = plan(256 * MIB, &k, Some(5 * MIB + 1), 0x1234).expect("ok");
        assert_eq!(
            l.kernel,
            Range {
                start: 0x4020_0000,
                end: 0x4020_0000 + 30 * MIB
            }
        );
        assert_eq!(l.entry, 0x4020_0000);
        let initrd = l.initrd.expect("initrd");
        assert_eq!(initrd.start, GUEST_RAM0_BASE + 128 * MIB);
        assert_eq!(initrd.size(), 5 * MIB + 4096);
        assert_eq!(
            l.dtb,
            Range {
                start: initrd.end,
                end: initrd.end + 0x2000
            }
        );
        let cpu = l.boot_cpu_state();
        assert_eq!(cpu.regs[0], l.dtb.start);
        assert_eq!(cpu.cpsr, 0x1c5);
    }

    #[test]
    fn modules_at_top_of_bank0_for_small_guests() {
        let k = KernelImage::synthetic_arm64(0, 30 * MIB, 30 * MIB);
        let l = plan(128 * MIB, &k, Some(MIB), 4096).expect("ok");
        // 128 MiB guest: bank0 ends at RAM0 + 128 MiB, not >= 128 MiB + modsize.
        let bank0end = GUEST_RAM0_BASE + 128 * MIB;
        assert_eq!(l.initrd.expect("initrd").start, bank0end - MIB - 4096);
        assert_eq!(l.dtb.end, bank0end);
    }

    #[test]
    fn modules_below_the_kernel_as_last_resort_and_errors() {
        // Kernel placed high (text_offset 40 MiB), guest 64 MiB, 30 MiB initrd.
        let k = KernelImage::synthetic_arm64(40 * MIB, 20 * MIB, 20 * MIB);
        let l = plan(64 * MIB, &k, Some(30 * MIB), 4096).expect("ok");
        assert_eq!(l.dtb.end, 0x4000_0000 + 40 * MIB);
        // No room anywhere.
        let e = plan(64 * MIB, &k, Some(50 * MIB), 4096).unwrap_err();
        assert!(matches!(e, LayoutError::NoRoomForModules { .. }), "{e}");
        // Kernel larger than RAM.
        let big = KernelImage::synthetic_arm64(0x20_0000, 60 * MIB, 70 * MIB);
        assert!(matches!(
            plan(64 * MIB, &big, None, 4096),
            Err(LayoutError::KernelDoesNotFit { .. })
        ));
    }

    #[test]
    fn zimage_loads_at_0x8000() {
        let k = KernelImage::synthetic_arm32(5 * MIB, 0);
        let l = plan(128 * MIB, &k, None, 4096).expect("ok");
        assert_eq!(l.kernel.start, GUEST_RAM0_BASE + 0x8000);
        assert_eq!(l.entry, GUEST_RAM0_BASE + 0x8000);
        let cpu = l.boot_cpu_state();
        assert_eq!(cpu.regs, vec![0, 0xffff_ffff, l.dtb.start]);
        assert_eq!(cpu.cpsr, 0x4000_01d3);
        // A zImage linked for a fixed address inside the image as loaded is fine ...
        let fixed = KernelImage::synthetic_arm32(5 * MIB, 0x4000_8000);
        assert_eq!(
            plan(128 * MIB, &fixed, None, 4096).expect("ok").entry,
            0x4000_8000
        );
        // ... one linked elsewhere would jump into nothing.
        let elsewhere = KernelImage::synthetic_arm32(5 * MIB, 0x8000);
        assert_eq!(
            plan(128 * MIB, &elsewhere, None, 4096),
            Err(LayoutError::EntryOutsideKernel {
                entry: 0x8000,
                start: 0x4000_8000,
                end: 0x4000_8000 + 5 * MIB
            })
        );
    }

    #[test]
    fn extended_regions_follow_libxl() {
        let banks = ram_banks(128 * MIB).expect("ok");
        let r = extended_regions(&banks, 40);
        // Bank 0 above the RAM; bank 1 is above 2^40 - 1? No: 0x200000000 < 2^40.
        assert_eq!(
            r[0],
            Range {
                start: GUEST_RAM0_BASE + 128 * MIB,
                end: GUEST_RAM0_BASE + GUEST_RAM0_SIZE
            }
        );
        assert_eq!(
            r[1],
            Range {
                start: GUEST_RAM1_BASE,
                end: 1 << 40
            }
        );
        // With a 32-bit IPA space nothing of bank 1 is reachable.
        let r = extended_regions(&banks, 32);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].end, 1 << 32);
        // A full bank 0 leaves no region there.
        let r = extended_regions(&ram_banks(GUEST_RAM0_SIZE).expect("ok"), 40);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].start, GUEST_RAM1_BASE);
    }

    /// Observed with Debian's xl 4.17.7 on Xen 4.17 arm64 (QEMU TCG, one ad-hoc run):
    /// a 128 MiB, 2-vCPU GICv3 guest with Debian's 6.1 arm64 Image (32956352 bytes,
    /// image_size 0x2010000) and a 986720-byte initrd; libxenguest logged
    /// "populated 0x40/0x40 entries with shift 9", "placing boot modules at
    /// 0x47f0e000", "ramdisk: 0x47f0e000 -> 0x47fff000", "devicetree: 0x47fff000 ->
    /// 0x48000000" for its 1591-byte DTB (one page, as ours).
    #[test]
    fn matches_what_libxenguest_did_for_a_real_guest() {
        let k = KernelImage::synthetic_arm64(0, 32_956_352, 0x201_0000);
        let l = plan(128 * MIB, &k, Some(986_720), 1591).expect("ok");
        assert_eq!(
            populate_plan(l.banks[0]),
            vec![ExtentRun {
                base_pfn: 0x40000,
                shift: PFN_2M_SHIFT,
                count: 0x40
            }]
        );
        assert_eq!(
            l.kernel,
            Range {
                start: 0x4000_0000,
                end: 0x41f6_dfc0
            }
        );
        assert_eq!(
            l.initrd,
            Some(Range {
                start: 0x47f0_e000,
                end: 0x47ff_f000
            })
        );
        assert_eq!(
            l.dtb,
            Range {
                start: 0x47ff_f000,
                end: 0x4800_0000
            }
        );
    }

    #[test]
    fn magic_pages_at_0x39000() {
        let m = magic_pages();
        assert_eq!(
            (m.console_pfn, m.xenstore_pfn, m.memaccess_pfn, m.vuart_pfn),
            (0x39000, 0x39001, 0x39002, 0x39003)
        );
    }
}
