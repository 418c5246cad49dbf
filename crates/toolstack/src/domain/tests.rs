use super::*;
use crate::arm::loader::{KernelFormat, KernelImage};
use crate::arm::plan::{plan_domain, HostParams};
use crate::arm::Gic;
use crate::config::from_text;

fn built(cfg: &DomainConfig, vuart: bool) -> BuiltDomain {
    let kernel = KernelImage {
        format: KernelFormat::Arm64Image {
            text_offset: 0,
            image_size: 1 << 20,
            flags: 0b1010,
        },
        file_size: 1 << 20,
    };
    let host = HostParams {
        native_gic: Gic::V3,
        xen_version: (4, 17),
        gpaddr_bits: 40,
        clock_frequency: 0,
    };
    BuiltDomain {
        domid: 7,
        plan: plan_domain(cfg, kernel, None, host, [0; 128]).expect("plan"),
        store_port: 1,
        console_port: 2,
        store_gfn: 0x39001,
        console_gfn: 0x39000,
        vuart: vuart.then_some((0x39003, 3)),
    }
}

fn tree(text: &str, vuart: bool) -> Vec<XsNode> {
    let cfg = from_text(text, "g.cfg", &[]).expect("config");
    let b = built(&cfg, vuart);
    domain_tree(&TreeInput {
        cfg: &cfg,
        built: &b,
        start_time: "1700000000.25".into(),
    })
}

fn node<'a>(t: &'a [XsNode], path: &str) -> &'a XsNode {
    t.iter()
        .find(|n| n.path == path)
        .unwrap_or_else(|| panic!("no node {path}"))
}

fn perms(n: &XsNode) -> String {
    n.perms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn home_and_vm_nodes_are_dom0s_and_readable_by_the_guest() {
    let t = tree(
        "name='web'\nuuid='01234567-89ab-cdef-0123-456789abcdef'\nkernel='/k'\nmemory=256\nmaxmem=512\nvcpus=2\nmaxvcpus=3\n",
        false,
    );
    let vm = "/vm/01234567-89ab-cdef-0123-456789abcdef";
    assert_eq!(perms(node(&t, "/local/domain/7")), "n0,r7");
    assert_eq!(node(&t, "/local/domain/7/vm").value, vm);
    assert_eq!(node(&t, "/local/domain/7/name").value, "web");
    assert_eq!(node(&t, "/local/domain/7/domid").value, "7");
    assert_eq!(node(&t, &format!("{vm}/name")).value, "web");
    assert_eq!(
        node(&t, &format!("{vm}/uuid")).value,
        "01234567-89ab-cdef-0123-456789abcdef"
    );
    assert_eq!(node(&t, &format!("{vm}/start_time")).value, "1700000000.25");
    assert_eq!(perms(node(&t, "/libxl/7")), "n0");
    assert_eq!(
        node(&t, "/local/domain/7/memory/static-max").value,
        "524288"
    );
    assert_eq!(node(&t, "/local/domain/7/memory/target").value, "262144");
    assert_eq!(
        node(&t, "/local/domain/7/cpu/1/availability").value,
        "online"
    );
    assert_eq!(
        node(&t, "/local/domain/7/cpu/2/availability").value,
        "offline"
    );
    assert!(!t.iter().any(|n| n.path == "/local/domain/7/cpu/3"));
}

#[test]
fn the_guest_owns_control_shutdown_and_its_scratch_dirs() {
    let t = tree("name='g'\nkernel='/k'\n", false);
    for p in [
        "control/shutdown",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
    ] {
        assert_eq!(
            perms(node(&t, &format!("/local/domain/7/{p}"))),
            "n7",
            "{p}"
        );
    }
    assert_eq!(perms(node(&t, "/local/domain/7/control")), "n0,r7");
    assert_eq!(
        node(
            &t,
            "/local/domain/7/control/platform-feature-xs_reset_watches"
        )
        .value,
        "1"
    );
}

#[test]
fn store_and_console_name_the_rings_and_ports() {
    let t = tree("name='g'\nkernel='/k'\n", true);
    assert_eq!(node(&t, "/local/domain/7/store/port").value, "1");
    assert_eq!(
        node(&t, "/local/domain/7/store/ring-ref").value,
        0x39001.to_string()
    );
    assert_eq!(node(&t, "/local/domain/7/console/port").value, "2");
    assert_eq!(
        node(&t, "/local/domain/7/console/ring-ref").value,
        0x39000.to_string()
    );
    assert_eq!(
        node(&t, "/local/domain/7/console/type").value,
        "xenconsoled"
    );
    assert_eq!(node(&t, "/local/domain/7/vuart/0/port").value, "3");
    // Parents come before children, each path once.
    let mut seen = std::collections::HashSet::new();
    for n in &t {
        assert!(seen.insert(n.path.clone()), "{} twice", n.path);
        let parent = &n.path[..n.path.rfind('/').expect("slash")];
        if n.path.starts_with("/local/domain/7/") {
            assert!(seen.contains(parent), "{} before {parent}", n.path);
        }
    }
}

/// `path = "value"   (perms)` lines of a `xenstore-ls -fp` dump.
fn parse_dump(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (path, rest) = l.split_once(" = \"").expect("path = value");
            let (value, perms) = rest.rsplit_once("\"   (").expect("value and perms");
            (
                path.to_string(),
                value.to_string(),
                perms.trim_end_matches(')').to_string(),
            )
        })
        .collect()
}

