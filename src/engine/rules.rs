//! Channel rules: the configuration a channel's owners write (TOML or JSON) and moderators
//! edit from chat.
//!
//! [`ChannelRules`] is plain data (serde in and out). [`ChannelRules::validate`] checks every
//! item and names the item and the fault in its [`RuleError`]; the engine never runs rules that
//! did not validate. Everything is bounded: counts of items, pattern lengths, regex program
//! sizes (the `regex` crate is linear-time; a pattern whose compiled program exceeds
//! [`REGEX_SIZE_LIMIT`] is refused), durations.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::roles::Level;
use super::template::Template;

/// Largest compiled program one regex may have, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest pattern (phrase or regex) accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 500;
/// Longest timeout Twitch accepts (two weeks), in seconds.
pub const MAX_TIMEOUT_S: u64 = 1_209_600;
const MAX_COMMANDS: usize = 1000;
const MAX_KEYWORDS: usize = 200;
const MAX_TIMERS: usize = 100;
const MAX_FILTERS: usize = 100;
const MAX_PHRASES: usize = 5000;
const MAX_REGULARS: usize = 10_000;
const MAX_COOLDOWN_S: u64 = 86_400;
/// Commands the engine answers itself; custom commands may not take these names.
pub const RESERVED_COMMANDS: &[&str] = &[
    "!ping",
    "!echo",
    "!addcom",
    "!editcom",
    "!delcom",
    "!permit",
    "!filters",
    "!nuke",
    "!nukeundo",
];

/// A rule that does not validate: which item, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {fault}")]
pub struct RuleError {
    pub item: String,
    pub fault: String,
}

fn fault(item: impl Into<String>, fault: impl ToString) -> RuleError {
    RuleError {
        item: item.into(),
        fault: fault.to_string(),
    }
}

/// Why a pattern (banned phrase, keyword, nuke) does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern longer than {MAX_PATTERN_CHARS} characters")]
    TooLong,
    #[error("regex is too large (compiled program over {REGEX_SIZE_LIMIT} bytes); simplify it")]
    TooLarge,
    #[error("invalid regex: {0}")]
    Invalid(String),
}

/// Why a command name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandNameError {
    #[error("name must be '!' followed by 1 to 31 non-space, non-control characters")]
    Shape,
    #[error("name is a built-in command")]
    BuiltIn,
}

/// A moderation action as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModAction {
    #[default]
    Delete,
    /// Timeout for this many seconds.
    Timeout(u64),
    Ban,
}

impl ModAction {
    /// Orders actions by harshness: ban > longer timeout > shorter timeout > delete.
    pub fn severity(self) -> (u8, u64) {
        match self {
            ModAction::Delete => (1, 0),
            ModAction::Timeout(s) => (2, s),
            ModAction::Ban => (3, 0),
        }
    }
}

/// How a command or keyword response is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseKind {
    /// A plain message.
    #[default]
    Say,
    /// A threaded reply to the triggering message.
    Reply,
    /// A plain message starting with `@user`.
    Mention,
}

fn yes() -> bool {
    true
}

/// Everything a channel configures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelRules {
    /// Logins the channel trusts (level `regular`, between subscriber and VIP).
    pub regulars: Vec<String>,
    pub commands: Vec<CommandRule>,
    pub keywords: Vec<KeywordRule>,
    pub timers: Vec<TimerRule>,
    pub filters: Vec<FilterRule>,
    pub nuke: NukeSettings,
    /// Who may use the built-in commands and how often (`[builtins.echo]`, `[builtins.ping]`).
    #[serde(skip_serializing_if = "BuiltinSettings::is_default")]
    pub builtins: BuiltinSettings,
    /// Channel-level raid defences (`[defence]`; off unless enabled).
    #[serde(skip_serializing_if = "DefenceSettings::is_default")]
    pub defence: DefenceSettings,
}

/// One response step of the raid defence, engaged in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefenceStep {
    /// Twitch's Shield Mode (`PUT /moderation/shield_mode`).
    ShieldMode,
    /// Followers-only chat for followers of at least this many minutes (0 = any follower).
    FollowersOnly(u64),
    EmoteOnly,
    /// Slow mode: one message per this many seconds per user (3..=120).
    Slow(u64),
    SubscribersOnly,
}

