//! `firehose replay --compare`: how a channel's rules line up with its own moderators.
//!
//! A recording of real chat holds the moderators' actions too: `CLEARMSG` (one message
//! deleted) and `CLEARCHAT` with a user (timed out or banned). A moderator's timeout or ban of a
//! user counts against that user's messages of the `window_ms` before it (the moderator saw
//! something in them; Twitch removes them all). The replay's moderation records (delete,
//! timeout, ban, shadow ones included) count against the message they answer. Per message:
//! both acted, only the rules, only the moderators; per rule the same. "Acts on" is wider: a
//! message that gets any record at all (a reply, a posted warning, a shadow record, ...), the
//! figure a streamer feels.
//!
//! Memory: the messages of the last window, plus one entry per message acted on by either
//! side and per sanctioned user; it grows with what was acted on in the recording (a CLI tool
//! over an operator's own file), not with the chat replayed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::{ReplayRecord, Sink};
use crate::engine::{ChatEvent, EventKind};

/// Longest excerpt of a message kept for the examples, in characters.
const EXCERPT_CHARS: usize = 120;

/// How a comparison is made.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A moderator's timeout or ban counts against the user's messages this long before it.
    pub window_ms: u64,
    /// Examples listed of each disagreement.
    pub examples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            window_ms: 60_000,
            examples: 20,
        }
    }
}

/// The figures of one comparison (what `--compare` prints as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Chat messages replayed.
    pub messages: u64,
    /// Messages that got any record of the rules (reply, say, warning, delete, timeout, ban,
    /// shadow, withheld).
    pub acted_on: u64,
    /// `acted_on` / `messages`.
    pub acted_on_ratio: f64,
    /// Records not tied to a message (timers).
    pub unattached_records: u64,
    /// Messages the rules moderated (delete, timeout or ban; shadow records included).
    pub moderated_by_rules: u64,
    /// Messages the moderators removed (`CLEARMSG`, or a timeout or ban of their author
    /// within the window after them).
    pub moderated_by_moderators: u64,
    /// `moderated_by_moderators` / `messages`.
    pub moderators_ratio: f64,
    /// Messages both moderated.
    pub both: u64,
    /// Messages only the rules moderated.
    pub only_rules: u64,
    /// Messages only the moderators removed.
    pub only_moderators: u64,
    /// The moderators' actions in the recording.
    pub moderator_actions: ModeratorActions,
    /// Per rule (a filter, `nuke`, ...; `(say/reply)` for posts that name none).
    pub rules: BTreeMap<String, RuleFigures>,
    /// Messages only the rules moderated, first ones first.
    pub examples_only_rules: Vec<Example>,
    /// Messages only the moderators removed, first ones first.
    pub examples_only_moderators: Vec<Example>,
    /// The window used, in seconds.
    pub window_s: f64,
}

/// What the moderators did, counted once per action (a line recorded twice within a second
/// counts once).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModeratorActions {
    pub timeouts: u64,
    pub bans: u64,
    pub deletes: u64,
    /// Whole-chat clears (`/clear`): not held against any message.
    pub clears: u64,
    /// Timeouts and bans where the rules had moderated one of the user's messages of the window.
    pub timeouts_and_bans_matched: u64,
}

/// One rule's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleFigures {
    /// Distinct messages it acted on.
    pub messages: u64,
    /// Its records by action (`delete`, `timeout`, `say`, ...).
    pub actions: BTreeMap<&'static str, u64>,
    /// Whether its records are shadow ones.
    pub shadow: bool,
    /// Of its moderated messages, those the moderators removed too.
    pub both: u64,
    /// Of its moderated messages, those the moderators left.
    pub only_rules: u64,
}

/// A message one side acted on and the other did not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub channel: String,
    pub msg_id: String,
    pub user: String,
    pub at_ms: u64,
    /// The rules that moderated it, or the moderators' action.
    pub by: Vec<String>,
    /// The message's first characters, as sent (JSON escapes it; the readable summary
    /// replaces control characters).
    pub text: String,
}

/// A message of the last window.
#[derive(Debug, Clone)]
struct Recent {
    channel: Arc<str>,
    id: String,
    user_id: String,
    login: String,
    at_ms: u64,
    excerpt: String,
}

/// What one side did to one message.
#[derive(Debug, Clone)]
struct Acted {
    message: Recent,
    by: BTreeSet<String>,
}

