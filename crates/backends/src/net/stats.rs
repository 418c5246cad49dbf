//! Where a queue's time goes: counts and nanoseconds of a NIC queue's work
//! (wake-ups, transmit batches, grant copies, TAP reads and writes,
//! notifications, time asleep). One thread owns a queue, so plain integers;
//! the queue's thread logs a summary after each burst of traffic
//! ([`QueueTimes::take`]) and when it ends.

use std::fmt;
use std::ops::AddAssign;
use std::time::Instant;

/// The counters of one queue (or one half of it; [`AddAssign`] joins them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueTimes {
    /// Wake-ups of the queue's thread (returns from its wait).
    pub wakeups: u64,
    /// Nanoseconds asleep waiting for an event or the TAP.
    pub idle_ns: u64,
    /// Transmit batches taken (each: one grant copy call when it has data).
    pub tx_batches: u64,
    /// Ring slots consumed by transmit batches.
    pub tx_slots: u64,
    /// Grant copy calls of transmit and their nanoseconds.
    pub tx_copies: u64,
    pub tx_copy_ns: u64,
    /// TAP writes (one per transmitted frame) and their nanoseconds.
    pub tap_writes: u64,
    pub tap_write_ns: u64,
    /// TAP reads that returned a frame, reads that found none, and the
    /// nanoseconds of both.
    pub tap_reads: u64,
    pub tap_empty_reads: u64,
    pub tap_read_ns: u64,
    /// Grant copy calls of receive and their nanoseconds.
    pub rx_copies: u64,
    pub rx_copy_ns: u64,
    /// Event channel notifications sent and their nanoseconds.
    pub notifies: u64,
    pub notify_ns: u64,
    /// Of the notifications, those for rx responses (dom0 to guest).
    pub rx_notifies: u64,
    /// Sleeps while a received frame waited for rx buffers (the guest had
    /// posted too few), and their nanoseconds (part of `idle_ns`).
    pub rx_waits: u64,
    pub rx_wait_ns: u64,
    /// Wake-ups with an event pending and with the TAP readable (both may
    /// count for one wake-up; neither: a timeout).
    pub woke_event: u64,
    pub woke_tap: u64,
}

/// Nanoseconds since `t`.
pub fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl QueueTimes {
    /// The counters so far; they start again from zero.
    pub fn take(&mut self) -> QueueTimes {
        std::mem::take(self)
    }

    /// Whether anything but sleeping was counted.
    pub fn any_work(&self) -> bool {
        self.tx_batches + self.tap_writes + self.tap_reads + self.notifies > 0
    }
}

impl AddAssign for QueueTimes {
    fn add_assign(&mut self, o: QueueTimes) {
        self.wakeups += o.wakeups;
        self.idle_ns += o.idle_ns;
        self.tx_batches += o.tx_batches;
        self.tx_slots += o.tx_slots;
        self.tx_copies += o.tx_copies;
        self.tx_copy_ns += o.tx_copy_ns;
        self.tap_writes += o.tap_writes;
        self.tap_write_ns += o.tap_write_ns;
        self.tap_reads += o.tap_reads;
        self.tap_empty_reads += o.tap_empty_reads;
        self.tap_read_ns += o.tap_read_ns;
        self.rx_copies += o.rx_copies;
        self.rx_copy_ns += o.rx_copy_ns;
        self.notifies += o.notifies;
        self.notify_ns += o.notify_ns;
        self.rx_notifies += o.rx_notifies;
        self.rx_waits += o.rx_waits;
        self.rx_wait_ns += o.rx_wait_ns;
        self.woke_event += o.woke_event;
        self.woke_tap += o.woke_tap;
    }
}

/// Milliseconds with one decimal.
struct Ms(u64);
impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}ms", self.0 / 1_000_000, self.0 / 100_000 % 10)
    }
}

/// Microseconds per call (0 without calls).
struct Per(u64, u64);
impl fmt::Display for Per {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us", (self.0 / 1000).checked_div(self.1).unwrap_or(0))
    }
}

impl fmt::Display for QueueTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wakeups={} idle={} tx-batches={} tx-slots={} tx-copy={}x{} ({}) tap-write={}x{} ({}) \
             tap-read={}+{}empty ({}) rx-copy={}x{} ({}) notify={}x{} ({}, rx {}) \
             rx-wait={} ({}) woke=event {} tap {}",
            self.wakeups,
            Ms(self.idle_ns),
            self.tx_batches,
            self.tx_slots,
            self.tx_copies,
            Per(self.tx_copy_ns, self.tx_copies),
            Ms(self.tx_copy_ns),
            self.tap_writes,
            Per(self.tap_write_ns, self.tap_writes),
            Ms(self.tap_write_ns),
            self.tap_reads,
            self.tap_empty_reads,
            Ms(self.tap_read_ns),
            self.rx_copies,
            Per(self.rx_copy_ns, self.rx_copies),
            Ms(self.rx_copy_ns),
            self.notifies,
            Per(self.notify_ns, self.notifies),
            Ms(self.notify_ns),
            self.rx_notifies,
            self.rx_waits,
            Ms(self.rx_wait_ns),
            self.woke_event,
            self.woke_tap,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_the_counts_and_resets_them() {
        let mut t = QueueTimes {
            tx_copies: 4,
            tx_copy_ns: 2_000_000,
            tap_writes: 1,
            ..Default::default()
        };
        assert!(t.any_work());
        let text = t.to_string();
        assert!(text.contains("tx-copy=4x500us (2.0ms)"), "{text}");
        let snap = t.take();
        assert_eq!(snap.tx_copies, 4);
        assert_eq!(t, QueueTimes::default());
        assert!(!t.any_work());
    }

    #[test]
    fn halves_add_up() {
        let mut a = QueueTimes {
            tx_batches: 2,
            idle_ns: 5,
            ..Default::default()
        };
        a += QueueTimes {
            tx_batches: 1,
            rx_copies: 3,
            ..Default::default()
        };
        assert_eq!((a.tx_batches, a.rx_copies, a.idle_ns), (3, 3, 5));
        assert!(!QueueTimes {
            wakeups: 9,
            idle_ns: 9,
            ..Default::default()
        }
        .any_work());
    }
}
