//! Child processes: building and locating the `sip-settings` binary, installing a Debian
//! package that provides a tool (nginx, Kamailio, SIPp), starting `sip-settings serve` and
//! learning its address, stopping a child (SIGTERM, then SIGKILL), and reading the CPU time and
//! the resident memory of a process tree from `/proc`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// Longest time a server may take from spawn to "listening on".
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest time a child may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The workspace root (the bench lives in `crates/bench`).
pub(crate) fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// Builds the server (`cargo build --release -p sip-settings`, a no-op when it is up to date)
/// and returns the binary next to this benchmark's own executable.
pub(crate) fn server_binary(root: &Path, build: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    let bin = dir.join("sip-settings");
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building the server: cargo build --release -p sip-settings");
        let status = Command::new(&cargo)
            .args(["build", "--release", "-p", "sip-settings"])
            .current_dir(root)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => bail!("cargo build --release -p sip-settings failed ({s})"),
            Err(e) if bin.exists() => {
                eprintln!(
                    "cannot run cargo ({e}); using the existing {}",
                    bin.display()
                );
            }
            Err(e) => return Err(e).context("cannot run cargo to build the server"),
        }
    }
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release -p sip-settings`",
            bin.display()
        );
    }
    Ok(bin)
}

/// The program at `path`, installed with `apt-get install -y PACKAGE` when missing (after an
/// `apt-get update` when the first attempt fails: a fresh machine has no package lists); `Err`
/// says why there is none.
pub(crate) fn find_or_install(path: &str, package: &str) -> Result<PathBuf, String> {
    let bin = PathBuf::from(path);
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("{path} is missing: apt-get install -y {package}");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let updated = Command::new("apt-get")
            .args(["update", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !updated || !install() {
            return Err(format!(
                "{path} is missing and `apt-get install -y {package}` failed"
            ));
        }
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{path} is missing after `apt-get install -y {package}`"
        ))
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
    pid: u32,
    /// The child leads its own process group (spawned with `process_group(0)`): signals go
    /// to the group, so that forked workers (Kamailio's) never outlive it.
    group: bool,
}

impl Proc {
    /// Wraps a spawned child.
    pub(crate) fn new(name: &str, child: Child) -> Self {
        let pid = child.id();
        Self {
            name: name.to_owned(),
            child: Some(child),
            pid,
            group: false,
        }
    }

    /// Wraps a child spawned as the leader of its own process group (`process_group(0)`):
    /// it is stopped as a group.
    pub(crate) fn new_group(name: &str, child: Child) -> Self {
        let mut proc = Self::new(name, child);
        proc.group = true;
        proc
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child has exited, and how.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match &mut self.child {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("{} was stopped", self.name),
        }
    }

    /// Stops the child: SIGTERM, up to 10 s to exit, then SIGKILL.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // A group's leader may have exited with members left: they are signalled all the same.
        if child.try_wait()?.is_some() && !self.group {
            return Ok(());
        }
        let target = if self.group {
            format!("-{}", self.pid)
        } else {
            self.pid.to_string()
        };
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, "--", &target])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let termed = signal("-TERM");
        if termed {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    if self.group {
                        // Whatever of the group is left (nothing, normally).
                        signal("-KILL");
                    }
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "{} (pid {}) did not stop within {} s of SIGTERM; killing it",
                self.name,
                self.pid,
                STOP_TIMEOUT.as_secs()
            );
        }
        if self.group {
            signal("-KILL");
        }
        child.kill().ok();
        child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!("stopping {}: {e:#}", self.name);
        }
    }
}

/// A running `sip-settings serve`.
#[derive(Debug)]
pub(crate) struct Server {
    proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

/// How to start the server.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    /// The `sip-settings` binary.
    pub bin: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--database`, when given.
    pub database: Option<String>,
    /// `--config`, when given.
    pub config: Option<PathBuf>,
}

