//! The bot ignores its own messages and the accounts in `engine.ignore_users` (issue 10, item
//! 2), over IRC and over EventSub, against the simulator: their `!ping` gets no answer and is
//! counted in `firehose_messages_ignored_total{platform,reason}`, while another user's `!ping`
//! is answered. (Discord: `tests/discord.rs`.)
//!
//! No answer is proven without waiting for one that may never come: the ignored message's
//! metric moves first (the decision is final: an ignored message is never handled), then a
//! later `!ping` in the same channel is answered, and the ignored one still has no reply.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::EventSubTransport;

const DEADLINE: Duration = Duration::from_secs(20);
/// `config_for`'s bot login.
const BOT: &str = "firehosedemo";

fn ignored(service: &Server, platform: &str, reason: &str) -> f64 {
    metric_value(
        &service.core().metrics.render(),
        &format!("firehose_messages_ignored_total{{platform=\"{platform}\",reason=\"{reason}\"}}"),
    )
}

/// A PRIVMSG with the given login, display name and user id, to inject as it is.
fn privmsg(
    channel: &str,
    login: &str,
    display: &str,
    user_id: &str,
    id: &str,
    text: &str,
) -> String {
    let now = firehose::engine::millis(SystemTime::now());
    format!(
        "@badge-info=;badges=;color=;display-name={display};emotes=;first-msg=0;flags=;id={id};mod=0;room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id={user_id};user-type= :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_irc_the_bots_own_login_and_user_id_get_no_answer_and_are_counted() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let service = service(
        config_for(sim.local_addr(), &channels),
        ServiceOptions::default(),
    )
    .await;
    let status = service.core().twitch.status();
    wait_until("the bot's user id (GLOBALUSERSTATE)", DEADLINE, || {
        status.bot_user_id().is_some()
    })
    .await;
    let bot_id = status.bot_user_id().unwrap_or_default();

    // The bot's login, as another connection of the account (a second instance) would see it.
    let own = ping(&sim, channel, BOT).await;
    wait_until("the own !ping is counted as ignored", DEADLINE, || {
        ignored(&service, "twitch", "own") == 1.0
    })
    .await;
    // The same account under another login (renamed): its user id is what matches.
    assert_eq!(
        sim.inject_raw(&privmsg(
            channel,
            "renamedbot",
            "RenamedBot",
            &bot_id,
            "own-2",
            "!ping"
        ))
        .await,
        1
    );
    wait_until(
        "the renamed account's !ping is ignored too",
        DEADLINE,
        || ignored(&service, "twitch", "own") == 2.0,
    )
    .await;

    let viewer = ping(&sim, channel, "viewer").await;
    wait_until("the viewer's !ping is answered", DEADLINE, || {
        sim.replies_to(&viewer) == 1
    })
    .await;
    assert_eq!(sim.replies_to(&own), 0, "the bot does not answer itself");
    assert_eq!(sim.replies_to("own-2"), 0, "nor itself under another login");
    assert!(
        !sim.received()
            .iter()
            .any(|m| m.text.contains("@renamedbot") || m.text.contains("@RenamedBot")),
        "nothing said to the renamed account"
    );
    // The bot's own messages are its output coming back, not chat input: not received.
    assert_eq!(received(&service, channel), 1, "only the viewer's message");
    wait_until("the viewer's message is processed", DEADLINE, || {
        processed(&service, channel) == 1
    })
    .await;
    assert_eq!(ignored(&service, "twitch", "ignore_list"), 0.0);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_irc_ignore_listed_logins_and_ids_get_no_answer_and_count_as_processed() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let mut config = config_for(sim.local_addr(), &channels);
    // Listed in another case than Twitch's lower-case login; and one account by its user id.
    config.engine.ignore_users = vec!["OtherBot".into(), "4242".into()];
    let service = service(config, ServiceOptions::default()).await;

    let other = ping(&sim, channel, "otherbot").await;
    // Twitch's login is lower case, its display name is not: a differently-cased login in
    // the prefix (as a non-conforming server might send) is the same account.
    assert_eq!(
        sim.inject_raw(&privmsg(
            channel, "OTHERBOT", "OtherBot", "77", "other-2", "!ping"
        ))
        .await,
        1
    );
    assert_eq!(
        sim.inject_raw(&privmsg(
            channel, "newname", "NewName", "4242", "by-id", "!ping"
        ))
        .await,
        1
    );
    wait_until("the three ignored !pings are counted", DEADLINE, || {
        ignored(&service, "twitch", "ignore_list") == 3.0
    })
    .await;
    let viewer = ping(&sim, channel, "viewer").await;
    wait_until("the viewer's !ping is answered", DEADLINE, || {
        sim.replies_to(&viewer) == 1
    })
    .await;
    for id in [other.as_str(), "other-2", "by-id"] {
        assert_eq!(sim.replies_to(id), 0, "{id} is from an ignored account");
    }
    // Ignored messages were handled (by ignoring them): sent = processed + shed holds.
    assert_eq!(received(&service, channel), 4);
    wait_until("all four messages processed", DEADLINE, || {
        processed(&service, channel) == 4
    })
    .await;
    assert_eq!(shed(&service, channel), 0);
    assert_eq!(ignored(&service, "twitch", "own"), 0.0);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_eventsub_the_bots_own_login_and_ignore_listed_users_get_no_answer() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let mut config = eventsub_config(&sim, &channels, EventSubTransport::Websocket);
    config.engine.ignore_users = vec!["otherbot".into()];
    let service = service(config, ServiceOptions::default()).await;

    let own = ping(&sim, channel, BOT).await;
    let other = ping(&sim, channel, "otherbot").await;
    wait_until("both ignored !pings are counted", DEADLINE, || {
        ignored(&service, "twitch", "own") == 1.0
            && ignored(&service, "twitch", "ignore_list") == 1.0
    })
    .await;
    let viewer = ping(&sim, channel, "viewer").await;
    wait_until("the viewer's !ping is answered", DEADLINE, || {
        sim.replies_to(&viewer) == 1
    })
    .await;
    assert_eq!(sim.replies_to(&own), 0, "the bot does not answer itself");
    assert_eq!(sim.replies_to(&other), 0, "nor an ignored bot");
    // Over EventSub the bot's reply comes back too: it is its own message again.
    wait_until("the bot's reply coming back is ignored", DEADLINE, || {
        ignored(&service, "twitch", "own") == 2.0
    })
    .await;
    assert_eq!(
        received(&service, channel),
        2,
        "the viewer's and otherbot's"
    );
    wait_until("both processed", DEADLINE, || {
        processed(&service, channel) == 2
    })
    .await;
    service.shutdown().await;
    sim.shutdown().await;
}
