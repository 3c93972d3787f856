//! Filters (each kind, escalation, expiry, harshest-wins, permit, exemptions, silent, shadow,
//! banned-phrase options and folding), `!filters`, and `!nuke` / `!nukeundo`.

use super::*;

const FILTERS: &str = r#"
[[filters]]
name = "banned"
kind = "banned_phrases"
action = { timeout = 600 }
message = "no $(user)"
phrases = [
  { pattern = "free followers" },
  { pattern = "buy*viewers", kind = "wildcard" },
  { pattern = "b[i1]tcoin giveaway", kind = "regex", action = "ban" },
  { pattern = "old meme", expires_at_ms = 1700000100000 },
  { pattern = "go offline", online_only = true },
  { pattern = "is he live", offline_only = true, action = "delete" },
  { pattern = "spam.link", action = "delete" },
]
[[filters]]
name = "links"
kind = "links"
allow_domains = ["twitch.tv"]
action = { timeout = 10 }
exempt = "regular"
warning_first = true
warning_expiry_s = 100
message = "no links $(user)"
warning_message = "warning $(user)"
message_user_cooldown_s = 0
message_global_cooldown_s = 0
[[filters]]
name = "caps"
kind = "caps"
min_length = 10
max_share = 0.7
exempt = "subscriber"
action = "delete"
silent = true
message = "never posted"
[[filters]]
name = "symbols"
kind = "symbols"
min_length = 8
max_share = 0.6
[[filters]]
name = "emotes"
kind = "emotes"
max_count = 3
[[filters]]
name = "repetition"
kind = "repetition"
max_word_repeats = 4
max_char_run = 10
action = { timeout = 30 }
[[filters]]
name = "length"
kind = "length"
max_length = 100
[[filters]]
name = "zalgo"
kind = "zalgo"
max_count = 4
action = "ban"
[[filters]]
name = "trial"
kind = "length"
max_length = 50
action = { timeout = 1 }
shadow = true
"#;

fn spans(n: usize) -> Vec<EmoteSpan> {
    (0..n)
        .map(|i| EmoteSpan {
            id: "25".into(),
            start: i * 6,
            end: i * 6 + 5,
        })
        .collect()
}

#[test]
fn each_filter_catches_its_kind_and_spares_clean_text() {
    let long: String = (0..30).map(|i| format!("w{i} ")).collect();
    let table: Vec<(&str, Vec<EmoteSpan>, Vec<&str>)> = vec![
        ("hello there friends", vec![], vec![]),
        ("get FREE followers now", vec![], vec!["timeout600:banned"]),
        ("buy cheap viewers", vec![], vec!["timeout600:banned"]),
        ("B1TCOIN GIVEAWAY here", vec![], vec!["ban:banned"]),
        ("THIS IS VERY LOUD TEXT", vec![], vec!["delete:caps"]),
        ("@@@@ #### !!!! ok", vec![], vec!["delete:symbols"]),
        ("Kappa Kappa Kappa Kappa", spans(4), vec!["delete:emotes"]),
        ("Kappa Kappa Kappa", spans(3), vec![]),
        (
            "spam spam spam spam spam",
            vec![],
            vec!["timeout30:repetition"],
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaah",
            vec![],
            vec!["timeout30:repetition"],
        ),
        (&long, vec![], vec!["delete:length"]),
        (
            "z\u{0336}\u{0337}a\u{0338}\u{0339}l\u{033A}go",
            vec![],
            vec!["ban:zalgo"],
        ),
        ("watch at twitch.tv/foo", vec![], vec![]),
    ];
    for (i, (text, emotes, want)) in table.into_iter().enumerate() {
        let mut s = state(FILTERS);
        let out = say_emotes(&mut s, "anon", Role::Everyone, text, emotes, i as u64);
        assert_eq!(moderation(&out), want, "{text}");
    }
}

#[test]
fn banned_phrases_fold_case_accents_zalgo_and_lookalikes() {
    for text in [
        "FRÉÉ FOLLOWERS",
        "frее fоllоwеrs",
        "f\u{0336}ree followers",
        "ｆｒｅｅ ｆｏｌｌｏｗｅｒｓ",
        "free\u{200B} followers",
    ] {
        let mut s = state(FILTERS);
        let out = say(&mut s, "anon", Role::Everyone, text, 0);
        assert!(
            moderation(&out).contains(&"timeout600:banned".to_string()),
            "{text}: {out:?}"
        );
    }
}

