//! The SIP baseline: Kamailio (the Debian package) as the smallest stateless redirect server
//! it can be: `sl` and `textops` only, every INVITE answered `302 Moved Temporarily` with one
//! fixed `Contact` and `Diversion`, ACK absorbed, OPTIONS answered 200. No database, no
//! lookups: it sets the ceiling of a C SIP stack on this machine, as nginx's static file does
//! for HTTPS.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{Proc, free_udp_port, hwm_tree_kib, tail, tree_size};
use crate::sip_probe;

/// Where Debian installs Kamailio.
const KAMAILIO: &str = "/usr/sbin/kamailio";
/// Where its modules may be (Debian's multiarch directory first).
const MODULE_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
];
/// Worker processes for the UDP listener: one per core. On this 2-core machine, shared with
/// SIPp, one worker failed calls from 8 000 calls/s on (12 % there, 60 % at 10 000) where two
/// ran clean at 6 000 and 10 000; four did no better than two.
pub(crate) const CHILDREN: usize = 2;
/// The fixed target of every answer.
pub(crate) const CONTACT: &str = "sip:+31201234567@example.com";

/// The Kamailio binary, installed with `apt-get install -y kamailio` when missing; `Err` says
/// why there is none.
pub(crate) fn find_or_install() -> Result<PathBuf, String> {
    crate::process::find_or_install(KAMAILIO, "kamailio")
}

/// `kamailio -v`, e.g. `kamailio 5.6.3`.
pub(crate) fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.lines()
                .find_map(|l| l.strip_prefix("version:"))
                .map(|v| v.split(" (").next().unwrap_or(v).trim().to_owned())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "kamailio (version unknown)".to_owned())
}

/// The module directory that holds `sl.so`.
fn module_dir() -> anyhow::Result<&'static str> {
    MODULE_DIRS
        .into_iter()
        .find(|d| Path::new(d).join("sl.so").exists())
        .with_context(|| format!("no Kamailio module directory with sl.so in {MODULE_DIRS:?}"))
}

/// The configuration: listen on `addr` (UDP only), answer every INVITE with the fixed 302.
pub(crate) fn config(addr: SocketAddr, modules: &str) -> String {
    format!(
        r#"#!KAMAILIO
# Written by sip-settings-bench: a minimal stateless redirect server, the SIP baseline.
debug=1
log_stderror=yes
fork=yes
children={CHILDREN}
listen=udp:{addr}
disable_tcp=yes
auto_aliases=no
mpath="{modules}/"
loadmodule "sl.so"
loadmodule "textops.so"

request_route {{
    if (is_method("ACK")) {{
        exit;
    }}
    if (is_method("INVITE")) {{
        append_to_reply("Contact: <{CONTACT}>\r\nDiversion: <sip:alice@example.com>;reason=unconditional;counter=1\r\n");
        sl_send_reply("302", "Moved Temporarily");
        exit;
    }}
    if (is_method("OPTIONS")) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
    exit;
}}
"#
    )
}

/// Checks `cfg` with `args` (`kamailio -c`), then starts Kamailio in the foreground (`-DD -E`)
/// as the leader of its own process group (stopped as a group: no worker outlives it), pid
/// file and runtime directory in `dir`, stderr to `log`; returns once `ready` (at most 20 s).
fn spawn(
    bin: &Path,
    cfg: &Path,
    args: &[String],
    dir: &Path,
    log: &Path,
    ready: impl Fn() -> bool,
) -> anyhow::Result<Proc> {
    let runtime = dir.join("run");
    fs::create_dir_all(&runtime)?;
    let check = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !check.status.success() {
        bail!(
            "kamailio -c refuses {} {}: {}",
            cfg.display(),
            args.join(" "),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    let stderr = fs::File::create(log)?;
    let child = Command::new(bin)
        .arg("-f")
        .arg(cfg)
        .args(args)
        .args(["-DD", "-E"])
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(&runtime)
        .arg("-w")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut proc = Proc::new_group("kamailio", child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = proc.exited()? {
            bail!("kamailio exited ({status}): {}", tail(log));
        }
        if ready() {
            return Ok(proc);
        }
        if Instant::now() > deadline {
            bail!("kamailio is not ready after 20 s: {}", tail(log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running Kamailio.
#[derive(Debug)]
pub(crate) struct Kamailio {
    proc: Proc,
    /// Where it listens (UDP).
    pub addr: SocketAddr,
}

impl Kamailio {
    /// Writes the configuration into `dir` and starts Kamailio in the foreground (`-DD -E`,
    /// pid file and runtime directory in `dir`); returns once it answers OPTIONS.
    pub(crate) fn start(bin: &Path, dir: &Path, logs: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("{}", dir.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_udp_port()?).into();
        let cfg = dir.join("kamailio.cfg");
        fs::write(&cfg, config(addr, module_dir()?))?;
        let log = logs.join("kamailio.log");
        let proc = spawn(bin, &cfg, &[], &dir, &log, || {
            sip_probe::options(addr, Duration::from_millis(200)).is_ok()
        })?;
        Ok(Self { proc, addr })
    }

    /// Starts Kamailio with a configuration file as it is (the shipped
    /// `contrib/kamailio/kamailio.cfg`), its `-A` defines and more options (`-n`, `-m`), the
    /// pid file and runtime directory in `dir`; returns once its UDP port `addr` (on 127.0.0.1) is
    /// bound (the configuration relays an OPTIONS rather than answering it).
    pub(crate) fn start_file(
        bin: &Path,
        cfg: &Path,
        args: &[String],
        addr: SocketAddr,
        dir: &Path,
        log: &Path,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("{}", dir.display()))?;
        // Bound: the port is in /proc/net/udp (read, not probed by binding it).
        let proc = spawn(bin, cfg, args, &dir, log, || {
            crate::sipp::udp_drops(addr.port()).is_some()
        })?;
        Ok(Self { proc, addr })
    }

    /// The main process's id (the workers are its children).
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Processes: the main one and its children.
    pub(crate) fn processes(&self) -> usize {
        tree_size(self.proc.pid())
    }

    /// Peak resident memory of the main process and its children, added up, KiB.
    pub(crate) fn hwm_kib(&self) -> anyhow::Result<u64> {
        hwm_tree_kib(self.proc.pid())
    }

    /// Fails when Kamailio has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.proc.exited()? {
            bail!("kamailio exited ({status})");
        }
        Ok(())
    }

    /// Stops Kamailio (SIGTERM: the main process stops its children).
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_listens_where_asked_and_answers_302() {
        let c = config(([127, 0, 0, 1], 5099).into(), "/m");
        assert!(c.contains("listen=udp:127.0.0.1:5099\n"), "{c}");
        assert!(c.contains("mpath=\"/m/\""), "{c}");
        assert!(
            c.contains(r#"sl_send_reply("302", "Moved Temporarily")"#),
            "{c}"
        );
        assert!(c.contains(&format!("children={CHILDREN}\n")), "{c}");
    }
}
