//! Benchmark scenario files (`config/scenarios/*.toml`): the traffic model, the content mix,
//! the service settings, the phases (or a capacity ramp), how recovery after an overload
//! phase is timed (`[recovery]`) and the declared SLOs.
//!
//! Files are strict: an unknown key is an error naming the key and its line (serde's
//! `deny_unknown_fields`), and [`Scenario::validate`] names the key at fault for values out of
//! range.
//!
//! The sections: `[traffic]` (the model), `[mix]` (content shares), `[service]` (admission,
//! Helix budget, rules), then either `[[phases]]` run in order or one `[ramp]`, optionally
//! `[recovery]`, and the `[[slo]]` list. A phase has a `name`, a `duration_s`, a
//! `rate_factor` on every channel's modelled rate (default 1), optionally one `channel` (rank)
//! boosted by `channel_factor`, and its own `mix`. `[recovery]` names the phase after which
//! recovery is timed (`after`, e.g. a flood; it may not be the last phase and its name must be
//! unique) and the latency bound to get back under (`metric`, default `reply_latency_us.p99`;
//! `max` in µs; the sliding `window_s`, `step_s` and `hold_s`, see [`Recovery`]). The report
//! then gains `recovery_s` and `flood_rss_ratio`, which SLOs may name. [`Scenario::channel_plan`] turns the traffic model into per-channel viewers,
//! messages per second and chatter populations.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use firehose_sim::mix::ContentMix;

/// Most channels a scenario may declare.
pub const MAX_CHANNELS: usize = 100_000;

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub traffic: Traffic,
    pub mix: Mix,
    #[serde(default)]
    pub service: ServiceSettings,
    /// Traffic phases, run in order (ignored when `ramp` is set).
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// A capacity ramp instead of phases.
    #[serde(default)]
    pub ramp: Option<Ramp>,
    /// Time the recovery after one phase (the flood of an overload scenario).
    #[serde(default)]
    pub recovery: Option<Recovery>,
    #[serde(default)]
    pub slo: Vec<Slo>,
    /// Where the file was read from (rules paths are relative to it).
    #[serde(skip)]
    pub source: PathBuf,
    /// `--rules`: the rules file used instead of `service.rules`.
    #[serde(skip)]
    pub rules_override: Option<PathBuf>,
}

/// The traffic model: viewers per channel, and messages per second from viewers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Channels joined.
    pub channels: usize,
    /// Viewers of the channel of rank r (1-based) are `top_viewers / r^zipf_exponent`.
    pub top_viewers: f64,
    #[serde(default = "one")]
    pub zipf_exponent: f64,
    /// Explicit viewer counts of the biggest channels (override the Zipf values of ranks 1..).
    #[serde(default)]
    pub big_channels: Vec<f64>,
    /// Chat messages per second per 1,000 viewers.
    pub msgs_per_s_per_1000_viewers: f64,
    /// Multiplier on the modelled rate (to turn a realistic day into a fire hose).
    #[serde(default = "one")]
    pub load_factor: f64,
    /// Distinct chatters per 1,000 viewers (Zipf-distributed activity within a channel).
    pub chatters_per_1000_viewers: f64,
    /// Smallest chatter population of a channel.
    #[serde(default = "ten")]
    pub min_chatters: usize,
    /// Share of generated lines that are USERNOTICE / CLEARCHAT / CLEARMSG events.
    #[serde(default)]
    pub event_share: f64,
}

fn one() -> f64 {
    1.0
}
fn ten() -> usize {
    10
}

/// Shares of each kind of chat and the texts used (see [`ContentMix`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub plain: f64,
    pub emotes: f64,
    pub commands: f64,
    pub links: f64,
    pub caps: f64,
    pub banned: f64,
    #[serde(default = "default_commands")]
    pub command_texts: Vec<String>,
    #[serde(default = "default_banned")]
    pub banned_phrases: Vec<String>,
    #[serde(default = "default_links")]
    pub link_texts: Vec<String>,
}

fn default_commands() -> Vec<String> {
    vec!["!ping".into()]
}
fn default_banned() -> Vec<String> {
    vec!["free bitcoin".into()]
}
fn default_links() -> Vec<String> {
    vec!["https://spam-site.xyz/free".into()]
}

