//! How a service function changes an account: `Services::begin` takes the account's write
//! lock in the store ([`crate::store::AccountWrite`]); the function reads what it needs (the
//! `old` values, the current state to validate against) through the store as usual, applies its
//! changes, notes their journal entries, and commits all of it in one transaction. Nothing else
//! can change the account in between, on any server, so the reply, the stored state and the
//! journal always agree.
//!
//! [`Services::hold`] holds one lock across several service
//! calls (a `/v1` write checks `If-Match` against what it reads and then writes): the calls
//! share its transaction, and everything commits together or not at all.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::error::{ServiceError, StoreError};
use crate::ids::AccountId;
use crate::journal::NewJournalEntry;
use crate::service::Services;
use crate::store::{AccountOp, AccountWrite, Applied};

/// Most account writes of this process that hold a store transaction at once, unless the store
/// says otherwise ([`Accounts::max_concurrent_writes`](crate::store::Accounts::max_concurrent_writes)).
pub const MAX_CONCURRENT_WRITES: usize = 8;

/// Most idle per-account locks kept before unused ones are dropped.
const MAX_IDLE_LOCKS: usize = 10_000;

/// The in-process side of account writes: one queue per account, so that writers of one
/// account on this server wait here — holding nothing — rather than in the database, and a cap
/// on writers holding a transaction ([`MAX_CONCURRENT_WRITES`]).
#[derive(Debug)]
pub(crate) struct WriteGate {
    accounts: std::sync::Mutex<HashMap<AccountId, Arc<Mutex<()>>>>,
    slots: Arc<Semaphore>,
}

impl WriteGate {
    /// A gate letting at most `writers` writers hold a store transaction at once.
    pub(crate) fn new(writers: usize) -> Self {
        Self {
            accounts: std::sync::Mutex::default(),
            slots: Arc::new(Semaphore::new(writers.max(1))),
        }
    }
}

/// What a writer holds in this process while its transaction is open.
struct Passage {
    _account: OwnedMutexGuard<()>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl WriteGate {
    async fn enter(&self, id: &AccountId) -> Passage {
        let lock = {
            let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > MAX_IDLE_LOCKS {
                // A lock nobody holds or waits for is referenced by the map alone.
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(id.clone()).or_default().clone()
        };
        let account = lock.lock_owned().await;
        // The semaphore is never closed, so acquiring fails never; without a slot the writer
        // still runs (the database's own lock keeps it correct).
        let slot = self.slots.clone().acquire_owned().await.ok();
        Passage {
            _account: account,
            _slot: slot,
        }
    }
}

/// A write lock on one account held by [`Services::hold`], shared by the service calls made
/// under it.
pub(crate) struct Lease {
    account: AccountId,
    state: Mutex<LeaseState>,
    _passage: Passage,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

struct LeaseState {
    write: Option<Box<dyn AccountWrite>>,
    entries: Vec<NewJournalEntry>,
}

enum Held {
    Own(Box<dyn AccountWrite>, Passage),
    Shared(Arc<Lease>),
}

/// A change of one account in progress (see the module documentation).
pub(crate) struct Writing<'a> {
    services: &'a Services,
    account: AccountId,
    held: Held,
    entries: Vec<NewJournalEntry>,
}

fn gone() -> ServiceError {
    ServiceError::Internal("the account's write was used after it ended".to_owned())
}

impl Services {
    /// Queues for `id` in this process, then opens the store's write transaction (an
    /// optimistic one when `optimistic`, see [`Services::begin_optimistic`]).
    async fn open(
        &self,
        id: &AccountId,
        optimistic: bool,
    ) -> Result<(Box<dyn AccountWrite>, Passage), ServiceError> {
        let passage = self.gate().enter(id).await;
        let write = if optimistic {
            self.store().begin_account_optimistic(id).await
        } else {
            self.store().begin_account(id).await
        };
        let write = write.map_err(|e| match e {
            StoreError::NotFound(_) => ServiceError::NotFound(format!("no account {id}")),
            other => other.into(),
        })?;
        Ok((write, passage))
    }

    /// Begins a change of `id`: waits for its write lock (or joins the one held by
    /// [`Services::hold`]). [`ServiceError::NotFound`] if there is no account.
    pub(crate) async fn begin(&self, id: &AccountId) -> Result<Writing<'_>, ServiceError> {
        self.begin_as(id, false).await
    }

    /// Begins a change of `id` that does not wait for the account's lock in the store where
    /// the store can do that ([`Accounts::begin_account_optimistic`](crate::store::Accounts::begin_account_optimistic)):
    /// for a service function that ends with [`Writing::commit_unless_stale`] and runs again
    /// with [`Services::begin`] when that says the account changed meanwhile. Writers of `id`
    /// in this process still run one after another.
    pub(crate) async fn begin_optimistic(
        &self,
        id: &AccountId,
    ) -> Result<Writing<'_>, ServiceError> {
        self.begin_as(id, true).await
    }

