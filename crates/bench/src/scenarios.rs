//! The HTTP scenarios of one store: the subscriber actions under keep-alive load and full
//! handshakes, call records through the service API (single, batch, replayed), `calls` among
//! the stored records, two servers on one PostgreSQL database, and the nginx baseline; each
//! with the CPU time per request of the server, of PostgreSQL and of the load generator.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hyper::StatusCode;
use hyper::body::Bytes;

use crate::load::{self, CheckFirst, Client, MakeReq, Measured, Req, Target};
use crate::pg::{self, StoreKind};
use crate::process::{self, Server, ServerSpec};
use crate::report::{self, ApiRow, Figures, MemoryRow, Report, Row, TwoServersRow};
use crate::{Generator, calls, nginx};

/// The subscriber actions under keep-alive load.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Account,
    Diversions,
    SetDiversions,
}

pub(crate) const ACTIONS: [Action; 3] =
    [Action::Account, Action::Diversions, Action::SetDiversions];
pub(crate) const ACCOUNT_PATH: &str = "/settings.phtml?action=account";

impl Action {
    pub(crate) fn label(self) -> &'static str {
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

pub(crate) fn check_account(body: &[u8], name: &str) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(body)))?;
    let got = v.get("sip_address").and_then(|a| a.as_str()).unwrap_or("");
    if got != name {
        bail!("`account` answered sip_address {got:?}, expected {name:?}");
    }
    Ok(())
}

/// `conns` account indexes spread evenly over `n` accounts, shifted by `offset`.
pub(crate) fn spread(n: usize, conns: usize, offset: usize) -> Vec<usize> {
    let stride = (n / conns.max(1)).max(1);
    (0..conns).map(|i| (offset + i * stride) % n).collect()
}

/// A running server of one store, as the scenarios see it.
#[derive(Clone, Copy)]
pub(crate) struct Running<'a> {
    /// The server.
    pub server: &'a Server,
    /// Where the load goes.
    pub target: &'a Target,
    /// Its store.
    pub store: StoreKind,
}

impl Running<'_> {
    /// The CPU readings of a scenario on this server (and PostgreSQL, on PostgreSQL).
    fn watch(&self, tick_us: f64) -> Watch {
        Watch {
            pids: vec![self.server.pid()],
            tree: false,
            postgres: self.store == StoreKind::Postgres,
            tick_us,
        }
    }
}

/// Whose CPU time a scenario reports.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    /// The servers (their CPU is added up).
    pub pids: Vec<u32>,
    /// With each server's direct children (nginx: master and workers).
    pub tree: bool,
    /// Also every `postgres` process.
    pub postgres: bool,
    /// Microseconds per clock tick.
    pub tick_us: f64,
}

/// The keep-alive actions at each connection count, then full handshakes, against the
/// running server; returns its resident memory afterwards, KiB.
pub(crate) async fn http_scenarios(
    report: &mut Report,
    run: Running<'_>,
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
    let store = run.store;
    for (si, action) in ACTIONS.iter().enumerate() {
        for &c in &sizes.conns {
            let idx = spread(n, c, si * 97 + c * 13);
            let conn_clients: Vec<Client> = idx.iter().map(|&i| clients[i].clone()).collect();
            let names = idx.iter().map(|&i| prov.accounts[i].name.clone()).collect();
            let scenario = load::keepalive(
                run.target,
                &conn_clients,
                action.make(),
                action.check(names),
                plan,
            );
            let f = with_cpu(&run.watch(tick_us), scenario)
                .await
                .with_context(|| format!("{store}, {} at {c} connections", action.label()))?
                .1;
            eprintln!("{store} {} × {c}: {}", action.label(), f.progress());
            report.rows.push(Row {
                scenario: format!("{}, keep-alive", action.label()),
                conns: c,
                store,
                sip: f,
                nginx: None,
            });
        }
    }
    let all_clients = Arc::new(clients.to_vec());
    let scenario = load::handshakes(
        run.target,
        all_clients,
        Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
        sizes.handshake_workers,
        plan,
    );
    let f = with_cpu(&run.watch(tick_us), scenario)
        .await
        .with_context(|| format!("{store}, handshakes"))?
        .1;
    eprintln!("{store} handshakes: {} /s", report::rate(f.rps));
    report.rows.push(Row {
        scenario: HANDSHAKES.into(),
        conns: sizes.handshake_workers,
        store,
        sip: f,
        nginx: None,
    });
    run.server.rss_kib()
}

