//! The web console over HTTP (no browser: `tests/console_browser.rs` drives Chromium): login
//! with the admin token and with Twitch (the simulator's OAuth and "Get Moderated Channels"),
//! sessions in HTTP-only same-site cookies, CSRF on every change, the right to a channel, the
//! audit log of rule edits (on the embedded store and on the suite's Cassandra node), "try
//! it", and the abuse cases: no session, a forged form, another site's form, another browser's
//! login callback, hostile rule text shown back.

mod common;

use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::Secret;

const DEADLINE: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The `name=value` of a `Set-Cookie` named `name` in a response, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A logged-in console user: the session cookie and the page's CSRF token.
struct Browser {
    base: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn login(service: &Server, token: &str) -> Browser {
        let base = format!("http://{}", service.http_addr());
        let response = client()
            .post(format!("{base}/ui/login"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 303, "a right token logs in");
        assert_eq!(location(&response), "/ui/channels");
        let set = set_cookie(&response, "fh_session").expect("a session cookie");
        let cookie = cookie_pair(&set);
        Browser::with_cookie(base, cookie).await
    }

    async fn with_cookie(base: String, cookie: String) -> Browser {
        let mut browser = Browser {
            base,
            cookie,
            csrf: String::new(),
        };
        let (status, page) = browser.get("/ui/channels").await;
        assert_eq!(status, 200, "{page}");
        browser.csrf = csrf_of(&page);
        browser
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = client()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// Adds a command through the channel page's quick form (`rules`: its POST path).
    async fn add_command(
        &self,
        rules: &str,
        name: &str,
        response: &str,
        level: &str,
    ) -> reqwest::Response {
        let form = [
            ("op", "command"),
            ("form", "new-command"),
            ("name", name),
            ("response", response),
            ("level", level),
        ];
        self.post(rules, &form).await
    }

    /// Saves an item as TOML through its edit form (or the "add any item" form for a new one).
    async fn save_item(
        &self,
        rules: &str,
        kind: &str,
        name: &str,
        toml: &str,
    ) -> reqwest::Response {
        let form_id = format!("item:{kind}:{name}");
        let form = [
            ("op", "item"),
            ("form", form_id.as_str()),
            ("kind", kind),
            ("name", name),
            ("item", toml),
        ];
        self.post(rules, &form).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        client()
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .form(&fields)
            .send()
            .await
            .expect("post")
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    page[start..start + 64].to_string()
}

async fn console_service(channels: &[String]) -> (firehose_sim::SimHandle, Server) {
    let sim = sim(channels.len(), |_| {}).await;
    let config = config_for(sim.local_addr(), channels);
    let service = service(config, ServiceOptions::default()).await;
    (sim, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_send_to_the_login_and_changes_are_refused() {
    let channels = sim_channels(1);
    let (_sim, service) = console_service(&channels).await;
    let base = format!("http://{}", service.http_addr());
    let (status, login) = {
        let r = client()
            .get(format!("{base}/ui"))
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    assert_eq!(status, 200);
    assert!(
        login.contains("<label for=\"token\">Admin token</label>"),
        "{login}"
    );
    for page in [
        "/ui/channels".to_string(),
        format!("/ui/channels/twitch/{}", channels[0]),
        format!("/ui/channels/twitch/{}/moderation", channels[0]),
    ] {
        let r = client()
            .get(format!("{base}{page}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 303, "{page}");
        assert_eq!(location(&r), "/ui", "{page}");
    }
    let r = client()
        .get(format!("{base}/ui/channels/events"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    for change in [
        "/ui/channels".to_string(),
        format!("/ui/channels/twitch/{}/rules", channels[0]),
        format!("/ui/channels/twitch/{}/part", channels[0]),
        "/ui/logout".to_string(),
    ] {
        let r = client()
            .post(format!("{base}{change}"))
            .form(&[("csrf", "x"), ("login", "somechannel")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401, "{change}");
    }
    // A forged session cookie is no session.
    let r = client()
        .get(format!("{base}/ui/channels"))
        .header("cookie", format!("fh_session={}", "ab".repeat(32)))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    // A wrong token: 401, the page says so, no cookie.
    let r = client()
        .post(format!("{base}/ui/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "fh_session").is_none());
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("That is not the admin token"));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert_eq!(
        metric_value(
            &metrics,
            "firehose_console_logins_total{method=\"token\",outcome=\"wrong_token\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_same_site_and_changes_need_its_csrf_token() {
    let channels = sim_channels(1);
    let (_sim, service) = console_service(&channels).await;
    let base = format!("http://{}", service.http_addr());
    let r = client()
        .post(format!("{base}/ui/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("login");
    let set = set_cookie(&r, "fh_session").expect("cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/ui", "Max-Age="] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    assert!(!location(&r).contains(ADMIN_TOKEN), "no token in a URL");
    let browser = Browser::with_cookie(base.clone(), cookie_pair(&set)).await;
    let (_, page) = browser.get("/ui/channels").await;
    assert!(!page.contains(ADMIN_TOKEN), "the token is never in a page");
    let headers = client()
        .get(format!("{base}/ui/channels"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("get");
    let csp = headers.headers()["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers.headers()["cache-control"], "no-store");

    let join = |csrf: &str, origin: Option<&str>| {
        let mut request = client()
            .post(format!("{base}/ui/channels"))
            .header("cookie", &browser.cookie)
            .form(&[("csrf", csrf), ("login", "newchannel")]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        join("", None).await.expect("post").status(),
        403,
        "no token"
    );
    assert_eq!(
        join(&"0".repeat(64), None).await.expect("post").status(),
        403,
        "wrong token"
    );
    assert_eq!(
        join(&browser.csrf, Some("http://evil.example"))
            .await
            .expect("post")
            .status(),
        403,
        "another site's form, even with the token"
    );
    assert!(service
        .core()
        .registry
        .get(&firehose::channel::ChannelKey::twitch("newchannel"))
        .is_none());
    let done = join(&browser.csrf, Some(&base)).await.expect("post");
    assert_eq!(done.status(), 303);
    wait_until("the channel is supervised", DEADLINE, || {
        service
            .core()
            .registry
            .get(&firehose::channel::ChannelKey::twitch("newchannel"))
            .is_some()
    })
    .await;
    let (_, page) = browser.get("/ui/channels").await;
    assert!(
        page.contains("Joined newchannel."),
        "the result is shown once"
    );
    let (_, again) = browser.get("/ui/channels").await;
    assert!(!again.contains("Joined newchannel."));

    // Logout ends the session: the cookie no longer opens a page.
    let out = browser.post("/ui/logout", &[]).await;
    assert_eq!(out.status(), 303);
    let (status, _) = browser.get("/ui/channels").await;
    assert_eq!(status, 303);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert_eq!(
        metric_value(&metrics, "firehose_console_csrf_refused_total"),
        3.0
    );
}

/// A moderator logs in through the simulated Twitch: Twitch names them and their moderated
/// channels; they see and edit those only, and their edits are audited under their name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_logged_in_with_twitch_manages_only_the_channels_they_moderate() {
    let channels = sim_channels(3);
    let sim = sim(3, |_| {}).await;
    let port = free_port();
    let mut config = eventsub_config(
        &sim,
        &channels,
        firehose::config::EventSubTransport::Conduit,
    );
    config.http.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    config.console.twitch_redirect_url =
        format!("http://127.0.0.1:{port}/ui/login/twitch/callback");
    let service = service(config, ServiceOptions::default()).await;
    let base = format!("http://127.0.0.1:{port}");
    sim.api().add_moderator(&channels[1], "helpfulmod");

    // Someone who owns or moderates none of the channels gets no session.
    sim.api().authorize_as("stranger");
    let (status, page, _) = twitch_login(&base, true).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("stranger owns or moderates no channel"),
        "{page}"
    );

    // A callback in a browser that did not start the login (no state cookie): refused.
    sim.api().authorize_as("helpfulmod");
    let (status, page, _) = twitch_login(&base, false).await;
    assert_eq!(status, 400, "{page}");

    let revoked = sim.api().oauth_stats().revoked;
    let (status, _, cookie) = twitch_login(&base, true).await;
    assert_eq!(status, 303);
    assert_eq!(
        sim.api().oauth_stats().revoked,
        revoked + 1,
        "the moderator's token is revoked once the login has what it needs"
    );
    let browser = Browser::with_cookie(base.clone(), cookie.expect("a session")).await;
    let (_, list) = browser.get("/ui/channels").await;
    assert!(
        list.contains(&format!("data-channel=\"twitch:{}\"", channels[1])),
        "{list}"
    );
    assert!(!list.contains(&format!("data-channel=\"twitch:{}\"", channels[0])));
    assert!(!list.contains(&format!("data-channel=\"twitch:{}\"", channels[2])));
    assert!(
        !list.contains("Join a Twitch channel"),
        "joining is for operators"
    );
    let (status, _) = browser
        .get(&format!("/ui/channels/twitch/{}", channels[0]))
        .await;
    assert_eq!(status, 403);
    let r = browser
        .post(
            &format!("/ui/channels/twitch/{}/rules", channels[0]),
            &[("op", "command"), ("name", "!x"), ("response", "y")],
        )
        .await;
    assert_eq!(r.status(), 403, "no edits in another channel");
    let r = browser
        .post(&format!("/ui/channels/twitch/{}/part", channels[1]), &[])
        .await;
    assert_eq!(r.status(), 403, "parting is for operators");

    let r = browser
        .add_command(
            &format!("/ui/channels/twitch/{}/rules", channels[1]),
            "!rules",
            "be nice",
            "everyone",
        )
        .await;
    assert_eq!(r.status(), 303);
    let rules = service
        .core()
        .rules
        .get(&firehose::channel::ChannelKey::twitch(&channels[1]));
    assert!(rules
        .commands
        .iter()
        .any(|c| c.name == "!rules" && c.response == "be nice"));
    let (_, page) = browser
        .get(&format!("/ui/channels/twitch/{}", channels[1]))
        .await;
    assert!(
        page.contains("twitch:helpfulmod"),
        "the audit log names the moderator"
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert_eq!(
        metric_value(
            &metrics,
            "firehose_console_logins_total{method=\"twitch\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "firehose_console_logins_total{method=\"twitch\",outcome=\"bad_state\"}"
        ),
        1.0
    );
}

/// Starts a Twitch login, lets the simulated Twitch consent, and follows the callback (with
/// the login's state cookie, or without it: another browser). Status, page, session cookie.
async fn twitch_login(base: &str, with_state_cookie: bool) -> (u16, String, Option<String>) {
    let start = client()
        .get(format!("{base}/ui/login/twitch"))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 303);
    let state_cookie = set_cookie(&start, "fh_login").expect("a state cookie");
    assert!(state_cookie.contains("HttpOnly") && state_cookie.contains("Path=/ui/login"));
    let at_twitch = client().get(location(&start)).send().await.expect("twitch");
    assert!(
        at_twitch.status().is_redirection(),
        "{}",
        at_twitch.status()
    );
    let mut callback = client().get(location(&at_twitch));
    if with_state_cookie {
        callback = callback.header("cookie", cookie_pair(&state_cookie));
    }
    let back = callback.send().await.expect("callback");
    let status = back.status().as_u16();
    let cookie = set_cookie(&back, "fh_session").map(|c| cookie_pair(&c));
    (status, back.text().await.unwrap_or_default(), cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_edits_are_validated_audited_and_hostile_text_is_shown_escaped() {
    let channels = sim_channels(1);
    let sim = sim(1, |_| {}).await;
    let mut config = config_for(sim.local_addr(), &channels);
    config.console.audit_entries_per_channel = 3;
    let service = service(config, ServiceOptions::default()).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let page = format!("/ui/channels/twitch/{}", channels[0]);
    let rules = format!("{page}/rules");

    // A bad regex: 400, the regex error with its position next to the pattern field, what
    // was typed kept, nothing changed.
    let r = browser
        .post(
            &rules,
            &[
                ("op", "keyword"),
                ("form", "new-keyword"),
                ("name", "greet"),
                ("regex", "hel(lo"),
                ("response", "hi"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.expect("body");
    let error_at = body
        .find("id=\"new-keyword-regex-error\"")
        .expect("the error is next to the regex field");
    assert!(
        body[error_at..].contains("unclosed group"),
        "{}",
        &body[error_at..error_at + 300]
    );
    assert!(body.contains("aria-describedby=\"new-keyword-regex-error\""));
    assert!(body.contains("value=\"hel(lo\""), "what was typed is kept");
    assert!(service
        .core()
        .rules
        .get(&firehose::channel::ChannelKey::twitch(&channels[0]))
        .keywords
        .is_empty());

    // Hostile text goes in as data and comes back escaped.
    let hostile = "<script>alert(1)</script>\" onmouseover=\"x";
    let r = browser
        .add_command(&rules, "!evil", hostile, "everyone")
        .await;
    assert_eq!(r.status(), 303);
    let (_, shown) = browser.get(&page).await;
    assert!(!shown.contains("<script>alert(1)"), "never raw HTML");
    assert!(shown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // Edit it as TOML, switch shadow on, delete it: each one audited with before and after.
    let r = browser
        .save_item(&rules, "commands", "!evil", "response = \"tamed\"\n")
        .await;
    assert_eq!(r.status(), 303);
    let r = browser
        .post(
            &rules,
            &[("op", "shadow"), ("kind", "commands"), ("name", "!evil")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let key = firehose::channel::ChannelKey::twitch(&channels[0]);
    let command = service
        .core()
        .rules
        .get(&key)
        .commands
        .iter()
        .find(|c| c.name == "!evil")
        .cloned()
        .expect("it");
    assert!(command.shadow && command.response == "tamed");
    // A bad TOML edit: refused next to its text area, with the line and column.
    let r = browser
        .save_item(&rules, "commands", "!evil", "response = \n")
        .await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("not valid TOML") && body.contains("line 1"),
        "{body}"
    );
    // An API edit is audited too.
    let r = client()
        .put(format!(
            "http://{}/v1/channels/{}/commands/!api",
            service.http_addr(),
            channels[0]
        ))
        .json(&serde_json::json!({"response": "from the api"}))
        .send_as_admin()
        .await;
    assert_eq!(r.status(), 201);
    let r = browser
        .post(
            &rules,
            &[("op", "delete"), ("kind", "commands"), ("name", "!evil")],
        )
        .await;
    assert_eq!(r.status(), 303);

    let audit = service
        .core()
        .audit_log(&key, 100)
        .await
        .expect("the audit log");
    assert_eq!(
        audit.len(),
        3,
        "bounded to console.audit_entries_per_channel: {audit:?}"
    );
    assert_eq!(audit[0].name, "!evil");
    assert!(
        audit[0].after.is_none() && audit[0].before.is_some(),
        "a deletion: before, no after"
    );
    assert_eq!(
        (audit[1].who.as_str(), audit[1].via.as_str()),
        ("admin", "api")
    );
    assert_eq!(
        audit[2].after.as_ref().map(|a| a["shadow"].clone()),
        Some(serde_json::json!(true))
    );
    assert_eq!(
        audit[2].before.as_ref().map(|a| a["shadow"].clone()),
        Some(serde_json::json!(false))
    );
    let (_, shown) = browser.get(&page).await;
    assert!(shown.contains("id=\"audit-log\"") && shown.contains("from the api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_runs_the_channels_rules_on_pasted_chat_and_sends_nothing() {
    let channels = sim_channels(1);
    let sim = sim(1, |_| {}).await;
    let config = config_for(sim.local_addr(), &channels);
    let service = service(config, ServiceOptions::default()).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let page = format!("/ui/channels/twitch/{}", channels[0]);
    let r = browser
        .post(
            &format!("{page}/rules"),
            &[
                ("op", "command"),
                ("form", "new-command"),
                ("name", "!so"),
                ("response", "follow $(touser)"),
                ("level", "moderator"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = browser
        .post(
            &format!("{page}/try"),
            &[(
                "lines",
                "viewer: !so someone\nboss [mod]: !so someone\nviewer: <b>hi</b>\n",
            )],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    let table = &body[body.find("id=\"try-actions\"").expect("a table of actions")..];
    let table = &table[..table.find("</table>").expect("its end")];
    assert_eq!(
        table.matches("<tr>").count(),
        2,
        "a header and one action (only the mod may use it): {table}"
    );
    assert!(
        table.contains("try-2") && table.contains("follow someone"),
        "{table}"
    );
    assert!(
        body.contains("viewer: &lt;b&gt;hi&lt;/b&gt;"),
        "the input is shown back escaped"
    );
    assert!(
        !said(&sim, &channels[0], "follow someone"),
        "nothing is sent"
    );
    let r = browser
        .post(&format!("{page}/try"), &[("lines", "Not A Login!: x")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("line 1"));
}

/// The audit log lives in the store: on the suite's Cassandra node, an edit's entry is
/// there for the next process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_kept_in_the_cql_store() {
    let channels = sim_channels(1);
    let sim = sim(1, |_| {}).await;
    let mut config = config_for(sim.local_addr(), &channels);
    config.store = scylla_store_config("console_audit");
    config.secrets.admin_token = Some(Secret::new(ADMIN_TOKEN));
    let service = service(config.clone(), ServiceOptions::default()).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let r = browser
        .add_command(
            &format!("/ui/channels/twitch/{}/rules", channels[0]),
            "!kept",
            "yes",
            "everyone",
        )
        .await;
    assert_eq!(r.status(), 303);
    service.shutdown().await;
    let again = common::service(config, ServiceOptions::default()).await;
    let key = firehose::channel::ChannelKey::twitch(&channels[0]);
    let audit = again.core().audit_log(&key, 10).await.expect("read");
    assert!(
        audit
            .iter()
            .any(|e| e.name == "!kept" && e.who == "admin" && e.via == "console"),
        "{audit:?}"
    );
}

/// Guessing the admin token is throttled: after `MAX_FAILED_LOGINS_PER_MINUTE` wrong tokens in
/// a minute the form answers 429 (the right token too, until the minute passed); sessions that
/// exist are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_admin_token_is_throttled_without_touching_live_sessions() {
    let channels = sim_channels(1);
    let (_sim, service) = console_service(&channels).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let login = |token: &'static str| {
        client()
            .post(format!("http://{}/ui/login", service.http_addr()))
            .form(&[("token", token)])
            .send()
    };
    for _ in 0..firehose::http::console::MAX_FAILED_LOGINS_PER_MINUTE {
        assert_eq!(login("wrong").await.expect("post").status(), 401);
    }
    let throttled = login("wrong").await.expect("post");
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(login(ADMIN_TOKEN).await.expect("post").status(), 429);
    let (status, _) = browser.get("/ui/channels").await;
    assert_eq!(status, 200, "a live session goes on");
}

/// The abuse case of "try it": a one-second timer and raw lines hours apart would write an
/// action per recorded second; the run stops at its bounds and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_stops_at_its_bounds_on_input_made_to_amplify() {
    let channels = sim_channels(1);
    let (_sim, service) = console_service(&channels).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let page = format!("/ui/channels/twitch/{}", channels[0]);
    let r = browser
        .post(
            &format!("{page}/rules"),
            &[
                ("op", "item"),
                ("form", "new-item"),
                ("kind", "timers"),
                ("name", "spam"),
                (
                    "item",
                    "message = \"tick\"\ninterval_s = 1\nmin_lines = 0\n",
                ),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mut lines = String::new();
    for n in 0..2_000u64 {
        let ts = 1_600_000_000_000 + n * 3_599_000;
        lines.push_str(&format!(
            "@badge-info=;badges=;color=;display-name=u;emotes=;first-msg=0;flags=;id=a{n};mod=0;room-id=1;subscriber=0;tmi-sent-ts={ts};turbo=0;user-id=5;user-type= :u!u@u.tmi.twitch.tv PRIVMSG #{} :hi\n",
            channels[0]
        ));
    }
    let started = std::time::Instant::now();
    let r = browser
        .post(&format!("{page}/try"), &[("lines", &lines)])
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    let result = &body[body.find("id=\"try-result\"").expect("a result")..];
    assert!(
        body.contains("stopped at a bound"),
        "the run says it stopped: {}",
        &result[..result.len().min(400)]
    );
    let table = &body[body.find("id=\"try-actions\"").expect("actions")..];
    let table = &table[..table.find("</table>").expect("end")];
    assert!(
        table.matches("<tr>").count() <= 1_001,
        "at most the shown bound"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "bounded work");
}

/// Live views are bounded: a session holds at most `MAX_STREAMS_PER_SESSION` event streams
/// (one more is 429), so one cookie cannot take the listener's connections; and a revive of a
/// channel that has not failed does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_few_live_views_and_revive_touches_only_failed_channels() {
    let channels = sim_channels(1);
    let (_sim, service) = console_service(&channels).await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let mut open = Vec::new();
    for _ in 0..firehose::http::console::channels::MAX_STREAMS_PER_SESSION {
        let stream = client()
            .get(format!("{}/ui/channels/events", browser.base))
            .header("cookie", &browser.cookie)
            .send()
            .await
            .expect("stream");
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        open.push(stream);
    }
    let one_more = client()
        .get(format!("{}/ui/channels/events", browser.base))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(one_more.status(), 429);
    // A stream's first event carries the rows.
    let mut first = open.pop().expect("a stream");
    let chunk = tokio::time::timeout(DEADLINE, first.chunk())
        .await
        .expect("an event in time")
        .expect("read")
        .expect("a chunk");
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains("event: channels") && text.contains(&format!("twitch:{}", channels[0])),
        "{text}"
    );
    drop(first);
    let restarts = channel(&service, &channels[0])
        .counters
        .restarts
        .load(std::sync::atomic::Ordering::Relaxed);
    let r = browser
        .post(&format!("/ui/channels/twitch/{}/revive", channels[0]), &[])
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = browser.get("/ui/channels").await;
    assert!(page.contains("has not failed; nothing to revive"), "{page}");
    assert_eq!(
        channel(&service, &channels[0])
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
        restarts
    );
}

/// Every form control of every console page has a label tied to it (`<label for=id>`) or an
/// `aria-label`, and ids are unique: screen readers name every field, and a refused field's
/// error is tied to it by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_every_page_is_labelled() {
    let channels = sim_channels(1);
    let sim = sim(1, |_| {}).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join(format!("{}.toml", channels[0])),
        include_str!("../config/channels/example.toml"),
    )
    .expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    let service = service(config, ServiceOptions::default()).await;
    let (_, login) = {
        let r = client()
            .get(format!("http://{}/ui", service.http_addr()))
            .send()
            .await
            .expect("get");
        (r.status(), r.text().await.expect("body"))
    };
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let page = format!("/ui/channels/twitch/{}", channels[0]);
    let mut pages = vec![("login".to_string(), login)];
    for path in [
        "/ui/channels".to_string(),
        page.clone(),
        format!("{page}/moderation"),
    ] {
        let (status, body) = browser.get(&path).await;
        assert_eq!(status, 200, "{path}");
        pages.push((path, body));
    }
    let attr = |tag: &str, name: &str| -> Option<String> {
        let marker = format!(" {name}=\"");
        let start = tag.find(&marker)? + marker.len();
        Some(tag[start..start + tag[start..].find('"')?].to_string())
    };
    for (path, body) in &pages {
        let mut ids = std::collections::HashSet::new();
        for (at, _) in body.match_indices(" id=\"") {
            let id = &body[at + 5..at + 5 + body[at + 5..].find('"').expect("end")];
            assert!(ids.insert(id.to_string()), "{path}: id {id} twice");
        }
        let mut controls = 0;
        for tag_name in ["<input", "<select", "<textarea"] {
            for (at, _) in body.match_indices(tag_name) {
                let tag = &body[at..at + body[at..].find('>').expect("tag end")];
                if attr(tag, "type").as_deref() == Some("hidden") {
                    continue;
                }
                controls += 1;
                let labelled = attr(tag, "aria-label").is_some()
                    || attr(tag, "id")
                        .is_some_and(|id| body.contains(&format!("<label for=\"{id}\"")));
                assert!(labelled, "{path}: an unlabelled control: {tag}");
            }
        }
        assert!(controls > 0, "{path} has fields");
        for (at, _) in body.match_indices("<button") {
            let tag = &body[at..at + body[at..].find("</button>").expect("button end")];
            let text = &tag[tag.find('>').expect("end") + 1..];
            assert!(
                !text.trim().is_empty() || tag.contains("aria-label"),
                "{path}: a button without a name"
            );
        }
    }
}

/// With more channels than the table shows, the busiest are listed and a search by name finds
/// any other; the live view follows the same search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_table_shows_the_busiest_and_finds_the_rest_by_name() {
    let n = firehose::http::console::channels::MAX_ROWS + 20;
    let sim = sim(n, |_| {}).await;
    let channels = sim_channels(n);
    let config = config_for(sim.local_addr(), &[]);
    let service = service(config, ServiceOptions::default()).await;
    service.core().join_many(&channels).expect("accepted");
    wait_until("every channel has an actor", DEADLINE, || {
        service.core().registry.len() == n
    })
    .await;
    let browser = Browser::login(&service, ADMIN_TOKEN).await;
    let (_, page) = browser.get("/ui/channels").await;
    assert_eq!(
        page.matches("<tr data-channel=").count(),
        firehose::http::console::channels::MAX_ROWS
    );
    assert!(
        page.contains(&format!("{n} channels match")),
        "the page says there are more"
    );
    let wanted = &channels[n - 1];
    let (_, found) = browser.get(&format!("/ui/channels?q={wanted}")).await;
    assert_eq!(found.matches("<tr data-channel=").count(), 1);
    assert!(found.contains(&format!("data-channel=\"twitch:{wanted}\"")));
    assert!(found.contains(&format!("data-events=\"/ui/channels/events?q={wanted}\"")));
    let mut stream = client()
        .get(format!("{}/ui/channels/events?q={wanted}", browser.base))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("stream");
    let chunk = tokio::time::timeout(DEADLINE, stream.chunk())
        .await
        .expect("in time")
        .expect("read")
        .expect("a chunk");
    let text = String::from_utf8_lossy(&chunk);
    assert_eq!(text.matches("\"id\":").count(), 1, "{text}");
}
