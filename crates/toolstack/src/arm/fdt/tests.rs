//! The DTB we write, parsed back with our reader and asserted node by node against
//! what libxl 4.17 writes (libxl_arm.c).

use super::*;
use crate::arm::layout::{extended_regions, ram_banks, Range};
use crate::dtb::{self, reg_pairs, vmspec, Node};

const MIB: u64 = 1 << 20;

fn config(gic: Gic, vcpus: u32, memory: u64, arch: GuestArch) -> FdtConfig {
    let banks = ram_banks(memory).expect("banks");
    FdtConfig {
        arch,
        xen_version: (4, 17),
        max_vcpus: vcpus,
        gic,
        ext_regions: extended_regions(&banks, 40),
        banks,
        bootargs: Some("console=hvc0 rdinit=/init".into()),
        initrd: Some(Range {
            start: 0x4800_0000,
            end: 0x4830_0000,
        }),
        vuart: false,
        rng_seed: [0x5a; RNG_SEED_SIZE],
        clock_frequency: 0,
    }
}

fn parse(c: &FdtConfig) -> Node {
    let blob = create_fdt(c).expect("create");
    dtb::parse(&blob).expect("parse back").root
}

fn names(n: &Node) -> Vec<&str> {
    n.children.iter().map(|c| c.name.as_str()).collect()
}

fn prop_names(n: &Node) -> Vec<&str> {
    n.properties.iter().map(|p| p.name.as_str()).collect()
}

fn strings(n: &Node, p: &str) -> Vec<String> {
    n.property(p)
        .unwrap_or_else(|| panic!("/{} lacks {p}", n.name))
        .strings()
}

fn cells(n: &Node, p: &str) -> Vec<u32> {
    n.property(p)
        .and_then(|v| v.cells())
        .unwrap_or_else(|| panic!("/{} lacks {p}", n.name))
}

fn regs(n: &Node) -> Vec<(u64, u64)> {
    reg_pairs(&cells(n, "reg"), 2, 2).expect("2+2 cells")
}

#[test]
fn root_and_node_order_match_libxl() {
    let root = parse(&config(Gic::V3, 2, 128 * MIB, GuestArch::Aarch64));
    assert_eq!(root.name, "");
    assert_eq!(
        prop_names(&root),
        [
            "model",
            "compatible",
            "interrupt-parent",
            "#address-cells",
            "#size-cells"
        ]
    );
    assert_eq!(
        root.property("model").and_then(|p| p.as_str()),
        Some("XENVM-4.17")
    );
    assert_eq!(
        strings(&root, "compatible"),
        ["xen,xenvm-4.17", "xen,xenvm"]
    );
    assert_eq!(root.u32("interrupt-parent"), Some(GUEST_PHANDLE_GIC));
    assert_eq!(
        (root.u32("#address-cells"), root.u32("#size-cells")),
        (Some(2), Some(2))
    );
    assert_eq!(
        names(&root),
        [
            "chosen",
            "cpus",
            "psci",
            "memory@40000000",
            "interrupt-controller@3001000",
            "timer",
            "hypervisor"
        ]
    );
}

#[test]
fn chosen_has_bootargs_initrd_and_seed() {
    let c = config(Gic::V3, 1, 128 * MIB, GuestArch::Aarch64);
    let root = parse(&c);
    let ch = root.child("chosen").expect("chosen");
    assert_eq!(
        prop_names(ch),
        [
            "bootargs",
            "linux,initrd-start",
            "linux,initrd-end",
            "rng-seed"
        ]
    );
    assert_eq!(
        ch.property("bootargs").and_then(|p| p.as_str()),
        Some("console=hvc0 rdinit=/init")
    );
    assert_eq!(
        ch.property("linux,initrd-start").and_then(|p| p.as_u64()),
        Some(0x4800_0000)
    );
    assert_eq!(
        ch.property("linux,initrd-end").and_then(|p| p.as_u64()),
        Some(0x4830_0000)
    );
    assert_eq!(
        ch.property("rng-seed").expect("seed").value,
        vec![0x5a; RNG_SEED_SIZE]
    );
    // Without initrd and cmdline only the seed remains.
    let mut c2 = c.clone();
    c2.initrd = None;
    c2.bootargs = None;
    let root = parse(&c2);
    assert_eq!(
        prop_names(root.child("chosen").expect("chosen")),
        ["rng-seed"]
    );
}