impl Mix {
    pub fn to_content_mix(&self) -> ContentMix {
        ContentMix {
            plain: self.plain,
            emotes: self.emotes,
            commands: self.commands,
            links: self.links,
            caps: self.caps,
            banned: self.banned,
            command_texts: self.command_texts.clone(),
            banned_phrases: self.banned_phrases.clone(),
            link_texts: self.link_texts.clone(),
        }
    }

    fn validate(&self, key: &str) -> Result<(), String> {
        let shares = [
            ("plain", self.plain),
            ("emotes", self.emotes),
            ("commands", self.commands),
            ("links", self.links),
            ("caps", self.caps),
            ("banned", self.banned),
        ];
        for (name, share) in shares {
            if !(share.is_finite() && share >= 0.0) {
                return Err(format!("{key}.{name}: must be a share >= 0, got {share}"));
            }
        }
        if shares.iter().map(|(_, s)| s).sum::<f64>() <= 0.0 {
            return Err(format!("{key}: all shares are 0"));
        }
        if self.commands > 0.0 && self.command_texts.is_empty() {
            return Err(format!("{key}.command_texts: empty while commands > 0"));
        }
        if self.banned > 0.0 && self.banned_phrases.is_empty() {
            return Err(format!("{key}.banned_phrases: empty while banned > 0"));
        }
        if let Some(bad) = self.command_texts.iter().find(|c| !c.starts_with('!')) {
            return Err(format!(
                "{key}.command_texts: `{bad}` does not start with '!'"
            ));
        }
        Ok(())
    }
}

/// Helix points per minute Twitch grants a token.
pub const TWITCH_HELIX_POINTS: u32 = 800;

impl Raid {
    fn validate(&self, key: &str, has_channel: bool) -> Result<(), String> {
        if !has_channel {
            return Err(format!("{key}: a raid needs the phase's `channel`"));
        }
        if !(1..=firehose_sim::raid::MAX_ACCOUNTS).contains(&self.accounts) {
            return Err(format!(
                "{key}.accounts: must be 1..={}",
                firehose_sim::raid::MAX_ACCOUNTS
            ));
        }
        non_negative(&format!("{key}.arrive_within_s"), self.arrive_within_s)?;
        if !(self.msgs_per_account_per_s > 0.0 && self.msgs_per_account_per_s <= 10.0) {
            return Err(format!(
                "{key}.msgs_per_account_per_s: must be above 0 and at most 10"
            ));
        }
        self.mix.validate(&format!("{key}.mix"))
    }

    /// The simulator's plan of this raid on `channel` for `duration_s`.
    pub fn plan(&self, channel: &str, duration_s: f64) -> firehose_sim::raid::RaidPlan {
        firehose_sim::raid::RaidPlan {
            channel: channel.to_string(),
            accounts: self.accounts,
            arrive_within: std::time::Duration::from_secs_f64(self.arrive_within_s),
            per_account_per_s: self.msgs_per_account_per_s,
            duration: std::time::Duration::from_secs_f64(duration_s),
            mix: std::sync::Arc::new(self.mix.to_content_mix()),
            announce: self.announce,
        }
    }
}

/// Service settings the scenario fixes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// Messages in flight per channel before the overflow policy acts.
    pub admission_capacity: u32,
    /// `shed` or `block`.
    pub overflow: String,
    /// Helix points per minute for the bench token (Twitch grants 800; the bench's Helix
    /// enforces this budget).
    pub helix_points_per_minute: u32,
    /// Why the scenario grants more than Twitch's 800 points per minute (required then).
    pub helix_budget_reason: String,
    /// Channel rules file (relative to the scenario file); empty: no rules.
    pub rules: String,
    /// The rules go to the biggest N channels (0: all).
    pub rules_top_channels: usize,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            admission_capacity: 512,
            overflow: "shed".into(),
            helix_points_per_minute: 800,
            helix_budget_reason: String::new(),
            rules: String::new(),
            rules_top_channels: 0,
        }
    }
}

/// One stretch of traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    pub duration_s: f64,
    /// Multiplies every channel's rate.
    #[serde(default = "one")]
    pub rate_factor: f64,
    /// Rank (0 = biggest) of one channel whose rate is further multiplied by `channel_factor`.
    #[serde(default)]
    pub channel: Option<usize>,
    #[serde(default = "one")]
    pub channel_factor: f64,
    /// A content mix for this phase (default: the scenario's).
    #[serde(default)]
    pub mix: Option<Mix>,
    /// A hate raid on `channel` during this phase, beside its normal chat.
    #[serde(default)]
    pub raid: Option<Raid>,
}