/// What a channel does with an account another channel of the service banned for a filter hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrossChannel {
    /// Nothing (the default).
    #[default]
    Off,
    /// Time the account out for this many seconds on its first message here.
    Timeout(u64),
    /// Ban it here at once, before it says anything.
    Ban,
}

/// `[defence]`: detection thresholds and the response steps of the channel's raid defence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DefenceSettings {
    pub enabled: bool,
    /// Records what it would do ("would have engaged Shield Mode") without acting.
    pub shadow: bool,
    /// The detection window, in seconds.
    pub window_s: u64,
    /// Engage when the filters took more moderation actions than this within the window
    /// (0: not checked).
    pub max_moderation_actions: u64,
    /// Engage when more than this share (0..=1) of the window's messages come from first-time
    /// chatters, over at least `min_messages` messages (0: not checked).
    pub max_first_time_share: f64,
    pub min_messages: u64,
    /// Engage when, less than `raid_window_s` after a raid arrived, the filters took at least
    /// this many actions within the window (0: not checked).
    pub raid_filter_hits: u64,
    pub raid_window_s: u64,
    /// Engage when the channel's waiting moderation calls need more than this many seconds
    /// to go out at the token's Helix budget, as the transport reports (0: not checked).
    pub max_backlog_s: u64,
    /// What to do, in order: the first step on detection, the next after `escalate_after_s`
    /// if the raid goes on.
    pub steps: Vec<DefenceStep>,
    pub escalate_after_s: u64,
    /// Every engaged step is reverted after this many seconds without a detection.
    pub calm_s: u64,
    /// Tell chat when a step is engaged or reverted (a fixed text; moderators end it with
    /// `!raidoff`, see it with `!raidstatus`).
    pub announce: bool,
    /// Accounts banned for a filter hit in another channel of this service: `"off"`,
    /// `{ timeout = N }` on their first message here, or `"ban"` at once (independent of
    /// `enabled`).
    pub cross_channel: CrossChannel,
}

impl Default for DefenceSettings {
    fn default() -> Self {
        DefenceSettings {
            enabled: false,
            shadow: false,
            window_s: 10,
            max_moderation_actions: 20,
            max_first_time_share: 0.5,
            min_messages: 30,
            raid_filter_hits: 5,
            raid_window_s: 120,
            max_backlog_s: 10,
            steps: vec![DefenceStep::ShieldMode],
            escalate_after_s: 30,
            calm_s: 120,
            announce: true,
            cross_channel: CrossChannel::Off,
        }
    }
}

impl DefenceSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The built-in commands' permissions and cooldowns. Every field left out keeps the
/// built-in's default: `!ping` is for everyone with no cooldown; `!echo` (which posts what it
/// is given) is for moderators, with a 5 s global and 10 s per-user cooldown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinSettings {
    #[serde(skip_serializing_if = "BuiltinRule::is_unset")]
    pub ping: BuiltinRule,
    #[serde(skip_serializing_if = "BuiltinRule::is_unset")]
    pub echo: BuiltinRule,
}

impl BuiltinSettings {
    /// Whether nothing is configured (every built-in on its defaults).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// `!ping`'s effective settings.
    pub fn ping(&self) -> BuiltinLimits {
        self.ping.or(BuiltinLimits {
            level: Level::Everyone,
            global_cooldown_s: 0,
            user_cooldown_s: 0,
            enabled: true,
        })
    }

    /// `!echo`'s effective settings.
    pub fn echo(&self) -> BuiltinLimits {
        self.echo.or(BuiltinLimits {
            level: Level::Moderator,
            global_cooldown_s: 5,
            user_cooldown_s: 10,
            enabled: true,
        })
    }
}

