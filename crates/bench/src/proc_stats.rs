//! A process's CPU time and memory, from /proc.

use crate::BenchError;

/// Clock ticks per second of /proc's CPU times: 100 on Linux for every architecture
/// Parley runs on (`getconf CLK_TCK`).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStats {
    /// User plus system CPU time so far, in seconds.
    pub(crate) cpu_secs: f64,
    /// Resident memory now, in KiB.
    pub(crate) rss_kib: u64,
    /// The most resident memory so far, in KiB.
    pub(crate) peak_rss_kib: u64,
}

impl ProcStats {
    pub(crate) fn read(pid: u32) -> Result<ProcStats, BenchError> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name may hold spaces; the fields counted here follow its ')'.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcStats {
            cpu_secs: (ticks(11) + ticks(12)) / TICKS_PER_SEC,
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
        })
    }
}
