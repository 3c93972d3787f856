//! `firehose bench` end to end: a short, small run of every scenario in `config/scenarios/`
//! checks that the report is complete and consistent (sent = processed + shed, percentiles
//! ordered, one verdict per declared SLO, plots written), never how fast anything was.

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
    let report = run_bench(BenchOptions {
        scenario: scenario(name),
        out: out.path().to_path_buf(),
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
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    check_complete(name, &report, &json, out.path());
    (report, json, out)
}

fn check_complete(name: &str, report: &Report, json: &Value, dir: &Path) {
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
    let declared = Scenario::load(&scenario(name))
        .expect("scenario loads")
        .slo
        .len();
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
        "## SLOs",
    ] {
        assert!(md.contains(needle), "{name}: report.md lacks `{needle}`");
    }
    for plot in ["latency.svg", "throughput.svg"] {
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
    let (report, _, _dir) = short_run("hate-raid", small(3.0, 50, 0.5), false).await;
    assert!(report.moderation_expected > 0, "the raid sent no spam");
    assert!(
        report.moderation_latency_us.count > 0,
        "no moderation call was matched to its spam message"
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

#[test]
fn every_scenario_file_is_valid_and_declares_slos() {
    for name in [
        "steady",
        "raid-spike",
        "hate-raid",
        "capacity",
        "many-channels",
    ] {
        let s = Scenario::load(&scenario(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
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
