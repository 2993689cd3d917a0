//! What the SIP door is told: where it listens ([`Listen`]), whom it answers ([`Cidr`]
//! allow-list; TLS peers need a service certificate instead), the voice-mailbox URI template and
//! the diversion limit. Parsed from the strings of flags, the TOML file and the environment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams (RFC 3261 §18).
    Udp,
    /// A byte stream, messages framed by `Content-Length`.
    Tcp,
    /// TCP inside TLS; the peer presents a service certificate of this service's CA.
    Tls,
}

impl Transport {
    /// `udp`, `tcp` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// The `Via` transport token (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener: `udp:127.0.0.1:5070`, `tcp:[::1]:5070`, `tls:0.0.0.0:5071`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// The transport.
    pub transport: Transport,
    /// The address to bind (port 0 picks a free one).
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (scheme, addr) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not TRANSPORT:ADDR:PORT (e.g. udp:127.0.0.1:5070)"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            other => {
                return Err(format!(
                    "'{other}' is not a SIP transport (udp, tcp or tls)"
                ));
            }
        };
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| format!("'{addr}' is not ADDR:PORT (IPv6 as [::1]:5070)"))?;
        Ok(Self { transport, addr })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// An address block of trusted proxies: `127.0.0.0/8`, `::1/128`, or a bare address (a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The loopback blocks, trusted by default: `127.0.0.0/8` and `::1/128`.
    pub fn loopback() -> Vec<Self> {
        vec![
            Self {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Self {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    /// Whether `ip` lies in this block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an address block such as 10.0.0.0/24"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("'{s}': the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The voice-mailbox URI template: `sip:vm-{user}@vm.example.net`; `{user}` and `{domain}` are
/// the account's user part and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailTemplate(String);

impl VoicemailTemplate {
    /// The template for an account.
    pub fn expand(&self, user: &str, domain: &str) -> String {
        self.0.replace("{user}", user).replace("{domain}", domain)
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VoicemailTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let example = s
            .replace("{user}", "alice")
            .replace("{domain}", "example.com");
        let lower = example.to_ascii_lowercase();
        if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
            return Err(format!(
                "voicemail URI template '{s}' must be a sip: or sips: URI such as sip:vm-{{user}}@vm.example.net"
            ));
        }
        if example.contains('{')
            || example.contains('}')
            || example
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
        {
            return Err(format!(
                "voicemail URI template '{s}' may use only {{user}} and {{domain}} and no spaces or <>"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Default number of diversions a request may already carry before it is refused with 482.
pub const DEFAULT_MAX_DIVERSIONS: u32 = 5;

/// Where the door learns whether a callee has a registered device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registrations {
    /// From the devices the proxy's registrar feeds (`POST /v1/service/registrations`, as the
    /// shipped Kamailio configuration does); an `X-Registered` header still overrides.
    #[default]
    Feed,
    /// From the proxy's `X-Registered: no` only; without it the callee is taken to be
    /// registered (a proxy that does not feed registrations rings, then asks again with
    /// `cause=480` when nobody could be reached).
    Hint,
}

impl std::str::FromStr for Registrations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "feed" => Ok(Self::Feed),
            "hint" => Ok(Self::Hint),
            other => Err(format!("'{other}' is not feed or hint")),
        }
    }
}

/// The SIP door's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// Listeners; empty = the SIP door is off.
    pub listen: Vec<Listen>,
    /// Source blocks answered on UDP and TCP (TLS peers need a service certificate instead).
    pub trusted: Vec<Cidr>,
    /// Where `<voice-mailbox>` goes; `None` = a voicemail forward is answered 480.
    pub voicemail_uri: Option<VoicemailTemplate>,
    /// A request that arrives already diverted more than this many times gets 482.
    pub max_diversions: u32,
    /// Where registration state comes from.
    pub registrations: Registrations,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            trusted: Cidr::loopback(),
            voicemail_uri: None,
            max_diversions: DEFAULT_MAX_DIVERSIONS,
            registrations: Registrations::Feed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn listeners_parse_and_name_what_is_wrong() {
        let l: Listen = "udp:127.0.0.1:5070".parse().unwrap();
        assert_eq!(l.transport, Transport::Udp);
        assert_eq!(l.addr.port(), 5070);
        let l: Listen = "TLS:[::1]:5071".parse().unwrap();
        assert_eq!(l.transport, Transport::Tls);
        assert_eq!(l.to_string(), "tls:[::1]:5071");
        assert!(
            "sctp:1.2.3.4:5"
                .parse::<Listen>()
                .unwrap_err()
                .contains("sctp")
        );
        assert!(
            "udp:localhost"
                .parse::<Listen>()
                .unwrap_err()
                .contains("localhost")
        );
    }

    #[test]
    fn address_blocks() {
        let lo = Cidr::loopback();
        let trusted = |ip: &str| lo.iter().any(|c| c.contains(ip.parse().unwrap()));
        assert!(trusted("127.0.0.1"));
        assert!(trusted("127.9.9.9"));
        assert!(trusted("::1"));
        assert!(trusted("::ffff:127.0.0.1"));
        assert!(!trusted("10.0.0.1"));
        assert!(!trusted("::2"));
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host: Cidr = "2001:db8::5".parse().unwrap();
        assert!(host.contains("2001:db8::5".parse().unwrap()));
        assert!(!host.contains("2001:db8::6".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn voicemail_templates() {
        let t: VoicemailTemplate = "sip:vm-{user}@vm.{domain}".parse().unwrap();
        assert_eq!(
            t.expand("alice", "example.com"),
            "sip:vm-alice@vm.example.com"
        );
        assert!("http://x/{user}".parse::<VoicemailTemplate>().is_err());
        assert!("sip:{who}@x".parse::<VoicemailTemplate>().is_err());
    }
}
