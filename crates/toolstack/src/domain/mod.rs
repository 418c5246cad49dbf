//! A domain's xenstore tree, as libxl 4.17 writes it for an ARM PVH guest
//! (libxl_create.c libxl__domain_make, libxl_dom.c libxl__build_post,
//! libxl_console.c libxl__device_console_add), and the lifecycle operations on
//! it: write, introduce, find by name, remove.
//!
//! The tree is computed as a list of nodes with values and permissions
//! ([`domain_tree`]), then written in one transaction ([`write_tree`]), so that the
//! list can be compared with what xl writes, node for node.

use crate::device::vbd::BACKEND_TYPE as VBD_BACKEND;
use crate::device::vif::BACKEND_TYPE as VIF_BACKEND;
use xenstore::client::{Client, ClientError, Perm, PermAccess, XsOps};

mod pipeline;
pub use pipeline::{write_tree_pipelined, PipelineError};

use crate::builder::{BuiltDomain, BACKEND_DOMID};
use crate::config::DomainConfig;

/// xenconsoled's default ring buffer limit libxl writes (`LIBXL_XENCONSOLE_LIMIT`).
pub const XENCONSOLE_LIMIT: u64 = 1_048_576;
/// The protocol of the PV console libxl writes in `console/type`.
pub const CONSOLE_TYPE_XENCONSOLED: &str = "xenconsoled";
/// The console output libxl writes (`LIBXL_XENCONSOLE_PROTOCOL` "pty").
pub const CONSOLE_OUTPUT_PTY: &str = "pty";
/// xenbus state Initialising (io/xenbus.h XenbusStateInitialising).
pub const XENBUS_STATE_INITIALISING: u32 = 1;

/// Errors of the xenstore side of a domain.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{step} failed")]
    Xenstore {
        step: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("writing the domain's xenstore tree failed")]
    Pipeline(#[from] PipelineError),
    #[error("domain {0} not found")]
    NotFound(String),
    #[error("more than one domain is named {0}")]
    Ambiguous(String),
}

/// xenstored's sockets where Debian and upstream put them (`/run/xenstored` and
/// `XEN_RUN_STORED` = `/var/run/xenstored`, not always the same directory).
pub const XENSTORED_SOCKETS: [&str; 2] = ["/run/xenstored/socket", "/var/run/xenstored/socket"];

/// Connects to xenstored: `$XENSTORED_PATH`/`$XENSTORED_RUNDIR` when set, else its
/// unix socket in either run directory, else the kernel's xenbus device (much
/// slower: every request makes a round trip through the dom0 kernel and Xen).
pub fn connect() -> Result<Client, ClientError> {
    let env_set = std::env::var_os(xenstore::client::ENV_XENSTORED_PATH).is_some()
        || std::env::var_os(xenstore::client::ENV_XENSTORED_RUNDIR).is_some();
    if !env_set {
        for s in XENSTORED_SOCKETS {
            if let Ok(c) = Client::connect_socket(std::path::Path::new(s)) {
                return Ok(c);
            }
        }
    }
    Client::open()
}

fn xs_step(step: &'static str) -> impl FnOnce(ClientError) -> DomainError {
    move |source| DomainError::Xenstore { step, source }
}

/// One node of the tree: path, value and permissions (owner first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsNode {
    pub path: String,
    pub value: String,
    pub perms: Vec<Perm>,
}

/// Where a domain's nodes live.
pub fn dom_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}
pub fn vm_path(uuid: &str) -> String {
    format!("/vm/{uuid}")
}
pub fn libxl_path(domid: u32) -> String {
    format!("/libxl/{domid}")
}

/// What the tree records besides the config and the built domain.
#[derive(Debug, Clone)]
pub struct TreeInput<'a> {
    pub cfg: &'a DomainConfig,
    pub built: &'a BuiltDomain,
    /// `start_time` in /vm: seconds since the epoch with two decimals.
    pub start_time: String,
}

struct Tree {
    nodes: Vec<XsNode>,
}

impl Tree {
    /// Adds a node; a path already added is kept as it was.
    fn add(&mut self, path: String, value: impl Into<String>, perms: &[Perm]) {
        if self.nodes.iter().any(|n| n.path == path) {
            return;
        }
        self.nodes.push(XsNode {
            path,
            value: value.into(),
            perms: perms.to_vec(),
        });
    }
}

