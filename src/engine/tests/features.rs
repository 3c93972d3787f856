//! Commands, variables through commands, cooldowns, roles, keywords, timers, shadow mode,
//! chat management and rule validation.

use super::*;
use crate::engine::rules::ChannelRules;

const COMMANDS: &str = r#"
regulars = ["reggie"]
[[commands]]
name = "!hug"
global_cooldown_s = 0
aliases = ["!cuddle"]
response = "$(user) hugs $(touser) #$(count)"
[[commands]]
name = "!g"
global_cooldown_s = 0
response = "q=$(query)"
response_type = "reply"
[[commands]]
name = "!m"
global_cooldown_s = 0
response = "hi"
response_type = "mention"
[[commands]]
name = "!cd"
response = "ok"
global_cooldown_s = 10
[[commands]]
name = "!ucd"
global_cooldown_s = 0
response = "ok"
user_cooldown_s = 10
[[commands]]
name = "!sub"
global_cooldown_s = 0
response = "sub ok"
level = "subscriber"
[[commands]]
name = "!reg"
global_cooldown_s = 0
response = "reg ok"
level = "regular"
[[commands]]
name = "!mod"
global_cooldown_s = 0
response = "mod ok"
level = "moderator"
[[commands]]
name = "!inc"
global_cooldown_s = 0
response = "$(count.increment n) $(count.get n)"
[[commands]]
name = "!up"
global_cooldown_s = 0
response = "$(uptime)"
[[commands]]
name = "!shadow"
global_cooldown_s = 0
response = "would say $(count.increment s)"
shadow = true
[[commands]]
name = "!off"
global_cooldown_s = 0
response = "never"
enabled = false
"#;

#[test]
fn commands_render_variables_and_response_types() {
    let mut s = state(COMMANDS);
    let e = Role::Everyone;
    assert_eq!(
        texts(&say(&mut s, "amy", e, "!hug @Bob", 1)),
        ["amy hugs Bob #1"]
    );
    assert_eq!(
        texts(&say(&mut s, "amy", e, "!CUDDLE", 2)),
        ["amy hugs amy #2"]
    );
    let reply = say(&mut s, "amy", e, "!g rust lang", 3);
    assert!(matches!(&reply[0], Action::Reply { text, .. } if text == "q=rust%20lang"));
    assert_eq!(texts(&say(&mut s, "amy", e, "!m", 4)), ["@amy hi"]);
    assert_eq!(texts(&say(&mut s, "amy", e, "!inc", 5)), ["1 1"]);
    assert_eq!(texts(&say(&mut s, "bob", e, "!inc", 6)), ["2 2"]);
    assert_eq!(texts(&say(&mut s, "amy", e, "!up", 7)), ["offline"]);
    let live = EventKind::StreamStatus {
        online: true,
        started_at_ms: None,
    };
    handle(&mut s, &event(live), at(100));
    assert_eq!(texts(&say(&mut s, "amy", e, "!up", 100 + 3725)), ["1h 02m"]);
    assert!(say(&mut s, "amy", e, "!off", 8).is_empty());
    assert!(say(&mut s, "amy", e, "!nosuch", 9).is_empty());
}

#[test]
fn ping_and_echo_still_work_alongside_rules() {
    let mut s = state(COMMANDS);
    let pong = say(&mut s, "amy", Role::Everyone, "!ping", 1);
    assert!(matches!(&pong[..], [Action::Reply { text, .. }] if text == "pong"));
    // Changed with issue 10 item 1: `!echo` is for moderators by default (a viewer's is
    // ignored like any command above their level).
    assert!(say(&mut s, "amy", Role::Everyone, "!echo hi there", 2).is_empty());
    assert_eq!(
        texts(&say(&mut s, "mo", Role::Moderator, "!echo hi there", 2)),
        ["hi there"]
    );
}

