//! Issue 10's engine items, each as the abuse it stops: built-ins obey levels and cooldowns,
//! chat-derived text never leads with a command prefix and is screened by the content filters
//! (item 1); the nuke scrollback stays in a byte budget (item 6); fresh accounts cannot evict
//! global cooldowns or reset warnings, and `$(random)` follows its seed, not the channel
//! name (item 11).

use super::*;
use crate::engine::nuke::{SCROLLBACK_BYTES, SCROLLBACK_MESSAGES};
use crate::engine::outgoing::leads_with_prefix;
use crate::engine::{MAX_COOLDOWNS, MAX_WARNINGS};

/// Sends `text` from a user with the given login and display name.
fn say_as(
    state: &mut ChannelState,
    login: &str,
    display: &str,
    role: Role,
    text: &str,
    secs: u64,
) -> Vec<Action> {
    let message = ChatMessage {
        id: format!("m-{login}-{secs}-{}", state.messages_seen),
        user: ChatUser {
            display_name: display.to_string(),
            ..user(login, role)
        },
        text: text.to_string(),
        ..ChatMessage::default()
    };
    handle(state, &event(EventKind::Message(message)), at(secs))
}

/// Every posted text (Say / Reply) of `actions`; none may lead with a prefix.
fn posted(actions: &[Action]) -> Vec<String> {
    let out = texts(actions);
    for text in &out {
        assert!(
            !leads_with_prefix(text),
            "posted text leads with a prefix: {text:?}"
        );
    }
    out
}

