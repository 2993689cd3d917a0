//! `sip-settings-bench`: the performance benchmark of sip-settings. It runs the real
//! `sip-settings serve` binary as a child process on loopback and drives it over real mutual
//! TLS from this process, with nginx serving a static file as the physical-limit baseline.
//!
//! `calls` and `http` run on each store of `--stores` (default `sqlite,postgres`), one after
//! the other from the same provisioned data: the embedded SQLite file, and a PostgreSQL
//! database the run creates on `--pg-url` (default `$SIP_SETTINGS_TEST_PG_URL`) and drops at
//! the end. Every figure has a row per store, and on PostgreSQL also PostgreSQL's CPU time.
//!
//! * `calls`: call records through the service API, one by one and in batches, new and
//!   replayed (records/s, p50/p99 per request), then the `calls` action of an account among
//!   1 000 000 stored call records (p50, p99).
//! * `http`: keep-alive throughput and latency of `account`, `diversions` and `set_diversions`
//!   at 1, 16 and 64 connections; full TLS handshakes per second; resident memory at idle,
//!   after the load and with the call records; each beside nginx with the ratio. On
//!   PostgreSQL also two servers on the one database, 64 connections spread over both.
//! * `sip`: the SIP redirect door (`serve --sip-listen udp:…`) under SIPp load beside
//!   Kamailio: the highest rate with no failed call of each, and the door's own decision latency
//!   and memory at half Kamailio's rate (on the embedded store).
//! * `proxy`: whole calls (INVITE … BYE, SIPp caller and callee) through Kamailio with the
//!   shipped `contrib/kamailio/kamailio.cfg`, deciding with sip-settings and, in the same run,
//!   alone (`-A ALONE`): the highest call rate of each, the ratio and the call set-up time (on
//!   the embedded store).
//! * `all`: all four.
//!
//! The report is printed as Markdown and, except with `--smoke`, written to
//! `docs/benchmarks.md` (`sip` and `proxy` alone replace only their own sections there). `--smoke` runs
//! everything with tiny sizes in well under two minutes.

mod calls;
mod kamailio;
mod load;
mod nginx;
mod pg;
mod process;
mod provision;
mod proxy;
mod proxy_report;
mod report;
mod scenarios;
mod search;
mod sip;
mod sip_probe;
mod sip_report;
mod sipp;
mod sipp_calls;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use hyper::body::Bytes;

use crate::load::{Client, Plan, Req, Target};
use crate::pg::{BenchDatabase, PG_URL_VAR, StoreKind};
use crate::process::{Server, ServerSpec};
use crate::provision::Db;
use crate::report::{CallRow, Figures, Machine, MemoryRow, Report};
use crate::scenarios::{ACCOUNT_PATH, Running, check_account};

