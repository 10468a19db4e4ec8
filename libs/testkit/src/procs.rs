//! Service processes of the real binary for end-to-end tests: spawned with
//! their logs in files, killed (`kill -9`), stopped (SIGTERM) and started
//! again with the same arguments; every log is printed when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One service process.
#[derive(Debug)]
struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    /// How many times it was started (logs of earlier runs are kept).
    starts: u32,
}

/// Processes of one binary, killed on drop.
#[derive(Debug)]
pub struct Procs {
    bin: PathBuf,
    dir: PathBuf,
    procs: Vec<Proc>,
}

impl Procs {
    /// Processes of `bin`, their logs in `dir`.
    pub fn new(bin: impl Into<PathBuf>, dir: &Path) -> Self {
        Self { bin: bin.into(), dir: dir.to_owned(), procs: Vec::new() }
    }

    /// Starts `name` with `args` (and `RUST_LOG=info` unless `env` sets it).
    pub fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) {
        self.procs.push(Proc {
            name: name.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        });
        let i = self.procs.len() - 1;
        self.start(i);
    }

    fn index(&self, name: &str) -> usize {
        self.procs.iter().position(|p| p.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }

    fn start(&mut self, i: usize) {
        let p = &mut self.procs[i];
        p.starts += 1;
        p.log = self.dir.join(format!("{}.{}.log", p.name, p.starts));
        let out = std::fs::File::create(&p.log).expect("log file");
        let mut cmd = Command::new(&self.bin);
        // SCOPE_GUARD_TEST_LOG: the services' log filter (default info).
        let filter = std::env::var("SCOPE_GUARD_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        cmd.args(&p.args).env("RUST_LOG", filter);
        for (k, v) in &p.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        p.child = Some(child);
    }

    /// Starts `name` again with the arguments it was first started with.
    pub fn restart(&mut self, name: &str) {
        let i = self.index(name);
        assert!(self.procs[i].child.is_none(), "{name} is still running");
        self.start(i);
    }

    /// `kill -9`: no shutdown, no final commit.
    pub fn kill9(&mut self, name: &str) {
        let i = self.index(name);
        let p = &mut self.procs[i];
        if let Some(mut c) = p.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits at most `limit` for the exit: its status, or
    /// `None` if it had to be killed (or was not running).
    pub fn terminate(&mut self, name: &str, limit: Duration) -> Option<ExitStatus> {
        let i = self.index(name);
        let mut child = self.procs[i].child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The names of the processes started, in order.
    pub fn names(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.name.clone()).collect()
    }

    /// The pid of a running process.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs[self.index(name)].child.as_ref().map(Child::id)
    }

    /// The pids of the running processes, in the order they were started.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(|p| p.child.as_ref().map(Child::id)).collect()
    }

    /// An error naming the first process that should be running and has
    /// exited, with the end of its log (for runs that report rather than
    /// panic, such as the load bench).
    pub fn check(&mut self) -> Result<(), Exited> {
        for p in &mut self.procs {
            if let Some(c) = &mut p.child
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(Exited(format!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 40)
                )));
            }
        }
        Ok(())
    }

    /// Fails the test if a process that should be running has exited.
    pub fn assert_running(&mut self) {
        for p in &mut self.procs {
            if let Some(c) = &mut p.child
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited with {status}", p.name);
            }
        }
    }

    /// The metrics address the current run of `name` printed.
    pub fn metrics_addr(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let log = &self.procs[self.index(name)].log;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(|l| l.split("metrics on http://").nth(1)) {
                return addr.trim_end_matches("/metrics").to_owned();
            }
            assert!(Instant::now() < deadline, "{name} did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log of the current run of `name` so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(&self.procs[self.index(name)].log).unwrap_or_default()
    }

    /// Waits (at most `limit`) until the current run of `name` logs a line
    /// containing `needle`; returns that line.
    pub async fn wait_log(&self, name: &str, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log(name).lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "{name} did not log '{needle}' within {limit:?}:\n{}", self.log(name));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the current run of `name` answers `/readyz` with 200.
    pub async fn wait_ready(&self, name: &str) {
        let addr = self.metrics_addr(name);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if matches!(crate::http_get(&addr, "/readyz").await, Ok((200, _))) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} was not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every log of every run, for a failing test.
    pub fn dump_logs(&self) {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(200).collect();
            eprintln!("----- {} (last {} lines) -----", log.display(), tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A process that should be running has exited: which, how, and the end
/// of its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited(pub String);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exited {}

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Procs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
