//! What a process uses, read from Linux's `/proc`.

use std::process::Command;

/// (resident set size, peak resident set size: `VmRSS`, `VmHWM`) of `pid`
/// in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)?.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User + system CPU time of `pid`, in clock ticks ([`clock_ticks_per_sec`]).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    ticks_of(split_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?.1)
}

/// User + system CPU time of each of `pid`'s threads, with the thread's
/// name (`comm`), in clock ticks; empty when `/proc` cannot tell.
pub fn thread_cpu_ticks(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            let (name, fields) = split_stat(&stat)?;
            Some((name.to_owned(), ticks_of(fields)?))
        })
        .collect()
}

/// A process, as [`processes_named`] finds it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    /// Its parent (a PostgreSQL server's processes are its postmaster's).
    pub ppid: u32,
    /// PostgreSQL's processes show their role here: `walwriter`, or a
    /// backend's user, database and command.
    pub cmdline: String,
    /// User + system CPU time, in clock ticks.
    pub ticks: u64,
}

/// Every process whose name (`comm`) is `name`.
pub fn processes_named(name: &str) -> Vec<Process> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .filter_map(|p| {
            let pid: u32 = p.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, fields) = split_stat(&stat)?;
            if comm != name {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_owned();
            let ppid = fields.split_whitespace().nth(1)?.parse().ok()?;
            Some(Process { pid, ppid, cmdline, ticks: ticks_of(fields)? })
        })
        .collect()
}

/// A `/proc/…/stat` line, "pid (comm) state ppid …", as its name (`comm`,
/// which may hold spaces and parentheses) and the fields after it, from
/// `state` (field 3) on.
fn split_stat(stat: &str) -> Option<(&str, &str)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    Some((stat.get(open + 1..close)?, stat.get(close + 2..)?))
}

/// utime + stime (fields 14 and 15) from [`split_stat`]'s fields.
fn ticks_of(fields: &str) -> Option<u64> {
    let mut fields = fields.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be read).
pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        let (rss, peak) = memory_kib(me).expect("VmRSS and VmHWM");
        assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_ticks(me).is_some());
        assert!(clock_ticks_per_sec() > 0.0);
        assert_eq!(memory_kib(u32::MAX), None);
        // This thread is among this process's, and it has spun 50 ms.
        let threads = thread_cpu_ticks(me);
        assert!(!threads.is_empty() && threads.iter().map(|(_, t)| t).sum::<u64>() <= cpu_ticks(me).expect("cpu") + 1);
        assert!(thread_cpu_ticks(u32::MAX).is_empty());
        let own = std::fs::read_to_string("/proc/self/comm").expect("comm");
        let found = processes_named(own.trim());
        let parent = std::os::unix::process::parent_id();
        assert!(found.iter().any(|p| p.pid == me && p.ppid == parent && !p.cmdline.is_empty()), "{found:?}");
        assert!(processes_named("no such process name").is_empty());
    }
}
