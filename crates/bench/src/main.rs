//! `sip-settings-bench`: the performance benchmark of sip-settings. It runs the real
//! `sip-settings serve` binary as a child process on loopback and drives it over real mutual
//! TLS from this process, with nginx serving a static file as the physical-limit baseline.
//!
//! * `calls`: call records through the service API (records/s), then the `calls` action of an
//!   account among 1 000 000 stored call records (p50, p99).
//! * `http`: keep-alive throughput and latency of `account`, `diversions` and `set_diversions`
//!   at 1, 16 and 64 connections; full TLS handshakes per second; resident memory at idle,
//!   after the load and with 1 000 000 call records; each beside nginx with the ratio.
//! * `sip`: the SIP redirect door (`serve --sip-listen udp:…`) under SIPp load beside
//!   Kamailio: the highest rate with no failed call of each, and the door's own decision latency
//!   and memory at half Kamailio's rate.
//! * `proxy`: whole calls (INVITE … BYE, SIPp caller and callee) through Kamailio with the
//!   shipped `contrib/kamailio/kamailio.cfg`, deciding with sip-settings and, in the same run,
//!   alone (`-A ALONE`): the highest call rate of each, the ratio and the call set-up time.
//! * `all`: all four.
//!
//! The report is printed as Markdown and, except with `--smoke`, written to
//! `docs/benchmarks.md` (`sip` and `proxy` alone replace only their own sections there). `--smoke` runs
//! everything with tiny sizes in well under a minute.

mod calls;
mod kamailio;
mod load;
mod nginx;
mod process;
mod provision;
mod proxy;
mod proxy_report;
mod report;
mod search;
mod sip;
mod sip_probe;
mod sip_report;
mod sipp;
mod sipp_calls;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use hyper::StatusCode;
use hyper::body::Bytes;

use crate::load::{CheckFirst, Client, MakeReq, Measured, Plan, Req, Target};
use crate::process::{Server, ServerSpec};
use crate::provision::Db;
use crate::report::{Figures, Machine, MemoryRow, Report, Row};

/// sip-settings-bench: the real server over real mutual TLS, with nginx as the baseline.
#[derive(Debug, Parser)]
#[command(name = "sip-settings-bench")]
struct Cli {
    /// What to measure.
    #[command(subcommand)]
    what: What,
    /// Tiny sizes (20 accounts, 1 s per scenario, 10 000 call records; SIP: 200 and 500
    /// calls/s, no search; proxy: 10 and 40 calls/s per variant, no search, the feeds checked);
    /// prints the report without writing docs/benchmarks.md.
    #[arg(long, global = true)]
    smoke: bool,
    /// Database URL for the server, passed on as `--database URL` (default: the embedded
    /// store in the benchmark's data directory).
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Seconds measured per scenario (default 10, with --smoke 1).
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<f64>,
    /// Accounts to provision (default 10 000, with --smoke 20).
    #[arg(long, global = true, value_name = "N")]
    accounts: Option<usize>,
    /// Call records stored for the `calls` figures (default 1 000 000, with --smoke 10 000).
    #[arg(long, global = true, value_name = "N")]
    call_records: Option<usize>,
    /// Use target/release/sip-settings as it is instead of building it first.
    #[arg(long, global = true)]
    no_build: bool,
    /// `proxy`: Kamailio's worker processes (`kamailio -n N`), in both variants (default: the
    /// configuration's `children=`).
    #[arg(long, global = true, value_name = "N")]
    kamailio_children: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum What {
    /// Call records through the API, and `calls` latency among 1 000 000 records.
    Calls,
    /// Keep-alive and handshake load, memory, and the nginx baseline.
    Http,
    /// The SIP redirect door under SIPp load, beside Kamailio.
    Sip,
    /// Whole calls through Kamailio deciding with sip-settings, beside Kamailio alone.
    Proxy,
    /// All four.
    All,
}

/// The sizes of a run.
#[derive(Debug, Clone)]
struct Sizes {
    accounts: usize,
    call_records: usize,
    focus_calls: usize,
    plan: Plan,
    conns: Vec<usize>,
    handshake_workers: usize,
    api_conns: Vec<usize>,
}

impl Sizes {
    fn new(cli: &Cli) -> anyhow::Result<Self> {
        let (accounts, call_records, warmup, duration) = if cli.smoke {
            (20, 10_000, 0.25, 1.0)
        } else {
            (10_000, 1_000_000, 2.0, 10.0)
        };
        let duration = cli.duration.unwrap_or(duration);
        if !(duration.is_finite() && duration > 0.0 && duration <= 3600.0) {
            bail!("--duration must be between 0 and 3600 seconds");
        }
        let accounts = cli.accounts.unwrap_or(accounts);
        if accounts < 2 {
            bail!("--accounts must be at least 2");
        }
        Ok(Self {
            accounts,
            call_records: cli.call_records.unwrap_or(call_records),
            focus_calls: 1_000,
            plan: Plan {
                warmup: Duration::from_secs_f64(warmup),
                duration: Duration::from_secs_f64(duration),
            },
            conns: vec![1, 16, 64],
            handshake_workers: 16,
            api_conns: vec![1, 16],
        })
    }
}

/// The per-run working directory under target/bench-data, removed at the end.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// The subscriber actions under keep-alive load.
#[derive(Debug, Clone, Copy)]
enum Action {
    Account,
    Diversions,
    SetDiversions,
}

const ACTIONS: [Action; 3] = [Action::Account, Action::Diversions, Action::SetDiversions];
const ACCOUNT_PATH: &str = "/settings.phtml?action=account";

impl Action {
    fn label(self) -> &'static str {
        match self {
            Self::Account => "`account` (read)",
            Self::Diversions => "`diversions` (read)",
            Self::SetDiversions => "`set_diversions` (write)",
        }
    }