/// The nodes libxl writes for this guest, parents before children.
pub fn domain_tree(t: &TreeInput<'_>) -> Vec<XsNode> {
    let domid = u32::from(t.built.domid);
    let cfg = t.cfg;
    let uuid = cfg.uuid.to_string();
    let dom = dom_path(domid);
    let vm = vm_path(&uuid);
    let libxl = libxl_path(domid);
    let backend = u32::from(BACKEND_DOMID);
    // dom0 owns, the guest reads.
    let ro = [
        Perm::new(backend, PermAccess::None),
        Perm::new(domid, PermAccess::Read),
    ];
    // The guest owns (may write).
    let rw = [Perm::new(domid, PermAccess::None)];
    // dom0 only.
    let no = [Perm::new(backend, PermAccess::None)];
    let mut tr = Tree { nodes: Vec::new() };

    tr.add(dom.clone(), "", &ro);
    tr.add(vm.clone(), "", &ro);
    tr.add(libxl.clone(), "", &no);
    tr.add(format!("{libxl}/device"), "", &no);
    tr.add(format!("{libxl}/type"), "pvh", &no);
    tr.add(format!("{libxl}/dm-version"), "qemu_xen", &no);
    tr.add(format!("{dom}/vm"), vm.clone(), &ro);
    tr.add(format!("{dom}/name"), cfg.name.clone(), &ro);
    tr.add(format!("{vm}/name"), cfg.name.clone(), &ro);
    tr.add(format!("{vm}/uuid"), uuid.clone(), &ro);
    tr.add(format!("{vm}/start_time"), t.start_time.clone(), &ro);
    tr.add(format!("{dom}/cpu"), "", &ro);
    for i in 0..cfg.max_vcpus {
        tr.add(format!("{dom}/cpu/{i}"), "", &ro);
        let avail = if i < cfg.vcpus { "online" } else { "offline" };
        tr.add(format!("{dom}/cpu/{i}/availability"), avail, &ro);
    }
    tr.add(format!("{dom}/memory"), "", &ro);
    let max_kib = cfg.maxmem_mib.max(cfg.memory_mib) * 1024;
    tr.add(format!("{dom}/memory/static-max"), max_kib.to_string(), &ro);
    tr.add(
        format!("{dom}/memory/target"),
        (cfg.memory_mib * 1024).to_string(),
        &ro,
    );
    tr.add(format!("{dom}/memory/videoram"), "0", &ro);
    tr.add(format!("{dom}/device"), "", &ro);
    tr.add(format!("{dom}/device/suspend"), "", &ro);
    tr.add(format!("{dom}/device/suspend/event-channel"), "", &rw);
    tr.add(format!("{dom}/control"), "", &ro);
    tr.add(format!("{dom}/control/shutdown"), "", &rw);
    for f in [
        "feature-poweroff",
        "feature-reboot",
        "feature-suspend",
        "sysrq",
    ] {
        tr.add(format!("{dom}/control/{f}"), "", &rw);
    }
    tr.add(
        format!("{dom}/control/platform-feature-multiprocessor-suspend"),
        "1",
        &ro,
    );
    tr.add(
        format!("{dom}/control/platform-feature-xs_reset_watches"),
        "1",
        &ro,
    );
    for d in ["data", "drivers", "feature", "attr", "error"] {
        tr.add(format!("{dom}/{d}"), "", &rw);
    }
    tr.add(format!("{dom}/domid"), domid.to_string(), &ro);
    tr.add(format!("{dom}/store"), "", &ro);
    tr.add(
        format!("{dom}/store/port"),
        t.built.store_port.to_string(),
        &ro,
    );
    tr.add(
        format!("{dom}/store/ring-ref"),
        t.built.store_gfn.to_string(),
        &ro,
    );
    console_nodes(&mut tr, domid, &dom, t.built);
    tr.nodes
}