fn withheld(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Withheld { rule, would } => {
                assert!(would.chat_text().is_some());
                Some(rule.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_viewer_echo_of_a_command_gets_nothing() {
    let mut s = state("");
    for role in [Role::Everyone, Role::Subscriber, Role::Vip] {
        let out = say(&mut s, "viewer", role, "!echo !addcom !pwn owned", 1);
        assert!(out.is_empty(), "{role:?}: {out:?}");
    }
    // Nor does a rule keyword or command pick the refused built-in up.
    let mut s = state("[[keywords]]\nname = \"k\"\ngroups = [[\"echo\"]]\nresponse = \"kw\"");
    assert!(say(
        &mut s,
        "viewer",
        Role::Everyone,
        "!echo !addcom !pwn owned",
        1
    )
    .is_empty());
}

#[test]
fn a_moderator_echo_never_leads_with_a_prefix_after_trimming_invisibles() {
    let mut s = state("");
    let table = [
        ("!echo !addcom !pwn owned", "addcom !pwn owned"),
        ("!echo \u{200B}!ban x", "ban x"),
        ("!echo \u{FEFF}\u{E0001}/ban x", "ban x"),
        ("!echo \u{2060}\u{202E} .ban x", "ban x"),
        ("!echo ！pwn", "pwn"),
        ("!echo \u{2800}\u{0301}!pwn", "pwn"),
        ("!echo hello !pwn", "hello !pwn"),
    ];
    for (i, (text, want)) in table.into_iter().enumerate() {
        let secs = i as u64 * 100;
        let out = say(&mut s, "mod", Role::Moderator, text, secs);
        assert_eq!(posted(&out), [want], "{text:?}");
    }
    // Nothing left after neutralising: nothing posted.
    assert!(say(&mut s, "mod", Role::Moderator, "!echo \u{200B}!!/.", 10_000).is_empty());
}

const CHAT_PARTS: &str = r#"
[[commands]]
name = "!so"
response = "$(touser)"
[[commands]]
name = "!g"
response = "$(query)"
response_type = "reply"
[[commands]]
name = "!say"
response = " $(args)"
[[commands]]
name = "!u"
response = "$(user) says hi"
[[commands]]
name = "!m"
response = "$(1)"
response_type = "mention"
[[commands]]
name = "!so2"
response = "!so $(touser)"
"#;

#[test]
fn chat_derived_template_parts_never_lead_with_a_prefix() {
    let mut s = state(CHAT_PARTS);
    let e = Role::Everyone;
    let table = [
        ("amy", "!so \u{200B}!ban x", "ban"),
        ("amy", "!so @\u{FEFF}/ban", "ban"),
        ("amy", "!g  /ban", "%2Fban"),
        ("amy", "!g ..ban", "ban"),
        // The owner's leading space stays; chat's invisible and `!` go.
        (
            "amy",
            "!say \u{200B} !addcom !pwn owned",
            " addcom !pwn owned",
        ),
    ];
    for (i, (login, text, want)) in table.into_iter().enumerate() {
        let out = say(&mut s, login, e, text, i as u64 * 100);
        assert_eq!(posted(&out), [want], "{text:?}");
    }
    // A display name that starts with a prefix, in `$(user)` and in a Mention.
    for (i, name) in ["!Pwn", "\u{200B}/ban", ".x"].into_iter().enumerate() {
        let secs = 1_000 + i as u64 * 100;
        let out = say_as(&mut s, "pwn", name, e, "!u", secs);
        assert_eq!(posted(&out).len(), 1, "{name:?}: {out:?}");
        let out = say_as(&mut s, "pwn", name, e, "!m !ban", secs + 1);
        let text = &posted(&out)[0];
        assert!(text.starts_with('@') && text.ends_with(" ban"), "{text:?}");
    }
    // What the owner wrote is theirs: a shout-out command may lead with `!` on purpose (the
    // chat part does not lead, so it stays as typed).
    assert_eq!(
        texts(&say(&mut s, "amy", e, "!so2 !pwn", 5_000)),
        ["!so !pwn"]
    );
}

#[test]
fn chat_management_replies_never_lead_with_the_name_they_quote() {
    let mut s = state("[[filters]]\nname = \"caps\"\nkind = \"caps\"");
    let m = Role::Moderator;
    let table = [
        ("!addcom !pwn !ban x", "command !pwn added"),
        (
            "!addcom !pwn again",
            "command !pwn already exists; use !editcom",
        ),
        ("!editcom !nope x", "command !nope does not exist"),
        ("!delcom !pwn", "command !pwn deleted"),
        (
            "!permit !pwn",
            "@!pwn may post one link in the next 60 seconds",
        ),
        ("!filters off !caps", "no filter named !caps"),
    ];
    for (i, (text, want)) in table.into_iter().enumerate() {
        let out = say(&mut s, "mod", m, text, i as u64);
        assert_eq!(posted(&out), [want], "{text:?}");
    }
    let bad = posted(&say(&mut s, "mod", m, "!addcom /x y", 10));
    assert!(bad[0].starts_with("command /x: name must be"), "{bad:?}");
    let long = format!("!permit {}", "a".repeat(65));
    assert_eq!(
        posted(&say(&mut s, "mod", m, &long, 11)),
        ["usage: !permit <user>"]
    );
}

#[test]
fn the_echo_cooldown_keeps_one_chatter_from_filling_the_send_queue() {
    // Even where every viewer may echo, the default cooldowns hold (5 s global, 10 s user).
    let mut s = state("[builtins.echo]\nlevel = \"everyone\"");
    let answered: usize = (0..100)
        .map(|i| {
            let out = say(
                &mut s,
                "viewer",
                Role::Everyone,
                &format!("!echo spam {i}"),
                i / 10,
            );
            posted(&out).len()
        })
        .sum();
    assert_eq!(answered, 1, "100 echoes in 10 s: one answered");
    assert_eq!(
        posted(&say(&mut s, "viewer", Role::Everyone, "!echo again", 20)),
        ["again"]
    );
    // A moderator is held to the same cooldowns.
    let mut s = state("");
    let answered: usize = (0..100)
        .map(|i| posted(&say(&mut s, "mod", Role::Moderator, "!echo x", i / 10)).len())
        .sum();
    assert_eq!(answered, 1);
    // The channel sets them: ping with a per-user cooldown, echo switched off.
    let mut s = state(
        "[builtins.ping]\nuser_cooldown_s = 30\n[builtins.echo]\nenabled = false\nlevel = \"everyone\"",
    );
    assert_eq!(
        posted(&say(&mut s, "a", Role::Everyone, "!ping", 0)),
        ["pong"]
    );
    assert!(say(&mut s, "a", Role::Everyone, "!ping", 1).is_empty());
    assert_eq!(
        posted(&say(&mut s, "b", Role::Everyone, "!ping", 1)),
        ["pong"]
    );
    assert!(say(&mut s, "a", Role::Broadcaster, "!echo x", 2).is_empty());
    let err = rules("[builtins.echo]\nuser_cooldown_s = 100000")
        .validate()
        .expect_err("too long");
    assert_eq!(err.item, "builtins.echo");
}

const SCREENED: &str = r#"
[[commands]]
name = "!cat"
response = "$(1)$(2)"
[[commands]]
name = "!rules"
response = "no badword here, $(user)"
[[commands]]
name = "!m"
response = "hi"
response_type = "mention"
[[commands]]
name = "!google"
response = "https://www.google.com/search?q=$(query)"
[[filters]]
name = "banned"
kind = "banned_phrases"
phrases = [{ pattern = "badword" }, { pattern = "later", expires_at_ms = 1 }]
[[filters]]
name = "links"
kind = "links"
allow_domains = ["twitch.tv"]
[[filters]]
name = "trial"
kind = "banned_phrases"
shadow = true
phrases = [{ pattern = "trialword" }]
"#;

#[test]
fn chat_derived_text_breaking_a_content_filter_is_withheld_and_counted() {
    let mut s = state(SCREENED);
    let (e, m) = (Role::Everyone, Role::Moderator);
    // A moderator is exempt from the filter for their own message, not for the bot's.
    let out = say(&mut s, "mod", m, "!echo a badword", 0);
    assert_eq!(posted(&out), Vec::<String>::new());
    assert_eq!(withheld(&out), ["banned"]);
    // Chat pieces that only join into a banned phrase in the response.
    let out = say(&mut s, "amy", e, "!cat ba dword", 100);
    assert!(moderation(&out).is_empty(), "the message itself is clean");
    assert_eq!(withheld(&out), ["banned"]);
    // A display name in a Mention or `$(user)`.
    assert_eq!(
        withheld(&say_as(&mut s, "x", "badword", e, "!m", 200)),
        ["banned"]
    );
    // A link from chat, but not the owner's own link around a chat query.
    assert_eq!(
        withheld(&say(&mut s, "mod", m, "!echo see evil.com", 300)),
        ["links"]
    );
    assert_eq!(
        posted(&say(&mut s, "mod", m, "!echo see twitch.tv/x", 400)),
        ["see twitch.tv/x"]
    );
    assert_eq!(
        posted(&say(&mut s, "amy", e, "!google rust lang", 500)),
        ["https://www.google.com/search?q=rust%20lang"]
    );
    // The owner's own words, expired phrases and shadow filters do not withhold.
    assert_eq!(
        posted(&say(&mut s, "amy", e, "!rules", 600)),
        ["no badword here, amy"]
    );
    assert_eq!(
        posted(&say(&mut s, "mod", m, "!echo later", 700)),
        ["later"]
    );
    assert_eq!(
        posted(&say(&mut s, "mod", m, "!echo trialword", 800)),
        ["trialword"]
    );
    // A reply of the engine's own that quotes chat is screened too.
    let out = say(&mut s, "mod", m, "!permit badword", 900);
    assert_eq!(withheld(&out), ["banned"]);
    let now_ms = crate::engine::millis(at(901));
    assert!(
        s.runtime.permits.contains(&"badword".to_string(), now_ms),
        "the permit itself is granted"
    );
}

#[test]
fn scrollback_stays_in_its_byte_budget_under_text_that_folds_long() {
    let mut s = state("");
    let long = "\u{FDFA}".repeat(500);
    assert!(
        crate::engine::fold::fold(&long).len() > 15_000,
        "folds long"
    );
    for i in 0..5_000u64 {
        say(
            &mut s,
            &format!("u{}", i % 50),
            Role::Everyone,
            &long,
            i / 10,
        );
    }
    let scrollback = &s.runtime.scrollback;
    assert!(
        scrollback.bytes() <= SCROLLBACK_BYTES,
        "{} bytes held",
        scrollback.bytes()
    );
    assert!(
        scrollback.len() >= 500,
        "still {} messages",
        scrollback.len()
    );
    assert!(
        s.runtime.drops().scrollback_evicted_bytes > 0,
        "the early drops are counted"
    );
    // Ordinary chat keeps every message within the count cap.
    let mut s = state("");
    for i in 0..(SCROLLBACK_MESSAGES as u64 + 10) {
        say(
            &mut s,
            "amy",
            Role::Everyone,
            &format!("line {i} of ordinary chat"),
            i / 100,
        );
    }
    assert_eq!(s.runtime.scrollback.len(), SCROLLBACK_MESSAGES);
    assert_eq!(s.runtime.drops().scrollback_evicted_bytes, 0);
    // A nuke still finds what the scrollback holds.
    let out = say(&mut s, "mod", Role::Moderator, "!nuke line 5009 of", 60);
    assert_eq!(moderation(&out), ["timeout60:nuke"]);
}

#[test]
fn fresh_accounts_triggering_user_cooldowns_never_free_a_global_cooldown() {
    let mut s = state(
        r#"
[[commands]]
name = "!cd"
response = "global"
global_cooldown_s = 3600
[[commands]]
name = "!u1"
global_cooldown_s = 0
response = "one"
user_cooldown_s = 3600
[[commands]]
name = "!u2"
global_cooldown_s = 0
response = "two"
user_cooldown_s = 3600
[[commands]]
name = "!u3"
global_cooldown_s = 0
response = "three"
user_cooldown_s = 3600
"#,
    );
    let e = Role::Everyone;
    assert_eq!(posted(&say(&mut s, "amy", e, "!cd", 0)), ["global"]);
    for i in 0..10_000u64 {
        let login = format!("fresh{i}");
        for command in ["!u1", "!u2", "!u3"] {
            say(&mut s, &login, e, command, 1 + i / 1000);
        }
    }
    assert!(s.runtime.user_cooldowns.len() <= MAX_COOLDOWNS);
    assert!(
        s.runtime.drops().cooldowns_evicted > 0,
        "the flood did fill the map"
    );
    assert!(
        say(&mut s, "bob", e, "!cd", 100).is_empty(),
        "the global cooldown still runs"
    );
    assert_eq!(s.runtime.drops().global_cooldowns_evicted, 0);
    assert_eq!(posted(&say(&mut s, "bob", e, "!cd", 3601)), ["global"]);
}

#[test]
fn fresh_accounts_warned_never_reset_a_users_warning() {
    let mut s = state(
        r#"
[[filters]]
name = "spam"
kind = "banned_phrases"
phrases = [{ pattern = "spam" }]
warning_first = true
warning_action = "delete"
action = { timeout = 600 }
warning_expiry_s = 3600
[[filters]]
name = "spam2"
kind = "banned_phrases"
phrases = [{ pattern = "spam" }]
warning_first = true
warning_action = "delete"
action = { timeout = 600 }
warning_expiry_s = 3600
"#,
    );
    let e = Role::Everyone;
    assert_eq!(
        moderation(&say(&mut s, "amy", e, "spam", 0)),
        ["delete:spam"]
    );
    for i in 0..10_000u64 {
        say(&mut s, &format!("fresh{i}"), e, "spam", 1 + i / 1000);
    }
    let runtime = &s.runtime;
    assert_eq!(
        runtime.warnings.len(),
        MAX_WARNINGS,
        "the flood filled the map"
    );
    assert!(runtime.drops().warnings_refused > 0, "refusals are counted");
    assert_eq!(
        moderation(&say(&mut s, "amy", e, "spam again", 100)),
        ["timeout600:spam"],
        "amy's warning survived the flood"
    );
}

#[test]
fn random_follows_the_seed_not_the_channel_name() {
    let rules_text =
        "[[commands]]\nname = \"!r\"\nresponse = \"$(random 1 1000000000)\"\nglobal_cooldown_s = 0";
    let run = |seed: u64| {
        let mut s = ChannelState::with_rules("chan", rules(rules_text), seed).expect("valid");
        (0..20)
            .flat_map(|i| texts(&say(&mut s, "amy", Role::Everyone, "!r", i)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1).len(), 20);
    assert_ne!(run(1), run(2), "the same channel name, other seeds");
    assert_eq!(run(3), run(3), "the same seed");
    let mut plain = ChannelState::new("chan", 4);
    let mut other = ChannelState::new("chan", 5);
    assert_ne!(plain.runtime.rng.next_u64(), other.runtime.rng.next_u64());
}