    /// Requests; writes alternate between two numbers so that every one changes something.
    fn make(self) -> MakeReq {
        match self {
            Self::Account => Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
            Self::Diversions => Arc::new(|_, _| Req::get("/settings.phtml?action=diversions")),
            Self::SetDiversions => Arc::new(|_, seq| {
                Req::get(format!(
                    "/settings.phtml?action=set_diversions&FUNC=%2B3120123456{}",
                    7 + seq % 2
                ))
            }),
        }
    }

    fn check(self, names: Vec<String>) -> CheckFirst {
        match self {
            Self::Account => Arc::new(move |i, body| {
                check_account(body, names.get(i).map_or("", String::as_str))
            }),
            Self::Diversions => Arc::new(|_, body| {
                let v: serde_json::Value = serde_json::from_slice(body)?;
                if v.get("FUNC").is_none() {
                    bail!("not object D: {}", String::from_utf8_lossy(body));
                }
                Ok(())
            }),
            Self::SetDiversions => Arc::new(|_, body| {
                let v: serde_json::Value = serde_json::from_slice(body)?;
                if v.get("success") != Some(&serde_json::Value::Bool(true)) {
                    bail!("not a success: {}", String::from_utf8_lossy(body));
                }
                Ok(())
            }),
        }
    }
}

fn check_account(body: &[u8], name: &str) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(body)))?;
    let got = v.get("sip_address").and_then(|a| a.as_str()).unwrap_or("");
    if got != name {
        bail!("`account` answered sip_address {got:?}, expected {name:?}");
    }
    Ok(())
}

/// `conns` account indexes spread evenly over `n` accounts, shifted by `offset`.
fn spread(n: usize, conns: usize, offset: usize) -> Vec<usize> {
    let stride = (n / conns.max(1)).max(1);
    (0..conns).map(|i| (offset + i * stride) % n).collect()
}

/// Rate limits far above any load here: the limiter runs on every request but never refuses.
const SERVER_CONFIG: &str = "\
# Written by sip-settings-bench: rate limits far above the load, so that the limiter still
# runs on every request but never answers 429.
[rate_limits]
certificate_reads_per_second = 1000000000.0
certificate_reads_burst = 1000000000.0
certificate_writes_per_second = 1000000000.0
certificate_writes_burst = 1000000000.0
address_reads_per_second = 1000000000.0
address_reads_burst = 1000000000.0
address_writes_per_second = 1000000000.0
address_writes_burst = 1000000000.0
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = format!(
        "cargo run --release -p sip-settings-bench -- {}",
        args.join(" ")
    );
    // On SIGINT or SIGTERM the run is dropped, and with it the server, nginx and the working
    // directory, which stop and remove themselves.
    let outcome = tokio::select! {
        r = run(&cli, command) => r,
        signal = interrupted() => Err(anyhow!("interrupted by {signal}")),
    };
    outcome.map_err(|e| {
        e.context("benchmark failed (server and nginx logs: target/bench-data/last-run/)")
    })
}