#[test]
fn cooldowns_global_and_per_user() {
    let mut s = state(COMMANDS);
    let e = Role::Everyone;
    let table = [
        ("amy", "!cd", 0, true),
        ("bob", "!cd", 5, false),
        ("bob", "!cd", 10, true),
        ("amy", "!ucd", 20, true),
        ("amy", "!ucd", 25, false),
        ("bob", "!ucd", 25, true),
        ("amy", "!ucd", 30, true),
    ];
    for (login, text, secs, answered) in table {
        let out = say(&mut s, login, e, text, secs);
        assert_eq!(!out.is_empty(), answered, "{login} {text} at {secs}");
    }
}

#[test]
fn command_levels_with_regulars_between_subscriber_and_vip() {
    let mut s = state(COMMANDS);
    let table = [
        ("anon", Role::Everyone, "!sub", false),
        ("subby", Role::Subscriber, "!sub", true),
        ("subby", Role::Subscriber, "!reg", false),
        ("reggie", Role::Everyone, "!reg", true),
        ("reggie", Role::Everyone, "!sub", true),
        ("vippy", Role::Vip, "!reg", true),
        ("vippy", Role::Vip, "!mod", false),
        ("moddy", Role::Moderator, "!mod", true),
        ("boss", Role::Broadcaster, "!mod", true),
    ];
    for (i, (login, role, text, answered)) in table.into_iter().enumerate() {
        let out = say(&mut s, login, role, text, i as u64 * 100);
        assert_eq!(!out.is_empty(), answered, "{login} {text}");
    }
}

#[test]
fn shadow_command_records_but_does_not_post_or_count() {
    let mut s = state(COMMANDS);
    let out = say(&mut s, "amy", Role::Everyone, "!shadow", 1);
    assert_eq!(texts(&out), Vec::<String>::new());
    match &out[..] {
        [Action::Shadow { rule, would }] => {
            assert_eq!(rule, "!shadow");
            assert_eq!(would.chat_text(), Some("would say 1"));
        }
        other => panic!("expected one shadow record, got {other:?}"),
    }
    assert_eq!(
        s.runtime.counters.get("s"),
        0,
        "shadow renders on scratch counters"
    );
}

const KEYWORDS: &str = r#"
[[keywords]]
name = "res"
global_cooldown_s = 0
groups = [["what", "resolution"], ["what", "res", "stream"]]
response = "1080p"
[[keywords]]
name = "sens"
global_cooldown_s = 0
regex = "\\bsens\\b"
response = "800 dpi"
user_cooldown_s = 60
[[keywords]]
name = "exact"
global_cooldown_s = 0
groups = [["POG"]]
case_sensitive = true
response = "pog"
[[keywords]]
name = "shadowkw"
global_cooldown_s = 0
groups = [["secret"]]
response = "psst"
shadow = true
"#;

#[test]
fn keywords_match_groups_regex_and_case() {
    let mut s = state(KEYWORDS);
    let table: [(&str, &str, u64, Option<&str>); 10] = [
        ("amy", "WHAT resolution is this", 1, Some("1080p")),
        ("amy", "what is the res of the stream", 2, Some("1080p")),
        ("amy", "resolution?", 3, None),
        ("amy", "whät rèsolution", 4, Some("1080p")),
        ("amy", "what SENS do you use", 5, Some("800 dpi")),
        ("amy", "sens?", 6, None),
        ("bob", "sens?", 7, Some("800 dpi")),
        ("amy", "POG", 8, Some("pog")),
        ("amy", "pog", 9, None),
        ("amy", "sensible", 100, None),
    ];
    for (login, text, secs, want) in table {
        let out = texts(&say(&mut s, login, Role::Everyone, text, secs));
        assert_eq!(out.first().map(String::as_str), want, "{text}");
    }
    let shadow = say(&mut s, "amy", Role::Everyone, "a secret", 200);
    assert!(matches!(&shadow[..], [Action::Shadow { rule, .. }] if rule == "shadowkw"));
}

