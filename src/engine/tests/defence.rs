//! The raid defence: detection (moderation actions, first-time chatters, a raid then filter
//! hits, a moderation backlog), steps engaged and escalated, a refused step skipped, reverted
//! after calm, `!raidoff` / `!raidstatus`, shadow
//! mode, validation, and the abuse cases (bounded memory, viewers cannot switch it off).

use super::*;
use crate::engine::action::ChatModeChange;
use crate::engine::defence::MAX_WINDOW_EVENTS;

const RULES: &str = r#"
[[filters]]
name = "slurs"
kind = "banned_phrases"
action = "delete"
phrases = [{ pattern = "hateword" }]

[defence]
enabled = true
window_s = 10
max_moderation_actions = 5
max_first_time_share = 0.0
raid_filter_hits = 0
steps = ["shield_mode", { followers_only = 10 }]
escalate_after_s = 30
calm_s = 60
"#;

/// The chat-mode changes among `actions`, real ones only.
fn modes(actions: &[Action]) -> Vec<ChatModeChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ChatMode { change, rule } if rule == "defence" => Some(*change),
            _ => None,
        })
        .collect()
}

/// A message from `login`, a first-time chatter when `first`.
fn chat(state: &mut ChannelState, login: &str, text: &str, first: bool, secs: u64) -> Vec<Action> {
    let message = ChatMessage {
        id: format!("m-{login}-{secs}-{}", state.messages_seen),
        user: user(login, Role::Everyone),
        text: text.to_string(),
        first_message: first,
        ..ChatMessage::default()
    };
    handle(state, &event(EventKind::Message(message)), at(secs))
}

/// `n` raid messages from fresh accounts at `secs`.
fn raid(state: &mut ChannelState, from: usize, n: usize, secs: u64) -> Vec<Action> {
    (from..from + n)
        .flat_map(|i| {
            chat(
                state,
                &format!("raider{i}"),
                "hateword hateword",
                true,
                secs,
            )
        })
        .collect()
}

#[test]
fn moderation_actions_engage_escalate_and_calm_reverts_last_first() {
    let mut s = state(RULES);
    assert!(
        modes(&raid(&mut s, 0, 5, 0)).is_empty(),
        "5 actions: at the threshold"
    );
    let engaged = raid(&mut s, 5, 1, 1);
    assert_eq!(modes(&engaged), [ChatModeChange::ShieldMode(true)]);
    assert!(
        texts(&engaged)
            .iter()
            .any(|t| t.contains("Shield Mode on") && t.contains("!raidoff")),
        "{engaged:?}"
    );
    // The raid goes on: no second step before escalate_after_s.
    assert!(modes(&raid(&mut s, 6, 6, 20)).is_empty());
    assert_eq!(
        modes(&raid(&mut s, 12, 6, 31)),
        [ChatModeChange::FollowersOnly(Some(10))]
    );
    assert!(modes(&raid(&mut s, 18, 6, 62)).is_empty(), "no third step");
    // Calm: 60 s after the last detection (at 62) everything engaged is reverted, last first.
    assert!(modes(&tick(&mut s, 121)).is_empty());
    let reverted = tick(&mut s, 122);
    assert_eq!(
        modes(&reverted),
        [
            ChatModeChange::FollowersOnly(None),
            ChatModeChange::ShieldMode(false)
        ]
    );
    assert!(texts(&reverted).iter().any(|t| t.contains("ended")));
    assert!(tick(&mut s, 200).is_empty(), "reverted once");
    // The messages themselves were still deleted, every one.
    let spam = raid(&mut s, 100, 1, 300);
    assert_eq!(moderation(&spam), ["delete:slurs"]);
}

