//! The rows both store backends keep, independent of how each lays them out.
//!
//! A channel is named by its channel key's display form
//! (`twitch:login`, `discord:<id>`), so two platforms never share a row.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::{ChannelRules, RuleError, SavedState};

/// Rules that cannot become rows, or rows that are not (valid) rules.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("{kind} {name}: {source}")]
    Encode {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("stored {kind} {name:?}: {source}")]
    Decode {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("stored rule of unknown kind {0:?}")]
    UnknownKind(String),
    #[error("stored rules do not validate: {0}")]
    Invalid(RuleError),
}

/// Partitions a channel's user stats are spread over (part of the schema: changing it needs a
/// migration that moves the rows).
pub const USER_BUCKETS: u32 = 16;

/// Counter names with a meaning outside the engine's named counters.
pub mod counter {
    /// Chat messages the channel handled.
    pub const MESSAGES: &str = "messages";
    /// Prefix of the engine's named counters (`$(count.increment x)` is `count:x`).
    pub const NAMED: &str = "count:";
    /// Prefix of custom command uses (`uses:!discord`).
    pub const USES: &str = "uses:";
    /// Raid defence steps engaged now (the engine reverts them after a restart).
    pub const DEFENCE_STEPS: &str = "defence:steps";
}

/// One item of a channel's rules as stored: `kind` is `command`, `keyword`, `timer`,
/// `filter` or `settings`; `body` its JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleRow {
    pub kind: String,
    pub name: String,
    pub body: String,
}

/// Per-user per-channel stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: String,
    pub login: String,
    pub messages: i64,
    pub last_seen_ms: i64,
    pub warnings: i64,
}

/// A live filter warning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WarningRow {
    pub filter: String,
    pub user_id: String,
    pub expires_ms: i64,
}

/// One moderation action the engine decided, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationEntry {
    /// Unique per channel; the same entry written twice is one row.
    pub id: String,
    pub at_ms: i64,
    /// `delete`, `timeout`, `ban` or `unban`.
    pub action: String,
    pub user_id: String,
    pub rule: String,
    pub reason: String,
    pub duration_s: i64,
}

/// Everything a channel actor starts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredChannel {
    /// The channel's rules items, if it has any stored (run-time edits win over files).
    pub rules: Vec<RuleRow>,
    /// Counters by name (see [`counter`]).
    pub counters: BTreeMap<String, i64>,
    /// Live warnings.
    pub warnings: Vec<WarningRow>,
}

impl StoredChannel {
    /// The engine's part of it: named counters, command uses, live warnings.
    pub fn saved_state(&self) -> SavedState {
        let mut saved = SavedState::default();
        for (name, value) in &self.counters {
            if let Some(named) = name.strip_prefix(counter::NAMED) {
                saved.counters.insert(named.to_string(), *value);
            } else if let Some(command) = name.strip_prefix(counter::USES) {
                saved
                    .command_uses
                    .insert(command.to_string(), u64::try_from(*value).unwrap_or(0));
            } else if name == counter::DEFENCE_STEPS {
                saved.defence_steps = u64::try_from(*value).unwrap_or(0);
            }
        }
        saved.warnings = self
            .warnings
            .iter()
            .map(|w| {
                let expires = u64::try_from(w.expires_ms).unwrap_or(0);
                (w.filter.clone(), w.user_id.clone(), expires)
            })
            .collect();
        saved
    }

    /// The stored rules, if any.
    pub fn channel_rules(&self) -> Result<Option<ChannelRules>, RowError> {
        if self.rules.is_empty() {
            return Ok(None);
        }
        rules_from_rows(&self.rules).map(Some)
    }
}

/// What one flush writes for one channel: absolute values only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelWrite {
    pub channel: String,
    /// Counters and their new absolute values.
    pub counters: Vec<(String, i64)>,
    /// Counters to delete (a removed command's `uses:<name>`).
    pub counters_delete: Vec<String>,
    pub users: Vec<UserRow>,
    pub warnings: Vec<WarningRow>,
    /// Rule items to store, and (kind, name) of items to delete.
    pub rules_upsert: Vec<RuleRow>,
    pub rules_delete: Vec<(String, String)>,
    pub moderation: Vec<ModerationEntry>,
    /// Lifetime of moderation log entries.
    pub moderation_ttl_s: u32,
    /// Lifetime of the user stats rows written (0 = no expiry): `store.user_stats_ttl_s`.
    pub user_ttl_s: u32,
}

