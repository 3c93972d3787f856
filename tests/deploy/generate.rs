//! The generator: renders the Prometheus rule files and the runbook's and SLO doc's numbers
//! from `deploy/slo.yaml`.
//!
//! `tests/deploy.rs` checks that the committed files are what this renders; with
//! `DEPLOY_REGENERATE=1` it writes them instead. Rule files are generated whole; in the docs
//! only the blocks between `<!-- BEGIN GENERATED id -->` and `<!-- END GENERATED id -->` are,
//! so the prose around them stays hand-written.

use std::collections::BTreeMap;

use super::slo::{num, pct, SloFile};

/// The header every generated rule file starts with.
const HEADER: &str = "# GENERATED from deploy/slo.yaml by tests/deploy/generate.rs: do not edit.\n\
# Change deploy/slo.yaml (or the generator), then run\n\
#   DEPLOY_REGENERATE=1 cargo test --test deploy\n";

/// One alerting rule and what the runbook says of its condition.
pub struct Alert {
    pub name: String,
    pub expr: String,
    pub for_: String,
    pub severity: String,
    /// Extra labels (besides severity).
    pub labels: Vec<(&'static str, String)>,
    pub summary: String,
    pub description: String,
    /// The condition in words, with its numbers (for the runbook).
    pub fires_when: String,
}

impl Alert {
    pub fn anchor(&self) -> String {
        self.name.to_lowercase()
    }
}

/// One recording rule.
pub struct Record {
    pub name: String,
    pub expr: String,
    pub labels: Vec<(&'static str, String)>,
}

/// The latency SLOs: (slo name, metric, what it times).
const LATENCY_SLOS: [(&str, &str, &str); 2] = [
    (
        "reply_latency",
        "firehose_reply_latency_seconds",
        "replies written",
    ),
    (
        "moderation_latency",
        "firehose_moderation_latency_seconds",
        "moderation actions done at Helix",
    ),
];

/// `Availability` for `availability`, `ReplyLatency` for `reply_latency`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn error_ratio(slo: &str, window: &str) -> String {
    format!("firehose:sli_{slo}:error_ratio_rate{window}")
}

/// The SLI recording rules: each SLO's error ratio over every burn-rate window, and its
/// burn rate (error ratio / budget).
pub fn sli_records(slo: &SloFile) -> Vec<Record> {
    let mut records = Vec::new();
    for window in slo.windows() {
        records.push(Record {
            name: error_ratio("availability", &window),
            expr: format!(
                "sum by (job) (rate(firehose_messages_shed_total[{window}]))\n/\nsum by (job) (rate(firehose_messages_received_total[{window}]))"
            ),
            labels: vec![],
        });
        for (name, metric, _) in LATENCY_SLOS {
            let le = num(slo.slo(name).threshold(name));
            records.push(Record {
                name: error_ratio(name, &window),
                expr: format!(
                    "1 - (\n  sum by (job) (rate({metric}_bucket{{le=\"{le}\"}}[{window}]))\n  /\n  sum by (job) (rate({metric}_count[{window}]))\n)"
                ),
                labels: vec![],
            });
        }
    }
    for window in slo.windows() {
        for name in ["availability", "reply_latency", "moderation_latency"] {
            records.push(Record {
                name: format!("firehose:slo_{name}:burn_rate{window}"),
                expr: format!(
                    "{} / {}",
                    error_ratio(name, &window),
                    num(slo.slo(name).budget())
                ),
                labels: vec![],
            });
        }
    }
    let lag = slo.slo("store_lag");
    records.push(Record {
        name: "firehose:sli_store_lag:within_threshold".into(),
        expr: format!(
            "max by (job) (firehose_store_lag_ms) <= bool {}",
            num(lag.threshold("store_lag") * 1000.0)
        ),
        labels: vec![],
    });
    for (name, objective) in slo.slo_list() {
        records.push(Record {
            name: "firehose:slo:objective".into(),
            expr: format!("vector({})", num(objective.objective)),
            labels: vec![("slo", name.to_string())],
        });
    }
    records
}

/// Recording rules the dashboard reads (cheaper than the raw per-channel series).
pub fn dashboard_records() -> Vec<Record> {
    let mut records = vec![
        Record {
            name: "firehose:messages_received:rate5m".into(),
            expr: "sum by (job) (rate(firehose_messages_received_total[5m]))".into(),
            labels: vec![],
        },
        Record {
            name: "firehose:messages_processed:rate5m".into(),
            expr: "sum by (job) (rate(firehose_messages_processed_total[5m]))".into(),
            labels: vec![],
        },
        Record {
            name: "firehose:messages_shed:rate5m".into(),
            expr: "sum by (job, reason) (rate(firehose_messages_shed_total[5m]))".into(),
            labels: vec![],
        },
    ];
    for (_, metric, _) in LATENCY_SLOS {
        let short = metric.trim_start_matches("firehose_");
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            records.push(Record {
                name: format!("firehose:{short}:{label}_5m"),
                expr: format!(
                    "histogram_quantile({q}, sum by (job, le) (rate({metric}_bucket[5m])))"
                ),
                labels: vec![],
            });
        }
    }
    records
}