#[test]
fn banned_phrase_expiry_and_online_offline_conditions() {
    let mut s = state(FILTERS);
    let e = Role::Everyone;
    assert_eq!(
        moderation(&say(&mut s, "a", e, "old meme", 10)),
        ["timeout600:banned"]
    );
    assert!(
        moderation(&say(&mut s, "b", e, "old meme", 100)).is_empty(),
        "expired"
    );
    assert!(
        moderation(&say(&mut s, "c", e, "go offline", 101)).is_empty(),
        "online only"
    );
    assert_eq!(
        moderation(&say(&mut s, "d", e, "is he live", 102)),
        ["delete:banned"]
    );
    handle(
        &mut s,
        &event(EventKind::StreamStatus {
            online: true,
            started_at_ms: None,
        }),
        at(103),
    );
    assert_eq!(
        moderation(&say(&mut s, "e", e, "go offline", 104)),
        ["timeout600:banned"]
    );
    assert!(
        moderation(&say(&mut s, "f", e, "is he live", 105)).is_empty(),
        "offline only"
    );
}

#[test]
fn warning_first_then_action_and_warnings_expire() {
    let mut s = state(FILTERS);
    let e = Role::Everyone;
    let steps: [(u64, &str, &str); 5] = [
        (0, "delete:links", "warning anon"),
        (50, "timeout10:links", "no links anon"),
        (140, "timeout10:links", "no links anon"),
        (241, "delete:links", "warning anon"),
        (242, "timeout10:links", "no links anon"),
    ];
    for (secs, action, text) in steps {
        let out = say(&mut s, "anon", e, "see evil.com", secs);
        assert_eq!(moderation(&out), [action], "at {secs}");
        assert_eq!(texts(&out), [text], "at {secs}");
    }
    let other = say(&mut s, "other", e, "see evil.com", 243);
    assert_eq!(
        moderation(&other),
        ["delete:links"],
        "warnings are per user"
    );
}

/// A filter's text goes to an offender once per `message_user_cooldown_s` and to the channel
/// once per `message_global_cooldown_s`; the action is never held back. The abuse case: a raid
/// of 500 fresh accounts breaking a filter within seconds gets 500 deletes and a handful of
/// posts, not 500 posts filling the send window ahead of the channel's replies.
#[test]
fn filter_messages_are_posted_once_per_user_and_window_and_raids_cannot_flood_them() {
    let mut s = state(
        r#"
[[filters]]
name = "links"
kind = "links"
action = "delete"
message = "no links $(user)"
"#,
    );
    let e = Role::Everyone;
    // The defaults: 300 s per user, 5 s in the channel.
    let first = say(&mut s, "anon", e, "see evil.com", 0);
    assert_eq!(moderation(&first), ["delete:links"]);
    assert_eq!(texts(&first), ["no links anon"]);
    for secs in [10, 100, 299] {
        let again = say(&mut s, "anon", e, "see evil.com", secs);
        assert_eq!(moderation(&again), ["delete:links"], "at {secs}");
        assert!(texts(&again).is_empty(), "anon was told at 0 ({secs})");
    }
    assert_eq!(
        texts(&say(&mut s, "anon", e, "see evil.com", 301)),
        ["no links anon"],
        "the user window has passed"
    );
    let other = say(&mut s, "bea", e, "see evil.com", 302);
    assert_eq!(moderation(&other), ["delete:links"]);
    assert!(texts(&other).is_empty(), "one post per 5 s in the channel");
    assert_eq!(
        texts(&say(&mut s, "bea", e, "see evil.com", 307)),
        ["no links bea"]
    );

    let (mut deletes, mut posts) = (0, 0);
    for i in 0..500u64 {
        let out = say(
            &mut s,
            &format!("raider{i}"),
            e,
            "free stuff at evil.com",
            400 + i / 50,
        );
        deletes += moderation(&out).len();
        posts += texts(&out).len();
    }
    assert_eq!(deletes, 500, "every raid message is removed");
    assert_eq!(posts, 2, "10 s of raid: one post per 5 s");
}