#[test]
fn first_time_chatters_and_a_raid_followed_by_filter_hits_are_detected() {
    let first_time = RULES
        .replace("max_moderation_actions = 5", "max_moderation_actions = 0")
        .replace(
            "max_first_time_share = 0.0",
            "max_first_time_share = 0.5\nmin_messages = 10",
        );
    let mut s = state(&first_time);
    for i in 0..5 {
        assert!(modes(&chat(&mut s, &format!("regular{i}"), "hi", false, 0)).is_empty());
    }
    let mut engaged = Vec::new();
    for i in 0..6 {
        engaged.extend(chat(&mut s, &format!("new{i}"), "hello", true, 1));
    }
    assert_eq!(
        modes(&engaged),
        [ChatModeChange::ShieldMode(true)],
        "6 of 11 first-time"
    );

    let raid_rule = RULES
        .replace("max_moderation_actions = 5", "max_moderation_actions = 0")
        .replace(
            "raid_filter_hits = 0",
            "raid_filter_hits = 3\nraid_window_s = 60",
        );
    let mut s = state(&raid_rule);
    assert!(
        modes(&raid(&mut s, 0, 4, 0)).is_empty(),
        "no raid announced yet"
    );
    let notice = EventKind::UserNotice {
        kind: "raid".into(),
        user: user("raidleader", Role::Everyone),
        text: None,
    };
    assert!(handle(&mut s, &event(notice), at(100)).is_empty());
    assert!(modes(&raid(&mut s, 10, 2, 101)).is_empty());
    assert_eq!(
        modes(&raid(&mut s, 20, 1, 102)),
        [ChatModeChange::ShieldMode(true)],
        "the third filter hit after the raid"
    );
    // Shield Mode keeps the raid out: the hits stop, and quiet chat after escalate_after_s
    // does not escalate (the raid's detection follows the window, it is not latched).
    for i in 0..20 {
        let quiet = chat(&mut s, &format!("regular{i}"), "gg", false, 140 + i);
        assert!(
            modes(&quiet).is_empty(),
            "escalated on quiet chat at {}",
            140 + i
        );
    }
}

#[test]
fn moderators_end_it_with_raidoff_and_see_it_with_raidstatus_viewers_cannot() {
    let mut s = state(RULES);
    raid(&mut s, 0, 6, 0);
    let asked = say(&mut s, "mod", Role::Moderator, "!raidstatus", 2);
    assert!(
        texts(&asked)[0].contains("Shield Mode on")
            && texts(&asked)[0].contains("6 moderation actions"),
        "{asked:?}"
    );
    // A viewer (or a raider) cannot switch it off, or even ask.
    assert!(say(&mut s, "raider0", Role::Everyone, "!raidoff", 3).is_empty());
    assert!(say(&mut s, "viewer", Role::Subscriber, "!raidstatus", 3).is_empty());
    let off = say(&mut s, "mod", Role::Moderator, "!raidoff", 4);
    assert_eq!(modes(&off), [ChatModeChange::ShieldMode(false)]);
    assert!(texts(&off).iter().any(|t| t.contains("rests for 60 s")));
    // Detection rests for calm_s: the bot does not fight the moderators.
    assert!(modes(&raid(&mut s, 10, 10, 30)).is_empty());
    let resting = say(&mut s, "mod", Role::Moderator, "!raidstatus", 31);
    assert!(texts(&resting)[0].contains("resting"), "{resting:?}");
    assert_eq!(
        modes(&raid(&mut s, 30, 6, 65)),
        [ChatModeChange::ShieldMode(true)],
        "watching again after the rest"
    );
}

#[test]
fn shadow_mode_records_what_it_would_have_done_and_changes_nothing() {
    let mut s = state(&RULES.replace("enabled = true", "enabled = true\nshadow = true"));
    let out = raid(&mut s, 0, 6, 0);
    assert!(modes(&out).is_empty(), "nothing real");
    assert!(texts(&out).is_empty(), "no announcement either");
    let would: Vec<&Action> = out
        .iter()
        .filter_map(|a| match a {
            Action::Shadow { rule, would } if rule == "defence" => Some(&**would),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            would.first(),
            Some(Action::ChatMode {
                change: ChatModeChange::ShieldMode(true),
                ..
            })
        ),
        "{out:?}"
    );
    let status = say(&mut s, "mod", Role::Moderator, "!raidstatus", 1);
    assert!(texts(&status)[0].contains("shadow mode"));
}

#[test]
fn a_disabled_defence_never_acts_and_its_memory_stays_bounded_under_a_flood() {
    let mut off = state(&RULES.replace("enabled = true", "enabled = false"));
    assert!(modes(&raid(&mut off, 0, 50, 0)).is_empty());
    let status = say(&mut off, "mod", Role::Moderator, "!raidstatus", 1);
    assert!(texts(&status)[0].contains("not set up"));

    let mut s = state(&RULES.replace("window_s = 10", "window_s = 600"));
    for i in 0..(MAX_WINDOW_EVENTS + 500) {
        chat(&mut s, &format!("u{i}"), "hateword", true, 1);
    }
    let rt = &s.runtime.defence;
    assert_eq!(rt.engaged(), 1);
    let status = say(&mut s, "mod", Role::Moderator, "!raidstatus", 2);
    assert!(
        texts(&status)[0].contains(&format!("{MAX_WINDOW_EVENTS} moderation actions")),
        "{status:?}"
    );
}