/// What a channel sets for one built-in command; anything unset keeps the built-in's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinRule {
    /// Lowest level allowed to use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_cooldown_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_cooldown_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl BuiltinRule {
    fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    fn or(&self, default: BuiltinLimits) -> BuiltinLimits {
        BuiltinLimits {
            level: self.level.unwrap_or(default.level),
            global_cooldown_s: self.global_cooldown_s.unwrap_or(default.global_cooldown_s),
            user_cooldown_s: self.user_cooldown_s.unwrap_or(default.user_cooldown_s),
            enabled: self.enabled.unwrap_or(default.enabled),
        }
    }
}

/// A built-in command's effective permission and cooldowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinLimits {
    pub level: Level,
    pub global_cooldown_s: u64,
    pub user_cooldown_s: u64,
    pub enabled: bool,
}

/// A custom command such as `!discord`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRule {
    /// Name including the prefix, e.g. `!discord`; matched case-insensitively.
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Response template.
    pub response: String,
    #[serde(default)]
    pub response_type: ResponseKind,
    /// Lowest level allowed to use it.
    #[serde(default)]
    pub level: Level,
    /// Seconds between two answers in the channel (default 5; 0 for none).
    #[serde(default = "default_command_cooldown")]
    #[schema(default = 5)]
    pub global_cooldown_s: u64,
    #[serde(default)]
    pub user_cooldown_s: u64,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    #[serde(default)]
    pub shadow: bool,
}

/// A response to message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    pub name: String,
    /// Phrase groups: every phrase of a group must occur; any one group suffices.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// A regex that also triggers it (in addition to the groups).
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    pub response: String,
    #[serde(default)]
    pub response_type: ResponseKind,
    #[serde(default)]
    pub level: Level,
    /// Seconds between two answers in the channel (default 30; 0 for none).
    #[serde(default = "default_keyword_cooldown")]
    #[schema(default = 30)]
    pub global_cooldown_s: u64,
    #[serde(default)]
    pub user_cooldown_s: u64,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    #[serde(default)]
    pub shadow: bool,
}

/// A message posted every `interval_s` if at least `min_lines` chat lines passed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerRule {
    pub name: String,
    pub message: String,
    pub interval_s: u64,
    #[serde(default)]
    pub min_lines: u64,
    #[serde(default)]
    pub online_only: bool,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    #[serde(default)]
    pub shadow: bool,
}

/// What a moderation filter looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    Caps,
    Links,
    Symbols,
    Emotes,
    Repetition,
    Length,
    Zalgo,
    BannedPhrases,
}

/// How a banned phrase is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhraseKind {
    /// A substring.
    #[default]
    Plain,
    /// A substring where `*` stands for any run of characters.
    Wildcard,
    /// A regex (linear-time `regex` syntax), matched on folded text; `\b` is an ASCII word
    /// boundary there.
    Regex,
}

/// One banned phrase. Matching is on folded text (case, accents, zalgo, look-alikes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BannedPhrase {
    pub pattern: String,
    #[serde(default)]
    pub kind: PhraseKind,
    /// Overrides the filter's action for this phrase.
    #[serde(default)]
    pub action: Option<ModAction>,
    /// The phrase stops applying at this time (ms since the epoch).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub online_only: bool,
    #[serde(default)]
    pub offline_only: bool,
}

