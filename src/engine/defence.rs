//! Channel-level raid defence: detect a raid, change the channel's chat modes in the steps the
//! operator chose, and change them back once chat is calm.
//!
//! One delete per spam message cannot keep up with a raid under Twitch's Helix budget (800
//! points a minute); one Shield Mode call stops every fresh account at once. Detection, over
//! the last `window_s` (each threshold 0 = not checked):
//!
//! - the filters took more than `max_moderation_actions` moderation actions;
//! - more than `max_first_time_share` of the messages (at least `min_messages`) came from
//!   first-time chatters;
//! - a raid arrived (`USERNOTICE msg-id=raid`, EventSub's raid chat notification) less than
//!   `raid_window_s` ago and the filters took at least `raid_filter_hits` actions within the
//!   window (a lower bar than `max_moderation_actions`, for a raid Twitch announced);
//! - the moderation transport says the channel's waiting calls need more than
//!   `max_backlog_s` to go out at the token's budget ([`EventKind::ModerationBacklog`], at
//!   most once a second while it lasts): one delete at a time is losing, so the channel
//!   escalates instead of queueing on.
//!
//! On detection the first step is engaged ([`Action::ChatMode`]); while detections go on, the
//! next step every `escalate_after_s`; after `calm_s` without one, every engaged step is
//! reverted, last first. A step whose change the platform refused
//! ([`EventKind::ChatModeFailed`]: a missing scope, the bot not a moderator) is marked refused
//! (it is not on, so the revert leaves it alone) and the next step is engaged at once while
//! the raid goes on. Engaged steps are always the first N of the rules' steps, so the count
//! kept over a restart names them. Moderators end it at once with `!raidoff` (detection then rests for
//! `calm_s`, so the bot does not fight them) and see it with `!raidstatus`. In shadow mode the
//! same decisions come out as [`Action::Shadow`] records ("would have engaged Shield Mode").
//! Every decision carries the rule `defence`, so it is counted and logged like the filters'.
//! Memory is bounded: at most [`MAX_WINDOW_EVENTS`] timestamps of each kind.

use std::collections::VecDeque;

use super::action::ChatModeChange;
use super::roles::Level;
use super::rules::{CrossChannel, DefenceSettings, DefenceStep};
#[cfg(doc)]
use super::EventKind;
use super::{Action, ChannelState, Incoming, StateChange};

/// The rule name of every defence decision.
pub const RULE: &str = "defence";
/// The rule name of what another channel's ban causes here.
pub const CROSS_RULE: &str = "cross-channel";
/// How long an account flagged by another channel stays flagged here.
const FLAG_TTL_MS: u64 = 24 * 3_600 * 1_000;
/// Most timestamps kept per kind (actions, messages) for the window.
pub const MAX_WINDOW_EVENTS: usize = 10_000;
/// How long a backlog report counts as current (the transport repeats it every second).
const BACKLOG_FRESH_MS: u64 = 2_500;

/// The defence's state in one channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefenceRuntime {
    /// When the filters took each moderation action of the window (ms).
    actions: VecDeque<u64>,
    /// The window's messages: (ms, from a first-time chatter).
    messages: VecDeque<(u64, bool)>,
    first_time: u64,
    /// When a raid arrived.
    raid: Option<u64>,
    /// The last backlog report: (ms, how long the waiting calls need, how many wait).
    backlog: Option<(u64, u64, u64)>,
    /// Steps engaged, in order: always the first `engaged.len()` of the rules' steps (what is
    /// kept over a restart is this count). A revert turns off those not refused, whatever the
    /// rules say by then.
    engaged: Vec<DefenceStep>,
    /// The engaged steps the platform refused (not on, so not turned off); forgotten when the
    /// defence ends.
    failed: Vec<DefenceStep>,
    engaged_at_ms: u64,
    last_step_ms: u64,
    last_detected_ms: u64,
    last_reason: String,
    /// Detection rests until then (after `!raidoff`).
    resting_until_ms: u64,
}

impl DefenceRuntime {
    /// How many steps are engaged.
    pub fn engaged(&self) -> usize {
        self.active().count()
    }

