//! Response templates: `Hello $(user), $(touser) has been hugged $(count) times`.
//!
//! A template is parsed once, when a command, keyword, timer or filter message is defined
//! ([`Template::parse`]), and a bad one is refused with the character position and the reason.
//! Rendering is infallible: it never panics and never produces more than
//! [`MAX_OUTPUT_CHARS`] characters (Twitch's message limit), truncating on a char boundary.
//!
//! Variables: `$(user)`, `$(touser)`, `$(channel)`, `$(args)`, `$(1)`..`$(9)`, `$(count)`,
//! `$(count.get NAME)`, `$(count.increment NAME)`, `$(random A B)`, `$(uptime)`, `$(time)`,
//! `$(query)`. A `$` not followed by `(` is literal text.
//!
//! `$(user)`, `$(touser)`, `$(args)`, `$(1)`..`$(9)` and `$(query)` carry chat input. A
//! rendering keeps track of them ([`Rendered`]): what of the text came from chat (so the
//! channel's content filters can screen it, [`crate::engine::outgoing::screen`]) and what the
//! owner wrote. A chat piece that would lead the text loses its leading blanks and command
//! prefixes ([`crate::engine::outgoing::strip_lead`]), so chat can never make a response
//! start with `!`, `/` or `.`.

use std::collections::BTreeMap;

use super::outgoing::{is_blank_text, strip_lead};
use super::rng::XorShift;

/// Longest chat message a rendering may produce, in characters.
pub const MAX_OUTPUT_CHARS: usize = 500;
/// Longest template source accepted, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 2000;
/// Most named counters a channel may hold.
pub const MAX_COUNTERS: usize = 1000;
const MAX_COUNTER_NAME: usize = 32;

/// Why a template was refused, and where (0-based character position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {reason}")]
pub struct TemplateError {
    pub position: usize,
    pub reason: String,
}

/// One variable of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    User,
    ToUser,
    Channel,
    Args,
    /// `$(1)`..`$(9)`, stored 0-based.
    Arg(usize),
    Count,
    CountGet(String),
    CountIncrement(String),
    Random(i64, i64),
    Uptime,
    Time,
    Query,
}

impl Var {
    /// Whether the variable renders chat input (a user's name or words).
    pub fn from_chat(&self) -> bool {
        matches!(
            self,
            Var::User | Var::ToUser | Var::Args | Var::Arg(_) | Var::Query
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Named counters of a channel (`$(count.get x)`, `$(count.increment x)`), capped in number.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    values: BTreeMap<String, i64>,
    /// Increments since the last `take_increments`, by name (for the journal).
    increments: BTreeMap<String, i64>,
}

impl Counters {
    /// The counter's value (0 when it does not exist).
    pub fn get(&self, name: &str) -> i64 {
        self.values.get(name).copied().unwrap_or(0)
    }

    /// Adds one and returns the new value; a new counter beyond the cap is not created (0).
    pub fn increment(&mut self, name: &str) -> i64 {
        let value = if let Some(value) = self.values.get_mut(name) {
            *value = value.saturating_add(1);
            *value
        } else if self.values.len() >= MAX_COUNTERS {
            return 0;
        } else {
            self.values.insert(name.to_string(), 1);
            1
        };
        *self.increments.entry(name.to_string()).or_insert(0) += 1;
        value
    }

    /// Sets a counter (restoring saved state); not journalled. Beyond the cap it is ignored.
    pub fn set(&mut self, name: &str, value: i64) {
        if self.values.contains_key(name) || self.values.len() < MAX_COUNTERS {
            self.values.insert(name.to_string(), value);
        }
    }

    /// Takes the increments made since the last call, summed by name.
    pub fn take_increments(&mut self) -> BTreeMap<String, i64> {
        std::mem::take(&mut self.increments)
    }

    /// Every counter and its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// A rendered text with what of it came from chat input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The text, at most [`MAX_OUTPUT_CHARS`] characters.
    pub text: String,
    /// The chat-derived pieces, as far as they went into `text`, separated by spaces.
    pub chat: String,
    /// `text` with every chat-derived piece replaced by one space: what the owner wrote.
    pub skeleton: String,
    chars: usize,
}

impl Rendered {
    /// An empty rendering.
    pub fn new() -> Self {
        Self::default()
    }

    /// A text wholly from chat (`!echo`), its lead neutralised.
    pub fn from_chat(text: &str) -> Self {
        let mut rendered = Self::new();
        rendered.push_chat(text);
        rendered
    }

    /// Whether the text reached [`MAX_OUTPUT_CHARS`].
    pub fn full(&self) -> bool {
        self.chars >= MAX_OUTPUT_CHARS
    }

    /// Appends text the rules' owner (or the engine itself) wrote.
    pub fn owner(mut self, piece: &str) -> Self {
        self.push_owner(piece);
        self
    }

    /// Appends text that came from chat.
    pub fn chat(mut self, piece: &str) -> Self {
        self.push_chat(piece);
        self
    }

    /// Appends text the rules' owner (or the engine itself) wrote.
    pub fn push_owner(&mut self, piece: &str) {
        let taken = self.push_text(piece);
        self.skeleton.push_str(taken);
    }

    /// Appends text that came from chat; when nothing visible precedes it, its leading blanks
    /// and command prefixes are dropped first.
    pub fn push_chat(&mut self, piece: &str) {
        let piece = if is_blank_text(&self.text) {
            strip_lead(piece)
        } else {
            piece
        };
        if piece.is_empty() {
            return;
        }
        let taken = self.push_text(piece);
        if taken.is_empty() {
            return;
        }
        if !self.chat.is_empty() {
            self.chat.push(' ');
        }
        self.chat.push_str(taken);
        self.skeleton.push(' ');
    }

    /// Appends as much of `piece` as fits and returns that part.
    fn push_text<'p>(&mut self, piece: &'p str) -> &'p str {
        let room = MAX_OUTPUT_CHARS.saturating_sub(self.chars);
        let (end, taken) = match piece.char_indices().nth(room) {
            Some((end, _)) => (end, room),
            None => (piece.len(), piece.chars().count()),
        };
        let part = &piece[..end];
        self.text.push_str(part);
        self.chars += taken;
        part
    }
}

