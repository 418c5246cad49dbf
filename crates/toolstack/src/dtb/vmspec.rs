//! Does a guest DTB describe what the ARM VM System Specification (ARM DEN 0060)
//! asks a Xen guest to find through its hardware description? Point by point:
//! a GIC v2 or newer (and within GICv2's 8-CPU limit), CPUs brought up by PSCI
//! (0.2 or newer), the architected timer with the virtual timer's interrupt, memory,
//! a console (the Xen PV console or a PL011/SBSA UART), a hotpluggable bus (the Xen
//! PV bus or PCIe) and the Xen hypervisor node (grant table region and event
//! channel interrupt).
//!
//! Not checked (not in a DTB): UEFI firmware, ACPI tables, the guest image format.

use std::fmt;

use super::{reg_pairs, Dtb, Node};

/// GICv2 has 8 CPU interfaces.
pub const GICV2_MAX_CPUS: usize = 8;
/// The interrupt specifier cells of the GIC bindings.
const GIC_CELLS: usize = 3;
/// Index of the virtual timer in the arch timer binding's interrupts list
/// (secure physical, non-secure physical, virtual, hypervisor).
const TIMER_VIRT_INDEX: usize = 2;
const GIC_PPI: u32 = 1;
const GIC_PPI_BASE: u32 = 16;

const GICV3_COMPATIBLES: &[&str] = &["arm,gic-v3"];
const GICV2_COMPATIBLES: &[&str] = &["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic"];
const GICV1_COMPATIBLES: &[&str] = &[
    "arm,cortex-a9-gic",
    "arm,cortex-a5-gic",
    "arm,arm11mp-gic",
    "arm,pl390",
    "arm,arm1176jzf-devchip-gic",
];

/// One point of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub point: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Every point passes.
    pub fn compliant(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn get(&self, point: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.point == point)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{:<4} {:<22} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.point,
                c.detail
            )?;
        }
        let passed = self.checks.iter().filter(|c| c.ok).count();
        write!(
            f,
            "{passed}/{} points met: {}",
            self.checks.len(),
            if self.compliant() {
                "the DTB meets the ARM VM spec for a Xen guest"
            } else {
                "the DTB does NOT meet the ARM VM spec for a Xen guest"
            }
        )
    }
}

pub const POINT_GIC: &str = "GIC v2 or newer";
pub const POINT_GIC_CPUS: &str = "vCPUs within GIC limit";
pub const POINT_CPUS: &str = "CPUs";
pub const POINT_PSCI: &str = "PSCI";
pub const POINT_TIMER: &str = "virtual timer";
pub const POINT_MEMORY: &str = "memory";
pub const POINT_CONSOLE: &str = "console";
pub const POINT_BUS: &str = "hotpluggable bus";
pub const POINT_XEN: &str = "Xen hypervisor node";

fn check(point: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            point,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            point,
            ok: false,
            detail,
        },
    }
}

fn phandle_of(n: &Node) -> Option<u32> {
    n.u32("phandle").or_else(|| n.u32("linux,phandle"))
}

