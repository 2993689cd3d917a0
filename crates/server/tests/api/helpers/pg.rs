//! A throw-away PostgreSQL database for one test: the conformance suite's
//! [`TempDatabase`](sip_settings_store_tests::pg::TempDatabase) (same server, same naming,
//! same skip-or-fail rule), which drops its database when it goes out of scope — when the
//! test panics too.

pub(crate) use sip_settings_store_tests::pg::TempDatabase as TestDatabase;
