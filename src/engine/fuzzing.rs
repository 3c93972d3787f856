//! Property code of the `engine` fuzz target (`fuzz/fuzz_targets/engine.rs`), shared with the
//! suite's smoke run over its seeds (`fuzz/seeds/engine/`).
//!
//! An input is a channel's rules and a few chat events. The first byte picks how the rest is
//! read: even, as text (TOML rules, then a line `---`, then one event per line, see
//! [`events_from_text`]); odd, as a structured decode ([`Decoder`]) that builds rules and
//! events from dictionaries of meaningful pieces (templates, hostile chat, patterns), so
//! that the fuzzer reaches deep paths without having to find valid TOML. The property:
//! rules that compile (`ChannelState::with_rules`, the one compilation path the rules book
//! and `check-config` use) run every event without a panic, and every text the bot would
//! post ([`Action::Say`] and [`Action::Reply`]) is at most 500 characters and, when no text
//! the channel's owner (or a moderator's `!addcom`) wrote holds a command prefix, does not
//! start with one after trimming blanks ([`outgoing::leads_with_prefix`]). Withheld texts
//! name an existing filter, and the bounded state stays in its bounds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::outgoing::{self, is_prefix};
use super::rules::{
    BannedPhrase, BuiltinRule, ChannelRules, CommandRule, FilterKind, FilterRule, KeywordRule,
    ModAction, PhraseKind, ResponseKind, TimerRule,
};
use super::template::MAX_OUTPUT_CHARS;
use super::{
    handle, nuke, Action, ChannelState, ChatEvent, ChatMessage, ChatUser, EventKind, Level,
    Platform, Role,
};

/// One chat event of a fuzz input, `secs` after the previous one.
#[derive(Debug, Clone)]
pub struct FuzzEvent {
    pub secs: u64,
    pub kind: EventKind,
}

/// Runs one fuzz input (see the module docs). Panics when the property fails.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let decoded = if selector % 2 == 0 {
        from_text(&String::from_utf8_lossy(rest))
    } else {
        let mut decoder = Decoder::new(rest);
        Some((decoder.rules(), decoder.events()))
    };
    let Some((rules, events)) = decoded else {
        return;
    };
    run(rules, &events);
}

/// Runs `events` through a channel with `rules`, if they compile, checking the property.
pub fn run(rules: ChannelRules, events: &[FuzzEvent]) {
    let Ok(mut state) = ChannelState::with_rules("fuzzchan", rules, 7) else {
        return;
    };
    // An edit that changes nothing takes the rebuild path (filters reused) and must work.
    state
        .edit_rules(|_| {})
        .expect("compiled rules compile again");
    let mut now = epoch();
    for event in events {
        now += Duration::from_secs(event.secs);
        let strict = !owner_text_has_prefix(&state.rules);
        let chat = ChatEvent {
            platform: Platform::Twitch,
            channel: "fuzzchan".into(),
            kind: event.kind.clone(),
        };
        let actions = handle(&mut state, &chat, now);
        for action in &actions {
            check_action(&state, action, strict);
        }
        let _ = state.take_changes();
        let tick = ChatEvent {
            kind: EventKind::Tick,
            ..chat
        };
        for action in handle(&mut state, &tick, now + Duration::from_millis(500)) {
            check_action(&state, &action, strict);
        }
    }
    let runtime = &state.runtime;
    assert!(runtime.scrollback.bytes() <= nuke::SCROLLBACK_BYTES);
    assert!(runtime.scrollback.len() <= nuke::SCROLLBACK_MESSAGES);
    assert!(runtime.warnings.len() <= runtime.warnings.cap());
    assert!(runtime.user_cooldowns.len() <= runtime.user_cooldowns.cap());
    assert!(runtime.global_cooldowns.len() <= runtime.global_cooldowns.cap());
}

