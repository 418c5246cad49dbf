//! Layout tests: every `#[repr(C)]` struct in `xen::abi` against the C headers.
//!
//! A small C file that includes Debian's libxen-dev headers (/usr/include/xen,
//! Xen 4.17, and the Linux ioctl headers Xen ships in /usr/include/xen/sys) is
//! compiled to assembly, once with the host `cc` (x86_64) and once with
//! `aarch64-linux-gnu-gcc` (arm64). Each `sizeof`/`offsetof` becomes a named
//! 64-bit constant in the assembly, which the test reads back: nothing is run,
//! so the arm64 numbers come from the real arm64 C ABI without an arm64 machine.
//!
//! The Rust side is computed on the build machine. For the arm64 comparison the
//! test uses the arm twins (`abi::arch::arm`), which are compiled on every host;
//! every struct here is made of fixed-width integers and 64-bit pointers, whose
//! sizes and alignments are the same on x86_64 and aarch64 (both LP64), so the
//! Rust numbers are those of an aarch64 build. (The cross-built `xen-selftest`
//! exercises the same structs against the real arm64 hypervisor.)
//!
//! Interface versions: the installed headers are Xen 4.17 (domctl 0x15). Set
//! `RXEN_XEN_PUBLIC_HEADERS` to another release's `xen/include/public` directory
//! (e.g. extracted from Xen 4.19 or 4.20) to check those too: the test reads
//! `XEN_DOMCTL_INTERFACE_VERSION` from the headers and compares the matching
//! twin (`XenDomctlCreateDomainV15` for 0x15/0x16, `...V17` for 0x17).
//!
//! A missing compiler or header fails the test with what to install (gcc,
//! gcc-aarch64-linux-gnu and libxen-dev; tests/setup-host.sh installs them).

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use xen::abi::arch::{arm, x86};
use xen::abi::domctl::*;
use xen::abi::event_channel::*;
use xen::abi::grant_table::*;
use xen::abi::hvm::*;
use xen::abi::linux::*;
use xen::abi::memory::*;
use xen::abi::sysctl::*;
use xen::abi::version::*;

