//! The web console in a real browser: headless Chromium (Debian's `chromium`) driven through
//! WebDriver (`chromedriver`, Debian's `chromium-driver`; `scripts/test.sh` installs both when
//! missing) with `fantoccini`. Refused without the token; logged in, a channel's rate changes
//! live; a command added in the console is answered in the simulator's chat; a bad regex is
//! refused next to its field; a Helix moderation call is found in the moderation log; a
//! moderator logs in with Twitch (cookies across the OAuth redirects) and sees only the channel
//! they moderate.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use firehose::app::ServiceOptions;
use firehose_sim::helix::FakeHelix;

const DEADLINE: Duration = Duration::from_secs(20);
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

const RULES: &str = r#"
[[filters]]
name = "no-scam"
kind = "banned_phrases"
action = { timeout = 600 }
phrases = [{ pattern = "free bitcoin" }]
"#;

/// chromedriver on a free port, killed with the test.
struct Driver {
    _process: tokio::process::Child,
    url: String,
}

async fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver (scripts/test.sh installs them)"
    );
    let port = free_port();
    let process = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < DEADLINE,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        _process: process,
        url,
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // fantoccini's rustls leaves the provider to the process (both ring and aws-lc are built).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Polls `check` until it answers true or the deadline passes (then fails with `what`).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

async fn path_of(c: &Client) -> String {
    c.current_url()
        .await
        .map(|u| u.path().to_string())
        .unwrap_or_default()
}

