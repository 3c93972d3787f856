//! The rules book: each channel's engine rules, shared by the channel actors, the admin API
//! and `check-config`.
//!
//! Rules come from `<engine.rules_dir>/<channel>.toml` (one `ChannelRules` per file) and are
//! validated when loaded, so a bad file is refused at start-up with the file and the fault named.
//! A channel without a file runs the built-in commands only. Edits (admin API, moderators'
//! `!addcom` in chat) replace a channel's rules as a whole; the channel actor writes its chat
//! edits back here, so a restarted actor starts from the latest rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;

use crate::engine::{ChannelRules, RuleError};

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

#[derive(Debug, Default)]
pub struct RulesBook {
    rules: DashMap<String, Arc<ChannelRules>>,
    empty: Arc<ChannelRules>,
}

impl RulesBook {
    pub fn new() -> Arc<RulesBook> {
        Arc::new(RulesBook::default())
    }

    /// Loads every `*.toml` of `dir` (the file stem is the channel), validating each.
    pub fn load_dir(dir: &Path) -> Result<Arc<RulesBook>, RulesError> {
        let book = RulesBook::default();
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
            book.rules.insert(channel, Arc::new(rules));
        }
        Ok(Arc::new(book))
    }

    /// The channel's rules (empty rules when it has none).
    pub fn get(&self, channel: &str) -> Arc<ChannelRules> {
        self.rules
            .get(channel)
            .map(|r| Arc::clone(r.value()))
            .unwrap_or_else(|| Arc::clone(&self.empty))
    }

    /// Replaces the channel's rules. Callers validate first.
    pub fn set(&self, channel: &str, rules: Arc<ChannelRules>) {
        self.rules.insert(channel.to_string(), rules);
    }

    /// Replaces the channel's rules only if they are still `base`; false otherwise.
    pub fn replace_if(
        &self,
        channel: &str,
        base: &Arc<ChannelRules>,
        rules: Arc<ChannelRules>,
    ) -> bool {
        let mut entry = self
            .rules
            .entry(channel.to_string())
            .or_insert_with(|| Arc::clone(&self.empty));
        if !Arc::ptr_eq(entry.value(), base) {
            return false;
        }
        *entry.value_mut() = rules;
        true
    }

    /// Channels that have rules of their own.
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = self.rules.iter().map(|e| e.key().clone()).collect();
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
    rules.validate().map_err(|source| RulesError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(rules)
}
