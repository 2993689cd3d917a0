//! Real `sip-settings` processes: `serve` children ([`Server`]), the CLI against a given
//! database ([`cli`]), and an installation provisioned through the CLI ([`provision`]).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, client_with};

/// A `sip-settings serve` child process; killed (SIGKILL) when dropped.
pub(crate) struct Server {
    child: KillOnDrop,
    pub(crate) base: String,
    /// The SIP door's listeners, `tcp:127.0.0.1:PORT`, as `serve` printed them.
    pub(crate) sip: Vec<String>,
    /// What `serve` prints on stdout after its listeners.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, database: &str) -> Self {
        Self::start_with(data_dir, database, "")
    }

    /// A server whose configuration file also has `extra` (TOML).
    pub(crate) fn start_with(data_dir: &Path, database: &str, extra: &str) -> Self {
        Self::start_with_sip(data_dir, database, extra, 0)
    }

    /// A server with `extra` configuration that prints `sip_listeners` SIP listeners.
    pub(crate) fn start_with_sip(
        data_dir: &Path,
        database: &str,
        extra: &str,
        sip_listeners: usize,
    ) -> Self {
        // Sessions of at most 600 s and up to 100 at once, so that a balance is shared by many.
        let config = data_dir.join("serve.toml");
        std::fs::write(
            &config,
            format!("prepaid_max_session_seconds = 600\nprepaid_max_sessions = 100\n{extra}"),
        )
        .unwrap();
        Self::spawn(data_dir, &config, database, sip_listeners)
    }

    /// `sip-settings serve` with this data directory, configuration file and database, on a
    /// free port; waits (at most 60 s) until it says where it listens, HTTPS and then
    /// `sip_listeners` SIP listeners.
    pub(crate) fn spawn(
        data_dir: &Path,
        config: &Path,
        database: &str,
        sip_listeners: usize,
    ) -> Self {
        Self::spawn_logged(data_dir, config, database, sip_listeners, &[], None)
    }

    /// [`Server::spawn`] with global options `global` before `serve` (`--log-format json`) and
    /// stderr (the log) written to `log` when given.
    pub(crate) fn spawn_logged(
        data_dir: &Path,
        config: &Path,
        database: &str,
        sip_listeners: usize,
        global: &[&str],
        log: Option<&Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create the log file")),
            None => Stdio::null(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .args(["--database", database])
            .args(global)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("SIP_SETTINGS_DATABASE")
            .env_remove("SIP_SETTINGS_CONFIG")
            .env_remove("SIP_SETTINGS_LISTEN")
            .env_remove("SIP_SETTINGS_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Hand over every line, and keep draining so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let next = || {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left)
                .expect("serve exited or did not say where it listens within 60 s")
        };
        let base = loop {
            if let Some(addr) = next().strip_prefix("listening on https://") {
                let port = addr.rsplit(':').next().unwrap();
                break format!("https://localhost:{port}");
            }
        };
        let sip = (0..sip_listeners)
            .map(|_| {
                let line = next();
                line.strip_prefix("SIP redirect server on ")
                    .unwrap_or_else(|| panic!("not a SIP listener line: {line}"))
                    .to_owned()
            })
            .collect();
        Self {
            child: KillOnDrop(child),
            base,
            sip,
            lines: rx,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, `INT`) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The next line `serve` prints on stdout that starts with `prefix`, within `wait`.
    pub(crate) fn line_starting(&self, prefix: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The exit status, once the process has ended within `wait`; `None` if it still runs.
    pub(crate) fn exit_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) fn kill(mut self) {
        self.child.0.kill().expect("SIGKILL");
        self.child.0.wait().expect("wait");
    }
}

/// A child process killed (SIGKILL) and reaped when the test ends, also when an assertion fails
/// first.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the real binary with `--data-dir` and `--database`, asserting success; returns stdout.
pub(crate) fn cli(data_dir: &Path, database: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sip-settings"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database", database])
        .args(args)
        .output()
        .expect("run sip-settings");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An installation: CA, domain, alice and bob (bob prepaid with 10.00), their certificates, a
/// service certificate, rates.
pub(crate) struct Install {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ca: String,
    pub(crate) alice: (String, String),
    pub(crate) bob: (String, String),
    pub(crate) service: (String, String),
}

fn read_pair(path: &Path) -> (String, String) {
    let pem = std::fs::read_to_string(path).unwrap();
    (pem.clone(), pem)
}

pub(crate) fn provision(database: &str) -> Install {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.to_str().unwrap();
    cli(d, database, &["init"]);
    cli(d, database, &["domain", "add", "example.com"]);
    cli(
        d,
        database,
        &[
            "account",
            "add",
            ALICE,
            "--password",
            ALICE_PASSWORD,
            "--timezone",
            "Europe/Amsterdam",
        ],
    );
    cli(
        d,
        database,
        &[
            "account",
            "add",
            BOB,
            "--password",
            BOB_PASSWORD,
            "--prepaid",
        ],
    );
    cli(d, database, &["cert", "issue", ALICE, "--out", out]);
    cli(d, database, &["cert", "issue", BOB, "--out", out]);
    cli(
        d,
        database,
        &["cert", "issue", "--service", "proxy", "--out", out],
    );
    let rates = d.join("rates.csv");
    std::fs::write(&rates, "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n31,NL,0,0.10,60,60\n").unwrap();
    cli(d, database, &["rates", "import", rates.to_str().unwrap()]);
    cli(d, database, &["balance", "topup", BOB, "10"]);
    Install {
        ca: std::fs::read_to_string(d.join("ca.crt")).unwrap(),
        alice: read_pair(&d.join(format!("{ALICE}.crt"))),
        bob: read_pair(&d.join(format!("{BOB}.crt"))),
        service: read_pair(&d.join("proxy.crt")),
        dir,
    }
}

impl Install {
    pub(crate) fn client(&self, who: &(String, String)) -> reqwest::Client {
        client_with(&self.ca, Some((&who.0, &who.1)))
    }
}

pub(crate) async fn get(client: &reqwest::Client, base: &str, query: &str) -> (u16, Value) {
    let r = client
        .get(format!("{base}/settings.phtml?{query}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A SQLite database file in a directory of its own, removed with it.
pub(crate) struct TempSqlite {
    _dir: tempfile::TempDir,
    /// `sqlite://` and the file's path.
    pub(crate) url: String,
}

impl TempSqlite {
    /// A fresh directory and the URL of `file_name` in it (the file is made by whoever opens it).
    pub(crate) fn new(file_name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join(file_name).display());
        Self { _dir: dir, url }
    }
}