fn check_action(state: &ChannelState, action: &Action, strict: bool) {
    match action {
        Action::Say { text } | Action::Reply { text, .. } => {
            let chars = text.chars().count();
            assert!(chars <= MAX_OUTPUT_CHARS, "{chars} characters posted");
            assert!(
                !(strict && outgoing::leads_with_prefix(text)),
                "posted text leads with a command prefix: {text:?}"
            );
        }
        Action::Withheld { rule, would } => {
            assert!(
                state.rules.filters.iter().any(|f| &f.name == rule),
                "withheld by an unknown filter {rule:?}"
            );
            assert!(would.chat_text().is_some(), "only texts are withheld");
        }
        Action::Shadow { would, .. } => assert!(!matches!(**would, Action::Shadow { .. })),
        _ => {}
    }
}

/// Whether any text the rules' owner wrote (templates of commands, keywords, timers, filter
/// messages) holds a command prefix somewhere: then a posted text may lead with one on the
/// owner's say-so, and the lead invariant is not checked.
pub fn owner_text_has_prefix(rules: &ChannelRules) -> bool {
    let has = |text: &str| text.chars().any(is_prefix);
    rules.commands.iter().any(|c| has(&c.response))
        || rules.keywords.iter().any(|k| has(&k.response))
        || rules.timers.iter().any(|t| has(&t.message))
        || rules.filters.iter().any(|f| {
            f.message.as_deref().is_some_and(has) || f.warning_message.as_deref().is_some_and(has)
        })
}

/// Text form: TOML rules, a line `---`, then events (see [`events_from_text`]). `None` when
/// the rules do not parse.
pub fn from_text(text: &str) -> Option<(ChannelRules, Vec<FuzzEvent>)> {
    let (rules, events) = match text.split_once("\n---\n") {
        Some((rules, events)) => (rules, events),
        None => (text, ""),
    };
    let rules: ChannelRules = toml::from_str(rules).ok()?;
    Some((rules, events_from_text(events)))
}

/// One event per line: `#tick`, `#live`, `#offline`, `+N` (N seconds pass), or a message
/// `R text` where the digit `R` is the author's role (0 everyone, 1 subscriber, 2 VIP,
/// 3 moderator, 4 broadcaster; anything else everyone) and the author is `user<R>`. At most
/// 64 events.
pub fn events_from_text(text: &str) -> Vec<FuzzEvent> {
    let mut events = Vec::new();
    let mut secs = 0;
    for (i, line) in text.lines().take(64).enumerate() {
        let kind = match line {
            "#tick" => EventKind::Tick,
            "#live" | "#offline" => EventKind::StreamStatus {
                online: line == "#live",
                started_at_ms: None,
            },
            _ if line.starts_with('+') => {
                secs += line[1..].trim().parse::<u64>().unwrap_or(0).min(86_400);
                continue;
            }
            _ => {
                let (role, body) =
                    line.split_at(line.char_indices().nth(1).map_or(line.len(), |(b, _)| b));
                let role = role
                    .parse::<usize>()
                    .ok()
                    .and_then(|r| ROLES.get(r).copied());
                let role = role.unwrap_or(Role::Everyone);
                let login = format!("user{}", role as u8);
                let body = body.strip_prefix(' ').unwrap_or(body);
                EventKind::Message(message(i, &login, &login, role, body))
            }
        };
        events.push(FuzzEvent {
            secs: std::mem::take(&mut secs),
            kind,
        });
    }
    events
}

const ROLES: [Role; 5] = [
    Role::Everyone,
    Role::Subscriber,
    Role::Vip,
    Role::Moderator,
    Role::Broadcaster,
];

fn message(i: usize, login: &str, display: &str, role: Role, text: &str) -> ChatMessage {
    ChatMessage {
        id: format!("m{i}"),
        user: ChatUser {
            id: format!("id-{login}"),
            login: login.to_string(),
            display_name: display.to_string(),
            role,
        },
        text: text.to_string(),
        ..ChatMessage::default()
    }
}