/// Waits for SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

async fn run(cli: &Cli, command: String) -> anyhow::Result<()> {
    let sizes = Sizes::new(cli)?;
    let want_http = matches!(cli.what, What::Http | What::All);
    let want_calls = matches!(cli.what, What::Calls | What::All);
    let want_sip = matches!(cli.what, What::Sip | What::All);
    let root = process::workspace_root();
    let bin = process::server_binary(&root, !cli.no_build)?;
    let bench_dir = root.join("target/bench-data");
    let logs = bench_dir.join("last-run");
    if logs.exists() {
        fs::remove_dir_all(&logs)?;
    }
    fs::create_dir_all(&logs)?;
    let work = WorkDir(bench_dir.join(format!("run-{}", std::process::id())));
    if work.0.exists() {
        fs::remove_dir_all(&work.0)?;
    }
    let data = work.0.join("data");
    let database = cli.database.as_deref();
    let n = sizes.accounts;
    let config_path = work.0.join("server.toml");
    let sip_params = |command| sip::Params {
        root: &root,
        bin: &bin,
        bench_dir: &bench_dir,
        work: &work.0,
        logs: &logs,
        database,
        config: Some(config_path.clone()),
        accounts: n,
        smoke: cli.smoke,
        command,
    };
    let docs = root.join("docs/benchmarks.md");
    if matches!(cli.what, What::Sip | What::Proxy) {
        fs::create_dir_all(&work.0)?;
        fs::write(&config_path, SERVER_CONFIG)?;
        return sip_or_proxy_alone(cli, sip_params(&command), &docs).await;
    }

    let prov = provision::prepare(&bench_dir, &data, n, database).await?;
    let mut report = Report {
        command: command.clone(),
        machine: Some(Machine::read()),
        ..Report::default()
    };

    // The server's configuration: rate limits out of the way, if this server has them.
    fs::write(&config_path, SERVER_CONFIG)?;
    let mut spec = ServerSpec {
        bin: bin.clone(),
        data_dir: data.clone(),
        database: cli.database.clone(),
        config: Some(config_path.clone()),
    };
    let rate_limits = if spec.migrate(&logs.join("migrate.log"))? {
        "raised far above the load (the limiter runs on every request, never refuses)"
    } else {
        "not in this server"
    };

    let (clients, service_client) = tls_clients(&data, &prov)?;
    let server_key = fs::read_to_string(data.join("server.key")).context("reading server.key")?;
    let key_type = key_type(&server_key);
    let tick_us = process::tick_us();
    let run_tag = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );

    describe_setup(
        &mut report,
        cli,
        &sizes,
        (&root, &bin),
        rate_limits,
        &key_type,
    );
    let generator = Generator {
        sizes: &sizes,
        prov: &prov,
        clients: &clients,
        tick_us,
    };

    // ---- Phase 1: the server on the provisioned store ----
    let mut server = Server::start(&spec, &logs.join("server-1.log"))?;
    let target = Target::local(server.addr)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_kib()?;
    let (tls_sip, account_body) = load::probe(&target, &clients[0], &Req::get(ACCOUNT_PATH))
        .await
        .context("first request to sip-settings")?;
    check_account(&account_body, &prov.accounts[0].name)?;
    report.setup.push(format!(
        "Negotiated with sip-settings: {tls_sip}. The `account` reply is {} bytes.",
        account_body.len()
    ));

    let rss_after = if want_http {
        Some(http_scenarios(&mut report, &server, &target, &generator).await?)
    } else {
        None
    };
    let api_total = if want_calls {
        api_records(
            &mut report,
            &server,
            &target,
            &service_client,
            &generator,
            &run_tag,
        )
        .await?
    } else {
        0
    };
    server.check_alive()?;
    server.stop()?;

    // ---- The nginx baseline, while sip-settings is stopped ----
    if want_http {
        nginx_baseline(
            &mut report,
            &generator,
            (&data, &logs),
            &account_body,
            (rss_idle, rss_after),
        )
        .await?;
    }

    // ---- The store filled up to the call-record target, with no server running ----
    let (loaded, stored, focus_calls) =
        fill_store(&sizes, &data, database, api_total, &run_tag).await?;

    // ---- Phase 2: the server with the call records ----
    let (calls_figures, rss_records) =
        calls_among_records(&spec, &logs, &generator, focus_calls).await?;

    report_records(
        &mut report,
        &generator,
        (want_http, want_calls),
        (loaded, stored, focus_calls),
        (&calls_figures, rss_records),
    );

    let markdown = report.markdown(&root);
    let sip_sections = if want_sip {
        Some((
            sip::run(sip_params(&command)).await?,
            proxy::run(sip_params(&command), cli.kamailio_children).await?,
        ))
    } else {
        None
    };
    write_markdown(cli, markdown, sip_sections, &docs)
}

