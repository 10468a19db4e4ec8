//! Test support, real components only:
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test on the server named by
//!   `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`;
//!   `scripts/test.sh` sets it, starting a throwaway cluster when no server
//!   answers), dropped afterwards;
//! - [`Tansu`]: a `tansu` broker process on a free loopback port with memory
//!   storage (binary from `TANSU_BIN`, the tool cache, or `PATH`), killed on drop;
//! - [`pg::PgCluster`]: a throwaway PostgreSQL server of our own, for tests
//!   that stop and start it;
//! - [`procs::Procs`]: service processes of the binary, for kill/restart tests;
//! - [`kafka`]: producing and consuming in tests;
//! - [`http`]: local HTTP servers implementing a GRC platform's endpoints;
//! - [`edges`]: flow edges;
//! - [`procstat`]: memory and CPU time of a process, from `/proc`;
//! - [`rows`]: rows for store tests;
//! - [`s3::S3Server`]: a local S3-compatible server with Object Lock (moto);
//! - [`Rng`]: the estate generator's deterministic random numbers.

pub mod edges;
pub mod http;
pub mod kafka;
pub mod pg;
pub mod procs;
pub mod procstat;
pub mod rows;
pub mod s3;

pub use psg_estate::rng::Rng;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The admin URL of a server with TimescaleDB preloaded
/// (`TEST_TIMESCALE_ADMIN_URL`, set by `scripts/test.sh`). Without it the
/// test fails saying how to get one, unless `PSG_SKIP_TIMESCALE_TESTS=1`
/// skips it explicitly (`None`, and the skip is printed).
pub fn timescale_admin_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var("TEST_TIMESCALE_ADMIN_URL") {
        return Some(url);
    }
    if std::env::var_os("PSG_SKIP_TIMESCALE_TESTS").is_some() {
        eprintln!("SKIPPED {test} on TimescaleDB: PSG_SKIP_TIMESCALE_TESTS is set");
        return None;
    }
    panic!(
        "{test}: TEST_TIMESCALE_ADMIN_URL is not set: run scripts/test.sh (it builds TimescaleDB and starts a server that preloads it), or set PSG_SKIP_TIMESCALE_TESTS=1 to skip this part"
    )
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin: String,
}

impl TestDb {
    /// Creates `psg_test_<random>` on the test server.
    pub async fn create() -> Self {
        Self::create_on(&admin_url()).await
    }