#[test]
fn filter_message_cooldowns_are_validated() {
    let bad = "[[filters]]\nname = \"l\"\nkind = \"links\"\nmessage_user_cooldown_s = 86401";
    assert!(ChannelState::with_rules("chan", rules(bad), 1).is_err());
}

#[test]
fn harshest_action_wins_and_banned_phrase_beats_links() {
    let mut s = state(FILTERS);
    let e = Role::Everyone;
    // links warns (delete) and caps deletes; banned times out 600: only the timeout is taken.
    let out = say(&mut s, "a", e, "FREE FOLLOWERS AT EVIL.COM NOW", 0);
    assert_eq!(moderation(&out), ["timeout600:banned"]);
    assert_eq!(texts(&out), ["no a"], "only the winner's message");
    // a banned phrase with a delete ties with the links warning (delete): the phrase wins.
    let out = say(&mut s, "b", e, "spam.link evil.com", 1);
    assert_eq!(moderation(&out), ["delete:banned"]);
    // ban beats every timeout.
    let out = say(
        &mut s,
        "c",
        e,
        "bitcoin giveaway spam spam spam spam spam",
        2,
    );
    assert_eq!(moderation(&out), ["ban:banned"]);
    // longer timeout beats shorter: repetition 30 s vs links warning delete.
    let out = say(
        &mut s,
        "d",
        e,
        "evil.com evil.com evil.com evil.com evil.com",
        3,
    );
    assert_eq!(moderation(&out), ["timeout30:repetition"]);
}

#[test]
fn permit_allows_one_link_for_sixty_seconds() {
    let mut s = state(FILTERS);
    let e = Role::Everyone;
    assert!(
        texts(&say(&mut s, "mod", Role::Moderator, "!permit @Anon", 0))
            .join("")
            .contains("anon may post one link")
    );
    assert!(
        moderation(&say(&mut s, "anon", e, "see evil.com", 10)).is_empty(),
        "permitted"
    );
    assert_eq!(
        moderation(&say(&mut s, "anon", e, "see evil.com", 11)),
        ["delete:links"],
        "used up"
    );
    say(&mut s, "mod", Role::Moderator, "!permit anon", 100);
    assert_eq!(
        moderation(&say(&mut s, "anon", e, "see evil.com", 161)),
        ["delete:links"],
        "expired (and the earlier warning too)"
    );
    assert!(
        say(&mut s, "pleb", e, "!permit anon", 200).is_empty(),
        "only moderators permit"
    );
}

#[test]
fn exempt_levels_and_silent_mode() {
    let mut s = state(FILTERS);
    assert!(moderation(&say(
        &mut s,
        "sub",
        Role::Subscriber,
        "THIS IS VERY LOUD TEXT",
        0
    ))
    .is_empty());
    let out = say(&mut s, "anon", Role::Everyone, "THIS IS VERY LOUD TEXT", 1);
    assert_eq!(moderation(&out), ["delete:caps"]);
    assert!(texts(&out).is_empty(), "silent filter posts nothing");
    assert!(moderation(&say(&mut s, "mod", Role::Moderator, "FREE FOLLOWERS", 2)).is_empty());
    let mut s = state(&format!("regulars = [\"reg\"]\n{FILTERS}"));
    assert!(moderation(&say(&mut s, "reg", Role::Everyone, "see evil.com", 3)).is_empty());
}

#[test]
fn shadow_filter_records_without_moderating() {
    let mut s = state(FILTERS);
    let text = "a perfectly fine message that is just a bit long....";
    let out = say(&mut s, "anon", Role::Everyone, text, 0);
    assert!(moderation(&out).is_empty());
    match &out[..] {
        [Action::Shadow { rule, would }] => {
            assert_eq!(rule, "trial");
            assert!(matches!(**would, Action::Timeout { duration_s: 1, .. }));
        }
        other => panic!("expected a shadow record, got {other:?}"),
    }
}

#[test]
fn filters_can_be_switched_off_and_on_from_chat() {
    let mut s = state(FILTERS);
    let m = Role::Moderator;
    assert_eq!(
        texts(&say(&mut s, "mod", m, "!filters off caps", 0)),
        ["filter caps off"]
    );
    assert!(moderation(&say(
        &mut s,
        "anon",
        Role::Everyone,
        "THIS IS VERY LOUD TEXT",
        1
    ))
    .is_empty());
    assert_eq!(
        texts(&say(&mut s, "mod", m, "!filters on caps", 2)),
        ["filter caps on"]
    );
    assert_eq!(
        moderation(&say(
            &mut s,
            "anon",
            Role::Everyone,
            "THIS IS VERY LOUD TEXT",
            3
        )),
        ["delete:caps"]
    );
    assert!(texts(&say(&mut s, "mod", m, "!filters off nope", 4))[0].contains("no filter"));
}