/// A moderation filter: what it detects (`kind` and its parameters) and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterRule {
    pub name: String,
    pub kind: FilterKind,
    /// caps, symbols: messages with fewer counted characters are ignored.
    #[serde(default)]
    pub min_length: usize,
    /// caps, symbols: largest allowed share (0..=1) of upper-case letters / symbols.
    #[serde(default = "default_share")]
    #[schema(default = 0.7)]
    pub max_share: f64,
    /// emotes: most emotes allowed; zalgo: most combining marks allowed.
    #[serde(default)]
    pub max_count: usize,
    /// repetition: most times one word may appear (0 = not checked).
    #[serde(default)]
    pub max_word_repeats: usize,
    /// repetition: longest run of one character (0 = not checked).
    #[serde(default)]
    pub max_char_run: usize,
    /// length: most characters allowed.
    #[serde(default)]
    pub max_length: usize,
    /// links: domains allowed (subdomains included).
    #[serde(default)]
    pub allow_domains: Vec<String>,
    /// banned_phrases: the phrases.
    #[serde(default)]
    pub phrases: Vec<BannedPhrase>,
    /// Users at this level or above are exempt.
    #[serde(default = "default_exempt")]
    #[schema(default = "moderator")]
    pub exempt: Level,
    #[serde(default)]
    pub action: ModAction,
    /// First offence gets `warning_action`; another within `warning_expiry_s` gets `action`.
    #[serde(default)]
    pub warning_first: bool,
    #[serde(default)]
    pub warning_action: ModAction,
    #[serde(default = "default_warning_expiry")]
    #[schema(default = 600)]
    pub warning_expiry_s: u64,
    /// Template posted when the filter acts (unless `silent`).
    #[serde(default)]
    pub message: Option<String>,
    /// Template posted on a warning (falls back to `message`).
    #[serde(default)]
    pub warning_message: Option<String>,
    /// A user is sent this filter's message at most once per this many seconds (later hits
    /// still act, silently): one warning text per offender, not one per message.
    #[serde(default = "default_message_user_cooldown")]
    #[schema(default = 300)]
    pub message_user_cooldown_s: u64,
    /// The filter posts at most one message per this many seconds in the channel (a raid of
    /// fresh accounts would otherwise fill the send window with warnings).
    #[serde(default = "default_message_global_cooldown")]
    #[schema(default = 5)]
    pub message_global_cooldown_s: u64,
    #[serde(default)]
    pub silent: bool,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    #[serde(default)]
    pub shadow: bool,
}

fn default_share() -> f64 {
    0.7
}

fn default_exempt() -> Level {
    Level::Moderator
}

fn default_warning_expiry() -> u64 {
    600
}

fn default_message_user_cooldown() -> u64 {
    300
}

fn default_message_global_cooldown() -> u64 {
    5
}

/// A custom command's global cooldown when its rule gives none: Nightbot's 5 s minimum.
pub const DEFAULT_COMMAND_COOLDOWN_S: u64 = 5;

/// A keyword's global cooldown when its rule gives none: keywords answer what anyone writes,
/// so one answer per half minute is the most a channel sees unless its rules say otherwise.
pub const DEFAULT_KEYWORD_COOLDOWN_S: u64 = 30;

fn default_command_cooldown() -> u64 {
    DEFAULT_COMMAND_COOLDOWN_S
}

fn default_keyword_cooldown() -> u64 {
    DEFAULT_KEYWORD_COOLDOWN_S
}

/// Defaults and limits of `!nuke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NukeSettings {
    /// How long a nuke keeps acting on new matching messages, in seconds.
    pub window_s: u64,
    /// Scrollback searched when the command gives none, in seconds (at most 600).
    pub default_scrollback_s: u64,
    pub default_action: ModAction,
    /// Users at this level or above are never nuked.
    pub exempt: Level,
}

impl Default for NukeSettings {
    fn default() -> Self {
        Self {
            window_s: 120,
            default_scrollback_s: 60,
            default_action: ModAction::Timeout(60),
            exempt: Level::Vip,
        }
    }
}

/// Compiles `pattern` as a case-insensitive (unless told) regex within the size limit.
pub fn build_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, PatternError> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(PatternError::TooLong);
    }
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => PatternError::TooLarge,
            other => PatternError::Invalid(other.to_string()),
        })
}

/// Rewrites `\b` and `\B` as ASCII word boundaries. Used for patterns matched on folded text
/// (mostly ASCII), which keeps the regex crate on its fast DFA instead of its PikeVM even when
/// a message holds emoji or other non-ASCII characters.
pub fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The regex source (for folded text) of a wildcard phrase: `*` is any run of characters.
pub fn wildcard_to_regex(folded: &str) -> String {
    folded
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*")
}

impl ChannelRules {
    /// Checks every item; the error names the first bad item and its fault.
    pub fn validate(&self) -> Result<(), RuleError> {
        self.validate_except_filters()?;
        self.filters.iter().try_for_each(validate_filter)?;
        unique(self.filters.iter().map(|f| &f.name), "filter")
    }