impl ChannelWrite {
    /// An empty write for `channel`.
    pub fn new(channel: impl Into<String>, moderation_ttl_s: u32) -> Self {
        ChannelWrite {
            channel: channel.into(),
            moderation_ttl_s,
            ..ChannelWrite::default()
        }
    }

    /// Rows this write touches.
    pub fn rows(&self) -> u64 {
        (self.counters.len()
            + self.counters_delete.len()
            + self.users.len()
            + self.warnings.len()
            + self.rules_upsert.len()
            + self.rules_delete.len()
            + self.moderation.len()) as u64
    }
}

/// What deleting one user's data removed from a store (or from the writer's pending changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ForgottenRows {
    /// Per-channel stats rows.
    pub user_stats: u64,
    /// Live filter warnings.
    pub warnings: u64,
    /// Moderation log entries about the user.
    pub moderation_log: u64,
    /// Channels (store names, `twitch:login`) where something was removed.
    pub channels: BTreeSet<String>,
}

impl ForgottenRows {
    /// Adds `other`'s counts and channels to these.
    pub fn add(&mut self, other: ForgottenRows) {
        self.user_stats += other.user_stats;
        self.warnings += other.warnings;
        self.moderation_log += other.moderation_log;
        self.channels.extend(other.channels);
    }

    /// Rows removed, all kinds.
    pub fn total(&self) -> u64 {
        self.user_stats + self.warnings + self.moderation_log
    }
}

/// Whether the store name `channel` (`twitch:login`) is a channel of `platform` (`twitch`).
pub fn on_platform(channel: &str, platform: &str) -> bool {
    channel
        .strip_prefix(platform)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Result of asking for a channel lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease until its ttl runs out.
    Held,
    /// Another owner holds it.
    HeldBy(String),
}

/// A channel's rules as stored items, one per command, keyword, timer and filter, plus one
/// `settings` item (regulars, nuke and built-in settings) so that stored rules always have a row.
pub fn rules_to_rows(rules: &ChannelRules) -> Result<Vec<RuleRow>, RowError> {
    fn row<T: Serialize>(kind: &str, name: &str, item: &T) -> Result<RuleRow, RowError> {
        let body = serde_json::to_string(item).map_err(|source| RowError::Encode {
            kind: kind.to_string(),
            name: name.to_string(),
            source,
        })?;
        Ok(RuleRow {
            kind: kind.to_string(),
            name: name.to_string(),
            body,
        })
    }
    let mut rows = Vec::new();
    for c in &rules.commands {
        rows.push(row("command", &c.name, c)?);
    }
    for k in &rules.keywords {
        rows.push(row("keyword", &k.name, k)?);
    }
    for t in &rules.timers {
        rows.push(row("timer", &t.name, t)?);
    }
    for f in &rules.filters {
        rows.push(row("filter", &f.name, f)?);
    }
    let settings = Settings {
        regulars: rules.regulars.clone(),
        nuke: rules.nuke.clone(),
        builtins: rules.builtins.clone(),
        defence: rules.defence.clone(),
        order: Order {
            commands: rules.commands.iter().map(|c| c.name.clone()).collect(),
            keywords: rules.keywords.iter().map(|k| k.name.clone()).collect(),
            timers: rules.timers.iter().map(|t| t.name.clone()).collect(),
            filters: rules.filters.iter().map(|f| f.name.clone()).collect(),
        },
    };
    rows.push(row("settings", "channel", &settings)?);
    rows.sort();
    Ok(rows)
}

/// Rebuilds and validates rules from stored items.
pub fn rules_from_rows(rows: &[RuleRow]) -> Result<ChannelRules, RowError> {
    let rules = decode_rules(rows)?;
    rules.validate().map_err(RowError::Invalid)?;
    Ok(rules)
}

/// The key of a rules item: (kind, name).
pub type RuleKey = (String, String);

/// What an edit changed, item by item: the items to store (new or changed) and the keys of the
/// items it removed. Applied to stored rows, it changes exactly what the edit changed and
/// leaves every other stored item alone (also items the editor never saw).
pub fn rules_diff(
    base: &ChannelRules,
    rules: &ChannelRules,
) -> Result<(Vec<RuleRow>, Vec<RuleKey>), RowError> {
    let before: BTreeMap<RuleKey, String> = rules_to_rows(base)?
        .into_iter()
        .map(|r| ((r.kind, r.name), r.body))
        .collect();
    let after = rules_to_rows(rules)?;
    let kept: std::collections::BTreeSet<RuleKey> = after
        .iter()
        .map(|r| (r.kind.clone(), r.name.clone()))
        .collect();
    let upserts = after
        .into_iter()
        .filter(|r| before.get(&(r.kind.clone(), r.name.clone())) != Some(&r.body))
        .collect();
    let removed = before.into_keys().filter(|k| !kept.contains(k)).collect();
    Ok((upserts, removed))
}

