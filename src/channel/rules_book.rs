//! The rules book: each channel's engine rules, shared by the channel actors, the admin API
//! and `check-config`.
//!
//! Rules come from `<engine.rules_dir>/<channel>.toml` (one `ChannelRules` per file) and are
//! validated when loaded, so a bad file is refused at start-up with the file and the fault named.
//! A channel without a file runs the built-in commands only. Edits (admin API, moderators'
//! `!addcom` in chat) replace a channel's rules as a whole; the channel actor writes what it
//! runs back here, so a restarted actor starts from the latest rules. The book is keyed by
//! platform and channel ([`ChannelKey`]): a Twitch login and a Discord channel id that read
//! the same are two channels (they share only a rules file of that name).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;

use super::key::ChannelKey;
use crate::engine::rules::CrossChannel;
use crate::engine::{ChannelRules, ChannelState, Platform, RuleError};

/// Why rules could not be loaded; it names the folder or file and the fault.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("engine.rules_dir: cannot read {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or not rules (an unknown key, a wrong type).
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// Rules that do not validate (a bad template, pattern or setting).
    #[error("{}: {source}", path.display())]
    Invalid { path: PathBuf, source: RuleError },
}

/// Every channel's rules, keyed by platform and channel.
///
/// Two layers: the rules files as loaded (by file stem: a Twitch login or a Discord channel id,
/// so `<rules_dir>/<login>.toml` and `<rules_dir>/<channel id>.toml`), and per channel key the
/// version in force, once there is one other than the file: what the channel's actor compiled
/// and runs, or an admin edit of a channel that has no actor (validated by the same
/// compilation). The book never holds a version that did not compile: a channel whose rules
/// are refused runs (and is listed with) the built-ins only, so every later edit is based on
/// what really runs.
#[derive(Debug, Default)]
pub struct RulesBook {
    files: HashMap<String, Arc<ChannelRules>>,
    current: DashMap<ChannelKey, Arc<ChannelRules>>,
    /// Channels whose version in force sets `[defence] cross_channel` (kept with `current`).
    cross: DashMap<ChannelKey, ()>,
    empty: Arc<ChannelRules>,
}

impl RulesBook {
    pub fn new() -> Arc<RulesBook> {
        Arc::new(RulesBook::default())
    }

    /// Loads every `*.toml` of `dir` (the file stem is the channel), validating each.
    pub fn load_dir(dir: &Path) -> Result<Arc<RulesBook>, RulesError> {
        let mut book = RulesBook::default();
        let entries = std::fs::read_dir(dir).map_err(|source| RulesError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let Some(channel) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let rules = load_file(&path)?;
            book.files.insert(channel, Arc::new(rules));
        }
        Ok(Arc::new(book))
    }

    /// The channel's rules: the version in force, else its file, else empty rules.
    pub fn get(&self, key: &ChannelKey) -> Arc<ChannelRules> {
        if let Some(current) = self.current.get(key) {
            return Arc::clone(current.value());
        }
        self.file(key)
    }

    /// The channel's rules file as loaded (empty rules when it has none).
    pub fn file(&self, key: &ChannelKey) -> Arc<ChannelRules> {
        self.files
            .get(&*key.name)
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::clone(&self.empty))
    }

    /// Makes `rules` the channel's version in force. Callers compile them first (the channel
    /// actor does, as it installs them).
    pub fn set(&self, key: &ChannelKey, rules: Arc<ChannelRules>) {
        self.note_cross(key, &rules);
        self.current.insert(key.clone(), rules);
    }

    fn note_cross(&self, key: &ChannelKey, rules: &ChannelRules) {
        if rules.defence.cross_channel == CrossChannel::Off {
            self.cross.remove(key);
        } else {
            self.cross.insert(key.clone(), ());
        }
    }

    /// The channels of `platform` that act on other channels' bans (`[defence]
    /// cross_channel`): those whose version in force sets it, and those running their file
    /// that sets it.
    pub fn cross_channel_subscribers(&self, platform: Platform) -> Vec<ChannelKey> {
        let mut keys: Vec<ChannelKey> = self
            .cross
            .iter()
            .filter(|e| e.key().platform == platform)
            .map(|e| e.key().clone())
            .collect();
        for (name, rules) in &self.files {
            let key = ChannelKey {
                platform,
                name: Arc::from(name.as_str()),
            };
            if rules.defence.cross_channel != CrossChannel::Off && !self.current.contains_key(&key)
            {
                keys.push(key);
            }
        }
        keys
    }

    /// Replaces the channel's rules only if they are still `base`; false otherwise.
    pub fn replace_if(
        &self,
        key: &ChannelKey,
        base: &Arc<ChannelRules>,
        rules: Arc<ChannelRules>,
    ) -> bool {
        let mut entry = self
            .current
            .entry(key.clone())
            .or_insert_with(|| self.file(key));
        if !Arc::ptr_eq(entry.value(), base) {
            return false;
        }
        self.note_cross(key, &rules);
        *entry.value_mut() = rules;
        true
    }

    /// The stems of the rules files (Twitch logins and Discord channel ids).
    pub fn files(&self) -> Vec<String> {
        let mut channels: Vec<String> = self.files.keys().cloned().collect();
        channels.sort();
        channels
    }
}

/// Reads and validates one rules file; errors name the file and the fault.
pub fn load_file(path: &Path) -> Result<ChannelRules, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let rules: ChannelRules = toml::from_str(&text).map_err(|source| RulesError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    compile(&rules).map_err(|source| RulesError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(rules)
}

/// Checks rules by compiling them exactly as a channel actor does when it installs them
/// (`ChannelState::set_rules`): rules that pass always run. The rules files, `check-config`
/// and the admin API check with this, so no version that a channel would refuse gets into
/// the book.
pub fn compile(rules: &ChannelRules) -> Result<(), RuleError> {
    ChannelState::with_rules(String::new(), rules.clone(), 0).map(drop)
}