/// The sink of a comparing replay.
#[derive(Debug)]
pub struct Collector {
    options: Options,
    messages: u64,
    unattached: u64,
    recent: VecDeque<Recent>,
    /// Rule records per message id: any record.
    records: HashMap<String, Acted>,
    /// Moderation records per message id.
    moderated: HashMap<String, Acted>,
    /// Per message id, the rules' records by rule (rule, action, shadow).
    by_rule: HashMap<String, Vec<(String, &'static str, bool)>>,
    removed: HashMap<String, Acted>,
    actions: ModeratorActions,
    /// Last timeout or ban seen per (channel, user): (at, duration), to count a repeated line once.
    last_sanction: HashMap<(Arc<str>, String), (u64, Option<u64>)>,
    current: Option<Recent>,
}

impl Collector {
    pub fn new(options: Options) -> Collector {
        Collector {
            options,
            messages: 0,
            unattached: 0,
            recent: VecDeque::new(),
            records: HashMap::new(),
            moderated: HashMap::new(),
            by_rule: HashMap::new(),
            removed: HashMap::new(),
            actions: ModeratorActions::default(),
            last_sanction: HashMap::new(),
            current: None,
        }
    }

    fn remember(&mut self, recent: Recent) {
        let horizon = recent.at_ms.saturating_sub(self.options.window_ms);
        while self.recent.front().is_some_and(|r| r.at_ms < horizon) {
            self.recent.pop_front();
        }
        self.recent.push_back(recent);
    }

    /// A moderator timed out or banned `user_id` at `at_ms`.
    fn sanction(&mut self, channel: &Arc<str>, user_id: &str, duration_s: Option<u64>, at_ms: u64) {
        let key = (Arc::clone(channel), user_id.to_string());
        let repeated = self
            .last_sanction
            .get(&key)
            .is_some_and(|(at, d)| *d == duration_s && at_ms.saturating_sub(*at) < 1_000);
        self.last_sanction.insert(key, (at_ms, duration_s));
        let by = match duration_s {
            Some(s) => format!("moderator timeout {s} s"),
            None => "moderator ban".to_string(),
        };
        let from = at_ms.saturating_sub(self.options.window_ms);
        let hit: Vec<Recent> = self
            .recent
            .iter()
            .filter(|r| r.channel == *channel && r.user_id == user_id && r.at_ms >= from)
            .cloned()
            .collect();
        if !repeated {
            match duration_s {
                Some(_) => self.actions.timeouts += 1,
                None => self.actions.bans += 1,
            }
            if hit.iter().any(|r| self.moderated.contains_key(&r.id)) {
                self.actions.timeouts_and_bans_matched += 1;
            }
        }
        for message in hit {
            mark(&mut self.removed, message, &by);
        }
    }

    /// A moderator deleted the message `id`.
    fn delete(&mut self, channel: &Arc<str>, id: &str) {
        self.actions.deletes += 1;
        let message = self
            .recent
            .iter()
            .find(|r| r.channel == *channel && r.id == id)
            .cloned();
        if let Some(message) = message {
            mark(&mut self.removed, message, "moderator delete");
        }
    }

    /// The figures, once the replay has ended.
    pub fn finish(self) -> Comparison {
        let mut rules: BTreeMap<String, RuleFigures> = BTreeMap::new();
        for (id, entries) in &self.by_rule {
            let moderated = self.moderated.contains_key(id);
            let removed = self.removed.contains_key(id);
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for (rule, action, shadow) in entries {
                let figures = rules.entry(rule.clone()).or_default();
                *figures.actions.entry(action).or_default() += 1;
                figures.shadow |= *shadow;
                if seen.insert(rule) {
                    figures.messages += 1;
                    if moderated && is_moderation(action) {
                        match removed {
                            true => figures.both += 1,
                            false => figures.only_rules += 1,
                        }
                    }
                }
            }
        }
        let both = self
            .moderated
            .keys()
            .filter(|id| self.removed.contains_key(*id))
            .count() as u64;
        let only_rules = examples(&self.moderated, &self.removed, self.options.examples);
        let only_moderators = examples(&self.removed, &self.moderated, self.options.examples);
        let messages = self.messages;
        Comparison {
            messages,
            acted_on: self.records.len() as u64,
            acted_on_ratio: ratio(self.records.len() as u64, messages),
            unattached_records: self.unattached,
            moderated_by_rules: self.moderated.len() as u64,
            moderated_by_moderators: self.removed.len() as u64,
            moderators_ratio: ratio(self.removed.len() as u64, messages),
            both,
            only_rules: self.moderated.len() as u64 - both,
            only_moderators: self.removed.len() as u64 - both,
            moderator_actions: self.actions,
            rules,
            examples_only_rules: only_rules,
            examples_only_moderators: only_moderators,
            window_s: self.options.window_ms as f64 / 1000.0,
        }
    }
}

impl Sink for Collector {
    fn event(&mut self, event: &ChatEvent, at_ms: u64) {
        self.current = None;
        match &event.kind {
            EventKind::Message(m) => {
                self.messages += 1;
                let recent = Recent {
                    channel: Arc::clone(&event.channel),
                    id: m.id.clone(),
                    user_id: m.user.id.clone(),
                    login: m.user.login.clone(),
                    at_ms,
                    excerpt: m.text.chars().take(EXCERPT_CHARS).collect(),
                };
                self.current = Some(recent.clone());
                self.remember(recent);
            }
            EventKind::ChatCleared {
                user_id: Some(user),
                duration_s,
            } => self.sanction(&event.channel, user, *duration_s, at_ms),
            EventKind::ChatCleared { user_id: None, .. } => self.actions.clears += 1,
            EventKind::MessageDeleted { message_id } => self.delete(&event.channel, message_id),
            _ => {}
        }
    }