/// The rows of the call-record figures (the bulk load, `action=calls` among the records) and
/// the memory row with the records stored.
fn report_records(
    report: &mut Report,
    generator: &Generator<'_>,
    (want_http, want_calls): (bool, bool),
    (loaded, stored, focus_calls): (calls::Loaded, usize, usize),
    (calls_figures, rss_records): (&Figures, u64),
) {
    let n = generator.sizes.accounts;
    let prov = generator.prov;
    if want_calls {
        report.calls.push((
            format!(
                "call records stored through the library (`record_calls`, {} per transaction), \
                 no server running",
                report::count(10_000)
            ),
            format!(
                "{} records in {:.1} s: {} records/s",
                report::count(loaded.records),
                loaded.seconds,
                report::rate(report::approx(loaded.records as u64) / loaded.seconds.max(1e-9))
            ),
        ));
    }
    report.calls.push((
        format!(
            "`action=calls` (14 days, 50 per list) of {} with {} calls in the last 14 days, \
             among {} stored call records on {} accounts; 1 keep-alive connection",
            prov.accounts[0].name,
            report::count(focus_calls),
            report::count(stored),
            report::count(n),
        ),
        format!(
            "**{}**; {} req/s",
            Report::latency_cell(calls_figures),
            report::rate(calls_figures.rps)
        ),
    ));
    if want_http {
        report.memory.push(MemoryRow {
            when: format!(
                "with {} call records stored, after the `calls` load",
                report::count(stored)
            ),
            sip: rss_records,
            nginx: None,
            nginx_applies: false,
        });
    }
}

/// Prints the report and (except in a smoke run) writes it to `docs/benchmarks.md`, with the
/// `sip` and `proxy` sections of this run or, when they did not run, those already there.
fn write_markdown(
    cli: &Cli,
    mut markdown: String,
    sip_sections: Option<(String, String)>,
    docs: &Path,
) -> anyhow::Result<()> {
    let old_doc = fs::read_to_string(docs).unwrap_or_default();
    if let Some((sip_section, proxy_section)) = sip_sections {
        let section = sip_section;
        markdown = sip_report::splice(&markdown, &section);
        let section = proxy_section;
        markdown =
            sip_report::splice_between(&markdown, &section, proxy_report::BEGIN, proxy_report::END);
    } else {
        // Figures of earlier `sip` and `proxy` runs stay until they run again.
        for (begin, end) in [
            (sip_report::BEGIN, sip_report::END),
            (proxy_report::BEGIN, proxy_report::END),
        ] {
            if let Some(old) = sip_report::section_between(&old_doc, begin, end) {
                markdown = sip_report::splice_between(&markdown, old, begin, end);
            }
        }
    }
    println!("{markdown}");
    if cli.smoke {
        eprintln!("smoke run: docs/benchmarks.md left as it is");
    } else {
        fs::write(docs, &markdown).with_context(|| format!("writing {}", docs.display()))?;
        eprintln!("wrote {}", docs.display());
    }
    Ok(())
}

/// The load generator's TLS clients: one per provisioned account (account `i` at index `i`)
/// and the service certificate's, all trusting the server's CA in `data`.
fn tls_clients(
    data: &Path,
    prov: &provision::Provisioned,
) -> anyhow::Result<(Vec<Client>, Client)> {
    let provider = load::provider();
    let ca_pem = fs::read_to_string(data.join("ca.crt")).context("reading ca.crt")?;
    let roots = load::roots(&ca_pem)?;
    let clients: Vec<Client> = prov
        .accounts
        .iter()
        .map(|c| load::client(&provider, &roots, c))
        .collect::<anyhow::Result<_>>()?;
    let service_client = load::client(&provider, &roots, &prov.service)?;
    Ok((clients, service_client))
}