/// Everything a rendering reads besides the mutable counters and random source.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// Display name of the user who triggered the rendering.
    pub user: &'a str,
    pub channel: &'a str,
    /// Words after the command name.
    pub args: &'a [&'a str],
    /// Uses of this command, this one included.
    pub count: u64,
    pub now_ms: u64,
    /// When the stream went live, or `None` when offline.
    pub stream_started_ms: Option<u64>,
}

impl Template {
    /// Parses a template, refusing unknown variables, bad arguments and unclosed `$(`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = source.chars().collect();
        if chars.len() > MAX_TEMPLATE_CHARS {
            return Err(error(
                MAX_TEMPLATE_CHARS,
                "template is longer than 2000 characters",
            ));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '$' && chars.get(i + 1) == Some(&'(') {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 2..close].iter().collect();
                let var = parse_var(&inner, i)?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Var(var));
                i = close + 1;
            } else {
                text.push(chars[i]);
                i += 1;
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// Renders the template; never panics, never exceeds [`MAX_OUTPUT_CHARS`] characters.
    pub fn render(
        &self,
        ctx: &RenderContext<'_>,
        counters: &mut Counters,
        rng: &mut XorShift,
    ) -> String {
        self.render_tracked(ctx, counters, rng).text
    }

    /// Renders the template and keeps track of what came from chat (see [`Rendered`]).
    pub fn render_tracked(
        &self,
        ctx: &RenderContext<'_>,
        counters: &mut Counters,
        rng: &mut XorShift,
    ) -> Rendered {
        let mut out = Rendered::new();
        for part in &self.parts {
            if out.full() {
                break;
            }
            match part {
                Part::Text(text) => out.push_owner(text),
                Part::Var(var) if var.from_chat() => {
                    out.push_chat(&render_var(var, ctx, counters, rng));
                }
                Part::Var(var) => out.push_owner(&render_var(var, ctx, counters, rng)),
            }
        }
        out
    }

    /// Whether the template uses any variable at all.
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

fn error(position: usize, reason: impl Into<String>) -> TemplateError {
    TemplateError {
        position,
        reason: reason.into(),
    }
}

/// Index of the `)` closing the `$(` at `open`; nested parentheses are refused.
fn find_close(chars: &[char], open: usize) -> Result<usize, TemplateError> {
    for (offset, c) in chars[open + 2..].iter().enumerate() {
        match c {
            ')' => return Ok(open + 2 + offset),
            '(' => return Err(error(open + 2 + offset, "'(' inside a variable")),
            _ => {}
        }
    }
    Err(error(open, "unclosed '$(' (missing ')')"))
}

fn parse_var(inner: &str, at: usize) -> Result<Var, TemplateError> {
    let mut words = inner.split_whitespace();
    let Some(name) = words.next() else {
        return Err(error(at, "empty variable '$()'"));
    };
    let args: Vec<&str> = words.collect();
    let no_args = |var: Var| {
        if args.is_empty() {
            Ok(var)
        } else {
            Err(error(at, format!("'{name}' takes no arguments")))
        }
    };
    match name {
        "user" => no_args(Var::User),
        "touser" => no_args(Var::ToUser),
        "channel" => no_args(Var::Channel),
        "args" => no_args(Var::Args),
        "count" => no_args(Var::Count),
        "uptime" => no_args(Var::Uptime),
        "time" => no_args(Var::Time),
        "query" => no_args(Var::Query),
        "count.get" => counter_name(&args, at).map(Var::CountGet),
        "count.increment" => counter_name(&args, at).map(Var::CountIncrement),
        "random" => parse_random(&args, at),
        _ if name.chars().all(|c| c.is_ascii_digit()) => parse_index(name, &args, at),
        _ => Err(error(at, format!("unknown variable '{name}'"))),
    }
}

fn parse_index(name: &str, args: &[&str], at: usize) -> Result<Var, TemplateError> {
    match name.parse::<usize>() {
        Ok(n @ 1..=9) if args.is_empty() => Ok(Var::Arg(n - 1)),
        Ok(1..=9) => Err(error(at, format!("'{name}' takes no arguments"))),
        _ => Err(error(at, format!("argument index '{name}' must be 1 to 9"))),
    }
}

fn counter_name(args: &[&str], at: usize) -> Result<String, TemplateError> {
    let [name] = args else {
        return Err(error(at, "counter variables need exactly one counter name"));
    };
    let valid = name.len() <= MAX_COUNTER_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(error(
            at,
            format!("counter name '{name}' must be up to 32 of a-z 0-9 _ -"),
        ))
    }
}

