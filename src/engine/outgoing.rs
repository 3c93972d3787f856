//! What every text the bot posts is held to. Chat is hostile: a viewer's words, a display
//! name or a moderator's `!echo` must never make the bot run a command in the channel, its own
//! or another bot's, and must never make the bot say what the channel's filters forbid.
//!
//! **Where the guarantee lives.** The engine gives it, for every chat-derived part of a text,
//! because only the engine knows which parts came from chat ([`Rendered`]):
//!
//! 1. *No command lead.* A chat piece that would start a text (nothing visible before it)
//!    loses its leading blanks and command prefixes ([`strip_lead`]): whitespace, controls,
//!    invisible characters ([`fold::is_invisible`]: zero-width space and joiners, BOM, bidi
//!    controls, the U+E0000 tag block and the other default-ignorables), combining marks,
//!    the braille blank, and `!`, `/`, `.` (and their compatibility forms such as `！`). So
//!    even after another bot trims whatever it considers blank, the text does not start with
//!    a prefix; a zero-width character in front would not be enough, as other bots trim it.
//!    Replies the engine writes itself that quote chat (`!addcom`, `!permit`, `!nuke`)
//!    start with a fixed word (`command !x added`, `@user may post...`).
//! 2. *Content filters.* A text with chat-derived parts is screened by the channel's content
//!    filters ([`screen`]): enabled, non-shadow `banned_phrases` filters (on the whole text,
//!    where a hit counts only if chat made it: it is in a chat piece, or absent from what the
//!    owner wrote) and `links` filters (on the chat pieces, honouring `allow_domains`). Who
//!    triggered the text does not matter (the bot is not exempt because a moderator asked).
//!    A text that fails is not posted: it becomes [`Action::Withheld`], which every
//!    transport counts (`outbound_dropped{reason="withheld"}`) and never sends. Style
//!    filters (caps, symbols, emotes, repetition, length, zalgo) judge how a person writes and
//!    are not applied to the bot's output.
//!
//! Text the channel's owner wrote (responses, timers, filter messages) is theirs: a response
//! may start with `!` on purpose (`!so $(touser)` to drive another bot). Command and keyword
//! responses still lose a leading `/` or `.` ([`strip_slash_lead`]), as they always did.
//! The platform layer adds its own last line for what it sends: the Twitch outbound prefixes
//! any text starting with `/` or `.` with U+200B (enough for Twitch's own command parser,
//! which does not trim it), and both transports drop `Withheld` actions.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::filters::checks;
use super::fold::{self, fold};
use super::rules::FilterKind;
use super::template::Rendered;
use super::{Action, ChannelState};

/// Whether `c` is blank to a chat reader or a bot that trims: whitespace, a control, an
/// invisible character, a combining mark (nothing to combine with at the start), or the
/// braille pattern blank U+2800 that chat uses as a visible-looking space.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || fold::is_invisible(c)
        || is_combining_mark(c)
        || c == '\u{2800}'
}

/// Whether `text` holds nothing but blanks.
pub fn is_blank_text(text: &str) -> bool {
    text.chars().all(is_blank)
}

/// Whether `c` is a command prefix (`!`, `/`, `.`) or a compatibility form of one (full-width
/// `！`, small `﹗`, the one-dot leader `․`...), which a bot that normalises would read as one.
pub fn is_prefix(c: char) -> bool {
    matches!(c, '!' | '/' | '.') || (!c.is_ascii() && compat_first(c).is_some_and(is_prefix_ascii))
}

fn is_prefix_ascii(c: char) -> bool {
    matches!(c, '!' | '/' | '.')
}

fn is_slash_or_dot(c: char) -> bool {
    matches!(c, '/' | '.')
        || (!c.is_ascii() && compat_first(c).is_some_and(|d| matches!(d, '/' | '.')))
}

fn compat_first(c: char) -> Option<char> {
    std::iter::once(c).nfkd().next()
}

/// `text` without its leading blanks and command prefixes: what is left starts with a
/// visible character that is no prefix, or is empty.
pub fn strip_lead(text: &str) -> &str {
    text.trim_start_matches(|c: char| is_blank(c) || is_prefix(c))
}