/// The scenario name of the handshake row.
const HANDSHAKES: &str = "`account`, new connection per request: full TLS handshakes/s";

/// Call records through the service API: `POST /v1/service/calls` at each connection count
/// and its replay, then batches of each size at each connection count and their replay;
/// returns how many records were stored.
pub(crate) async fn api_records(
    report: &mut Report,
    run: Running<'_>,
    service_client: &Client,
    generator: &Generator<'_>,
    run_tag: &str,
) -> anyhow::Result<u64> {
    let sizes = generator.sizes;
    let n = sizes.accounts;
    let plan = &sizes.plan;
    let watch = run.watch(generator.tick_us);
    let store = run.store;
    let mut api_total = 0_u64;
    let mut sent_by_one = None;
    for &c in &sizes.api_conns {
        let tag = format!("{run_tag}-{}-c{c}", store.slug());
        let make: MakeReq = {
            let tag = tag.clone();
            Arc::new(move |i, seq| {
                Req::post_json(
                    "/v1/service/calls",
                    calls::api_body(&tag, i, seq, n),
                    StatusCode::CREATED,
                )
            })
        };
        let check: CheckFirst = Arc::new(|_, body| {
            let v: serde_json::Value = serde_json::from_slice(body)?;
            if v.get("recorded") != Some(&serde_json::Value::Bool(true)) {
                bail!("not recorded: {}", String::from_utf8_lossy(body));
            }
            Ok(())
        });
        let service_clients = vec![service_client.clone(); c];
        let scenario = load::keepalive(run.target, &service_clients, make, check, plan);
        let (m, f) = with_cpu(&watch, scenario)
            .await
            .with_context(|| format!("{store}, POST /v1/service/calls at {c} connections"))?;
        api_total += m.total;
        if c == 1 {
            sent_by_one = Some((tag, m.by_conn.first().copied().unwrap_or(0)));
        }
        eprintln!(
            "{store} POST /v1/service/calls × {c}: {} records/s",
            report::rate(f.rps)
        );
        report.api.push(ApiRow {
            store,
            form: "single: `POST /v1/service/calls`".into(),
            per_request: 1,
            conns: c,
            f,
        });
    }
    // The records of one connection sent again: each a replay (200, nothing stored).
    if let Some((tag, sent)) = sent_by_one.filter(|(_, sent)| *sent > 0) {
        let make: MakeReq = Arc::new(move |_, seq| {
            let seq = seq % sent;
            Req::post_json(
                "/v1/service/calls",
                calls::api_body(&tag, 0, seq, n),
                StatusCode::OK,
            )
            .expecting_body(Bytes::from(format!(
                "{{\"recorded\":false,\"replay\":true,\"call_id\":\"{}\"}}",
                calls::api_call_id(&tag, 0, seq)
            )))
        });
        let scenario = load::keepalive(
            run.target,
            std::slice::from_ref(service_client),
            make,
            Arc::new(|_, _| Ok(())),
            plan,
        );
        let (_, f) = with_cpu(&watch, scenario)
            .await
            .with_context(|| format!("{store}, replayed POST /v1/service/calls"))?;
        eprintln!(
            "{store} replayed single records: {} /s",
            report::rate(f.rps)
        );
        report.api.push(ApiRow {
            store,
            form: "replayed single (200, `replay: true`)".into(),
            per_request: 1,
            conns: 1,
            f,
        });
    }
    for &size in &sizes.batch_sizes {
        api_total += batches(report, run, service_client, generator, run_tag, size).await?;
    }
    Ok(api_total)
}