fn parse_random(args: &[&str], at: usize) -> Result<Var, TemplateError> {
    let parsed: Vec<Option<i64>> = args.iter().map(|a| a.parse().ok()).collect();
    match parsed.as_slice() {
        [Some(a), Some(b)] => Ok(Var::Random(*a, *b)),
        _ => Err(error(
            at,
            "'random' needs two integers, e.g. $(random 1 100)",
        )),
    }
}

fn render_var(
    var: &Var,
    ctx: &RenderContext<'_>,
    counters: &mut Counters,
    rng: &mut XorShift,
) -> String {
    match var {
        Var::User => ctx.user.to_string(),
        Var::ToUser => to_user(ctx),
        Var::Channel => ctx.channel.to_string(),
        Var::Args => ctx.args.join(" "),
        Var::Arg(i) => ctx.args.get(*i).copied().unwrap_or("").to_string(),
        Var::Count => ctx.count.to_string(),
        Var::CountGet(name) => counters.get(name).to_string(),
        Var::CountIncrement(name) => counters.increment(name).to_string(),
        Var::Random(a, b) => rng.range_inclusive(*a, *b).to_string(),
        Var::Uptime => uptime(ctx),
        Var::Time => clock(ctx.now_ms),
        Var::Query => url_encode(&ctx.args.join(" ")),
    }
}

fn to_user(ctx: &RenderContext<'_>) -> String {
    match ctx.args.first().map(|a| a.trim_start_matches('@')) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => ctx.user.to_string(),
    }
}