/// Fills the store, with no server running, up to the run's call-record target (less the
/// `api_total` records the API already stored); returns the load's figures, the records stored
/// in all and how many of them account 0 placed recently.
async fn fill_store(
    sizes: &Sizes,
    data: &Path,
    database: Option<&str>,
    api_total: u64,
    run_tag: &str,
) -> anyhow::Result<(calls::Loaded, usize, usize)> {
    let n = sizes.accounts;
    let to_load = sizes
        .call_records
        .saturating_sub(usize::try_from(api_total)?);
    let focus_calls = sizes.focus_calls.min(to_load);
    eprintln!("storing {to_load} call records");
    let db = Db::open(data, database, false).await?;
    let loaded = calls::bulk_load(&db, n, to_load, focus_calls, run_tag).await;
    db.close().await;
    let loaded = loaded?;
    let stored = loaded.records + usize::try_from(api_total)?;
    Ok((loaded, stored, focus_calls))
}

/// The load generator's side, shared by the HTTP scenarios: the run's sizes, the provisioned
/// accounts with a client for each (account `i` at index `i`), and the clock tick for the CPU
/// figures.
#[derive(Clone, Copy)]
struct Generator<'a> {
    sizes: &'a Sizes,
    prov: &'a provision::Provisioned,
    clients: &'a [Client],
    tick_us: f64,
}

/// `sip` or `proxy` alone: runs it, prints its section and (except in a smoke run) replaces
/// that section of `docs/benchmarks.md`.
async fn sip_or_proxy_alone(cli: &Cli, params: sip::Params<'_>, docs: &Path) -> anyhow::Result<()> {
    let (section, begin, end) = if cli.what == What::Sip {
        let section = sip::run(params).await?;
        (section, sip_report::BEGIN, sip_report::END)
    } else {
        let section = proxy::run(params, cli.kamailio_children).await?;
        (section, proxy_report::BEGIN, proxy_report::END)
    };
    println!("{section}");
    if cli.smoke {
        eprintln!("smoke run: docs/benchmarks.md left as it is");
    } else {
        let doc = fs::read_to_string(docs).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
        fs::write(docs, sip_report::splice_between(&doc, &section, begin, end))
            .with_context(|| format!("writing {}", docs.display()))?;
        eprintln!("wrote the {} section of {}", begin, docs.display());
    }
    Ok(())
}

/// The report's description of the set-up: the server, the load generator, the writes and
/// the call records.
fn describe_setup(
    report: &mut Report,
    cli: &Cli,
    sizes: &Sizes,
    server: (&Path, &Path),
    rate_limits: &str,
    key_type: &str,
) {
    let (root, bin) = server;
    let database = cli.database.as_deref();
    let n = sizes.accounts;
    let plan = &sizes.plan;
    if cli.smoke {
        report.setup.push(format!(
            "**Smoke run**: tiny sizes and {:.1} s per scenario, to check that everything \
             works; the figures are not representative.",
            plan.duration.as_secs_f64()
        ));
    }
    report.setup.push(format!(
        "Server: `{} serve` as a child process on 127.0.0.1, {}; {} accounts with a client \
         certificate each; rate limits {rate_limits}. Server key: {key_type}, client \
         certificates ECDSA P-256 from the same CA.",
        bin.strip_prefix(root).unwrap_or(bin).display(),
        match database {
            None => "embedded SQLite store (WAL, synchronous=FULL)".to_owned(),
            Some(url) => format!("`--database {}`", redact(url)),
        },
        report::count(n),
    ));
    let n_text = report::count(n);
    report.setup.push(format!(
        "Load generator: hyper (HTTP/1.1) over rustls with aws-lc-rs, key exchange X25519 only \
         (what OpenSSL 3.0 clients such as curl use), session resumption off. Keep-alive: the \
         connections are opened first, each bound to a different account spread over all {n_text}, \
         then send requests back to back, {:.2} s warm-up, {:.1} s measured. Handshakes: {} \
         workers, a new TCP + TLS connection (full handshake, client certificate verified) \
         per `account` request, cycling through all {n_text} certificates. Every reply's status \
         is checked, and the first reply on each connection is checked for its content (the \
         right `sip_address`, object D, a success); any failure fails the run.",
        plan.warmup.as_secs_f64(),
        plan.duration.as_secs_f64(),
        sizes.handshake_workers
    ));
    report.setup.push(format!(
        "Writes: `set_diversions&FUNC=` alternating between +31201234567 and +31201234568, so \
         that every request changes the stored forwarding. Call records: `POST \
         /v1/service/calls` with a new Call-ID each time (201 expected); then, with no server \
         running, the store is filled up to {} call records through the library, {} of them \
         placed by {} within the last 14 days and the rest by the other accounts over the last \
         year; the server is started again on it for the `calls` figures and the last memory \
         figure.",
        report::count(sizes.call_records),
        report::count(sizes.focus_calls.min(sizes.call_records)),
        provision::account_name(0),
    ));
}

