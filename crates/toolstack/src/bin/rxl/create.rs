//! `rxl create`: parse and validate a domain config, plan the guest's memory layout
//! and device tree, and (once the builder lands) build the domain.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use toolstack::arm::fdt::RNG_SEED_SIZE;
use toolstack::arm::layout::{self, BootLayout, GUEST_GNTTAB_BASE, GUEST_GNTTAB_SIZE, PAGE_SHIFT};
use toolstack::arm::loader::{KernelFormat, KernelImage};
use toolstack::arm::plan::{plan_domain, DomainPlan, HostParams};
use toolstack::arm::Gic;
use toolstack::builder::ImageBytes;
use toolstack::config::{self, DomainConfig, GicVersion};

/// Xen version a dry run writes into the DTB (the version rxen targets).
const DRY_RUN_XEN_VERSION: (u32, u32) = (4, 17);
/// IPA size a dry run assumes: Xen's p2m on QEMU's cortex-a57 gives guests 40 bits.
const DRY_RUN_GPADDR_BITS: u32 = 40;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HostGic {
    V2,
    V3,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The domain config file (xl.cfg syntax).
    pub config: PathBuf,
    /// Overrides `key=value` in xl.cfg syntax, applied after the file (quote strings: name="g2").
    pub overrides: Vec<String>,
    /// Parse, validate and plan the layout and device tree without Xen; print the layout.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Write the guest's DTB to this file (dry run or real create).
    #[arg(long, value_name = "FILE")]
    pub dtb_out: Option<PathBuf>,
    /// With --dry-run: the host GIC that gic_version = "default" resolves to.
    #[arg(long, value_enum, default_value = "v3", requires = "dry_run")]
    pub host_gic: HostGic,
    /// With --dry-run: the guest physical address bits Xen would give the domain.
    #[arg(long, default_value_t = DRY_RUN_GPADDR_BITS, requires = "dry_run")]
    pub gpaddr_bits: u32,
    /// Leave the domain paused after creating it.
    #[arg(short = 'p')]
    pub paused: bool,
    /// Attach to the domain's console after creating it.
    #[arg(short = 'c')]
    pub console: bool,
    /// Stay in the foreground until the domain is gone, carrying out its
    /// on_poweroff/on_reboot/on_crash actions here instead of in a detached monitor
    /// (xl's -F).
    #[arg(short = 'F', conflicts_with = "dry_run")]
    pub foreground: bool,
}

pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    // The first line of rxl's own in a create's step log (RXL_LOG=info): when the
    // process got going, to tell exec and start-up from the steps that follow.
    tracing::info!("rxl create started");
    eprintln!("Parsing config from {}", args.config.display());
    let cfg = config::load(&args.config, &args.overrides)?;
    tracing::info!("config read");
    for w in &cfg.warnings {
        eprintln!("{w}");
    }
    let host_gic = match args.host_gic {
        HostGic::V2 => Gic::V2,
        HostGic::V3 => Gic::V3,
    };
    let host_gic_cfg = if args.dry_run {
        Some(match host_gic {
            Gic::V2 => GicVersion::V2,
            Gic::V3 => GicVersion::V3,
        })
    } else {
        None
    };
    for w in cfg.validate(host_gic_cfg)? {
        eprintln!("{w}");
    }
    let kernel_path = cfg.kernel.as_ref().context("no kernel in the config")?;
    // Mapped, not read: its pages go to the guest by grant copy from the page
    // cache (a 31 MiB read() cost 63-68 ms under TCG); the header is copied out
    // and checked here.
    let (kernel, kernel_image) = KernelImage::open(kernel_path)
        .with_context(|| format!("kernel {}", kernel_path.display()))?;
    let initrd_size = match &cfg.ramdisk {
        None => None,
        Some(p) => Some(
            std::fs::metadata(p)
                .with_context(|| format!("ramdisk {}", p.display()))?
                .len(),
        ),
    };
    tracing::info!("config validated, kernel mapped");
    if !args.dry_run {
        return crate::build::create_real(&args, &cfg, (kernel, ImageBytes::file(&kernel_image)));
    }
    let host = HostParams {
        native_gic: host_gic,
        xen_version: DRY_RUN_XEN_VERSION,
        gpaddr_bits: args.gpaddr_bits,
        clock_frequency: 0,
    };
    let seed: [u8; RNG_SEED_SIZE] = toolstack::rand::bytes()?;
    let plan = plan_domain(&cfg, kernel, initrd_size, host, seed)?;
    print!("{}", describe(&cfg, &plan, initrd_size));
    if let Some(out) = &args.dtb_out {
        std::fs::write(out, &plan.dtb)
            .with_context(|| format!("writing DTB to {}", out.display()))?;
        println!(
            "DTB written to {} ({} bytes)",
            out.display(),
            plan.dtb.len()
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes:#x} bytes")
    }
}

fn range(start: u64, end: u64) -> String {
    format!("{start:#012x}-{:#012x}", end.saturating_sub(1))
}

