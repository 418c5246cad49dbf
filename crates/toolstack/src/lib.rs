//! Domains and devices: the xl.cfg parser, the ARM domain builder, device layouts
//! and the hotplug state machine behind `rxl`.

// Tests may unwrap: a panic there is a test failure with its message.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod arm;
pub mod builder;
pub mod config;
pub mod device;
pub mod domain;
pub mod dtb;
pub mod lifecycle;
pub mod memory;
pub mod monitor;
pub mod rand;
pub mod rename;
pub mod uptime;
pub mod vcpus;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// rxenstored's daemon on a fresh temporary socket named after `tag` (the
    /// daemon thread lives until the test process ends); its path.
    pub fn xenstored(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rxl-{tag}-{}", std::process::id()));
        let path = dir.join("socket");
        xenstore::daemon::spawn_unix_daemon(&path).expect("xenstore daemon");
        path
    }

    /// A client of a fresh [`xenstored`].
    pub fn xenstore_client(tag: &str) -> xenstore::client::Client {
        xenstore::client::Client::connect_socket(&xenstored(tag)).expect("connect")
    }
}