/// The primary PV console and the vuart: frontends in the guest's tree, backends
/// in dom0's and under /libxl/N/device (libxl__device_console_add with
/// xenconsoled as the backend; `xenstore-ls -fp` of an xl 4.17 guest).
fn console_nodes(tr: &mut Tree, domid: u32, dom: &str, b: &BuiltDomain) {
    let backend_dom = u32::from(BACKEND_DOMID);
    let ro = [
        Perm::new(backend_dom, PermAccess::None),
        Perm::new(domid, PermAccess::Read),
    ];
    // libxl writes console/backend-id owned by the guest, readable by dom0.
    let guest_owned = [
        Perm::new(domid, PermAccess::None),
        Perm::new(backend_dom, PermAccess::Read),
    ];
    let no = [Perm::new(backend_dom, PermAccess::None)];
    let device = |tr: &mut Tree, kind: &str, fe: String, ring: u64, port: u32| {
        let be = format!("/local/domain/{backend_dom}/backend/{kind}/{domid}/0");
        tr.add(fe.clone(), "", &ro);
        tr.add(format!("{fe}/backend"), be.clone(), &ro);
        if kind == "console" {
            tr.add(
                format!("{fe}/backend-id"),
                backend_dom.to_string(),
                &guest_owned,
            );
            tr.add(format!("{fe}/output"), CONSOLE_OUTPUT_PTY, &ro);
        }
        tr.add(format!("{fe}/limit"), XENCONSOLE_LIMIT.to_string(), &ro);
        tr.add(format!("{fe}/type"), CONSOLE_TYPE_XENCONSOLED, &ro);
        tr.add(format!("{fe}/port"), port.to_string(), &ro);
        tr.add(format!("{fe}/ring-ref"), ring.to_string(), &ro);
        let backend_root = format!("/local/domain/{backend_dom}/backend");
        tr.add(backend_root.clone(), "", &no);
        tr.add(format!("{backend_root}/{kind}"), "", &no);
        tr.add(format!("{backend_root}/{kind}/{domid}"), "", &no);
        let lx = format!("{}/device/{kind}/0", libxl_path(domid));
        tr.add(format!("{}/device/{kind}", libxl_path(domid)), "", &no);
        for (dir, perms) in [(be.clone(), &ro[..]), (lx, &no[..])] {
            tr.add(dir.clone(), "", perms);
            tr.add(format!("{dir}/frontend"), fe.clone(), perms);
            if dir != be {
                tr.add(format!("{dir}/backend"), be.clone(), perms);
            }
            tr.add(format!("{dir}/frontend-id"), domid.to_string(), perms);
            tr.add(format!("{dir}/online"), "1", perms);
            tr.add(
                format!("{dir}/state"),
                XENBUS_STATE_INITIALISING.to_string(),
                perms,
            );
            tr.add(format!("{dir}/protocol"), "vt100", perms);
        }
    };
    device(
        tr,
        "console",
        format!("{dom}/console"),
        b.console_gfn,
        b.console_port,
    );
    if let Some((gfn, port)) = b.vuart {
        tr.add(format!("{dom}/vuart"), "", &ro);
        device(tr, "vuart", format!("{dom}/vuart/0"), gfn, port);
    }
}

/// Writes the nodes (value, then permissions) in one transaction, after removing
/// whatever an earlier domain with the same id left at the three roots.
pub fn write_tree(xs: &mut Client, domid: u32, nodes: &[XsNode]) -> Result<(), DomainError> {
    if let Some(socket) = socket_path() {
        let t0 = std::time::Instant::now();
        match write_tree_pipelined(&socket, domid, nodes) {
            Ok(attempts) => {
                tracing::info!(
                    attempts,
                    nodes = nodes.len(),
                    ms = t0.elapsed().as_millis() as u64,
                    "xenstore transaction (pipelined)"
                );
                return Ok(());
            }
            // xenstored refused something: that is the answer.
            Err(e @ (PipelineError::Refused { .. } | PipelineError::TooManyRetries(_))) => {
                return Err(e.into())
            }
            Err(e) => tracing::warn!("pipelined xenstore write failed ({e}); writing one by one"),
        }
    }
    write_tree_sync(xs, domid, nodes)
}

/// The xenstored socket [`connect`] would use, if it is a socket.
fn socket_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os(xenstore::client::ENV_XENSTORED_PATH) {
        let p = std::path::PathBuf::from(p);
        return is_socket(&p).then_some(p);
    }
    if let Some(d) = std::env::var_os(xenstore::client::ENV_XENSTORED_RUNDIR) {
        let p = std::path::PathBuf::from(d).join(xenstore::client::SOCKET_NAME);
        return is_socket(&p).then_some(p);
    }
    XENSTORED_SOCKETS
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| is_socket(p))
}