fn by_phandle(root: &Node, ph: u32) -> Option<&Node> {
    root.walk().into_iter().find(|n| phandle_of(n) == Some(ph))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GicKind {
    V1,
    V2,
    V3,
}

/// The root's interrupt parent, or else the first interrupt controller.
fn find_gic(root: &Node) -> Option<&Node> {
    root.u32("interrupt-parent")
        .and_then(|ph| by_phandle(root, ph))
        .or_else(|| {
            root.walk()
                .into_iter()
                .find(|n| n.property("interrupt-controller").is_some())
        })
}

fn gic_kind(n: &Node) -> Option<GicKind> {
    let has = |list: &[&str]| list.iter().any(|c| n.is_compatible(c));
    if has(GICV3_COMPATIBLES) {
        Some(GicKind::V3)
    } else if has(GICV2_COMPATIBLES) {
        Some(GicKind::V2)
    } else if has(GICV1_COMPATIBLES) {
        Some(GicKind::V1)
    } else {
        None
    }
}

fn cpu_nodes(root: &Node) -> Vec<&Node> {
    root.child("cpus").map_or_else(Vec::new, |c| {
        c.children
            .iter()
            .filter(|n| {
                n.property("device_type").and_then(|p| p.as_str()) == Some("cpu")
                    || n.base_name() == "cpu"
            })
            .collect()
    })
}

fn xen_node(root: &Node) -> Option<&Node> {
    root.walk().into_iter().find(|n| n.is_compatible("xen,xen"))
}

fn interrupts(n: &Node) -> Option<Vec<[u32; 3]>> {
    let cells = n.property("interrupts")?.cells()?;
    if cells.len() % GIC_CELLS != 0 {
        return None;
    }
    Some(
        cells
            .chunks_exact(GIC_CELLS)
            .map(|c| [c[0], c[1], c[2]])
            .collect(),
    )
}

/// Checks a parsed DTB point by point.
pub fn check_dtb(dtb: &Dtb) -> Report {
    let root = &dtb.root;
    let cpus = cpu_nodes(root);
    let gic = find_gic(root);
    let kind = gic.and_then(gic_kind);
    let mut checks = Vec::new();

    checks.push(check(
        POINT_GIC,
        match (gic, kind) {
            (None, _) => Err("no interrupt controller found".into()),
            (Some(g), None) => Err(format!(
                "/{}: not a known ARM GIC (compatible {:?})",
                g.name,
                g.property("compatible")
                    .map(|p| p.strings())
                    .unwrap_or_default()
            )),
            (Some(g), Some(GicKind::V1)) => Err(format!("/{}: a GICv1 (before v2)", g.name)),
            (Some(g), Some(k)) => match g.u32("#interrupt-cells") {
                Some(3) => Ok(format!(
                    "/{}: {}",
                    g.name,
                    if k == GicKind::V3 { "GICv3" } else { "GICv2" }
                )),
                other => Err(format!(
                    "/{}: #interrupt-cells is {other:?}, the GIC bindings use 3",
                    g.name
                )),
            },
        },
    ));
    checks.push(check(
        POINT_GIC_CPUS,
        match kind {
            Some(GicKind::V2) if cpus.len() > GICV2_MAX_CPUS => Err(format!(
                "{} CPUs but GICv2 serves at most {GICV2_MAX_CPUS}",
                cpus.len()
            )),
            Some(GicKind::V2) | Some(GicKind::V3) => Ok(format!("{} CPU(s)", cpus.len())),
            _ => Err("no usable GIC".into()),
        },
    ));
    checks.push(check(
        POINT_CPUS,
        if cpus.is_empty() {
            Err("no cpu nodes under /cpus".into())
        } else if let Some(c) = cpus.iter().find(|c| c.property("reg").is_none()) {
            Err(format!("/cpus/{} has no reg (MPIDR)", c.name))
        } else {
            Ok(format!("{} cpu node(s)", cpus.len()))
        },
    ));
    let psci = root
        .walk()
        .into_iter()
        .find(|n| n.is_compatible("arm,psci-1.0") || n.is_compatible("arm,psci-0.2"));
    checks.push(check(
        POINT_PSCI,
        match psci {
            None => Err(if root.walk().iter().any(|n| n.is_compatible("arm,psci")) {
                "only PSCI 0.1 (arm,psci); 0.2 or newer is required".into()
            } else {
                "no PSCI node".into()
            }),
            Some(p) => {
                let method = p.property("method").and_then(|m| m.as_str()).unwrap_or("");
                if method != "hvc" && method != "smc" {
                    Err(format!(
                        "/{}: method {method:?} is neither hvc nor smc",
                        p.name
                    ))
                } else if let Some(c) = cpus.iter().find(|c| {
                    c.property("enable-method").and_then(|m| m.as_str()) != Some("psci")
                        && cpus.len() > 1
                }) {
                    Err(format!("/cpus/{}: enable-method is not psci", c.name))
                } else {
                    let v = if p.is_compatible("arm,psci-1.0") {
                        "1.0"
                    } else {
                        "0.2"
                    };
                    Ok(format!("PSCI {v} via {method}"))
                }
            }
        },
    ));
    checks.push(check(POINT_TIMER, timer_point(root)));
    checks.push(check(POINT_MEMORY, memory_point(root)));
    let xen = xen_node(root);
    let uart = root
        .walk()
        .into_iter()
        .find(|n| n.is_compatible("arm,sbsa-uart") || n.is_compatible("arm,pl011"));
    checks.push(check(
        POINT_CONSOLE,
        match (xen, uart) {
            (Some(_), Some(u)) => Ok(format!("Xen PV console (hvc0) and UART /{}", u.name)),
            (Some(_), None) => Ok("Xen PV console (hvc0)".into()),
            (None, Some(u)) => Ok(format!("UART /{}", u.name)),
            (None, None) => Err("neither the Xen PV console nor a PL011/SBSA UART".into()),
        },
    ));
    let pcie = root
        .walk()
        .into_iter()
        .find(|n| n.is_compatible("pci-host-ecam-generic"));
    checks.push(check(
        POINT_BUS,
        match (xen, pcie) {
            (Some(_), _) => Ok("Xen PV bus (xenbus)".into()),
            (None, Some(p)) => Ok(format!("PCIe /{}", p.name)),
            (None, None) => Err("neither the Xen PV bus nor PCIe".into()),
        },
    ));
    checks.push(check(POINT_XEN, xen_point(xen, root)));
    Report { checks }
}

fn timer_point(root: &Node) -> Result<String, String> {
    let t = root
        .walk()
        .into_iter()
        .find(|n| n.is_compatible("arm,armv8-timer") || n.is_compatible("arm,armv7-timer"))
        .ok_or("no architected timer node (arm,armv8-timer / arm,armv7-timer)")?;
    let ints = interrupts(t)
        .ok_or_else(|| format!("/{}: interrupts missing or not in 3-cell GIC form", t.name))?;
    let v = ints.get(TIMER_VIRT_INDEX).ok_or_else(|| {
        format!(
            "/{}: {} interrupt(s), the virtual timer's (3rd) is missing",
            t.name,
            ints.len()
        )
    })?;
    if v[0] != GIC_PPI {
        return Err(format!("/{}: virtual timer interrupt is not a PPI", t.name));
    }
    Ok(format!(
        "/{}: virtual timer on PPI {} (INTID {})",
        t.name,
        v[1],
        v[1] + GIC_PPI_BASE
    ))
}

fn memory_point(root: &Node) -> Result<String, String> {
    let ac = root.u32("#address-cells").unwrap_or(2);
    let sc = root.u32("#size-cells").unwrap_or(1);
    let mut total: u64 = 0;
    let mut banks = 0;
    for m in root
        .children
        .iter()
        .filter(|n| n.property("device_type").and_then(|p| p.as_str()) == Some("memory"))
    {
        let cells = m
            .property("reg")
            .and_then(|p| p.cells())
            .ok_or_else(|| format!("/{}: no reg", m.name))?;
        let pairs = reg_pairs(&cells, ac, sc).ok_or_else(|| {
            format!(
                "/{}: reg does not match #address-cells {ac} / #size-cells {sc}",
                m.name
            )
        })?;
        for (_, size) in pairs {
            total = total.saturating_add(size);
            banks += 1;
        }
    }
    if total == 0 {
        return Err("no memory described".into());
    }
    Ok(format!("{} MiB in {banks} range(s)", total >> 20))
}

fn xen_point(xen: Option<&Node>, root: &Node) -> Result<String, String> {
    let x = xen.ok_or("no node compatible \"xen,xen\": not a Xen guest")?;
    let ac = root.u32("#address-cells").unwrap_or(2);
    let sc = root.u32("#size-cells").unwrap_or(1);
    let regs = x
        .property("reg")
        .and_then(|p| p.cells())
        .and_then(|c| reg_pairs(&c, ac, sc))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("/{}: no reg (grant table region)", x.name))?;
    let ints = interrupts(x)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("/{}: no event channel interrupt", x.name))?;
    let version = x
        .property("compatible")
        .map(|p| p.strings())
        .unwrap_or_default()
        .into_iter()
        .find(|c| c != "xen,xen")
        .unwrap_or_default();
    Ok(format!(
        "/{} {version}: grant table {:#x}+{:#x}, {} extended region(s), event channel PPI {}",
        x.name,
        regs[0].0,
        regs[0].1,
        regs.len() - 1,
        ints[0][1]
    ))
}