    fn record(&mut self, record: &ReplayRecord<'_>) -> anyhow::Result<()> {
        let message = match (&self.current, record.msg_id) {
            (Some(m), Some(id)) if m.id == id => m.clone(),
            _ => {
                self.unattached += 1;
                return Ok(());
            }
        };
        let rule = record.rule.unwrap_or("(say/reply)").to_string();
        let label = format!("{} {}", rule, record.action);
        mark(&mut self.records, message.clone(), &label);
        if is_moderation(record.action) {
            mark(&mut self.moderated, message.clone(), &label);
        }
        self.by_rule
            .entry(message.id)
            .or_default()
            .push((rule, record.action, record.shadow));
        Ok(())
    }
}

fn mark(map: &mut HashMap<String, Acted>, message: Recent, by: &str) {
    map.entry(message.id.clone())
        .or_insert_with(|| Acted {
            message,
            by: BTreeSet::new(),
        })
        .by
        .insert(by.to_string());
}

fn is_moderation(action: &str) -> bool {
    matches!(action, "delete" | "timeout" | "ban")
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The first `n` messages of `side` that `other` does not hold.
fn examples(
    side: &HashMap<String, Acted>,
    other: &HashMap<String, Acted>,
    n: usize,
) -> Vec<Example> {
    let mut only: Vec<&Acted> = side
        .iter()
        .filter(|(id, _)| !other.contains_key(*id))
        .map(|(_, acted)| acted)
        .collect();
    only.sort_by(|a, b| (a.message.at_ms, &a.message.id).cmp(&(b.message.at_ms, &b.message.id)));
    only.into_iter()
        .take(n)
        .map(|acted| Example {
            channel: acted.message.channel.to_string(),
            msg_id: acted.message.id.clone(),
            user: acted.message.login.clone(),
            at_ms: acted.message.at_ms,
            by: acted.by.iter().cloned().collect(),
            text: acted.message.excerpt.clone(),
        })
        .collect()
}

/// A readable summary of `c` for a terminal. Chat text in it is made inert: control
/// characters (terminal escapes) and bidirectional overrides become `?`.
pub fn summary(c: &Comparison) -> String {
    let mut out = String::new();
    let pct = |r: f64| r * 100.0;
    let a = &c.moderator_actions;
    let _ = writeln!(
        out,
        "{} chat messages; the rules act on {} ({:.1} %), {} records not tied to a message",
        c.messages,
        c.acted_on,
        pct(c.acted_on_ratio),
        c.unattached_records
    );
    let _ = writeln!(
        out,
        "moderators: {} timeouts, {} bans, {} deletes, {} clears; they removed {} messages ({:.1} %, window {} s)",
        a.timeouts, a.bans, a.deletes, a.clears, c.moderated_by_moderators, pct(c.moderators_ratio), c.window_s
    );
    let _ = writeln!(
        out,
        "moderated messages: both {}, only the rules {}, only the moderators {}; {} of {} moderator timeouts/bans matched by the rules",
        c.both,
        c.only_rules,
        c.only_moderators,
        a.timeouts_and_bans_matched,
        a.timeouts + a.bans
    );
    let _ = writeln!(
        out,
        "\n{:<24} {:>8} {:>6} {:>10}  actions",
        "rule", "messages", "both", "only rules"
    );
    for (rule, f) in &c.rules {
        let actions: Vec<String> = f.actions.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let shadow = if f.shadow { " (shadow)" } else { "" };
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>6} {:>10}  {}{}",
            inert(rule),
            f.messages,
            f.both,
            f.only_rules,
            actions.join(", "),
            shadow
        );
    }
    for (title, list) in [
        ("only the rules", &c.examples_only_rules),
        ("only the moderators", &c.examples_only_moderators),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} (first {}):", list.len());
        for e in list {
            let _ = writeln!(
                out,
                "  {} [{}] {}",
                inert(&e.user),
                inert(&e.by.join(", ")),
                inert(&e.text)
            );
        }
    }
    out
}

