//! Tokens that live for months: the app token (client credentials) and the bot's user token
//! (refresh token) renewed before they expire and after a 401, with nothing lost and no
//! reconnect; revoked tokens and missing scopes named in /readyz; the newest refresh token
//! kept in the store across a restart. All against the simulator's OAuth service and Helix.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::{EventSubTransport, Ingest, SendVia};
use firehose_sim::api::TokenKind;

const DEADLINE: Duration = Duration::from_secs(20);

fn metric(service: &firehose::cli::Server, name: &str) -> f64 {
    metric_value(&service.core().metrics.render(), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_app_tokens_expire_mid_run_and_nothing_is_lost() {
    let sim = sim(2, |_| {}).await;
    sim.api()
        .set_token_life(Duration::from_millis(1_500), Duration::from_millis(1_500));
    let channels = sim_channels(2);
    // The first channel authorised channel:bot (app token, Chat Bot badge); the second did
    // not (the bot's user token).
    sim.api().set_channel_bot(&channels[0], true);
    let config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    let service = service(config, ServiceOptions::default()).await;
    let auth = service.core().auth.clone().expect("auth");
    let granted = auth.directory.id(&channels[0]).expect("id known");
    auth.onboarding.record_grant(&granted, "channel:bot");
    let before = sim.api().oauth_stats();
    let mut ids = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(6);
    let mut round = 0;
    while std::time::Instant::now() < until {
        for channel in &channels {
            ids.push(ping(&sim, channel, &format!("viewer{round}")).await);
        }
        round += 1;
        if round == 20 {
            // Tokens invalid at once (revoked by Twitch mid-run, say): the next calls get a
            // 401, the token is renewed and the call made again.
            sim.api().expire_tokens();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("every ping answered", DEADLINE, || {
        ids.iter().all(|id| sim.replies_to(id) >= 1)
    })
    .await;
    for id in &ids {
        assert_eq!(sim.replies_to(id), 1, "{id} answered once");
    }
    let after = sim.api().oauth_stats();
    assert!(
        after.app_tokens_issued - before.app_tokens_issued >= 3,
        "{after:?}"
    );
    assert!(
        after.user_tokens_refreshed - before.user_tokens_refreshed >= 3,
        "{after:?}"
    );
    assert!(
        after.helix_unauthorized > 0,
        "the abrupt expiry was seen as 401s: {after:?}"
    );
    let chat = sim.api().chat_stats();
    assert!(
        chat.sent_with_app_token > 0 && chat.sent_with_user_token > 0,
        "{chat:?}"
    );
    assert_eq!(
        metric(&service, "firehose_helix_chat_failed_total"),
        0.0,
        "no send was lost to a stale token"
    );
    assert_eq!(
        metric(&service, "firehose_eventsub_reconnects_total"),
        0.0,
        "renewals drop no connection"
    );
    assert!(
        metric(
            &service,
            "firehose_twitch_token_renewals_total{token=\"user\",outcome=\"ok\"}"
        ) >= 3.0
    );
    assert!(service.core().readiness().ready);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_user_token_does_not_drop_the_irc_connection() {
    let sim = sim(1, |_| {}).await;
    sim.api()
        .set_token_life(Duration::from_secs(3600), Duration::from_millis(800));
    let channels = sim_channels(1);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.twitch.ingest = Ingest::Irc;
    config.twitch.send_via = SendVia::Irc;
    let service = service(config, ServiceOptions::default()).await;
    let start = sim.api().oauth_stats().user_tokens_refreshed;
    wait_until("several renewals", DEADLINE, || {
        sim.api().oauth_stats().user_tokens_refreshed >= start + 4
    })
    .await;
    let id = ping(&sim, &channels[0], "viewer").await;
    wait_until("answered over IRC", DEADLINE, || sim.replies_to(&id) == 1).await;
    assert_eq!(
        service.core().metrics.twitch_reconnects.get(),
        0,
        "the chat connection stayed"
    );
    assert_eq!(sim.stats().connections, 1);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_and_missing_scopes_are_named_in_readyz() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.twitch.auth.validate_interval_ms = 200;
    let bot = config.twitch.login.clone();
    let service = service(config, ServiceOptions::default()).await;
    // The app token revoked: it is simply obtained again (client credentials).
    let app_before = metric(
        &service,
        "firehose_twitch_token_renewals_total{token=\"app\",outcome=\"ok\"}",
    );
    sim.api().revoke_tokens(TokenKind::App);
    wait_until("a new app token", DEADLINE, || {
        metric(
            &service,
            "firehose_twitch_token_renewals_total{token=\"app\",outcome=\"ok\"}",
        ) > app_before
    })
    .await;
    assert!(
        service.core().readiness().ready,
        "{:?}",
        service.core().readiness().reasons
    );
    // The bot loses a scope: the next validation names it.
    sim.api().remove_scope(&bot, "user:write:chat");
    wait_until("the missing scope is named", DEADLINE, || {
        service.core().readiness().reasons.iter().any(|r| {
            r.contains("twitch user token") && r.contains("missing scopes user:write:chat")
        })
    })
    .await;
    assert_eq!(
        metric(
            &service,
            "firehose_twitch_token_problems_total{token=\"user\",problem=\"missing_scopes\"}"
        ),
        1.0,
        "counted once"
    );
    // The user revokes the app (tokens and refresh token gone): named, counted.
    sim.api().revoke_tokens(TokenKind::User);
    wait_until("the revoked token is named", DEADLINE, || {
        service
            .core()
            .readiness()
            .reasons
            .iter()
            .any(|r| r.contains("twitch user token: revoked or refused"))
    })
    .await;
    assert_eq!(
        metric(
            &service,
            "firehose_twitch_token_problems_total{token=\"user\",problem=\"revoked\"}"
        ),
        1.0
    );
    let url = format!("http://{}/readyz", service.http_addr());
    let answer = reqwest::get(&url).await.expect("readyz");
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.expect("body");
    assert!(body.contains("twitch user token"), "{body}");
    // No token in /readyz, /metrics or /v1.
    let metrics = service.core().metrics.render();
    let channels_json = reqwest::get(format!("http://{}/v1/channels", service.http_addr()))
        .await
        .expect("v1")
        .text()
        .await
        .expect("text");
    for shown in [&body, &metrics, &channels_json] {
        assert!(!shown.contains("usr0") && !shown.contains("app0") && !shown.contains("ref0"));
        assert!(!shown.contains(firehose_sim::api::CLIENT_SECRET));
    }
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_refresh_token_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(1, |_| {}).await;
    sim.api()
        .set_token_life(Duration::from_secs(3600), Duration::from_millis(500));
    let channels = sim_channels(1);
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Conduit);
    config.store = embedded_store_config(dir.path());
    let service = service(config.clone(), ServiceOptions::default()).await;
    let start = sim.api().oauth_stats().user_tokens_refreshed;
    wait_until(
        "renewed twice (the configured refresh token is used up)",
        DEADLINE,
        || sim.api().oauth_stats().user_tokens_refreshed >= start + 2,
    )
    .await;
    service.shutdown().await;
    // The same configuration again: its refresh token was rotated out long ago.
    let refused_before = sim.api().oauth_stats().refresh_refused;
    let service = common::service(config, ServiceOptions::default()).await;
    let auth = service.core().auth.clone().expect("auth");
    let user = auth.user.clone().expect("a user token");
    assert!(user.has_token() && user.problem().is_none());
    assert_eq!(
        sim.api().oauth_stats().refresh_refused,
        refused_before,
        "the stored refresh token was used, not the stale configured one"
    );
    let id = ping(&sim, &channels[0], "again").await;
    wait_until("answered after the restart", DEADLINE, || {
        sim.replies_to(&id) == 1
    })
    .await;
    service.shutdown().await;
    sim.shutdown().await;
}