/// `text` without its lead when that is a `/` or `.`: then every leading blank and prefix
/// goes (so `/!x` does not become `!x`); other texts are returned as they are.
pub fn strip_slash_lead(text: &str) -> &str {
    let visible = text.trim_start_matches(is_blank);
    if visible.starts_with(is_slash_or_dot) {
        strip_lead(visible)
    } else {
        text
    }
}

/// Whether `text`, trimmed of blanks, starts with a command prefix.
pub fn leads_with_prefix(text: &str) -> bool {
    text.trim_start_matches(is_blank).starts_with(is_prefix)
}

/// The name of the first content filter that forbids posting `rendered`, if any (see the
/// module docs). Texts without chat-derived parts are not screened.
pub fn screen(state: &ChannelState, rendered: &Rendered, now_ms: u64) -> Option<String> {
    if rendered.chat.is_empty() || state.rules.filters.is_empty() {
        return None;
    }
    let rules = &state.rules;
    let compiled = state.compiled();
    let applies = |kind: FilterKind| {
        rules
            .filters
            .iter()
            .any(|f| f.enabled && !f.shadow && f.kind == kind)
    };
    let chat = fold(&rendered.chat);
    if applies(FilterKind::BannedPhrases) {
        let online = state.online();
        let live = |(fi, pi): &(usize, usize)| {
            let filter = &rules.filters[*fi];
            let phrase = &filter.phrases[*pi];
            filter.enabled
                && !filter.shadow
                && phrase.expires_at_ms.is_none_or(|t| t > now_ms)
                && (online || !phrase.online_only)
                && (!online || !phrase.offline_only)
        };
        let in_chat: Vec<(usize, usize)> = compiled.banned.matches(&chat);
        if let Some((fi, _)) = in_chat.iter().find(|r| live(r)) {
            return Some(rules.filters[*fi].name.clone());
        }
        let owner = compiled.banned.matches(&fold(&rendered.skeleton));
        let made = compiled
            .banned
            .matches(&fold(&rendered.text))
            .into_iter()
            .find(|r| live(r) && !owner.contains(r));
        if let Some((fi, _)) = made {
            return Some(rules.filters[fi].name.clone());
        }
    }
    if let Some(link) = &compiled.link {
        let hit = rules.filters.iter().find(|f| {
            f.enabled && !f.shadow && f.kind == FilterKind::Links && checks::links(f, &chat, link)
        });
        if let Some(filter) = hit {
            return Some(filter.name.clone());
        }
    }
    None
}

/// `action` (a Say or Reply of `rendered`'s text), or its [`Action::Withheld`] record when a
/// content filter forbids the text.
pub fn screened(state: &ChannelState, rendered: &Rendered, action: Action, now_ms: u64) -> Action {
    match screen(state, rendered, now_ms) {
        Some(rule) => Action::Withheld {
            rule,
            would: Box::new(action),
        },
        None => action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leads_are_stripped_of_blanks_invisibles_and_prefixes() {
        let table = [
            ("!addcom !pwn owned", "addcom !pwn owned"),
            ("\u{200B}!ban x", "ban x"),
            (" /ban x", "ban x"),
            ("\u{FEFF}\u{E0001}\u{2060} .ban x", "ban x"),
            ("\u{0301}\u{202E}!x", "x"),
            ("\u{2800}!x", "x"),
            ("！x", "x"),
            ("\u{3164}\u{115F}/x", "x"),
            ("!!!", ""),
            ("hello !x", "hello !x"),
            ("@mod !x", "@mod !x"),
        ];
        for (input, want) in table {
            assert_eq!(strip_lead(input), want, "{input:?}");
            assert!(!leads_with_prefix(strip_lead(input)), "{input:?}");
        }
        assert!(leads_with_prefix("\u{200B} \u{E0020}!x"));
        assert!(!leads_with_prefix("x!"));
        assert_eq!(strip_slash_lead("\u{200B}/me hi"), "me hi");
        assert_eq!(strip_slash_lead("!so bob"), "!so bob");
        assert_eq!(strip_slash_lead("/!ban x"), "ban x");
    }
}
