//! Device layouts in xenstore, shared by `rxl` (the writer) and rxen's backends
//! (the readers): paths, permissions and xenbus states as libxl writes them
//! (tools/libs/light/libxl_device.c `libxl__device_generic_add`).
//!
//! Each device kind (vbd now; vif and console follow the same shape) has a module
//! that turns its parsed config into a [`DeviceNodes`]: the frontend and backend
//! directories with their entries. [`DeviceNodes::write`] creates both in one
//! transaction with libxl's permissions; [`remove`] takes them away again.

pub mod console;
pub mod vbd;
pub mod vif;

use std::fmt;
use xenstore::client::{ClientError, Perm, PermAccess, XsOps};

/// The toolstack's and backends' own domain.
pub const DOM0: u32 = 0;

/// Xenbus device states (xen/include/public/io/xenbus.h `enum xenbus_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// The state for a number (anything unknown is `Unknown`, as Linux reads it).
    pub fn from_u32(n: u32) -> Self {
        use XenbusState::*;
        match n {
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => Unknown,
        }
    }

    /// Parses a `state` node's value; `Unknown` for anything that is not a number.
    pub fn parse(value: &[u8]) -> Self {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map_or(XenbusState::Unknown, Self::from_u32)
    }

    /// The value written to a `state` node.
    pub fn as_value(self) -> String {
        (self as u32).to_string()
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", *self as u32, self)
    }
}

/// Errors of writing or removing device nodes.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("xenstore request failed")]
    Xenstore(#[from] ClientError),
    #[error("device {0} already exists")]
    Exists(String),
}

/// Where a device lives in xenstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePaths {
    /// Frontend device class (`vbd`, `vif`, `console`).
    pub kind: &'static str,
    /// Backend type directory (`vbd`, `qdisk`, `rxvbd`...).
    pub backend_type: String,
    pub frontend_domid: u32,
    pub backend_domid: u32,
    pub devid: u32,
}

impl DevicePaths {
    /// `/local/domain/<frontend>/device/<kind>/<devid>`.
    pub fn frontend(&self) -> String {
        format!(
            "/local/domain/{}/device/{}/{}",
            self.frontend_domid, self.kind, self.devid
        )
    }
    /// `/local/domain/<backend>/backend/<type>/<frontend>/<devid>`.
    pub fn backend(&self) -> String {
        format!(
            "/local/domain/{}/backend/{}/{}/{}",
            self.backend_domid, self.backend_type, self.frontend_domid, self.devid
        )
    }
    /// The frontend domain's directory of devices of this kind.
    pub fn frontend_class_dir(frontend_domid: u32, kind: &str) -> String {
        format!("/local/domain/{frontend_domid}/device/{kind}")
    }
    /// Parses a backend path `/local/domain/<b>/backend/<type>/<f>/<devid>[/...]`
    /// into (frontend domid, devid); `None` for anything else.
    pub fn parse_backend(path: &str, backend_domid: u32, backend_type: &str) -> Option<(u32, u32)> {
        let prefix = format!("/local/domain/{backend_domid}/backend/{backend_type}/");
        let rest = path.strip_prefix(&prefix)?;
        let mut parts = rest.split('/');
        let fe = parts.next()?.parse().ok()?;
        let devid = parts.next()?.parse().ok()?;
        Some((fe, devid))
    }
}

