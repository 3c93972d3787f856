//! `firehose bench` end to end: a short, small run of every scenario in `config/scenarios/`
//! checks that the report is complete and consistent (sent = processed + shed, percentiles
//! ordered, one verdict per declared SLO, plots written), never how fast anything was. The
//! overload soak runs as a shortened copy with a tiny flood (see [`SHORT_OVERLOAD`]).

use std::path::{Path, PathBuf};

use firehose_bench::demo::{IngestArg, SendViaArg};
use firehose_bench::{run_bench, BenchOptions, Overrides, Report, Scenario};
use serde_json::Value;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/scenarios")
        .join(format!("{name}.toml"))
}

/// Runs `name` shrunk to a few seconds and a few channels, and checks its report.
async fn short_run(
    name: &str,
    overrides: Overrides,
    separate_process: bool,
) -> (Report, Value, tempfile::TempDir) {
    short_run_via(name, overrides, separate_process, IngestArg::Irc).await
}

/// [`short_run`] with the service reading chat through `ingest`.
async fn short_run_via(
    name: &str,
    overrides: Overrides,
    separate_process: bool,
    ingest: IngestArg,
) -> (Report, Value, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("temp dir");
    let (report, json) = run_file(
        name,
        &scenario(name),
        out.path(),
        overrides,
        separate_process,
        ingest,
    )
    .await;
    (report, json, out)
}

/// Runs the scenario file `path` into `out` and checks its report.
async fn run_file(
    name: &str,
    path: &Path,
    out: &Path,
    overrides: Overrides,
    separate_process: bool,
    ingest: IngestArg,
) -> (Report, Value) {
    let report = run_bench(BenchOptions {
        scenario: path.to_path_buf(),
        out: out.to_path_buf(),
        separate_process,
        overrides,
        service_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_firehose"))),
        corpus: None,
        command: format!("test {name}"),
        ingest,
        send_via: SendViaArg::Irc,
    })
    .await
    .unwrap_or_else(|e| panic!("bench {name} failed: {e:#}"));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    check_complete(name, path, &report, &json, out);
    (report, json)
}

fn check_complete(name: &str, path: &Path, report: &Report, json: &Value, dir: &Path) {
    for field in [
        "msgs_per_s",
        "messages_sent",
        "messages_processed",
        "messages_shed",
        "cpu_s_per_million",
        "peak_rss_bytes",
        "rss_per_channel_bytes",
        "store_writes_per_message",
    ] {
        assert!(json[field].is_number(), "{name}: report.json lacks {field}");
    }
    for family in ["reply_latency_us", "moderation_latency_us"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                json[family][p].is_u64(),
                "{name}: report.json lacks {family}.{p}"
            );
        }
    }
    assert!(
        json["store_writes_per_message"]
            .as_f64()
            .is_some_and(|w| w > 0.0),
        "{name}: the store's writes were not measured"
    );
    let sent = json["messages_sent"].as_u64().expect("sent");
    let processed = json["messages_processed"].as_u64().expect("processed");
    let shed = json["messages_shed"].as_u64().expect("shed");
    assert!(sent > 0, "{name}: nothing was sent");
    assert_eq!(sent, processed + shed, "{name}: sent != processed + shed");
    assert_eq!(
        json["identity"]["holds"],
        Value::Bool(true),
        "{name}: the report's identity says it does not hold: {}",
        json["identity"]
    );
    assert_eq!(
        (
            json["identity"]["sent"].as_u64(),
            json["identity"]["processed"].as_u64(),
            json["identity"]["shed"].as_u64()
        ),
        (Some(sent), Some(processed), Some(shed)),
        "{name}: the identity's numbers are the run's"
    );
    assert!(
        report.reply_latency_us.ordered(),
        "{name}: reply percentiles out of order: {:?}",
        report.reply_latency_us
    );
    assert!(
        report.moderation_latency_us.ordered(),
        "{name}: moderation percentiles out of order: {:?}",
        report.moderation_latency_us
    );
    assert!(
        report.replies_matched <= report.replies_expected,
        "{name}: more replies than asked"
    );
    assert!(
        report.moderation_matched <= report.moderation_expected,
        "{name}: more moderation than spam"
    );
    assert!(
        report.peak_rss_bytes >= report.rss_after_join_bytes,
        "{name}: peak RSS below a reading"
    );
    assert!(
        report.cpu_s_per_million.is_finite() && report.cpu_s_per_million >= 0.0,
        "{name}: CPU per million not a measurement: {}",
        report.cpu_s_per_million
    );
    let declared = Scenario::load(path).expect("scenario loads").slo.len();
    let slo = json["slo"].as_array().expect("slo is a list");
    assert!(declared > 0, "{name}: declares no SLO");
    assert_eq!(slo.len(), declared, "{name}: one verdict per declared SLO");
    for verdict in slo {
        assert!(
            verdict["pass"].is_boolean(),
            "{name}: SLO without verdict: {verdict}"
        );
        assert!(verdict["metric"].is_string());
    }
    assert!(!report.samples.is_empty(), "{name}: no time series");
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md written");
    for needle in [
        "| messages_sent |",
        "| messages_processed |",
        "| messages_shed |",
        "| reply |",
        "| moderation |",
        "| cpu_s_per_million |",
        "| rss_per_channel_bytes |",
        "| store_writes_per_message |",
        "Identity sent = processed + shed over the whole run: **holds**",
        "## SLOs",
    ] {
        assert!(md.contains(needle), "{name}: report.md lacks `{needle}`");
    }
    for plot in ["latency.svg", "throughput.svg", "memory.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).expect("plot written");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{name}: {plot} has no line"
        );
    }
}

