//! The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): benchmarks charge
//! a component only the CPU its own calls used, not what another part of the
//! same thread (e.g. a test frontend) or another process did meanwhile.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// CPU time the calling thread has used so far (nanosecond resolution on
/// Linux: the scheduler's runtime of the thread, brought up to date by the
/// call). One system call.
pub fn thread_cpu_time() -> Duration {
    match clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID) {
        Ok(ts) => Duration::new(
            u64::try_from(ts.tv_sec()).unwrap_or(0),
            u32::try_from(ts.tv_nsec()).unwrap_or(0),
        ),
        // Linux always has this clock; a zero makes every interval empty
        // rather than wrong.
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_grows_with_work_not_with_sleep() {
        let t0 = thread_cpu_time();
        let mut x = 1u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        let t1 = thread_cpu_time();
        assert!(t1 - t0 >= Duration::from_millis(5), "{:?}", t1 - t0);
        std::thread::sleep(Duration::from_millis(50));
        let t2 = thread_cpu_time();
        assert!(t2 - t1 < Duration::from_millis(25), "{:?}", t2 - t1);
    }
}
