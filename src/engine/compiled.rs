//! Rules compiled for matching: templates parsed, command names indexed, and every banned
//! phrase of the channel merged into one Aho-Corasick automaton (plain phrases) and one
//! `RegexSet` (wildcards and regexes), so a message is scanned once however many phrases exist.
//!
//! Built once whenever the rules change ([`Compiled::build`], which validates first), shared
//! behind an `Arc` and never mutated.

use std::collections::{BTreeMap, BTreeSet};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

use super::fold::fold;
use super::rules::{
    ascii_word_boundaries, build_regex, wildcard_to_regex, ChannelRules, FilterKind, PhraseKind,
    RuleError, REGEX_SIZE_LIMIT,
};
use super::template::Template;

/// Matches host names in folded text (scheme optional, common TLDs). ASCII word boundaries
/// keep it on the regex crate's DFA even when the text has non-ASCII characters.
const LINK_PATTERN: &str = r"(?:https?://)?(?-u:\b)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|net|org|tv|gg|io|ly|me|co|uk|de|ru|xyz|info|biz|be|to|us|link|site|online|shop|app|dev|live|stream|club|top|cc|fm|tk|ml|ga|cf|gq|page|sh|ai|so|ws|in|eu|fr|nl|pl|es|it|ca|au|jp|br|gl|gd)(?-u:\b)(?:[/?#]\S*)?";

/// The link detector's pattern.
pub fn link_pattern() -> &'static str {
    LINK_PATTERN
}

/// A banned phrase's position in the rules: (filter index, phrase index).
pub type PhraseRef = (usize, usize);

/// A keyword phrase: in the folded (`false`) or case-sensitive raw (`true`) automaton, at index.
pub type PhraseId = (bool, usize);

/// A compiled keyword.
#[derive(Debug, Clone)]
pub struct CompiledKeyword {
    /// Phrase groups as ids into the channel's [`PhraseIndex`].
    pub groups: Vec<Vec<PhraseId>>,
    pub regex: Option<Regex>,
    pub template: Template,
}

/// Every keyword phrase of a channel in two Aho-Corasick automatons, one over folded text and
/// one over raw text (case-sensitive keywords), so a message is scanned once per automaton.
#[derive(Debug, Clone, Default)]
pub struct PhraseIndex {
    folded: Option<AhoCorasick>,
    folded_len: usize,
    raw: Option<AhoCorasick>,
    raw_len: usize,
}

/// Which keyword phrases occur in one message.
#[derive(Debug, Clone, Default)]
pub struct PhraseHits {
    folded: Vec<bool>,
    raw: Vec<bool>,
}

impl PhraseHits {
    /// Whether phrase `id` occurs.
    pub fn has(&self, (raw, index): PhraseId) -> bool {
        let flags = if raw { &self.raw } else { &self.folded };
        flags.get(index).copied().unwrap_or(false)
    }
}

impl PhraseIndex {
    /// Scans `folded` and `raw` text once each.
    pub fn scan(&self, folded: &str, raw: &str) -> PhraseHits {
        PhraseHits {
            folded: flags(self.folded.as_ref(), self.folded_len, folded),
            raw: flags(self.raw.as_ref(), self.raw_len, raw),
        }
    }
}

fn flags(automaton: Option<&AhoCorasick>, len: usize, text: &str) -> Vec<bool> {
    let mut found = vec![false; len];
    if let Some(ac) = automaton {
        for m in ac.find_overlapping_iter(text) {
            if let Some(flag) = found.get_mut(m.pattern().as_usize()) {
                *flag = true;
            }
        }
    }
    found
}

/// Collects distinct phrases while keywords are compiled.
#[derive(Default)]
struct PhraseTable {
    folded: BTreeMap<String, usize>,
    raw: BTreeMap<String, usize>,
}

impl PhraseTable {
    fn id(&mut self, phrase: &str, case_sensitive: bool) -> PhraseId {
        let (map, key) = if case_sensitive {
            (&mut self.raw, phrase.to_string())
        } else {
            (&mut self.folded, fold(phrase))
        };
        let next = map.len();
        (case_sensitive, *map.entry(key).or_insert(next))
    }

    fn build(self) -> Result<PhraseIndex, RuleError> {
        let automaton = |map: &BTreeMap<String, usize>| -> Result<Option<AhoCorasick>, RuleError> {
            if map.is_empty() {
                return Ok(None);
            }
            let mut phrases: Vec<(&String, &usize)> = map.iter().collect();
            phrases.sort_by_key(|(_, id)| **id);
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(phrases.iter().map(|(p, _)| p.as_str()))
                .map(Some)
                .map_err(|e| rule_error("keywords", e.to_string()))
        };
        Ok(PhraseIndex {
            folded: automaton(&self.folded)?,
            folded_len: self.folded.len(),
            raw: automaton(&self.raw)?,
            raw_len: self.raw.len(),
        })
    }
}

/// Templates of one filter.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    pub message: Option<Template>,
    pub warning_message: Option<Template>,
}

/// All banned phrases of a channel, for a one-pass scan of folded text.
#[derive(Debug, Clone, Default)]
pub struct BannedSet {
    plain: Option<AhoCorasick>,
    plain_refs: Vec<PhraseRef>,
    regexes: Option<RegexSet>,
    regex_refs: Vec<PhraseRef>,
}

