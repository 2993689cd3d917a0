//! Behaviour tests: the real server over real mutual TLS on loopback, certificates from the
//! project's own CA made at test time, a fresh SQLite data directory per test, and the real
//! `sip-settings`, `curl` and `openssl` binaries where a user would use them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: a failed unwrap is a failed test
mod account;
mod admin;
mod atomic;
mod auth;
mod billing;
mod blink_history;
mod blink_replay;
mod blink_web;
mod chat_journal;
mod cli;
mod connections;
mod crash;
mod digest;
mod forwarding_rules;
mod helpers;
mod journal;
mod kamailio;
mod lifecycle;
mod operator_cli;
mod ops;
mod pg_scale_out;
mod pg_tls;
mod postgres;
mod ratelimit;
mod refusals;
mod registrations;
mod resources;
mod seed_curl;
mod settings;
mod sip_door;
mod sipp;
mod throttle;
mod tools;
mod vouchers;
mod web;
