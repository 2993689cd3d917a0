//! For tests of this store and of what runs on it: the PostgreSQL server named by
//! `SIP_SETTINGS_TEST_PG_URL`. Without the variable the PostgreSQL tests skip, saying so, except
//! in CI (`CI=true`): there a run without the server fails instead of passing untested.
//!
//! [`OwnServer`]: a PostgreSQL instance of a test's own (TLS tests), for what the shared server
//! must not be reconfigured for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_URL_VAR: &str = "SIP_SETTINGS_TEST_PG_URL";

/// The URL of the PostgreSQL server for tests, or `None` after saying that `what` skips.
///
/// # Panics
///
/// When the variable is unset (or empty) and `CI` is `true`.
pub fn test_server_url(what: &str) -> Option<String> {
    let ci = std::env::var("CI").ok();
    match server_url(std::env::var(PG_URL_VAR).ok(), ci.as_deref()) {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            eprintln!("{PG_URL_VAR} not set: skipping {what}");
            None
        }
        Err(message) => panic!("{message}"),
    }
}

/// The server's URL from the variable's value `url` and `CI`'s value `ci`: `None` to skip, an
/// error when skipping is not allowed.
fn server_url(url: Option<String>, ci: Option<&str>) -> Result<Option<String>, String> {
    match url.filter(|u| !u.is_empty()) {
        Some(url) => Ok(Some(url)),
        None if ci.is_some_and(|ci| ci.eq_ignore_ascii_case("true")) => Err(format!(
            "CI=true but {PG_URL_VAR} is not set: in CI the PostgreSQL tests must run, not skip \
             (set {PG_URL_VAR} to a server where the tests may create databases, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres)"
        )),
        None => Ok(None),
    }
}