const TIMERS: &str = r#"
[[timers]]
name = "t1"
message = "hello chat"
interval_s = 60
min_lines = 3
[[timers]]
name = "live"
message = "live only"
interval_s = 30
online_only = true
"#;

#[test]
fn timers_need_interval_and_lines_and_online() {
    let mut s = state(TIMERS);
    assert!(tick(&mut s, 0).is_empty(), "first tick starts the clocks");
    assert!(
        tick(&mut s, 61).is_empty(),
        "interval passed but no chat lines"
    );
    for i in 0..3 {
        say(&mut s, "amy", Role::Everyone, "hi", 62 + i);
    }
    assert!(tick(&mut s, 59).is_empty(), "lines but interval not over");
    assert_eq!(texts(&tick(&mut s, 70)), ["hello chat"]);
    for i in 0..3 {
        say(&mut s, "amy", Role::Everyone, "hi", 71 + i);
    }
    assert!(
        tick(&mut s, 100).is_empty(),
        "interval restarts after firing"
    );
    assert_eq!(texts(&tick(&mut s, 131)), ["hello chat"]);
    handle(
        &mut s,
        &event(EventKind::StreamStatus {
            online: true,
            started_at_ms: None,
        }),
        at(140),
    );
    assert_eq!(texts(&tick(&mut s, 141)), ["live only"]);
    handle(
        &mut s,
        &event(EventKind::StreamStatus {
            online: false,
            started_at_ms: None,
        }),
        at(150),
    );
    assert!(tick(&mut s, 200).is_empty());
}

#[test]
fn moderators_manage_commands_from_chat() {
    let mut s = state("");
    let m = Role::Moderator;
    let reply = |out: Vec<Action>| texts(&out).join("|");
    assert_eq!(
        reply(say(&mut s, "anon", Role::Everyone, "!addcom !x hi", 1)),
        ""
    );
    assert_eq!(
        reply(say(&mut s, "mod", m, "!addcom !x hi $(user)", 2)),
        "command !x added"
    );
    assert_eq!(
        texts(&say(&mut s, "amy", Role::Everyone, "!x", 3)),
        ["hi amy"]
    );
    assert!(reply(say(&mut s, "mod", m, "!addcom !x again", 4)).contains("already exists"));
    let bad = reply(say(&mut s, "mod", m, "!addcom !y oops $(nope)", 5));
    assert!(
        bad.contains("at character 5") && bad.contains("unknown variable 'nope'"),
        "{bad}"
    );
    assert!(reply(say(&mut s, "mod", m, "!addcom !ping hi", 6)).contains("built-in"));
    assert_eq!(
        reply(say(&mut s, "mod", m, "!editcom !x bye", 7)),
        "command !x edited"
    );
    assert_eq!(
        texts(&say(&mut s, "amy", Role::Everyone, "!x", 20)),
        ["bye"]
    );
    assert_eq!(
        reply(say(&mut s, "mod", m, "!delcom !x", 21)),
        "command !x deleted"
    );
    assert!(say(&mut s, "amy", Role::Everyone, "!x", 40).is_empty());
    assert!(reply(say(&mut s, "mod", m, "!delcom !x", 41)).contains("does not exist"));
}

#[test]
fn the_example_rules_file_loads_validates_and_round_trips() {
    let s = example();
    let rules: &ChannelRules = &s.rules;
    assert!(rules.commands.len() >= 8 && rules.filters.len() >= 8 && rules.timers.len() >= 2);
    let json = serde_json::to_string(rules).expect("serialize");
    let back: ChannelRules = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, rules);
    let toml_text = toml::to_string(rules).expect("toml serialize");
    assert_eq!(
        &toml::from_str::<ChannelRules>(&toml_text).expect("toml back"),
        rules
    );
}