/// The dry run's report: what would be created where.
fn describe(cfg: &DomainConfig, plan: &DomainPlan, initrd_size: Option<u64>) -> String {
    let l: &BootLayout = &plan.layout;
    let mut s = String::new();
    let gic_note = if cfg.gic_version == GicVersion::Native {
        " (gic_version default: the host's, assumed)"
    } else {
        ""
    };
    let _ = writeln!(s, "Dry run: nothing is created.");
    let _ = writeln!(
        s,
        "domain      {} uuid {}{}",
        cfg.name,
        cfg.uuid,
        if cfg.uuid_generated {
            " (generated)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "guest       PVH, {} ({}-bit), {}{gic_note}, {} vCPU(s) of max {}, nr_spis {}",
        l.arch.guest_type(),
        l.arch.address_size(),
        plan.gic.name(),
        cfg.vcpus,
        cfg.max_vcpus,
        plan.nr_spis
    );
    let _ = writeln!(
        s,
        "memory      {} MiB (maxmem {} MiB)",
        cfg.memory_mib, cfg.maxmem_mib
    );
    for (i, b) in l.banks.iter().enumerate() {
        let runs: Vec<String> = layout::populate_plan(*b)
            .iter()
            .map(|r| {
                format!(
                    "{} x {}",
                    r.count,
                    mib(1u64 << (r.shift + PAGE_SHIFT)).replace(" bytes", " B")
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "RAM bank {i}  {}  {:>9}  populate: {}",
            range(b.start, b.end),
            mib(b.size()),
            runs.join(", ")
        );
    }
    let kdesc = match plan.kernel.format {
        KernelFormat::Arm64Image {
            text_offset,
            image_size,
            ..
        } => {
            format!("arm64 Image, text_offset {text_offset:#x}, image_size {image_size:#x}")
        }
        KernelFormat::Arm32Zimage { start, end } => {
            format!("arm32 zImage, start {start:#x}, end {end:#x}")
        }
    };
    let _ = writeln!(
        s,
        "kernel      {}  {} bytes, {kdesc}",
        range(l.kernel.start, l.kernel.end),
        plan.kernel.file_size
    );
    if l.kernel_mem_end > l.kernel.end {
        let _ = writeln!(
            s,
            "kernel BSS  {}  (from the header's image_size)",
            range(l.kernel.end, l.kernel_mem_end)
        );
    }
    let _ = writeln!(s, "entry       {:#x}", l.entry);
    match (l.initrd, initrd_size) {
        (Some(r), Some(size)) => {
            let _ = writeln!(s, "initrd      {}  {size} bytes", range(r.start, r.end));
        }
        _ => {
            let _ = writeln!(s, "initrd      none");
        }
    }
    let _ = writeln!(
        s,
        "DTB         {}  {} bytes",
        range(l.dtb.start, l.dtb.end),
        plan.dtb.len()
    );
    let m = l.magic;
    let _ = writeln!(
        s,
        "magic pages console pfn {:#x}, xenstore pfn {:#x}, memaccess pfn {:#x}, vuart pfn {:#x}",
        m.console_pfn, m.xenstore_pfn, m.memaccess_pfn, m.vuart_pfn
    );
    let _ = writeln!(
        s,
        "grant table {}",
        range(GUEST_GNTTAB_BASE, GUEST_GNTTAB_BASE + GUEST_GNTTAB_SIZE)
    );
    for r in &plan.ext_regions {
        let _ = writeln!(
            s,
            "ext region  {}  {}",
            range(r.start, r.end),
            mib(r.size())
        );
    }
    let cpu = l.boot_cpu_state();
    let regs: Vec<String> = cpu
        .regs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}{i}={v:#x}",
                if l.arch.address_size() == 64 {
                    "x"
                } else {
                    "r"
                }
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "vCPU 0      pc={:#x} {} cpsr={:#x} sctlr={:#x}",
        cpu.pc,
        regs.join(" "),
        cpu.cpsr,
        cpu.sctlr
    );
    let _ = writeln!(
        s,
        "cmdline     {}",
        cfg.cmdline
            .as_deref()
            .map_or("(none)".to_string(), |c| format!("{c:?}"))
    );
    let _ = writeln!(
        s,
        "actions     on_poweroff={} on_reboot={} on_crash={}",
        cfg.on_poweroff.name(),
        cfg.on_reboot.name(),
        cfg.on_crash.name()
    );
    for d in &cfg.disks {
        let _ = writeln!(
            s,
            "disk        {} <- {} ({:?}, {}{})",
            d.vdev,
            d.target.as_deref().unwrap_or("(empty)"),
            d.format,
            if d.readwrite { "rw" } else { "ro" },
            if d.cdrom { ", cdrom" } else { "" }
        );
    }
    for (i, c) in cfg.channels.iter().enumerate() {
        let _ = writeln!(
            s,
            "channel {}   {} (console {}, rxl console --num {})",
            i + 1,
            c.name,
            i + 1,
            i + 1
        );
    }
    for (i, v) in cfg.vifs.iter().enumerate() {
        let mac = v.mac.map(|m| m.to_string()).unwrap_or_default();
        let _ = writeln!(s, "vif {i}       mac {mac} bridge {}", v.bridge);
    }
    s
}
