//! Replaying chat through the engine: recorded (or pasted) Twitch IRC lines in, every action
//! the channel's rules would take out, one JSON object per action. `firehose replay` runs it
//! over a file with the rules files' rules; the web console's "try it" box runs it over a
//! pasted line with a channel's current rules.
//!
//! Time is the recording's own (`tmi-sent-ts`), and timers get one tick per recorded second,
//! so a replay is deterministic. A record: `{"channel","msg_id","user","action","duration_s",
//! "text","rule"}` where `action` is say | reply | delete | timeout | ban | unban | withheld,
//! and shadow-mode rules' records carry `"shadow": true`.
//!
//! The records go to a [`Sink`]: [`JsonLines`] prints them; [`compare`] collects them, with
//! every event, to line the rules' actions up with the moderators' own.

pub mod compare;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use twitch_irc::message::IRCMessage;

use crate::engine::{self, Action, ChannelRules, ChannelState, ChatEvent, EventKind};
use crate::twitch::convert::to_chat_event;

/// Longest stretch of recorded silence filled with ticks (longer gaps skip ahead).
const MAX_TICK_GAP_S: u64 = 3_600;

/// One printed action.
#[derive(Debug, Serialize)]
pub struct ReplayRecord<'a> {
    pub channel: &'a str,
    pub msg_id: Option<&'a str>,
    pub user: Option<&'a str>,
    pub action: &'static str,
    pub duration_s: Option<u64>,
    pub text: Option<Cow<'a, str>>,
    pub rule: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub malformed: u64,
    pub events: u64,
    pub actions: u64,
    /// Why the replay stopped before the end of its input (a [`Limits`] bound), if it did.
    pub stopped: Option<&'static str>,
}

/// Bounds of one replay: what a replay on someone else's input (the console's "try it") must
/// not exceed. A timer rule with a one-second interval over hours of recorded time would
/// otherwise write an action per tick.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop once this many actions are written.
    pub max_actions: u64,
    /// Engine ticks (recorded seconds between messages) run in all; beyond, time skips ahead.
    pub max_ticks: u64,
    /// Stop at this moment.
    pub deadline: Option<Instant>,
}

impl Limits {
    /// No bound (`firehose replay` over a file of one's own).
    pub const NONE: Limits = Limits {
        max_actions: u64::MAX,
        max_ticks: u64::MAX,
        deadline: None,
    };
}