/// Whether `CI` is `true` (then a test may not skip for want of a tool).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true"))
}

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`): Debian's
/// `/usr/lib/postgresql/<newest version>/bin`, else the one of `initdb` on the `PATH`.
fn server_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    debian.or_else(|| {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|dir| has_tools(dir))
    })
}

/// The output of `command`, or a panic naming it and what it said.
fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The trimmed standard output of `program args`.
fn output_of(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(Command::new(program).args(args)).stdout)
        .trim()
        .to_owned()
}

/// A PostgreSQL instance of its own on a free loopback port (`127.0.0.1`), in a temporary
/// directory, with TLS on (`ssl = on`) and the `pg_hba.conf` a test gives: for what the shared
/// server must not be reconfigured for. Run as the `postgres` user when the test runs as root
/// (PostgreSQL refuses root). Dropping it stops the instance (`pg_ctl stop -m immediate`, else a
/// kill of the postmaster) and removes the directory, on a panic too.
#[derive(Debug)]
pub struct OwnServer {
    dir: PathBuf,
    bin: PathBuf,
    /// `Some((uid, gid))` of the `postgres` user when the programs run as it.
    owner: Option<(u32, u32)>,
    port: u16,
}

impl OwnServer {
    /// Starts an instance serving TLS with `server_cert_pem` and `server_key_pem`, trusting
    /// client certificates of `client_ca_pem`, authenticating by `hba` (the whole of
    /// `pg_hba.conf`; a `local all all trust` line is put first for `pg_ctl`). `None`, after
    /// saying that `what` skips, when PostgreSQL's server programs are not installed, except
    /// in CI (`CI=true`), where that panics.
    ///
    /// # Panics
    ///
    /// When a step fails (with the step and its output), or without the programs in CI.
    pub fn start(
        what: &str,
        server_cert_pem: &str,
        server_key_pem: &str,
        client_ca_pem: &str,
        hba: &str,
    ) -> Option<Self> {
        let Some(bin) = server_bin_dir() else {
            let message = "PostgreSQL's server programs (initdb, pg_ctl) not found in \
                           /usr/lib/postgresql/*/bin nor on the PATH (Debian: apt-get install \
                           postgresql)";
            assert!(!in_ci(), "CI=true but {message}: {what} must run, not skip");
            eprintln!("{message}: skipping {what}");
            return None;
        };
        let owner = (output_of("id", &["-u"]) == "0").then(|| {
            let id = |flag| {
                output_of("id", &[flag, "postgres"])
                    .parse::<u32>()
                    .unwrap_or_else(|e| panic!("the postgres user's id: {e}"))
            };
            (id("-u"), id("-g"))
        });
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sip-settings-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("a free port: {e}"))
            .port();
        // From here on, dropping `server` cleans up whatever was made.
        let server = Self {
            dir,
            bin,
            owner,
            port,
        };
        server.make_dir(server_cert_pem, server_key_pem, client_ca_pem);
        server.init(hba);
        let data = server.data();
        let log = server.dir.join("log");
        let started = server
            .command("pg_ctl")
            .args(["start", "-w", "-t", "30", "-s", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .output();
        if !started.as_ref().is_ok_and(|o| o.status.success()) {
            panic!(
                "pg_ctl start failed ({started:?}); the server's log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Some(server)
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temporary directory (the test may put files there; removed with it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` of the server's programs, run as the `postgres` user if needs be.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            let mut c = Command::new(path);
            c.env_remove("PGDATA");
            c
        }
    }

    /// Writes `name` in the directory with `mode`, owned by the server's user.
    fn write(&self, name: &str, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    /// The directory (mode 0700, the server's user's) and the TLS files in it (the key 0600).
    fn make_dir(&self, cert: &str, key: &str, client_ca: &str) {
        use std::os::unix::fs::PermissionsExt;
        let dir = &self.dir;
        std::fs::create_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        self.write("server.crt", cert, 0o644);
        self.write("server.key", key, 0o600);
        self.write("client-ca.crt", client_ca, 0o644);
    }

    /// `initdb`, then the configuration: this port, TLS on, no durability (a test's data).
    fn init(&self, hba: &str) {
        let data = self.data();
        run(self
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        let dir = self.dir.display();
        let conf = format!(
            "\n# sip-settings test instance\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{dir}'\n\
             ssl = on\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             ssl_ca_file = '{dir}/client-ca.crt'\n\
             max_connections = 100\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n",
            port = self.port
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path)
            .unwrap_or_else(|e| panic!("{}: {e}", conf_path.display()));
        text.push_str(&conf);
        self.write("data/postgresql.conf", &text, 0o600);
        self.write(
            "data/pg_hba.conf",
            &format!("local all all trust\n{hba}\n"),
            0o600,
        );
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let data = self.data();
        let pid_file = data.join("postmaster.pid");
        if pid_file.exists() {
            let stopped = self
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-w", "-t", "10", "-s", "-D"])
                .arg(&data)
                .output()
                .is_ok_and(|o| o.status.success());
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned));
            if let (false, Some(pid)) = (stopped, pid) {
                let _ = Command::new("kill").args(["-KILL", &pid]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn without_a_server_the_tests_skip_except_in_ci() {
        let url = || Some("postgres://postgres@127.0.0.1/postgres".to_owned());
        for ci in [None, Some("true"), Some("false"), Some("")] {
            assert_eq!(server_url(url(), ci), Ok(url()), "{ci:?}");
        }
        for ci in [None, Some("false"), Some("0"), Some("")] {
            assert_eq!(server_url(None, ci), Ok(None), "{ci:?}");
            assert_eq!(server_url(Some(String::new()), ci), Ok(None), "{ci:?}");
        }
        for ci in ["true", "TRUE", "True"] {
            let message = server_url(None, Some(ci)).unwrap_err();
            assert!(message.contains("SIP_SETTINGS_TEST_PG_URL"), "{message}");
            assert!(server_url(Some(String::new()), Some(ci)).is_err());
        }
    }
}