    /// [`ChannelRules::validate`] without the (already validated, unchanged) filters.
    pub fn validate_except_filters(&self) -> Result<(), RuleError> {
        self.validate_counts()?;
        for login in &self.regulars {
            if login.is_empty() || login.contains(char::is_whitespace) {
                return Err(fault(format!("regular '{login}'"), "must be one login"));
            }
        }
        self.validate_commands()?;
        self.keywords.iter().try_for_each(validate_keyword)?;
        self.timers.iter().try_for_each(validate_timer)?;
        unique(self.keywords.iter().map(|k| &k.name), "keyword")?;
        unique(self.timers.iter().map(|t| &t.name), "timer")?;
        for (name, limits) in [
            ("ping", self.builtins.ping()),
            ("echo", self.builtins.echo()),
        ] {
            let item = format!("builtins.{name}");
            check_cooldowns(&item, limits.global_cooldown_s, limits.user_cooldown_s)?;
        }
        validate_nuke(&self.nuke)?;
        validate_defence(&self.defence)
    }

    fn validate_counts(&self) -> Result<(), RuleError> {
        let phrases: usize = self.filters.iter().map(|f| f.phrases.len()).sum();
        let counts = [
            ("commands", self.commands.len(), MAX_COMMANDS),
            ("keywords", self.keywords.len(), MAX_KEYWORDS),
            ("timers", self.timers.len(), MAX_TIMERS),
            ("filters", self.filters.len(), MAX_FILTERS),
            ("banned phrases", phrases, MAX_PHRASES),
            ("regulars", self.regulars.len(), MAX_REGULARS),
        ];
        for (item, count, max) in counts {
            if count > max {
                return Err(fault(item, format!("{count} given, at most {max} allowed")));
            }
        }
        Ok(())
    }

    fn validate_commands(&self) -> Result<(), RuleError> {
        let mut seen = std::collections::BTreeSet::new();
        for command in &self.commands {
            validate_command(command)?;
            for name in std::iter::once(&command.name).chain(&command.aliases) {
                if !seen.insert(name.to_lowercase()) {
                    let item = format!("command '{}'", command.name);
                    return Err(fault(item, format!("name '{name}' is used twice")));
                }
            }
        }
        Ok(())
    }
}

fn unique<'a>(names: impl Iterator<Item = &'a String>, what: &str) -> Result<(), RuleError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if name.trim().is_empty() {
            return Err(fault(what, "has an empty name"));
        }
        if name.contains(char::is_control) {
            return Err(fault(
                format!("{what} {name:?}"),
                "name holds a control character",
            ));
        }
        if !seen.insert(name.to_lowercase()) {
            return Err(fault(format!("{what} '{name}'"), "name is used twice"));
        }
    }
    Ok(())
}

/// Checks a command name such as `!discord`.
pub fn validate_command_name(name: &str) -> Result<(), CommandNameError> {
    let len = name.chars().count();
    let bad = |c: char| c.is_whitespace() || c.is_control();
    if !name.starts_with('!') || !(2..=32).contains(&len) || name.contains(bad) {
        return Err(CommandNameError::Shape);
    }
    if RESERVED_COMMANDS.contains(&name.to_lowercase().as_str()) {
        return Err(CommandNameError::BuiltIn);
    }
    Ok(())
}

fn validate_command(command: &CommandRule) -> Result<(), RuleError> {
    let item = format!("command '{}'", command.name);
    for name in std::iter::once(&command.name).chain(&command.aliases) {
        validate_command_name(name).map_err(|e| fault(&item, format!("{name}: {e}")))?;
    }
    check_template(&item, "response", &command.response)?;
    check_cooldowns(&item, command.global_cooldown_s, command.user_cooldown_s)
}

fn check_template(item: &str, field: &str, source: &str) -> Result<(), RuleError> {
    Template::parse(source)
        .map(|_| ())
        .map_err(|e| fault(item, format!("{field} template {e}")))
}

fn check_cooldowns(item: &str, global: u64, user: u64) -> Result<(), RuleError> {
    if global > MAX_COOLDOWN_S || user > MAX_COOLDOWN_S {
        return Err(fault(
            item,
            format!("cooldowns are at most {MAX_COOLDOWN_S} s"),
        ));
    }
    Ok(())
}