/// Batches of `size` new records at each connection count, then the batches of the first
/// connection sent again (all replays); returns how many records were stored.
async fn batches(
    report: &mut Report,
    run: Running<'_>,
    service_client: &Client,
    generator: &Generator<'_>,
    run_tag: &str,
    size: usize,
) -> anyhow::Result<u64> {
    let sizes = generator.sizes;
    let n = sizes.accounts;
    let plan = &sizes.plan;
    let watch = run.watch(generator.tick_us);
    let store = run.store;
    let fresh = Bytes::from(format!("{{\"recorded\":{size},\"replays\":0}}"));
    let replayed = Bytes::from(format!("{{\"recorded\":0,\"replays\":{size}}}"));
    let mut stored = 0_u64;
    let mut first = None;
    for &c in &sizes.batch_conns {
        let tag = format!("{run_tag}-{}-b{size}-c{c}", store.slug());
        let make: MakeReq = {
            let (tag, fresh) = (tag.clone(), fresh.clone());
            Arc::new(move |i, seq| {
                Req::post_json(
                    "/v1/service/calls/batch",
                    calls::batch_body(&tag, i, seq, size, n),
                    StatusCode::OK,
                )
                .expecting_body(fresh.clone())
            })
        };
        let service_clients = vec![service_client.clone(); c];
        let scenario = load::keepalive(
            run.target,
            &service_clients,
            make,
            Arc::new(|_, _| Ok(())),
            plan,
        );
        let (m, f) = match with_cpu(&watch, scenario).await {
            Ok(measured) => measured,
            // A server whose body limit is below this batch refuses every one of them: said in
            // the report, not a failure of the run (nothing else of it is affected).
            Err(e) if format!("{e:#}").contains("answered 413") => {
                let bytes = calls::batch_body(&tag, 0, 0, size, n).len();
                eprintln!("{store} batches of {size}: refused (413)");
                report.api_notes.push(format!(
                    "{store}: batches of {} records ({} KiB of JSON) refused with 413 \
                     `body_too_large`: the server's request body limit is below them.",
                    report::count(size),
                    bytes / 1024
                ));
                return Ok(stored);
            }
            Err(e) => {
                return Err(e.context(format!(
                    "{store}, batches of {size} records at {c} connections"
                )));
            }
        };
        stored += m.total * size as u64;
        if first.is_none() {
            first = Some((tag, m.by_conn.first().copied().unwrap_or(0)));
        }
        eprintln!(
            "{store} batches of {size} × {c}: {} records/s",
            report::rate(f.rps * report::approx(size as u64))
        );
        report.api.push(ApiRow {
            store,
            form: "batch: `POST /v1/service/calls/batch`".into(),
            per_request: size,
            conns: c,
            f,
        });
    }
    if let Some((tag, sent)) = first.filter(|(_, sent)| *sent > 0) {
        let make: MakeReq = Arc::new(move |_, seq| {
            Req::post_json(
                "/v1/service/calls/batch",
                calls::batch_body(&tag, 0, seq % sent, size, n),
                StatusCode::OK,
            )
            .expecting_body(replayed.clone())
        });
        let scenario = load::keepalive(
            run.target,
            std::slice::from_ref(service_client),
            make,
            Arc::new(|_, _| Ok(())),
            plan,
        );
        let (_, f) = with_cpu(&watch, scenario)
            .await
            .with_context(|| format!("{store}, replayed batches of {size}"))?;
        eprintln!(
            "{store} replayed batches of {size}: {} records/s",
            report::rate(f.rps * report::approx(size as u64))
        );
        report.api.push(ApiRow {
            store,
            form: "replayed batch (all replays)".into(),
            per_request: size,
            conns: 1,
            f,
        });
    }
    Ok(stored)
}

