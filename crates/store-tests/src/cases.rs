//! The conformance cases. Each takes a fresh, empty store and panics on the first difference
//! from the [`Store`] contract.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::calls::{
    CallRecord, CloseOutcome, CloseRequest, Direction, NewCall, OpenOutcome, OpenRequest,
    PrepaidRefusal,
};
use sip_settings_core::cert::{CertRecord, CertRole, Serial};
use sip_settings_core::forwarding::{Document, Forwarding};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::settings::{
    AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail, VoicemailDelivery,
};
use sip_settings_core::sip::{Condition, DiversionTarget, SipUri};
use sip_settings_core::store::{AccountOp, AliasOutcome, Applied, BalanceChange};
use sip_settings_core::{
    AccountId, Credentials, Domain, E164, ManualClock, Password, Store, StoreError,
};

use crate::Harness;

mod accounts;
mod addresses;
mod billing;
mod certificates;
mod chat_journal;
mod devices;
mod journal;
mod settings;
mod vouchers;

pub use accounts::*;
pub use addresses::*;
pub use billing::*;
pub use certificates::*;
pub use chat_journal::*;
pub use devices::*;
pub use journal::*;
pub use settings::*;
pub use vouchers::*;

/// A fixed instant (whole seconds, so every back end keeps it exactly).
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).single().unwrap()
}

fn id(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn money(s: &str) -> Money {
    Money::parse_for("m", s).unwrap()
}

fn uri(s: &str) -> SipUri {
    SipUri::parse_for("u", s).unwrap()
}

fn account(s: &str) -> Account {
    Account {
        id: id(s),
        profile: AccountProfile::default(),
        privacy: false,
        prepaid: false,
        created_at: t0(),
    }
}

fn creds(s: &str) -> Credentials {
    // A fixed, cheap stand-in: the store keeps what it is given, it never derives.
    Credentials {
        ha1_md5: format!("md5-{s}"),
        ha1_sha256: format!("sha-{s}"),
        ha1b: Some(sip_settings_core::Ha1b {
            md5: format!("b-md5-{s}"),
            sha256: format!("b-sha-{s}"),
        }),
        password_hash: format!("$argon2id$stand-in-{s}"),
    }
}

/// Domain example.com with accounts alice and bob (bob prepaid).
async fn seed(store: &Arc<dyn Store>) {
    store
        .add_domain(&Domain::parse("example.com").unwrap(), t0())
        .await
        .unwrap();
    store
        .insert_account(&account("alice@example.com"), &creds("a"), &[])
        .await
        .unwrap();
    let mut bob = account("bob@example.com");
    bob.prepaid = true;
    store.insert_account(&bob, &creds("b"), &[]).await.unwrap();
}

fn cert(serial: &str, who: Option<&str>, role: CertRole) -> CertRecord {
    CertRecord {
        serial: Serial::parse(serial).unwrap(),
        subject: who.unwrap_or("ops").to_owned(),
        role,
        account: who.map(id),
        fingerprint: format!("fp{serial}"),
        not_before: t0(),
        not_after: t0() + Duration::days(365),
        issued_at: t0(),
        revoked_at: None,
        name: None,
        last_used: None,
    }
}

fn rate(prefix: &str, connect: &str, per_minute: &str, inc: u32, min: u32) -> Rate {
    Rate::new(
        prefix,
        &format!("rate {prefix}"),
        money(connect),
        money(per_minute),
        inc,
        min,
    )
    .unwrap()
}

fn call(
    call_id: &str,
    caller: &str,
    callee: &str,
    start: DateTime<Utc>,
    duration: u32,
) -> CallRecord {
    CallRecord {
        call_id: call_id.to_owned(),
        from_tag: "f".to_owned(),
        to_tag: "t".to_owned(),
        caller: uri(caller),
        callee: uri(callee),
        start,
        stop: start + Duration::seconds(i64::from(duration)),
        duration,
        status: 200,
        media: vec!["audio".to_owned()],
        proxy_ip: "192.0.2.1".to_owned(),
        price: None,
    }
}

/// What the store stamps by itself (an account's `updated_at`, an alias's and a number's
/// `created_at`) has its clock's time, never the system's: the service layer's clock, injected,
/// is the only source of "now".
pub async fn own_stamps_come_from_the_store_clock<H: Harness>() {
    // Far from the real now, and whole seconds so that every back end keeps it exactly.
    let start = t0() + Duration::days(1000);
    let clock = Arc::new(ManualClock::new(start));
    let Some(h) = H::start_with_clock(clock.clone()).await else {
        return;
    };
    let store = h.store();
    seed(&store).await;
    let alice = id("alice@example.com");
    let updated = "SELECT updated_at FROM accounts WHERE username = 'alice'";
    // A new account was last updated when it was created.
    assert_eq!(h.times(updated).await, [t0()]);

    let at = |days: i64| start + Duration::days(days) + Duration::seconds(days);
    clock.set(at(1));
    let profile = AccountProfile {
        first_name: "Alice".into(),
        ..AccountProfile::default()
    };
    store.update_account(&alice, &profile, false).await.unwrap();
    assert_eq!(h.times(updated).await, [at(1)], "update_account");

    clock.set(at(2));
    store.set_credentials(&alice, &creds("a2")).await.unwrap();
    assert_eq!(h.times(updated).await, [at(2)], "set_credentials");

    clock.set(at(3));
    store.set_privacy(&alice, true).await.unwrap();
    assert_eq!(h.times(updated).await, [at(3)], "set_privacy");

    clock.set(at(4));
    let al = id("al@example.com");
    assert_eq!(
        store.add_alias(&al, &alice, 20).await.unwrap(),
        AliasOutcome::Added
    );
    assert_eq!(
        h.times("SELECT created_at FROM sip_addresses WHERE username = 'al'")
            .await,
        [at(4)],
        "add_alias"
    );

    clock.set(at(5));
    let number = E164::parse_for("n", "+31201234567").unwrap();
    store.add_enum(&number, &alice).await.unwrap();
    assert_eq!(
        h.times("SELECT created_at FROM enum_numbers").await,
        [at(5)],
        "add_enum"
    );
    h.finish().await;
}
