//! Onboarding a channel: the admin asks for the broadcaster's link, the broadcaster follows it
//! (the simulated Twitch consents and redirects back), the callback records `channel:bot`, and
//! the bot then sends there with the app token (the Chat Bot badge). The bot account's own
//! authorisation the same way (its refresh token kept in the store). And the abuse cases:
//! forged, missing, replayed or expired `state`, a refusal, the wrong account, hostile logins,
//! no admin token.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::config::EventSubTransport;

const DEADLINE: Duration = Duration::from_secs(20);

async fn onboarding_service(
    sim: &firehose_sim::SimHandle,
    channels: &[String],
) -> firehose::cli::Server {
    let port = free_port();
    let mut config = eventsub_config(sim, channels, EventSubTransport::Conduit);
    config.http.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    config.twitch.auth.redirect_url = format!("http://127.0.0.1:{port}/oauth/callback");
    service(config, ServiceOptions::default()).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Asks for a link (as the admin), follows it to Twitch's consent page; the callback URL
/// Twitch sends the browser back to.
async fn consent(service: &firehose::cli::Server, path: &str) -> String {
    let link: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}{path}", service.http_addr()))
        .send_as_admin()
        .await
        .json()
        .await
        .expect("a link");
    let url = link["url"].as_str().expect("url").to_string();
    let at_twitch = no_redirects()
        .get(&url)
        .send()
        .await
        .expect("the consent page");
    assert!(
        at_twitch.status().is_redirection(),
        "{}",
        at_twitch.status()
    );
    at_twitch
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a redirect back")
        .to_string()
}

