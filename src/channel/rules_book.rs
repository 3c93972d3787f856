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
//!
//! Channels whose rules are the same (one file, or identical content) share one compiled form
//! ([`RulesBook::compiled`]): at 1,000 channels on one rules file the matchers exist once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use dashmap::DashMap;

use super::key::ChannelKey;
use crate::engine::compiled::Compiled;
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

/// The compiled-forms cache forgets dead entries once it holds this many.
const PRUNE_COMPILED_AT: usize = 64;

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
    /// The compiled form of each distinct rules content some channel runs, shared by all of
    /// them (held weakly: it goes when its last channel does).
    compiled: Mutex<HashMap<String, Weak<Compiled>>>,
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

    /// The compiled form of `rules`, shared with every channel running the same rules (the
    /// same file, or identical content): compiled once, not once per channel. What a channel
    /// does to its engine later (an edit) compiles its own and never touches the shared one.
    pub fn compiled(&self, rules: &ChannelRules) -> Result<Arc<Compiled>, RuleError> {
        let Ok(key) = serde_json::to_string(rules) else {
            return Compiled::build(rules).map(Arc::new);
        };
        if let Some(shared) = self.lock_compiled().get(&key).and_then(Weak::upgrade) {
            return Ok(shared);
        }
        // Compiled outside the lock (a big rules file takes milliseconds); two channels
        // starting at once may both compile, and the later one is kept.
        let compiled = Arc::new(Compiled::build(rules)?);
        let mut cache = self.lock_compiled();
        if cache.len() >= PRUNE_COMPILED_AT {
            cache.retain(|_, weak| weak.strong_count() > 0);
        }
        cache.insert(key, Arc::downgrade(&compiled));
        Ok(compiled)
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Compiled>>> {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Distinct compiled rules alive (shared by the channels running them).
    pub fn compiled_forms(&self) -> usize {
        self.lock_compiled()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{handle, Action, ChatEvent, ChatMessage, EventKind};

    fn ask(state: &mut ChannelState, text: &str, n: u64) -> Vec<String> {
        let event = ChatEvent {
            platform: Platform::Twitch,
            channel: Arc::from(state.channel.as_str()),
            kind: EventKind::Message(ChatMessage {
                id: format!("m{n}"),
                text: text.to_string(),
                ..ChatMessage::default()
            }),
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + n * 100);
        handle(state, &event, at)
            .iter()
            .filter_map(Action::chat_text)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn channels_with_the_same_rules_share_one_compiled_form_and_an_edit_changes_only_its_own(
    ) -> Result<(), RuleError> {
        let book = RulesBook::default();
        let text = "[[commands]]\nname = \"!hi\"\nresponse = \"hello\"\n[[filters]]\nname = \"slurs\"\nkind = \"banned_phrases\"\naction = \"delete\"\nphrases = [{ pattern = \"hateword\" }]\n";
        let rules: ChannelRules = toml::from_str(text).unwrap_or_default();
        let a = book.compiled(&rules)?;
        // Identical content read from another file is the same rules.
        let b = book.compiled(&toml::from_str(text).unwrap_or_default())?;
        assert!(Arc::ptr_eq(&a, &b), "compiled once");
        assert_eq!(book.compiled_forms(), 1);
        let mut one = ChannelState::with_compiled("one", Arc::new(rules.clone()), a, 1);
        let mut two = ChannelState::with_compiled("two", Arc::new(rules.clone()), b, 2);
        assert_eq!(ask(&mut two, "!hi", 1), ["hello"]);
        one.edit_rules(|r| r.commands[0].response = "changed".into())?;
        assert!(!Arc::ptr_eq(one.compiled(), two.compiled()));
        assert_eq!(ask(&mut one, "!hi", 2), ["changed"]);
        assert_eq!(
            ask(&mut two, "!hi", 3),
            ["hello"],
            "the other channel is untouched"
        );
        // Other rules compile on their own; a form goes when its last channel does.
        let other = book.compiled(&ChannelRules::default())?;
        assert_eq!(book.compiled_forms(), 2);
        drop((two, other));
        assert_eq!(
            book.compiled_forms(),
            0,
            "one's edit compiled its own; two is gone"
        );
        Ok(())
    }
}