/// Owner-written template pieces with no command prefix in them.
const OWNER: &[&str] = &[
    "hi ",
    "$(user)",
    "$(touser)",
    "$(query)",
    "$(args)",
    "$(1)",
    "$(2)",
    "$(count)",
    "$(random 1 9)",
    "$(count.increment n)",
    "$(count.get n)",
    "$(uptime)",
    "$(time)",
    "$(channel)",
    " ",
    "\u{200B}",
    "ba",
    "dword",
    "spam",
    "evil",
    "$",
    "é",
    "\u{FDFA}",
];

/// Owner pieces that hold prefixes (the lead invariant is then not checked).
const OWNER_LOOSE: &[&str] = &["!", "/", ".", "!so ", "/me ", "see example.com "];

/// Hostile chat pieces.
const CHAT: &[&str] = &[
    "!echo ",
    "!ping",
    "!addcom ",
    "!editcom ",
    "!delcom ",
    "!permit ",
    "!filters ",
    "on ",
    "off ",
    "!nuke ",
    "!nukeundo",
    "!c0 ",
    "!c1 ",
    "!c2 ",
    "!a0 ",
    "@",
    "!",
    "/",
    ".",
    " ",
    "\u{200B}",
    "\u{FEFF}",
    "\u{E0001}",
    "\u{202E}",
    "\u{0301}",
    "\u{2800}",
    "！",
    "ban ",
    "spam ",
    "badword ",
    "ba ",
    "dword ",
    "evil.com ",
    "http://x.tv/a ",
    "$(user) ",
    "$(",
    ")",
    "timeout 5",
    " delete",
    " ban",
    " 60",
    "/sp.m/ ",
    "/(/ ",
    "\u{FDFA}",
    "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ",
    "aaaaaaaaaaaaaaaaaaaaaaaaa ",
    "pwn ",
    "c0",
    "filter0 ",
];

const NAMES: &[&str] = &[
    "amy",
    "Bob",
    "reggie",
    "!Pwn",
    "\u{200B}/ban x",
    "evil.com",
    "badword",
    "",
];