fn small(duration_s: f64, channels: usize, rate_scale: f64) -> Overrides {
    Overrides {
        duration_s: Some(duration_s),
        max_channels: Some(channels),
        rate_scale: Some(rate_scale),
        flat_rate: None,
        rules: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_reports_replies_and_moderation() {
    let (report, _, _dir) = short_run("steady", small(3.0, 100, 0.05), false).await;
    assert_eq!(report.channels, 100);
    assert!(report.replies_expected > 0, "the mix sent no command");
    assert!(report.moderation_expected > 0, "the mix sent no spam");
    assert_eq!(report.mode, "in-process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raid_spike_runs_its_three_phases() {
    let (report, _, _dir) = short_run("raid-spike", small(3.0, 100, 0.05), false).await;
    let phases: std::collections::BTreeSet<&str> =
        report.samples.iter().map(|s| s.phase.as_str()).collect();
    assert!(
        ["before", "raid", "after"]
            .iter()
            .all(|p| phases.contains(p)),
        "phases sampled: {phases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hate_raid_spam_is_moderated_and_timed() {
    let (report, json, _dir) = short_run("hate-raid", small(4.0, 50, 1.0), false).await;
    // The base mix sends no spam: all of it is the raid's fresh accounts'.
    assert!(report.moderation_expected > 0, "the raid sent no spam");
    assert!(
        report.moderation_latency_us.count > 0,
        "no moderation call was matched to its spam message"
    );
    // The moderation figures, at Twitch's budget.
    assert_eq!(report.helix_points_per_minute, 800);
    assert!(
        report.helix_calls > 0,
        "no Helix call reached the bench's Helix"
    );
    assert!(report.helix_calls >= report.helix_429s);
    let detail = report
        .moderation_detail
        .as_ref()
        .expect("moderation figures");
    assert_eq!(detail.spam_sent, report.moderation_expected);
    assert!(detail.spam_removed > 0 && detail.spam_removed <= detail.spam_sent);
    assert!(
        detail.legit_attempted > 0,
        "normal chat went on beside the raid"
    );
    let removed = report.spam_removed_ratio.expect("spam_removed_ratio");
    assert!((0.0..=1.0).contains(&removed), "{removed}");
    let fp = report.false_positive_ratio.expect("false_positive_ratio");
    assert!((0.0..=1.0).contains(&fp), "{fp}");
    let visible = report.spam_visible_s.expect("spam_visible_s");
    assert!(visible.p50 <= visible.p99 && visible.p99 <= visible.max && visible.max > 0.0);
    for field in [
        "spam_visible_s",
        "spam_removed_ratio",
        "false_positive_ratio",
        "helix_calls",
        "helix_429s",
        "defences",
    ] {
        assert!(json.get(field).is_some(), "report.json lacks {field}");
    }
    // Every goal of the scenario got a value to judge; the reply latency only if the random
    // mix sent a command at all in these few seconds (about 6 expected: none is rare, and then
    // there is nothing to time).
    for slo in &report.slo {
        let untimed = slo.metric.starts_with("reply_latency_us") && report.replies_expected == 0;
        assert!(
            slo.value.is_some() || untimed,
            "no value for {}",
            slo.metric
        );
    }
}

/// The same raid with the raid defence on: the service turns Shield Mode on through the bench's
/// Helix, the report lists it with its time, and Shield Mode keeps raid messages out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hate_raid_with_the_defence_engages_shield_mode() {
    let overrides = Overrides {
        rules: Some(scenario("bench-rules-defended")),
        ..small(4.0, 20, 0.5)
    };
    let (report, _, _dir) = short_run("hate-raid", overrides, false).await;
    let shield = report
        .defences
        .iter()
        .find(|d| d.what == "shield_mode=true")
        .unwrap_or_else(|| panic!("Shield Mode never engaged: {:?}", report.defences));
    assert!(shield.at_s >= 0.0 && shield.at_s <= report.traffic_seconds + 30.0);
    let detail = report
        .moderation_detail
        .as_ref()
        .expect("moderation figures");
    assert!(
        detail.spam_blocked > 0,
        "Shield Mode kept no raid message out: {detail:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_ramps_and_reports_its_steps() {
    let (report, json, _dir) = short_run("capacity", small(3.0, 50, 0.01), false).await;
    assert!(!report.ramp_steps.is_empty(), "no ramp step ran");
    let offered: Vec<f64> = report
        .ramp_steps
        .iter()
        .map(|s| s.offered_msgs_per_s)
        .collect();
    assert!(
        offered.windows(2).all(|w| w[0] < w[1]),
        "ramp not rising: {offered:?}"
    );
    // Either a step was sustained (and the capacity is one of the measured rates) or none was
    // and the report says so.
    match report.capacity_msgs_per_s {
        Some(c) => assert!(report
            .ramp_steps
            .iter()
            .any(|s| s.sustained && (s.processed_per_s - c).abs() < 1e-6)),
        None => assert!(json["notes"]
            .to_string()
            .contains("no ramp step was sustained")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_reports_memory_per_channel() {
    let (report, _, _dir) = short_run("many-channels", small(2.0, 1_000, 1.0), false).await;
    assert_eq!(report.channels, 1_000);
    assert!(report.rss_after_join_bytes > 0 && report.rss_before_join_bytes > 0);
    let expected = report
        .rss_after_join_bytes
        .saturating_sub(report.rss_before_join_bytes) as f64
        / 1_000.0;
    assert!((report.rss_per_channel_bytes - expected).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_can_run_as_its_own_process() {
    let (report, _, dir) = short_run("steady", small(2.0, 20, 0.02), true).await;
    assert_eq!(report.mode, "separate-process");
    let config = std::fs::read_to_string(dir.path().join("service.toml")).expect("config written");
    assert!(
        config.contains("[twitch]"),
        "generated service config: {config}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_runs_over_eventsub_in_its_own_process() {
    let (report, json, dir) =
        short_run_via("steady", small(3.0, 50, 0.05), true, IngestArg::Eventsub).await;
    assert_eq!(json["ingest"], "eventsub");
    assert_eq!(report.mode, "separate-process");
    assert!(
        report.replies_matched > 0,
        "no reply to chat read through EventSub"
    );
    assert!(
        report.moderation_latency_us.count > 0,
        "no moderation call matched: the recording Helix is not reached over the API port"
    );
    // The child got its secrets through its environment: none is in the written config.
    let config = std::fs::read_to_string(dir.path().join("service.toml")).expect("config written");
    assert!(config.contains("ingest = \"eventsub\""), "{config}");
    assert!(
        !config.contains(firehose_sim::api::CLIENT_SECRET),
        "the client secret was written to the config"
    );
}

/// The overload scenario shrunk for a test: 10 channels, 1.5 s of steady traffic (~1,000
/// msgs/s, 5 % commands so every recovery window holds replies), a 1 s flood at 20x into an
/// admission capacity of 4 per channel (so the service must shed), then 3 s steady. Its
/// recovery bound is loose on purpose: the test checks that recovery is timed and reported,
/// not how fast it is (that is a benchmark figure, in BENCHMARKS.md).
const SHORT_OVERLOAD: &str = r#"
name = "overload-short"
description = "overload, shortened for the test suite"

[traffic]
channels = 10
top_viewers = 20000
msgs_per_s_per_1000_viewers = 0.6
load_factor = 30.0
chatters_per_1000_viewers = 100
event_share = 0.01

[mix]
plain = 85.0
emotes = 8.0
commands = 5.0
links = 0.5
caps = 0.5
banned = 0.5
command_texts = ["!ping", "!discord"]
banned_phrases = ["free bitcoin"]

[service]
admission_capacity = 4
overflow = "shed"
helix_points_per_minute = 100000
helix_budget_reason = "the short overload run measures shedding, not Twitch's budget"
rules = "bench-rules.toml"

[[phases]]
name = "steady"
duration_s = 1.5

[[phases]]
name = "flood"
duration_s = 1.0
rate_factor = 20.0
mix = { plain = 88.0, emotes = 10.0, commands = 0.5, links = 0.1, caps = 0.1, banned = 0.1, command_texts = ["!ping"], banned_phrases = ["free bitcoin"] }

[[phases]]
name = "after"
duration_s = 3.0

[recovery]
after = "flood"
max = 5000000
window_s = 1.0
step_s = 0.25
hold_s = 0.5

[[slo]]
metric = "messages_shed"
min = 1
[[slo]]
metric = "messages_unaccounted"
max = 0
[[slo]]
metric = "flood_rss_ratio"
max = 2
[[slo]]
metric = "recovery_s"
max = 5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_reports_phase_memory_shedding_recovery_and_the_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(scenario("bench-rules"), dir.path().join("bench-rules.toml"))
        .expect("rules copied");
    let path = dir.path().join("overload-short.toml");
    std::fs::write(&path, SHORT_OVERLOAD).expect("scenario written");
    let out = dir.path().join("out");
    // The service in its own process: RSS is read from the child's /proc/<pid>/status.
    let (report, json) = run_file(
        "overload-short",
        &path,
        &out,
        Overrides::default(),
        true,
        IngestArg::Irc,
    )
    .await;
    assert_eq!(report.mode, "separate-process");
    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["steady", "flood", "after"]);
    for (i, phase) in report.phases.iter().enumerate() {
        assert!(
            phase.rss_readings > 0 && phase.peak_rss_bytes > 0,
            "phase {}: no RSS reading: {phase:?}",
            phase.name
        );
        assert_eq!(
            json["phases"][i]["peak_rss_bytes"].as_u64(),
            Some(phase.peak_rss_bytes),
            "report.json carries phase {}'s peak RSS",
            phase.name
        );
        assert!(phase.sent > 0, "phase {} sent nothing", phase.name);
    }
    let flood = &report.phases[1];
    assert!(
        flood.shed > 0,
        "the flood was not shed at admission: {flood:?}"
    );
    assert!(
        flood.offered_msgs_per_s > report.phases[0].offered_msgs_per_s * 10.0,
        "the flood offered {} against {}",
        flood.offered_msgs_per_s,
        report.phases[0].offered_msgs_per_s
    );
    assert!(report.identity.holds, "identity: {:?}", report.identity);
    assert_eq!(
        report.phases.iter().map(|p| p.sent).sum::<u64>(),
        report.messages_sent,
        "the phases' sent add up to the run's"
    );
    // Recovery was timed and reported (its value is a benchmark figure, not asserted).
    assert!(
        json["recovery_s"].is_number(),
        "recovery_s missing: {}",
        json["recovery"]
    );
    let recovery = report.recovery.as_ref().expect("recovery section");
    assert_eq!(recovery.after, "flood");
    assert!(recovery.outcome.windows > 0 && recovery.outcome.windows_passing > 0);
    // Windows are judged while traffic runs, not in the drain after it.
    let after = &report.phases[2];
    assert!(
        recovery
            .outcome
            .held_s
            .is_some_and(|h| h <= after.seconds + recovery.step_s),
        "held {:?} s after a {} s phase",
        recovery.outcome.held_s,
        after.seconds
    );
    assert!(
        recovery.definition.contains("sliding window") && recovery.definition.contains("1 s"),
        "{}",
        recovery.definition
    );
    assert!(json["flood_rss_ratio"].is_number());
    assert!(
        json["drain_peak_rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "the drain's RSS was not read"
    );
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for needle in [
        "## Phases",
        "| flood |",
        "## Overload: recovery after `flood`",
        "| recovery_s |",
        "| flood_rss_ratio (flood peak / peak before) |",
    ] {
        assert!(md.contains(needle), "report.md lacks `{needle}`:\n{md}");
    }
    let verdicts: Vec<&str> = report.slo.iter().map(|s| s.metric.as_str()).collect();
    assert!(verdicts.contains(&"recovery_s") && verdicts.contains(&"messages_unaccounted"));
    let unaccounted = report
        .slo
        .iter()
        .find(|s| s.metric == "messages_unaccounted")
        .expect("verdict");
    assert_eq!((unaccounted.value, unaccounted.pass), (Some(0.0), true));
}

#[test]
fn the_overload_scenario_floods_for_a_minute_and_times_its_recovery() {
    let s = Scenario::load(&scenario("overload")).expect("overload loads");
    let names: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["steady", "flood", "after"]);
    let flood = &s.phases[1];
    assert_eq!(flood.duration_s, 60.0);
    let base: f64 = s.channel_plan().iter().map(|c| c.rate).sum();
    // At least 3x what the box is declared to sustain (the capacity scenario's objective).
    let capacity = Scenario::load(&scenario("capacity"))
        .expect("capacity")
        .slo
        .iter()
        .find(|o| o.metric == "capacity_msgs_per_s")
        .and_then(|o| o.min)
        .expect("capacity objective");
    assert!(
        base * flood.rate_factor >= 3.0 * capacity,
        "flood offers {:.0} msgs/s, not 3x {capacity}",
        base * flood.rate_factor
    );
    assert!(s.phases[0].rate_factor == 1.0 && s.phases[2].rate_factor == 1.0);
    let recovery = s.recovery.as_ref().expect("[recovery]");
    assert_eq!(recovery.after, "flood");
    assert_eq!(recovery.metric, "reply_latency_us.p99");
}

#[test]
fn every_scenario_file_is_valid_and_declares_slos() {
    for name in [
        "steady",
        "raid-spike",
        "hate-raid",
        "capacity",
        "many-channels",
        "overload",
    ] {
        let s = Scenario::load(&scenario(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        if let Some(rules) = s.rules_path() {
            firehose::channel::rules_book::load_file(&rules)
                .unwrap_or_else(|e| panic!("{name}'s rules: {e}"));
        }
        assert_eq!(s.name, name);
        assert!(!s.slo.is_empty(), "{name} declares no SLO");
        assert!(
            s.rules_path().is_some_and(|p| p.exists()),
            "{name}: rules file missing"
        );
    }
    let steady = Scenario::load(&scenario("steady")).expect("steady");
    assert_eq!(steady.traffic.channels, 1_000);
    assert!(
        steady
            .channel_plan()
            .iter()
            .filter(|c| c.viewers >= 50_000.0)
            .count()
            >= 3
    );
    let many = Scenario::load(&scenario("many-channels")).expect("many");
    assert_eq!(many.traffic.channels, 100_000);
    assert!(Scenario::load(&scenario("capacity"))
        .expect("capacity")
        .ramp
        .is_some());
}

#[test]
fn a_bad_scenario_file_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("dir");
    let text = std::fs::read_to_string(scenario("steady"))
        .expect("steady")
        .replace("load_factor", "load_factr");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write");
    let err = format!("{:#}", Scenario::load(&path).expect_err("refused"));
    assert!(
        err.contains("load_factr") && err.contains("bad.toml"),
        "{err}"
    );
}

/// A budget above Twitch's 800 points per minute needs its reason in the file; a raid needs a
/// channel to raid.
#[test]
fn a_budget_above_twitchs_needs_a_reason_and_a_raid_a_channel() {
    let defended = firehose::channel::rules_book::load_file(&scenario("bench-rules-defended"))
        .expect("the defended bench rules are valid");
    assert!(defended.defence.enabled);
    let dir = tempfile::tempdir().expect("dir");
    let steady = std::fs::read_to_string(scenario("steady")).expect("steady");
    let no_reason: String = steady
        .lines()
        .filter(|l| !l.starts_with("helix_budget_reason"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("no-reason.toml");
    std::fs::write(&path, no_reason).expect("write");
    let err = format!("{:#}", Scenario::load(&path).expect_err("refused"));
    assert!(err.contains("helix_budget_reason"), "{err}");

    let raid = std::fs::read_to_string(scenario("hate-raid"))
        .expect("hate-raid")
        .replace("channel = 0\n", "");
    let path = dir.path().join("raid-nowhere.toml");
    std::fs::write(&path, raid).expect("write");
    let err = format!("{:#}", Scenario::load(&path).expect_err("refused"));
    assert!(err.contains("raid") && err.contains("channel"), "{err}");
}
