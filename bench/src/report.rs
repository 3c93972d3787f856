//! The bench report: `report.json` (machine-readable), `report.md` (tables a person reads),
//! `latency.svg` (reply and moderation latency percentiles over time), `throughput.svg`
//! (msgs/s sent and processed over time) and `memory.svg` (the service's RSS over time),
//! drawn with `plotters`' SVG backend. Phase scenarios also get each phase's own figures
//! (peak RSS among them), the message identity sent = processed + shed, and for an overload
//! scenario the recovery after its flood.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::scenario::Slo;

/// Latency percentiles in microseconds (0 when nothing was measured; see `count`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// p50 <= p90 <= p99 <= p99.9 <= max.
    pub fn ordered(&self) -> bool {
        self.p50 <= self.p90
            && self.p90 <= self.p99
            && self.p99 <= self.p999
            && self.p999 <= self.max
    }

    fn field(&self, name: &str) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        match name {
            "p50" => Some(self.p50),
            "p90" => Some(self.p90),
            "p99" => Some(self.p99),
            "p999" => Some(self.p999),
            "max" => Some(self.max),
            _ => None,
        }
    }
}

/// One declared SLO and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloResult {
    pub metric: String,
    pub objective: String,
    /// The measured value (`None`: nothing measured, which fails).
    pub value: Option<f64>,
    pub pass: bool,
}

/// One point of the time series (one sampling interval).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since traffic started (end of the interval).
    pub t_s: f64,
    pub phase: String,
    pub sent_per_s: f64,
    /// `None` when the service was not scraped in this interval.
    pub processed_per_s: Option<f64>,
    pub reply_p50_us: Option<u64>,
    pub reply_p99_us: Option<u64>,
    pub moderation_p50_us: Option<u64>,
    pub moderation_p99_us: Option<u64>,
    /// The service's latest `VmRSS` reading (bytes; `None`: not read yet).
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}

/// One phase of a phase scenario, measured on its own.
///
/// Sent is what the simulator delivered during the phase; processed and shed are the service's
/// counters at the phase's end minus those at its start (a message sent late in one phase may
/// be counted in the next).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    pub seconds: f64,
    /// The total rate the phase asked the simulator for.
    pub offered_msgs_per_s: f64,
    pub sent: u64,
    pub processed: u64,
    pub shed: u64,
    /// Messages the simulator skipped because it fell behind (its own ceiling).
    pub generator_skipped: u64,
    pub sent_per_s: f64,
    pub processed_per_s: f64,
    /// Highest `VmRSS` of the service process read during the phase (every 100 ms).
    pub peak_rss_bytes: u64,
    /// How many `VmRSS` readings the peak is the highest of.
    pub rss_readings: u64,
    pub reply_latency_us: Percentiles,
    pub moderation_latency_us: Percentiles,
}

/// Whether every message the simulator sent was processed or shed (counted) by the service.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// True when sent = processed + shed.
    pub holds: bool,
    pub sent: u64,
    pub processed: u64,
    pub shed: u64,
    /// sent - (processed + shed): positive when messages were neither processed nor shed.
    pub unaccounted: i64,
}

impl Identity {
    pub fn of(sent: u64, processed: u64, shed: u64) -> Identity {
        let unaccounted = sent as i64 - (processed + shed) as i64;
        Identity {
            holds: unaccounted == 0,
            sent,
            processed,
            shed,
            unaccounted,
        }
    }
}

/// The recovery after an overload scenario's flood (scenario `[recovery]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The flood phase.
    pub after: String,
    pub metric: String,
    /// The bound the figure must be back under (µs).
    pub max_us: f64,
    pub window_s: f64,
    pub step_s: f64,
    pub hold_s: f64,
    /// How the window and `recovery_s` are defined, in words.
    pub definition: String,
    /// How recovery went (its fields sit beside these in the JSON).
    #[serde(flatten)]
    pub outcome: crate::monitor::RecoveryOutcome,
}

