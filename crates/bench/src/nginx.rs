//! The physical-limit baseline: nginx (the Debian package) with the same CA, the same server
//! certificate and key, `ssl_verify_client on`, serving a static file whose bytes are the
//! `account` reply of one account.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{Proc, free_port, rss_tree_kib, tail};

/// Where Debian installs nginx.
const NGINX: &str = "/usr/sbin/nginx";

/// The nginx binary, installed with `apt-get install -y nginx` when missing; `Err` says why
/// there is none.
pub(crate) fn find_or_install() -> Result<PathBuf, String> {
    crate::process::find_or_install(NGINX, "nginx")
}

/// `nginx -v`, e.g. `nginx/1.22.1`.
pub(crate) fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version:")
                .trim()
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "nginx (version unknown)".to_owned())
}

/// A running nginx.
#[derive(Debug)]
pub(crate) struct Nginx {
    proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in the foreground with a configuration of its own in a temporary prefix.
    pub(crate) fn start(
        bin: &Path,
        data_dir: &Path,
        body: &[u8],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sip-settings-bench-nginx")
            .tempdir()?;
        let prefix = dir.path();
        // The workers run as an unprivileged user when nginx starts as root: they must reach
        // the static file.
        fs::set_permissions(prefix, fs::Permissions::from_mode(0o755))?;
        let www = prefix.join("www");
        fs::create_dir_all(&www)?;
        fs::set_permissions(&www, fs::Permissions::from_mode(0o755))?;
        fs::write(www.join("account.json"), body)?;
        fs::set_permissions(www.join("account.json"), fs::Permissions::from_mode(0o644))?;
        fs::create_dir_all(prefix.join("temp"))?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let error_log = logs.join("nginx-error.log");
        let data = data_dir
            .canonicalize()
            .with_context(|| format!("{}", data_dir.display()))?;
        let p = |path: &Path| path.display().to_string();
        let conf = format!(
            r#"worker_processes auto;
daemon off;
master_process on;
pid {pid};
error_log {error_log} warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{
        application/json json;
    }}
    default_type application/json;
    server {{
        listen {addr} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {server_crt};
        ssl_certificate_key {server_key};
        ssl_client_certificate {ca_crt};
        ssl_verify_client on;
        root {www};
        location / {{
            try_files /account.json =404;
        }}
    }}
}}
"#,
            pid = p(&prefix.join("nginx.pid")),
            error_log = p(&error_log),
            temp = p(&prefix.join("temp")),
            server_crt = p(&data.join("server.crt")),
            server_key = p(&data.join("server.key")),
            ca_crt = p(&data.join("ca.crt")),
            www = p(&www),
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let stderr = fs::File::create(logs.join("nginx-stderr.log"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut proc = Proc::new("nginx", child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = proc.exited()? {
                bail!(
                    "nginx exited ({status}): {} {}",
                    tail(&logs.join("nginx-stderr.log")),
                    tail(&error_log)
                );
            }
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("nginx does not listen on {addr}: {}", tail(&error_log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            proc,
            addr,
            _dir: dir,
        })
    }

    /// The master's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Resident memory of the master and its workers, KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_tree_kib(self.proc.pid())
    }

    /// Stops nginx (SIGTERM: fast shutdown of the master and its workers).
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}