/// Fresh accounts arriving in one channel and spamming it (see `firehose_sim::raid`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raid {
    pub accounts: usize,
    /// They arrive linearly over this many seconds.
    pub arrive_within_s: f64,
    /// Messages each sends per second (Twitch lets an account without badges send 20 per 30 s).
    pub msgs_per_account_per_s: f64,
    /// A raid USERNOTICE announces it (Twitch's raid feature); false: an unannounced bot wave.
    #[serde(default = "yes")]
    pub announce: bool,
    /// What they post: shares of spam kinds (links, caps, banned).
    pub mix: Mix,
}

fn yes() -> bool {
    true
}

/// Capacity search: offered rate rises by steps until shedding or an SLO breach.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub start_msgs_per_s: f64,
    pub step_msgs_per_s: f64,
    pub step_duration_s: f64,
    pub max_msgs_per_s: f64,
    /// A step is sustained when processed >= this share of the offered rate (and nothing shed).
    #[serde(default = "default_sustain")]
    pub min_delivered_share: f64,
}

fn default_sustain() -> f64 {
    0.95
}

/// `[recovery]`: how the time to recover after an overload phase is measured.
///
/// Every `step_s` the bench takes the answers that arrived in the last `window_s` seconds (a
/// sliding window over the simulator's matched replies or moderation calls) and computes
/// `metric` over them. A window *passes* when it holds at least one answer and the figure is
/// at most `max`; it *fails* when the figure is above `max`; an empty window does neither.
/// `recovery_s` is the time from the end of phase `after` (when the next phase's rate is set)
/// to the end of the first passing window after which no window fails for `hold_s` seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Name of the phase whose end the recovery is timed from (not the last phase).
    pub after: String,
    /// `reply_latency_us.<p50|p90|p99|p999|max>` or `moderation_latency_us.<...>`.
    #[serde(default = "default_recovery_metric")]
    pub metric: String,
    /// The figure's bound, in µs (the SLO threshold it is back under when recovered).
    pub max: f64,
    /// Length of the sliding window, seconds.
    #[serde(default = "one")]
    pub window_s: f64,
    /// How often the window is evaluated, seconds (at most `window_s`).
    #[serde(default = "default_step")]
    pub step_s: f64,
    /// How long no window may fail after the first passing one, seconds.
    #[serde(default = "default_hold")]
    pub hold_s: f64,
}

fn default_recovery_metric() -> String {
    "reply_latency_us.p99".into()
}
fn default_step() -> f64 {
    0.25
}
fn default_hold() -> f64 {
    2.0
}

impl Recovery {
    /// The quantile of `metric` (`None` for `max`).
    pub fn quantile(&self) -> Option<f64> {
        match self.metric.split_once('.').map(|(_, f)| f) {
            Some("p50") => Some(0.5),
            Some("p90") => Some(0.9),
            Some("p99") => Some(0.99),
            Some("p999") => Some(0.999),
            _ => None,
        }
    }

    /// True when `metric` is a moderation latency (else a reply latency).
    pub fn is_moderation(&self) -> bool {
        self.metric.starts_with("moderation_latency_us.")
    }

