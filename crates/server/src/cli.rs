//! The command line, as clap definitions. Global options come from flags or `SIP_SETTINGS_*`
//! variables (flags win); the configuration file and defaults sit underneath (see `config`).
//!
//! The doc comments here are also the `--help` text, where `<data-dir>` names a value as
//! command lines do; rustdoc would read it as an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sip-settings: the subscriber-settings service of a SIP provider.
#[derive(Debug, Parser)]
#[command(name = "sip-settings", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory: CA, server certificate, SQLite database.
    #[arg(long, global = true, env = "SIP_SETTINGS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default sqlite://<data-dir>/sip-settings.db).
    // The value may hold a password: the help names the variable, never its value.
    #[arg(
        long,
        global = true,
        env = "SIP_SETTINGS_DATABASE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "SIP_SETTINGS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as text (default) or as one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "SIP_SETTINGS_LOG_FORMAT",
        value_name = "text|json",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for journald, Loki, Elasticsearch and the like).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, the CA, the server certificate and the database.
    Init {
        /// Extra host name or IP address for the server certificate (repeatable).
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
    },
    /// One command to a working demo: init, example.com, alice, her certificates, the server.
    Quickstart {
        /// Address to listen on.
        #[arg(long, env = "SIP_SETTINGS_LISTEN", value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// The SIP door (default here: udp and tcp on 127.0.0.1:5070).
        #[command(flatten)]
        sip: SipFlags,
    },
    /// Serve the HTTPS API (and, with --sip-listen, the SIP redirect server).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SIP_SETTINGS_LISTEN", value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Do not run the database migrations on start.
        #[arg(long)]
        no_migrate: bool,
        /// Connection limits.
        #[command(flatten)]
        connections: ConnectionFlags,
        /// The SIP door.
        #[command(flatten)]
        sip: SipFlags,
    },
    /// Copy a whole installation from one database to another, empty one.
    Copy {
        /// Source database URL (sqlite://… or postgres://…).
        #[arg(long, value_name = "URL")]
        from: String,
        /// Target database URL; it must be empty.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Show the change journal of an account, newest first.
    Journal {
        /// user@domain
        account: String,
        /// Most entries to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write a consistent copy of the embedded SQLite database (VACUUM INTO).
    Backup {
        /// The file to write (must not exist).
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Run the database migrations.
    Migrate,
    /// Domains served here.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// SIP accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Client certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// The SIP redirect server, asked as a proxy would.
    #[command(subcommand)]
    Sip(SipCommand),
    /// Aliases: other addresses of an account in its domain.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// ENUM (E.164) numbers mapped to accounts.
    #[command(subcommand)]
    Enum(EnumCommand),
    /// Voice mailboxes.
    #[command(subcommand)]
    Voicemail(VoicemailCommand),
    /// Reject rules.
    #[command(subcommand)]
    Reject(RejectCommand),
    /// Persistent accept rules.
    #[command(subcommand)]
    Accept(AcceptCommand),
    /// Phonebook entries and their groups.
    #[command(subcommand)]
    Phonebook(PhonebookCommand),
    /// Forwarding rules with conditions, and the sets they name, as one JSON document.
    #[command(subcommand)]
    Forwarding(ForwardingCommand),
    /// Prepaid balances.
    #[command(subcommand)]
    Balance(BalanceCommand),
    /// Prepaid cards (vouchers) that subscribers redeem with `add_balance`.
    #[command(subcommand)]
    Voucher(VoucherCommand),
    /// The rate table for prepaid calls.
    #[command(subcommand)]
    Rates(RatesCommand),
    /// Call records.
    #[command(subcommand)]
    Calls(CallsCommand),
}

/// `serve`'s connection limits (each also a configuration-file key of the same name).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionFlags {
    /// Seconds from the TLS handshake to a complete first request (default 10).
    #[arg(
        long,
        env = "SIP_SETTINGS_FIRST_REQUEST_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub first_request_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in flight (default 60).
    #[arg(long, env = "SIP_SETTINGS_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Most open connections from one source address, an IPv6 /64 counting as one address
    /// (default a tenth of max_connections).
    #[arg(
        long,
        env = "SIP_SETTINGS_MAX_CONNECTIONS_PER_ADDRESS",
        value_name = "N"
    )]
    pub max_connections_per_address: Option<usize>,
    /// On SIGTERM or SIGINT, seconds the requests in flight may take to finish before their
    /// connections are cut (default 20).
    #[arg(long, env = "SIP_SETTINGS_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` over plain HTTP on ADDR:PORT,
    /// without client certificates; keep it off the public network (off by default).
    #[arg(long, env = "SIP_SETTINGS_OPS_LISTEN", value_name = "ADDR:PORT")]
    pub ops_listen: Option<std::net::SocketAddr>,
}