impl BannedSet {
    /// Every phrase that occurs in `folded`, in no particular order, deduplicated.
    pub fn matches(&self, folded: &str) -> Vec<PhraseRef> {
        let mut hits = Vec::new();
        if let Some(ac) = &self.plain {
            for m in ac.find_overlapping_iter(folded) {
                hits.push(self.plain_refs[m.pattern().as_usize()]);
            }
        }
        if let Some(set) = &self.regexes {
            hits.extend(set.matches(folded).iter().map(|i| self.regex_refs[i]));
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}

/// The compiled form of a [`ChannelRules`].
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Lower-case logins of the channel's regulars.
    pub regulars: BTreeSet<String>,
    /// Lower-case command name or alias to command index.
    pub commands: BTreeMap<String, usize>,
    pub command_templates: Vec<Template>,
    pub keywords: Vec<CompiledKeyword>,
    /// All keyword phrases, for one scan per message.
    pub phrases: PhraseIndex,
    pub timer_templates: Vec<Template>,
    pub filters: Vec<CompiledFilter>,
    pub banned: BannedSet,
    /// Link detector, present when a links filter exists.
    pub link: Option<Regex>,
}

fn parse(source: &str, item: &str) -> Result<Template, RuleError> {
    Template::parse(source).map_err(|e| RuleError {
        item: item.to_string(),
        fault: format!("template {e}"),
    })
}

fn rule_error(item: &str, fault: impl ToString) -> RuleError {
    RuleError {
        item: item.to_string(),
        fault: fault.to_string(),
    }
}

impl Compiled {
    /// Validates `rules` and compiles them.
    pub fn build(rules: &ChannelRules) -> Result<Compiled, RuleError> {
        rules.validate()?;
        let mut compiled = Self::build_unfiltered(rules)?;
        if rules.filters.iter().any(|f| f.kind == FilterKind::Links) {
            compiled.link =
                Some(build_regex(LINK_PATTERN, true).map_err(|e| rule_error("links", e))?);
        }
        compiled.banned = compile_banned(rules)?;
        Ok(compiled)
    }

    /// Like [`Compiled::build`], but reuses `previous`'s filter matchers, which must have been
    /// built from filters equal to `rules.filters` (the common case of a command edit).
    pub fn rebuild(rules: &ChannelRules, previous: &Compiled) -> Result<Compiled, RuleError> {
        rules.validate_except_filters()?;
        let mut compiled = Self::build_unfiltered(rules)?;
        compiled.link = previous.link.clone();
        compiled.banned = previous.banned.clone();
        Ok(compiled)
    }

    /// Everything but the link detector and the banned-phrase set.
    fn build_unfiltered(rules: &ChannelRules) -> Result<Compiled, RuleError> {
        let mut compiled = Compiled {
            regulars: rules.regulars.iter().map(|r| r.to_lowercase()).collect(),
            ..Compiled::default()
        };
        for (i, command) in rules.commands.iter().enumerate() {
            for name in std::iter::once(&command.name).chain(&command.aliases) {
                compiled.commands.insert(name.to_lowercase(), i);
            }
            compiled
                .command_templates
                .push(parse(&command.response, &command.name)?);
        }
        let mut table = PhraseTable::default();
        for keyword in &rules.keywords {
            compiled
                .keywords
                .push(compile_keyword(keyword, &mut table)?);
        }
        compiled.phrases = table.build()?;
        for timer in &rules.timers {
            compiled
                .timer_templates
                .push(parse(&timer.message, &timer.name)?);
        }
        for filter in &rules.filters {
            let optional =
                |s: &Option<String>| s.as_deref().map(|s| parse(s, &filter.name)).transpose();
            compiled.filters.push(CompiledFilter {
                message: optional(&filter.message)?,
                warning_message: optional(&filter.warning_message)?,
            });
        }
        Ok(compiled)
    }
}

fn compile_keyword(
    keyword: &super::rules::KeywordRule,
    table: &mut PhraseTable,
) -> Result<CompiledKeyword, RuleError> {
    let groups = keyword
        .groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|p| table.id(p, keyword.case_sensitive))
                .collect()
        })
        .collect();
    let regex = match &keyword.regex {
        Some(p) => Some(
            build_regex(p, !keyword.case_sensitive).map_err(|e| rule_error(&keyword.name, e))?,
        ),
        None => None,
    };
    Ok(CompiledKeyword {
        groups,
        regex,
        template: parse(&keyword.response, &keyword.name)?,
    })
}

fn compile_banned(rules: &ChannelRules) -> Result<BannedSet, RuleError> {
    let mut plain = Vec::new();
    let mut plain_refs = Vec::new();
    let mut regexes = Vec::new();
    let mut regex_refs = Vec::new();
    for (fi, filter) in rules.filters.iter().enumerate() {
        if filter.kind != FilterKind::BannedPhrases {
            continue;
        }
        for (pi, phrase) in filter.phrases.iter().enumerate() {
            match phrase.kind {
                PhraseKind::Plain => {
                    plain.push(fold(&phrase.pattern));
                    plain_refs.push((fi, pi));
                }
                PhraseKind::Wildcard => {
                    regexes.push(format!("(?i){}", wildcard_to_regex(&fold(&phrase.pattern))));
                    regex_refs.push((fi, pi));
                }
                PhraseKind::Regex => {
                    regexes.push(format!("(?i:{})", ascii_word_boundaries(&phrase.pattern)));
                    regex_refs.push((fi, pi));
                }
            }
        }
    }
    let plain = if plain.is_empty() {
        None
    } else {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&plain)
            .map_err(|e| rule_error("banned phrases", e.to_string()))?;
        Some(ac)
    };
    let regexes = if regexes.is_empty() {
        None
    } else {
        let set = RegexSetBuilder::new(&regexes)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(regexes.len()).min(64 << 20))
            .build()
            .map_err(|e| rule_error("banned phrases", format!("regex set: {e}")))?;
        Some(set)
    };
    Ok(BannedSet {
        plain,
        plain_refs,
        regexes,
        regex_refs,
    })
}
