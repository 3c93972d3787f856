//! A declared content mix for generated chat (used by `firehose bench`).
//!
//! Without a mix the generator says what [`super::content::ContentPool`] holds, plus `!ping` /
//! `!echo` at their configured shares. With a [`ContentMix`] every generated PRIVMSG is first
//! given a kind by the declared shares: plain chat, emote-heavy chat, a command, a link, caps
//! spam or a banned phrase. Each kind says what the bot is expected to do about it
//! ([`Expect`]): commands expect a threaded reply, links / caps / banned phrases expect a
//! moderation action. The generator records expected messages in [`super::track::Tracker`] so
//! the reply or moderation that answers them can be timed.

use rand::Rng;

use super::content::{emotes_tag, ChatText, ContentPool};

/// What the bot is expected to do about a generated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing in particular.
    Nothing,
    /// A reply (threaded with `reply-parent-msg-id`).
    Reply,
    /// A moderation action (delete, timeout or ban) through Helix.
    Moderation,
}

/// The kinds of chat a mix is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Emotes,
    Command,
    Link,
    Caps,
    Banned,
}

impl Kind {
    pub fn expect(self) -> Expect {
        match self {
            Kind::Plain | Kind::Emotes => Expect::Nothing,
            Kind::Command => Expect::Reply,
            Kind::Link | Kind::Caps | Kind::Banned => Expect::Moderation,
        }
    }

    /// True for kinds sent by an unprivileged chatter (no badges), so no filter exempts them.
    pub fn from_plain_viewer(self) -> bool {
        self.expect() == Expect::Moderation
    }
}

/// Shares of each kind (any non-negative numbers; they are normalised) and the texts used.
#[derive(Debug, Clone)]
pub struct ContentMix {
    pub plain: f64,
    pub emotes: f64,
    pub commands: f64,
    pub links: f64,
    pub caps: f64,
    pub banned: f64,
    /// Commands sent (each must be answered with a reply by the bot's rules), e.g. `!ping`.
    pub command_texts: Vec<String>,
    /// Phrases the bot's filters ban; a banned message embeds one of them.
    pub banned_phrases: Vec<String>,
    /// A link the bot's filters do not allow, e.g. `https://spam-site.xyz/free`.
    pub link_texts: Vec<String>,
}

impl ContentMix {
    /// Sum of all shares.
    pub fn total(&self) -> f64 {
        [
            self.plain,
            self.emotes,
            self.commands,
            self.links,
            self.caps,
            self.banned,
        ]
        .iter()
        .map(|s| s.max(0.0))
        .sum()
    }

    /// Share (0..=1) of messages that expect a reply.
    pub fn reply_share(&self) -> f64 {
        let total = self.total();
        if total <= 0.0 {
            0.0
        } else {
            self.commands.max(0.0) / total
        }
    }

    /// Draws a kind by the shares (plain when all shares are zero).
    pub fn pick_kind(&self, rng: &mut impl Rng) -> Kind {
        let total = self.total();
        if total <= 0.0 {
            return Kind::Plain;
        }
        let mut x = rng.random::<f64>() * total;
        for (kind, share) in [
            (Kind::Plain, self.plain),
            (Kind::Emotes, self.emotes),
            (Kind::Command, self.commands),
            (Kind::Link, self.links),
            (Kind::Caps, self.caps),
            (Kind::Banned, self.banned),
        ] {
            let share = share.max(0.0);
            if x < share {
                return kind;
            }
            x -= share;
        }
        Kind::Plain
    }

    /// A text of `kind`; plain chat comes from `pool` (built-in or corpus).
    pub fn text(&self, kind: Kind, pool: &ContentPool, rng: &mut impl Rng) -> ChatText {
        match kind {
            Kind::Plain => {
                // Plain chat stays plain: shouting is the declared `caps` share, not the pool's.
                let mut text = pool.pick(rng).clone();
                if mostly_caps(&text.body) {
                    text.body = text.body.to_lowercase();
                }
                text
            }
            Kind::Emotes => emote_text(rng),
            Kind::Command => ChatText {
                body: pick(&self.command_texts, rng, "!ping"),
                emotes: String::new(),
            },
            Kind::Link => ChatText {
                body: format!(
                    "check this out {}",
                    pick(&self.link_texts, rng, "https://spam-site.xyz/free")
                ),
                emotes: String::new(),
            },
            Kind::Caps => ChatText {
                body: CAPS[rng.random_range(0..CAPS.len())].to_string(),
                emotes: String::new(),
            },
            Kind::Banned => {
                let phrase = pick(&self.banned_phrases, rng, "free bitcoin");
                ChatText {
                    body: format!("{} {phrase} {}", lead(rng), tail(rng)),
                    emotes: String::new(),
                }
            }
        }
    }
}

