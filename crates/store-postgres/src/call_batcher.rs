//! Call records sent one request at a time — most proxies post each call as it ends — share a
//! statement when they arrive together (issue 16): a few runners store what is waiting, each
//! taking everything that arrived while it was busy as one statement ([`crate::call_insert`]).
//! Alone, a record is its own statement, as before; under load, one commit, one WAL flush and
//! one executor start serve many records instead of each paying for its own.
//!
//! Each request is answered once the statement holding its records has committed: nothing is
//! acknowledged before it is durable. The outcome is that of storing the requests one after
//! another in the order they were taken: of two requests with the same record, one stores it
//! and the other is told it is a replay. Should a shared statement fail, each of its requests
//! is stored again on its own, so that one request's failure is not another's.
//!
//! The runners are tasks of their own: a request whose client goes away does not take the
//! records of others with it.

use std::sync::{Arc, Mutex, MutexGuard};

use sip_settings_core::StoreError;
use sip_settings_core::calls::NewCall;
use tokio::sync::oneshot;

use crate::call_insert::Plan;
use crate::error::retrying;
use crate::health::GuardedPool;

/// Most statements storing waiting records at once: PostgreSQL runs them side by side, and the
/// fewer there are, the more records each takes (with 10 000 accounts at 16 connections, four
/// gave 4 097–4 794 records/s, two 5 312).
const RUNNERS: usize = 2;
/// Most records a runner takes into one statement.
const MAX_RECORDS: usize = 1_000;
/// Requests of at most this many records wait for a runner; larger ones are already a
/// statement worth its cost and go alone.
pub(crate) const SHARED_UP_TO: usize = 10;

type Outcome = Result<Vec<bool>, StoreError>;

/// A request waiting for a runner: its records and where its outcome goes.
type Waiting = (Vec<NewCall>, oneshot::Sender<Outcome>);

/// The requests waiting and the runners storing them.
#[derive(Debug)]
pub(crate) struct CallBatcher {
    pool: GuardedPool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    runners: usize,
    waiting: Vec<Waiting>,
}

impl CallBatcher {
    pub(crate) fn new(pool: GuardedPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `calls` (each record's outcome, as [`record`]), in a statement shared with the
    /// requests waiting beside it.
    pub(crate) async fn record(self: &Arc<Self>, calls: Vec<NewCall>) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.state();
            state.waiting.push((calls, reply));
            let start = state.runners < RUNNERS;
            if start {
                state.runners += 1;
            }
            start
        };
        if start {
            tokio::spawn(run(Runner::new(self)));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Other(
                "the statement storing the call records ended without an answer".to_owned(),
            ))
        })
    }
}

/// A runner, counted in [`State::runners`] (by whoever started it) until it ends.
struct Runner {
    batcher: Arc<CallBatcher>,
    /// Counted out already (it found nothing waiting).
    ended: bool,
}

impl Runner {
    fn new(batcher: &Arc<CallBatcher>) -> Self {
        Self {
            batcher: batcher.clone(),
            ended: false,
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Ended otherwise than by finding nothing waiting (a panic): counted out here, and
        // handing on to a new runner if requests would wait for none.
        let mut state = self.batcher.state();
        state.runners -= 1;
        if !state.waiting.is_empty() && state.runners == 0 {
            state.runners += 1;
            drop(state);
            tokio::spawn(run(Runner::new(&self.batcher)));
        }
    }
}

/// Stores what waits until nothing does.
async fn run(mut runner: Runner) {
    loop {
        let taken = {
            let mut state = runner.batcher.state();
            let mut records = 0;
            let n = state
                .waiting
                .iter()
                .take_while(|(calls, _)| {
                    records += calls.len();
                    records <= MAX_RECORDS
                })
                .count()
                .max(1);
            let n = n.min(state.waiting.len());
            if n == 0 {
                // Counted out here, under the lock, so that a request pushed after this sees
                // the runner gone and starts one.
                state.runners -= 1;
                runner.ended = true;
                return;
            }
            state.waiting.drain(..n).collect::<Vec<_>>()
        };
        store(&runner.batcher.pool, taken).await;
    }
}

/// Stores the records of `taken` in one statement and answers each request; if that fails,
/// each request on its own.
async fn store(pool: &GuardedPool, taken: Vec<Waiting>) {
    if let [(calls, _)] = taken.as_slice() {
        let outcome = record(pool, calls).await;
        if let Some((_, reply)) = taken.into_iter().next() {
            let _ = reply.send(outcome);
        }
        return;
    }
    let all: Vec<NewCall> = taken
        .iter()
        .flat_map(|(calls, _)| calls.iter().cloned())
        .collect();
    match record(pool, &all).await {
        Ok(outcome) => {
            let mut rest = outcome.into_iter();
            for (calls, reply) in taken {
                let own: Vec<bool> = rest.by_ref().take(calls.len()).collect();
                let _ = reply.send(Ok(own));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, requests = taken.len(), "a shared statement of call records failed; storing each request alone");
            for (calls, reply) in taken {
                let _ = reply.send(record(pool, &calls).await);
            }
        }
    }
}

/// Stores `calls` as one statement: each record's outcome, `true` for a record stored now.
/// No transaction: the insert is one statement, atomic by itself, and filling in the prices
/// that replays bring is a second one that only fills what is still missing, so it may as
/// well land later (a lost reply is sent again; the records are then replays and their prices
/// fill in). A new record, priced or not, is one round trip.
pub(crate) async fn record(pool: &GuardedPool, calls: &[NewCall]) -> Outcome {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let plan = Plan::new(calls);
    let inserted = retrying(|| plan.insert(pool)).await?;
    if plan.has_prices() {
        retrying(|| plan.fill_prices(pool, &inserted)).await?;
    }
    Ok(plan.outcome(&inserted))
}
