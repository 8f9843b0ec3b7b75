//! What `/proc` says about a process (CPU time, RSS) and the machine (load average), and the
//! size of a directory tree: the server and client figures every load generator reports.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// CPU and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// VmRSS, bytes.
    pub rss_bytes: u64,
    /// VmHWM (peak RSS over the process lifetime), bytes.
    pub peak_rss_bytes: u64,
}

impl ProcSample {
    /// Samples process `pid`; `clk_tck` is [`clock_ticks_per_second`].
    pub fn read(pid: u32, clk_tck: u64) -> anyhow::Result<Self> {
        Self::read_path(&format!("/proc/{pid}"), clk_tck).with_context(|| format!("sampling process {pid}"))
    }

    /// Samples this process.
    pub fn read_self(clk_tck: u64) -> anyhow::Result<Self> {
        Self::read_path("/proc/self", clk_tck).context("sampling this process")
    }

    fn read_path(dir: &str, clk_tck: u64) -> anyhow::Result<Self> {
        let ticks = Stat::read(dir)?.cpu_ticks;
        let status =
            std::fs::read_to_string(format!("{dir}/status")).with_context(|| format!("reading {dir}/status"))?;
        Ok(Self {
            cpu_seconds: ticks as f64 / clk_tck as f64,
            rss_bytes: status_kib(&status, "VmRSS").unwrap_or(0) * 1024,
            peak_rss_bytes: status_kib(&status, "VmHWM").unwrap_or(0) * 1024,
        })
    }
}

/// The fields of `/proc/PID/stat` the benches use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The process id (field 1).
    pub pid: u32,
    /// Its parent's (field 4).
    pub ppid: u32,
    /// utime + stime in clock ticks (fields 14 and 15).
    pub cpu_ticks: u64,
}

impl Stat {
    /// Reads `DIR/stat` for a `/proc/PID` (or `/proc/self`) dir. The command name in field 2
    /// may hold spaces and parentheses, so fields are counted after its last `)`.
    pub fn read(dir: &str) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("{dir}/stat")).with_context(|| format!("reading {dir}/stat"))?;
        Self::parse(&stat)
    }

    /// Parses the text of a `stat` file.
    pub fn parse(stat: &str) -> anyhow::Result<Self> {
        let pid = stat.split_whitespace().next().and_then(|f| f.parse().ok()).context("malformed stat: no pid")?;
        let after_comm = stat.rfind(')').map(|i| &stat[i + 1..]).context("malformed stat: no ')'")?;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // after_comm starts at field 3 (state): ppid (4) is index 1, utime (14) index 11 and
        // stime (15) index 12.
        let field = |index: usize| -> anyhow::Result<u64> {
            fields
                .get(index)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("malformed stat: field {} is missing", index + 3))
        };
        let ppid = u32::try_from(field(1)?).context("malformed stat: ppid out of range")?;
        Ok(Self { pid, ppid, cpu_ticks: field(11)? + field(12)? })
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...).
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Resident memory of this process, MB (0 if `/proc` does not say).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status_kib(&status, "VmRSS"))
        .map_or(0.0, |kib| kib as f64 / 1024.0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails, as on every Linux).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// The 1-, 5- and 15-minute load averages and running/total tasks (`/proc/loadavg`), to record
/// what else the machine was doing during a run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_owned())
}

/// Total size of the files under `path` (0 where it cannot be read).
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 1 1 1";
        assert_eq!(Stat::parse(line).expect("parses"), Stat { pid: 4242, ppid: 17, cpu_ticks: 325 });
        assert!(Stat::parse("4242 (x) S 17").is_err(), "a stat without utime is refused");
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