/// `text` with every control character and bidirectional control replaced by `?`.
fn inert(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChannelRules;

    fn privmsg(id: &str, user: &str, uid: &str, ts: u64, text: &str) -> String {
        format!(
            "@badge-info=;badges=;color=;display-name={user};emotes=;flags=;id={id};mod=0;room-id=1;subscriber=0;\
             tmi-sent-ts={ts};turbo=0;user-id={uid};user-type= :{user}!{user}@{user}.tmi.twitch.tv \
             PRIVMSG #chan :{text}\r"
        )
    }

    fn clearchat(uid: &str, user: &str, ts: u64, duration: Option<u64>) -> String {
        let d = duration.map_or(String::new(), |d| format!("ban-duration={d};"));
        format!(
            "@{d}room-id=1;target-user-id={uid};tmi-sent-ts={ts} :tmi.twitch.tv CLEARCHAT #chan :{user}"
        )
    }

    fn compare(lines: &[String], rules: &str, window_ms: u64) -> Comparison {
        let rules: ChannelRules = toml::from_str(rules).expect("rules");
        let rules = Arc::new(rules);
        let mut sink = Collector::new(Options {
            window_ms,
            examples: 10,
        });
        let input = lines.join("\n");
        super::super::run_into(
            input.as_bytes(),
            &|_| Arc::clone(&rules),
            None,
            &mut sink,
            super::super::Limits::NONE,
        )
        .expect("replay");
        sink.finish()
    }

    const CAPS: &str = r#"
[[filters]]
name = "caps"
kind = "caps"
min_length = 5
action = "delete"
silent = true
"#;

    #[test]
    fn both_only_rules_and_only_moderators_are_counted_per_message_and_rule() {
        let lines = vec![
            privmsg("m1", "loud", "1", 1_000, "HELLO EVERYONE"),
            privmsg("m2", "calm", "2", 2_000, "hello there"),
            privmsg("m3", "loud2", "3", 3_000, "SHOUTING AGAIN"),
            privmsg("m4", "troll", "4", 4_000, "a subtle insult"),
            // The moderators time out `loud` (twice the same line, counted once) and `troll`;
            // `loud2` is left alone.
            clearchat("1", "loud", 5_000, Some(600)),
            clearchat("1", "loud", 5_100, Some(600)),
            clearchat("4", "troll", 6_000, None),
            // Out of the window: `calm`'s message is 7 s older than this timeout.
            clearchat("2", "calm", 9_000, Some(10)),
        ];
        let c = compare(&lines, CAPS, 5_000);
        assert_eq!(c.messages, 4);
        assert_eq!(c.acted_on, 2);
        assert_eq!((c.both, c.only_rules, c.only_moderators), (1, 1, 1));
        assert_eq!(c.moderated_by_moderators, 2);
        assert_eq!(c.moderator_actions.timeouts, 2);
        assert_eq!(c.moderator_actions.bans, 1);
        assert_eq!(c.moderator_actions.timeouts_and_bans_matched, 1);
        let caps = &c.rules["caps"];
        assert_eq!((caps.messages, caps.both, caps.only_rules), (2, 1, 1));
        assert_eq!(caps.actions.get("delete"), Some(&2));
        assert_eq!(c.examples_only_rules[0].msg_id, "m3");
        assert_eq!(c.examples_only_moderators[0].msg_id, "m4");
        assert_eq!(c.examples_only_moderators[0].by, vec!["moderator ban"]);
        assert!((c.acted_on_ratio - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_moderator_delete_counts_against_its_one_message() {
        let lines = vec![
            privmsg("m1", "a", "1", 1_000, "first"),
            privmsg("m2", "a", "1", 1_500, "second"),
            "@login=a;room-id=1;target-msg-id=m2;tmi-sent-ts=2000 :tmi.twitch.tv CLEARMSG #chan :second"
                .to_string(),
        ];
        let c = compare(&lines, "", 60_000);
        assert_eq!(c.moderator_actions.deletes, 1);
        assert_eq!(c.moderated_by_moderators, 1);
        assert_eq!(c.examples_only_moderators[0].msg_id, "m2");
    }

    #[test]
    fn hostile_chat_text_cannot_drive_the_terminal() {
        let lines = vec![privmsg(
            "m1",
            "evil",
            "1",
            1_000,
            "CLEAR \u{1b}[2J\u{1b}]0;owned\u{7} SCREEN \u{202e}DESREVER",
        )];
        let c = compare(&lines, CAPS, 60_000);
        assert_eq!(c.only_rules, 1);
        let text = summary(&c);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
        assert!(
            text.contains("CLEAR ?[2J?]0;owned? SCREEN ?DESREVER"),
            "{text}"
        );
        // The JSON keeps the text as sent, escaped.
        let json = serde_json::to_string(&c).expect("json");
        assert!(json.contains("\\u001b[2J"), "{json}");
    }
}