/// One step of a capacity ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RampStep {
    pub offered_msgs_per_s: f64,
    pub sent_per_s: f64,
    pub processed_per_s: f64,
    pub shed: u64,
    pub reply_p99_us: Option<u64>,
    pub moderation_p99_us: Option<u64>,
    pub sustained: bool,
    /// Why the step was not sustained (empty when it was).
    pub why: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    /// `in-process` or `separate-process`.
    pub mode: String,
    /// Where the service read chat: `irc` or `eventsub`.
    #[serde(default = "irc")]
    pub ingest: String,
    /// What replies went through: `irc` or `helix`.
    #[serde(default = "irc")]
    pub send_via: String,
    pub command: String,
    pub channels: usize,
    pub traffic_seconds: f64,
    /// Mean offered rate over the traffic (what the scenario asked the simulator for).
    pub offered_msgs_per_s: f64,
    /// Messages processed by the service per second of traffic.
    pub msgs_per_s: f64,
    /// Chat lines the simulator delivered (PRIVMSGs + USERNOTICE/CLEARCHAT/CLEARMSG events).
    pub messages_sent: u64,
    pub messages_received: u64,
    pub messages_processed: u64,
    pub messages_shed: u64,
    pub generator_skipped: u64,
    pub reply_latency_us: Percentiles,
    pub moderation_latency_us: Percentiles,
    pub replies_expected: u64,
    pub replies_matched: u64,
    pub moderation_expected: u64,
    pub moderation_matched: u64,
    /// Helix calls that matched no pending spam message (e.g. a second action for one message).
    pub moderation_unmatched: u64,
    /// CPU seconds of the service process (in-process: the whole process, simulator included).
    pub cpu_seconds: f64,
    pub cpu_s_per_million: f64,
    pub peak_rss_bytes: u64,
    pub rss_before_join_bytes: u64,
    pub rss_after_join_bytes: u64,
    pub rss_per_channel_bytes: f64,
    pub store_writes_per_message: f64,
    /// False when `firehose_store_rows_written_total` was absent.
    pub store_measured: bool,
    /// Capacity scenarios: highest msgs/s sustained without shedding or an SLO breach.
    pub capacity_msgs_per_s: Option<f64>,
    pub ramp_steps: Vec<RampStep>,
    /// Each phase's own figures (phase scenarios; empty for a capacity ramp).
    #[serde(default)]
    pub phases: Vec<PhaseReport>,
    /// sent = processed + shed over the whole run (after the drain).
    #[serde(default)]
    pub identity: Identity,
    /// Seconds from the end of the flood until the recovery figure was back under its bound
    /// (scenarios with `[recovery]`; see `recovery` for the definition).
    #[serde(default)]
    pub recovery_s: Option<f64>,
    #[serde(default)]
    pub recovery: Option<RecoveryReport>,
    /// Peak RSS of the flood phase / the highest peak RSS of the phases before it.
    #[serde(default)]
    pub flood_rss_ratio: Option<f64>,
    /// Highest `VmRSS` read after the phases, while draining and flushing the store (phase
    /// scenarios; `peak_rss_bytes` is the whole life's high-water mark, this included).
    #[serde(default)]
    pub drain_peak_rss_bytes: Option<u64>,
    /// Moderation scenarios (spam sent): seconds each spam message that reached chat stayed
    /// visible, from its send to the Helix call that removed it (a delete, or a ban/timeout of
    /// its author); spam never removed counts its age at the end or 60 s when it expired (lower
    /// bounds). Spam a chat mode kept out is not in it (`moderation_detail.spam_blocked`).
    #[serde(default)]
    pub spam_visible_s: Option<SecondsPercentiles>,
    /// (spam removed + spam kept out by a chat mode) / spam attempted.
    #[serde(default)]
    pub spam_removed_ratio: Option<f64>,
    /// (legitimate messages deleted + legitimate chatters timed out or banned + legitimate
    /// messages stopped by a chat mode) / legitimate messages attempted.
    #[serde(default)]
    pub false_positive_ratio: Option<f64>,
    /// Helix calls that reached the bench's Helix (429s included).
    #[serde(default)]
    pub helix_calls: u64,
    /// Calls answered 429: over the token's points budget.
    #[serde(default)]
    pub helix_429s: u64,
    /// The budget the bench's Helix granted (Twitch: 800).
    #[serde(default)]
    pub helix_points_per_minute: u32,
    /// The counts behind the moderation figures.
    #[serde(default)]
    pub moderation_detail: Option<ModerationDetail>,
    /// Chat-mode changes (Shield Mode, chat settings) the service made, with their times.
    #[serde(default)]
    pub defences: Vec<DefenceReport>,
    pub slo: Vec<SloResult>,
    pub samples: Vec<Sample>,
    pub notes: Vec<String>,
}

