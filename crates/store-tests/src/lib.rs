//! The store conformance suite: every [`Store`] operation, its atomicity and concurrency rules,
//! written once against the trait and run against each implementation through
//! [`conformance_suite!`] (see `tests/sqlite.rs` and `tests/postgres.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

pub mod cases;
pub mod pg;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::{Clock, Store, SystemClock};

/// A fresh, empty store for one test, and its clean-up.
#[async_trait]
pub trait Harness: Sized + Send {
    /// A fresh store on the system clock, or `None` when this back end is not available here
    /// (the test then says so and passes without running).
    async fn start() -> Option<Self> {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }
    /// A fresh store that takes the time of its own stamps (an account's `updated_at`, …) from
    /// `clock`; `None` as for [`Harness::start`].
    async fn start_with_clock(clock: Arc<dyn Clock>) -> Option<Self>;
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
    /// The times in the first column of the rows of `sql` (a statement without parameters that
    /// both SQL dialects accept), read from the database directly: for the stamps that the
    /// [`Store`] trait never returns.
    async fn times(&self, sql: &str) -> Vec<DateTime<Utc>>;
    /// Releases what `start` made (drops the database).
    async fn finish(self);
}

/// Generates one `#[tokio::test]` per conformance case for a [`Harness`].
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::conformance_suite!(@cases $harness;
            domains,
            domain_digest_switch,
            accounts_and_credentials,
            account_delete_cascades_and_revokes,
            certificates_and_revocation,
            certificate_names_and_last_use,
            aliases_share_the_address_namespace,
            alias_limit_holds_under_concurrency,
            enum_numbers,
            diversions_change_only_what_is_given,
            concurrent_diversion_writers_lose_nothing,
            forwarding_rules_and_their_seed_view,
            concurrent_seed_changes_keep_the_rules,
            accept_rules_and_dnd_expiry,
            reject_rules,
            voicemail_privacy_phonebook,
            rates_longest_prefix,
            balance_changes_and_history,
            prepaid_reservation_rules,
            prepaid_concurrent_opens_never_overdraw,
            prepaid_close_never_overdraws,
            call_records_are_idempotent,
            calls_listing_and_usage,
            billing_export_import_round_trip,
            vouchers_made_listed_and_disabled,
            voucher_redemption_credits_once,
            concurrent_redemptions_of_a_voucher_credit_once,
            journal_newest_first_with_cursor,
            journal_across_a_domain,
            device_bindings_follow_rfc3261,
            chat_journal_filters_limit_and_own_deletes,
            chat_journal_bounds_drop_oldest_and_account_delete,
            chat_journal_import_keeps_ids,
            account_write_commits_change_and_journal_together,
            changes_of_one_write_land_in_order,
            call_reads_follow_each_write,
            account_writes_of_one_account_run_one_after_another,
            concurrent_account_writes_are_each_read_when_acknowledged,
            call_record_batches_match_one_by_one,
            operations_schema_figures_and_shut_down
        );
    };
    (@cases $harness:ty; $($name:ident),* $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn own_stamps_come_from_the_store_clock() {
            $crate::cases::own_stamps_come_from_the_store_clock::<$harness>().await;
        }

        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = <$harness as $crate::Harness>::start().await else { return };
                $crate::cases::$name($crate::Harness::store(&h)).await;
                $crate::Harness::finish(h).await;
            }
        )*
    };
}
