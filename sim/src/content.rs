//! What simulated chatters say and who they are.
//!
//! [`ContentPool`] holds message texts with their `emotes` tag: taken from a corpus of raw IRC
//! lines (real chat, real emote ranges) or built in from word and emote lists (ranges computed
//! in Unicode code points, as Twitch does). [`ZipfTable`] samples ranks with weight `1/rank^s`;
//! [`Chatter`] derives a stable user (login, id, badges, color) from a channel and a rank.

use rand::Rng;
use std::path::Path;
use twitch_irc::message::IRCMessage;

/// Most texts kept from a corpus.
const MAX_CORPUS_TEXTS: usize = 200_000;
/// Texts generated for the built-in pool.
const BUILTIN_TEXTS: usize = 4_096;

/// One message text and its `emotes` tag value (ranges in code points, possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText {
    pub body: String,
    pub emotes: String,
}

/// The texts generated messages are drawn from.
#[derive(Debug, Clone)]
pub struct ContentPool {
    texts: Vec<ChatText>,
}

impl ContentPool {
    /// Texts built from word and emote lists.
    pub fn builtin(rng: &mut impl Rng) -> Self {
        let texts = (0..BUILTIN_TEXTS).map(|_| builtin_text(rng)).collect();
        Self { texts }
    }

    /// PRIVMSG texts of a corpus file (commands `!ping`/`!echo` excluded: the generator adds
    /// those at their configured shares). Falls back to built-in texts if the file has none.
    pub fn from_corpus(path: &Path, rng: &mut impl Rng) -> std::io::Result<Self> {
        let raw = std::fs::read_to_string(path)?;
        let texts: Vec<ChatText> = raw
            .lines()
            .filter_map(corpus_text)
            .take(MAX_CORPUS_TEXTS)
            .collect();
        if texts.is_empty() {
            tracing::warn!(path = %path.display(), "corpus has no PRIVMSG lines, using built-in texts");
            return Ok(Self::builtin(rng));
        }
        Ok(Self { texts })
    }

    /// A random text.
    pub fn pick(&self, rng: &mut impl Rng) -> &ChatText {
        &self.texts[rng.random_range(0..self.texts.len())]
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// The text and emotes of a corpus line, if it is a usable PRIVMSG.
fn corpus_text(line: &str) -> Option<ChatText> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let message = IRCMessage::parse(line).ok()?;
    if message.command != "PRIVMSG" {
        return None;
    }
    let body = message.params.get(1)?.clone();
    if body.is_empty() || body.starts_with("!ping") || body.starts_with("!echo") {
        return None;
    }
    let emotes = message.tags.0.get("emotes").cloned().unwrap_or_default();
    Some(ChatText { body, emotes })
}

/// Global emotes: (code, id).
const EMOTES: &[(&str, &str)] = &[
    ("Kappa", "25"),
    ("LUL", "425618"),
    ("PogChamp", "305954156"),
    ("Kreygasm", "41"),
    ("BibleThump", "86"),
    ("4Head", "354"),
    ("ResidentSleeper", "245"),
    ("TriHard", "120232"),
    ("NotLikeThis", "58765"),
    ("SeemsGood", "64138"),
    ("<3", "483"),
];

const WORDS: &[&str] = &[
    "lol",
    "what",
    "is",
    "this",
    "game",
    "chat",
    "he",
    "actually",
    "did",
    "it",
    "no",
    "way",
    "clip",
    "that",
    "bro",
    "the",
    "streamer",
    "so",
    "good",
    "bad",
    "today",
    "hi",
    "hello",
    "gg",
    "ez",
    "wtf",
    "just",
    "happened",
    "first",
    "time",
    "here",
    "love",
    "stream",
    "play",
    "again",
    "real",
    "true",
    "monkas",
    "pog",
    "when",
    "is",
    "next",
    "boss",
    "run",
    "dead",
    "alive",
    "insane",
    "👉",
    "😂",
    "привет",
    "été",
    "ja",
    "xd",
    "omg",
    "pls",
    "mods",
    "ban",
    "him",
    "???",
    "!!!",
];

/// One built-in text: mostly chat words with emotes, sometimes caps, a link or non-ASCII.
fn builtin_text(rng: &mut impl Rng) -> ChatText {
    let style = rng.random_range(0..100);
    if style < 5 {
        let clip: u32 = rng.random();
        return ChatText {
            body: format!(
                "look https://clips.twitch.tv/Clip{clip:08x} {}",
                pick_word(rng)
            ),
            emotes: String::new(),
        };
    }
    let words = rng.random_range(1..=12);
    let emote_share = if style < 20 { 0.8 } else { 0.2 };
    let caps = (20..28).contains(&style);
    let mut body = String::new();
    let mut ranges: Vec<(&str, usize, usize)> = Vec::new();
    let mut chars = 0usize;
    for i in 0..words {
        if i > 0 {
            body.push(' ');
            chars += 1;
        }
        if rng.random_bool(emote_share) {
            let (code, id) = EMOTES[rng.random_range(0..EMOTES.len())];
            let len = code.chars().count();
            ranges.push((id, chars, chars + len - 1));
            body.push_str(code);
            chars += len;
        } else {
            let word = pick_word(rng);
            let word = if caps {
                word.to_uppercase()
            } else {
                word.to_string()
            };
            chars += word.chars().count();
            body.push_str(&word);
        }
    }
    ChatText {
        emotes: emotes_tag(&ranges),
        body,
    }
}

fn pick_word(rng: &mut impl Rng) -> &'static str {
    WORDS[rng.random_range(0..WORDS.len())]
}

