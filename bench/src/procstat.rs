//! CPU time and memory of a process from Linux `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! CPU is `utime + stime` in clock ticks, converted with USER_HZ = 100 (the value Linux
//! exposes to user space on every mainstream architecture). RSS is `VmRSS`, peak RSS
//! `VmHWM` (the high-water mark the kernel keeps), both in bytes.

use std::io;

/// Clock ticks per second of `/proc/<pid>/stat` times.
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Reads `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> io::Result<ProcSample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    Ok(ProcSample {
        cpu_s: parse_cpu(&stat)?,
        rss_bytes: status_kb(&status, "VmRSS:").unwrap_or(0) * 1024,
        peak_rss_bytes: status_kb(&status, "VmHWM:").unwrap_or(0) * 1024,
    })
}

/// The resident set (`VmRSS`) of `pid` (`None`: this process), in bytes; only
/// `/proc/<pid>/status` is read, so it is cheap enough to sample several times a second.
pub fn rss_bytes(pid: Option<u32>) -> io::Result<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path)?;
    status_kb(&status, "VmRSS:")
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS line in /proc status"))
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
fn parse_cpu(stat: &str) -> io::Result<f64> {
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unexpected /proc stat format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let tick = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc stat format"))
    };
    Ok((tick(11)? + tick(12)?) / USER_HZ)
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_lines_are_read() {
        let stat = "123 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 0 0";
        assert!((parse_cpu(stat).expect("parses") - 3.0).abs() < 1e-9);
        assert_eq!(
            status_kb("VmHWM:\t  2048 kB\nVmRSS: 10 kB", "VmHWM:"),
            Some(2048)
        );
        let me = sample(None).expect("/proc/self readable");
        assert!(me.rss_bytes > 0 && me.peak_rss_bytes >= me.rss_bytes);
        let rss = rss_bytes(Some(std::process::id())).expect("own pid readable");
        assert!(rss > 0);
        assert!(rss_bytes(Some(u32::MAX)).is_err(), "no such process");
    }
}