/// The budget-burn alerts: one per SLO and burn-rate window pair.
pub fn burn_alerts(slo: &SloFile) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let what = |name: &str| -> String {
        match name {
            "availability" => "chat messages shed instead of processed".into(),
            _ => {
                let (_, _, timed) = LATENCY_SLOS
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .expect("a latency SLO");
                let t = slo.slo(name).threshold(name);
                format!("{timed} later than {} ms", num(t * 1000.0))
            }
        }
    };
    for name in ["availability", "reply_latency", "moderation_latency"] {
        let objective = slo.slo(name);
        let budget = num(objective.budget());
        for b in &slo.burn_rates {
            let factor = num(b.factor);
            let threshold = format!("({factor} * {budget})");
            alerts.push(Alert {
                name: format!("Firehose{}BurnRate{}", camel(name), camel(&b.name)),
                expr: format!(
                    "{} > {threshold}\nand\n{} > {threshold}",
                    error_ratio(name, &b.long),
                    error_ratio(name, &b.short)
                ),
                for_: b.for_.clone(),
                severity: b.severity.clone(),
                labels: vec![("slo", name.to_string())],
                summary: format!(
                    "firehose {} SLO: error budget burning {factor}x too fast ({} and {} windows)",
                    name.replace('_', " "),
                    b.long,
                    b.short
                ),
                description: format!(
                    "The share of {} over the last {} and {} is above {}x the error budget; the SLO allows {} ({} over {}). At {}x the whole budget lasts {}.",
                    what(name),
                    b.long,
                    b.short,
                    factor,
                    pct(objective.budget()),
                    pct(objective.objective),
                    slo.window,
                    factor,
                    budget_lasts(&slo.window, b.factor)
                ),
                fires_when: format!(
                    "the share of {} is above {factor} x the budget of {} (that is above {}) over both the last {} and the last {}, for {}",
                    what(name),
                    pct(objective.budget()),
                    pct(objective.budget() * b.factor),
                    b.long,
                    b.short,
                    b.for_
                ),
            });
        }
    }
    alerts
}

fn budget_lasts(window: &str, factor: f64) -> String {
    let hours = super::slo::seconds(window) as f64 / 3600.0 / factor;
    if hours < 48.0 {
        format!("{} h", num((hours * 10.0).round() / 10.0))
    } else {
        format!("{} days", num((hours / 24.0 * 10.0).round() / 10.0))
    }
}