/// More than half of the letters are capitals (and there are at least 5 letters).
fn mostly_caps(body: &str) -> bool {
    let letters = body.chars().filter(|c| c.is_alphabetic()).count();
    let upper = body.chars().filter(|c| c.is_uppercase()).count();
    letters >= 5 && upper * 2 > letters
}

fn pick(texts: &[String], rng: &mut impl Rng, fallback: &str) -> String {
    if texts.is_empty() {
        fallback.to_string()
    } else {
        texts[rng.random_range(0..texts.len())].clone()
    }
}

fn lead(rng: &mut impl Rng) -> &'static str {
    ["get", "omg", "yo chat", "hey", "LOOK"][rng.random_range(0..5)]
}

fn tail(rng: &mut impl Rng) -> &'static str {
    ["now", "here", "at my profile", "today only", "!!!"][rng.random_range(0..5)]
}

const CAPS: &[&str] = &[
    "WHAT IS HE DOING THIS IS INSANE CHAT",
    "NO WAY NO WAY NO WAY THAT JUST HAPPENED",
    "LETS GOOOOOOO STREAMER IS THE BEST EVER",
    "WHY IS NOBODY TALKING ABOUT THIS RIGHT NOW",
];

/// Emote-heavy chat: 3 to 10 global emotes, with correct ranges.
fn emote_text(rng: &mut impl Rng) -> ChatText {
    const EMOTES: &[(&str, &str)] = &[
        ("Kappa", "25"),
        ("LUL", "425618"),
        ("PogChamp", "305954156"),
        ("Kreygasm", "41"),
        ("BibleThump", "86"),
    ];
    let n = rng.random_range(3..=10);
    let mut body = String::new();
    let mut ranges = Vec::new();
    for i in 0..n {
        if i > 0 {
            body.push(' ');
        }
        let (code, id) = EMOTES[rng.random_range(0..EMOTES.len())];
        let start = body.chars().count();
        body.push_str(code);
        ranges.push((id, start, start + code.chars().count() - 1));
    }
    ChatText {
        emotes: emotes_tag(&ranges),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn mix() -> ContentMix {
        ContentMix {
            plain: 80.0,
            emotes: 10.0,
            commands: 5.0,
            links: 2.0,
            caps: 2.0,
            banned: 1.0,
            command_texts: vec!["!ping".into()],
            banned_phrases: vec!["free bitcoin".into()],
            link_texts: vec![],
        }
    }

    #[test]
    fn kinds_follow_the_declared_shares() {
        let mix = mix();
        let mut rng = SmallRng::seed_from_u64(9);
        let n = 100_000;
        let commands = (0..n)
            .filter(|_| mix.pick_kind(&mut rng) == Kind::Command)
            .count();
        let share = commands as f64 / n as f64;
        assert!((0.04..0.06).contains(&share), "command share {share}");
        assert!((mix.reply_share() - 0.05).abs() < 1e-9);
    }

    #[test]
    fn texts_carry_what_the_filters_look_for() {
        let mix = mix();
        let mut rng = SmallRng::seed_from_u64(1);
        let pool = ContentPool::builtin(&mut rng);
        assert!(mix
            .text(Kind::Banned, &pool, &mut rng)
            .body
            .contains("free bitcoin"));
        assert!(mix
            .text(Kind::Link, &pool, &mut rng)
            .body
            .contains("https://"));
        assert_eq!(mix.text(Kind::Command, &pool, &mut rng).body, "!ping");
        let emotes = mix.text(Kind::Emotes, &pool, &mut rng);
        assert!(!emotes.emotes.is_empty());
    }
}