/// `serve`'s SIP door (each also a configuration-file key: `sip_listen`, `sip_trusted`,
/// `voicemail_uri`, `sip_max_diversions`). See docs/sip.md.
#[derive(Debug, Clone, Default, Args)]
pub struct SipFlags {
    /// Run the SIP redirect server on TRANSPORT:ADDR:PORT (udp, tcp or tls); repeat for more,
    /// e.g. --sip-listen udp:127.0.0.1:5070 --sip-listen tcp:127.0.0.1:5070 (off by default).
    #[arg(
        long = "sip-listen",
        env = "SIP_SETTINGS_SIP_LISTEN",
        value_delimiter = ',',
        value_name = "TRANSPORT:ADDR:PORT"
    )]
    pub sip_listen: Vec<sip_settings_sip::Listen>,
    /// Address blocks whose UDP/TCP requests are answered (default 127.0.0.0/8,::1); TLS peers
    /// need a service certificate instead. Repeat or separate with commas.
    #[arg(
        long = "sip-trusted",
        env = "SIP_SETTINGS_SIP_TRUSTED",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub sip_trusted: Vec<sip_settings_sip::Cidr>,
    /// Where a forward to <voice-mailbox> goes, e.g. 'sip:vm-{user}@vm.example.net'
    /// ({user} and {domain} of the account).
    #[arg(long, env = "SIP_SETTINGS_VOICEMAIL_URI", value_name = "TEMPLATE")]
    pub voicemail_uri: Option<sip_settings_sip::VoicemailTemplate>,
    /// A request already diverted more than N times is refused with 482 (default 5).
    #[arg(long, env = "SIP_SETTINGS_SIP_MAX_DIVERSIONS", value_name = "N")]
    pub sip_max_diversions: Option<u32>,
    /// Where the SIP door learns that a callee is registered: feed (the devices the proxy
    /// feeds to POST /v1/service/registrations; default) or hint (registered unless the
    /// proxy says X-Registered: no).
    #[arg(long, env = "SIP_SETTINGS_SIP_REGISTRATIONS", value_name = "feed|hint")]
    pub sip_registrations: Option<sip_settings_sip::Registrations>,
}

/// `sip …`
#[derive(Debug, Subcommand)]
pub enum SipCommand {
    /// Send one INVITE to the SIP redirect server and print its answer.
    Ask {
        /// The Request-URI, e.g. sip:alice@example.com, sip:alice@example.com;cause=486 or
        /// tel:+31201234567.
        uri: String,
        /// Where the redirect server listens: udp:, tcp: or tls:ADDR:PORT.
        #[arg(
            long,
            default_value = "udp:127.0.0.1:5070",
            value_name = "TRANSPORT:ADDR:PORT"
        )]
        server: sip_settings_sip::Listen,
        /// The caller (From header), e.g. sip:bob@example.org or anonymous.
        #[arg(long, default_value = "sip:caller@example.org")]
        from: String,
        /// An extra header line, e.g. 'X-Registered: no' or 'Privacy: id' (repeatable).
        #[arg(long = "header", value_name = "LINE")]
        headers: Vec<String>,
        /// For a tls: server, the service certificate bundle (certificate and key, as
        /// `cert issue --service NAME --out DIR` writes it).
        #[arg(long, value_name = "FILE")]
        cert: Option<std::path::PathBuf>,
        /// For a tls: server, the name its certificate is checked against.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
}