    fn validate(&self, phases: &[Phase], ramp: bool) -> Result<(), String> {
        if ramp {
            return Err("recovery: needs [[phases]], not a [ramp]".into());
        }
        let named: Vec<usize> = phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name == self.after)
            .map(|(i, _)| i)
            .collect();
        match named.as_slice() {
            [] => {
                return Err(format!(
                    "recovery.after: no phase is named `{}` (phases: {})",
                    self.after,
                    phases
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            [i] if *i + 1 == phases.len() => {
                return Err(format!(
                    "recovery.after: `{}` is the last phase; recovery needs a phase after it",
                    self.after
                ))
            }
            [_] => {}
            _ => {
                return Err(format!(
                    "recovery.after: {} phases are named `{}`; names must be unique",
                    named.len(),
                    self.after
                ))
            }
        }
        let known = self.metric.split_once('.').is_some_and(|(family, field)| {
            ["reply_latency_us", "moderation_latency_us"].contains(&family)
                && LATENCY_FIELDS.contains(&field)
        });
        if !known {
            return Err(format!(
                "recovery.metric: must be reply_latency_us.<{0}> or moderation_latency_us.<{0}>, got `{1}`",
                LATENCY_FIELDS.join("|"),
                self.metric
            ));
        }
        positive("recovery.max", self.max)?;
        if !(self.window_s.is_finite() && (0.1..=60.0).contains(&self.window_s)) {
            return Err(format!(
                "recovery.window_s: must be 0.1..=60, got {}",
                self.window_s
            ));
        }
        if !(self.step_s.is_finite() && self.step_s >= 0.05 && self.step_s <= self.window_s) {
            return Err(format!(
                "recovery.step_s: must be 0.05..=window_s ({}), got {}",
                self.window_s, self.step_s
            ));
        }
        non_negative("recovery.hold_s", self.hold_s)?;
        Ok(())
    }
}

/// A declared service-level objective on one report figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// A report figure: `msgs_per_s`, `messages_shed`, `shed_ratio`, `cpu_s_per_million`,
    /// `peak_rss_bytes`, `rss_per_channel_bytes`, `reply_match_ratio`, `moderation_match_ratio`,
    /// `capacity_msgs_per_s`, `recovery_s`, `flood_rss_ratio`, `messages_unaccounted`, or
    /// `reply_latency_us.<p50|p90|p99|p999|max>` / `moderation_latency_us.<...>`.
    pub metric: String,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
}

/// The figures an SLO may name.
pub const SLO_METRICS: &[&str] = &[
    "msgs_per_s",
    "messages_shed",
    "shed_ratio",
    "cpu_s_per_million",
    "peak_rss_bytes",
    "rss_per_channel_bytes",
    "reply_match_ratio",
    "moderation_match_ratio",
    "spam_removed_ratio",
    "false_positive_ratio",
    "helix_429s",
    "spam_visible_s.p50",
    "spam_visible_s.p99",
    "spam_visible_s.max",
    "capacity_msgs_per_s",
    "recovery_s",
    "flood_rss_ratio",
    "messages_unaccounted",
];
const LATENCY_FIELDS: &[&str] = &["p50", "p90", "p99", "p999", "max"];

impl Slo {
    /// True when the metric is a latency (evaluated per capacity step too).
    pub fn is_latency(&self) -> bool {
        self.metric.contains("latency_us.")
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        let key = format!("slo[{index}]");
        let known = SLO_METRICS.contains(&self.metric.as_str())
            || self.metric.split_once('.').is_some_and(|(family, field)| {
                ["reply_latency_us", "moderation_latency_us"].contains(&family)
                    && LATENCY_FIELDS.contains(&field)
            });
        if !known {
            return Err(format!(
                "{key}.metric: unknown metric `{}` (known: {}, reply_latency_us.<{}>, moderation_latency_us.<...>)",
                self.metric,
                SLO_METRICS.join(", "),
                LATENCY_FIELDS.join("|")
            ));
        }
        if self.max.is_none() && self.min.is_none() {
            return Err(format!("{key}: needs `max` or `min`"));
        }
        Ok(())
    }

