//! Rate limits on the action endpoint: a client over its budget gets `429` with `Retry-After`,
//! other clients are unaffected, and it recovers as time passes.

use chrono::Duration;
use sip_settings_http::ratelimit::{Budget, RateLimits};

use crate::helpers::*;

fn small() -> RateLimits {
    certificate_limits((1.0, 5.0), (0.2, 2.0))
}

#[tokio::test]
async fn a_client_over_its_budget_gets_429_and_recovers() {
    let app = TestApp::spawn_with(|c| c.rate_limits = Some(small())).await;
    for _ in 0..5 {
        assert_eq!(app.action(&app.alice, "action=account").await.0, 200);
    }
    let response = app
        .client(Some(&app.alice))
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 429);
    assert_eq!(body["success"], false);
    // Bob has his own budget.
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);
    // Writes have a budget of their own: two, then 429 with a longer wait.
    assert_eq!(app.action(&app.alice, "action=privacy_on").await.0, 200);
    assert_eq!(app.action(&app.alice, "action=privacy_off").await.0, 200);
    let response = app
        .client(Some(&app.alice))
        .get(format!("{}/settings.phtml?action=privacy_on", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    // Time passes: reads and writes come back, and the refused write changed nothing.
    app.clock.advance(Duration::seconds(5));
    let (status, account) = app.action(&app.alice, "action=account").await;
    assert_eq!(status, 200);
    assert_eq!(account["privacy"], false);
    assert_eq!(app.action(&app.alice, "action=privacy_on").await.0, 200);
}

#[tokio::test]
async fn the_address_budget_holds_across_certificates() {
    let app = TestApp::spawn_with(|c| {
        let mut l = small();
        l.certificate_reads = Budget {
            per_second: 1000.0,
            burst: 1000.0,
        };
        l.address_reads = Budget {
            per_second: 1.0,
            burst: 3.0,
        };
        c.rate_limits = Some(l);
    })
    .await;
    assert_eq!(app.action(&app.alice, "action=account").await.0, 200);
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);
    assert_eq!(app.action(&app.alice, "action=account").await.0, 200);
    assert_eq!(app.action(&app.bob, "action=account").await.0, 429);
    app.clock.advance(Duration::seconds(2));
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);
}
