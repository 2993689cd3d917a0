//! Whole calls through a proxy with SIPp at both ends: the caller's scenario (INVITE, 100/180,
//! 200, ACK, a short pause, BYE, 200) run by [`crate::sipp::Sipp`] steps, the callee's phone (a
//! SIPp UAS answering every INVITE with 180 and 200 and the BYE with 200, one process for a whole
//! variant) and its REGISTER through the proxy (a one-call SIPp UAC on the phone's port, before
//! the phone starts there).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{Proc, tail};
use crate::sipp::BUFFER_BYTES;

/// The SDP offer and answer: one PCMU stream (nobody sends media).
fn sdp() -> &'static str {
    "v=0\n\
     o=- 1 1 IN IP4 [local_ip]\n\
     s=-\n\
     c=IN IP4 [local_ip]\n\
     t=0 0\n\
     m=audio [media_port] RTP/AVP 0\n\
     a=rtpmap:0 PCMU/8000\n"
}

/// The caller's scenario: `sip:[field0]@DOMAIN` calls `sip:[field1]@DOMAIN` (the injection
/// file), expects an optional 100 and 180 then the 200 (the set-up time SIPp records, `rtd`),
/// ACKs along the recorded route, holds the call `pause_ms`, hangs up and expects the BYE's
/// 200. Anything else fails the call. The hold is a wait for a 180 that times out after
/// `pause_ms`: a proxy with several workers may relay the callee's 180 and 200 in parallel, so
/// that the 180 comes after the 200 (a phone ignores it; SIPp would fail the call on it during
/// a pause, and a globally optional 180 sends SIPp back to waiting for the 200). A late 180 is
/// taken there, followed by the whole pause.
pub(crate) fn call_scenario(domain: &str, pause_ms: u64) -> String {
    let from = format!("From: <sip:[field0]@{domain}>;tag=[pid]-[call_number]");
    let sdp = sdp();
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by sip-settings-bench: a whole call through the proxy. -->
<scenario name="sip-settings-bench call">
  <send>
    <![CDATA[
INVITE sip:[field1]@{domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{from}
To: <sip:[field1]@{domain}>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: sip-settings-bench caller
Content-Type: application/sdp
Content-Length: [len]

{sdp}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
{from}
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="180" timeout="{pause_ms}" ontimeout="1"/>
  <pause milliseconds="{pause_ms}"/>
  <label id="1"/>
  <send>
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
{from}
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

/// The callee's phone: every INVITE answered 180 then 200 (with SDP and the Record-Route),
/// then the ACK and the BYE, answered 200.
pub(crate) fn phone_scenario(user: &str) -> String {
    let reply = |status: &str, body: bool| {
        let (content, sdp) = if body {
            (
                "Content-Type: application/sdp\nContent-Length: [len]\n",
                sdp(),
            )
        } else {
            ("Content-Length: 0\n", "")
        };
        format!(
            "  <send>\n    <![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n\
             [last_To:];tag=[pid]-[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n\
             [last_Record-Route:]\nContact: <sip:{user}@[local_ip]:[local_port]>\n{content}\n\
             {sdp}\n    ]]>\n  </send>\n"
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by sip-settings-bench: the callee's phone. -->
<scenario name="sip-settings-bench callee">
  <recv request="INVITE"/>
{}{}  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#,
        reply("180 Ringing", false),
        reply("200 OK", true)
    )
}

/// A REGISTER of `user`@`domain` whose Contact is 127.0.0.1:`port` (the phone's port, from
/// which it is sent), for `expires` seconds; a 200 is expected.
pub(crate) fn register_scenario(domain: &str, user: &str, port: u16, expires: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by sip-settings-bench: the callee's phone registers. -->
<scenario name="sip-settings-bench register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:{domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@{domain}>;tag=[pid]-reg
To: <sip:{user}@{domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: {expires}
Max-Forwards: 70
User-Agent: sip-settings-bench callee
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

/// Starts `cmd` (SIPp) in `dir`, its screen to `log`, as a child stopped when dropped.
fn spawn(
    mut cmd: Command,
    sipp: &Path,
    dir: &Path,
    log: &Path,
    name: &str,
) -> anyhow::Result<Proc> {
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", sipp.display()))?;
    Ok(Proc::new(name, child))
}

/// Registers `user`@`domain` at the proxy `proxy` from 127.0.0.1:`port`: one SIPp call of
/// [`register_scenario`], at most 15 s; fails unless it got its 200.
pub(crate) fn register(
    sipp: &Path,
    dir: &Path,
    proxy: SocketAddr,
    domain: &str,
    user: &str,
    port: u16,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let scenario = dir.join("register.xml");
    fs::write(&scenario, register_scenario(domain, user, port, 3600))?;
    let log = dir.join("register.log");
    let errors = dir.join("register-errors.log");
    let mut cmd = Command::new(sipp);
    cmd.arg(proxy.to_string())
        .arg("-sf")
        .arg(&scenario)
        .args(["-m", "1", "-t", "u1", "-i", "127.0.0.1", "-nostdin"])
        .args(["-p", &port.to_string()])
        .args([
            "-timeout",
            "10s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
        ])
        .arg(&errors);
    let mut proc = spawn(cmd, sipp, dir, &log, "sipp (REGISTER)")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = proc.exited()? {
            if !status.success() {
                bail!(
                    "the REGISTER of {user}@{domain} through {proxy} failed ({status}): {}; {}",
                    tail(&errors),
                    tail(&log)
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the REGISTER of {user}@{domain} through {proxy} took over 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The callee's phone: a SIPp UAS on 127.0.0.1:`port` answering every call, for at most
/// `limit` (SIPp's `-timeout`); stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub(crate) struct Phone {
    proc: Proc,
    log: PathBuf,
}

impl Phone {
    /// Starts the phone of `user` in `dir`; returns once its port is bound.
    pub(crate) fn start(
        sipp: &Path,
        dir: &Path,
        user: &str,
        port: u16,
        limit: Duration,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let scenario = dir.join("phone.xml");
        fs::write(&scenario, phone_scenario(user))?;
        let log = dir.join("phone.log");
        let mut cmd = Command::new(sipp);
        cmd.arg("-sf")
            .arg(&scenario)
            .args(["-t", "u1", "-i", "127.0.0.1", "-nostdin"])
            .args(["-p", &port.to_string()])
            .args(["-buff_size", &BUFFER_BYTES.to_string()])
            .args(["-timeout", &format!("{}s", limit.as_secs().max(1))])
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("phone-errors.log"))
            .args(["-max_log_size", "1000000"]);
        let mut proc = spawn(cmd, sipp, dir, &log, "sipp (callee)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::sipp::udp_drops(port).is_none() {
            if let Some(status) = proc.exited()? {
                bail!("the callee's SIPp exited ({status}): {}", tail(&log));
            }
            if Instant::now() > deadline {
                bail!("the callee's SIPp did not bind port {port}: {}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { proc, log })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Fails when it has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.proc.exited()? {
            bail!("the callee's SIPp exited ({status}): {}", tail(&self.log));
        }
        Ok(())
    }

    /// Stops it.
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        self.proc.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenarios_name_the_parties_and_follow_the_route() {
        let call = call_scenario("bench.example", 100);
        assert!(call.contains("INVITE sip:[field1]@bench.example SIP/2.0"));
        assert!(call.contains("From: <sip:[field0]@bench.example>;tag="));
        assert!(call.contains(r#"<recv response="200" rtd="true" rrs="true"/>"#));
        assert!(call.contains("ACK [next_url] SIP/2.0\nVia:"));
        assert!(call.contains("[routes]"));
        assert!(call.contains(
            "<recv response=\"180\" timeout=\"100\" ontimeout=\"1\"/>\n  \
             <pause milliseconds=\"100\"/>\n  <label id=\"1\"/>"
        ));
        let phone = phone_scenario("user1");
        assert!(phone.contains("SIP/2.0 180 Ringing\n[last_Via:]"));
        assert!(phone.contains("[last_Record-Route:]\nContact: <sip:user1@[local_ip]"));
        assert!(phone.contains("Content-Type: application/sdp"));
        let reg = register_scenario("bench.example", "user1", 5080, 3600);
        assert!(reg.contains("Contact: <sip:user1@127.0.0.1:5080>\nExpires: 3600"));
    }
}