    /// Human form, e.g. `reply_latency_us.p99 <= 50000`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(min) = self.min {
            parts.push(format!("{} >= {min}", self.metric));
        }
        if let Some(max) = self.max {
            parts.push(format!("{} <= {max}", self.metric));
        }
        parts.join(" and ")
    }

    /// Whether `value` meets the objective.
    pub fn passes(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// One channel of the plan.
#[derive(Debug, Clone)]
pub struct ChannelPlan {
    pub name: String,
    pub viewers: f64,
    /// Modelled messages per second (load factor included, phase factors not).
    pub rate: f64,
    pub chatters: usize,
}

/// Changes applied from the command line (tests and quick runs).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Total traffic seconds: phases (or ramp steps) are scaled to fit.
    pub duration_s: Option<f64>,
    /// At most this many channels.
    pub max_channels: Option<usize>,
    /// Multiplies every rate (and the ramp).
    pub rate_scale: Option<f64>,
    /// Replaces the phases (or ramp) by one phase offering this many msgs/s in total, spread
    /// over the channels as the model spreads it (`duration_s` long, default 10 s).
    pub flat_rate: Option<f64>,
    /// Another channel rules file in place of the scenario's `service.rules` (e.g. the same
    /// raid with and without the raid defence).
    pub rules: Option<PathBuf>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
        let mut scenario = Scenario::parse(&text)
            .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
        scenario.source = path.to_path_buf();
        Ok(scenario)
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks ranges; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.traffic;
        if !(1..=MAX_CHANNELS).contains(&t.channels) {
            return Err(format!(
                "traffic.channels: must be 1..={MAX_CHANNELS}, got {}",
                t.channels
            ));
        }
        positive("traffic.top_viewers", t.top_viewers)?;
        positive("traffic.zipf_exponent", t.zipf_exponent)?;
        positive(
            "traffic.msgs_per_s_per_1000_viewers",
            t.msgs_per_s_per_1000_viewers,
        )?;
        positive("traffic.load_factor", t.load_factor)?;
        positive(
            "traffic.chatters_per_1000_viewers",
            t.chatters_per_1000_viewers,
        )?;
        if t.min_chatters == 0 {
            return Err("traffic.min_chatters: must be at least 1".into());
        }
        if let Some(i) = t
            .big_channels
            .iter()
            .position(|v| !v.is_finite() || *v <= 0.0)
        {
            return Err(format!("traffic.big_channels[{i}]: must be > 0"));
        }
        if !(0.0..=0.5).contains(&t.event_share) {
            return Err("traffic.event_share: must be 0..=0.5".into());
        }
        self.mix.validate("mix")?;
        let s = &self.service;
        if s.admission_capacity == 0 {
            return Err("service.admission_capacity: must be at least 1".into());
        }
        if !["shed", "block"].contains(&s.overflow.as_str()) {
            return Err(format!(
                "service.overflow: must be \"shed\" or \"block\", got \"{}\"",
                s.overflow
            ));
        }
        if !(1..=100_000).contains(&s.helix_points_per_minute) {
            return Err("service.helix_points_per_minute: must be 1..=100000".into());
        }
        if s.helix_points_per_minute > TWITCH_HELIX_POINTS
            && s.helix_budget_reason.trim().is_empty()
        {
            return Err(format!(
                "service.helix_budget_reason: {} points per minute is above Twitch's {TWITCH_HELIX_POINTS}; say why",
                s.helix_points_per_minute
            ));
        }
        match &self.ramp {
            Some(r) => {
                positive("ramp.start_msgs_per_s", r.start_msgs_per_s)?;
                positive("ramp.step_msgs_per_s", r.step_msgs_per_s)?;
                positive("ramp.step_duration_s", r.step_duration_s)?;
                if r.max_msgs_per_s.is_nan() || r.max_msgs_per_s < r.start_msgs_per_s {
                    return Err(
                        "ramp.max_msgs_per_s: must be at least ramp.start_msgs_per_s".into(),
                    );
                }
                if !(0.0..=1.0).contains(&r.min_delivered_share) {
                    return Err("ramp.min_delivered_share: must be 0..=1".into());
                }
            }
            None if self.phases.is_empty() => {
                return Err("phases: a scenario needs [[phases]] or a [ramp]".into());
            }
            None => {}
        }
        for (i, p) in self.phases.iter().enumerate() {
            positive(&format!("phases[{i}].duration_s"), p.duration_s)?;
            non_negative(&format!("phases[{i}].rate_factor"), p.rate_factor)?;
            non_negative(&format!("phases[{i}].channel_factor"), p.channel_factor)?;
            if let Some(c) = p.channel {
                if c >= t.channels {
                    return Err(format!(
                        "phases[{i}].channel: rank {c} but only {} channels",
                        t.channels
                    ));
                }
            }
            if let Some(mix) = &p.mix {
                mix.validate(&format!("phases[{i}].mix"))?;
            }
            if let Some(raid) = &p.raid {
                raid.validate(&format!("phases[{i}].raid"), p.channel.is_some())?;
            }
        }
        if let Some(recovery) = &self.recovery {
            recovery.validate(&self.phases, self.ramp.is_some())?;
        }
        for (i, slo) in self.slo.iter().enumerate() {
            slo.validate(i)?;
            let needs_recovery = ["recovery_s", "flood_rss_ratio"].contains(&slo.metric.as_str());
            if needs_recovery && self.recovery.is_none() {
                return Err(format!(
                    "slo[{i}].metric: `{}` needs a [recovery] section (which phase is the flood)",
                    slo.metric
                ));
            }
        }
        Ok(())
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(rules) = &o.rules {
            self.rules_override = Some(rules.clone());
        }
        if let Some(max) = o.max_channels {
            self.traffic.channels = self.traffic.channels.min(max.max(1));
            for p in &mut self.phases {
                if p.channel.is_some_and(|c| c >= self.traffic.channels) {
                    p.channel = Some(0);
                }
            }
        }
        if let Some(scale) = o.rate_scale {
            self.traffic.load_factor *= scale;
            if let Some(r) = &mut self.ramp {
                r.start_msgs_per_s *= scale;
                r.step_msgs_per_s *= scale;
                r.max_msgs_per_s *= scale;
            }
        }
        if let Some(rate) = o.flat_rate {
            let base: f64 = self.channel_plan().iter().map(|c| c.rate).sum();
            self.ramp = None;
            // One flat phase has no flood to recover from.
            self.recovery = None;
            self.phases = vec![Phase {
                name: format!("flat {rate:.0}/s"),
                duration_s: o.duration_s.unwrap_or(10.0),
                rate_factor: rate / base.max(1e-9),
                channel: None,
                channel_factor: 1.0,
                mix: None,
                raid: None,
            }];
            return;
        }
        if let Some(total) = o.duration_s {
            match &mut self.ramp {
                Some(r) => {
                    let steps =
                        ((r.max_msgs_per_s - r.start_msgs_per_s) / r.step_msgs_per_s).floor() + 1.0;
                    r.step_duration_s = (total / steps).max(0.2);
                }
                None => {
                    let sum: f64 = self.phases.iter().map(|p| p.duration_s).sum();
                    for p in &mut self.phases {
                        p.duration_s = (p.duration_s * total / sum).max(0.1);
                    }
                }
            }
        }
    }

    /// Channel names, viewers, rates and chatter populations, biggest first.
    pub fn channel_plan(&self) -> Vec<ChannelPlan> {
        let t = &self.traffic;
        (0..t.channels)
            .map(|rank| {
                let viewers =
                    t.big_channels.get(rank).copied().unwrap_or_else(|| {
                        t.top_viewers / ((rank + 1) as f64).powf(t.zipf_exponent)
                    });
                let rate = viewers / 1_000.0 * t.msgs_per_s_per_1000_viewers * t.load_factor;
                let chatters = ((viewers / 1_000.0 * t.chatters_per_1000_viewers).round() as usize)
                    .max(t.min_chatters);
                ChannelPlan {
                    name: channel_name(rank),
                    viewers,
                    rate,
                    chatters,
                }
            })
            .collect()
    }

    /// The rules file, resolved against the scenario's folder.
    pub fn rules_path(&self) -> Option<PathBuf> {
        if let Some(rules) = &self.rules_override {
            return Some(rules.clone());
        }
        if self.service.rules.is_empty() {
            return None;
        }
        let dir = self.source.parent().unwrap_or(Path::new("."));
        Some(dir.join(&self.service.rules))
    }

    /// Seconds of traffic the scenario asks for (without overrides).
    pub fn traffic_seconds(&self) -> f64 {
        match &self.ramp {
            Some(r) => {
                let steps =
                    ((r.max_msgs_per_s - r.start_msgs_per_s) / r.step_msgs_per_s).floor() + 1.0;
                steps * r.step_duration_s
            }
            None => self.phases.iter().map(|p| p.duration_s).sum(),
        }
    }
}

