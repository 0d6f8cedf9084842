//! Load-generator health: CPU time of a worker thread and its event-loop lag.

use std::time::Duration;

/// CPU time (user + sys) used by the calling thread so far.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How often the lag probe wakes up.
pub(crate) const LAG_PROBE_PERIOD: Duration = Duration::from_millis(50);