/// sip-settings-bench: the real server over real mutual TLS, with nginx as the baseline.
#[derive(Debug, Parser)]
#[command(name = "sip-settings-bench")]
struct Cli {
    /// What to measure.
    #[command(subcommand)]
    what: What,
    /// Tiny sizes (20 accounts, 1 s per scenario, 10 000 call records, batches of 10 and 50
    /// records at 1 and 4 connections; SIP: 200 and 500
    /// calls/s, no search; proxy: 10 and 40 calls/s per variant, no search, the feeds checked);
    /// prints the report without writing docs/benchmarks.md.
    #[arg(long, global = true)]
    smoke: bool,
    /// The stores to measure, in this order (`calls` and `http`; `sip` and `proxy` run on the
    /// embedded store). PostgreSQL needs `--pg-url`.
    #[arg(
        long,
        global = true,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres",
        value_name = "STORES"
    )]
    stores: Vec<StoreKind>,
    /// A PostgreSQL server where the benchmark may create and drop its own database
    /// (`sip_settings_bench_PID`), e.g. postgres://postgres@127.0.0.1:5432/postgres (default:
    /// $SIP_SETTINGS_TEST_PG_URL).
    #[arg(long, global = true, value_name = "URL")]
    pg_url: Option<String>,
    /// Seconds measured per scenario (default 10, with --smoke 1).
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<f64>,
    /// Accounts to provision (default 10 000, with --smoke 20).
    #[arg(long, global = true, value_name = "N")]
    accounts: Option<usize>,
    /// Call records stored for the `calls` figures, on each store (default 1 000 000, with
    /// --smoke 10 000).
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
    batch_sizes: Vec<usize>,
    batch_conns: Vec<usize>,
    two_server_conns: usize,
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
            // A smoke run's debug server on PostgreSQL takes about a second for 16 batches of
            // 100, more than a smoke scenario's window: smaller batches, fewer connections.
            batch_sizes: if cli.smoke {
                vec![10, 50]
            } else {
                vec![100, 1_000]
            },
            batch_conns: if cli.smoke { vec![1, 4] } else { vec![1, 16] },
            two_server_conns: 64,
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
    // A PostgreSQL URL on the command line is printed without its password.
    let args: Vec<String> = std::env::args().skip(1).map(|a| redact(&a)).collect();
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
    let n = sizes.accounts;
    let config_path = work.0.join("server.toml");
    let sip_params = |command| sip::Params {
        root: &root,
        bin: &bin,
        bench_dir: &bench_dir,
        work: &work.0,
        logs: &logs,
        database: None,
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
    let stores = stores(cli)?;
    let pg_url = pg_url(cli, &stores)?;

    // Every store starts from the same provisioned data directory (one CA, one set of
    // certificates), so one set of clients and one nginx baseline serve them all.
    let first_data = work.0.join(format!("data-{}", stores[0].slug()));
    let prov = provision::prepare(&bench_dir, &first_data, n, None).await?;
    let mut report = Report {
        command: command.clone(),
        machine: Some(Machine::read()),
        ..Report::default()
    };
    fs::create_dir_all(&work.0)?;
    // The server's configuration: rate limits out of the way, if this server has them.
    fs::write(&config_path, SERVER_CONFIG)?;
    let (clients, service_client) = tls_clients(&first_data, &prov)?;
    let server_key =
        fs::read_to_string(first_data.join("server.key")).context("reading server.key")?;
    let run_tag = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    let generator = Generator {
        sizes: &sizes,
        prov: &prov,
        clients: &clients,
        tick_us: process::tick_us(),
    };
    let mut setup = Setup {
        rate_limits: "",
        key_type: key_type(&server_key),
        postgres: None,
        account_body: None,
    };
    for &store in &stores {
        let data = work.0.join(format!("data-{}", store.slug()));
        if data != first_data {
            provision::prepare(&bench_dir, &data, n, None).await?;
        }
        let database = match store {
            StoreKind::Sqlite => {
                if want_http {
                    // One second of flushes, one after another, on the disk of the database.
                    report.disk_flushes = Some(
                        report::flush_rate(&data, Duration::from_secs(1))
                            .context("measuring the disk's flush rate")?,
                    );
                }
                None
            }
            StoreKind::Postgres => {
                let url = pg_url
                    .as_deref()
                    .ok_or_else(|| anyhow!("no PostgreSQL URL"))?;
                let db = BenchDatabase::create(
                    url,
                    &format!("sip_settings_bench_{}", std::process::id()),
                )
                .await?;
                let copied = provision::copy_into(&data, &db.url).await?;
                setup.postgres = Some((
                    redact(url),
                    db.name().to_owned(),
                    db.version.clone(),
                    copied,
                ));
                Some(db)
            }
        };
        let mut spec = ServerSpec {
            bin: bin.clone(),
            data_dir: data.clone(),
            database: database.as_ref().map(|d| d.url.clone()),
            config: Some(config_path.clone()),
        };
        let log = |what: &str| logs.join(format!("{what}-{}.log", store.slug()));
        setup.rate_limits = if spec.migrate(&log("migrate"))? {
            "raised far above the load (the limiter runs on every request, never refuses)"
        } else {
            "not in this server"
        };
        let on_store = StoreRun {
            store,
            spec: &spec,
            data: &data,
            database: database.as_ref().map(|d| d.url.as_str()),
            service_client: &service_client,
            run_tag: &run_tag,
            logs: &logs,
        };
        let account_body =
            measure_store(&mut report, &generator, &on_store, (want_http, want_calls)).await?;
        setup.account_body.get_or_insert(account_body);
        // The database is dropped here, before the next store runs.
        drop(database);
    }

    // ---- The nginx baseline, while no sip-settings server runs ----
    if want_http && let Some((_, body)) = &setup.account_body {
        let nginx = scenarios::nginx_baseline(&generator, (&first_data, &logs), body).await?;
        scenarios::attach_nginx(&mut report, &nginx);
    }
    describe_setup(&mut report, cli, &sizes, (&root, &bin), &stores, &setup);

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

/// The stores of the run: `--stores`, each once.
fn stores(cli: &Cli) -> anyhow::Result<Vec<StoreKind>> {
    let mut stores = Vec::new();
    for s in &cli.stores {
        if !stores.contains(s) {
            stores.push(*s);
        }
    }
    if stores.is_empty() {
        bail!("--stores names no store");
    }
    Ok(stores)
}

/// The PostgreSQL server's URL when PostgreSQL is measured: `--pg-url`, else
/// `$SIP_SETTINGS_TEST_PG_URL`; an error when neither is given.
fn pg_url(cli: &Cli, stores: &[StoreKind]) -> anyhow::Result<Option<String>> {
    if !stores.contains(&StoreKind::Postgres) {
        return Ok(None);
    }
    let url = cli
        .pg_url
        .clone()
        .or_else(|| std::env::var(PG_URL_VAR).ok())
        .filter(|u| !u.is_empty());
    match url {
        Some(url) => Ok(Some(url)),
        None => bail!(
            "PostgreSQL is among the stores but no server is given: pass --pg-url URL (a server \
             where the benchmark may create a database), set {PG_URL_VAR}, or measure the \
             embedded store alone with --stores sqlite"
        ),
    }
}

/// What the report's set-up description needs from the run.
struct Setup {
    rate_limits: &'static str,
    key_type: String,
    /// The server (redacted URL), the database, its version and what was copied into it.
    postgres: Option<(String, String, String, provision::Copied)>,
    /// The negotiated TLS parameters and the `account` reply of the first store's server.
    account_body: Option<(String, Bytes)>,
}

/// One store's part of the run.
struct StoreRun<'a> {
    store: StoreKind,
    spec: &'a ServerSpec,
    data: &'a Path,
    database: Option<&'a str>,
    service_client: &'a Client,
    run_tag: &'a str,
    logs: &'a Path,
}