/// Reads rules and events from bytes; past the end every read is zero.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to `max` pieces from `dict`; a piece byte above 240 takes a few raw bytes instead.
    fn text(&mut self, dict: &[&str], max: usize) -> String {
        let mut out = String::new();
        for _ in 0..self.below(max + 1) {
            let b = self.byte();
            if b > 240 {
                let len = usize::from(b - 240).min(self.data.len().saturating_sub(self.pos));
                let raw = &self.data[self.pos.min(self.data.len())..][..len];
                out.push_str(&String::from_utf8_lossy(raw));
                self.pos += len;
            } else {
                out.push_str(dict[usize::from(b) % dict.len()]);
            }
        }
        out
    }

    fn owner_text(&mut self, loose: bool, max: usize) -> String {
        if loose && self.below(4) == 0 {
            let mut text = self.text(OWNER_LOOSE, 1);
            text.push_str(&self.text(OWNER, max));
            text
        } else {
            self.text(OWNER, max)
        }
    }

    fn level(&mut self) -> Level {
        self.pick(&[
            Level::Everyone,
            Level::Subscriber,
            Level::Regular,
            Level::Vip,
            Level::Moderator,
            Level::Broadcaster,
        ])
    }

    fn action(&mut self) -> ModAction {
        self.pick(&[
            ModAction::Delete,
            ModAction::Timeout(5),
            ModAction::Ban,
            ModAction::Timeout(600),
        ])
    }

    /// Rules with a few items of every kind.
    pub fn rules(&mut self) -> ChannelRules {
        let loose = self.flag();
        let mut rules = ChannelRules {
            regulars: vec!["reggie".into()],
            ..ChannelRules::default()
        };
        if self.flag() {
            rules.builtins.echo = BuiltinRule {
                level: Some(self.level()),
                global_cooldown_s: Some(self.pick(&[0, 1, 5])),
                user_cooldown_s: Some(self.pick(&[0, 1, 10])),
                enabled: Some(self.below(8) != 0),
            };
        }
        for i in 0..self.below(4) {
            let name = if self.below(16) == 0 {
                self.pick(&["!echo", "bad", "!x\u{1f}", "!c0"]).to_string()
            } else {
                format!("!c{i}")
            };
            rules.commands.push(CommandRule {
                name,
                aliases: if self.flag() {
                    vec![format!("!a{i}")]
                } else {
                    Vec::new()
                },
                response: self.owner_text(loose, 6),
                response_type: self.pick(&[
                    ResponseKind::Say,
                    ResponseKind::Reply,
                    ResponseKind::Mention,
                ]),
                level: self.level(),
                global_cooldown_s: self.pick(&[0, 0, 1, 10]),
                user_cooldown_s: self.pick(&[0, 0, 1, 10]),
                enabled: self.below(8) != 0,
                shadow: self.below(8) == 0,
            });
        }
        for i in 0..self.below(3) {
            let regex = self
                .flag()
                .then(|| self.pick(&["\\bspam\\b", "ba+d", "x{2,}", "(", "(?x)spam#"]))
                .map(str::to_string);
            let groups = if regex.is_none() || self.flag() {
                vec![vec![self
                    .pick(&["spam", "ba", "hi", "é", "evil"])
                    .to_string()]]
            } else {
                Vec::new()
            };
            rules.keywords.push(KeywordRule {
                name: format!("k{i}"),
                groups,
                regex,
                case_sensitive: self.below(4) == 0,
                response: self.owner_text(loose, 4),
                response_type: self.pick(&[ResponseKind::Say, ResponseKind::Mention]),
                level: Level::Everyone,
                global_cooldown_s: self.pick(&[0, 5]),
                user_cooldown_s: self.pick(&[0, 5]),
                enabled: true,
                shadow: self.below(8) == 0,
            });
        }
        for i in 0..self.below(2) {
            rules.timers.push(TimerRule {
                name: format!("t{i}"),
                message: self.owner_text(loose, 3),
                interval_s: self.pick(&[1, 5, 60]),
                min_lines: self.pick(&[0, 1, 3]),
                online_only: self.flag(),
                enabled: true,
                shadow: false,
            });
        }
        for i in 0..self.below(4) {
            let filter = self.filter(i, loose);
            rules.filters.push(filter);
        }
        rules
    }

    fn filter(&mut self, i: usize, loose: bool) -> FilterRule {
        let kind = self.pick(&[
            FilterKind::BannedPhrases,
            FilterKind::BannedPhrases,
            FilterKind::Links,
            FilterKind::Caps,
            FilterKind::Symbols,
            FilterKind::Emotes,
            FilterKind::Repetition,
            FilterKind::Length,
            FilterKind::Zalgo,
        ]);
        let mut phrases = Vec::new();
        if kind == FilterKind::BannedPhrases {
            for _ in 0..=self.below(3) {
                let (pattern, kind) = self.pick(&[
                    ("badword", PhraseKind::Plain),
                    ("spam", PhraseKind::Plain),
                    ("ba*d", PhraseKind::Wildcard),
                    ("\\bevil\\b", PhraseKind::Regex),
                    ("(?x)spam#", PhraseKind::Regex),
                    ("pwn", PhraseKind::Plain),
                ]);
                phrases.push(BannedPhrase {
                    pattern: pattern.to_string(),
                    kind,
                    action: self.flag().then(|| self.action()),
                    expires_at_ms: None,
                    online_only: self.below(8) == 0,
                    offline_only: false,
                });
            }
        }
        let message = self.flag().then(|| self.owner_text(loose, 3));
        FilterRule {
            name: format!("filter{i}"),
            kind,
            min_length: 3,
            max_share: 0.5,
            max_count: 3,
            max_word_repeats: 2,
            max_char_run: 5,
            max_length: 40,
            allow_domains: if self.flag() {
                vec!["x.tv".into()]
            } else {
                Vec::new()
            },
            phrases,
            exempt: self.level(),
            action: self.action(),
            warning_first: self.flag(),
            warning_action: self.action(),
            warning_expiry_s: 600,
            message,
            warning_message: None,
            message_user_cooldown_s: self.pick(&[0, 300]),
            message_global_cooldown_s: self.pick(&[0, 5]),
            silent: self.below(4) == 0,
            enabled: self.below(8) != 0,
            shadow: self.below(8) == 0,
        }
    }

    /// Up to 24 events: mostly messages of hostile chat, some ticks and stream changes.
    pub fn events(&mut self) -> Vec<FuzzEvent> {
        let mut events = Vec::new();
        for i in 0..1 + self.below(24) {
            let secs = self.pick(&[0, 0, 1, 5, 61]);
            let kind = match self.byte() {
                0..=229 => {
                    let role = self.pick(&ROLES);
                    let login = self.pick(NAMES);
                    let display = self.pick(NAMES);
                    let text = self.text(CHAT, 8);
                    EventKind::Message(message(i, login, display, role, &text))
                }
                230..=239 => EventKind::Tick,
                b => EventKind::StreamStatus {
                    online: b % 2 == 0,
                    started_at_ms: None,
                },
            };
            events.push(FuzzEvent { secs, kind });
        }
        events
    }
}