/// The nodes of one device: both directories and their entries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNodes {
    pub paths: DevicePaths,
    pub frontend: Vec<(&'static str, String)>,
    /// Frontend entries the backend domain owns and the guest may only read
    /// (libxl's `ro_front`, e.g. a NIC's `mtu`, a channel's `name`).
    pub ro_frontend: Vec<(&'static str, String)>,
    pub backend: Vec<(&'static str, String)>,
}

impl DeviceNodes {
    /// libxl's permissions of the frontend directory: owned by the guest (no
    /// access for others), readable by the backend domain.
    pub fn frontend_perms(&self) -> [Perm; 2] {
        [
            Perm::new(self.paths.frontend_domid, PermAccess::None),
            Perm::new(self.paths.backend_domid, PermAccess::Read),
        ]
    }
    /// The backend directory: owned by the backend domain, readable by the guest.
    pub fn backend_perms(&self) -> [Perm; 2] {
        [
            Perm::new(self.paths.backend_domid, PermAccess::None),
            Perm::new(self.paths.frontend_domid, PermAccess::Read),
        ]
    }
    /// The [`DeviceNodes::ro_frontend`] entries (libxl's `ro_frontend_perms`):
    /// owned by the backend domain, readable by the guest.
    pub fn ro_frontend_perms(&self) -> [Perm; 2] {
        self.backend_perms()
    }

    /// Writes both directories in one transaction (retried on `EAGAIN`), the
    /// read-only frontend entries each with [`DeviceNodes::ro_frontend_perms`];
    /// fails with [`DeviceError::Exists`] when either directory exists already.
    pub fn write<C: XenstoreClient>(&self, xs: &mut C) -> Result<(), DeviceError> {
        xs.in_transaction(&mut |tx| {
            let (fe, be) = (self.paths.frontend(), self.paths.backend());
            for p in [&fe, &be] {
                if tx.exists(p)? {
                    return Err(DeviceError::Exists(p.clone()));
                }
            }
            // Directories first with their permissions; entries inherit them.
            tx.mkdir(&fe)?;
            tx.set_perms(&fe, &self.frontend_perms())?;
            tx.mkdir(&be)?;
            tx.set_perms(&be, &self.backend_perms())?;
            for (k, v) in &self.frontend {
                tx.write(&format!("{fe}/{k}"), v.as_bytes())?;
            }
            let ro = self.ro_frontend_perms();
            for (k, v) in &self.ro_frontend {
                let path = format!("{fe}/{k}");
                tx.write(&path, v.as_bytes())?;
                tx.set_perms(&path, &ro)?;
            }
            for (k, v) in &self.backend {
                tx.write(&format!("{be}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })
    }
}

/// Removes both directories of a device in one transaction (missing ones are
/// fine), and the per-domain class directories left empty.
pub fn remove<C: XenstoreClient>(xs: &mut C, paths: &DevicePaths) -> Result<(), DeviceError> {
    xs.in_transaction(&mut |tx| {
        for p in [paths.frontend(), paths.backend()] {
            match tx.rm(&p) {
                Ok(()) => {}
                Err(e) if e.is_enoent() => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The backend's per-frontend directory, when no device is left in it.
        let be_dom = format!(
            "/local/domain/{}/backend/{}/{}",
            paths.backend_domid, paths.backend_type, paths.frontend_domid
        );
        if let Ok(children) = tx.directory(&be_dom) {
            if children.is_empty() {
                tx.rm(&be_dom)?;
            }
        }
        Ok(())
    })
}

/// Starts the removal handshake: `online = 0` and backend `state = 5` in one
/// transaction (libxl__initiate_device_generic_remove).
pub fn initiate_remove<C: XenstoreClient>(
    xs: &mut C,
    paths: &DevicePaths,
) -> Result<(), DeviceError> {
    xs.in_transaction(&mut |tx| {
        let be = paths.backend();
        if !tx.exists(&be)? {
            return Err(DeviceError::Xenstore(ClientError::InvalidArgument(
                format!("no device at {be}"),
            )));
        }
        tx.write(&format!("{be}/online"), b"0")?;
        tx.write(
            &format!("{be}/state"),
            XenbusState::Closing.as_value().as_bytes(),
        )?;
        Ok(())
    })
}

/// Reads a `state` node (`Unknown` when absent).
pub fn read_state<X: XsOps>(xs: &mut X, dir: &str) -> Result<XenbusState, ClientError> {
    Ok(xs
        .try_read(&format!("{dir}/state"))?
        .map_or(XenbusState::Unknown, |v| XenbusState::parse(&v)))
}

/// What [`DeviceNodes::write`] needs of a xenstore connection: a transaction
/// runner (retrying on `EAGAIN`). Implemented by the real client.
pub trait XenstoreClient {
    fn in_transaction(
        &mut self,
        body: &mut dyn FnMut(&mut dyn XsOps) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError>;
}

impl XenstoreClient for xenstore::client::Client {
    fn in_transaction(
        &mut self,
        body: &mut dyn FnMut(&mut dyn XsOps) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
        self.transaction(|tx| body(tx))
    }
}

/// A recording xenstore for the device writers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{DeviceError, XenstoreClient};
    use xenstore::client::{ClientError, XsOps};
    use xenstore::wire::{MsgType, XsError};

    /// Records every request; nothing exists.
    #[derive(Default)]
    pub struct Recorder(pub Vec<(MsgType, Vec<String>)>);

    impl XsOps for Recorder {
        fn raw_request(&mut self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
            let parts: Vec<String> = payload
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            let path = parts.first().cloned().unwrap_or_default();
            self.0.push((kind, parts));
            match kind {
                MsgType::Read | MsgType::GetPerms => Err(ClientError::Xs {
                    request: kind,
                    arg: path,
                    error: XsError::Enoent,
                }),
                _ => Ok(Vec::new()),
            }
        }
    }

    impl XenstoreClient for Recorder {
        fn in_transaction(
            &mut self,
            body: &mut dyn FnMut(&mut dyn XsOps) -> Result<(), DeviceError>,
        ) -> Result<(), DeviceError> {
            body(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_like_linux() {
        assert_eq!(XenbusState::parse(b"4"), XenbusState::Connected);
        assert_eq!(XenbusState::parse(b"6\n"), XenbusState::Closed);
        assert_eq!(XenbusState::parse(b"x"), XenbusState::Unknown);
        assert_eq!(XenbusState::parse(b"99"), XenbusState::Unknown);
        assert_eq!(XenbusState::InitWait.as_value(), "2");
    }

    #[test]
    fn backend_paths_round_trip() {
        let p = DevicePaths {
            kind: "vbd",
            backend_type: "rxvbd".into(),
            frontend_domid: 3,
            backend_domid: 0,
            devid: 51712,
        };
        assert_eq!(p.frontend(), "/local/domain/3/device/vbd/51712");
        assert_eq!(p.backend(), "/local/domain/0/backend/rxvbd/3/51712");
        assert_eq!(
            DevicePaths::parse_backend(&format!("{}/state", p.backend()), 0, "rxvbd"),
            Some((3, 51712))
        );
        assert_eq!(DevicePaths::parse_backend(&p.backend(), 0, "vbd"), None);
        assert_eq!(
            DevicePaths::parse_backend("/local/domain/0/backend/rxvbd/3", 0, "rxvbd"),
            None
        );
    }
}