/// Everything measured on one store: the HTTP scenarios and the service API on the
/// provisioned store, two servers on one database (PostgreSQL), the store filled with call
/// records, and `calls` among them; returns the negotiated TLS parameters and the `account`
/// reply.
async fn measure_store(
    report: &mut Report,
    generator: &Generator<'_>,
    on: &StoreRun<'_>,
    (want_http, want_calls): (bool, bool),
) -> anyhow::Result<(String, Bytes)> {
    let store = on.store;
    let log = |what: &str| on.logs.join(format!("{what}-{}.log", store.slug()));
    // ---- Phase 1: the server on the provisioned store ----
    let mut server = Server::start(on.spec, &log("server-1"))?;
    let target = Target::local(server.addr)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_kib()?;
    let (tls, account_body) = load::probe(&target, &generator.clients[0], &Req::get(ACCOUNT_PATH))
        .await
        .with_context(|| format!("first request to sip-settings on {store}"))?;
    check_account(&account_body, &generator.prov.accounts[0].name)?;
    let running = Running {
        server: &server,
        target: &target,
        store,
    };
    let rss_after = if want_http {
        Some(scenarios::http_scenarios(report, running, generator).await?)
    } else {
        None
    };
    // How many connections one server holds after the load: what a second one will need too.
    let per_server = match on.database {
        Some(url) => match pg::connections(url).await {
            Ok(c) => c.here,
            Err(e) => {
                eprintln!("cannot count the server's PostgreSQL connections: {e:#}");
                0
            }
        },
        None => 0,
    };
    let api_total = if want_calls {
        scenarios::api_records(report, running, on.service_client, generator, on.run_tag).await?
    } else {
        0
    };
    server.check_alive()?;
    server.stop()?;
    scenarios::memory_rows(report, store, rss_idle, rss_after);

    // ---- Two servers on the one database ----
    if want_http && store == StoreKind::Postgres {
        let conns = generator.sizes.two_server_conns;
        scenarios::two_servers(report, on.spec, on.logs, generator, (conns, per_server)).await?;
    }

    // ---- The store filled up to the call-record target, with no server running ----
    let (loaded, stored, focus_calls) =
        fill_store(generator.sizes, on.data, on.database, api_total, on.run_tag).await?;

    // ---- Phase 2: the server with the call records ----
    let (calls_figures, rss_records) =
        scenarios::calls_among_records(on.spec, &log("server-2"), generator, focus_calls, store)
            .await?;
    report_records(
        report,
        generator,
        store,
        (want_http, want_calls),
        (loaded, stored, focus_calls),
        (&calls_figures, rss_records),
    );
    Ok((tls, account_body))
}