/// Two servers on one PostgreSQL database: `account` reads and `set_diversions` writes over
/// `conns` connections in all, connection `i` to server `i % 2`.
pub(crate) async fn two_servers(
    report: &mut Report,
    spec: &ServerSpec,
    logs: &Path,
    generator: &Generator<'_>,
    (conns, per_server): (usize, i64),
) -> anyhow::Result<()> {
    let Generator {
        sizes,
        prov,
        clients,
        tick_us,
    } = *generator;
    let n = sizes.accounts;
    let url = spec
        .database
        .clone()
        .ok_or_else(|| anyhow!("two servers need a PostgreSQL database"))?;
    // Each server opens as many connections as one did under the same load before.
    pg::await_free_connections(&url, 2 * per_server.max(1), Duration::from_secs(60))
        .await
        .context("two servers on one PostgreSQL database")?;
    let servers = [
        Server::start(spec, &logs.join("server-postgres-a.log"))?,
        Server::start(spec, &logs.join("server-postgres-b.log"))?,
    ];
    let targets = servers
        .iter()
        .map(|s| Target::local(s.addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let watch = Watch {
        pids: servers.iter().map(Server::pid).collect(),
        tree: false,
        postgres: true,
        tick_us,
    };
    let (mut most_connections, mut max_connections) = (0, 0);
    for (si, action) in [Action::Account, Action::SetDiversions].iter().enumerate() {
        let idx = spread(n, conns, si * 89 + 7);
        let conn_clients: Vec<Client> = idx.iter().map(|&i| clients[i].clone()).collect();
        let names = idx.iter().map(|&i| prov.accounts[i].name.clone()).collect();
        let scenario = load::keepalive_over(
            &targets,
            &conn_clients,
            action.make(),
            action.check(names),
            &sizes.plan,
        );
        let (m, f, cpu) = match with_cpu_each(&watch, scenario).await {
            Ok(measured) => measured,
            Err(e) => {
                let now = pg::connections(&url).await.map_or_else(
                    |e| format!("PostgreSQL's connections unknown: {e:#}"),
                    |c| {
                        format!(
                            "PostgreSQL: max_connections {}, {} client connections, {} to this \
                             database",
                            c.max, c.all, c.here
                        )
                    },
                );
                return Err(e.context(format!(
                    "two servers, {} at {conns} connections ({now})",
                    action.label()
                )));
            }
        };
        let c = pg::connections(&url).await?;
        (most_connections, max_connections) = (most_connections.max(c.here), c.max);
        let per_server_requests: Vec<u64> = (0..servers.len())
            .map(|k| {
                m.by_conn
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % servers.len() == k)
                    .map(|(_, t)| t)
                    .sum()
            })
            .collect();
        let per_server_cpu = cpu
            .iter()
            .zip(&per_server_requests)
            .map(|(us, r)| us / report::approx((*r).max(1)))
            .collect();
        eprintln!(
            "two servers, {} × {conns}: {}",
            action.label(),
            f.progress()
        );
        let scenario = format!("{}, keep-alive", action.label());
        let one_server = report
            .rows
            .iter()
            .find(|r| r.store == StoreKind::Postgres && r.conns == conns && r.scenario == scenario)
            .map(|r| r.sip);
        report.two_servers.push(TwoServersRow {
            scenario,
            conns,
            f,
            per_server_cpu,
            per_server_requests,
            one_server,
        });
    }
    for mut server in servers {
        server.check_alive()?;
        server.stop()?;
    }
    let cores = report.machine.as_ref().map_or(0, |m| m.cores);
    report.two_servers_note = Some(format!(
        "Two `sip-settings serve` processes (two ports) on the one PostgreSQL database of the \
         PostgreSQL rows above; the load generator's {conns} keep-alive connections spread \
         evenly over both (connection i to server i mod 2), each bound to a different account; \
         `account` reads and `set_diversions` writes as above, every status and every first \
         reply checked. **What this figure is**: the aggregate of two servers sharing this \
         machine's {cores} cores with PostgreSQL and the load generator. It shows that two \
         servers on one database serve correctly side by side and what each request costs \
         them (each server's CPU per request it served) and the database (PostgreSQL's CPU \
         per request); it is not a multi-machine scale-out, and on one machine two servers \
         cannot double anything: they compete for the same cores. With the servers on \
         machines of their own, the aggregate is bounded by the database: a core of \
         PostgreSQL serves about 1 000 000 / (its CPU µs per request) requests a second. \
         Connections to the database after the load: {most_connections} (both servers' pools \
         and listeners; PostgreSQL's max_connections is {max_connections})."
    ));
    Ok(())
}

/// nginx's figures: keep-alive by connection count, handshakes, and memory.
#[derive(Debug)]
pub(crate) struct NginxFigures {
    keepalive: Vec<(usize, Figures)>,
    handshakes: Figures,
    rss_idle: u64,
    rss_after: u64,
    /// The baseline's description for the report.
    pub description: String,
}

/// The nginx baseline, while no sip-settings server runs: the same keep-alive and handshake
/// load on a static copy of the `account` reply; `Err` says why there is none.
pub(crate) async fn nginx_baseline(
    generator: &Generator<'_>,
    (data, logs): (&Path, &Path),
    account_body: &Bytes,
) -> anyhow::Result<Result<NginxFigures, String>> {
    let Generator {
        sizes,
        clients,
        tick_us,
        ..
    } = *generator;
    let n = sizes.accounts;
    let plan = &sizes.plan;
    let nginx_bin = match nginx::find_or_install() {
        Ok(bin) => bin,
        Err(why) => {
            eprintln!("{why}: no nginx baseline");
            return Ok(Err(why));
        }
    };
    let version = nginx::version(&nginx_bin);
    let ng = nginx::Nginx::start(&nginx_bin, data, account_body, logs)?;
    let target = Target::local(ng.addr)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = ng.rss_kib()?;
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
    let watch = Watch {
        pids: vec![ng.pid()],
        tree: true,
        postgres: false,
        tick_us,
    };
    let mut keepalive = Vec::new();
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
        let f = with_cpu(&watch, scenario)
            .await
            .with_context(|| format!("nginx at {c} connections"))?
            .1;
        eprintln!("nginx × {c}: {}", f.progress());
        keepalive.push((c, f));
    }
    let scenario = load::handshakes(
        &target,
        Arc::new(clients.to_vec()),
        Arc::new(|_, _| Req::get(ACCOUNT_PATH)),
        sizes.handshake_workers,
        plan,
    );
    let handshakes = with_cpu(&watch, scenario)
        .await
        .context("nginx, handshakes")?
        .1;
    eprintln!("nginx handshakes: {} /s", report::rate(handshakes.rps));
    let rss_after = ng.rss_kib()?;
    ng.stop()?;
    Ok(Ok(NginxFigures {
        keepalive,
        handshakes,
        rss_idle,
        rss_after,
        description: format!(
            "{version} (Debian package), the same CA, server certificate and key, \
             `ssl_verify_client on`, `keepalive_requests 1000000`, access log off, \
             `worker_processes auto`, serving a static file of the same {} bytes as the \
             `account` reply for every request (so each sip-settings action, on each store, \
             is set against the same static reply), driven by the same load generator with the \
             same certificates. Negotiated with nginx: {tls_nginx}.",
            account_body.len()
        ),
    }))
}