#[test]
fn invalid_rules_name_the_item_and_the_fault() {
    let table = [
        ("[[commands]]\nname = \"!a\"\nresponse = \"x\"\n[[commands]]\nname = \"!b\"\naliases = [\"!A\"]\nresponse = \"y\"", "command '!b'", "used twice"),
        ("[[commands]]\nname = \"nobang\"\nresponse = \"x\"", "command 'nobang'", "'!'"),
        ("[[commands]]\nname = \"!echo\"\nresponse = \"x\"", "command '!echo'", "built-in"),
        ("[[commands]]\nname = \"!a\"\nresponse = \"hi $(usr)\"", "command '!a'", "at character 3: unknown variable 'usr'"),
        ("[[keywords]]\nname = \"k\"\nresponse = \"x\"", "keyword 'k'", "phrase group or a regex"),
        ("[[keywords]]\nname = \"k\"\nregex = \"(\"\nresponse = \"x\"", "keyword 'k'", "invalid regex"),
        ("[[timers]]\nname = \"t\"\nmessage = \"x\"\ninterval_s = 0", "timer 't'", "interval_s"),
        ("[[filters]]\nname = \"f\"\nkind = \"caps\"\nmax_share = 1.5", "filter 'f'", "max_share"),
        ("[[filters]]\nname = \"f\"\nkind = \"length\"", "filter 'f'", "max_length"),
        ("[[filters]]\nname = \"f\"\nkind = \"caps\"\naction = { timeout = 0 }", "filter 'f'", "timeout of 0 s"),
        ("[[filters]]\nname = \"f\"\nkind = \"banned_phrases\"\nphrases = [{ pattern = \"x\", online_only = true, offline_only = true }]", "filter 'f' phrase 'x'", "both online_only"),
        ("[[filters]]\nname = \"f\"\nkind = \"banned_phrases\"\nphrases = [{ pattern = \"(?:\\\\w{100}){100}\", kind = \"regex\" }]", "filter 'f' phrase", "too large"),
        ("[[filters]]\nname = \"f\"\nkind = \"banned_phrases\"\nphrases = [{ pattern = \"**\", kind = \"wildcard\" }]", "filter 'f' phrase '**'", "empty"),
        ("[[filters]]\nname = \"f\"\nkind = \"caps\"\n[[filters]]\nname = \"F\"\nkind = \"caps\"", "filter 'F'", "used twice"),
        ("[nuke]\ndefault_scrollback_s = 601", "nuke", "at most 600"),
    ];
    for (text, item, fault) in table {
        let err = rules(text).validate().expect_err(text);
        assert!(err.item.starts_with(item), "{text}: item {:?}", err.item);
        assert!(err.fault.contains(fault), "{text}: fault {:?}", err.fault);
        assert!(ChannelState::with_rules("c", rules(text), 1).is_err());
    }
}

#[test]
fn unknown_fields_are_refused() {
    assert!(toml::from_str::<ChannelRules>(
        "[[commands]]\nname = \"!a\"\nresponse = \"x\"\ncooldown = 5"
    )
    .is_err());
}

#[test]
fn the_engine_is_deterministic_and_usable_as_a_trait_object() {
    use crate::engine::{ChatHandler, Engine};
    let handler: std::sync::Arc<dyn ChatHandler> = std::sync::Arc::new(Engine);
    let toml_text =
        "[[commands]]\nname = \"!r\"\nresponse = \"$(random 1 1000000)\"\nglobal_cooldown_s = 0";
    let run = || {
        let mut s = state(toml_text);
        (0..20)
            .flat_map(|i| {
                let message = ChatMessage {
                    id: format!("m{i}"),
                    user: user("amy", Role::Everyone),
                    text: "!r".into(),
                    ..ChatMessage::default()
                };
                handler.handle(&mut s, &event(EventKind::Message(message)), at(i))
            })
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first.len(), 20);
    assert_eq!(first, run());
}
