//! Secondary PV consoles (xl.cfg `channel`): the xenstore nodes libxl writes for
//! console `devid` >= 1 (tools/libs/light/libxl_console.c
//! `libxl__device_console_add` with no build state, and the generic entries of
//! libxl_device.c). Unlike the primary console these use the xenbus handshake:
//! Linux's hvc_xen grants its ring page and writes `ring-ref` (a grant reference)
//! and `port` into the frontend directory, which it owns. The entries the guest
//! must not change (`name`, `limit`, `type`, `output`, `tty`) belong to dom0
//! and are only readable by the guest, as libxl's `ro_front`.
//!
//! The backend type is libxl's own, `console`; `type = xenconsoled` marks the
//! device as the console daemon's (rxconsoled), where xl writes `ioemu` for
//! QEMU, which rxconsoled leaves alone.

use super::{DeviceNodes, DevicePaths, XenbusState, DOM0};
use crate::config::channel::{ChannelSpec, Connection};

/// Frontend device class (Linux hvc_xen binds `device/console/*`).
pub const KIND: &str = "console";
/// Backend type (libxl's).
pub const BACKEND_TYPE: &str = "console";
/// libxl's `LIBXL_XENCONSOLE_PROTOCOL`.
pub const PROTOCOL: &str = "vt100";
/// libxl's `LIBXL_XENCONSOLE_LIMIT`.
pub const LIMIT: u64 = 1_048_576;
/// `type`: served by the console daemon (libxl's `xenconsoled`).
pub const TYPE_DAEMON: &str = "xenconsoled";
/// `output` and `connection` of a pty channel.
pub const OUTPUT_PTY: &str = "pty";

/// Errors of building a channel's nodes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("channel {0}: connection=socket needs a device model (QEMU); rxen has none")]
    Socket(String),
    #[error("channel {0}: devid 0 is the primary console")]
    Primary(String),
}

/// The paths of console `devid` of `domid`, served from dom0.
pub fn paths(domid: u32, devid: u32) -> DevicePaths {
    DevicePaths {
        kind: KIND,
        backend_type: BACKEND_TYPE.to_string(),
        frontend_domid: domid,
        backend_domid: DOM0,
        devid,
    }
}

/// The nodes of channel `spec` as console `devid` (>= 1) of domain `domid`.
pub fn nodes(domid: u32, devid: u32, spec: &ChannelSpec) -> Result<DeviceNodes, ChannelError> {
    if devid == 0 {
        return Err(ChannelError::Primary(spec.name.clone()));
    }
    if let Connection::Socket { .. } = spec.connection {
        return Err(ChannelError::Socket(spec.name.clone()));
    }
    let paths = paths(domid, devid);
    let initialising = XenbusState::Initialising.as_value();
    let frontend = vec![
        ("backend", paths.backend()),
        ("backend-id", paths.backend_domid.to_string()),
        ("state", initialising.clone()),
        ("protocol", PROTOCOL.to_string()),
    ];
    let ro_frontend = vec![
        ("name", spec.name.clone()),
        ("limit", LIMIT.to_string()),
        ("type", TYPE_DAEMON.to_string()),
        ("output", OUTPUT_PTY.to_string()),
        ("tty", String::new()),
    ];
    let backend = vec![
        ("frontend", paths.frontend()),
        ("frontend-id", domid.to_string()),
        ("online", "1".to_string()),
        ("state", initialising),
        ("protocol", PROTOCOL.to_string()),
        ("name", spec.name.clone()),
        ("connection", OUTPUT_PTY.to_string()),
    ];
    Ok(DeviceNodes {
        paths,
        frontend,
        ro_frontend,
        backend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::channel::parse_channel_spec;
    use crate::device::testing::Recorder;
    use xenstore::wire::MsgType;

    fn value<'a>(list: &'a [(&'static str, String)], key: &str) -> &'a str {
        list.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn a_channel_gets_libxl_nodes_with_dom0_owned_entries() {
        let spec = parse_channel_spec("name=org.rxen.agent, connection=pty").unwrap();
        let n = nodes(5, 1, &spec).unwrap();
        assert_eq!(n.paths.frontend(), "/local/domain/5/device/console/1");
        assert_eq!(n.paths.backend(), "/local/domain/0/backend/console/5/1");
        assert_eq!(value(&n.frontend, "state"), "1");
        assert_eq!(value(&n.frontend, "backend-id"), "0");
        assert_eq!(value(&n.ro_frontend, "name"), "org.rxen.agent");
        assert_eq!(value(&n.ro_frontend, "type"), "xenconsoled");
        assert_eq!(value(&n.ro_frontend, "output"), "pty");
        assert_eq!(value(&n.backend, "frontend"), n.paths.frontend());
        assert_eq!(value(&n.backend, "online"), "1");
        assert_eq!(value(&n.backend, "connection"), "pty");

        let mut xs = Recorder::default();
        n.write(&mut xs).expect("write");
        // `name` is written, then made dom0's: the guest cannot rename its channel.
        let name = "/local/domain/5/device/console/1/name";
        let i =
            xs.0.iter()
                .position(|(k, p)| *k == MsgType::Write && p[0] == name)
                .expect("name written");
        assert_eq!(xs.0[i + 1].0, MsgType::SetPerms);
        assert_eq!(xs.0[i + 1].1[..3], [name, "n0", "r5"]);
        // The frontend directory itself is the guest's (it writes ring-ref, port).
        let fe_perms = xs
            .0
            .iter()
            .find(|(k, p)| *k == MsgType::SetPerms && p[0] == "/local/domain/5/device/console/1")
            .expect("frontend perms");
        assert_eq!(fe_perms.1[1..3], ["n5", "r0"]);
    }

    #[test]
    fn socket_channels_and_devid_0_are_refused() {
        let s = parse_channel_spec("name=s,connection=socket,path=/run/s").unwrap();
        assert_eq!(nodes(5, 1, &s), Err(ChannelError::Socket("s".into())));
        let p = parse_channel_spec("name=p,connection=pty").unwrap();
        assert_eq!(nodes(5, 0, &p), Err(ChannelError::Primary("p".into())));
    }
}