/// `balance …`
#[derive(Debug, Subcommand)]
pub enum BalanceCommand {
    /// Add AMOUNT to the balance.
    Topup {
        /// user@domain
        account: String,
        /// A positive decimal amount (at most 4 decimals).
        amount: String,
        /// History description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Set the balance to AMOUNT.
    Set {
        /// user@domain
        account: String,
        /// A decimal amount (at most 4 decimals).
        amount: String,
        /// History description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show the balance, open prepaid calls and recent history.
    Show {
        /// user@domain
        account: String,
    },
}

/// `voucher …`
#[derive(Debug, Subcommand)]
pub enum VoucherCommand {
    /// Make a batch of prepaid cards for a domain and print them once as CSV
    /// (id,number,domain,value,expires): the numbers are not stored and cannot be shown again.
    Create {
        /// The domain whose prepaid accounts may redeem the cards.
        #[arg(long)]
        domain: String,
        /// What each card adds to a balance: a positive decimal (at most 4 decimals).
        #[arg(long)]
        value: String,
        /// How many cards (1 to 10000).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// When the cards stop being accepted: RFC 3339 or YYYY-MM-DD (00:00 UTC).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List a domain's cards, newest first (without their numbers).
    List {
        /// The domain.
        #[arg(long)]
        domain: String,
        /// Most cards to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Disable an unused card: it can no longer be redeemed.
    Disable {
        /// The card's id.
        id: String,
    },
}

/// `rates …`
#[derive(Debug, Subcommand)]
pub enum RatesCommand {
    /// Import a CSV: prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds
    /// with a header line. All lines are checked first; a malformed one imports nothing.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
        /// Replace the whole table instead of adding/updating by prefix.
        #[arg(long)]
        replace: bool,
    },
    /// List the rates.
    List,
    /// The rate a number is charged at (longest prefix).
    Lookup {
        /// +E164
        number: String,
    },
}

/// `calls …`
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// Import a CSV of finished calls with a header line:
    /// call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price
    /// (media separated by spaces). A malformed line imports nothing.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
}

/// `alias …`
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Add ALIAS@DOMAIN to USER@DOMAIN (same domain).
    Add {
        /// The alias address.
        alias: String,
        /// The account it reaches.
        account: String,
    },
    /// Remove an alias.
    Remove {
        /// The alias address.
        alias: String,
    },
    /// List aliases (of one account).
    List {
        /// Only this account's.
        account: Option<String>,
    },
}

/// `enum …`
#[derive(Debug, Subcommand)]
pub enum EnumCommand {
    /// Map +E164 to USER@DOMAIN.
    Add {
        /// The number, +E164.
        number: String,
        /// The account.
        account: String,
    },
    /// Remove a number's mapping.
    Remove {
        /// The number, +E164.
        number: String,
    },
    /// List numbers (of one account).
    List {
        /// Only this account's.
        account: Option<String>,
    },
}

/// `voicemail …`
#[derive(Debug, Subcommand)]
pub enum VoicemailCommand {
    /// Enable (create) the voice mailbox.
    Enable {
        /// user@domain
        account: String,
        /// email or email_and_store.
        #[arg(long)]
        delivery: Option<String>,
        /// PIN, 4–10 digits (stored hashed, never shown).
        #[arg(long)]
        pin: Option<String>,
        /// Notification e-mail address (default: the account's).
        #[arg(long)]
        email: Option<String>,
    },
    /// Disable the voice mailbox (settings are kept).
    Disable {
        /// user@domain
        account: String,
    },
}

/// `reject …`
#[derive(Debug, Subcommand)]
pub enum RejectCommand {
    /// Add a pattern such as sip:%0900@% or sip:spam@example.net.
    Add {
        /// user@domain
        account: String,
        /// The pattern (`%` matches anything).
        pattern: String,
    },
    /// Remove a pattern.
    Remove {
        /// user@domain
        account: String,
        /// The pattern.
        pattern: String,
    },
    /// List an account's patterns.
    List {
        /// user@domain
        account: String,
    },
}

/// `accept …`
#[derive(Debug, Subcommand)]
pub enum AcceptCommand {
    /// Add or replace the rule for a days mask.
    Add {
        /// user@domain
        account: String,
        /// Days mask: Mon=1 … Sun=64; 127 every day, 31 weekdays, 96 weekend.
        #[arg(long)]
        days: String,
        /// Window start, HH:MM (account time zone).
        #[arg(long)]
        start: String,
        /// Window end, HH:MM (before start: crosses midnight).
        #[arg(long)]
        stop: String,
        /// Groups accepted in the window: everybody, nobody, or phonebook groups (comma-separated).
        #[arg(long)]
        groups: String,
    },
    /// Remove the rule for a days mask.
    Remove {
        /// user@domain
        account: String,
        /// Days mask.
        #[arg(long)]
        days: String,
    },
    /// List an account's accept rules.
    List {
        /// user@domain
        account: String,
    },
}

/// `phonebook …`
#[derive(Debug, Subcommand)]
pub enum PhonebookCommand {
    /// Add or replace an entry.
    Add {
        /// user@domain
        account: String,
        /// The contact's SIP address.
        uri: String,
        /// Group(s) of the contact (repeatable or comma-separated).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Remove an entry.
    Remove {
        /// user@domain
        account: String,
        /// The contact's SIP address.
        uri: String,
    },
    /// List an account's phonebook.
    List {
        /// user@domain
        account: String,
    },
}

/// `forwarding …`
#[derive(Debug, Subcommand)]
pub enum ForwardingCommand {
    /// Print an account's forwarding rules and sets as a JSON document (what `set` reads).
    Show {
        /// user@domain
        account: String,
    },
    /// Replace an account's forwarding rules and sets with a JSON document ({"rules": [...],
    /// "time_sets": {...}, "caller_sets": {...}, "called_sets": {...}}), checked whole as the
    /// API checks it; prints the warnings of rules that can never apply.
    Set {
        /// user@domain
        account: String,
        /// The document's file, or - for standard input.
        file: PathBuf,
    },
}

/// `domain …`
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a domain.
    Add {
        /// The domain, e.g. example.com.
        domain: String,
    },
    /// List the domains.
    List,
    /// Turn HTTP Digest on settings.phtml on or off for a domain's accounts (on by default).
    Digest {
        /// The domain, e.g. example.com.
        domain: String,
        /// `on` or `off`.
        state: OnOff,
    },
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// A password from the command line or a file (`-` for standard input).
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The SIP password.
    #[arg(long)]
    pub password: Option<String>,
    /// Read the SIP password from the first line of FILE (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Profile fields of an account.
#[derive(Debug, Args, Clone, Default)]
pub struct ProfileArgs {
    /// Given name.
    #[arg(long)]
    pub first_name: Option<String>,
    /// Family name.
    #[arg(long)]
    pub last_name: Option<String>,
    /// Notification e-mail address.
    #[arg(long)]
    pub email: Option<String>,
    /// IANA time zone, e.g. Europe/Amsterdam.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Mobile number, +E164.
    #[arg(long)]
    pub mobile: Option<String>,
    /// Caller id for PSTN calls, +E164.
    #[arg(long)]
    pub pstn_caller_id: Option<String>,
    /// Language tag, e.g. en.
    #[arg(long)]
    pub language: Option<String>,
    /// Seconds before forwarding on no answer (5–900).
    #[arg(long, value_name = "SECS")]
    pub no_answer_timeout: Option<String>,
}

/// `account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Add {
        /// user@domain
        account: String,
        /// The new account's SIP password.
        #[command(flatten)]
        password: PasswordArgs,
        /// The new account's profile fields.
        #[command(flatten)]
        profile: ProfileArgs,
        /// Calls are paid from a prepaid balance.
        #[arg(long)]
        prepaid: bool,
    },
    /// Change profile fields or the prepaid flag (an empty value clears an optional field).
    Set {
        /// user@domain
        account: String,
        /// The profile fields to change (only those given).
        #[command(flatten)]
        profile: ProfileArgs,
        /// true or false.
        #[arg(long, value_name = "BOOL")]
        prepaid: Option<String>,
    },
    /// List accounts.
    List {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        /// user@domain
        account: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set a new SIP password.
    Passwd {
        /// user@domain
        account: String,
        /// The new SIP password.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete an account and revoke its certificates.
    Delete {
        /// user@domain
        account: String,
    },
}

/// `cert …`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate: for an account, or with --admin / --service.
    Issue {
        /// user@domain (omit with --admin or --service).
        #[arg(required_unless_present_any = ["admin", "service"], conflicts_with_all = ["admin", "service"])]
        account: Option<String>,
        /// Issue an operator certificate named NAME.
        #[arg(long, value_name = "NAME", conflicts_with = "service")]
        admin: Option<String>,
        /// Issue a service certificate named NAME.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Directory to write the files to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also write USER@DOMAIN.p12, protected by this password (the account's SIP password).
        #[arg(long, value_name = "PW", conflicts_with = "p12_password_file")]
        p12_password: Option<String>,
        /// Read the .p12 password from FILE (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// Use the legacy PKCS#12 encryption (PBE-SHA1-3DES, SHA-1 MAC).
        #[arg(long)]
        legacy_p12: bool,
        /// Lifetime in days (default from the configuration, 365).
        #[arg(long, value_name = "N")]
        days: Option<u32>,
        /// A name that tells the account's certificate apart (default: `.crt from the command
        /// line` or `.p12 …`).
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
    },
    /// List issued certificates.
    List {
        /// Only this account's.
        account: Option<String>,
    },
    /// Revoke a certificate by serial, or all of an account's.
    Revoke {
        /// Serial in hex (any case, colons optional).
        #[arg(required_unless_present = "account", conflicts_with = "account")]
        serial: Option<String>,
        /// Revoke every certificate of this account.
        #[arg(long, value_name = "USER@DOMAIN")]
        account: Option<String>,
    },
}