#[test]
fn defence_settings_are_validated() {
    for (bad, why) in [
        ("steps = []", "steps is empty"),
        ("steps = [{ slow = 1 }]", "slow"),
        ("steps = [{ followers_only = 200000 }]", "followers_only"),
        ("window_s = 0", "window_s"),
        ("calm_s = 0", "calm_s"),
        ("max_first_time_share = 1.5", "max_first_time_share"),
        ("max_backlog_s = 4000", "max_backlog_s"),
        ("steps = [\"shield_mode\", \"shield_mode\"]", "listed twice"),
        ("steps = [{ slow = 10 }, { slow = 30 }]", "listed twice"),
    ] {
        let text = format!("[defence]\nenabled = true\n{bad}\n");
        let err = ChannelState::with_rules("chan", rules(&text), 1).expect_err(bad);
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    let steps = "[defence]\nenabled = true\nsteps = [\"shield_mode\", { followers_only = 10 }, \"emote_only\", { slow = 30 }, \"subscribers_only\"]\n";
    assert!(ChannelState::with_rules("chan", rules(steps), 1).is_ok());
}

fn flagged(user_id: &str) -> EventKind {
    EventKind::UserFlagged {
        user_id: user_id.into(),
        login: "raider".into(),
        source: "otherchan".into(),
        reason: "slurs: hateword".into(),
    }
}

#[test]
fn another_channels_ban_bans_here_at_once_or_times_out_the_first_message() {
    let mut ban = state("[defence]\ncross_channel = \"ban\"\n");
    let out = handle(&mut ban, &event(flagged("id-raider")), at(0));
    assert!(
        matches!(&out[..], [Action::Ban { user_id, reason, rule }]
            if user_id == "id-raider" && reason.contains("#otherchan") && reason.contains("slurs") && rule == "cross-channel"),
        "{out:?}"
    );

    let mut timeout = state("[defence]\ncross_channel = { timeout = 600 }\n");
    assert!(handle(&mut timeout, &event(flagged("id-raider")), at(0)).is_empty());
    assert!(handle(&mut timeout, &event(flagged("id-moddy")), at(0)).is_empty());
    assert_eq!(
        moderation(&say(&mut timeout, "raider", Role::Everyone, "hello", 5)),
        ["timeout600:cross-channel"]
    );
    assert!(
        moderation(&say(
            &mut timeout,
            "raider",
            Role::Everyone,
            "hello again",
            700
        ))
        .is_empty(),
        "only the first message"
    );
    assert!(
        say(&mut timeout, "moddy", Role::Moderator, "hi", 6).is_empty(),
        "a moderator here is never timed out for another channel's ban"
    );

    let mut off = state("");
    assert!(handle(&mut off, &event(flagged("id-raider")), at(0)).is_empty());
    assert!(moderation(&say(&mut off, "raider", Role::Everyone, "hello", 5)).is_empty());

    // This channel's own trust wins: its regulars are not banned, nor its VIPs timed out.
    let mut trusting = state("regulars = [\"Raider\"]\n[defence]\ncross_channel = \"ban\"\n");
    assert!(
        handle(&mut trusting, &event(flagged("id-raider")), at(0)).is_empty(),
        "a regular here (case-folded) is not banned for another channel's filter"
    );
    let mut vip = state("[defence]\ncross_channel = { timeout = 600 }\n");
    assert!(handle(&mut vip, &event(flagged("id-raider")), at(0)).is_empty());
    assert!(
        moderation(&say(&mut vip, "raider", Role::Vip, "hello", 5)).is_empty(),
        "a VIP here is not timed out for another channel's ban"
    );
}

#[test]
fn flagged_accounts_are_bounded_and_expire_after_a_day() {
    let mut s = state("[defence]\ncross_channel = { timeout = 60 }\n");
    for i in 0..(crate::engine::MAX_FLAGGED + 100) {
        handle(&mut s, &event(flagged(&format!("id-u{i}"))), at(0));
    }
    assert!(s.runtime.flagged.len() <= crate::engine::MAX_FLAGGED);
    handle(&mut s, &event(flagged("id-soon")), at(10));
    assert_eq!(
        moderation(&say(&mut s, "soon", Role::Everyone, "hi", 86_000)),
        ["timeout60:cross-channel"],
        "still flagged just before a day"
    );
    handle(&mut s, &event(flagged("id-late")), at(10));
    assert!(
        moderation(&say(&mut s, "late", Role::Everyone, "hi", 86_400 + 11)).is_empty(),
        "a flag lasts a day"
    );
    assert!(ChannelState::with_rules(
        "chan",
        rules("[defence]\ncross_channel = { timeout = 0 }\n"),
        1
    )
    .is_err());
}

/// A channel restarted (poison message, redeploy) while Shield Mode was on still turns it off:
/// the engaged steps are kept with the channel's lasting state and reverted after calm_s.
#[test]
fn engaged_steps_outlive_a_restart_and_are_reverted_after_calm() {
    use crate::engine::{SavedState, StateChange};
    let mut s = state(RULES);
    raid(&mut s, 0, 6, 0);
    let changes = s.take_changes();
    let steps: i64 = changes
        .iter()
        .filter_map(|c| match c {
            StateChange::DefenceSteps { delta } => Some(*delta),
            _ => None,
        })
        .sum();
    assert_eq!(steps, 1);

    let mut restarted = state(RULES);
    let saved = SavedState {
        defence_steps: u64::try_from(steps).unwrap_or(0),
        ..SavedState::default()
    };
    restarted.restore(&saved, crate::engine::millis(at(100)));
    assert!(
        modes(&tick(&mut restarted, 150)).is_empty(),
        "calm_s not over"
    );
    assert_eq!(
        modes(&tick(&mut restarted, 161)),
        [ChatModeChange::ShieldMode(false)]
    );
    let reverted: i64 = restarted
        .take_changes()
        .iter()
        .filter_map(|c| match c {
            StateChange::DefenceSteps { delta } => Some(*delta),
            _ => None,
        })
        .sum();
    assert_eq!(reverted, -1, "the kept count goes back to 0");
}

/// A moderator's `!raidoff` that itself trips a detection (a moderator can be a first-time
/// chatter's message too) ends with the modes off: the engage comes out before the revert.
#[test]
fn raidoff_in_the_middle_of_a_detection_ends_with_the_modes_off() {
    let first_time = RULES
        .replace("max_moderation_actions = 5", "max_moderation_actions = 0")
        .replace(
            "max_first_time_share = 0.0",
            "max_first_time_share = 0.5\nmin_messages = 5",
        );
    let mut s = state(&first_time);
    for i in 0..4 {
        assert!(modes(&chat(&mut s, &format!("new{i}"), "hello", true, 0)).is_empty());
    }
    let message = ChatMessage {
        id: "m-off".into(),
        user: user("moddy", Role::Moderator),
        text: "!raidoff".into(),
        first_message: true,
        ..ChatMessage::default()
    };
    let out = handle(&mut s, &event(EventKind::Message(message)), at(1));
    let changes = modes(&out);
    assert_eq!(
        changes.last(),
        Some(&ChatModeChange::ShieldMode(false)),
        "{out:?}"
    );
    assert_eq!(s.runtime.defence.engaged(), 0);
}

fn backlog(drain_ms: u64) -> EventKind {
    EventKind::ModerationBacklog {
        drain_ms,
        waiting: drain_ms / 75,
    }
}

fn refused(change: ChatModeChange) -> EventKind {
    EventKind::ChatModeFailed {
        change,
        why: "missing scope (401): Missing scope: moderator:manage:shield_mode".into(),
    }
}

/// Only the backlog detects in these rules (every other threshold is 0).
fn backlog_rules() -> ChannelState {
    state(
        &RULES
            .replace("max_moderation_actions = 5", "max_moderation_actions = 0")
            .replace("calm_s = 60", "calm_s = 60\nmax_backlog_s = 5"),
    )
}

#[test]
fn a_moderation_backlog_past_the_target_engages_and_escalates() {
    let mut s = backlog_rules();
    assert!(
        handle(&mut s, &event(backlog(5_000)), at(0)).is_empty(),
        "at the target: not behind"
    );
    let engaged = handle(&mut s, &event(backlog(12_000)), at(1));
    assert_eq!(modes(&engaged), [ChatModeChange::ShieldMode(true)]);
    assert!(
        texts(&engaged)
            .iter()
            .any(|t| t.contains("moderation calls waiting") && t.contains("12 s")),
        "the reason says why: {engaged:?}"
    );
    // Still behind after escalate_after_s: the next step.
    assert!(handle(&mut s, &event(backlog(9_000)), at(20)).is_empty());
    assert_eq!(
        modes(&handle(&mut s, &event(backlog(9_000)), at(31))),
        [ChatModeChange::FollowersOnly(Some(10))]
    );
    // Reports stop (the queue drained): calm reverts.
    assert_eq!(modes(&tick(&mut s, 92)).len(), 2);
    // An old report does not count: without a fresh one, no escalation.
    let mut s = backlog_rules();
    assert_eq!(
        modes(&handle(&mut s, &event(backlog(20_000)), at(0))).len(),
        1
    );
    assert!(
        modes(&chat(&mut s, "viewer", "hi", false, 31)).is_empty(),
        "a report of 31 s ago escalated"
    );
    // Off when the threshold is 0, and when the defence is off.
    let mut off = state(&RULES.replace(
        "max_moderation_actions = 5",
        "max_moderation_actions = 0\nmax_backlog_s = 0",
    ));
    assert!(handle(&mut off, &event(backlog(60_000)), at(0)).is_empty());
    let mut disabled = state(&RULES.replace("enabled = true", "enabled = false"));
    assert!(handle(&mut disabled, &event(backlog(60_000)), at(0)).is_empty());
}

#[test]
fn a_step_twitch_refuses_is_skipped_and_the_next_engaged_at_once() {
    let mut s = backlog_rules();
    let engaged = handle(&mut s, &event(backlog(20_000)), at(0));
    assert_eq!(modes(&engaged), [ChatModeChange::ShieldMode(true)]);
    assert_eq!(s.runtime.defence.engaged(), 1);
    let next = handle(
        &mut s,
        &event(refused(ChatModeChange::ShieldMode(true))),
        at(1),
    );
    assert_eq!(
        modes(&next),
        [ChatModeChange::FollowersOnly(Some(10))],
        "the next step at once, not after escalate_after_s"
    );
    assert_eq!(s.runtime.defence.engaged(), 1, "Shield Mode is not engaged");
    let status = handle(
        &mut s,
        &event(EventKind::Message(ChatMessage {
            id: "status".into(),
            user: user("amod", Role::Moderator),
            text: "!raidstatus".into(),
            ..ChatMessage::default()
        })),
        at(2),
    );
    assert!(
        texts(&status).iter().any(
            |t| t.contains("followers-only") && t.contains("refused by Twitch: Shield Mode on")
        ),
        "{status:?}"
    );
    // Still behind later: the refused step is not tried again in this raid, nothing is left.
    assert!(modes(&handle(&mut s, &event(backlog(20_000)), at(40))).is_empty());
    // The second step refused too: nothing left to engage; chat is told.
    let none = handle(
        &mut s,
        &event(refused(ChatModeChange::FollowersOnly(Some(10)))),
        at(41),
    );
    assert!(modes(&none).is_empty());
    assert!(
        texts(&none).iter().any(|t| t.contains("no other step")),
        "{none:?}"
    );
    assert_eq!(s.runtime.defence.engaged(), 0);
    // After calm the refusals are forgotten: the next raid tries Shield Mode again.
    assert!(tick(&mut s, 200).is_empty());
    assert_eq!(
        modes(&handle(&mut s, &event(backlog(20_000)), at(201))),
        [ChatModeChange::ShieldMode(true)]
    );
    // A refused revert leaves the state as it is and tells the moderators.
    let told = handle(
        &mut s,
        &event(refused(ChatModeChange::ShieldMode(false))),
        at(202),
    );
    assert!(modes(&told).is_empty());
    assert!(
        texts(&told).iter().any(|t| t.contains("by hand")),
        "{told:?}"
    );
    assert_eq!(s.runtime.defence.engaged(), 1);
    // A refusal of a change the defence did not make changes nothing.
    assert!(handle(
        &mut s,
        &event(refused(ChatModeChange::EmoteOnly(true))),
        at(203)
    )
    .is_empty());
}
