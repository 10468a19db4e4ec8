//! A local S3-compatible server: moto's server mode (`moto_server`, from
//! PyPI), which implements S3 Object Lock. `scripts/test.sh` installs it
//! into the tool cache; `MOTO_SERVER_BIN` names another.
//!
//! The server checks every request's SigV4 signature: it starts with
//! authentication on (`INITIAL_NO_AUTH_ACTION_COUNT`: the first three
//! requests pass unchecked), and those three, made with boto3 from moto's
//! own environment, create an IAM user allowed everything and its access
//! key, which the tests then sign with. A wrong signature is refused
//! (`SignatureDoesNotMatch`), as S3 refuses it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Where `moto_server` is: `MOTO_SERVER_BIN`, the tool cache, or `PATH`.
pub fn moto_binary() -> Option<PathBuf> {
    crate::tool_binary("MOTO_SERVER_BIN", "moto/bin/moto_server")
}

/// A `moto_server` process on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key the server knows (id, secret).
    pub access_key: (String, String),
    child: Child,
    log: PathBuf,
}

/// Creates the IAM user and access key (three requests, before the server
/// checks signatures) and prints the key.
const BOOTSTRAP: &str = r#"
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], aws_access_key_id="bootstrap",
                   aws_secret_access_key="bootstrap", region_name="us-east-1")
iam.create_user(UserName="psg-test")
iam.put_user_policy(UserName="psg-test", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="psg-test")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

impl S3Server {
    /// Starts the server and waits until it answers.
    pub fn start() -> Self {
        let bin = moto_binary().expect(
            "moto_server is not installed: run scripts/test.sh (it installs moto into the tool cache), or set MOTO_SERVER_BIN",
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("moto log file");
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited with {status}; log: {}", log.display());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 60 s; log: {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        // moto's virtualenv has boto3 beside moto_server.
        let python = bin.with_file_name("python");
        let made = Command::new(&python)
            .args(["-c", BOOTSTRAP, &endpoint])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let out = String::from_utf8_lossy(&made.stdout);
        let mut words = out.split_whitespace();
        let (Some(id), Some(secret), true) = (words.next(), words.next(), made.status.success()) else {
            panic!(
                "creating moto's access key failed ({}): {}{}",
                made.status,
                out,
                String::from_utf8_lossy(&made.stderr)
            );
        };
        Self { endpoint, access_key: (id.to_owned(), secret.to_owned()), child, log }
    }

    /// `object_store` S3 settings that reach this server.
    pub fn options(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", self.access_key.0.as_str()),
            ("aws_secret_access_key", self.access_key.1.as_str()),
        ]
    }

    /// The server's log file.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
