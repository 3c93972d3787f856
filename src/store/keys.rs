//! The embedded store's keys: a row's key parts (channel, kind, name, user id, ...) joined
//! into one string so that a channel's rows are one key range, for *any* part text.
//!
//! Parts are joined by [`SEP`] (U+001F). Inside a part, U+001F and the escape character
//! U+001E are written as two characters each (`ESC '1'` and `ESC '0'`), so an encoded part
//! never contains the separator: splitting a key on it gives the parts back exactly
//! ([`split`]), and the keys under one part prefix are exactly the range [`under`] names.
//! Files written before this encoding (schema version 1) are re-encoded by migration 2
//! (`super::embedded`).

/// Separates the parts of a key.
pub const SEP: char = '\u{1f}';
/// Starts an escape inside a part.
pub const ESC: char = '\u{1e}';

/// A key that is not a valid encoding (a corrupt or foreign row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored key {key:?} is not a valid key: {why}")]
pub struct BadKey {
    pub key: String,
    pub why: &'static str,
}

/// One part, escaped.
pub fn encode_part(part: &str, out: &mut String) {
    for c in part.chars() {
        match c {
            ESC => {
                out.push(ESC);
                out.push('0');
            }
            SEP => {
                out.push(ESC);
                out.push('1');
            }
            c => out.push(c),
        }
    }
}

/// The key of `parts`.
pub fn join(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        encode_part(part, &mut key);
    }
    key
}

/// The parts of `key`, decoded.
pub fn split(key: &str) -> Result<Vec<String>, BadKey> {
    let bad = |why| BadKey {
        key: key.to_string(),
        why,
    };
    let mut parts = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            SEP => parts.push(String::new()),
            ESC => {
                let decoded = match chars.next() {
                    Some('0') => ESC,
                    Some('1') => SEP,
                    Some(_) => return Err(bad("unknown escape")),
                    None => return Err(bad("escape at the end")),
                };
                if let Some(last) = parts.last_mut() {
                    last.push(decoded);
                }
            }
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    Ok(parts)
}

/// The parts of `key`, which must be exactly `N` of them.
pub fn split_n<const N: usize>(key: &str) -> Result<[String; N], BadKey> {
    let parts = split(key)?;
    parts.try_into().map_err(|_| BadKey {
        key: key.to_string(),
        why: "wrong number of parts",
    })
}

/// The key range of every key whose first parts are `prefix` (and that has more parts).
pub fn under(prefix: &[&str]) -> (String, String) {
    let base = join(prefix);
    // No character lies between U+001F and U+0020, and an encoded part never holds U+001F.
    (format!("{base}{SEP}"), format!("{base}\u{20}"))
}

/// Property code shared by the `store_keys` fuzz target and the suite's smoke test over its
/// seeds (`fuzz/seeds/store_keys/`).
#[doc(hidden)]
pub mod fuzzing {
    use super::{join, split, under};

    /// The parts a fuzz input stands for: its text split on `|` (any character may appear in a
    /// part, the separator and escape included), at most 6 parts.
    pub fn parts_of(data: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(data);
        text.splitn(6, '|').map(str::to_string).collect()
    }

    /// Round trip and ranges: `split(join(p)) == p`; the key lies in the range of every proper
    /// prefix of its parts and in no range of a different first part; keys of different parts
    /// differ.
    pub fn check(data: &[u8]) {
        let parts = parts_of(data);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = join(&refs);
        let back = split(&key).expect("a joined key splits");
        assert_eq!(back, parts, "round trip of {key:?}");
        for n in 1..refs.len() {
            let (from, to) = under(&refs[..n]);
            assert!(
                from.as_str() <= key.as_str() && key.as_str() < to.as_str(),
                "{key:?} under its prefix of {n} parts"
            );
        }
        // Another first part: the key is outside that channel's range.
        let mut other = parts[0].clone();
        other.push('\u{1f}');
        for other_first in [other.as_str(), "", "x"] {
            if other_first == parts[0] {
                continue;
            }
            let (from, to) = under(&[other_first]);
            assert!(
                !(from.as_str() <= key.as_str() && key.as_str() < to.as_str()),
                "{key:?} is not under {other_first:?}"
            );
        }
        // Injective: the same parts with one changed give another key.
        let mut changed = parts.clone();
        changed[0].push('\u{1e}');
        let changed_refs: Vec<&str> = changed.iter().map(String::as_str).collect();
        assert_ne!(join(&changed_refs), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_part_round_trips_and_stays_in_its_channel_range() {
        let nasty = [
            "plain",
            "",
            "\u{1f}",
            "\u{1e}",
            "\u{1e}1",
            "!b\u{1f}c",
            "a\u{1e}0\u{1f}\u{1e}",
            "ünï\u{0}cødé",
        ];
        for a in nasty {
            for b in nasty {
                let key = join(&["twitch:chan", a, b]);
                assert_eq!(split(&key).expect("split"), ["twitch:chan", a, b]);
                let (from, to) = under(&["twitch:chan"]);
                assert!(from <= key && key < to);
                let (from, to) = under(&["twitch:chan", a]);
                assert!(from <= key && key < to, "{a:?} {b:?}");
                fuzzing::check(format!("{a}|{b}").as_bytes());
            }
        }
        assert_eq!(split_n::<2>(&join(&["a", "b"])).expect("two"), ["a", "b"]);
        assert!(split_n::<3>(&join(&["a", "b"])).is_err());
        assert!(split("a\u{1e}x").is_err());
        assert!(split("a\u{1e}").is_err());
    }

    #[test]
    fn keys_without_the_two_characters_are_what_they_were() {
        // Rows of such names keep the key they had before the encoding existed.
        assert_eq!(
            join(&["twitch:chan", "command", "!hug"]),
            "twitch:chan\u{1f}command\u{1f}!hug"
        );
    }
}