/// Formats `(id, start, end)` ranges as an `emotes` tag: `id:a-b,c-d/id2:e-f`.
pub fn emotes_tag(ranges: &[(&str, usize, usize)]) -> String {
    let mut ids: Vec<&str> = Vec::new();
    for (id, _, _) in ranges {
        if !ids.contains(id) {
            ids.push(id);
        }
    }
    ids.iter()
        .map(|id| {
            let spans: Vec<String> = ranges
                .iter()
                .filter(|(rid, _, _)| rid == id)
                .map(|(_, start, end)| format!("{start}-{end}"))
                .collect();
            format!("{id}:{}", spans.join(","))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Shifts every range of an `emotes` tag by `offset` code points (for a prefixed text).
pub fn shift_emotes(tag: &str, offset: usize) -> String {
    if tag.is_empty() || offset == 0 {
        return tag.to_string();
    }
    let shift_span = |span: &str| -> String {
        match span.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) => format!("{}-{}", a + offset, b + offset),
                _ => span.to_string(),
            },
            None => span.to_string(),
        }
    };
    tag.split('/')
        .map(|emote| match emote.split_once(':') {
            Some((id, spans)) => {
                let spans: Vec<String> = spans.split(',').map(shift_span).collect();
                format!("{id}:{}", spans.join(","))
            }
            None => emote.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Samples ranks `0..n` with probability proportional to `1/(rank+1)^s`.
#[derive(Debug, Clone)]
pub struct ZipfTable {
    cumulative: Vec<f64>,
}

impl ZipfTable {
    pub fn new(n: usize, exponent: f64) -> Self {
        Self::from_weights((0..n).map(|rank| zipf_weight(rank, exponent)))
    }

    /// A table over arbitrary non-negative weights.
    pub fn from_weights(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// Sum of all weights (0 when nothing can be drawn).
    pub fn total(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// A rank among the first `n` only (a truncated Zipf draw), or `None` when they weigh 0.
    pub fn sample_within(&self, n: usize, rng: &mut impl Rng) -> Option<usize> {
        let n = n.min(self.cumulative.len());
        let total = if n == 0 { 0.0 } else { self.cumulative[n - 1] };
        if total <= 0.0 {
            return None;
        }
        let x = rng.random::<f64>() * total;
        let rank = self.cumulative[..n].partition_point(|c| *c <= x);
        Some(rank.min(n - 1))
    }

    /// A rank, or `None` when all weights are zero.
    pub fn sample(&self, rng: &mut impl Rng) -> Option<usize> {
        let total = self.total();
        if total <= 0.0 {
            return None;
        }
        let x = rng.random::<f64>() * total;
        let rank = self.cumulative.partition_point(|c| *c <= x);
        Some(rank.min(self.cumulative.len() - 1))
    }
}

/// Weight `1/(rank+1)^s`.
pub fn zipf_weight(rank: usize, exponent: f64) -> f64 {
    1.0 / ((rank + 1) as f64).powf(exponent)
}

const NAME_PARTS: &[&str] = &[
    "xqc", "poggers", "kappa", "lul", "frog", "sniper", "ninja", "coffee", "pixel", "dark", "moon",
    "turbo", "lazy", "happy", "salty", "cat", "dog", "wolf", "gamer", "bot",
];
const COLORS: &[&str] = &[
    "#FF0000", "#0000FF", "#008000", "#B22222", "#FF7F50", "#9ACD32", "#FF4500", "#2E8B57",
    "#DAA520", "#D2691E", "#5F9EA0", "#1E90FF", "#FF69B4", "#8A2BE2", "#00FF7F", "",
];

/// A simulated user, stable for a (channel, rank) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chatter {
    pub login: String,
    pub display_name: String,
    pub user_id: String,
    pub color: &'static str,
    pub is_mod: bool,
    pub is_vip: bool,
    pub is_broadcaster: bool,
    /// Months subscribed (0 = not a subscriber).
    pub sub_months: u32,
    /// Follows the channel (chat modes ask; not on the wire).
    pub follows: bool,
    /// A fresh account (a raid's; Shield Mode stops it unless it follows or subscribes).
    pub new_account: bool,
}

impl Chatter {
    /// The chatter of `rank` (0 = most active) in the channel with `room_id`. The population
    /// of a channel's regular chat: about a tenth subscribe, 55 % follow, none is a fresh account.
    pub fn derive(room_id: u64, rank: usize) -> Self {
        let h = mix(room_id.wrapping_mul(1_000_003).wrapping_add(rank as u64));
        let a = NAME_PARTS[(h % NAME_PARTS.len() as u64) as usize];
        let b = NAME_PARTS[((h >> 8) % NAME_PARTS.len() as u64) as usize];
        let login = format!("{a}_{b}{}", (h >> 16) % 10_000);
        let display_name = capitalize(&login);
        let is_broadcaster = rank == 7;
        Self {
            user_id: (10_000_000 + (h >> 20) % 900_000_000).to_string(),
            color: COLORS[((h >> 40) % COLORS.len() as u64) as usize],
            is_mod: !is_broadcaster && h % 23 == 0,
            is_vip: h % 31 == 1,
            sub_months: if h % 10 == 0 {
                ((h >> 12) % 60) as u32 + 1
            } else {
                0
            },
            follows: (h >> 52) % 100 < 55,
            new_account: false,
            is_broadcaster,
            login,
            display_name,
        }
    }

    /// Raid account `n` (fresh: no badges, not a follower, not a subscriber).
    pub fn raider(room_id: u64, n: usize) -> Self {
        let h = mix(room_id.wrapping_mul(7_919).wrapping_add(n as u64) ^ 0x5a5a_5a5a);
        let login = format!("raid_{room_id}_{n}");
        Self {
            display_name: login.clone(),
            login,
            // Ids above every regular chatter's (10M..910M).
            user_id: (2_000_000_000 + room_id * 10_000 + n as u64).to_string(),
            color: COLORS[((h >> 40) % COLORS.len() as u64) as usize],
            is_mod: false,
            is_vip: false,
            is_broadcaster: false,
            sub_months: 0,
            follows: false,
            new_account: true,
        }
    }

    /// A user for an explicit login (used by `send_privmsg`).
    pub fn for_login(login: &str) -> Self {
        let h = mix(login.bytes().fold(0xcbf2_9ce4_8422_2325, |acc, b| {
            (acc ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }));
        Self {
            login: login.to_string(),
            display_name: capitalize(login),
            user_id: (10_000_000 + h % 900_000_000).to_string(),
            color: COLORS[((h >> 40) % COLORS.len() as u64) as usize],
            is_mod: false,
            is_vip: false,
            is_broadcaster: false,
            sub_months: 0,
            follows: true,
            new_account: false,
        }
    }

    /// `badges` tag value.
    pub fn badges(&self) -> String {
        let mut badges: Vec<String> = Vec::new();
        if self.is_broadcaster {
            badges.push("broadcaster/1".into());
        }
        if self.is_mod {
            badges.push("moderator/1".into());
        }
        if self.is_vip {
            badges.push("vip/1".into());
        }
        if self.sub_months > 0 {
            badges.push(format!("subscriber/{}", sub_badge_tier(self.sub_months)));
        }
        badges.join(",")
    }

    /// `badge-info` tag value.
    pub fn badge_info(&self) -> String {
        if self.sub_months > 0 {
            format!("subscriber/{}", self.sub_months)
        } else {
            String::new()
        }
    }
}

fn sub_badge_tier(months: u32) -> u32 {
    match months {
        0..=2 => 0,
        3..=5 => 3,
        6..=11 => 6,
        12..=23 => 12,
        _ => 24,
    }
}

fn capitalize(login: &str) -> String {
    let mut chars = login.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// SplitMix64 finalizer: spreads the bits of `x`.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn builtin_emote_ranges_point_at_the_emote_codes() {
        let mut rng = SmallRng::seed_from_u64(7);
        let pool = ContentPool::builtin(&mut rng);
        let mut checked = 0;
        for _ in 0..2_000 {
            let text = pool.pick(&mut rng);
            for emote in text.emotes.split('/').filter(|e| !e.is_empty()) {
                let (id, spans) = emote.split_once(':').expect("id:spans");
                let code = EMOTES.iter().find(|(_, eid)| *eid == id).expect("known").0;
                for span in spans.split(',') {
                    let (a, b) = span.split_once('-').expect("a-b");
                    let (a, b): (usize, usize) = (a.parse().expect("a"), b.parse().expect("b"));
                    let slice: String = text.body.chars().skip(a).take(b + 1 - a).collect();
                    assert_eq!(slice, code, "in {:?}", text.body);
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} emotes checked");
    }

    #[test]
    fn corpus_texts_are_loaded_with_their_emotes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/xqcow-chat-2019.txt"
        );
        let mut rng = SmallRng::seed_from_u64(1);
        let pool = ContentPool::from_corpus(Path::new(path), &mut rng).expect("corpus readable");
        assert!(pool.len() > 3_000, "only {} texts", pool.len());
        assert!(pool.texts.iter().any(|t| !t.emotes.is_empty()));
    }

    #[test]
    fn zipf_favours_low_ranks_and_skips_zero_weights() {
        let table = ZipfTable::new(100, 1.0);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng).expect("non-empty")] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]);
        let ratio = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((7.0..13.0).contains(&ratio), "rank1/rank10 = {ratio}");

        let sparse = ZipfTable::from_weights([0.0, 2.0, 0.0]);
        assert!((0..1000).all(|_| sparse.sample(&mut rng) == Some(1)));
        assert_eq!(ZipfTable::from_weights([0.0]).sample(&mut rng), None);
    }

    #[test]
    fn emote_tags_format_and_shift() {
        let tag = emotes_tag(&[("25", 0, 4), ("1", 6, 7), ("25", 9, 13)]);
        assert_eq!(tag, "25:0-4,9-13/1:6-7");
        assert_eq!(shift_emotes(&tag, 3), "25:3-7,12-16/1:9-10");
        assert_eq!(shift_emotes("", 3), "");
    }
}