impl ServerSpec {
    /// The command with the global options, ready for a subcommand.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for var in [
            "RUST_LOG",
            "SIP_SETTINGS_DATA_DIR",
            "SIP_SETTINGS_DATABASE",
            "SIP_SETTINGS_CONFIG",
            "SIP_SETTINGS_LISTEN",
            "SIP_SETTINGS_SIP_LISTEN",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database {
            cmd.arg("--database").arg(url);
        }
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd
    }

    /// Runs `migrate`; a server that refuses the configuration's `[rate_limits]` (one without
    /// rate limits) is migrated without the configuration, and runs without it from then on.
    /// Returns whether the configuration was kept.
    pub(crate) fn migrate(&mut self, log: &Path) -> anyhow::Result<bool> {
        match self.run(&["migrate"], log) {
            Ok(()) => Ok(true),
            Err(e) if format!("{e:#}").contains("rate_limits") => {
                self.config = None;
                self.run(&["migrate"], log)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a one-shot subcommand; its output goes to `log`. Errors carry the output's tail.
    pub(crate) fn run(&self, args: &[&str], log: &Path) -> anyhow::Result<()> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let status = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !status.success() {
            bail!(
                "sip-settings {} failed ({status}): {}",
                args.join(" "),
                tail(log)
            );
        }
        Ok(())
    }
}

impl Server {
    /// Spawns `sip-settings … serve --listen 127.0.0.1:0` and waits for its "listening on"
    /// line, which names the port it bound. stderr (the logs) goes to `log`.
    pub(crate) fn start(spec: &ServerSpec, log: &Path) -> anyhow::Result<Self> {
        Self::start_with(spec, log, &[])
    }

    /// [`Server::start`] with more `serve` options (`--sip-listen …`).
    pub(crate) fn start_with(
        spec: &ServerSpec,
        log: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let err = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = spec
            .command()
            // No access lines, as nginx runs with `access_log off`: both sides measured
            // without per-request logging.
            .env("RUST_LOG", "info,access=off")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.bin.display()))?;
        let mut proc = Proc::new("sip-settings serve", child);
        let stdout = proc
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .ok_or_else(|| anyhow!("no stdout of the server"))?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Hand over the first "listening on" line, then keep draining so the pipe never
            // fills; the thread ends when the server closes its stdout.
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.starts_with("listening on ") {
                    sent = tx.send(line).is_ok();
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let status = proc.exited()?;
                bail!(
                    "the server did not report its address ({}): {}",
                    status.map_or_else(|| "still running".to_owned(), |s| s.to_string()),
                    tail(log)
                );
            }
        };
        let addr = line
            .trim_start_matches("listening on ")
            .trim_start_matches("https://")
            .trim()
            .parse::<SocketAddr>()
            .with_context(|| format!("cannot read the server address from {line:?}"))?;
        Ok(Self {
            proc,
            addr,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Resident memory of the server, KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.proc.pid())
    }

    /// Peak resident memory of the server (`VmHWM`), KiB.
    pub(crate) fn hwm_kib(&self) -> anyhow::Result<u64> {
        hwm_kib(self.proc.pid())
    }

    /// The log file (the server's stderr).
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Fails when the server has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.proc.exited()? {
            bail!("the server exited ({status}): {}", tail(&self.log));
        }
        Ok(())
    }

    /// Stops the server.
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}

/// The last 2 000 bytes of a log file.
pub(crate) fn tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(2000)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(s) if s.trim().is_empty() => format!("(log {} is empty)", path.display()),
        Ok(s) => format!("log {}:\n{}", path.display(), s.trim_end()),
        Err(e) => format!("(cannot read log {}: {e})", path.display()),
    }
}

/// `VmRSS` of one process, KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// `VmHWM` (the peak of `VmRSS`) of one process, KiB.
pub(crate) fn hwm_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `kB` field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow!("no {field} in {path}"))
}

