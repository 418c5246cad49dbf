//! Console flood: write to the guest's own hvc console as fast as the guest kernel
//! lets us for a while. The console daemon must rate-limit this guest without
//! slowing down the others (checked by the dom0 scenario against the honest
//! guest's console lines) and without growing in memory.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Writes numbered lines to `path` for `seconds`; prints how much went out.
pub fn flood(path: &str, seconds: u64) -> Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut bytes = 0u64;
    let mut lines = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    println!("RXEN-HOSTILE-CONSOLE-FLOOD-START seconds={seconds}");
    while Instant::now() < end {
        buf.clear();
        for _ in 0..512 {
            lines += 1;
            // Escape sequences and control bytes too: the daemon logs bytes as they are.
            writeln!(
                buf,
                "hostile flood {lines:012} \x1b[2J\x07 {}",
                "#".repeat(40)
            )?;
        }
        out.write_all(&buf)?;
        bytes += buf.len() as u64;
    }
    out.flush()?;
    println!("RXEN-HOSTILE-CONSOLE-FLOOD-END lines={lines} bytes={bytes}");
    Ok(())
}