/// `1h 05m`, `12m 30s`, or `offline`.
fn uptime(ctx: &RenderContext<'_>) -> String {
    let Some(started) = ctx.stream_started_ms else {
        return "offline".to_string();
    };
    let secs = ctx.now_ms.saturating_sub(started) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// UTC wall-clock time `HH:MM`.
fn clock(now_ms: u64) -> String {
    let secs = now_ms / 1000 % 86_400;
    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Cuts `text` to at most `max` characters, on a char boundary.
pub fn truncate_chars(text: &mut String, max: usize) {
    if let Some((byte, _)) = text.char_indices().nth(max) {
        text.truncate(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(source: &str, args: &[&str], started: Option<u64>) -> String {
        let template = Template::parse(source).expect("valid template");
        let ctx = RenderContext {
            user: "Alice",
            channel: "xqcow",
            args,
            count: 7,
            now_ms: 1_568_505_600_000 + 3_723_000,
            stream_started_ms: started,
        };
        let mut counters = Counters::default();
        counters.increment("deaths");
        template.render(&ctx, &mut counters, &mut XorShift::seeded("t"))
    }

    #[test]
    fn every_variable_renders() {
        let now = 1_568_505_600_000 + 3_723_000;
        let table: &[(&str, &[&str], Option<u64>, &str)] = &[
            ("hi $(user)", &[], None, "hi Alice"),
            ("$(touser)", &["@Bob", "x"], None, "Bob"),
            ("$(touser)", &[], None, "Alice"),
            ("$(touser)", &["@"], None, "Alice"),
            ("#$(channel)", &[], None, "#xqcow"),
            ("[$(args)]", &["a", "b"], None, "[a b]"),
            ("$(1)-$(2)-$(9)", &["a", "b"], None, "a-b-"),
            ("used $(count)x", &[], None, "used 7x"),
            ("$(count.get deaths)/$(count.get none)", &[], None, "1/0"),
            ("$(count.increment deaths)", &[], None, "2"),
            ("$(random 3 3)", &[], None, "3"),
            ("$(uptime)", &[], None, "offline"),
            ("$(uptime)", &[], Some(now - 3_723_000), "1h 02m"),
            ("$(uptime)", &[], Some(now - 65_000), "1m 05s"),
            ("$(time)", &[], None, "01:02"),
            ("$(query)", &["a b", "ü&"], None, "a%20b%20%C3%BC%26"),
            ("costs $5 (cheap)", &[], None, "costs $5 (cheap)"),
            ("$( user )", &[], None, "Alice"),
        ];
        for (source, args, started, want) in table {
            assert_eq!(render_with(source, args, *started), *want, "{source}");
        }
    }

    #[test]
    fn random_stays_in_range() {
        for _ in 0..50 {
            let n: i64 = render_with("$(random 10 1)", &[], None)
                .parse()
                .expect("number");
            assert!((1..=10).contains(&n));
        }
    }

    #[test]
    fn bad_templates_are_refused_with_position_and_reason() {
        let table = [
            ("hi $(user", 3, "unclosed"),
            ("ab $(nope)", 3, "unknown variable 'nope'"),
            ("$()", 0, "empty variable"),
            ("x $(user extra)", 2, "takes no arguments"),
            ("$(0)", 0, "must be 1 to 9"),
            ("$(10)", 0, "must be 1 to 9"),
            ("$(random 1)", 0, "two integers"),
            ("$(random a b)", 0, "two integers"),
            ("$(count.get)", 0, "exactly one counter name"),
            ("$(count.get a!)", 0, "counter name"),
            ("$(user $(x))", 8, "'(' inside"),
            ("$(a(b))", 3, "'(' inside"),
        ];
        for (source, position, reason) in table {
            let err = Template::parse(source).expect_err(source);
            assert_eq!(err.position, position, "{source}: {err}");
            assert!(err.reason.contains(reason), "{source}: {err}");
        }
        let long = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        assert_eq!(Template::parse(&long).map_err(|e| e.position), Err(2000));
    }

    #[test]
    fn output_is_capped_at_500_chars_on_a_char_boundary() {
        let big = "é".repeat(400);
        let out = render_with("$(args)$(args)", &[&big], None);
        assert_eq!(out.chars().count(), MAX_OUTPUT_CHARS);
        let mut s = "日本語".to_string();
        truncate_chars(&mut s, 2);
        assert_eq!(s, "日本");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(source in "(\\$|\\(|\\)|[a-z0-9 .]|user|count|random|é){0,60}") {
            let _ = Template::parse(&source);
        }

        #[test]
        fn render_never_panics_and_respects_the_cap(
            source in "(\\$\\((user|touser|args|1|9|count|query|random -5 5|count.increment c)\\)|[a-zé ]){0,40}",
            args in proptest::collection::vec("[a-zA-Z0-9@é ]{0,300}", 0..4),
        ) {
            if let Ok(template) = Template::parse(&source) {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let ctx = RenderContext {
                    user: "u", channel: "c", args: &refs, count: 1, now_ms: 0,
                    stream_started_ms: Some(5),
                };
                let out = template.render(&ctx, &mut Counters::default(), &mut XorShift::seeded("p"));
                prop_assert!(out.chars().count() <= MAX_OUTPUT_CHARS);
            }
        }
    }
}

/// Property code shared by the `template` fuzz target and the suite's smoke test.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Counters, RenderContext, Template, MAX_OUTPUT_CHARS};
    use crate::engine::rng::XorShift;

    /// A template source (first line) and arguments (the rest): parsing never panics, and an
    /// accepted template renders at most [`MAX_OUTPUT_CHARS`] characters whatever the input.
    pub fn check(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (source, args) = text.split_once('\n').unwrap_or((text, ""));
        let Ok(template) = Template::parse(source) else {
            return;
        };
        let args: Vec<&str> = args.split_whitespace().collect();
        let ctx = RenderContext {
            user: "fuzzer",
            channel: "chan",
            args: &args,
            count: u64::MAX,
            now_ms: u64::MAX,
            stream_started_ms: Some(0),
        };
        let mut rng = XorShift::seeded(source);
        let out = template.render(&ctx, &mut Counters::default(), &mut rng);
        assert!(out.chars().count() <= MAX_OUTPUT_CHARS);
    }
}