    async fn begin_as(
        &self,
        id: &AccountId,
        optimistic: bool,
    ) -> Result<Writing<'_>, ServiceError> {
        let held = match self.lease().filter(|l| &l.account == id) {
            Some(lease) => Held::Shared(lease.clone()),
            None => {
                let (write, passage) = self.open(id, optimistic).await?;
                Held::Own(write, passage)
            }
        };
        Ok(Writing {
            services: self,
            account: id.clone(),
            held,
            entries: Vec::new(),
        })
    }

    /// Takes `id`'s write lock for several service calls: every change the returned services
    /// make to `id` joins one transaction, committed with its journal entries by
    /// [`Holding::commit`] and rolled back if the holding is dropped without it. What is read
    /// through the store meanwhile is the state the changes apply to, on every server (no other
    /// writer can change the account until the commit).
    pub async fn hold(&self, id: &AccountId) -> Result<Holding, ServiceError> {
        let (write, passage) = self.open(id, false).await?;
        let lease = Arc::new(Lease {
            account: id.clone(),
            state: Mutex::new(LeaseState {
                write: Some(write),
                entries: Vec::new(),
            }),
            _passage: passage,
        });
        Ok(Holding {
            services: self.with_lease(lease.clone()),
            lease,
        })
    }
}

/// Services holding one account's write lock ([`Services::hold`]); they dereference to
/// [`Services`].
#[derive(Debug)]
pub struct Holding {
    services: Services,
    lease: Arc<Lease>,
}

impl std::ops::Deref for Holding {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl Holding {
    /// Commits the changes made so far with their journal entries and releases the lock. The
    /// services stay usable for reads; a change after the commit is an internal error.
    pub async fn commit(&self) -> Result<(), ServiceError> {
        let mut state = self.lease.state.lock().await;
        let write = state.write.take().ok_or_else(gone)?;
        let entries = std::mem::take(&mut state.entries);
        write.commit(&entries).await?;
        Ok(())
    }
}

impl Writing<'_> {
    /// Applies one change inside the transaction.
    pub(crate) async fn apply(&mut self, op: AccountOp) -> Result<Applied, StoreError> {
        match &mut self.held {
            Held::Own(write, _) => write.apply(&op).await,
            Held::Shared(lease) => {
                let mut state = lease.state.lock().await;
                let write = state.write.as_mut().ok_or_else(|| {
                    StoreError::Other("the account's write was used after it ended".to_owned())
                })?;
                write.apply(&op).await
            }
        }
    }

    /// Notes the journal entry of a change of `resource` (nothing when `old == new`).
    pub(crate) fn journal(&mut self, resource: &str, old: Option<String>, new: Option<String>) {
        if old == new {
            return;
        }
        self.entries.push(
            self.services
                .journal_entry(&self.account, resource, old, new),
        );
    }

    /// Commits the changes with their journal entries (inside [`Services::hold`]: hands
    /// them to it, which commits them when it ends).
    pub(crate) async fn commit(self) -> Result<(), ServiceError> {
        match self.held {
            Held::Own(write, _passage) => Ok(write.commit(&self.entries).await?),
            Held::Shared(lease) => {
                lease.state.lock().await.entries.extend(self.entries);
                Ok(())
            }
        }
    }

    /// [`Writing::commit`] for a write begun by [`Services::begin_optimistic`]: `false`, with
    /// nothing written, if the account changed since the write read it (the caller runs
    /// again with [`Services::begin`]).
    pub(crate) async fn commit_unless_stale(self) -> Result<bool, ServiceError> {
        match self.held {
            Held::Own(write, _passage) => match write.commit(&self.entries).await {
                Ok(()) => Ok(true),
                Err(StoreError::Stale(_)) => Ok(false),
                Err(e) => Err(e.into()),
            },
            Held::Shared(lease) => {
                lease.state.lock().await.entries.extend(self.entries);
                Ok(true)
            }
        }
    }
}