/// The rows of the call-record figures of one store (the bulk load, `action=calls` among the
/// records) and the memory row with the records stored.
fn report_records(
    report: &mut Report,
    generator: &Generator<'_>,
    store: StoreKind,
    (want_http, want_calls): (bool, bool),
    (loaded, stored, focus_calls): (calls::Loaded, usize, usize),
    (calls_figures, rss_records): (&Figures, u64),
) {
    let n = generator.sizes.accounts;
    let prov = generator.prov;
    if want_calls {
        report.calls.push(CallRow {
            store,
            what: format!(
                "call records stored through the library (`record_calls`, {} per transaction, \
                 {} at a time), no server running",
                report::count(calls::BATCH),
                loaded.transactions_at_once
            ),
            value: format!(
                "{} records in {:.1} s: {} records/s",
                report::count(loaded.records),
                loaded.seconds,
                report::rate(report::approx(loaded.records as u64) / loaded.seconds.max(1e-9))
            ),
        });
    }
    report.calls.push(CallRow {
        store,
        what: format!(
            "`action=calls` (14 days, 50 per list) of {} with {} calls in the last 14 days, \
             among {} stored call records on {} accounts; 1 keep-alive connection",
            prov.accounts[0].name,
            report::count(focus_calls),
            report::count(stored),
            report::count(n),
        ),
        value: format!(
            "**{}**; {} req/s{}",
            Report::latency_cell(calls_figures),
            report::rate(calls_figures.rps),
            calls_figures
                .db_cpu
                .map(|c| format!(", PostgreSQL CPU {c:.0} µs per request"))
                .unwrap_or_default()
        ),
    });
    if want_http {
        report.memory.push(MemoryRow {
            when: "with the call records stored (see below), after the `calls` load".into(),
            store,
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
/// `api_total` records the API already stored, but at least a tenth of the target, so that the
/// library's rate is measured on a real load, and at least the recent records of the account
/// whose `calls` are measured); returns the load's figures, the records stored
/// in all and how many of them account 0 placed recently.
async fn fill_store(
    sizes: &Sizes,
    data: &Path,
    database: Option<&str>,
    api_total: u64,
    run_tag: &str,
) -> anyhow::Result<(calls::Loaded, usize, usize)> {
    let n = sizes.accounts;
    // Even when the API already stored the target's worth (a fast machine stores over a
    // million records through it), the library's rate is measured on a tenth of the target,
    // and the account whose `calls` are measured gets its records.
    let to_load = sizes
        .call_records
        .saturating_sub(usize::try_from(api_total)?)
        .max(sizes.call_records / 10)
        .max(sizes.focus_calls.min(sizes.call_records));
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
    stores: &[StoreKind],
    setup: &Setup,
) {
    let (root, bin) = server;
    let (rate_limits, key_type) = (setup.rate_limits, &setup.key_type);
    let n = sizes.accounts;
    let plan = &sizes.plan;
    if cli.smoke {
        report.setup.push(format!(
            "**Smoke run**: tiny sizes and {:.1} s per scenario, to check that everything \
             works; the figures are not representative.",
            plan.duration.as_secs_f64()
        ));
    }
    let described: Vec<String> = stores
        .iter()
        .map(|s| match s {
            StoreKind::Sqlite => "SQLite: the embedded store (WAL, synchronous=FULL)".to_owned(),
            StoreKind::Postgres => match &setup.postgres {
                Some((url, name, version, copied)) => format!(
                    "PostgreSQL on this machine (`{url}`: {version}), a database `{name}` \
                     the run creates, fills by `sip-settings copy`'s library function from the \
                     SQLite store ({} accounts, {} certificates, in {:.1} s) and drops at the \
                     end",
                    report::count(copied.accounts),
                    report::count(copied.certificates),
                    copied.seconds
                ),
                None => "PostgreSQL".to_owned(),
            },
        })
        .collect();
    report.setup.push(format!(
        "Server: `{} serve` as a child process on 127.0.0.1, one store after the other — {}; \
         {} accounts with a client certificate each (the same data directory, CA and \
         certificates on every store); rate limits {rate_limits}. Server key: {key_type}, \
         client certificates ECDSA P-256 from the same CA. The SIP and proxy parts (their \
         sections below) run on the embedded SQLite store only.",
        bin.strip_prefix(root).unwrap_or(bin).display(),
        described.join("; "),
        report::count(n),
    ));
    if let Some((tls, body)) = &setup.account_body {
        report.setup.push(format!(
            "Negotiated with sip-settings: {tls}. The `account` reply is {} bytes.",
            body.len()
        ));
    }
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
         /v1/service/calls` one by one and `POST /v1/service/calls/batch` in batches of {}, \
         new Call-IDs each time, then sent again as replays (see their table); then, with no \
         server running, each store is filled up to {} call records through the library (what \
         the API stored counts towards it, but at least a tenth of that number goes through the \
         library), at least {} of them placed by {} within the last \
         14 days and the rest by the other accounts over the last year; the server is started \
         again on it for the `calls` figures and the last memory figure.",
        sizes
            .batch_sizes
            .iter()
            .map(|b| report::count(*b))
            .collect::<Vec<_>>()
            .join(" and "),
        report::count(sizes.call_records),
        report::count(sizes.focus_calls.min(sizes.call_records)),
        provision::account_name(0),
    ));
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
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://bench:secret@127.0.0.1/sip"),
            "postgres://bench:***@127.0.0.1/sip"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn both_stores_by_default_each_once() {
        let cli = Cli::parse_from(["bench", "http", "--smoke"]);
        assert_eq!(
            stores(&cli).unwrap(),
            vec![StoreKind::Sqlite, StoreKind::Postgres]
        );
        let cli = Cli::parse_from(["bench", "all", "--stores", "postgres,sqlite,postgres"]);
        assert_eq!(
            stores(&cli).unwrap(),
            vec![StoreKind::Postgres, StoreKind::Sqlite]
        );
        let cli = Cli::parse_from(["bench", "calls", "--stores", "sqlite"]);
        assert_eq!(pg_url(&cli, &stores(&cli).unwrap()).unwrap(), None);
        let cli = Cli::parse_from(["bench", "calls", "--pg-url", "postgres://u@h/p"]);
        assert_eq!(
            pg_url(&cli, &stores(&cli).unwrap()).unwrap().as_deref(),
            Some("postgres://u@h/p")
        );
        assert!(Cli::try_parse_from(["bench", "all", "--stores", "mysql"]).is_err());
    }
}