/// The memory row names nginx has a figure for.
pub(crate) const IDLE: &str = "idle, after start";
/// See [`IDLE`].
pub(crate) const AFTER_LOAD: &str = "after the load above";

/// Sets nginx's figures beside every row (of every store) they apply to.
pub(crate) fn attach_nginx(report: &mut Report, nginx: &Result<NginxFigures, String>) {
    match nginx {
        Ok(ng) => {
            for row in &mut report.rows {
                if row.scenario.ends_with("keep-alive") {
                    row.nginx = ng
                        .keepalive
                        .iter()
                        .find(|(c, _)| *c == row.conns)
                        .map(|(_, f)| *f);
                } else if row.scenario == HANDSHAKES {
                    row.nginx = Some(ng.handshakes);
                }
            }
            for m in &mut report.memory {
                m.nginx = match m.when.as_str() {
                    IDLE => Some(ng.rss_idle),
                    AFTER_LOAD => Some(ng.rss_after),
                    _ => None,
                };
            }
            report.nginx = Some(Ok(ng.description.clone()));
        }
        Err(why) => report.nginx = Some(Err(why.clone())),
    }
}

/// The memory rows of one store's first server: idle, and after the load when it ran.
pub(crate) fn memory_rows(report: &mut Report, store: StoreKind, idle: u64, after: Option<u64>) {
    report.memory.push(MemoryRow {
        when: IDLE.into(),
        store,
        sip: idle,
        nginx: None,
        nginx_applies: true,
    });
    if let Some(after) = after {
        report.memory.push(MemoryRow {
            when: AFTER_LOAD.into(),
            store,
            sip: after,
            nginx: None,
            nginx_applies: true,
        });
    }
}