fn validate_keyword(keyword: &KeywordRule) -> Result<(), RuleError> {
    let item = format!("keyword '{}'", keyword.name);
    if keyword.groups.is_empty() && keyword.regex.is_none() {
        return Err(fault(&item, "needs at least one phrase group or a regex"));
    }
    for group in &keyword.groups {
        if group.is_empty() || group.iter().any(|p| p.trim().is_empty()) {
            return Err(fault(&item, "phrase groups must hold non-empty phrases"));
        }
        if group.iter().any(|p| p.chars().count() > MAX_PATTERN_CHARS) {
            return Err(fault(&item, "a phrase is longer than 500 characters"));
        }
    }
    if let Some(pattern) = &keyword.regex {
        build_regex(pattern, !keyword.case_sensitive).map_err(|e| fault(&item, e))?;
    }
    check_template(&item, "response", &keyword.response)?;
    check_cooldowns(&item, keyword.global_cooldown_s, keyword.user_cooldown_s)
}

fn validate_timer(timer: &TimerRule) -> Result<(), RuleError> {
    let item = format!("timer '{}'", timer.name);
    if !(1..=MAX_COOLDOWN_S).contains(&timer.interval_s) {
        return Err(fault(&item, "interval_s must be 1 to 86400"));
    }
    check_template(&item, "message", &timer.message)
}

fn validate_action(item: &str, action: ModAction) -> Result<(), RuleError> {
    match action {
        ModAction::Timeout(s) if !(1..=MAX_TIMEOUT_S).contains(&s) => Err(fault(
            item,
            format!("timeout of {s} s is outside 1 to {MAX_TIMEOUT_S}"),
        )),
        _ => Ok(()),
    }
}

fn validate_filter(filter: &FilterRule) -> Result<(), RuleError> {
    let item = format!("filter '{}'", filter.name);
    validate_action(&item, filter.action)?;
    validate_action(&item, filter.warning_action)?;
    if filter.warning_expiry_s > MAX_COOLDOWN_S {
        return Err(fault(&item, "warning_expiry_s is at most 86400"));
    }
    if filter.message_user_cooldown_s > MAX_COOLDOWN_S
        || filter.message_global_cooldown_s > MAX_COOLDOWN_S
    {
        return Err(fault(&item, "message cooldowns are at most 86400 s"));
    }
    for (field, source) in [
        ("message", &filter.message),
        ("warning_message", &filter.warning_message),
    ] {
        if let Some(source) = source {
            check_template(&item, field, source)?;
        }
    }
    validate_filter_params(&item, filter)
}

fn validate_filter_params(item: &str, filter: &FilterRule) -> Result<(), RuleError> {
    let bad = match filter.kind {
        FilterKind::Caps | FilterKind::Symbols
            if !(filter.max_share > 0.0 && filter.max_share <= 1.0) =>
        {
            Some("max_share must be above 0 and at most 1")
        }
        FilterKind::Repetition if filter.max_word_repeats == 0 && filter.max_char_run == 0 => {
            Some("set max_word_repeats and/or max_char_run")
        }
        FilterKind::Length if filter.max_length == 0 => Some("max_length must be at least 1"),
        FilterKind::BannedPhrases if filter.phrases.is_empty() => Some("phrases is empty"),
        FilterKind::Links => {
            return filter
                .allow_domains
                .iter()
                .try_for_each(|d| check_domain(item, d));
        }
        FilterKind::BannedPhrases => {
            return filter
                .phrases
                .iter()
                .try_for_each(|p| validate_phrase(item, p));
        }
        _ => None,
    };
    bad.map_or(Ok(()), |fault_text| Err(fault(item, fault_text)))
}

