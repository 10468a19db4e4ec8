//! A throwaway PostgreSQL server of the test's own (initdb + pg_ctl on a free
//! loopback port), for tests that stop and start the database mid-stream.
//! Runs the server as `postgres` when the test runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server in a temporary directory; stopped and removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    pub port: u16,
    running: bool,
}

/// The directory of initdb / pg_ctl.
fn pg_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|d| d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()));
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn as_pg(program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

impl PgCluster {
    /// initdb and start; panics with the reason when PostgreSQL is not installed.
    pub fn start() -> Self {
        let bin = pg_bin().expect("PostgreSQL server programs (initdb, pg_ctl) are not installed");
        let root = std::env::temp_dir().join(format!("psg-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).expect("cluster directory");
        if is_root() {
            let _ = Command::new("chown").args(["-R", "postgres"]).arg(&root).status();
        }
        let data = root.join("data");
        let out = as_pg(&bin.join("initdb"), &["-D", path(&data), "-U", "postgres", "--auth=trust", "-N"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut cluster = Self { bin, data, root, port: crate::free_port(), running: false };
        cluster.resume();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        let out = as_pg(&self.bin.join("pg_ctl"), &["-D", path(&self.data), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
        self.running = false;
    }

    /// Starts the (stopped) server again on the same port.
    pub fn resume(&mut self) {
        let log = self.root.join("server.log");
        let opts = format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off", self.port, path(&self.root));
        let out =
            as_pg(&self.bin.join("pg_ctl"), &["-D", path(&self.data), "-l", path(&log), "-w", "-o", &opts, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = as_pg(&self.bin.join("pg_ctl"), &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