    /// Creates `psg_test_<random>` on the server of `admin` (an admin URL).
    pub async fn create_on(admin: &str) -> Self {
        let admin = admin.to_owned();
        let name = format!("psg_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e} (run scripts/test.sh)"));
        let task = tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        drop(client);
        let _ = task.await;
        let url = with_database(&admin, &name);
        Self { url, name, admin }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DATABASES").is_some() {
            eprintln!("keeping test database {}", self.url);
            return;
        }
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: use a thread of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// What a partial index holds: `columns` (a select list) of the rows of
/// `table` that its predicate, read back from the catalog, admits.
/// Panics when `index` is not a partial index.
pub async fn partial_index_rows(
    client: &tokio_postgres::Client,
    index: &str,
    table: &str,
    columns: &str,
) -> Vec<tokio_postgres::Row> {
    let predicate: Option<String> = client
        .query_one(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = $1::text::regclass",
            &[&index],
        )
        .await
        .unwrap_or_else(|e| panic!("reading {index}'s predicate: {e}"))
        .get(0);
    let predicate = predicate.unwrap_or_else(|| panic!("{index} is not a partial index"));
    client
        .query(&format!("SELECT {columns} FROM {table} WHERE {predicate} ORDER BY {columns}"), &[])
        .await
        .unwrap_or_else(|e| panic!("reading the rows {index} holds: {e}"))
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && !url[..i].ends_with('/') => {
            let (base, rest) = url.split_at(i);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{db}{query}")
        }
        _ => format!("{}/{db}", url.trim_end_matches('/')),
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Where the tansu binary is.
pub fn tansu_binary() -> Option<PathBuf> {
    tool_binary("TANSU_BIN", "bin/tansu")
}

/// Where a test tool is: the file `env` names, else `cached` under the
/// tool cache `scripts/test.sh` installs into, else its file name on `PATH`.
pub(crate) fn tool_binary(env: &str, cached: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(cached) = home.map(|h| h.join(".cache/pci-scope-guard/tools").join(cached))
        && cached.is_file()
    {
        return Some(cached);
    }
    let name = std::path::Path::new(cached).file_name()?;
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// A tansu broker process: memory storage ([`Tansu::start`]) or SQLite in a
/// directory ([`Tansu::start_durable`]: topics, records and committed
/// offsets survive [`Tansu::stop`] / [`Tansu::restart`]).
#[derive(Debug)]
pub struct Tansu {
    pub bootstrap: String,
    port: u16,
    /// SQLite storage directory; `None`: memory.
    dir: Option<PathBuf>,
    child: Option<Child>,
    log: PathBuf,
}

impl Tansu {
    /// Starts tansu with memory storage on a free port and waits until it
    /// accepts connections.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts tansu with SQLite storage in `dir` (`sqlite://tansu.db`).
    pub fn start_durable(dir: &std::path::Path) -> Self {
        Self::launch(Some(dir.to_owned()))
    }

    fn launch(dir: Option<PathBuf>) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let mut tansu = Self { bootstrap: format!("127.0.0.1:{port}"), port, dir, child: None, log };
        tansu.run();
        tansu
    }

    fn run(&mut self) {
        let bin =
            tansu_binary().expect("tansu is not installed: run scripts/test.sh (it installs tansu), or set TANSU_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("tansu log file");
        let mut cmd = Command::new(&bin);
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url]);
        match &self.dir {
            None => {
                cmd.args(["--storage-engine", "memory://tansu/"]);
            }
            Some(dir) => {
                cmd.args(["--storage-engine", "sqlite://tansu.db"]).current_dir(dir);
            }
        }
        // SCOPE_GUARD_TANSU_LOG: tansu's log filter (default warn).
        let filter = std::env::var("SCOPE_GUARD_TANSU_LOG").unwrap_or_else(|_| "warn".to_owned());
        let child = cmd
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("tansu exited with {status}; log: {}", self.log.display());
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 30 s; log: {}",
                self.port,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("tansu {} listening on {} (log {})", bin.display(), self.bootstrap, self.log.display());
    }

    /// Stops the broker (SIGTERM, SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An error with the end of its log when the broker has exited.
    pub fn check(&mut self) -> Result<(), procs::Exited> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Err(procs::Exited(format!(
                "the tansu broker exited ({status}); last lines of {}:\n{}",
                self.log.display(),
                procs::tail(&self.log, 40)
            ))),
            _ => Ok(()),
        }
    }

    /// Starts the stopped broker again on the same port and storage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "tansu is still running");
        self.run();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `probe` every 200 ms until it yields a value; panics naming `what`
/// after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on `addr` (HTTP/1.1, connection close): (status, body).
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// The value of an unlabelled metric in a Prometheus text exposition.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The sum of the series of metric `name` whose labels contain `label`
/// (`key="value"`; `None`: every series) in a Prometheus text exposition;
/// 0 when there is none.
pub fn metric_sum(exposition: &str, name: &str, label: Option<&str>) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && label.is_none_or(|want| labels.contains(want))).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_from_an_exposition() {
        let text = "# TYPE psg_x counter\npsg_x{service=\"ingest\",kind=\"flow\"} 3\npsg_x{service=\"correlate\"} 4\npsg_y 7\n";
        assert_eq!(metric_sum(text, "psg_x", None), 7.0);
        assert_eq!(metric_sum(text, "psg_x", Some("service=\"ingest\"")), 3.0);
        assert_eq!(metric_sum(text, "psg_z", None), 0.0);
        assert_eq!(metric_value(text, "psg_y"), Some(7.0));
        assert_eq!(metric_value(text, "psg_x"), None);
    }

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