/// Where a replay's events and records go.
pub trait Sink {
    /// Every event replayed (ticks apart), with its time in ms since the epoch (the line's
    /// `tmi-sent-ts`, or the replay clock when it has none), before its actions.
    fn event(&mut self, _event: &ChatEvent, _at_ms: u64) {}
    /// One action of the rules.
    fn record(&mut self, record: &ReplayRecord<'_>) -> anyhow::Result<()>;
}

/// A sink printing one JSON object per record and line.
pub struct JsonLines<W>(pub W);

impl<W: Write> Sink for JsonLines<W> {
    fn record(&mut self, record: &ReplayRecord<'_>) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.0, record)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
}

/// Replays `input` and writes JSON lines to `out`.
pub fn run(
    input: impl BufRead,
    rules: &dyn Fn(&str) -> Arc<ChannelRules>,
    only: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<ReplaySummary> {
    run_limited(input, rules, only, out, Limits::NONE)
}

/// [`run`] within `limits`: it stops (saying why in [`ReplaySummary::stopped`]) at the first
/// bound reached.
pub fn run_limited(
    input: impl BufRead,
    rules: &dyn Fn(&str) -> Arc<ChannelRules>,
    only: Option<&str>,
    out: &mut impl Write,
    limits: Limits,
) -> anyhow::Result<ReplaySummary> {
    run_into(input, rules, only, &mut JsonLines(out), limits)
}

/// [`run_limited`] into any [`Sink`].
pub fn run_into(
    input: impl BufRead,
    rules: &dyn Fn(&str) -> Arc<ChannelRules>,
    only: Option<&str>,
    out: &mut impl Sink,
    limits: Limits,
) -> anyhow::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut channels: HashMap<Arc<str>, Replayed> = HashMap::new();
    let mut ticks_left = limits.max_ticks;
    for line in input.lines() {
        if summary.actions >= limits.max_actions {
            summary.stopped = Some("actions");
            break;
        }
        if limits.deadline.is_some_and(|d| Instant::now() >= d) {
            summary.stopped = Some("time");
            break;
        }
        let line = line?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        summary.lines += 1;
        let Some(parsed) = parse(line) else {
            summary.malformed += 1;
            continue;
        };
        let Some(event) = parsed.event else { continue };
        if only.is_some_and(|c| c != &*event.channel) {
            continue;
        }
        summary.events += 1;
        let channel = channels
            .entry(Arc::clone(&event.channel))
            .or_insert_with(|| Replayed::new(&event.channel, rules));
        let now = parsed.sent_at.unwrap_or(channel.clock);
        summary.actions += channel.tick_until(now, &event.channel, out, &mut ticks_left)?;
        out.event(&event, millis(now));
        let actions = engine::handle(&mut channel.state, &event, now);
        summary.actions += write_actions(&event, &actions, out)?;
    }
    Ok(summary)
}

/// One well-formed line: its chat event, if it carries one, and its `tmi-sent-ts`.
struct Parsed {
    event: Option<ChatEvent>,
    sent_at: Option<SystemTime>,
}

/// None for a malformed line.
fn parse(line: &str) -> Option<Parsed> {
    let irc = IRCMessage::parse(line).ok()?;
    let sent_at = irc
        .tags
        .0
        .get("tmi-sent-ts")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let message = crate::twitch::convert::server_message(irc).ok()?;
    Some(Parsed {
        event: to_chat_event(&message),
        sent_at,
    })
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A channel's engine state and its replay clock.
struct Replayed {
    state: ChannelState,
    clock: SystemTime,
    started: bool,
}

impl Replayed {
    fn new(channel: &str, rules: &dyn Fn(&str) -> Arc<ChannelRules>) -> Replayed {
        // A seed fixed per channel name: a replay gives the same output every run.
        let seed = engine::rng::name_seed(channel);
        let state = ChannelState::with_rules(channel, (*rules(channel)).clone(), seed)
            .unwrap_or_else(|_| ChannelState::new(channel, seed));
        Replayed {
            state,
            clock: UNIX_EPOCH,
            started: false,
        }
    }

    /// One tick per recorded second from the last event to `now`, while `ticks_left` lasts
    /// (then the clock skips to `now`).
    fn tick_until(
        &mut self,
        now: SystemTime,
        channel: &Arc<str>,
        out: &mut impl Sink,
        ticks_left: &mut u64,
    ) -> anyhow::Result<u64> {
        if !self.started {
            self.started = true;
            self.clock = now;
            return Ok(0);
        }
        let gap = now.duration_since(self.clock).unwrap_or_default().as_secs();
        if gap > MAX_TICK_GAP_S {
            self.clock = now;
            return Ok(0);
        }
        let mut written = 0;
        let tick = ChatEvent {
            platform: crate::engine::Platform::Twitch,
            channel: Arc::clone(channel),
            kind: EventKind::Tick,
        };
        let run = gap.min(*ticks_left);
        *ticks_left -= run;
        for _ in 0..run {
            self.clock += Duration::from_secs(1);
            let actions = engine::handle(&mut self.state, &tick, self.clock);
            written += write_actions(&tick, &actions, out)?;
        }
        if run < gap {
            self.clock = now;
        }
        Ok(written)
    }
}

fn write_actions(
    event: &ChatEvent,
    actions: &[Action],
    out: &mut impl Sink,
) -> anyhow::Result<u64> {
    let message = event.message();
    for action in actions {
        let record = record(
            &event.channel,
            message.map(|m| m.id.as_str()),
            message.map(|m| m.user.login.as_str()),
            action,
            false,
        );
        out.record(&record)?;
    }
    Ok(actions.len() as u64)
}

fn record<'a>(
    channel: &'a str,
    msg_id: Option<&'a str>,
    user: Option<&'a str>,
    action: &'a Action,
    shadow: bool,
) -> ReplayRecord<'a> {
    let base = ReplayRecord {
        channel,
        msg_id,
        user,
        action: "say",
        duration_s: None,
        text: None,
        rule: None,
        shadow,
    };
    match action {
        Action::Say { text } => ReplayRecord {
            text: Some(Cow::Borrowed(text)),
            ..base
        },
        Action::Reply { text, .. } => ReplayRecord {
            action: "reply",
            text: Some(Cow::Borrowed(text)),
            ..base
        },
        Action::Delete { rule, .. } => ReplayRecord {
            action: "delete",
            rule: Some(rule),
            ..base
        },
        Action::Timeout {
            duration_s,
            reason,
            rule,
            ..
        } => ReplayRecord {
            action: "timeout",
            duration_s: Some(*duration_s),
            text: Some(Cow::Borrowed(reason)),
            rule: Some(rule),
            ..base
        },
        Action::Ban { reason, rule, .. } => ReplayRecord {
            action: "ban",
            text: Some(Cow::Borrowed(reason)),
            rule: Some(rule),
            ..base
        },
        Action::Unban { rule, .. } => ReplayRecord {
            action: "unban",
            rule: Some(rule),
            ..base
        },
        Action::Shadow { rule, would } => {
            let inner = record(channel, msg_id, user, would, true);
            // A shadow rule's say names the rule it came from.
            ReplayRecord {
                rule: inner.rule.or(Some(rule)),
                ..inner
            }
        }
        Action::ChatMode { change, rule } => ReplayRecord {
            action: "chat_mode",
            text: Some(Cow::Owned(change.describe())),
            rule: Some(rule),
            ..base
        },
        Action::Withheld { rule, .. } => ReplayRecord {
            action: "withheld",
            rule: Some(rule),
            ..base
        },
    }
}