/// Rules items as stored, without validating them (the channel compiles them when it runs
/// them, which validates).
pub fn decode_rules(rows: &[RuleRow]) -> Result<ChannelRules, RowError> {
    fn parse<T: serde::de::DeserializeOwned>(row: &RuleRow) -> Result<T, RowError> {
        serde_json::from_str(&row.body).map_err(|source| RowError::Decode {
            kind: row.kind.clone(),
            name: row.name.clone(),
            source,
        })
    }
    let mut rules = ChannelRules::default();
    let mut order = Order::default();
    for row in rows {
        match row.kind.as_str() {
            "command" => rules.commands.push(parse(row)?),
            "keyword" => rules.keywords.push(parse(row)?),
            "timer" => rules.timers.push(parse(row)?),
            "filter" => rules.filters.push(parse(row)?),
            "settings" => {
                let settings: Settings = parse(row)?;
                rules.regulars = settings.regulars;
                rules.nuke = settings.nuke;
                rules.builtins = settings.builtins;
                rules.defence = settings.defence;
                order = settings.order;
            }
            other => return Err(RowError::UnknownKind(other.to_string())),
        }
    }
    in_order(&mut rules.commands, &order.commands, |c| &c.name);
    in_order(&mut rules.keywords, &order.keywords, |k| &k.name);
    in_order(&mut rules.timers, &order.timers, |t| &t.name);
    in_order(&mut rules.filters, &order.filters, |f| &f.name);
    Ok(rules)
}

/// Puts items back in their rules order (rows come sorted by name; the first matching keyword
/// answers and filters act in order, so the order is part of the rules). Items the order does
/// not name (rows stored before it was kept) follow, by name.
fn in_order<T>(items: &mut [T], order: &[String], name: impl Fn(&T) -> &String) {
    let position = |item: &T| {
        order
            .iter()
            .position(|n| n == name(item))
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(|item| position(item));
}

/// The channel-wide part of the rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    regulars: Vec<String>,
    nuke: crate::engine::rules::NukeSettings,
    /// Absent in rows written before built-ins were configurable, and while on the defaults
    /// (so such rows stay byte for byte what they were).
    #[serde(
        default,
        skip_serializing_if = "crate::engine::rules::BuiltinSettings::is_default"
    )]
    builtins: crate::engine::rules::BuiltinSettings,
    /// Absent while the raid defence is on its defaults (off).
    #[serde(
        default,
        skip_serializing_if = "crate::engine::rules::DefenceSettings::is_default"
    )]
    defence: crate::engine::rules::DefenceSettings,
    /// The items' order, by name (absent in rows stored before it was kept).
    #[serde(default)]
    order: Order,
}

/// The order of the rules' items, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Order {
    commands: Vec<String>,
    keywords: Vec<String>,
    timers: Vec<String>,
    filters: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChannelRules;

    fn rules(toml_text: &str) -> ChannelRules {
        toml::from_str(toml_text).expect("rules")
    }

    const TWO_KEYWORDS: &str = r#"
        [[keywords]]
        name = "zz_first"
        groups = [["hello"]]
        response = "first"

        [[keywords]]
        name = "aa_second"
        groups = [["hello"]]
        response = "second"
    "#;

    // Found by the admin_rules fuzz target: rows come back sorted by name, and the first
    // matching keyword answers, so a restart changed which keyword answered.
    #[test]
    fn stored_rules_come_back_in_their_order() {
        let rules = rules(TWO_KEYWORDS);
        let back = rules_from_rows(&rules_to_rows(&rules).expect("rows")).expect("read back");
        assert_eq!(back, rules);
        assert_eq!(back.keywords[0].name, "zz_first");
    }

    #[test]
    fn rows_stored_before_the_order_was_kept_read_back_by_name() {
        let mut rows = rules_to_rows(&rules(TWO_KEYWORDS)).expect("rows");
        for row in rows.iter_mut().filter(|r| r.kind == "settings") {
            let mut settings: serde_json::Value = serde_json::from_str(&row.body).expect("json");
            settings.as_object_mut().expect("object").remove("order");
            row.body = settings.to_string();
        }
        let back = rules_from_rows(&rows).expect("read back");
        let names: Vec<&str> = back.keywords.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["aa_second", "zz_first"]);
    }
}