#[test]
fn cpus_have_mpidrs_and_psci() {
    let root = parse(&config(Gic::V3, 20, 128 * MIB, GuestArch::Aarch64));
    let cpus = root.child("cpus").expect("cpus");
    assert_eq!(
        (cpus.u32("#address-cells"), cpus.u32("#size-cells")),
        (Some(1), Some(0))
    );
    assert_eq!(cpus.children.len(), 20);
    for (i, cpu) in cpus.children.iter().enumerate() {
        let i = u32::try_from(i).expect("small");
        let m = (i & 0xf) | ((i >> 4) << 8);
        assert_eq!(cpu.name, format!("cpu@{m:x}"));
        assert_eq!(
            prop_names(cpu),
            ["device_type", "compatible", "enable-method", "reg"]
        );
        assert_eq!(
            cpu.property("device_type").and_then(|p| p.as_str()),
            Some("cpu")
        );
        assert_eq!(strings(cpu, "compatible"), ["arm,armv8"]);
        assert_eq!(
            cpu.property("enable-method").and_then(|p| p.as_str()),
            Some("psci")
        );
        assert_eq!(cells(cpu, "reg"), [m]);
    }
    assert_eq!(cpus.children[17].name, "cpu@101");
    let psci = root.child("psci").expect("psci");
    assert_eq!(
        strings(psci, "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
    );
    assert_eq!(
        psci.property("method").and_then(|p| p.as_str()),
        Some("hvc")
    );
    assert_eq!(
        (psci.u32("cpu_off"), psci.u32("cpu_on")),
        (Some(1), Some(2))
    );
}

#[test]
fn memory_nodes_per_bank() {
    let root = parse(&config(Gic::V3, 1, 3584 * MIB, GuestArch::Aarch64));
    let m0 = root.child("memory@40000000").expect("bank 0");
    assert_eq!(
        m0.property("device_type").and_then(|p| p.as_str()),
        Some("memory")
    );
    assert_eq!(regs(m0), [(0x4000_0000, 0xc000_0000)]);
    let m1 = root.child("memory@200000000").expect("bank 1");
    assert_eq!(regs(m1), [(0x2_0000_0000, 512 * MIB)]);
    let small = parse(&config(Gic::V3, 1, 128 * MIB, GuestArch::Aarch64));
    assert!(small.child("memory@200000000").is_none());
}

#[test]
fn gicv2_and_gicv3_nodes() {
    let root = parse(&config(Gic::V2, 1, 128 * MIB, GuestArch::Aarch64));
    let g = root.child("interrupt-controller@3001000").expect("gic");
    assert_eq!(
        prop_names(g),
        [
            "compatible",
            "#interrupt-cells",
            "#address-cells",
            "interrupt-controller",
            "reg",
            "linux,phandle",
            "phandle"
        ]
    );
    assert_eq!(
        strings(g, "compatible"),
        ["arm,cortex-a15-gic", "arm,cortex-a9-gic"]
    );
    assert_eq!(regs(g), [(0x0300_1000, 0x1000), (0x0300_2000, 0x2000)]);
    assert_eq!(
        (g.u32("#interrupt-cells"), g.u32("#address-cells")),
        (Some(3), Some(0))
    );
    assert_eq!(
        (g.u32("phandle"), g.u32("linux,phandle")),
        (Some(65000), Some(65000))
    );
    assert_eq!(
        g.property("interrupt-controller")
            .expect("flag")
            .value
            .len(),
        0
    );

    let root = parse(&config(Gic::V3, 1, 128 * MIB, GuestArch::Aarch64));
    let g = root.child("interrupt-controller@3001000").expect("gic");
    assert_eq!(strings(g, "compatible"), ["arm,gic-v3"]);
    assert_eq!(regs(g), [(0x0300_1000, 0x10000), (0x0302_0000, 0x100_0000)]);
}

#[test]
fn timer_and_hypervisor_nodes() {
    let root = parse(&config(Gic::V3, 1, 128 * MIB, GuestArch::Aarch64));
    let t = root.child("timer").expect("timer");
    assert_eq!(
        prop_names(t),
        ["compatible", "interrupts", "interrupt-parent"]
    );
    assert_eq!(strings(t, "compatible"), ["arm,armv8-timer"]);
    assert_eq!(
        cells(t, "interrupts"),
        [1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08]
    );
    assert_eq!(t.u32("interrupt-parent"), Some(65000));

    let h = root.child("hypervisor").expect("hypervisor");
    assert_eq!(
        prop_names(h),
        ["compatible", "reg", "interrupts", "interrupt-parent"]
    );
    assert_eq!(strings(h, "compatible"), ["xen,xen-4.17", "xen,xen"]);
    assert_eq!(
        regs(h),
        [
            (0x3800_0000, 0x100_0000),
            (0x4800_0000, 0xc000_0000 - 128 * MIB),
            (0x2_0000_0000, (1 << 40) - 0x2_0000_0000)
        ]
    );
    assert_eq!(cells(h, "interrupts"), [1, 15, 0xf08]);
}

#[test]
fn arm32_compatibles_and_clock_frequency() {
    let mut c = config(Gic::V2, 2, 128 * MIB, GuestArch::Arm32);
    c.clock_frequency = 62_500_000;
    let root = parse(&c);
    assert_eq!(
        strings(
            &root.find("/cpus/cpu@1").expect("cpu1").clone(),
            "compatible"
        ),
        ["arm,cortex-a15"]
    );
    let t = root.child("timer").expect("timer");
    assert_eq!(strings(t, "compatible"), ["arm,armv7-timer"]);
    assert_eq!(t.u32("clock-frequency"), Some(62_500_000));
}

#[test]
fn sbsa_uart_node_when_vuart() {
    let mut c = config(Gic::V3, 1, 128 * MIB, GuestArch::Aarch64);
    c.vuart = true;
    let root = parse(&c);
    assert_eq!(names(&root).last().copied(), Some("sbsa-pl011"));
    let u = root.child("sbsa-pl011").expect("uart");
    assert_eq!(
        prop_names(u),
        [
            "compatible",
            "reg",
            "interrupts",
            "interrupt-parent",
            "current-speed"
        ]
    );
    assert_eq!(strings(u, "compatible"), ["arm,sbsa-uart"]);
    assert_eq!(regs(u), [(0x2200_0000, 0x1000)]);
    assert_eq!(cells(u, "interrupts"), [0, 0, 0xf04]);
    assert_eq!(u.u32("current-speed"), Some(115_200));
}

#[test]
fn size_does_not_depend_on_initrd_address() {
    let mut c = config(Gic::V3, 4, 256 * MIB, GuestArch::Aarch64);
    let a = create_fdt(&c).expect("a").len();
    c.initrd = Some(Range {
        start: 0xdead_b000,
        end: 0xffff_f000,
    });
    assert_eq!(create_fdt(&c).expect("b").len(), a);
}

#[test]
fn our_dtbs_meet_the_vm_spec() {
    for (gic, vcpus) in [(Gic::V2, 1), (Gic::V2, 8), (Gic::V3, 4), (Gic::V3, 128)] {
        let blob = create_fdt(&config(gic, vcpus, 128 * MIB, GuestArch::Aarch64)).expect("create");
        let report = vmspec::check_dtb(&dtb::parse(&blob).expect("parse"));
        assert!(report.compliant(), "{gic:?} x{vcpus}:\n{report}");
    }
    // GICv2 with 9 CPUs is caught.
    let blob = create_fdt(&config(Gic::V2, 9, 128 * MIB, GuestArch::Aarch64)).expect("create");
    let report = vmspec::check_dtb(&dtb::parse(&blob).expect("parse"));
    assert!(!report.compliant());
    assert!(!report.get(vmspec::POINT_GIC_CPUS).expect("point").ok);
    assert_eq!(
        report.checks.iter().filter(|c| !c.ok).count(),
        1,
        "{report}"
    );
}

#[test]
fn hand_broken_dtbs_fail_the_right_points() {
    // A tree without timer, hypervisor and PSCI: written by hand.
    let mut f = vm_fdt::FdtWriter::new().expect("w");
    let r = f.begin_node("").expect("root");
    f.property_u32("#address-cells", 2).expect("p");
    f.property_u32("#size-cells", 2).expect("p");
    f.property_u32("interrupt-parent", 1).expect("p");
    let cpus = f.begin_node("cpus").expect("cpus");
    let cpu = f.begin_node("cpu@0").expect("cpu");
    f.property_string("device_type", "cpu").expect("p");
    f.property_array_u32("reg", &[0]).expect("p");
    f.end_node(cpu).expect("e");
    f.end_node(cpus).expect("e");
    let gic = f.begin_node("intc@0").expect("gic");
    f.property_string_list("compatible", vec!["arm,cortex-a9-gic".into()])
        .expect("p");
    f.property_null("interrupt-controller").expect("p");
    f.property_u32("#interrupt-cells", 3).expect("p");
    f.property_phandle(1).expect("p");
    f.end_node(gic).expect("e");
    let mem = f.begin_node("memory@40000000").expect("m");
    f.property_string("device_type", "memory").expect("p");
    f.property_array_u64("reg", &[0x4000_0000, 0]).expect("p");
    f.end_node(mem).expect("e");
    f.end_node(r).expect("e");
    let blob = f.finish().expect("finish");
    let report = vmspec::check_dtb(&dtb::parse(&blob).expect("parse"));
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.point)
        .collect();
    assert_eq!(
        failed,
        [
            vmspec::POINT_GIC,
            vmspec::POINT_GIC_CPUS,
            vmspec::POINT_PSCI,
            vmspec::POINT_TIMER,
            vmspec::POINT_MEMORY,
            vmspec::POINT_CONSOLE,
            vmspec::POINT_BUS,
            vmspec::POINT_XEN
        ],
        "{report}"
    );
    assert!(report.get(vmspec::POINT_CPUS).expect("cpus").ok);
}