/// Three points of a distribution, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondsPercentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl SecondsPercentiles {
    /// Of a histogram in µs.
    pub fn of_micros(h: &Histogram<u64>) -> SecondsPercentiles {
        let p = Percentiles::of(h);
        let s = |us: u64| us as f64 / 1e6;
        SecondsPercentiles {
            p50: s(p.p50),
            p99: s(p.p99),
            max: s(p.max),
        }
    }
}

/// The counts behind a moderation scenario's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModerationDetail {
    /// Spam messages delivered to the service.
    pub spam_sent: u64,
    /// Spam kept out of chat by a chat mode (never sent, never visible).
    pub spam_blocked: u64,
    /// Spam removed by a delete or a ban/timeout of its author.
    pub spam_removed: u64,
    /// Legitimate messages delivered plus those a chat mode stopped.
    pub legit_attempted: u64,
    pub false_deletes: u64,
    pub false_sanctions: u64,
    pub legit_silenced: u64,
    /// Messages not sent because their author was banned or timed out.
    pub refused_sanctioned: u64,
}

/// One chat-mode change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefenceReport {
    /// Seconds after the traffic started.
    pub at_s: f64,
    pub room_id: u64,
    pub what: String,
}

impl Report {
    /// The value of an SLO metric name (see [`crate::scenario::SLO_METRICS`]).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        match name {
            "msgs_per_s" => Some(self.msgs_per_s),
            "messages_shed" => Some(self.messages_shed as f64),
            "shed_ratio" => ratio(self.messages_shed, self.messages_sent),
            "cpu_s_per_million" => Some(self.cpu_s_per_million),
            "peak_rss_bytes" => Some(self.peak_rss_bytes as f64),
            "rss_per_channel_bytes" => Some(self.rss_per_channel_bytes),
            "reply_match_ratio" => ratio(self.replies_matched, self.replies_expected),
            "moderation_match_ratio" => ratio(self.moderation_matched, self.moderation_expected),
            "spam_removed_ratio" => self.spam_removed_ratio,
            "false_positive_ratio" => self.false_positive_ratio,
            "helix_429s" => Some(self.helix_429s as f64),
            "spam_visible_s.p50" => self.spam_visible_s.map(|p| p.p50),
            "spam_visible_s.p99" => self.spam_visible_s.map(|p| p.p99),
            "spam_visible_s.max" => self.spam_visible_s.map(|p| p.max),
            "capacity_msgs_per_s" => self.capacity_msgs_per_s,
            "recovery_s" => self.recovery_s,
            "flood_rss_ratio" => self.flood_rss_ratio,
            "messages_unaccounted" => Some(self.identity.unaccounted.unsigned_abs() as f64),
            other => {
                let (family, field) = other.split_once('.')?;
                let p = match family {
                    "reply_latency_us" => &self.reply_latency_us,
                    "moderation_latency_us" => &self.moderation_latency_us,
                    _ => return None,
                };
                p.field(field).map(|v| v as f64)
            }
        }
    }

    /// Judges every declared SLO against this report.
    pub fn judge(&mut self, slos: &[Slo]) {
        self.slo = slos
            .iter()
            .map(|slo| {
                let value = self.metric(&slo.metric);
                SloResult {
                    metric: slo.metric.clone(),
                    objective: slo.describe(),
                    pass: value.is_some_and(|v| slo.passes(v)),
                    value,
                }
            })
            .collect();
    }

    /// Writes report.json, report.md, latency.svg, throughput.svg and memory.svg into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        plot_latency(self, &dir.join("latency.svg"))?;
        plot_throughput(self, &dir.join("throughput.svg"))?;
        plot_memory(self, &dir.join("memory.svg"))?;
        Ok(())
    }

    /// The report as Markdown tables.
    fn moderation_markdown(&self, md: &mut String) {
        let Some(d) = &self.moderation_detail else {
            return;
        };
        let _ = writeln!(
            md,
            "\n## Moderation (Helix budget {} points/min)\n",
            self.helix_points_per_minute
        );
        let _ = writeln!(md, "| figure | value |\n|---|---:|");
        let visible = self.spam_visible_s.map_or("-".into(), |p| {
            format!("p50 {:.2} / p99 {:.2} / max {:.2}", p.p50, p.p99, p.max)
        });
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.4}"));
        let rows: Vec<(&str, String)> = vec![
            ("spam_visible_s", visible),
            ("spam_removed_ratio", ratio(self.spam_removed_ratio)),
            ("false_positive_ratio", ratio(self.false_positive_ratio)),
            ("helix_calls", self.helix_calls.to_string()),
            ("helix_429s", self.helix_429s.to_string()),
            (
                "spam sent / kept out / removed",
                format!("{} / {} / {}", d.spam_sent, d.spam_blocked, d.spam_removed),
            ),
            ("legitimate messages", d.legit_attempted.to_string()),
            (
                "false deletes / sanctions / silenced",
                format!(
                    "{} / {} / {}",
                    d.false_deletes, d.false_sanctions, d.legit_silenced
                ),
            ),
            (
                "refused (author banned or timed out)",
                d.refused_sanctioned.to_string(),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        for defence in &self.defences {
            let _ = writeln!(
                md,
                "- {:.1} s: room {} {}",
                defence.at_s, defence.room_id, defence.what
            );
        }
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# firehose bench: `{}`\n", self.scenario);
        if !self.description.is_empty() {
            let _ = writeln!(md, "{}\n", self.description);
        }
        let _ = writeln!(
            md,
            "Command: `{}` ({}; ingest {}, send via {})\n",
            self.command, self.mode, self.ingest, self.send_via
        );
        let _ = writeln!(md, "## Throughput\n");
        let _ = writeln!(md, "| figure | value |\n|---|---:|");
        let rows: Vec<(&str, String)> = vec![
            ("channels joined", self.channels.to_string()),
            ("traffic seconds", format!("{:.1}", self.traffic_seconds)),
            (
                "offered msgs/s (mean)",
                format!("{:.0}", self.offered_msgs_per_s),
            ),
            ("msgs_per_s (processed)", format!("{:.0}", self.msgs_per_s)),
            ("messages_sent", self.messages_sent.to_string()),
            ("messages_processed", self.messages_processed.to_string()),
            ("messages_shed", self.messages_shed.to_string()),
            (
                "generator skipped (sim fell behind)",
                self.generator_skipped.to_string(),
            ),
            (
                "capacity_msgs_per_s",
                self.capacity_msgs_per_s
                    .map_or("-".into(), |c| format!("{c:.0}")),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let i = &self.identity;
        let _ = writeln!(
            md,
            "\nIdentity sent = processed + shed over the whole run: **{}** ({} = {} + {}{}).",
            if i.holds { "holds" } else { "DOES NOT HOLD" },
            i.sent,
            i.processed,
            i.shed,
            if i.holds {
                String::new()
            } else {
                format!("; {} unaccounted", i.unaccounted)
            }
        );
        self.phases_markdown(&mut md);
        self.recovery_markdown(&mut md);
        let _ = writeln!(
            md,
            "\n## End-to-end latency (µs, simulator send -> answer back)\n"
        );
        let _ = writeln!(
            md,
            "| kind | answered / expected | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (kind, p, matched, expected) in [
            (
                "reply",
                &self.reply_latency_us,
                self.replies_matched,
                self.replies_expected,
            ),
            (
                "moderation",
                &self.moderation_latency_us,
                self.moderation_matched,
                self.moderation_expected,
            ),
        ] {
            let _ = writeln!(
                md,
                "| {kind} | {matched} / {expected} | {} | {} | {} | {} | {} |",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        }
        self.moderation_markdown(&mut md);
        let _ = writeln!(md, "\n## Cost\n");
        let _ = writeln!(md, "| figure | value |\n|---|---:|");
        let store = if self.store_measured {
            format!("{:.3}", self.store_writes_per_message)
        } else {
            "0.0 (store not measured: metric absent)".to_string()
        };
        let rows: Vec<(&str, String)> = vec![
            ("cpu seconds", format!("{:.2}", self.cpu_seconds)),
            (
                "cpu_s_per_million",
                format!("{:.2}", self.cpu_s_per_million),
            ),
            (
                "peak_rss_bytes",
                format!(
                    "{} ({:.1} MiB)",
                    self.peak_rss_bytes,
                    mib(self.peak_rss_bytes)
                ),
            ),
            (
                "peak RSS while draining (VmRSS, after the phases)",
                self.drain_peak_rss_bytes
                    .map_or("-".into(), |b| format!("{b} ({:.1} MiB)", mib(b))),
            ),
            (
                "RSS before joining",
                format!("{:.1} MiB", mib(self.rss_before_join_bytes)),
            ),
            (
                "RSS after joining",
                format!("{:.1} MiB", mib(self.rss_after_join_bytes)),
            ),
            (
                "rss_per_channel_bytes",
                format!("{:.0}", self.rss_per_channel_bytes),
            ),
            ("store_writes_per_message", store),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        if !self.ramp_steps.is_empty() {
            let _ = writeln!(md, "\n## Capacity ramp\n");
            let _ = writeln!(
                md,
                "| offered | sent/s | processed/s | shed | reply p99 µs | moderation p99 µs | sustained |\n|---:|---:|---:|---:|---:|---:|---|"
            );
            for s in &self.ramp_steps {
                let _ = writeln!(
                    md,
                    "| {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
                    s.offered_msgs_per_s,
                    s.sent_per_s,
                    s.processed_per_s,
                    s.shed,
                    opt(s.reply_p99_us),
                    opt(s.moderation_p99_us),
                    if s.sustained {
                        "yes".to_string()
                    } else {
                        format!("no: {}", s.why)
                    }
                );
            }
        }
        let _ = writeln!(md, "\n## SLOs\n");
        let _ = writeln!(md, "| objective | measured | verdict |\n|---|---:|---|");
        for s in &self.slo {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                s.objective,
                s.value.map_or("not measured".into(), |v| format!("{v:.3}")),
                if s.pass { "pass" } else { "FAIL" }
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        let _ = writeln!(
            md,
            "\nPlots: `latency.svg`, `throughput.svg`, `memory.svg`."
        );
        md
    }

    fn phases_markdown(&self, md: &mut String) {
        if self.phases.is_empty() {
            return;
        }
        let _ = writeln!(md, "\n## Phases\n");
        let _ = writeln!(
            md,
            "| phase | seconds | offered msgs/s | sent/s | processed/s | sent | processed | shed | sim skipped | peak RSS (VmRSS) | reply p50 / p99 µs | moderation p50 / p99 µs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.phases {
            let pair = |l: &Percentiles| {
                if l.count == 0 {
                    "-".to_string()
                } else {
                    format!("{} / {}", l.p50, l.p99)
                }
            };
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} ({:.1} MiB, {} readings) | {} | {} |",
                p.name,
                p.seconds,
                p.offered_msgs_per_s,
                p.sent_per_s,
                p.processed_per_s,
                p.sent,
                p.processed,
                p.shed,
                p.generator_skipped,
                p.peak_rss_bytes,
                mib(p.peak_rss_bytes),
                p.rss_readings,
                pair(&p.reply_latency_us),
                pair(&p.moderation_latency_us),
            );
        }
    }

    fn recovery_markdown(&self, md: &mut String) {
        let Some(r) = &self.recovery else {
            return;
        };
        let _ = writeln!(md, "\n## Overload: recovery after `{}`\n", r.after);
        let _ = writeln!(md, "{}\n", r.definition);
        let _ = writeln!(md, "| figure | value |\n|---|---:|");
        let rows: Vec<(&str, String)> = vec![
            (
                "recovery_s",
                match (r.outcome.recovery_s, r.outcome.confirmed) {
                    (Some(s), true) => format!("{s:.2}"),
                    (Some(s), false) => format!(
                        "{s:.2} (held only {:.2} s of {:.2} before the traffic ended)",
                        r.outcome.held_s.unwrap_or(0.0),
                        r.hold_s
                    ),
                    (None, _) => "not recovered before the traffic ended".into(),
                },
            ),
            (
                "flood_rss_ratio (flood peak / peak before)",
                self.flood_rss_ratio
                    .map_or("-".into(), |v| format!("{v:.2}")),
            ),
            (
                "worst window after the flood (µs)",
                opt(r.outcome.peak_window_us),
            ),
            (
                "windows after the flood: passing / failing / empty",
                format!(
                    "{} / {} / {}",
                    r.outcome.windows_passing, r.outcome.windows_failing, r.outcome.windows_empty
                ),
            ),
            (
                "windows over the bound after recovery",
                r.outcome.windows_failing_after_recovery.to_string(),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {v} |");
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

/// A named, coloured line of (t, y) points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws several named series of (t, y) points.
fn plot(path: &Path, title: &str, y_label: &str, series: &[Series<'_>]) -> anyhow::Result<()> {
    let x_max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since traffic started")
        .y_desc(y_label)
        .draw()
        .map_err(plot_err)?;
    for (name, color, points) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_latency(report: &Report, path: &Path) -> anyhow::Result<()> {
    let pick = |f: fn(&Sample) -> Option<u64>| -> Vec<(f64, f64)> {
        report
            .samples
            .iter()
            .filter_map(|s| f(s).map(|v| (s.t_s, v as f64 / 1000.0)))
            .collect()
    };
    plot(
        path,
        &format!("{}: end-to-end latency per second", report.scenario),
        "latency (ms)",
        &[
            (
                "reply p50",
                RGBColor(31, 119, 180),
                pick(|s| s.reply_p50_us),
            ),
            (
                "reply p99",
                RGBColor(174, 199, 232),
                pick(|s| s.reply_p99_us),
            ),
            (
                "moderation p50",
                RGBColor(214, 39, 40),
                pick(|s| s.moderation_p50_us),
            ),
            (
                "moderation p99",
                RGBColor(255, 152, 150),
                pick(|s| s.moderation_p99_us),
            ),
        ],
    )
}

fn plot_throughput(report: &Report, path: &Path) -> anyhow::Result<()> {
    let sent = report
        .samples
        .iter()
        .map(|s| (s.t_s, s.sent_per_s))
        .collect();
    let processed = report
        .samples
        .iter()
        .filter_map(|s| s.processed_per_s.map(|p| (s.t_s, p)))
        .collect();
    plot(
        path,
        &format!("{}: msgs/s", report.scenario),
        "messages per second",
        &[
            ("sent (simulator)", RGBColor(44, 160, 44), sent),
            ("processed (service)", RGBColor(31, 119, 180), processed),
        ],
    )
}

fn plot_memory(report: &Report, path: &Path) -> anyhow::Result<()> {
    let rss = report
        .samples
        .iter()
        .filter_map(|s| s.rss_bytes.map(|b| (s.t_s, mib(b))))
        .collect();
    plot(
        path,
        &format!("{}: resident memory of the service", report.scenario),
        "VmRSS (MiB)",
        &[("VmRSS", RGBColor(148, 103, 189), rss)],
    )
}

/// The default of a report's transport fields (reports written before they existed).
fn irc() -> String {
    "irc".into()
}