/// The keep-alive actions at each connection count, then full handshakes, against the
/// running server; returns its resident memory afterwards, KiB.
async fn http_scenarios(
    report: &mut Report,
    server: &Server,
    target: &Target,
    generator: &Generator<'_>,
) -> anyhow::Result<u64> {
    let Generator {
        sizes,
        prov,
        clients,
        tick_us,
    } = *generator;
    let n = sizes.accounts;
    let plan = &sizes.plan;
    for (si, action) in ACTIONS.iter().enumerate() {
        for &c in &sizes.conns {
            let idx = spread(n, c, si * 97 + c * 13);
            let conn_clients: Vec<Client> = idx.iter().map(|&i| clients[i].clone()).collect();
            let names = idx.iter().map(|&i| prov.accounts[i].name.clone()).collect();
            let scenario = load::keepalive(
                target,
                &conn_clients,
                action.make(),
                action.check(names),
                plan,
            );
            let f = with_cpu(server.pid(), false, tick_us, scenario)
                .await
                .with_context(|| format!("sip-settings, {} at {c} connections", action.label()))?
                .1;
            eprintln!("sip-settings {} × {c}: {}", action.label(), f.progress());
            report.rows.push(Row {
                scenario: format!("{}, keep-alive", action.label()),
                conns: c,
                sip: f,
                nginx: None,
            });
        }
    }
    let all_clients = Arc::new(clients.to_vec());
    let scenario = load::handshakes(
        target,
        all_clients,
        Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
        sizes.handshake_workers,
        plan,
    );
    let f = with_cpu(server.pid(), false, tick_us, scenario)
        .await
        .context("sip-settings, handshakes")?
        .1;
    eprintln!("sip-settings handshakes: {} /s", report::rate(f.rps));
    report.rows.push(Row {
        scenario: "`account`, new connection per request: full TLS handshakes/s".into(),
        conns: sizes.handshake_workers,
        sip: f,
        nginx: None,
    });
    server.rss_kib()
}

/// Call records through `POST /v1/service/calls` at each connection count; returns how many
/// were recorded.
async fn api_records(
    report: &mut Report,
    server: &Server,
    target: &Target,
    service_client: &Client,
    generator: &Generator<'_>,
    run_tag: &str,
) -> anyhow::Result<u64> {
    let n = generator.sizes.accounts;
    let plan = &generator.sizes.plan;
    let tick_us = generator.tick_us;
    let sizes = generator.sizes;
    let mut api_total = 0_u64;
    for &c in &sizes.api_conns {
        let tag = format!("{run_tag}-c{c}");
        let make: MakeReq = Arc::new(move |i, seq| {
            Req::post_json(
                "/v1/service/calls",
                calls::api_body(&tag, i, seq, n),
                StatusCode::CREATED,
            )
        });
        let check: CheckFirst = Arc::new(|_, body| {
            let v: serde_json::Value = serde_json::from_slice(body)?;
            if v.get("recorded") != Some(&serde_json::Value::Bool(true)) {
                bail!("not recorded: {}", String::from_utf8_lossy(body));
            }
            Ok(())
        });
        let service_clients = vec![service_client.clone(); c];
        let scenario = load::keepalive(target, &service_clients, make, check, plan);
        let (m, f) = with_cpu(server.pid(), false, tick_us, scenario)
            .await
            .with_context(|| format!("POST /v1/service/calls at {c} connections"))?;
        api_total += m.total;
        eprintln!(
            "POST /v1/service/calls × {c}: {} records/s",
            report::rate(f.rps)
        );
        report.calls.push((
            format!(
                "records through `POST /v1/service/calls` (service certificate), {c} \
                 keep-alive connection{}",
                if c == 1 { "" } else { "s" }
            ),
            format!(
                "**{} records/s**; {}",
                report::rate(f.rps),
                Report::latency_cell(&f)
            ),
        ));
    }
    Ok(api_total)
}

