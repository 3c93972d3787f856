//! Detectors: does one message break one filter? Pure functions of the message.
//!
//! Caps and symbols ignore characters inside emotes (`KEKW` is not shouting). Links are found
//! in folded text so full-width or look-alike dots and letters do not hide them.

use regex::Regex;

use crate::engine::fold::combining_marks;
use crate::engine::rules::FilterRule;
use crate::engine::EmoteSpan;

/// Characters of `text` outside every emote span (spans are char ranges; bad ones are clamped).
fn outside_emotes<'a>(text: &'a str, emotes: &[EmoteSpan]) -> impl Iterator<Item = char> + 'a {
    let mut inside = Vec::new();
    if !emotes.is_empty() {
        inside = vec![false; text.chars().count()];
        for span in emotes {
            let end = span.end.min(inside.len());
            if let Some(slots) = inside.get_mut(span.start.min(end)..end) {
                slots.fill(true);
            }
        }
    }
    text.chars()
        .enumerate()
        .filter(move |(i, _)| !inside.get(*i).copied().unwrap_or(false))
        .map(|(_, c)| c)
}

/// Too large a share of upper-case letters.
pub fn caps(filter: &FilterRule, text: &str, emotes: &[EmoteSpan]) -> bool {
    let (mut letters, mut upper) = (0usize, 0usize);
    for c in outside_emotes(text, emotes).filter(|c| c.is_alphabetic()) {
        letters += 1;
        upper += usize::from(c.is_uppercase());
    }
    over_share(letters, upper, filter)
}

/// Too large a share of symbols among non-space characters.
pub fn symbols(filter: &FilterRule, text: &str, emotes: &[EmoteSpan]) -> bool {
    let (mut total, mut symbols) = (0usize, 0usize);
    for c in outside_emotes(text, emotes).filter(|c| !c.is_whitespace()) {
        total += 1;
        symbols += usize::from(!c.is_alphanumeric());
    }
    over_share(total, symbols, filter)
}

fn over_share(total: usize, part: usize, filter: &FilterRule) -> bool {
    total > 0 && total >= filter.min_length && part as f64 / total as f64 > filter.max_share
}

/// More emotes than allowed.
pub fn emotes(filter: &FilterRule, emotes: &[EmoteSpan]) -> bool {
    emotes.len() > filter.max_count
}

/// More combining marks than allowed (zalgo text).
pub fn zalgo(filter: &FilterRule, text: &str) -> bool {
    combining_marks(text) > filter.max_count
}

/// Longer than allowed.
pub fn length(filter: &FilterRule, text: &str) -> bool {
    text.chars().count() > filter.max_length
}

/// One word repeated too often, or one character repeated in too long a run.
pub fn repetition(filter: &FilterRule, folded: &str) -> bool {
    (filter.max_word_repeats > 0 && max_word_count(folded) > filter.max_word_repeats)
        || (filter.max_char_run > 0 && max_char_run(folded) > filter.max_char_run)
}

fn max_word_count(text: &str) -> usize {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    words.sort_unstable();
    words
        .chunk_by(|a, b| a == b)
        .map(<[&str]>::len)
        .max()
        .unwrap_or(0)
}

fn max_char_run(text: &str) -> usize {
    let (mut max, mut run, mut last) = (0, 0, None);
    for c in text.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        last = Some(c);
        max = max.max(run);
    }
    max
}

/// A link to a host outside the allow-list.
pub fn links(filter: &FilterRule, folded: &str, detector: &Regex) -> bool {
    detector
        .find_iter(folded)
        .any(|m| !allowed(host(m.as_str()), &filter.allow_domains))
}

fn host(link: &str) -> &str {
    let rest = link.split_once("://").map_or(link, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

fn allowed(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|domain| {
        let domain = domain.trim_start_matches("*.");
        host.eq_ignore_ascii_case(domain)
            || (host.len() > domain.len()
                && host.is_char_boundary(host.len() - domain.len() - 1)
                && host[host.len() - domain.len() - 1..]
                    .eq_ignore_ascii_case(&format!(".{domain}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(kind: &str) -> FilterRule {
        toml::from_str(&format!("name = \"f\"\nkind = \"{kind}\"")).expect("filter")
    }

    #[test]
    fn caps_counts_letters_outside_emotes() {
        let mut f = filter("caps");
        f.min_length = 5;
        let bogus = [
            EmoteSpan {
                id: "x".into(),
                start: 90,
                end: 200,
            },
            EmoteSpan {
                id: "y".into(),
                start: 9,
                end: 3,
            },
        ];
        let kekw = [EmoteSpan {
            id: "1".into(),
            start: 0,
            end: 4,
        }];
        let table = [
            ("HELLO THERE", &[][..], true),
            ("Hello there", &[][..], false),
            ("HI", &[][..], false),
            ("KEKW that is funny", &kekw[..], false),
            ("KEKW THAT IS FUNNY", &kekw[..], true),
            ("SHOUTING LOUDLY", &bogus[..], true),
        ];
        for (text, spans, want) in table {
            assert_eq!(caps(&f, text, spans), want, "{text}");
        }
    }

    #[test]
    fn symbols_emotes_zalgo_length_and_repetition() {
        let mut f = filter("symbols");
        f.min_length = 4;
        f.max_share = 0.5;
        assert!(symbols(&f, "!!!!??? hi", &[]));
        assert!(!symbols(&f, "hello, world!", &[]));
        f.max_count = 2;
        let span = |s| EmoteSpan {
            id: "e".into(),
            start: s,
            end: s + 1,
        };
        assert!(emotes(&f, &[span(0), span(2), span(4)]));
        assert!(!emotes(&f, &[span(0), span(2)]));
        assert!(zalgo(&f, "h\u{0336}\u{0337}\u{0338}i"));
        assert!(!zalgo(&f, "héllo"));
        f.max_length = 5;
        assert!(length(&f, "ééééééé") && !length(&f, "ééééé"));
        f.max_word_repeats = 3;
        assert!(repetition(&f, "lul lul lul lul"));
        assert!(!repetition(&f, "lul lul lul omegalul"));
        f.max_word_repeats = 0;
        f.max_char_run = 5;
        assert!(repetition(&f, "noooooo"));
        assert!(!repetition(&f, "nooooo"));
    }

    #[test]
    fn links_respect_the_allow_list_and_subdomains() {
        let mut f = filter("links");
        f.allow_domains = vec!["twitch.tv".into(), "*.youtube.com".into()];
        let re = crate::engine::rules::build_regex(crate::engine::compiled::link_pattern(), true)
            .expect("link regex");
        let table = [
            ("go to https://evil.com/x now", true),
            ("visit free-followers.xyz", true),
            ("clips.twitch.tv/abc is fine", false),
            ("https://www.youtube.com/watch?v=1", false),
            ("youtube.com", false),
            ("nottwitch.tv", true),
            ("e.g. this is fine... ok.", false),
            ("3.14 and 1.5", false),
        ];
        for (text, want) in table {
            assert_eq!(
                links(&f, &crate::engine::fold::fold(text), &re),
                want,
                "{text}"
            );
        }
    }
}