fn is_socket(p: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// [`write_tree`] one request at a time through the client.
pub fn write_tree_sync(xs: &mut Client, domid: u32, nodes: &[XsNode]) -> Result<(), DomainError> {
    let mut attempts = 0u32;
    let t0 = std::time::Instant::now();
    let r = xs.transaction(|tx| {
        attempts += 1;
        for root in [dom_path(domid), libxl_path(domid)] {
            match tx.rm(&root) {
                Err(e) if !e.is_enoent() => return Err(e),
                _ => {}
            }
        }
        for n in nodes {
            tx.write(&n.path, n.value.as_bytes())?;
            if needs_set_perms(nodes, n) {
                tx.set_perms(&n.path, &n.perms)?;
            }
        }
        Ok(())
    });
    tracing::info!(
        attempts,
        nodes = nodes.len(),
        ms = t0.elapsed().as_millis() as u64,
        "xenstore transaction"
    );
    r.map_err(xs_step("writing the domain's xenstore tree"))
}

/// Whether a node's permissions must be set explicitly: xenstored gives a node that
/// dom0 creates its parent's permissions, so only nodes whose parent is not in the
/// tree, or whose permissions differ from the parent's, need SET_PERMS.
fn needs_set_perms(nodes: &[XsNode], n: &XsNode) -> bool {
    let Some((parent, _)) = n.path.rsplit_once('/') else {
        return true;
    };
    match nodes.iter().find(|p| p.path == parent) {
        Some(p) => p.perms != n.perms,
        None => true,
    }
}

/// Removes a domain's nodes: its home, /vm/<uuid>, /libxl/N and its console and
/// disk backends in dom0's tree. Missing nodes are fine.
pub fn remove_tree(xs: &mut Client, domid: u32, uuid: Option<&str>) -> Result<(), DomainError> {
    let mut roots = vec![
        dom_path(domid),
        libxl_path(domid),
        format!("/local/domain/{BACKEND_DOMID}/backend/console/{domid}"),
        format!("/local/domain/{BACKEND_DOMID}/backend/vuart/{domid}"),
        format!("/local/domain/{BACKEND_DOMID}/backend/{VBD_BACKEND}/{domid}"),
        format!("/local/domain/{BACKEND_DOMID}/backend/{VIF_BACKEND}/{domid}"),
    ];
    if let Some(u) = uuid {
        roots.push(vm_path(u));
    }
    let backend = format!("/local/domain/{BACKEND_DOMID}/backend");
    xs.transaction(|tx| {
        for r in &roots {
            match tx.rm(r) {
                Err(e) if !e.is_enoent() => return Err(e),
                _ => {}
            }
        }
        // Like libxl__xs_path_cleanup: empty backend directories go too.
        for dir in [
            format!("{backend}/console"),
            format!("{backend}/vuart"),
            format!("{backend}/{VBD_BACKEND}"),
            format!("{backend}/{VIF_BACKEND}"),
            backend.clone(),
        ] {
            if let Ok(children) = tx.directory(&dir) {
                if children.is_empty() {
                    tx.rm(&dir)?;
                }
            }
        }
        Ok(())
    })
    .map_err(xs_step("removing the domain's xenstore nodes"))
}

/// The uuid recorded for a domain (from its `vm` node, `/vm/<uuid>`).
pub fn recorded_uuid(xs: &mut Client, domid: u32) -> Option<String> {
    let vm = xs
        .try_read(&format!("{}/vm", dom_path(domid)))
        .ok()
        .flatten()?;
    let vm = String::from_utf8_lossy(&vm).into_owned();
    vm.strip_prefix("/vm/").map(str::to_string)
}

/// The domain's name from xenstore.
pub fn name_of(xs: &mut Client, domid: u32) -> Option<String> {
    xs.try_read(&format!("{}/name", dom_path(domid)))
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The domain id of `name_or_id` among `domids`: a number is taken as an id when
/// such a domain exists, else names are compared (libxl_name_to_domid).
pub fn resolve(xs: &mut Client, domids: &[u32], name_or_id: &str) -> Result<u32, DomainError> {
    if let Ok(id) = name_or_id.parse::<u32>() {
        if domids.contains(&id) {
            return Ok(id);
        }
    }
    let mut found = None;
    for &d in domids {
        if name_of(xs, d).as_deref() == Some(name_or_id) {
            if found.is_some() {
                return Err(DomainError::Ambiguous(name_or_id.to_string()));
            }
            found = Some(d);
        }
    }
    found.ok_or_else(|| DomainError::NotFound(name_or_id.to_string()))
}

#[cfg(test)]
mod tests;