/// Our tree for the guest of the xl dump equals it node for node: paths, values and
/// permissions (except the nodes xenconsoled writes, `tty`, and the roots that
/// `xenstore-ls -f` does not print).
#[test]
fn same_tree_as_xl_for_the_same_guest() {
    let cfg = from_text(
        "name='xlref'\nuuid='77773c39-9611-447b-bbe3-1182cc0be665'\nkernel='/k'\nmemory=128\nvcpus=2\nvuart='sbsa_uart'\n",
        "g.cfg",
        &[],
    )
    .expect("config");
    let mut b = built(&cfg, true);
    b.domid = 1;
    b.store_gfn = 233_473;
    b.console_gfn = 233_472;
    b.vuart = Some((233_475, 3));
    let ours: Vec<(String, String, String)> = domain_tree(&TreeInput {
        cfg: &cfg,
        built: &b,
        start_time: "1795753876.29".into(),
    })
    .iter()
    .map(|n| (n.path.clone(), n.value.clone(), perms(n)))
    .collect();
    let xl: Vec<(String, String, String)> =
        parse_dump(include_str!("testdata/xl-4.17-guest-vuart.txt"))
            .into_iter()
            .filter(|(p, _, _)| !p.ends_with("/tty"))
            .collect();
    let roots = [
        "/local/domain/1",
        "/vm/77773c39-9611-447b-bbe3-1182cc0be665",
        "/libxl/1",
    ];
    for n in &xl {
        assert!(ours.contains(n), "xl wrote {n:?}, we do not");
    }
    for n in &ours {
        assert!(
            xl.contains(n) || roots.contains(&n.0.as_str()),
            "we write {n:?}, xl does not"
        );
    }
    for r in roots {
        let n = ours.iter().find(|n| n.0 == r).expect("root");
        assert_eq!(n.2, if r == "/libxl/1" { "n0" } else { "n0,r1" }, "{r}");
    }
}

#[test]
fn only_nodes_that_differ_from_their_parent_get_set_perms() {
    let t = tree("name='g'\nkernel='/k'\n", true);
    let explicit: Vec<&str> = t
        .iter()
        .filter(|n| needs_set_perms(&t, n))
        .map(|n| n.path.as_str())
        .collect();
    // Roots and the guest-owned nodes are set; plain children inherit.
    assert!(explicit.contains(&"/local/domain/7"));
    assert!(explicit.contains(&"/local/domain/7/control/shutdown"));
    assert!(explicit.contains(&"/local/domain/7/console/backend-id"));
    assert!(explicit.contains(&"/local/domain/0/backend"));
    assert!(!explicit.contains(&"/local/domain/7/name"));
    assert!(!explicit.contains(&"/local/domain/7/store/port"));
    assert!(
        explicit.len() < t.len() / 2,
        "{} of {}",
        explicit.len(),
        t.len()
    );
}

/// The pipelined writer against rxenstored's daemon on a temporary socket: every
/// node reads back with its value and permissions, and the stale roots go.
#[test]
fn pipelined_tree_reads_back_from_a_real_daemon() {
    let path = crate::testing::xenstored("pipe");
    let mut xs = Client::connect_socket(&path).expect("connect");
    xs.write("/local/domain/7/stale", b"x").expect("stale");
    let t = tree("name='g'\nkernel='/k'\nvcpus=2\n", true);
    let attempts = write_tree_pipelined(&path, 7, &t).expect("pipelined");
    assert_eq!(attempts, 1);
    assert!(!xs.exists("/local/domain/7/stale").expect("exists"));
    for n in &t {
        assert_eq!(
            xs.read_string(&n.path).expect("read"),
            n.value,
            "{}",
            n.path
        );
        assert_eq!(xs.get_perms(&n.path).expect("perms"), n.perms, "{}", n.path);
    }
    // A refused request aborts the transaction: nothing of it is written.
    let bad = vec![
        XsNode {
            path: "/local/domain/8".into(),
            value: String::new(),
            perms: vec![Perm::new(0, PermAccess::None)],
        },
        XsNode {
            path: "/local/domain/8/not a valid path".into(),
            value: String::new(),
            perms: vec![Perm::new(0, PermAccess::None)],
        },
    ];
    assert!(matches!(
        write_tree_pipelined(&path, 8, &bad),
        Err(PipelineError::Refused { .. })
    ));
    assert!(!xs.exists("/local/domain/8").expect("exists"));
    let _ = std::fs::remove_dir_all(path.parent().expect("socket dir"));
}
