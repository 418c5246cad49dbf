//! Where a ring's time goes: counters of one ring's work (requests, segments,
//! batches, runs, notifications) and the time spent in grant copies, disk calls
//! and flushes. Lanes add to them concurrently (relaxed atomics); the ring's
//! thread logs a summary after each burst of work ([`RingStats::take`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One counter per thing measured.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Wake-ups of the ring's thread that found work (calls of `process`
    /// that answered something).
    pub wakeups: AtomicU64,
    /// Batches taken off the ring (every request visible at once).
    pub batches: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub discards: AtomicU64,
    /// Indirect requests among the reads and writes.
    pub indirect: AtomicU64,
    pub segments: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Disk calls of reads or writes (one per run).
    pub runs: AtomicU64,
    /// Notifications sent to the frontend.
    pub notifies: AtomicU64,
    /// Nanoseconds in grant copies, disk reads and writes, fdatasync.
    pub copy_ns: AtomicU64,
    pub disk_ns: AtomicU64,
    pub flush_ns: AtomicU64,
    /// Nanoseconds from taking a batch to publishing its last response.
    pub busy_ns: AtomicU64,
    /// Runs served straight from persistently mapped pages (no copy).
    pub direct_runs: AtomicU64,
    /// Grants mapped persistently, and the mapping calls that did it.
    pub grants_mapped: AtomicU64,
    pub map_calls: AtomicU64,
    /// Grants left unmapped (copied instead) because the bound was reached.
    pub over_bound: AtomicU64,
}

/// A copy of the counters, as taken (and reset) by [`RingStats::take`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub wakeups: u64,
    pub batches: u64,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub discards: u64,
    pub indirect: u64,
    pub segments: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub runs: u64,
    pub notifies: u64,
    pub copy_ns: u64,
    pub disk_ns: u64,
    pub flush_ns: u64,
    pub busy_ns: u64,
    pub direct_runs: u64,
    pub grants_mapped: u64,
    pub map_calls: u64,
    pub over_bound: u64,
}

impl RingStats {
    /// Adds the nanoseconds since `since` to `counter`.
    pub fn add_time(counter: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters since the last call, which resets them.
    pub fn take(&self) -> Snapshot {
        let t = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        Snapshot {
            wakeups: t(&self.wakeups),
            batches: t(&self.batches),
            reads: t(&self.reads),
            writes: t(&self.writes),
            flushes: t(&self.flushes),
            discards: t(&self.discards),
            indirect: t(&self.indirect),
            segments: t(&self.segments),
            bytes_read: t(&self.bytes_read),
            bytes_written: t(&self.bytes_written),
            runs: t(&self.runs),
            notifies: t(&self.notifies),
            copy_ns: t(&self.copy_ns),
            disk_ns: t(&self.disk_ns),
            flush_ns: t(&self.flush_ns),
            busy_ns: t(&self.busy_ns),
            direct_runs: t(&self.direct_runs),
            grants_mapped: t(&self.grants_mapped),
            map_calls: t(&self.map_calls),
            over_bound: t(&self.over_bound),
        }
    }
}

impl Snapshot {
    /// Requests answered.
    pub fn requests(&self) -> u64 {
        self.reads + self.writes + self.flushes + self.discards
    }
}

/// Milliseconds with one decimal.
struct Ms(u64);
impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}ms", self.0 / 1_000_000, self.0 / 100_000 % 10)
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |a: u64, b: u64| a.checked_div(b).unwrap_or(0);
        write!(
            f,
            "requests={} (read={} write={} flush={} discard={} indirect={}) segments={} \
             KiB-read={} KiB-written={} wakeups={} batches={} requests-per-batch={} runs={} \
             notifies={} busy={} copy={} disk={} fdatasync={} direct-runs={} \
             pgrants-mapped={} map-calls={} pgrants-over-bound={}",
            self.requests(),
            self.reads,
            self.writes,
            self.flushes,
            self.discards,
            self.indirect,
            self.segments,
            self.bytes_read / 1024,
            self.bytes_written / 1024,
            self.wakeups,
            self.batches,
            per(self.requests(), self.batches),
            self.runs,
            self.notifies,
            Ms(self.busy_ns),
            Ms(self.copy_ns),
            Ms(self.disk_ns),
            Ms(self.flush_ns),
            self.direct_runs,
            self.grants_mapped,
            self.map_calls,
            self.over_bound,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_the_counts_and_resets_them() {
        let s = RingStats::default();
        RingStats::add(&s.reads, 3);
        RingStats::add(&s.batches, 1);
        RingStats::add(&s.copy_ns, 1_250_000);
        let snap = s.take();
        assert_eq!(snap.reads, 3);
        assert_eq!(snap.requests(), 3);
        let text = snap.to_string();
        assert!(text.contains("requests=3 (read=3"), "{text}");
        assert!(text.contains("requests-per-batch=3"), "{text}");
        assert!(text.contains("copy=1.2ms"), "{text}");
        assert_eq!(s.take(), Snapshot::default());
    }
}
