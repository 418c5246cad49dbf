//! What the device commands (`block-*`, `network-*`) share: finding a domain in
//! xenstore and waiting for a xenbus state.

use anyhow::{bail, Context};
use std::time::{Duration, Instant};
use toolstack::device::{self, XenbusState};
use xenstore::client::{Client, XsOps};

/// Poll interval while waiting for a state.
const POLL: Duration = Duration::from_millis(100);

/// A domain id from an id or a name (`/local/domain/*/name`).
pub fn find_domain(xs: &mut Client, dom: &str) -> anyhow::Result<u32> {
    if let Ok(id) = dom.parse::<u32>() {
        if !xs.exists(&format!("/local/domain/{id}"))? {
            bail!("{dom} is an invalid domain identifier");
        }
        return Ok(id);
    }
    for d in xs.directory("/local/domain")? {
        if let Ok(Some(name)) = xs.try_read(&format!("/local/domain/{d}/name")) {
            if name == dom.as_bytes() {
                return d.parse().with_context(|| format!("bad domain id {d:?}"));
            }
        }
    }
    bail!("{dom} is an invalid domain identifier")
}

/// Waits until `pred(state)` holds for the `state` node of `dir`; `None` on timeout.
pub fn wait_state(
    xs: &mut Client,
    dir: &str,
    timeout: Duration,
    pred: impl Fn(XenbusState) -> bool,
) -> anyhow::Result<Option<XenbusState>> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = device::read_state(xs, dir)?;
        if pred(s) {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}