/// Alerts that are not budget burns.
pub fn ops_alerts(slo: &SloFile) -> Vec<Alert> {
    let a = |name: &str| slo.alert(name);
    let mut alerts = Vec::new();
    let mut push = |key: &str,
                    name: &str,
                    expr: String,
                    summary: &str,
                    description: &str,
                    fires_when: String| {
        let params = a(key);
        alerts.push(Alert {
            name: name.to_string(),
            expr,
            for_: params.for_.clone(),
            severity: params.severity.clone(),
            labels: vec![],
            summary: summary.to_string(),
            description: description.to_string(),
            fires_when: format!("{fires_when}, for {}", params.for_),
        });
    };

    push(
        "down",
        "FirehoseDown",
        "up{job=\"firehose\"} == 0".into(),
        "firehose {{ $labels.instance }} cannot be scraped",
        "Prometheus has not been able to scrape /metrics of {{ $labels.instance }}: the process is down, hung or unreachable.",
        "Prometheus's own `up` series for the firehose job is 0 (the scrape of /metrics fails)".into(),
    );
    push(
        "channel_failed",
        "FirehoseChannelFailed",
        "firehose_channel_failed == 1".into(),
        "Channel {{ $labels.platform }}:{{ $labels.channel }} is failed",
        "The channel's actor kept crashing and was marked failed; its messages are shed (reason channel_failed) until an operator revives it.",
        "`firehose_channel_failed` is 1 for a channel".into(),
    );
    let p = a("actor_restarts");
    let (window, threshold) = (
        p.window("actor_restarts"),
        num(p.threshold("actor_restarts")),
    );
    push(
        "actor_restarts",
        "FirehoseActorRestarting",
        format!("sum by (job, instance, platform, channel) (increase(firehose_actor_restarts_total[{window}])) > {threshold}"),
        "Channel {{ $labels.platform }}:{{ $labels.channel }} keeps restarting",
        "The channel's actor keeps failing (a handler panic, poison messages). It is restarted with backoff and marked failed past the restart intensity.",
        format!("a channel's actor restarted more than {threshold} times within {window}"),
    );
    push(
        "twitch_disconnected",
        "FirehoseTwitchDisconnected",
        "firehose_twitch_connected == 0".into(),
        "firehose {{ $labels.instance }} has no Twitch chat connection",
        "The chat connection is not logged in: no Twitch chat is read or answered. It reconnects with backoff by itself.",
        "`firehose_twitch_connected` is 0".into(),
    );
    let p = a("twitch_reconnects");
    let (window, threshold) = (
        p.window("twitch_reconnects"),
        num(p.threshold("twitch_reconnects")),
    );
    push(
        "twitch_reconnects",
        "FirehoseTwitchReconnecting",
        format!("increase(firehose_twitch_reconnects_total[{window}]) > {threshold}"),
        "firehose {{ $labels.instance }} keeps reconnecting to Twitch",
        "The chat connection keeps ending (server RECONNECTs, network errors, write timeouts); every reconnect rejoins all channels through the JOIN pacer.",
        format!("the chat connection reconnected more than {threshold} times within {window}"),
    );
    let window = a("twitch_login_refused").window("twitch_login_refused");
    push(
        "twitch_login_refused",
        "FirehoseTwitchLoginRefused",
        format!("increase(firehose_twitch_notices_total{{msg_id=\"none\"}}[{window}]) > 0\nand on (job, instance)\nfirehose_twitch_connected == 0"),
        "Twitch is refusing firehose's chat login on {{ $labels.instance }}",
        "The chat server sent NOTICEs without a msg-id (Twitch's \"Login authentication failed\" and \"Improperly formatted auth\") while the connection is down: the chat token (FIREHOSE_TWITCH_TOKEN) is most likely invalid or expired.",
        format!("a NOTICE without msg-id (`firehose_twitch_notices_total{{msg_id=\"none\"}}`) arrived within {window} while `firehose_twitch_connected` is 0"),
    );
    let window = a("helix_token_invalid").window("helix_token_invalid");
    push(
        "helix_token_invalid",
        "FirehoseHelixTokenInvalid",
        format!(
            "(\n  sum by (job, instance) (rate(firehose_helix_requests_total{{outcome=\"failed\"}}[{window}])) > 0\n  unless\n  sum by (job, instance) (rate(firehose_helix_requests_total{{outcome=\"ok\"}}[{window}])) > 0\n)\nor\n(\n  sum by (job, instance) (rate(firehose_helix_stream_poll_failures_total[{window}])) > 0\n  and\n  sum by (job, instance) (rate(firehose_helix_stream_poll_failures_total[{window}]))\n  >=\n  sum by (job, instance) (rate(firehose_helix_stream_polls_total[{window}]))\n)"
        ),
        "Every Helix call of firehose {{ $labels.instance }} fails (token refused?)",
        "No moderation action succeeded and some failed, or every stream-status poll failed. A 401 (invalid or expired token, missing scope) makes every call fail; so would a Helix outage. Moderation is not being carried out.",
        format!("within {window} moderation calls failed (`firehose_helix_requests_total{{outcome=\"failed\"}}`) and none succeeded, or every stream poll failed (`firehose_helix_stream_poll_failures_total` = `firehose_helix_stream_polls_total`)"),
    );
    let window = a("discord_shards_disconnected").window("discord_shards_disconnected");
    push(
        "discord_shards_disconnected",
        "FirehoseDiscordShardsDisconnected",
        format!("firehose_discord_shards_connected == 0\nor\nfirehose_discord_shards_connected < max_over_time(firehose_discord_shards_connected[{window}])"),
        "firehose {{ $labels.instance }} lost Discord gateway shards",
        "Some or all Discord gateway shards are disconnected: the guilds on them are not read or answered. serenity resumes or re-identifies by itself.",
        format!("`firehose_discord_shards_connected` is 0, or lower than its highest value in the last {window}"),
    );
    let lag_ms = num(slo.slo("store_lag").threshold("store_lag") * 1000.0);
    push(
        "store_lagging",
        "FirehoseStoreLagging",
        format!("max by (job, instance) (firehose_store_lag_ms) > {lag_ms}"),
        "firehose {{ $labels.instance }}: state changes are not reaching the database",
        "The state store's writer is behind: the database is slow or down. Chat goes on; changes are kept in memory (bounded) and retried; at the bound, backpressure slows the channels.",
        format!("`firehose_store_lag_ms` is above {lag_ms} ms (the store lag SLO's threshold)"),
    );
    push(
        "store_failing",
        "FirehoseStoreFailing",
        "max by (job, instance) (firehose_store_failing) == 1".into(),
        "firehose {{ $labels.instance }}: state store flushes keep failing",
        "The last flush to the state store failed and it has not recovered; changes are retried with backoff.",
        "`firehose_store_failing` is 1".into(),
    );
    let p = a("replies_dropped");
    let (window, threshold) = (
        p.window("replies_dropped"),
        num(p.threshold("replies_dropped")),
    );
    let dropped = format!(
        "sum by (job, instance) (rate(firehose_outbound_dropped_total{{reason!~\"anonymous_login|shutdown\"}}[{window}]))"
    );
    push(
        "replies_dropped",
        "FirehoseOutboundDropped",
        format!("{dropped}\n/\n(\n  sum by (job, instance) (rate(firehose_outbound_sent_total[{window}]))\n  +\n  {dropped}\n)\n> {threshold}"),
        "firehose {{ $labels.instance }} drops Twitch chat messages",
        "Replies and other chat messages are dropped instead of sent (expired past max_age_ms, queue full, moderation ids unknown).",
        format!("more than {} of the Twitch chat messages to send were dropped (`firehose_outbound_dropped_total`, not counting anonymous_login and shutdown) over {window}", super::slo::pct(p.threshold("replies_dropped"))),
    );
    let window = a("moderation_dropped").window("moderation_dropped");
    push(
        "moderation_dropped",
        "FirehoseModerationDropped",
        format!("sum by (job, instance) (increase(firehose_helix_dropped_total{{reason!=\"shutdown\"}}[{window}])) > 0"),
        "firehose {{ $labels.instance }} drops moderation actions before Helix",
        "Moderation actions (delete, timeout, ban) were never sent to Helix: spam stays in chat.",
        format!("a moderation action was dropped before Helix (`firehose_helix_dropped_total`, not counting shutdown) within {window}"),
    );
    let p = a("discord_dropped");
    let (window, threshold) = (
        p.window("discord_dropped"),
        num(p.threshold("discord_dropped")),
    );
    let dropped = format!(
        "sum by (job, instance) (rate(firehose_discord_dropped_total{{reason!=\"shutdown\"}}[{window}]))"
    );
    push(
        "discord_dropped",
        "FirehoseDiscordDropped",
        format!("{dropped}\n/\n(\n  sum by (job, instance) (rate(firehose_discord_requests_total[{window}]))\n  +\n  {dropped}\n)\n> {threshold}"),
        "firehose {{ $labels.instance }} drops Discord actions",
        "Discord replies and moderation actions are dropped instead of sent (queue full, expired past discord.max_age_ms).",
        format!("more than {} of the Discord actions were dropped (`firehose_discord_dropped_total`, not counting shutdown) over {window}", super::slo::pct(p.threshold("discord_dropped"))),
    );
    alerts
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn block(expr: &str, indent: &str) -> String {
    let mut out = String::from("|-\n");
    for line in expr.lines() {
        out.push_str(indent);
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn render_records(out: &mut String, group: &str, interval: &str, records: &[Record]) {
    out.push_str(&format!(
        "  - name: {group}\n    interval: {interval}\n    rules:\n"
    ));
    for r in records {
        out.push_str(&format!("      - record: {}\n", r.name));
        out.push_str(&format!("        expr: {}", block(&r.expr, "          ")));
        if !r.labels.is_empty() {
            out.push_str("        labels:\n");
            for (k, v) in &r.labels {
                out.push_str(&format!("          {k}: {}\n", quote(v)));
            }
        }
    }
}

fn render_alerts(out: &mut String, slo: &SloFile, group: &str, alerts: &[Alert]) {
    out.push_str(&format!("  - name: {group}\n    rules:\n"));
    for a in alerts {
        out.push_str(&format!("      - alert: {}\n", a.name));
        out.push_str(&format!("        expr: {}", block(&a.expr, "          ")));
        out.push_str(&format!("        for: {}\n", a.for_));
        out.push_str("        labels:\n");
        out.push_str(&format!("          severity: {}\n", a.severity));
        for (k, v) in &a.labels {
            out.push_str(&format!("          {k}: {}\n", quote(v)));
        }
        out.push_str("        annotations:\n");
        out.push_str(&format!("          summary: {}\n", quote(&a.summary)));
        out.push_str(&format!(
            "          description: {}\n",
            quote(&a.description)
        ));
        out.push_str(&format!(
            "          runbook_url: {}\n",
            quote(&format!("{}#{}", slo.runbook_url, a.anchor()))
        ));
    }
}

/// Every generated rule file: (path from the repository root, content).
pub fn rule_files(slo: &SloFile) -> Vec<(&'static str, String)> {
    let mut slo_rules = String::from(HEADER);
    slo_rules.push_str(
        "# SLIs of firehose's SLOs (error ratios over the burn-rate windows) and the\n# multi-window, multi-burn-rate alerts on their error budgets.\ngroups:\n",
    );
    render_records(&mut slo_rules, "firehose-sli", "1m", &sli_records(slo));
    render_alerts(
        &mut slo_rules,
        slo,
        "firehose-slo-alerts",
        &burn_alerts(slo),
    );

    let mut ops = String::from(HEADER);
    ops.push_str(
        "# Alerts on failures an operator acts on (not budget burns), and the recording rules\n# the Grafana dashboard reads.\ngroups:\n",
    );
    render_records(&mut ops, "firehose-dashboard", "1m", &dashboard_records());
    render_alerts(&mut ops, slo, "firehose-alerts", &ops_alerts(slo));
    vec![
        ("deploy/prometheus/rules/slo.yml", slo_rules),
        ("deploy/prometheus/rules/alerts.yml", ops),
    ]
}

/// All alerts, in rule-file order.
pub fn all_alerts(slo: &SloFile) -> Vec<Alert> {
    let mut alerts = burn_alerts(slo);
    alerts.extend(ops_alerts(slo));
    alerts
}

/// The generated doc blocks, by id.
pub fn doc_blocks(slo: &SloFile) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    blocks.insert("slo-table".to_string(), slo_table(slo));
    blocks.insert("bench-table".to_string(), bench_table(slo));
    for a in all_alerts(slo) {
        let mut text = format!(
            "<a id=\"{}\"></a>\n**`{}`** (severity `{}`) fires when {}.\n\n```promql\n{}\n```",
            a.anchor(),
            a.name,
            a.severity,
            a.fires_when,
            a.expr
        );
        text.push('\n');
        blocks.insert(a.anchor(), text);
    }
    blocks
}

fn slo_table(slo: &SloFile) -> String {
    let mut t = format!(
        "| SLO | objective (over {}) | threshold | error budget | SLI from |\n|---|---|---|---|---|\n",
        slo.window
    );
    let lat = |name: &str| format!("{} ms", num(slo.slo(name).threshold(name) * 1000.0));
    let rows = [
        (
            "availability",
            "-".to_string(),
            "`firehose_messages_shed_total` / `firehose_messages_received_total`",
        ),
        (
            "reply_latency",
            lat("reply_latency"),
            "`firehose_reply_latency_seconds` buckets",
        ),
        (
            "moderation_latency",
            lat("moderation_latency"),
            "`firehose_moderation_latency_seconds` buckets",
        ),
        (
            "store_lag",
            format!("{} s", num(slo.slo("store_lag").threshold("store_lag"))),
            "`firehose_store_lag_ms`",
        ),
    ];
    for (name, threshold, from) in rows {
        let o = slo.slo(name);
        t.push_str(&format!(
            "| {name} | {} | {threshold} | {} | {from} |\n",
            pct(o.objective),
            pct(o.budget())
        ));
    }
    t.push_str("\nBurn-rate alerts (each on both windows):\n\n| name | long window | short window | factor | for | severity |\n|---|---|---|---|---|---|\n");
    for b in &slo.burn_rates {
        t.push_str(&format!(
            "| {} | {} | {} | {}x | {} | {} |\n",
            b.name,
            b.long,
            b.short,
            num(b.factor),
            b.for_,
            b.severity
        ));
    }
    t
}

fn bench_table(slo: &SloFile) -> String {
    let mut t = String::from("| scenario | objectives |\n|---|---|\n");
    for (scenario, objectives) in &slo.bench {
        let list: Vec<String> = objectives
            .iter()
            .map(|o| {
                let mut parts = Vec::new();
                if let Some(v) = &o.min {
                    parts.push(format!(
                        "`{}` >= {}",
                        o.metric,
                        super::bench_value(slo, &o.metric, v)
                    ));
                }
                if let Some(v) = &o.max {
                    parts.push(format!(
                        "`{}` <= {}",
                        o.metric,
                        super::bench_value(slo, &o.metric, v)
                    ));
                }
                parts.join(" and ")
            })
            .collect();
        t.push_str(&format!("| {scenario} | {} |\n", list.join(", ")));
    }
    t
}

/// Replaces every generated block of `text` with its current content; panics on an unknown id.
pub fn apply_blocks(text: &str, blocks: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- BEGIN GENERATED ") {
        let after = &rest[start..];
        let head_end = after.find("-->").expect("a BEGIN marker ends with -->") + 3;
        let id = after["<!-- BEGIN GENERATED ".len()..head_end - 3].trim();
        let end_marker = format!("<!-- END GENERATED {id} -->");
        let end = after
            .find(&end_marker)
            .unwrap_or_else(|| panic!("generated block `{id}` has no end marker"));
        let content = blocks
            .get(id)
            .unwrap_or_else(|| panic!("unknown generated block `{id}`"));
        out.push_str(&rest[..start]);
        out.push_str(&after[..head_end]);
        out.push('\n');
        out.push_str(content);
        if !content.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&end_marker);
        rest = &after[end + end_marker.len()..];
    }
    out.push_str(rest);
    out
}

/// The ids of the generated blocks in `text`, in order.
pub fn block_ids(text: &str) -> Vec<String> {
    text.match_indices("<!-- BEGIN GENERATED ")
        .filter_map(|(i, m)| {
            let after = &text[i + m.len()..];
            after.find("-->").map(|e| after[..e].trim().to_string())
        })
        .collect()
}

/// `text` without its generated blocks (the hand-written prose).
pub fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- BEGIN GENERATED ") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        match after.find("<!-- END GENERATED ") {
            Some(end) => {
                let tail = &after[end..];
                let close = tail.find("-->").map(|c| c + 3).unwrap_or(tail.len());
                rest = &tail[close..];
            }
            None => return out,
        }
    }
    out.push_str(rest);
    out
}