#[test]
fn nuke_scrollback_window_and_undo() {
    let mut s = state("[nuke]\nwindow_s = 60\nexempt = \"vip\"");
    let e = Role::Everyone;
    say(&mut s, "old", e, "raid spam", 0);
    say(&mut s, "a", e, "RAID SPAM lol", 50);
    say(&mut s, "a", e, "raid spam again", 51);
    say(&mut s, "b", e, "räid spam", 52);
    say(&mut s, "c", e, "hello", 53);
    say(&mut s, "vip", Role::Vip, "raid spam", 54);
    let out = say(
        &mut s,
        "mod",
        Role::Moderator,
        "!nuke raid spam 30 timeout 300",
        60,
    );
    assert_eq!(
        moderation(&out),
        ["timeout300:nuke", "timeout300:nuke"],
        "a and b once each"
    );
    assert_eq!(texts(&out), ["Nuked 3 messages from 2 users."]);
    assert_eq!(
        moderation(&say(&mut s, "d", e, "more raid spam", 90)),
        ["timeout300:nuke"]
    );
    assert!(
        moderation(&say(&mut s, "e", e, "raid spam late", 121)).is_empty(),
        "window over"
    );
    let undo = say(&mut s, "mod", Role::Moderator, "!nukeundo", 130);
    let mut unbanned = moderation(&undo);
    unbanned.sort();
    assert_eq!(
        unbanned,
        ["unban id-a:nuke", "unban id-b:nuke", "unban id-d:nuke"]
    );
    assert_eq!(texts(&undo), ["Nuke undone: 3 users unbanned."]);
}

#[test]
fn nuke_regex_delete_and_ban_forms_and_errors() {
    let mut s = state("");
    let e = Role::Everyone;
    say(&mut s, "a", e, "copy 123 pasta", 0);
    say(&mut s, "a", e, "copy 456 pasta", 1);
    let out = say(
        &mut s,
        "mod",
        Role::Moderator,
        "!nuke /copy \\d+ pasta/ delete",
        2,
    );
    assert_eq!(moderation(&out), ["delete:nuke", "delete:nuke"]);
    say(&mut s, "b", e, "bannable words", 3);
    let out = say(&mut s, "mod", Role::Moderator, "!nuke bannable ban", 4);
    assert_eq!(moderation(&out), ["ban:nuke"]);
    for bad in ["!nuke", "!nuke x 601", "!nuke /(/", "!nuke x timeout zero"] {
        let out = say(&mut s, "mod", Role::Moderator, bad, 5);
        assert!(moderation(&out).is_empty(), "{bad}");
        assert!(texts(&out)[0].starts_with("nuke:"), "{bad}: {out:?}");
    }
    assert!(
        say(&mut s, "pleb", e, "!nuke other", 6).is_empty(),
        "moderators only"
    );
    let out = say(&mut s, "mod", Role::Moderator, "!nuke 1234", 7);
    assert_eq!(
        texts(&out),
        ["Nuked 0 messages from 0 users."],
        "a number alone is the phrase"
    );
}

#[test]
fn moderation_actions_serialize_with_their_rule() {
    let mut s = state(FILTERS);
    let out = say(&mut s, "anon", Role::Everyone, "free followers", 0);
    let json = serde_json::to_value(&out[0]).expect("json");
    assert_eq!(json["action"], "timeout");
    assert_eq!(json["rule"], "banned");
    assert_eq!(json["duration_s"], 600);
}

#[test]
fn a_nuke_never_hits_its_own_command_message() {
    let mut s = state("[nuke]\nexempt = \"broadcaster\"");
    say(&mut s, "a", Role::Everyone, "raid", 0);
    let out = say(&mut s, "mod", Role::Moderator, "!nuke raid", 1);
    assert_eq!(texts(&out), ["Nuked 1 messages from 1 users."]);
}