    /// Whether any step is engaged (refused ones included: the defence has not ended yet).
    pub fn holds_steps(&self) -> bool {
        !self.engaged.is_empty()
    }

    /// The engaged steps that are on (not refused), in order.
    fn active(&self) -> impl DoubleEndedIterator<Item = DefenceStep> + '_ {
        self.engaged
            .iter()
            .copied()
            .filter(|s| !self.failed.contains(s))
    }

    fn prune(&mut self, now_ms: u64, window_ms: u64) {
        let horizon = now_ms.saturating_sub(window_ms);
        while self.actions.front().is_some_and(|t| *t < horizon) {
            self.actions.pop_front();
        }
        while let Some((t, first)) = self.messages.front().copied() {
            if t >= horizon {
                break;
            }
            self.messages.pop_front();
            self.first_time -= u64::from(first);
        }
    }

    fn note_message(&mut self, now_ms: u64, first: bool) {
        if self.messages.len() >= MAX_WINDOW_EVENTS {
            if let Some((_, was_first)) = self.messages.pop_front() {
                self.first_time -= u64::from(was_first);
            }
        }
        self.messages.push_back((now_ms, first));
        self.first_time += u64::from(first);
    }

    fn note_actions(&mut self, now_ms: u64, n: usize) {
        for _ in 0..n {
            if self.actions.len() >= MAX_WINDOW_EVENTS {
                self.actions.pop_front();
            }
            self.actions.push_back(now_ms);
        }
    }
}

/// A restarted channel's kept state: `steps` were engaged. They count as engaged from `now_ms`
/// (the last detection is unknown), so they are reverted after `calm_s` unless the raid goes
/// on.
pub fn restore(state: &mut ChannelState, steps: u64, now_ms: u64) {
    let kept = usize::try_from(steps).unwrap_or(usize::MAX);
    let steps = kept.min(state.rules.defence.steps.len());
    if kept > steps {
        // The rules have fewer steps now: the kept count follows what is restored.
        let delta = i64::try_from(steps).unwrap_or(0) - i64::try_from(kept).unwrap_or(i64::MAX);
        state.runtime.note(StateChange::DefenceSteps { delta });
    }
    let engaged = state.rules.defence.steps[..steps].to_vec();
    let rt = &mut state.runtime.defence;
    rt.engaged = engaged;
    if steps > 0 {
        rt.engaged_at_ms = now_ms;
        rt.last_step_ms = now_ms;
        rt.last_detected_ms = now_ms;
        rt.last_reason = "engaged before a restart".to_string();
    }
}

/// Follows one message and what the filters did to it; may engage or escalate.
pub fn observe(state: &mut ChannelState, incoming: Incoming<'_>, taken: &[Action]) -> Vec<Action> {
    let settings = &state.rules.defence;
    if !settings.enabled {
        return Vec::new();
    }
    let now = incoming.now_ms;
    let (window_ms, raid_window_ms) = (settings.window_s * 1000, settings.raid_window_s * 1000);
    let moderated = taken.iter().filter(|a| a.is_moderation()).count();
    let rt = &mut state.runtime.defence;
    rt.prune(now, window_ms);
    rt.note_message(now, incoming.message.first_message);
    rt.note_actions(now, moderated);
    if rt
        .raid
        .is_some_and(|at| now.saturating_sub(at) > raid_window_ms)
    {
        rt.raid = None;
    }
    evaluate(state, now)
}

/// A raid arrived in the channel.
pub fn on_raid(state: &mut ChannelState, now_ms: u64) {
    if state.rules.defence.enabled {
        state.runtime.defence.raid = Some(now_ms);
    }
}

/// The transport's report that this channel's moderation calls are behind.
pub fn on_backlog(
    state: &mut ChannelState,
    drain_ms: u64,
    waiting: u64,
    now_ms: u64,
) -> Vec<Action> {
    let settings = &state.rules.defence;
    if !settings.enabled || settings.max_backlog_s == 0 {
        return Vec::new();
    }
    state.runtime.defence.backlog = Some((now_ms, drain_ms, waiting));
    evaluate(state, now_ms)
}