fn chat_line(channel: &str, id: &str, user: &str, user_id: &str, text: &str) -> String {
    let now = firehose::engine::millis(std::time::SystemTime::now());
    format!(
        "@badge-info=;badges=;color=;display-name={user};emotes=;first-msg=0;flags=;id={id};mod=0;room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id={user_id};user-type= :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_and_a_moderator_use_the_console_in_chromium() {
    let sim = sim(2, |c| c.limits.bot_is_mod = true).await;
    let channels = sim_channels(2);
    let helix = FakeHelix::start();
    sim.api().mount_helix(&helix);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(format!("{}.toml", channels[0])), RULES).expect("rules");
    let port = free_port();
    let mut config = eventsub_config(
        &sim,
        &channels,
        firehose::config::EventSubTransport::Conduit,
    );
    config.twitch.ingest = firehose::config::Ingest::Irc;
    config.twitch.send_via = firehose::config::SendVia::Irc;
    config.engine.rules_dir = dir.path().display().to_string();
    config.http.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    config.console.twitch_redirect_url =
        format!("http://127.0.0.1:{port}/ui/login/twitch/callback");
    let service = service(config, ServiceOptions::default()).await;
    let base = format!("http://127.0.0.1:{port}");
    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path()).await;

    // Without a session the channels page sends to the login; a wrong token is refused.
    c.goto(&format!("{base}/ui/channels")).await.expect("goto");
    assert_eq!(path_of(&c).await, "/ui");
    fill(&c, "#token", "not-the-token").await;
    click(&c, "form[action='/ui/login'] button[type=submit]").await;
    eventually("the refusal is shown", || async {
        text_of(&c, "#token-error")
            .await
            .contains("not the admin token")
    })
    .await;
    let (status, _) = (
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{base}/ui/channels/twitch/{}", channels[0]))
            .send()
            .await
            .expect("get")
            .status(),
        (),
    );
    assert_eq!(status, 303, "still no session");

    // Logged in: the channel's rate changes while chat flows (server-sent events).
    fill(&c, "#token", ADMIN_TOKEN).await;
    click(&c, "form[action='/ui/login'] button[type=submit]").await;
    eventually("the channels page", || async {
        path_of(&c).await == "/ui/channels"
    })
    .await;
    let rate_cell = format!(
        "tr[data-channel='twitch:{}'] [data-field=rate]",
        channels[0]
    );
    assert_eq!(
        text_of(&c, &rate_cell).await,
        "–",
        "no rate before the first refresh"
    );
    let chatter = {
        let sim = sim.clone();
        let channel = channels[0].clone();
        tokio::spawn(async move {
            for n in 0..400 {
                let line = chat_line(
                    &channel,
                    &format!("flow-{n}"),
                    "viewer",
                    "3131",
                    "hello chat",
                );
                sim.inject_raw(&line).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    eventually("the rate shows the flowing chat", || async {
        text_of(&c, &rate_cell)
            .await
            .parse::<f64>()
            .is_ok_and(|r| r > 0.0)
    })
    .await;
    chatter.abort();

    // Add a command; the bot answers it in chat.
    click(
        &c,
        &format!("a[href='/ui/channels/twitch/{}']", channels[0]),
    )
    .await;
    eventually("the channel page", || async {
        path_of(&c).await == format!("/ui/channels/twitch/{}", channels[0])
    })
    .await;
    fill(&c, "#new-command-name", "!hello").await;
    fill(&c, "#new-command-response", "hi from the console").await;
    click(&c, "#new-command button[type=submit]").await;
    eventually("the command is saved", || async {
        text_of(&c, "#flash")
            .await
            .contains("Command !hello saved.")
    })
    .await;
    sim.inject_raw(&chat_line(
        &channels[0],
        "hello-1",
        "viewer",
        "3131",
        "!hello",
    ))
    .await;
    wait_until("the bot answers the new command", DEADLINE, || {
        said(&sim, &channels[0], "hi from the console")
    })
    .await;

    // A bad regex is refused next to its field.
    fill(&c, "#new-keyword-name", "greet").await;
    fill(&c, "#new-keyword-regex", "hel(lo").await;
    fill(&c, "#new-keyword-response", "hey").await;
    click(&c, "#new-keyword button[type=submit]").await;
    eventually("the regex error next to the field", || async {
        text_of(&c, "#new-keyword-regex-error")
            .await
            .contains("unclosed group")
    })
    .await;
    let regex = c
        .find(Locator::Css("#new-keyword-regex"))
        .await
        .expect("field");
    assert_eq!(
        regex.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    assert_eq!(
        regex
            .attr("aria-describedby")
            .await
            .expect("attr")
            .as_deref(),
        Some("new-keyword-regex-error")
    );

    // A scam message is timed out through Helix; the moderation log shows it and its outcome.
    sim.inject_raw(&chat_line(
        &channels[0],
        "scam-1",
        "scammer",
        "4242",
        "get free bitcoin now",
    ))
    .await;
    wait_until("the timeout reached Helix", DEADLINE, || {
        helix.requests().iter().any(|r| {
            r.body
                .as_ref()
                .is_some_and(|b| b["data"]["user_id"] == "4242")
        })
    })
    .await;
    let log = format!("{base}/ui/channels/twitch/{}/moderation", channels[0]);
    c.goto(&log).await.expect("goto");
    fill(&c, "#search-user", "4242").await;
    click(&c, "form[role=search] button[type=submit]").await;
    eventually("the entry in the moderation log", || async {
        text_of(&c, "#moderation-log tbody [data-field=outcome]").await == "ok"
            && text_of(&c, "#moderation-log tbody [data-field=rule]").await == "no-scam"
    })
    .await;
    assert_eq!(
        text_of(&c, "#moderation-log tbody [data-field=action]").await,
        "timeout"
    );

    // A moderator logs in with Twitch in a fresh browser profile: the OAuth redirects carry
    // the cookies, and only the channel they moderate is listed.
    c.close().await.expect("close");
    sim.api().add_moderator(&channels[1], "helpfulmod");
    sim.api().authorize_as("helpfulmod");
    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path()).await;
    c.goto(&format!("{base}/ui")).await.expect("goto");
    click(&c, "#twitch-login").await;
    eventually("the moderator's channels page", || async {
        path_of(&c).await == "/ui/channels"
    })
    .await;
    let rows = c
        .find_all(Locator::Css("#channels tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("data-channel").await.expect("attr").as_deref(),
        Some(format!("twitch:{}", channels[1]).as_str())
    );
    assert!(text_of(&c, "header .who").await.contains("helpfulmod"));
    c.close().await.expect("close");
    drop(service);
}