fn validate_defence(d: &DefenceSettings) -> Result<(), RuleError> {
    let item = "defence";
    if !(1..=600).contains(&d.window_s) {
        return Err(fault(item, "window_s is 1..=600"));
    }
    if !(0.0..=1.0).contains(&d.max_first_time_share) {
        return Err(fault(item, "max_first_time_share is 0..=1"));
    }
    if d.raid_window_s > 3_600 || d.escalate_after_s > 3_600 {
        return Err(fault(
            item,
            "raid_window_s and escalate_after_s are at most 3600",
        ));
    }
    if d.calm_s == 0 || d.calm_s > MAX_COOLDOWN_S {
        return Err(fault(item, "calm_s is 1..=86400"));
    }
    if d.enabled && d.steps.is_empty() {
        return Err(fault(item, "steps is empty"));
    }
    if let CrossChannel::Timeout(t) = d.cross_channel {
        if !(1..=1_209_600).contains(&t) {
            return Err(fault(item, "cross_channel timeout is 1..=1209600 s"));
        }
    }
    if d.steps.len() > 8 {
        return Err(fault(item, "at most 8 steps"));
    }
    if d.max_backlog_s > 3_600 {
        return Err(fault(item, "max_backlog_s is at most 3600"));
    }
    for (i, step) in d.steps.iter().enumerate() {
        let same_mode =
            |other: &DefenceStep| std::mem::discriminant(other) == std::mem::discriminant(step);
        if d.steps[..i].iter().any(same_mode) {
            // One step per mode: what a revert restores is per mode.
            return Err(fault(item, "a mode is listed twice in steps"));
        }
    }
    for step in &d.steps {
        match *step {
            DefenceStep::FollowersOnly(m) if m > 129_600 => {
                return Err(fault(
                    item,
                    "followers_only is at most 129600 minutes (Twitch's 90 days)",
                ))
            }
            DefenceStep::Slow(s) if !(3..=120).contains(&s) => {
                return Err(fault(item, "slow is 3..=120 seconds (Twitch's range)"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_domain(item: &str, domain: &str) -> Result<(), RuleError> {
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(fault(
            item,
            format!("allowed domain '{domain}' must be a bare host name"),
        ));
    }
    Ok(())
}

fn validate_phrase(item: &str, phrase: &BannedPhrase) -> Result<(), RuleError> {
    let item = format!("{item} phrase '{}'", phrase.pattern);
    if phrase.pattern.trim().is_empty() || phrase.pattern.chars().all(|c| c == '*') {
        return Err(fault(item, "pattern is empty"));
    }
    if phrase.online_only && phrase.offline_only {
        return Err(fault(item, "cannot be both online_only and offline_only"));
    }
    if let Some(action) = phrase.action {
        validate_action(&item, action)?;
    }
    match phrase.kind {
        PhraseKind::Regex => build_regex(&ascii_word_boundaries(&phrase.pattern), true).map(|_| ()),
        PhraseKind::Wildcard => build_regex(&wildcard_to_regex(&phrase.pattern), true).map(|_| ()),
        PhraseKind::Plain if phrase.pattern.chars().count() > MAX_PATTERN_CHARS => {
            Err(PatternError::TooLong)
        }
        PhraseKind::Plain => Ok(()),
    }
    .map_err(|e| fault(item, e))
}

fn validate_nuke(nuke: &NukeSettings) -> Result<(), RuleError> {
    if nuke.default_scrollback_s > 600 || nuke.window_s > 3600 {
        return Err(fault(
            "nuke",
            "default_scrollback_s is at most 600 and window_s at most 3600",
        ));
    }
    validate_action("nuke", nuke.default_action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_boundaries_become_ascii_and_other_escapes_stay() {
        let table = [
            (r"\bfoo\b", r"(?-u:\b)foo(?-u:\b)"),
            (r"a\Bb", r"a(?-u:\B)b"),
            (r"\\b", r"\\b"),
            (r"\d+\.", r"\d+\."),
            ("trailing\\", "trailing\\"),
        ];
        for (input, want) in table {
            assert_eq!(ascii_word_boundaries(input), want, "{input}");
        }
        let re = build_regex(&ascii_word_boundaries(r"\bspam\b"), true).expect("regex");
        assert!(re.is_match("🙂 spam 🙂") && re.is_match("spam!") && !re.is_match("spammer"));
        assert_eq!(wildcard_to_regex("buy*views"), "buy.*views");
    }
}