/// The platform refused a chat-mode change of the defence (a definitive answer: a missing
/// scope, the bot not a moderator). An engaging one: its step is marked refused (it is not on,
/// so no revert turns it off) and the next step is engaged at once if the raid goes on. A
/// reverting one: moderators are told (the mode is still on).
pub fn on_mode_failed(
    state: &mut ChannelState,
    failed: ChatModeChange,
    why: &str,
    now_ms: u64,
) -> Vec<Action> {
    let settings = state.rules.defence.clone();
    let say = |text: String| Action::Say { text }.shadowed(RULE, settings.shadow);
    if !failed.engages() {
        if !settings.announce {
            return Vec::new();
        }
        let off = failed.describe();
        return vec![say(format!(
            "Raid defence: Twitch refused {off}; a moderator must change it by hand."
        ))];
    }
    let rt = &mut state.runtime.defence;
    let Some(step) = rt.active().find(|s| change(*s, true) == failed) else {
        return Vec::new();
    };
    rt.failed.push(step);
    rt.last_reason = format!("{} failed: {}", failed.describe(), cut(why, 120));
    let rt = &state.runtime.defence;
    let raid_goes_on = now_ms.saturating_sub(rt.last_detected_ms) <= settings.window_s * 1000;
    let next = next_step(&settings, rt);
    let mut actions = Vec::new();
    match next {
        Some(next) if raid_goes_on => {
            let reason = format!("{} refused by Twitch", failed.describe());
            actions.extend(engage(state, next, &reason, now_ms));
        }
        _ if settings.announce => actions.push(say(format!(
            "Raid defence: Twitch refused {}; no other step to take.",
            failed.describe()
        ))),
        _ => {}
    }
    actions
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The index of the next step to engage, if any is left.
fn next_step(settings: &DefenceSettings, rt: &DefenceRuntime) -> Option<usize> {
    let next = rt.engaged.len();
    (next < settings.steps.len()).then_some(next)
}

/// The one-second tick: reverts every engaged step once chat has been calm for `calm_s`.
pub fn on_tick(state: &mut ChannelState, now_ms: u64) -> Vec<Action> {
    let rt = &state.runtime.defence;
    let calm_ms = state.rules.defence.calm_s * 1000;
    if rt.engaged.is_empty() || now_ms.saturating_sub(rt.last_detected_ms) < calm_ms {
        return Vec::new();
    }
    let calm_s = state.rules.defence.calm_s;
    revert(state, &format!("{calm_s} s of calm"))
}

/// Another channel banned `user_id` (`login`) for a filter hit: ban here at once, or flag the
/// account for a timeout on its first message, as `cross_channel` says. This channel's own
/// regulars are never banned for another channel's filter (its trust wins); nor are its VIPs,
/// moderators or regulars timed out when they speak.
pub fn on_flagged(
    state: &mut ChannelState,
    flagged: (&str, &str),
    source: &str,
    reason: &str,
    now_ms: u64,
) -> Vec<Action> {
    let (user_id, login) = flagged;
    let why = cross_reason(source, reason);
    let regular = !login.is_empty()
        && state
            .compiled
            .regulars
            .contains(&login.to_ascii_lowercase());
    match state.rules.defence.cross_channel {
        CrossChannel::Off => Vec::new(),
        CrossChannel::Ban if regular => Vec::new(),
        CrossChannel::Ban => vec![Action::Ban {
            user_id: user_id.to_string(),
            reason: why,
            rule: CROSS_RULE.to_string(),
        }],
        CrossChannel::Timeout(_) => {
            let until = now_ms.saturating_add(FLAG_TTL_MS);
            let key = super::key_id(user_id);
            let kept = (
                source.chars().take(64).collect(),
                reason.chars().take(200).collect(),
            );
            state.runtime.flagged.insert(key, kept, until, now_ms);
            Vec::new()
        }
    }
}

/// A flagged account's first message here: its timeout (the message gets nothing else).
/// Regulars, VIPs, moderators and up are never timed out for another channel's ban.
pub fn flagged_speaks(state: &mut ChannelState, incoming: Incoming<'_>) -> Option<Vec<Action>> {
    let CrossChannel::Timeout(duration_s) = state.rules.defence.cross_channel else {
        return None;
    };
    if state.runtime.flagged.is_empty() || incoming.level >= Level::Regular {
        return None;
    }
    let user = &incoming.message.user;
    let key = super::key_id(&user.id);
    let (source, reason) = state.runtime.flagged.remove(&key, incoming.now_ms)?;
    Some(vec![Action::Timeout {
        user_id: user.id.clone(),
        duration_s,
        reason: cross_reason(&source, &reason),
        rule: CROSS_RULE.to_string(),
    }])
}

fn cross_reason(source: &str, reason: &str) -> String {
    format!("banned in #{source} ({reason})")
}

/// `!raidoff` and `!raidstatus` (moderators and up); `None` when the message is neither.
pub fn command(state: &mut ChannelState, incoming: Incoming<'_>) -> Option<Vec<Action>> {
    let text = incoming.message.text.trim();
    let command = text.split_whitespace().next()?;
    if !["!raidoff", "!raidstatus"].contains(&command) {
        return None;
    }
    if incoming.level < Level::Moderator {
        return Some(Vec::new());
    }
    let reply = |text: String| Action::Reply {
        parent_id: incoming.message.id.clone(),
        text,
    };
    if !state.rules.defence.enabled {
        return Some(vec![reply(
            "Raid defence is not set up for this channel.".into(),
        )]);
    }
    let now = incoming.now_ms;
    if command == "!raidstatus" {
        return Some(vec![reply(status(state, now))]);
    }
    let rest_ms = state.rules.defence.calm_s * 1000;
    state.runtime.defence.resting_until_ms = now.saturating_add(rest_ms);
    let mut actions = revert(state, "!raidoff");
    let rest_s = state.rules.defence.calm_s;
    actions.push(reply(format!(
        "Raid defence off; detection rests for {rest_s} s."
    )));
    Some(actions)
}

fn status(state: &ChannelState, now_ms: u64) -> String {
    let settings = &state.rules.defence;
    let rt = &state.runtime.defence;
    let shadow = if settings.shadow {
        " (shadow mode)"
    } else {
        ""
    };
    let refused = if rt.failed.is_empty() {
        String::new()
    } else {
        let failed: Vec<String> = rt
            .failed
            .iter()
            .map(|s| change(*s, true).describe())
            .collect();
        format!("; refused by Twitch: {}", failed.join(", "))
    };
    let steps: Vec<String> = rt.active().map(|s| change(s, true).describe()).collect();
    if steps.is_empty() {
        let resting = if rt.resting_until_ms > now_ms {
            format!(
                ", resting for {} s after !raidoff",
                (rt.resting_until_ms - now_ms).div_ceil(1000)
            )
        } else {
            String::new()
        };
        return format!(
            "Raid defence{shadow}: watching ({} actions, {} messages in the last {} s){refused}{resting}.",
            rt.actions.len(),
            rt.messages.len(),
            settings.window_s
        );
    }
    format!(
        "Raid defence{shadow}: {}{refused} for {} s ({}); last detection {} s ago; reverts after {} s of calm. !raidoff ends it.",
        steps.join(", "),
        now_ms.saturating_sub(rt.engaged_at_ms) / 1000,
        rt.last_reason,
        now_ms.saturating_sub(rt.last_detected_ms) / 1000,
        settings.calm_s
    )
}

/// Why the window says "raid", if it does.
fn detect(settings: &DefenceSettings, rt: &DefenceRuntime, now_ms: u64) -> Option<String> {
    let actions = rt.actions.len() as u64;
    if settings.max_moderation_actions > 0 && actions > settings.max_moderation_actions {
        return Some(format!(
            "{actions} moderation actions in {} s",
            settings.window_s
        ));
    }
    let messages = rt.messages.len() as u64;
    if settings.max_first_time_share > 0.0 && messages >= settings.min_messages.max(1) {
        let share = rt.first_time as f64 / messages as f64;
        if share > settings.max_first_time_share {
            return Some(format!(
                "{:.0} % of {messages} messages from first-time chatters",
                share * 100.0
            ));
        }
    }
    let raided = rt.raid.is_some() && settings.raid_filter_hits > 0;
    if raided && actions >= settings.raid_filter_hits {
        return Some(format!(
            "a raid, then {actions} moderation actions in {} s",
            settings.window_s
        ));
    }
    let (at, drain_ms, waiting) = rt.backlog?;
    let behind = settings.max_backlog_s > 0
        && now_ms.saturating_sub(at) <= BACKLOG_FRESH_MS
        && drain_ms > settings.max_backlog_s * 1000;
    behind.then(|| {
        format!(
            "{waiting} moderation calls waiting, {} s to send at the Helix budget",
            drain_ms.div_ceil(1000)
        )
    })
}

fn evaluate(state: &mut ChannelState, now_ms: u64) -> Vec<Action> {
    let settings = &state.rules.defence;
    let rt = &state.runtime.defence;
    if now_ms < rt.resting_until_ms {
        return Vec::new();
    }
    let Some(reason) = detect(settings, rt, now_ms) else {
        return Vec::new();
    };
    let escalate_ms = settings.escalate_after_s * 1000;
    let next = next_step(settings, rt);
    let due = rt.engaged.is_empty() || now_ms.saturating_sub(rt.last_step_ms) >= escalate_ms;
    let rt = &mut state.runtime.defence;
    rt.last_detected_ms = now_ms;
    rt.last_reason = reason.clone();
    match next {
        Some(next) if due => engage(state, next, &reason, now_ms),
        _ => Vec::new(),
    }
}

fn engage(state: &mut ChannelState, step: usize, reason: &str, now_ms: u64) -> Vec<Action> {
    let settings = state.rules.defence.clone();
    let Some(&which) = settings.steps.get(step) else {
        return Vec::new();
    };
    let rt = &mut state.runtime.defence;
    if rt.engaged.is_empty() {
        rt.engaged_at_ms = now_ms;
    }
    rt.engaged.push(which);
    rt.last_step_ms = now_ms;
    state.runtime.note(StateChange::DefenceSteps { delta: 1 });
    let change = change(which, true);
    let mut actions = vec![decision(change, settings.shadow)];
    if settings.announce {
        let say = Action::Say {
            text: format!(
                "Raid defence: {} ({reason}). Moderators: !raidoff ends it.",
                change.describe()
            ),
        };
        actions.push(say.shadowed(RULE, settings.shadow));
    }
    actions
}

fn revert(state: &mut ChannelState, why: &str) -> Vec<Action> {
    let settings = state.rules.defence.clone();
    let rt = &mut state.runtime.defence;
    if rt.engaged.is_empty() {
        return Vec::new();
    }
    let on: Vec<DefenceStep> = rt.active().collect();
    let delta = -i64::try_from(rt.engaged.len()).unwrap_or(i64::MAX);
    rt.engaged.clear();
    rt.failed.clear();
    state.runtime.note(StateChange::DefenceSteps { delta });
    let mut actions: Vec<Action> = on
        .iter()
        .rev()
        .map(|s| decision(change(*s, false), settings.shadow))
        .collect();
    if settings.announce && !actions.is_empty() {
        let say = Action::Say {
            text: format!("Raid defence ended ({why}); its chat modes are off again."),
        };
        actions.push(say.shadowed(RULE, settings.shadow));
    }
    actions
}

fn decision(change: ChatModeChange, shadow: bool) -> Action {
    Action::ChatMode {
        change,
        rule: RULE.to_string(),
    }
    .shadowed(RULE, shadow)
}

/// The chat-mode change that engages (`on`) or reverts one step.
pub fn change(step: DefenceStep, on: bool) -> ChatModeChange {
    match step {
        DefenceStep::ShieldMode => ChatModeChange::ShieldMode(on),
        DefenceStep::FollowersOnly(m) => ChatModeChange::FollowersOnly(on.then_some(m)),
        DefenceStep::EmoteOnly => ChatModeChange::EmoteOnly(on),
        DefenceStep::Slow(s) => ChatModeChange::Slow(on.then_some(s)),
        DefenceStep::SubscribersOnly => ChatModeChange::SubscribersOnly(on),
    }
}