async fn get(url: &str) -> (u16, String) {
    let response = no_redirects().get(url).send().await.expect("sent");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcaster_authorises_channel_bot_and_the_bot_gets_the_badge() {
    let sim = sim(1, |c| c.limits.bot_is_mod = true).await;
    let channels = sim_channels(1);
    let service = onboarding_service(&sim, &channels).await;
    let list = || async {
        let body: serde_json::Value =
            reqwest::get(format!("http://{}/v1/channels", service.http_addr()))
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
        body[0]["authorization"].clone()
    };
    assert_eq!(list().await["channel_bot"], false);
    // Before: replies go with the bot's user token.
    let id = ping(&sim, &channels[0], "before").await;
    wait_until("answered", DEADLINE, || sim.replies_to(&id) == 1).await;
    assert_eq!(sim.api().chat_stats().sent_with_app_token, 0);
    sim.api().authorize_as(&channels[0]);
    let back = consent(&service, &format!("/v1/channels/{}/authorize", channels[0])).await;
    let (status, text) = get(&back).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("authorised the bot"), "{text}");
    assert!(sim.api().has_channel_bot(&channels[0]));
    let authorization = list().await;
    assert_eq!(authorization["channel_bot"], true, "{authorization}");
    assert_eq!(authorization["missing"], serde_json::json!([]));
    let id = ping(&sim, &channels[0], "after").await;
    wait_until("answered with the app token", DEADLINE, || {
        sim.replies_to(&id) == 1
    })
    .await;
    assert_eq!(sim.api().chat_stats().sent_with_app_token, 1);
    // The same callback again (a replayed state): refused.
    let (status, text) = get(&back).await;
    assert_eq!(status, 400, "{text}");
    let text = service.core().metrics.render();
    assert_eq!(
        metric_value(
            &text,
            "firehose_twitch_authorizations_total{token=\"channel\",outcome=\"granted\"}"
        ),
        1.0
    );
    // The grant is in the store.
    let store = service.core().store.store().clone();
    let id = service
        .core()
        .auth
        .as_ref()
        .and_then(|a| a.directory.id(&channels[0]))
        .expect("id");
    assert_eq!(
        store.get_state("twitch_grants", &id).await.expect("read"),
        Some("channel:bot".to_string())
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_missing_and_wrong_authorisations_are_refused() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let service = onboarding_service(&sim, &channels).await;
    let base = format!("http://{}", service.http_addr());
    // No state, a forged state.
    for query in [
        "code=abc",
        "code=abc&state=",
        "code=abc&state=0123456789abcdef",
        "state=%3Cscript%3E",
    ] {
        let (status, text) = get(&format!("{base}/oauth/callback?{query}")).await;
        assert_eq!(status, 400, "{query}: {text}");
        assert!(!text.contains("<script>"), "nothing echoed: {text}");
    }
    // The broadcaster refuses.
    sim.api().authorize_as(&channels[0]);
    sim.api().refuse_next_authorization();
    let back = consent(&service, &format!("/v1/channels/{}/authorize", channels[0])).await;
    let (status, text) = get(&back).await;
    assert_eq!(status, 400);
    assert!(text.contains("did not authorise"), "{text}");
    // Someone else authorises with the broadcaster's link.
    sim.api().authorize_as("mallory");
    let back = consent(&service, &format!("/v1/channels/{}/authorize", channels[0])).await;
    let (status, text) = get(&back).await;
    assert_eq!(status, 400);
    assert!(text.contains("authorised as `mallory`"), "{text}");
    assert!(
        !sim.api().has_channel_bot(&channels[0])
            || service.core().auth.as_ref().is_some_and(|a| {
                a.directory
                    .id(&channels[0])
                    .is_some_and(|id| !a.onboarding.has_channel_bot(&id))
            })
    );
    // Hostile logins, and no admin token.
    for login in [
        "%2E%2E",
        "UPPER",
        "a%3Bb",
        "abcdefghijklmnopqrstuvwxyz",
        "%20",
        "x%0d%0aInjected:%201",
    ] {
        let response = reqwest::Client::new()
            .get(format!("{base}/v1/channels/{login}/authorize"))
            .send_as_admin()
            .await;
        // 400, or 404 where the client normalised the path away (`..`): never a link.
        assert!(
            matches!(response.status().as_u16(), 400 | 404),
            "{login}: {}",
            response.status()
        );
    }
    let response = reqwest::get(format!("{base}/v1/channels/{}/authorize", channels[0]))
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let text = service.core().metrics.render();
    assert!(
        metric_value(
            &text,
            "firehose_twitch_authorizations_total{token=\"any\",outcome=\"bad_state\"}"
        ) >= 4.0
    );
    assert_eq!(
        metric_value(
            &text,
            "firehose_twitch_authorizations_total{token=\"any\",outcome=\"denied\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "firehose_twitch_authorizations_total{token=\"any\",outcome=\"wrong_user\"}"
        ),
        1.0
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_account_authorises_the_application() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let service = onboarding_service(&sim, &channels).await;
    let bot = service.core().config.twitch.login.clone();
    let refreshed = sim.api().oauth_stats().codes_exchanged;
    sim.api().authorize_as(&bot);
    let back = consent(&service, "/v1/bot/authorize").await;
    assert!(
        back.contains("scope=user%3Aread%3Achat") || back.contains("user:read:chat"),
        "{back}"
    );
    // With Helix moderation on, the raid defence's scopes are asked for too.
    assert!(service.core().config.helix_enabled());
    for scope in [
        "moderator:manage:shield_mode",
        "moderator:manage:chat_settings",
    ] {
        assert!(
            back.contains(scope) || back.contains(&scope.replace(':', "%3A")),
            "{scope} not asked for: {back}"
        );
    }
    let (status, text) = get(&back).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sim.api().oauth_stats().codes_exchanged, refreshed + 1);
    let store = service.core().store.store().clone();
    wait_until_async("the new refresh token is stored", DEADLINE, || {
        let store = store.clone();
        async move {
            store
                .get_state("twitch_tokens", "user_refresh")
                .await
                .ok()
                .flatten()
                .is_some()
        }
    })
    .await;
    let id = ping(&sim, &channels[0], "viewer").await;
    wait_until("still answered", DEADLINE, || sim.replies_to(&id) == 1).await;
    service.shutdown().await;
    sim.shutdown().await;
}