/// The nginx baseline, while sip-settings is stopped: the same keep-alive and handshake load
/// on a static copy of the `account` reply, set beside sip-settings' rows, and both memory
/// rows (sip-settings' alone when there is no nginx).
async fn nginx_baseline(
    report: &mut Report,
    generator: &Generator<'_>,
    (data, logs): (&Path, &Path),
    account_body: &Bytes,
    (rss_idle, rss_after): (u64, Option<u64>),
) -> anyhow::Result<()> {
    let Generator {
        sizes,
        clients,
        tick_us,
        ..
    } = *generator;
    let n = sizes.accounts;
    let plan = &sizes.plan;
    match nginx::find_or_install() {
        Ok(nginx_bin) => {
            let version = nginx::version(&nginx_bin);
            let ng = nginx::Nginx::start(&nginx_bin, data, account_body, logs)?;
            let target = Target::local(ng.addr)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss_idle_nginx = ng.rss_kib()?;
            let (tls_nginx, body) = load::probe(&target, &clients[0], &Req::get(ACCOUNT_PATH))
                .await
                .context("first request to nginx")?;
            if body != account_body {
                bail!("nginx does not serve the `account` reply");
            }
            let expected = account_body.clone();
            let same_body: CheckFirst = Arc::new(move |_, body| {
                if body != expected.as_ref() {
                    bail!("nginx answered something else than the static file");
                }
                Ok(())
            });
            for &c in &sizes.conns {
                let idx = spread(n, c, c * 13);
                let conn_clients: Vec<Client> = idx.iter().map(|&i| clients[i].clone()).collect();
                let scenario = load::keepalive(
                    &target,
                    &conn_clients,
                    Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
                    same_body.clone(),
                    plan,
                );
                let f = with_cpu(ng.pid(), true, tick_us, scenario)
                    .await
                    .with_context(|| format!("nginx at {c} connections"))?
                    .1;
                eprintln!("nginx × {c}: {}", f.progress());
                for row in report.rows.iter_mut().filter(|r| r.conns == c) {
                    if row.scenario.ends_with("keep-alive") {
                        row.nginx = Some(f);
                    }
                }
            }
            let scenario = load::handshakes(
                &target,
                Arc::new(clients.to_vec()),
                Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
                sizes.handshake_workers,
                plan,
            );
            let f = with_cpu(ng.pid(), true, tick_us, scenario)
                .await
                .context("nginx, handshakes")?
                .1;
            eprintln!("nginx handshakes: {} /s", report::rate(f.rps));
            if let Some(row) = report
                .rows
                .iter_mut()
                .find(|r| r.scenario.contains("handshakes"))
            {
                row.nginx = Some(f);
            }
            let rss_after_nginx = ng.rss_kib()?;
            ng.stop()?;
            report.memory.push(MemoryRow {
                when: "idle, after start".into(),
                sip: rss_idle,
                nginx: Some(rss_idle_nginx),
                nginx_applies: true,
            });
            if let Some(after) = rss_after {
                report.memory.push(MemoryRow {
                    when: "after the load above".into(),
                    sip: after,
                    nginx: Some(rss_after_nginx),
                    nginx_applies: true,
                });
            }
            report.nginx = Some(Ok(format!(
                "{version} (Debian package), the same CA, server certificate and key, \
                 `ssl_verify_client on`, `keepalive_requests 1000000`, access log off, \
                 `worker_processes auto`, serving a static file of the same {} bytes as \
                 the `account` reply for every request (so each sip-settings action is set \
                 against the same static reply), driven by the same load generator with \
                 the same certificates. Negotiated with nginx: {tls_nginx}.",
                account_body.len()
            )));
        }
        Err(why) => {
            eprintln!("{why}: no nginx baseline");
            report.nginx = Some(Err(why));
            report.memory.push(MemoryRow {
                when: "idle, after start".into(),
                sip: rss_idle,
                nginx: None,
                nginx_applies: true,
            });
            if let Some(after) = rss_after {
                report.memory.push(MemoryRow {
                    when: "after the load above".into(),
                    sip: after,
                    nginx: None,
                    nginx_applies: true,
                });
            }
        }
    }
    Ok(())
}

