//! `disk-bench`: timed O_DIRECT I/O on a block device from inside the guest, for
//! the test bed's `block-bench` (rxblkback against xen-blkback). One process does
//! all the operations, so the time is the block path's, not that of a `dd`
//! process per 4 KiB operation (fork and exec under TCG cost far more than the
//! I/O). The buffer is page-aligned anonymous memory, as O_DIRECT needs.

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xen::{pread_exact_into, pwrite_all_from, IoPiece, MappedMemory};

/// What to time.
#[derive(Debug, Clone)]
pub struct Job {
    pub device: String,
    pub write: bool,
    /// Bytes per operation (a multiple of the device's logical block size).
    pub block_size: usize,
    pub count: u64,
    /// Random offsets among the first `span` blocks (`None`: sequential from 0).
    pub random_span: Option<u64>,
    pub seed: u64,
}

/// Runs `job`; returns the time the operations took (opening excluded).
pub fn run(job: &Job) -> Result<Duration> {
    let file = OpenOptions::new()
        .read(true)
        .write(job.write)
        .custom_flags(libc::O_DIRECT)
        .open(&job.device)
        .with_context(|| format!("opening {} with O_DIRECT", job.device))?;
    let buf = MappedMemory::anonymous(job.block_size).context("buffer")?;
    buf.fill(0, job.block_size, 0x5a)
        .context("filling the buffer")?;
    let mut x = job.seed | 1;
    let bs = job.block_size as u64;
    let t = Instant::now();
    for i in 0..job.count {
        let block = match job.random_span {
            Some(span) => {
                // xorshift64: a fixed, cheap sequence of offsets.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % span.max(1)
            }
            None => i,
        };
        let piece = [IoPiece {
            mem: &buf,
            offset: 0,
            len: job.block_size,
        }];
        if job.write {
            pwrite_all_from(file.as_fd(), block * bs, piece)
        } else {
            pread_exact_into(file.as_fd(), block * bs, piece)
        }
        .with_context(|| format!("operation {i} at block {block} of {}", job.device))?;
    }
    Ok(t.elapsed())
}