/// `VmHWM` of a process and its direct children (Kamailio: the main process and its workers),
/// added up, KiB. Pages shared between them are counted once per process.
pub(crate) fn hwm_tree_kib(pid: u32) -> anyhow::Result<u64> {
    let mut total = hwm_kib(pid)?;
    for child in children(pid)? {
        total += hwm_kib(child).unwrap_or(0);
    }
    Ok(total)
}

/// How many processes: `pid` and its direct children.
pub(crate) fn tree_size(pid: u32) -> usize {
    1 + children(pid).map_or(0, |c| c.len())
}

/// `VmRSS` of a process and its direct children (nginx: the master and its workers), KiB.
/// Pages shared between them are counted once per process.
pub(crate) fn rss_tree_kib(pid: u32) -> anyhow::Result<u64> {
    let mut total = rss_kib(pid)?;
    for child in children(pid)? {
        total += rss_kib(child).unwrap_or(0);
    }
    Ok(total)
}

/// Fields of `/proc/PID/stat` after the command name (the first is the state, field 3).
fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // `pid (comm) state ppid …`; comm may contain spaces, so read after the last ')'.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("unexpected {path}"))?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system CPU time of a process (all its threads), in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let f = stat_fields(pid)?;
    // utime and stime are fields 14 and 15.
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no CPU times in /proc/{pid}/stat"))
    };
    Ok(field(11)? + field(12)?)
}

/// User + system CPU time of the children this process has waited for (`cutime` + `cstime`
/// of `/proc/self/stat`), in clock ticks: the difference around one child's run and reaping is
/// that child's CPU time.
pub(crate) fn reaped_children_ticks() -> anyhow::Result<u64> {
    let pid = std::process::id();
    let f = stat_fields(pid)?;
    // cutime and cstime are fields 16 and 17.
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no children's CPU times in /proc/{pid}/stat"))
    };
    Ok(field(13)? + field(14)?)
}

/// The direct children of a process.
fn children(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let ppid = stat_fields(child)
            .ok()
            .and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    Ok(out)
}

/// CPU ticks of a process and its direct children (nginx: the master and its workers).
pub(crate) fn cpu_tree_ticks(pid: u32) -> anyhow::Result<u64> {
    let mut total = cpu_ticks(pid)?;
    for child in children(pid)? {
        total += cpu_ticks(child).unwrap_or(0);
    }
    Ok(total)
}

/// Microseconds per clock tick (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn tick_us() -> f64 {
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0);
    1e6 / hz
}

/// A free TCP port on 127.0.0.1 (bound and released; for nginx, which cannot report one).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound and released; for the SIP listeners).
pub(crate) fn free_udp_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = socket.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port on 127.0.0.1 is free for both UDP and TCP")
}

/// The command name (`comm`) and the fields after it of `/proc/PID/stat`.
fn comm_and_fields(pid: u32) -> Option<(String, Vec<String>)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, comm) = head.split_once('(')?;
    Some((
        comm.to_owned(),
        rest.split_whitespace().map(str::to_owned).collect(),
    ))
}

/// CPU ticks of every PostgreSQL process on this machine: user + system time of each process
/// named `postgres` (the postmaster, its backends, WAL writer, checkpointer …), and for a
/// postmaster also the times of the children it has reaped, so that a backend which exits
/// between two readings still counts. Other clients' work on the same server counts too.
pub(crate) fn postgres_ticks() -> u64 {
    let mut procs = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((comm, f)) = comm_and_fields(pid)
                && comm == "postgres"
            {
                procs.push((pid, f));
            }
        }
    }
    let field = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let pids: Vec<u32> = procs.iter().map(|(pid, _)| *pid).collect();
    procs
        .iter()
        .map(|(_, f)| {
            let own = field(f, 11).unwrap_or(0) + field(f, 12).unwrap_or(0);
            let parent = field(f, 1).and_then(|p| u32::try_from(p).ok());
            let postmaster = parent.is_none_or(|p| !pids.contains(&p));
            let reaped = if postmaster {
                field(f, 13).unwrap_or(0) + field(f, 14).unwrap_or(0)
            } else {
                0
            };
            own + reaped
        })
        .sum()
}