/// Phase 2: the server started again on the store with the call records, `action=calls` of
/// the first account; returns its figures and the server's resident memory afterwards, KiB.
async fn calls_among_records(
    spec: &ServerSpec,
    logs: &Path,
    generator: &Generator<'_>,
    focus_calls: usize,
) -> anyhow::Result<(Figures, u64)> {
    let plan = &generator.sizes.plan;
    let tick_us = generator.tick_us;
    let mut server = Server::start(spec, &logs.join("server-2.log"))?;
    let target = Target::local(server.addr)?;
    let expected_placed = focus_calls.min(50);
    let check: CheckFirst = Arc::new(move |_, body| {
        let v: serde_json::Value = serde_json::from_slice(body)?;
        let placed = v
            .get("placed")
            .and_then(|p| p.as_array())
            .map_or(0, Vec::len);
        if placed < expected_placed {
            bail!("`calls` listed {placed} placed calls, expected {expected_placed}");
        }
        Ok(())
    });
    let focus_client = [generator.clients[0].clone()];
    let scenario = load::keepalive(
        &target,
        &focus_client,
        Arc::new(|_, _| Req::get("/settings.phtml?action=calls")),
        check,
        plan,
    );
    let calls_figures = with_cpu(server.pid(), false, tick_us, scenario)
        .await
        .context("`calls` among the stored call records")?
        .1;
    eprintln!("`calls`: {} req/s", report::rate(calls_figures.rps));
    let rss_records = server.rss_kib()?;
    server.check_alive()?;
    server.stop()?;
    Ok((calls_figures, rss_records))
}

/// Runs a scenario and adds the CPU time per request of the server (`pid`, with its direct
/// children when `tree`) and of this process (the load generator).
async fn with_cpu(
    pid: u32,
    tree: bool,
    tick_us: f64,
    scenario: impl Future<Output = anyhow::Result<Measured>>,
) -> anyhow::Result<(Measured, Figures)> {
    let ticks = || -> anyhow::Result<(u64, u64)> {
        let server = if tree {
            process::cpu_tree_ticks(pid)?
        } else {
            process::cpu_ticks(pid)?
        };
        Ok((server, process::cpu_ticks(std::process::id())?))
    };
    let before = ticks()?;
    let m = scenario.await?;
    let after = ticks()?;
    let per = |a: u64, b: u64| {
        report::approx(a.saturating_sub(b)) * tick_us / report::approx(m.total.max(1))
    };
    let mut f = Figures::from(&m);
    f.server_cpu = Some(per(after.0, before.0));
    f.generator_cpu = Some(per(after.1, before.1));
    Ok((m, f))
}

/// The server key's algorithm, from its PEM.
fn key_type(pem: &str) -> String {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let Ok(key) = PrivateKeyDer::from_pem_slice(pem.as_bytes()) else {
        return "unreadable".into();
    };
    match rustls::crypto::aws_lc_rs::sign::any_supported_type(&key) {
        Ok(k) => match k.algorithm() {
            rustls::SignatureAlgorithm::ECDSA => "ECDSA (P-256, as `init` makes it)".into(),
            other => format!("{other:?}"),
        },
        Err(_) => "unsupported".into(),
    }
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_the_accounts_evenly() {
        assert_eq!(spread(10_000, 4, 0), vec![0, 2500, 5000, 7500]);
        assert_eq!(spread(10_000, 4, 10), vec![10, 2510, 5010, 7510]);
        // More connections than accounts: every account, some twice.
        assert_eq!(spread(3, 5, 1), vec![1, 2, 0, 1, 2]);
    }

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://bench:secret@127.0.0.1/sip"),
            "postgres://bench:***@127.0.0.1/sip"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn set_diversions_alternates_between_two_targets() {
        let make = Action::SetDiversions.make();
        let a = format!("{:?}", make(0, 0));
        let b = format!("{:?}", make(0, 1));
        assert!(a.contains("FUNC=%2B31201234567"), "{a}");
        assert!(b.contains("FUNC=%2B31201234568"), "{b}");
    }
}
