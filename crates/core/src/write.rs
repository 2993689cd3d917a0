//! How a service function changes an account: [`Services::begin`] takes the account's write
//! lock in the store ([`crate::store::AccountWrite`]); the function reads what it needs (the
//! `old` values, the current state to validate against) through the store as usual, applies its
//! changes, notes their journal entries, and commits all of it in one transaction. Nothing else
//! can change the account in between, on any server, so the reply, the stored state and the
//! journal always agree.
//!
//! [`Services::hold`] (and [`Services::atomically`]) holds one lock across several service
//! calls (a `/v1` write checks `If-Match` against what it reads and then writes): the calls
//! share its transaction, and everything commits together or not at all.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::error::{ServiceError, StoreError};
use crate::ids::AccountId;
use crate::journal::NewJournalEntry;
use crate::service::Services;
use crate::store::{AccountOp, AccountWrite, Applied};

/// A write lock on one account held by [`Services::atomically`], shared by the service calls
/// made inside it.
pub(crate) struct Lease {
    account: AccountId,
    state: Mutex<LeaseState>,
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
    Own(Box<dyn AccountWrite>),
    Shared(Arc<Lease>),
}

/// A change of one account in progress (see the module documentation).
pub(crate) struct Writing<'a> {
    services: &'a Services,
    account: AccountId,
    held: Held,
    entries: Vec<NewJournalEntry>,
}

fn begin_error(id: &AccountId, e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound(_) => ServiceError::NotFound(format!("no account {id}")),
        other => other.into(),
    }
}

fn gone() -> ServiceError {
    ServiceError::Internal("the account's write was used after it ended".to_owned())
}

impl Services {
    /// Begins a change of `id`: waits for its write lock (or joins the one held by
    /// [`Services::atomically`]). [`ServiceError::NotFound`] if there is no account.
    pub(crate) async fn begin(&self, id: &AccountId) -> Result<Writing<'_>, ServiceError> {
        let held = match self.lease().filter(|l| &l.account == id) {
            Some(lease) => Held::Shared(lease.clone()),
            None => Held::Own(
                self.store()
                    .begin_account(id)
                    .await
                    .map_err(|e| begin_error(id, e))?,
            ),
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
        let write = self
            .store()
            .begin_account(id)
            .await
            .map_err(|e| begin_error(id, e))?;
        let lease = Arc::new(Lease {
            account: id.clone(),
            state: Mutex::new(LeaseState {
                write: Some(write),
                entries: Vec::new(),
            }),
        });
        Ok(Holding {
            services: self.with_lease(lease.clone()),
            lease,
        })
    }

    /// Runs `f` under [`Services::hold`]: commits when `f` returns `Ok`, rolls back when it
    /// returns an error.
    pub async fn atomically<T>(
        &self,
        id: &AccountId,
        f: impl AsyncFnOnce(&Services) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let held = self.hold(id).await?;
        let out = f(&held).await?;
        held.commit().await?;
        Ok(out)
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
            Held::Own(write) => write.apply(&op).await,
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
        self.entries
            .push(self.services.journal_entry(&self.account, resource, old, new));
    }

    /// Commits the changes with their journal entries (inside [`Services::atomically`]: hands
    /// them to it, which commits them when it ends).
    pub(crate) async fn commit(self) -> Result<(), ServiceError> {
        match self.held {
            Held::Own(write) => Ok(write.commit(&self.entries).await?),
            Held::Shared(lease) => {
                lease.state.lock().await.entries.extend(self.entries);
                Ok(())
            }
        }
    }
}