/// When fuzz inputs are timed: a fixed epoch, so runs reproduce.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::XorShift;

    fn seeds() -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/engine");
        let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("fuzz/seeds/engine exists")
            .map(|entry| {
                let path = entry.expect("seed entry").path();
                let data = std::fs::read(&path).expect("seed readable");
                (path.display().to_string(), data)
            })
            .collect();
        seeds.sort();
        seeds
    }

    #[test]
    fn the_engine_fuzz_target_passes_its_seeds_and_random_inputs() {
        let seeds = seeds();
        assert!(seeds.len() >= 4, "seeds present: {}", seeds.len());
        let mut compiled = 0;
        for (name, data) in &seeds {
            check(data);
            if data.first().is_some_and(|b| b % 2 == 0) {
                let text = String::from_utf8_lossy(&data[1..]);
                let (rules, _) = from_text(&text).unwrap_or_else(|| panic!("{name} parses"));
                compiled += usize::from(ChannelState::with_rules("c", rules, 0).is_ok());
            }
        }
        assert!(compiled >= 2, "text seeds with valid rules: {compiled}");
        let mut rng = XorShift::from_seed(2026);
        for len in 0..400usize {
            let data: Vec<u8> = (0..len * 2).map(|_| rng.next_u64() as u8).collect();
            check(&data);
        }
    }

    #[test]
    fn the_structured_decoder_makes_rules_that_compile_and_strict_inputs() {
        let mut rng = XorShift::from_seed(7);
        let (mut ok, mut strict) = (0, 0);
        for _ in 0..200 {
            let data: Vec<u8> = (0..300).map(|_| rng.next_u64() as u8).collect();
            let rules = Decoder::new(&data).rules();
            strict += usize::from(!owner_text_has_prefix(&rules));
            ok += usize::from(ChannelState::with_rules("c", rules, 0).is_ok());
        }
        assert!(ok >= 100, "{ok} of 200 decoded rule sets compile");
        assert!(strict >= 50, "{strict} of 200 check the lead invariant");
    }

    #[test]
    fn a_lead_the_engine_lets_through_is_caught() {
        let text = "3 !echo x\n";
        let (rules, events) = from_text(&format!("\n---\n{text}")).expect("empty rules");
        assert_eq!(events.len(), 1);
        let mut s = ChannelState::with_rules("c", rules, 0).expect("valid");
        let chat = ChatEvent {
            platform: Platform::Twitch,
            channel: "c".into(),
            kind: events[0].kind.clone(),
        };
        let actions = handle(&mut s, &chat, epoch());
        assert_eq!(crate::engine::tests::texts(&actions), ["x"]);
        let result = std::panic::catch_unwind(|| {
            check_action(
                &s,
                &Action::Say {
                    text: "\u{200B}!x".into(),
                },
                true,
            )
        });
        assert!(result.is_err(), "the invariant fails on a prefixed lead");
    }
}