/// Phase 2: the server started again on the store with the call records, `action=calls` of
/// the first account; returns its figures and the server's resident memory afterwards, KiB.
pub(crate) async fn calls_among_records(
    spec: &ServerSpec,
    log: &Path,
    generator: &Generator<'_>,
    focus_calls: usize,
    store: StoreKind,
) -> anyhow::Result<(Figures, u64)> {
    let plan = &generator.sizes.plan;
    let mut server = Server::start(spec, log)?;
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
    let run = Running {
        server: &server,
        target: &target,
        store,
    };
    let calls_figures = with_cpu(&run.watch(generator.tick_us), scenario)
        .await
        .with_context(|| format!("{store}, `calls` among the stored call records"))?
        .1;
    eprintln!("{store} `calls`: {}", calls_figures.progress());
    let rss_records = server.rss_kib()?;
    server.check_alive()?;
    server.stop()?;
    Ok((calls_figures, rss_records))
}

/// Runs a scenario and adds the CPU time per request of the watched servers (added up), of
/// PostgreSQL when watched, and of this process (the load generator).
pub(crate) async fn with_cpu(
    watch: &Watch,
    scenario: impl Future<Output = anyhow::Result<Measured>>,
) -> anyhow::Result<(Measured, Figures)> {
    let (m, f, _) = with_cpu_each(watch, scenario).await?;
    Ok((m, f))
}

/// [`with_cpu`], also giving each watched server's CPU time in all, µs.
async fn with_cpu_each(
    watch: &Watch,
    scenario: impl Future<Output = anyhow::Result<Measured>>,
) -> anyhow::Result<(Measured, Figures, Vec<f64>)> {
    let ticks = || -> anyhow::Result<(Vec<u64>, u64, u64)> {
        let servers = watch
            .pids
            .iter()
            .map(|&pid| {
                if watch.tree {
                    process::cpu_tree_ticks(pid)
                } else {
                    process::cpu_ticks(pid)
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let db = if watch.postgres {
            process::postgres_ticks()
        } else {
            0
        };
        Ok((servers, db, process::cpu_ticks(std::process::id())?))
    };
    let before = ticks()?;
    let m = scenario.await?;
    let after = ticks()?;
    let us = |a: u64, b: u64| report::approx(a.saturating_sub(b)) * watch.tick_us;
    let each: Vec<f64> = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| us(*a, *b))
        .collect();
    let requests = report::approx(m.total.max(1));
    let mut f = Figures::from(&m);
    f.server_cpu = Some(each.iter().sum::<f64>() / requests);
    f.db_cpu = watch.postgres.then(|| us(after.1, before.1) / requests);
    f.generator_cpu = Some(us(after.2, before.2) / requests);
    Ok((m, f, each))
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
    fn set_diversions_alternates_between_two_targets() {
        let make = Action::SetDiversions.make();
        let a = format!("{:?}", make(0, 0));
        let b = format!("{:?}", make(0, 1));
        assert!(a.contains("FUNC=%2B31201234567"), "{a}");
        assert!(b.contains("FUNC=%2B31201234568"), "{b}");
    }
}