/// One checked quantity: the C expression and the Rust value.
struct Entry {
    c: String,
    rust: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arch {
    X86_64,
    Aarch64,
}

macro_rules! size {
    ($v:ident, $c:literal, $t:ty) => {
        $v.push(Entry {
            c: format!("sizeof({})", $c),
            rust: size_of::<$t>(),
        })
    };
}

/// Offsets of fields named the same in C and Rust.
macro_rules! fields {
    ($v:ident, $c:literal, $t:ty, [$($f:ident),* $(,)?]) => {
        size!($v, $c, $t);
        $(
            $v.push(Entry {
                c: format!("offsetof({}, {})", $c, stringify!($f)),
                rust: offset_of!($t, $f),
            });
        )*
    };
}

/// An offset whose C field name differs from the Rust one.
macro_rules! field_as {
    ($v:ident, $c:literal, $cf:literal, $t:ty, $f:ident) => {
        $v.push(Entry {
            c: format!("offsetof({}, {})", $c, $cf),
            rust: offset_of!($t, $f),
        })
    };
}

fn arch_neutral(v: &mut Vec<Entry>) {
    // version.h
    fields!(
        v,
        "struct xen_compile_info",
        XenCompileInfo,
        [compiler, compile_by, compile_domain, compile_date]
    );
    fields!(
        v,
        "struct xen_platform_parameters",
        XenPlatformParameters,
        [virt_start]
    );
    fields!(
        v,
        "struct xen_feature_info",
        XenFeatureInfo,
        [submap_idx, submap]
    );
    v.push(Entry {
        c: "sizeof(xen_extraversion_t)".into(),
        rust: XEN_EXTRAVERSION_LEN,
    });
    v.push(Entry {
        c: "sizeof(xen_capabilities_info_t)".into(),
        rust: XEN_CAPABILITIES_INFO_LEN,
    });
    v.push(Entry {
        c: "sizeof(xen_changeset_info_t)".into(),
        rust: XEN_CHANGESET_INFO_LEN,
    });
    v.push(Entry {
        c: "sizeof(xen_commandline_t)".into(),
        rust: XEN_COMMANDLINE_LEN,
    });
    // sysctl.h
    fields!(
        v,
        "struct xen_sysctl_physinfo",
        XenSysctlPhysinfo,
        [
            threads_per_core,
            cores_per_socket,
            nr_cpus,
            max_cpu_id,
            nr_nodes,
            max_node_id,
            cpu_khz,
            capabilities,
            arch_capabilities,
            pad,
            total_pages,
            free_pages,
            scrub_pages,
            outstanding_pages,
            max_mfn,
            hw_cap,
        ]
    );
    fields!(
        v,
        "struct xen_sysctl_readconsole",
        XenSysctlReadconsole,
        [clear, incremental, pad0, pad1, index, buffer, count]
    );
    fields!(
        v,
        "struct xen_sysctl_debug_keys",
        XenSysctlDebugKeys,
        [keys, nr_keys]
    );
    fields!(
        v,
        "struct xen_sysctl_sched_id",
        XenSysctlSchedId,
        [sched_id]
    );
    fields!(
        v,
        "struct xen_sysctl_getdomaininfolist",
        XenSysctlGetDomainInfoList,
        [first_domain, max_domains, buffer, num_domains,]
    );
    fields!(
        v,
        "struct xen_sysctl",
        XenSysctl,
        [cmd, interface_version, u]
    );
    // domctl.h (version-neutral parts)
    fields!(v, "struct xen_domctl_max_mem", XenDomctlMaxMem, [max_memkb]);
    fields!(
        v,
        "struct xen_domctl_vcpucontext",
        XenDomctlVcpuContext,
        [vcpu, ctxt]
    );
    fields!(v, "struct xen_domctl_max_vcpus", XenDomctlMaxVcpus, [max]);
    fields!(
        v,
        "struct xen_domctl_vuart_op",
        XenDomctlVuartOp,
        [cmd, gfn, console_domid, evtchn]
    );
    field_as!(
        v,
        "struct xen_domctl_vuart_op",
        "type",
        XenDomctlVuartOp,
        type_
    );
    fields!(
        v,
        "struct xen_domctl_address_size",
        XenDomctlAddressSize,
        [size]
    );
    fields!(
        v,
        "struct xen_domctl",
        XenDomctl,
        [cmd, interface_version, domain, u]
    );
    // memory.h
    fields!(
        v,
        "struct xen_memory_reservation",
        XenMemoryReservation,
        [extent_start, nr_extents, extent_order, mem_flags, domid,]
    );
    fields!(
        v,
        "struct xen_mem_acquire_resource",
        XenMemAcquireResource,
        [domid, id, nr_frames, pad, frame, frame_list,]
    );
    field_as!(
        v,
        "struct xen_mem_acquire_resource",
        "type",
        XenMemAcquireResource,
        type_
    );
    // event_channel.h
    fields!(
        v,
        "struct evtchn_alloc_unbound",
        EvtchnAllocUnbound,
        [dom, remote_dom, port]
    );
    fields!(
        v,
        "struct evtchn_bind_interdomain",
        EvtchnBindInterdomain,
        [remote_dom, remote_port, local_port]
    );
    fields!(
        v,
        "struct evtchn_bind_virq",
        EvtchnBindVirq,
        [virq, vcpu, port]
    );
    fields!(v, "struct evtchn_close", EvtchnClose, [port]);
    fields!(v, "struct evtchn_send", EvtchnSend, [port]);
    // grant_table.h
    fields!(
        v,
        "struct grant_entry_v1",
        GrantEntryV1,
        [flags, domid, frame]
    );
    fields!(
        v,
        "struct gnttab_setup_table",
        GnttabSetupTable,
        [dom, nr_frames, status, frame_list]
    );
    fields!(
        v,
        "struct gnttab_query_size",
        GnttabQuerySize,
        [dom, nr_frames, max_nr_frames, status]
    );
    // hvm_op.h
    fields!(
        v,
        "struct xen_hvm_param",
        XenHvmParam,
        [domid, pad, index, value]
    );
    // Linux ioctl structs (xen/sys/*.h)
    fields!(v, "struct privcmd_hypercall", PrivcmdHypercall, [op, arg]);
    fields!(
        v,
        "struct privcmd_mmapbatch_v2",
        PrivcmdMmapBatchV2,
        [num, dom, addr, arr, err]
    );
    fields!(
        v,
        "struct privcmd_mmap_resource",
        PrivcmdMmapResource,
        [dom, id, idx, num, addr]
    );
    field_as!(
        v,
        "struct privcmd_mmap_resource",
        "type",
        PrivcmdMmapResource,
        type_
    );
    fields!(
        v,
        "struct ioctl_evtchn_bind_virq",
        IoctlEvtchnBindVirq,
        [virq]
    );
    fields!(
        v,
        "struct ioctl_evtchn_bind_interdomain",
        IoctlEvtchnBindInterdomain,
        [remote_domain, remote_port]
    );
    fields!(
        v,
        "struct ioctl_evtchn_bind_unbound_port",
        IoctlEvtchnBindUnboundPort,
        [remote_domain]
    );
    fields!(v, "struct ioctl_evtchn_unbind", IoctlEvtchnPort, [port]);
    fields!(v, "struct ioctl_evtchn_notify", IoctlEvtchnPort, [port]);
    fields!(
        v,
        "struct ioctl_evtchn_restrict_domid",
        IoctlEvtchnRestrictDomid,
        [domid]
    );
    fields!(
        v,
        "struct ioctl_gntdev_grant_ref",
        IoctlGntdevGrantRef,
        [domid]
    );
    field_as!(
        v,
        "struct ioctl_gntdev_grant_ref",
        "ref",
        IoctlGntdevGrantRef,
        r#ref
    );
    fields!(
        v,
        "struct ioctl_gntdev_map_grant_ref",
        IoctlGntdevMapGrantRef,
        [count, pad, index, refs]
    );
    fields!(
        v,
        "struct ioctl_gntdev_unmap_grant_ref",
        IoctlGntdevUnmapGrantRef,
        [index, count, pad]
    );
    fields!(
        v,
        "struct ioctl_gntdev_set_max_grants",
        IoctlGntdevSetMaxGrants,
        [count]
    );
    fields!(
        v,
        "struct ioctl_gntdev_unmap_notify",
        IoctlUnmapNotify,
        [index, action, event_channel_port]
    );
    fields!(
        v,
        "struct ioctl_gntalloc_unmap_notify",
        IoctlUnmapNotify,
        [index, action, event_channel_port]
    );
    fields!(
        v,
        "struct ioctl_gntdev_grant_copy_segment",
        IoctlGntdevGrantCopySegment,
        [source, dest, len, flags, status]
    );
    field_as!(
        v,
        "struct ioctl_gntdev_grant_copy_segment",
        "source.foreign.ref",
        IoctlGntdevGrantCopySegment,
        source
    );
    fields!(
        v,
        "struct ioctl_gntdev_grant_copy",
        IoctlGntdevGrantCopy,
        [count, segments]
    );
    fields!(
        v,
        "struct ioctl_gntalloc_alloc_gref",
        IoctlGntallocAllocGref,
        [domid, flags, count, index, gref_ids]
    );
    fields!(
        v,
        "struct ioctl_gntalloc_dealloc_gref",
        IoctlGntallocDeallocGref,
        [index, count]
    );
    // ioctl numbers encode the struct sizes.
    for (name, value) in [
        ("IOCTL_PRIVCMD_HYPERCALL", IOCTL_PRIVCMD_HYPERCALL),
        ("IOCTL_PRIVCMD_MMAPBATCH_V2", IOCTL_PRIVCMD_MMAPBATCH_V2),
        ("IOCTL_PRIVCMD_MMAP_RESOURCE", IOCTL_PRIVCMD_MMAP_RESOURCE),
        ("IOCTL_EVTCHN_BIND_VIRQ", IOCTL_EVTCHN_BIND_VIRQ),
        (
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            IOCTL_EVTCHN_BIND_INTERDOMAIN,
        ),
        (
            "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
            IOCTL_EVTCHN_BIND_UNBOUND_PORT,
        ),
        ("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND),
        ("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY),
        ("IOCTL_EVTCHN_RESET", IOCTL_EVTCHN_RESET),
        ("IOCTL_EVTCHN_RESTRICT_DOMID", IOCTL_EVTCHN_RESTRICT_DOMID),
        ("IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF),
        ("IOCTL_GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF),
        ("IOCTL_GNTDEV_SET_MAX_GRANTS", IOCTL_GNTDEV_SET_MAX_GRANTS),
        (
            "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
            IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
        ),
        ("IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY),
        ("IOCTL_GNTALLOC_ALLOC_GREF", IOCTL_GNTALLOC_ALLOC_GREF),
        ("IOCTL_GNTALLOC_DEALLOC_GREF", IOCTL_GNTALLOC_DEALLOC_GREF),
        (
            "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY",
            IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
        ),
        ("IOCTL_XENBUS_BACKEND_EVTCHN", IOCTL_XENBUS_BACKEND_EVTCHN),
    ] {
        v.push(Entry {
            c: name.into(),
            rust: value as usize,
        });
    }
}

/// Structs whose layout depends on the architecture (through
/// `struct xen_arch_domainconfig`) and on the domctl interface version.
fn arch_specific<A: Copy>(v: &mut Vec<Entry>, domctl_version: usize)
where
    XenDomctlGetDomainInfo<A>: Sized,
{
    fields!(
        v,
        "struct xen_domctl_getdomaininfo",
        XenDomctlGetDomainInfo<A>,
        [
            domain,
            flags,
            tot_pages,
            max_pages,
            outstanding_pages,
            shr_pages,
            paged_pages,
            shared_info_frame,
            cpu_time,
            nr_online_vcpus,
            max_vcpu_id,
            ssidref,
            handle,
            cpupool,
            gpaddr_bits,
            pad2,
            arch_config,
        ]
    );
    if domctl_version >= 0x17 {
        fields!(
            v,
            "struct xen_domctl_createdomain",
            XenDomctlCreateDomainV17<A>,
            [
                ssidref,
                flags,
                iommu_opts,
                max_vcpus,
                max_evtchn_port,
                max_grant_frames,
                max_maptrack_frames,
                grant_opts,
                altp2m_opts,
                vmtrace_size,
                cpupool_id,
                arch,
            ]
        );
    } else {
        fields!(
            v,
            "struct xen_domctl_createdomain",
            XenDomctlCreateDomainV15<A>,
            [
                ssidref,
                flags,
                iommu_opts,
                max_vcpus,
                max_evtchn_port,
                max_grant_frames,
                max_maptrack_frames,
                grant_opts,
                vmtrace_size,
                cpupool_id,
                arch,
            ]
        );
    }
}

fn arm_only(v: &mut Vec<Entry>, domctl_version: usize) {
    // `sve_vl` took over the padding byte in domctl 0x16 (Xen 4.18).
    if domctl_version >= 0x16 {
        fields!(
            v,
            "struct xen_arch_domainconfig",
            arm::ArchDomainConfig,
            [sve_vl]
        );
    }
    fields!(
        v,
        "struct xen_arch_domainconfig",
        arm::ArchDomainConfig,
        [gic_version, tee_type, nr_spis, clock_frequency]
    );
    fields!(
        v,
        "struct vcpu_guest_core_regs",
        arm::VcpuGuestCoreRegs,
        [pc64, cpsr, spsr_el1, spsr_fiq, spsr_irq, spsr_und, spsr_abt, sp_el0, sp_el1, elr_el1,]
    );
    field_as!(
        v,
        "struct vcpu_guest_core_regs",
        "x0",
        arm::VcpuGuestCoreRegs,
        x
    );
    v.push(Entry {
        c: "offsetof(struct vcpu_guest_core_regs, x30)".into(),
        rust: offset_of!(arm::VcpuGuestCoreRegs, x) + 30 * 8,
    });
    fields!(
        v,
        "struct vcpu_guest_context",
        arm::VcpuGuestContext,
        [flags, user_regs, sctlr, ttbcr, ttbr0, ttbr1]
    );
}

fn x86_only(v: &mut Vec<Entry>) {
    fields!(
        v,
        "struct xen_arch_domainconfig",
        x86::ArchDomainConfig,
        [emulation_flags, misc_flags]
    );
}

fn entries(arch: Arch, domctl_version: usize) -> Vec<Entry> {
    let mut v = Vec::new();
    arch_neutral(&mut v);
    match arch {
        Arch::Aarch64 => {
            arch_specific::<arm::ArchDomainConfig>(&mut v, domctl_version);
            arm_only(&mut v, domctl_version);
        }
        Arch::X86_64 => {
            arch_specific::<x86::ArchDomainConfig>(&mut v, domctl_version);
            x86_only(&mut v);
        }
    }
    v
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rxen-layout-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Writes the C file, compiles it to assembly with `cc`, and returns the value
/// of each `v<N>` constant, plus the domctl interface version of the headers.
fn c_values(cc: &str, public: &Path, entries: &[Entry], tag: &str) -> (Vec<u64>, u64) {
    let dir = scratch(tag);
    // <xen/...> resolves to the chosen public headers; the Linux ioctl headers
    // come from Debian's /usr/include/xen/sys either way.
    let inc = dir.join("inc");
    std::fs::create_dir_all(&inc).expect("inc dir");
    let _ = std::fs::remove_file(inc.join("xen"));
    let _ = std::fs::remove_file(inc.join("xensys"));
    std::os::unix::fs::symlink(public, inc.join("xen")).expect("symlink");
    std::os::unix::fs::symlink("/usr/include/xen/sys", inc.join("xensys")).expect("symlink");
    let mut src = String::from(
        "#define __XEN_TOOLS__ 1\n#include <stddef.h>\n#include <stdint.h>\n\
         #include <sys/ioctl.h>\n#include <xen/xen.h>\n#include <xen/version.h>\n\
         #include <xen/domctl.h>\n#include <xen/sysctl.h>\n#include <xen/memory.h>\n\
         #include <xen/event_channel.h>\n#include <xen/grant_table.h>\n\
         #include <xen/hvm/hvm_op.h>\n#include <xensys/privcmd.h>\n\
         #include <xensys/evtchn.h>\n#include <xensys/gntdev.h>\n\
         #include <xensys/gntalloc.h>\n#include <xensys/xenbus_dev.h>\n\
         typedef unsigned long long u64v;\n\
         __attribute__((used)) const u64v vdomctl = XEN_DOMCTL_INTERFACE_VERSION;\n",
    );
    for (i, e) in entries.iter().enumerate() {
        src.push_str(&format!(
            "__attribute__((used)) const u64v v{i} = (u64v)({});\n",
            e.c
        ));
    }
    let c = dir.join("layout.c");
    let s = dir.join("layout.s");
    std::fs::write(&c, src).expect("write C");
    let out = match Command::new(cc)
        .arg("-S")
        .arg("-O0")
        .arg("-I")
        .arg(&inc)
        .arg(&c)
        .arg("-o")
        .arg(&s)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {cc} for the {tag} layout check ({e}); tests/setup-host.sh installs \
             gcc, gcc-aarch64-linux-gnu and libxen-dev"
        ),
    };
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}",
        c.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let asm = std::fs::read_to_string(&s).expect("read asm");
    let values = parse_asm(&asm);
    let get = |name: &str| -> u64 {
        *values
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {}", s.display()))
    };
    let vals = (0..entries.len()).map(|i| get(&format!("v{i}"))).collect();
    let domctl = get("vdomctl");
    let _ = std::fs::remove_dir_all(&dir);
    (vals, domctl)
}

/// Reads `label:` followed by `.quad N` / `.xword N` / `.8byte N` / `.zero 8`.
fn parse_asm(asm: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut label: Option<String> = None;
    for line in asm.lines() {
        let t = line.trim();
        if let Some(l) = t.strip_suffix(':') {
            label = Some(l.to_string());
            continue;
        }
        let Some(l) = label.as_ref() else { continue };
        let mut parts = t.split_whitespace();
        let (Some(dir), Some(val)) = (parts.next(), parts.next()) else {
            continue;
        };
        let v = match dir {
            ".quad" | ".xword" | ".8byte" => val.parse::<u64>().ok(),
            ".zero" if val == "8" => Some(0),
            _ => None,
        };
        if let Some(v) = v {
            out.insert(l.clone(), v);
            label = None;
        }
    }
    out
}

fn check(arch: Arch, cc: &str, public: &Path, tag: &str) {
    // The domctl version of the headers picks the twins: first learn it.
    let probe = entries(arch, 0x15);
    let (_, version) = c_values(cc, public, &probe[..1], &format!("{tag}-probe"));
    let list = entries(arch, version as usize);
    let (vals, _) = c_values(cc, public, &list, tag);
    let mismatches: Vec<String> = list
        .iter()
        .zip(&vals)
        .filter(|(e, c)| e.rust as u64 != **c)
        .map(|(e, c)| format!("  {}: C {c}, Rust {}", e.c, e.rust))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{tag} (domctl {version:#x}): {} of {} layout values differ:\n{}",
        mismatches.len(),
        list.len(),
        mismatches.join("\n")
    );
    eprintln!(
        "{tag}: {} sizes/offsets/ioctl numbers match (domctl {version:#x})",
        list.len()
    );
}

fn installed_headers() -> PathBuf {
    PathBuf::from("/usr/include/xen")
}

#[test]
fn x86_64_layouts_match_installed_headers() {
    check(Arch::X86_64, "cc", &installed_headers(), "x86_64");
}

#[test]
fn aarch64_layouts_match_installed_headers() {
    check(
        Arch::Aarch64,
        "aarch64-linux-gnu-gcc",
        &installed_headers(),
        "aarch64",
    );
}

/// Other Xen releases, when their public headers are provided.
#[test]
fn layouts_match_other_release_headers() {
    let Some(dir) = std::env::var_os("RXEN_XEN_PUBLIC_HEADERS") else {
        eprintln!("RXEN_XEN_PUBLIC_HEADERS not set: only the installed headers are checked");
        return;
    };
    let dir = PathBuf::from(dir);
    check(Arch::X86_64, "cc", &dir, "x86_64-other");
    check(
        Arch::Aarch64,
        "aarch64-linux-gnu-gcc",
        &dir,
        "aarch64-other",
    );
}

#[test]
fn asm_parser_reads_both_dialects() {
    let asm = "v0:\n\t.quad\t144\nv1:\n\t.xword\t8\nv2:\n\t.zero\t8\n";
    let m = parse_asm(asm);
    assert_eq!(m.get("v0"), Some(&144));
    assert_eq!(m.get("v1"), Some(&8));
    assert_eq!(m.get("v2"), Some(&0));
}
