//! What the hostile block and net frontends share: the backend's domain, the ring
//! header offsets, xenbus states and waiting for a backend's state in xenstore.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use xen::abi::xen::GrantRef;
use xenstore::client::{Client, XsOps};

/// The backend domain (dom0 runs rxblkback and rxnetback in the test bed).
pub const BACKEND_DOMID: u16 = 0;
/// Offsets in the shared ring header (ring.h `struct *_sring`).
pub const REQ_PROD: usize = 0;
pub const RSP_PROD: usize = 8;
pub const RSP_EVENT: usize = 12;
/// Xenbus states (xen/include/public/io/xenbus.h).
pub const STATE_INITIALISING: u32 = 1;
pub const STATE_INIT_WAIT: u32 = 2;
pub const STATE_INITIALISED: u32 = 3;
pub const STATE_CONNECTED: u32 = 4;
pub const STATE_CLOSING: u32 = 5;
pub const STATE_CLOSED: u32 = 6;
/// How long a backend may take to answer or change state.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// A grant reference far beyond any this guest has granted.
pub const NEVER_GRANTED: GrantRef = 0x0fff_fff0;
/// How far ahead of the backend's consumer the hostile producer index jumps.
pub const FAR_AHEAD: u32 = 1000;
/// Poll interval while waiting for a backend's state.
const STATE_POLL: Duration = Duration::from_millis(50);

/// A xenstore node's value, trimmed; None when the node does not exist.
pub fn read_str(xs: &mut Client, path: &str) -> Result<Option<String>> {
    Ok(xs
        .try_read(path)?
        .map(|v| String::from_utf8_lossy(&v).trim().to_string()))
}

/// The xenbus state of the device directory `dir` (0 when unset or not a number).
pub fn state(xs: &mut Client, dir: &str) -> Result<u32> {
    Ok(read_str(xs, &format!("{dir}/state"))?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Waits until `dir`'s state is one of `want`; an error after [`BACKEND_TIMEOUT`].
pub fn wait_state(xs: &mut Client, dir: &str, want: &[u32]) -> Result<u32> {
    let deadline = Instant::now() + BACKEND_TIMEOUT;
    loop {
        let s = state(xs, dir)?;
        if want.contains(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("{dir}/state is {s}, not one of {want:?} after {BACKEND_TIMEOUT:?}");
        }
        std::thread::sleep(STATE_POLL);
    }
}