/// The login of the channel of `rank` (0-based): `bench000000`, `bench000001`, ...
pub fn channel_name(rank: usize) -> String {
    format!("bench{rank:06}")
}

fn positive(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{key}: must be > 0, got {value}"))
    }
}

fn non_negative(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{key}: must be >= 0, got {value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[traffic]
channels = 10
top_viewers = 13000
msgs_per_s_per_1000_viewers = 0.6
chatters_per_1000_viewers = 100
[mix]
plain = 1
emotes = 0
commands = 0
links = 0
caps = 0
banned = 0
[[phases]]
name = "a"
duration_s = 10
"#;

    #[test]
    fn a_minimal_scenario_parses_and_plans_zipf_channels() {
        let s = Scenario::parse(MINIMAL).expect("valid");
        let plan = s.channel_plan();
        assert_eq!(plan.len(), 10);
        assert!((plan[0].rate - 7.8).abs() < 1e-9, "{}", plan[0].rate);
        assert!((plan[1].viewers - 6_500.0).abs() < 1e-9);
        assert_eq!(plan[0].chatters, 1_300);
        assert_eq!(plan[9].name, "bench000009");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let unknown = MINIMAL.replace("top_viewers", "top_viewer");
        let err = Scenario::parse(&unknown).expect_err("unknown key");
        assert!(err.contains("top_viewer"), "{err}");
        let bad = MINIMAL.replace("channels = 10", "channels = 0");
        let err = Scenario::parse(&bad).expect_err("bad value");
        assert!(err.starts_with("traffic.channels"), "{err}");
        let slo = format!("{MINIMAL}[[slo]]\nmetric = \"reply_latency_us.p42\"\nmax = 1\n");
        let err = Scenario::parse(&slo).expect_err("bad metric");
        assert!(err.starts_with("slo[0].metric"), "{err}");
    }

    #[test]
    fn a_recovery_section_is_checked_against_the_phases() {
        let two = format!(
            "{MINIMAL}[[phases]]\nname = \"b\"\nduration_s = 5\nrate_factor = 3\n[[phases]]\nname = \"c\"\nduration_s = 5\n"
        );
        let ok = format!("{two}[recovery]\nafter = \"b\"\nmax = 102400\n");
        let s = Scenario::parse(&ok).expect("valid");
        let r = s.recovery.expect("recovery");
        assert_eq!(r.metric, "reply_latency_us.p99");
        assert_eq!(r.quantile(), Some(0.99));
        assert!((r.window_s, r.step_s, r.hold_s) == (1.0, 0.25, 2.0));
        let err = |text: String| Scenario::parse(&text).expect_err("refused");
        let e = err(format!("{two}[recovery]\nafter = \"flood\"\nmax = 1\n"));
        assert!(
            e.starts_with("recovery.after: no phase is named `flood`") && e.contains("a, b, c"),
            "{e}"
        );
        let e = err(format!("{two}[recovery]\nafter = \"c\"\nmax = 1\n"));
        assert!(e.contains("`c` is the last phase"), "{e}");
        let e = err(format!(
            "{two}[recovery]\nafter = \"b\"\nmax = 1\nmetric = \"reply_latency_us.p42\"\n"
        ));
        assert!(e.starts_with("recovery.metric"), "{e}");
        let e = err(format!(
            "{two}[recovery]\nafter = \"b\"\nmax = 1\nstep_s = 2\n"
        ));
        assert!(e.starts_with("recovery.step_s"), "{e}");
        let e = err(format!("{two}[recovery]\nafter = \"b\"\nmax = 0\n"));
        assert!(e.starts_with("recovery.max"), "{e}");
        let e = err(format!(
            "{two}[recovery]\nafter = \"b\"\nmax = 1\nwindow = 1\n"
        ));
        assert!(e.contains("window"), "unknown key named: {e}");
        let dup = format!(
            "{two}[[phases]]\nname = \"b\"\nduration_s = 1\n[recovery]\nafter = \"b\"\nmax = 1\n"
        );
        assert!(err(dup).contains("2 phases are named `b`"));
        let e = err(format!("{two}[[slo]]\nmetric = \"recovery_s\"\nmax = 5\n"));
        assert!(
            e.starts_with("slo[0].metric") && e.contains("[recovery]"),
            "{e}"
        );
    }

    #[test]
    fn overrides_shrink_channels_and_fit_the_duration() {
        let mut s = Scenario::parse(MINIMAL).expect("valid");
        s.apply(&Overrides {
            duration_s: Some(2.0),
            max_channels: Some(3),
            rate_scale: Some(2.0),
            flat_rate: None,
            rules: None,
        });
        assert_eq!(s.channel_plan().len(), 3);
        assert!((s.traffic_seconds() - 2.0).abs() < 1e-9);
        assert!((s.traffic.load_factor - 2.0).abs() < 1e-9);
        s.apply(&Overrides {
            flat_rate: Some(1_000.0),
            ..Overrides::default()
        });
        assert_eq!(s.phases.len(), 1);
        let base: f64 = s.channel_plan().iter().map(|c| c.rate).sum();
        assert!((base * s.phases[0].rate_factor - 1_000.0).abs() < 1e-6);
        assert!((s.traffic_seconds() - 10.0).abs() < 1e-9);
    }
}
