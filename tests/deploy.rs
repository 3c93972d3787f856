//! The deployment artefacts under `deploy/`: the SLO file and everything that takes its numbers
//! from it (Prometheus rules, runbook, bench scenarios, the stack's config), the rules' promtool
//! checks and unit tests, the Grafana dashboard, and the compose stack.
//!
//! Nothing here skips: a missing `promtool` or `docker-compose` fails the test (the README's test
//! command installs them). `DEPLOY_REGENERATE=1 cargo test --test deploy` rewrites the
//! generated rule files and doc blocks from `deploy/slo.yaml` instead of comparing them.

mod common;

#[path = "deploy/exported.rs"]
mod exported;
#[path = "deploy/generate.rs"]
mod generate;
#[path = "deploy/promql.rs"]
mod promql;
#[path = "deploy/slo.rs"]
mod slo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use common::*;
use slo::SloFile;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn slo_file() -> SloFile {
    SloFile::load(&root().join("deploy/slo.yaml"))
}

fn files_in(dir: &str, ext: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(ext))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

fn regenerate() -> bool {
    std::env::var("DEPLOY_REGENERATE").is_ok_and(|v| v == "1")
}

/// A tool on PATH; fails (never skips) without it.
fn tool(name: &str, package: &str) -> PathBuf {
    // PATH, then where ./scripts/test.sh unpacks promtool.
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.push(root().join(".cache/deploy-tools/bin"));
    let found = dirs
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: `apt-get install -y {package}` (./scripts/test.sh does it)"
        )
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A bench objective's value: the number, or the named SLO's threshold in µs (checking that
/// the metric's percentile is the SLO's objective).
pub fn bench_value(slo: &SloFile, metric: &str, value: &slo::BenchValue) -> f64 {
    match value {
        slo::BenchValue::Number(n) => *n,
        slo::BenchValue::Slo(name) => {
            let objective = slo.slo(name);
            let percentile = metric.rsplit_once(".p").map(|(_, p)| p).unwrap_or("");
            let expected = slo::num(objective.objective * 100.0).replace('.', "");
            assert_eq!(
                percentile, expected,
                "bench objective {metric} takes slos.{name} (objective {}): its percentile must be p{expected}",
                objective.objective
            );
            slo::round(objective.threshold(name) * 1e6)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The SLO file and what takes its numbers from it.

#[test]
fn generated_rule_files_and_doc_blocks_are_current() {
    let slo = slo_file();
    let mut stale = Vec::new();
    for (rel, content) in generate::rule_files(&slo) {
        let path = root().join(rel);
        if regenerate() {
            std::fs::write(&path, &content).expect("rule file written");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            stale.push(rel.to_string());
        }
    }
    let blocks = generate::doc_blocks(&slo);
    for rel in ["docs/RUNBOOK.md", "docs/SLO.md"] {
        let text = read(rel);
        let current = generate::apply_blocks(&text, &blocks);
        if regenerate() {
            std::fs::write(root().join(rel), &current).expect("doc written");
        } else if current != text {
            stale.push(rel.to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "not what deploy/slo.yaml gives: {stale:?}; run DEPLOY_REGENERATE=1 cargo test --test deploy"
    );
    // Every rule file in the folder is generated (none hand-edited beside them).
    let generated: BTreeSet<String> = generate::rule_files(&slo)
        .into_iter()
        .map(|(rel, _)| rel.to_string())
        .collect();
    let present: BTreeSet<String> = files_in("deploy/prometheus/rules", ".yml")
        .into_iter()
        .collect();
    assert_eq!(
        present, generated,
        "deploy/prometheus/rules holds exactly the generated files"
    );
}

#[test]
fn the_runbook_has_an_entry_for_every_alert_and_states_no_number_by_hand() {
    let slo = slo_file();
    let runbook = read("docs/RUNBOOK.md");
    let ids: BTreeSet<String> = generate::block_ids(&runbook).into_iter().collect();
    for alert in generate::all_alerts(&slo) {
        assert!(
            ids.contains(&alert.anchor()),
            "docs/RUNBOOK.md has no entry (generated block `{}`) for {}",
            alert.anchor(),
            alert.name
        );
    }
    assert!(ids.contains("slo-table"), "the runbook shows the SLO table");
    // Each alert's runbook_url in the committed rules points at its entry.
    let mut urls = BTreeMap::new();
    for rel in files_in("deploy/prometheus/rules", ".yml") {
        for group in yaml(&rel)["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                if let Some(name) = rule["alert"].as_str() {
                    let url = rule["annotations"]["runbook_url"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name} has no runbook_url"));
                    urls.insert(name.to_string(), url.to_string());
                }
            }
        }
    }
    assert_eq!(urls.len(), generate::all_alerts(&slo).len());
    for (name, url) in urls {
        let (doc, anchor) = url
            .rsplit_once('#')
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} has no anchor"));
        assert_eq!(doc, slo.runbook_url);
        assert!(
            runbook.contains(&format!("<a id=\"{anchor}\"></a>")),
            "{name}: docs/RUNBOOK.md has no anchor {anchor}"
        );
    }
    // Outside the generated blocks, the docs state no SLO-style number (a share, a latency,
    // a burn factor, a window): those come from deploy/slo.yaml, so they cannot drift.
    let number = regex::Regex::new(
        r"(?i)\b\d+(\.\d+)?\s?(%|ms\b|µs\b|us\b|x\b|×|[smhd]\b|seconds?\b|minutes?\b|hours?\b|days?\b)",
    )
    .expect("regex");
    // Code (PromQL examples, commands) is left out: `[5m]` in a query is not an SLO number.
    let code = regex::Regex::new(r"(?s)```.*?```|`[^`]*`").expect("regex");
    for rel in ["docs/RUNBOOK.md", "docs/SLO.md"] {
        let prose = generate::prose(&read(rel));
        let prose = code.replace_all(&prose, "");
        let found: Vec<&str> = number.find_iter(&prose).map(|m| m.as_str()).collect();
        assert!(
            found.is_empty(),
            "{rel} states numbers by hand outside its generated blocks: {found:?}"
        );
    }
}

#[derive(serde::Deserialize)]
struct ScenarioSlos {
    #[serde(default)]
    slo: Vec<ScenarioSlo>,
    #[serde(default)]
    recovery: Option<ScenarioRecovery>,
}

/// A scenario's `[recovery]`: the latency bound its recovery after a flood is timed against.
#[derive(serde::Deserialize)]
struct ScenarioRecovery {
    #[serde(default = "reply_p99")]
    metric: String,
    max: f64,
}

fn reply_p99() -> String {
    "reply_latency_us.p99".into()
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct ScenarioSlo {
    metric: String,
    max: Option<f64>,
    min: Option<f64>,
}

#[test]
fn bench_scenarios_take_their_slos_from_the_slo_file() {
    let slo = slo_file();
    let scenarios: Vec<String> = files_in("config/scenarios", ".toml")
        .into_iter()
        .filter(|f| {
            !f.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("bench-rules"))
        })
        .collect();
    let names: BTreeSet<String> = scenarios
        .iter()
        .map(|f| {
            Path::new(f)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    let declared: BTreeSet<String> = slo.bench.keys().cloned().collect();
    assert_eq!(
        names, declared,
        "deploy/slo.yaml's bench section names every scenario in config/scenarios, and no other"
    );
    let mut wrong = Vec::new();
    for file in &scenarios {
        let name = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let parsed: ScenarioSlos =
            toml::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected: Vec<ScenarioSlo> = slo.bench[&name]
            .iter()
            .map(|o| ScenarioSlo {
                metric: o.metric.clone(),
                max: o.max.as_ref().map(|v| bench_value(&slo, &o.metric, v)),
                min: o.min.as_ref().map(|v| bench_value(&slo, &o.metric, v)),
            })
            .collect();
        if parsed.slo != expected {
            wrong.push(format!(
                "{file}: [[slo]] is {:?}\n  deploy/slo.yaml says {:?}",
                parsed.slo, expected
            ));
        }
        // The bound of [recovery] is the threshold of the latency SLO its metric measures.
        if let Some(r) = &parsed.recovery {
            let name = r
                .metric
                .split_once("_us.")
                .map(|(family, _)| family.to_string());
            let threshold = name
                .filter(|n| ["reply_latency", "moderation_latency"].contains(&n.as_str()))
                .map(|n| bench_value(&slo, &r.metric, &slo::BenchValue::Slo(n)));
            if threshold != Some(r.max) {
                wrong.push(format!(
                    "{file}: [recovery].max is {} for {}; deploy/slo.yaml's threshold is {threshold:?}",
                    r.max, r.metric
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_stacks_config_is_valid_and_takes_the_store_lag_threshold() {
    let slo = slo_file();
    let text = read("deploy/firehose.toml");
    let table: toml::Table = toml::from_str(&text).expect("deploy/firehose.toml is TOML");
    let max_lag_ms = table["store"]["max_lag_ms"]
        .as_integer()
        .expect("deploy/firehose.toml sets store.max_lag_ms");
    assert_eq!(
        max_lag_ms as f64,
        slo.slo("store_lag").threshold("store_lag") * 1000.0,
        "store.max_lag_ms (when /readyz says degraded) is the store lag SLO's threshold"
    );
    assert_eq!(
        table["store"]["scylla_uri"].as_str(),
        Some("scylla:9042"),
        "the stack's firehose uses the stack's ScyllaDB"
    );
    // The config the container gets: this file, with the example env file and the compose
    // file's environment applied as overrides, is valid.
    let mut env: Vec<(String, String)> = read("deploy/.env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let compose = yaml("deploy/compose.yaml");
    for (k, v) in compose["services"]["firehose"]["environment"]
        .as_mapping()
        .expect("firehose's environment")
    {
        let value = match v {
            Yaml::String(s) => s.clone(),
            other => serde_norway::to_string(other)
                .expect("scalar")
                .trim()
                .to_string(),
        };
        env.push((k.as_str().expect("key").to_string(), value));
    }
    let config = firehose::config::Config::from_toml_with_env(&text, "deploy/firehose.toml", &env)
        .unwrap_or_else(|e| panic!("deploy/firehose.toml with deploy/.env.example: {e}"));
    assert_eq!(config.http.listen.port(), 8080);
    assert!(config.secrets.twitch_token.is_some() && config.secrets.admin_token.is_some());
}

// ---------------------------------------------------------------------------------------------
// Prometheus: promtool, unit tests, and every query against what the service exports.

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let promtool = tool("promtool", "prometheus");
    let rules = files_in("deploy/prometheus/rules", ".yml");
    assert!(!rules.is_empty());
    let out = run(Command::new(&promtool)
        .current_dir(root())
        .arg("check")
        .arg("rules")
        .args(&rules));
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = files_in("deploy/prometheus/tests", ".yml");
    assert!(
        !tests.is_empty(),
        "deploy/prometheus/tests holds the unit tests"
    );
    let out = run(Command::new(&promtool)
        .current_dir(root())
        .arg("test")
        .arg("rules")
        .args(&tests));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test_and_every_recording_rule_a_test() {
    let slo = slo_file();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut tested_exprs = String::new();
    for rel in files_in("deploy/prometheus/tests", ".yml") {
        let doc = yaml(&rel);
        for test in doc["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_string();
                let fires = case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|a| !a.is_empty());
                if fires {
                    firing.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
            for case in test["promql_expr_test"].as_sequence().into_iter().flatten() {
                tested_exprs.push_str(case["expr"].as_str().expect("expr"));
                tested_exprs.push('\n');
            }
        }
    }
    let mut missing = Vec::new();
    for alert in generate::all_alerts(&slo) {
        if !firing.contains(&alert.name) {
            missing.push(format!("{}: no test where it fires", alert.name));
        }
        if !quiet.contains(&alert.name) {
            missing.push(format!("{}: no test where it stays quiet", alert.name));
        }
    }
    let records: BTreeSet<String> = generate::sli_records(&slo)
        .into_iter()
        .chain(generate::dashboard_records())
        .map(|r| r.name)
        .collect();
    for record in records {
        if !tested_exprs.contains(&record) {
            missing.push(format!("recording rule {record}: no promql_expr_test"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Every expression of the rule files: (where, expr), and the recording rules' names.
fn rule_exprs() -> (Vec<(String, String)>, BTreeSet<String>) {
    let mut exprs = Vec::new();
    let mut records = BTreeSet::new();
    for rel in files_in("deploy/prometheus/rules", ".yml") {
        for group in yaml(&rel)["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let name = rule["record"]
                    .as_str()
                    .or(rule["alert"].as_str())
                    .expect("a rule is a record or an alert");
                if let Some(record) = rule["record"].as_str() {
                    records.insert(record.to_string());
                }
                exprs.push((
                    format!("{rel}: {name}"),
                    rule["expr"].as_str().expect("expr").to_string(),
                ));
            }
        }
    }
    (exprs, records)
}

/// Every query of the dashboard: (where, expr); template variables' queries included.
fn dashboard_exprs(dashboard: &Json) -> Vec<(String, String, bool)> {
    let mut exprs = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push((format!("panel `{title}`"), expr.to_string(), false));
            }
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .or(var["definition"].as_str())
                .expect("a query variable has a query");
            exprs.push((
                format!("variable `{}`", var["name"].as_str().unwrap_or("?")),
                query.to_string(),
                true,
            ));
        }
    }
    exprs
}

fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/dashboards/firehose.json"))
        .expect("deploy/grafana/dashboards/firehose.json is valid JSON")
}

/// Series Prometheus itself makes for every scrape target (not the service's).
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_in_the_dashboard_and_the_rules_names_only_exported_metrics() {
    let exposition = exported::registry_names().await;
    // The type-based names agree with the samples of every family that has some.
    for (family, kind) in &exposition.families {
        let names = exported::sample_names(family, kind);
        let with_samples: Vec<&String> = names
            .iter()
            .filter(|n| exposition.samples.contains(*n))
            .collect();
        if exposition
            .samples
            .iter()
            .any(|s| s.starts_with(family.as_str()))
        {
            assert!(
                !with_samples.is_empty(),
                "{family} ({kind}): samples not named as expected"
            );
        }
    }
    let exported = exposition.names();
    assert!(exported.contains("firehose_messages_received_total"));
    assert!(exported.contains("firehose_reply_latency_seconds_bucket"));
    assert!(exported.contains("firehose_outbound_dropped_total"));
    let (rule_exprs, records) = rule_exprs();
    let allowed: BTreeSet<String> = exported
        .iter()
        .cloned()
        .chain(records.iter().cloned())
        .chain(PROMETHEUS_SERIES.map(String::from))
        .collect();
    let dashboard = dashboard();
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    let all = rule_exprs
        .into_iter()
        .map(|(w, e)| (w, e, false))
        .chain(dashboard_exprs(&dashboard));
    for (place, expr, variable) in all {
        let names = if variable {
            promql::variable_metric_names(&expr)
        } else {
            promql::metric_names(&expr)
        };
        match names {
            Ok(names) => {
                // A rule may be a constant (the SLO objectives); a panel must show a metric.
                assert!(
                    !names.is_empty() || place.starts_with("deploy/prometheus/rules"),
                    "{place}: selects no metric: {expr}"
                );
                for name in names {
                    if !allowed.contains(&name) {
                        unknown.push(format!("{place}: `{name}`"));
                    }
                    used.insert(name);
                }
            }
            Err(e) => unknown.push(format!("{place}: {e}")),
        }
    }
    assert!(
        unknown.is_empty(),
        "queries name metrics the service does not export (nor a recording rule defines):\n{}",
        unknown.join("\n")
    );
    // The SLO thresholds are bucket bounds of the histograms they are read from.
    let slo = slo_file();
    for (name, metric) in [
        ("reply_latency", "firehose_reply_latency_seconds"),
        ("moderation_latency", "firehose_moderation_latency_seconds"),
    ] {
        let le = slo::num(slo.slo(name).threshold(name));
        assert!(
            exposition.buckets[metric].contains(&le),
            "slos.{name}.threshold_seconds = {le} is not a bucket bound of {metric}: {:?}",
            exposition.buckets[metric]
        );
    }
}

#[test]
fn the_dashboard_shows_what_an_operator_needs_and_uses_its_datasource_variable() {
    let dashboard = dashboard();
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let datasource = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    let ds_name = datasource["name"].as_str().expect("name");
    let ds_ref = format!("${{{ds_name}}}");
    let mut ids = BTreeSet::new();
    let mut queries = String::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            Some(ds_ref.as_str()),
            "panel `{title}` queries the dashboard's datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel `{title}` has queries");
        for t in targets {
            assert_eq!(t["datasource"]["uid"].as_str(), Some(ds_ref.as_str()));
            queries.push_str(t["expr"].as_str().expect("expr"));
            queries.push('\n');
        }
        assert!(
            panel["gridPos"]["w"].as_u64().is_some(),
            "panel `{title}` is placed"
        );
    }
    // The issue's list: throughput, shed by reason, reply and moderation latency percentiles,
    // per-channel top-N, store lag and failures, Helix budget, connection state, reconnects,
    // Discord shards, actor restarts and failed channels, outbound drops.
    for needed in [
        "firehose:messages_received:rate5m",
        "firehose:messages_processed:rate5m",
        "firehose:messages_shed:rate5m",
        "histogram_quantile(0.99, sum by (le) (rate(firehose_reply_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(firehose_moderation_latency_seconds_bucket",
        "topk(",
        "firehose_store_lag_ms",
        "firehose_store_flushes_failed_total",
        "firehose_helix_queue_depth",
        "firehose_helix_retries_total",
        "firehose_twitch_connected",
        "firehose_twitch_reconnects_total",
        "firehose_discord_shards_connected",
        "firehose_actor_restarts_total",
        "firehose_channel_failed",
        "firehose_outbound_dropped_total",
        "firehose:slo_availability:burn_rate1h",
        "firehose:slo_reply_latency:burn_rate1h",
    ] {
        assert!(
            queries.contains(needed),
            "the dashboard has no query with `{needed}`"
        );
    }
}

/// The registry this test builds covers what a running service exports (so the check above
/// is against the service's real names), and the moderation latency the SLO reads is observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_names_checked_are_the_ones_a_running_service_exports() {
    use firehose::config::Secret;
    use firehose_sim::helix::{FakeHelix, FAKE_CLIENT_ID, FAKE_TOKEN};
    let helix = FakeHelix::start();
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let channel = &channels[0];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join(format!("{channel}.toml")),
        "[[filters]]\nname = \"links\"\nkind = \"links\"\naction = \"delete\"\n",
    )
    .expect("rules");
    let mut config = config_for(sim.local_addr(), &channels);
    config.engine.rules_dir = dir.path().display().to_string();
    config.helix.base_url = helix.base_url();
    config.helix.client_id = FAKE_CLIENT_ID.to_string();
    config.secrets.helix_token = Some(Secret::new(FAKE_TOKEN));
    let service = service(config, firehose::app::ServiceOptions::default()).await;
    let status = service.core().twitch.status();
    wait_until(
        "the channel's and bot's ids",
        Duration::from_secs(10),
        || status.room_id(channel).is_some() && status.bot_user_id().is_some(),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    sim.inject_raw(&format!(
        "@badge-info=;badges=;color=;display-name=spammer;emotes=;first-msg=0;flags=;id=spam-1;mod=0;room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id=777;user-type= :spammer!spammer@spammer.tmi.twitch.tv PRIVMSG #{channel} :look at example.com/x"
    ))
    .await;
    let url = format!("http://{}/metrics", service.http_addr());
    let mut live = exported::Exposition::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        live = exported::scrape_names(&url).await;
        if live
            .samples
            .contains("firehose_moderation_latency_seconds_count")
            && live.samples.contains("firehose_helix_requests_total")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = reqwest::get(&url)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        metric_value(&text, "firehose_moderation_latency_seconds_count") >= 1.0,
        "the delete's latency is observed:\n{text}"
    );
    assert!(
        metric_value(
            &text,
            "firehose_helix_requests_total{action=\"delete\",outcome=\"ok\"}"
        ) >= 1.0
    );
    // FirehoseTwitchLoginRefused keys on notices without msg-id: Twitch's login refusal is one.
    sim.inject_raw(":tmi.twitch.tv NOTICE * :Login authentication failed")
        .await;
    let notice = "firehose_twitch_notices_total{msg_id=\"none\"}";
    wait_until_async(
        "the login refusal is counted",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move {
                match reqwest::get(&url).await {
                    Ok(r) => metric_value(&r.text().await.unwrap_or_default(), notice) >= 1.0,
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    let built = exported::registry_names().await;
    let missing: Vec<&String> = live
        .families
        .keys()
        .filter(|f| !built.families.contains_key(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "the running service exports families the test's registry lacks (update tests/deploy/exported.rs): {missing:?}"
    );
    for (family, kind) in &live.families {
        assert_eq!(&built.families[family], kind, "{family}'s type");
    }
    for sample in &live.samples {
        assert!(
            built.names().contains(sample),
            "live sample {sample} is not among the names checked"
        );
    }
    service.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The compose stack.

/// The compose file's bind mounts: (service, host path relative to deploy/, container path).
fn bind_mounts(compose: &Yaml) -> Vec<(String, String, String)> {
    let mut mounts = Vec::new();
    for (name, service) in compose["services"].as_mapping().expect("services") {
        let name = name.as_str().expect("service name").to_string();
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let (source, target) = (parts.next().expect("source"), parts.next().expect("target"));
            if source.starts_with('.') || source.starts_with('/') {
                mounts.push((name.clone(), source.to_string(), target.to_string()));
            }
        }
    }
    mounts
}

fn host_path(mounts: &[(String, String, String)], service: &str, container: &str) -> PathBuf {
    let (_, source, target) = mounts
        .iter()
        .filter(|(s, _, t)| s == service && container.starts_with(t.as_str()))
        .max_by_key(|(_, _, t)| t.len())
        .unwrap_or_else(|| panic!("{service}: nothing mounted at {container}"));
    let rest = container[target.len()..].trim_start_matches('/');
    let base = root().join("deploy").join(source);
    if rest.is_empty() {
        base
    } else {
        base.join(rest)
    }
}

#[test]
fn the_compose_file_is_valid_and_wired() {
    // docker-compose (v1, Debian's package) validates the file against the Compose
    // Specification schema it ships and resolves it, without a Docker engine.
    let compose_tool = tool("docker-compose", "docker-compose");
    let out = run(Command::new(&compose_tool)
        .current_dir(root().join("deploy"))
        .env("FIREHOSE_ENV_FILE", ".env.example")
        .args(["--env-file", ".env.example", "-f", "compose.yaml", "config"]));
    let resolved: Yaml = serde_norway::from_str(&out).expect("docker-compose config prints YAML");
    for service in ["scylla", "firehose", "prometheus", "grafana"] {
        assert!(
            resolved["services"][service].is_mapping(),
            "{service} is in the stack"
        );
    }
    let compose = yaml("deploy/compose.yaml");
    let services = &compose["services"];
    for (name, service) in services.as_mapping().expect("services") {
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name:?} has a healthcheck"
        );
    }
    assert_eq!(
        services["firehose"]["depends_on"]["scylla"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        services["firehose"]["build"]["dockerfile"].as_str(),
        Some("Dockerfile")
    );
    assert_eq!(
        services["firehose"]["build"]["context"].as_str(),
        Some("..")
    );
    assert!(root().join("Dockerfile").is_file());
    let scylla_cmd = services["scylla"]["command"]
        .as_sequence()
        .expect("scylla command")
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for flag in ["--smp", "--memory", "--overprovisioned"] {
        assert!(scylla_cmd.contains(flag), "scylla runs with {flag}");
    }
    // Secrets come from the env file, whose example holds no real secret.
    let example = read("deploy/.env.example");
    for key in [
        "FIREHOSE_TWITCH_TOKEN",
        "FIREHOSE_ADMIN_TOKEN",
        "GF_SECURITY_ADMIN_PASSWORD",
    ] {
        assert!(example.contains(key), ".env.example names {key}");
    }
    assert!(
        !example.contains("oauth:") || example.contains("oauth:REPLACE"),
        ".env.example holds no token"
    );
    let ignore = read(".gitignore");
    assert!(ignore.contains("deploy/.env"), "deploy/.env is git-ignored");
    // Every file or folder the stack mounts exists.
    let mounts = bind_mounts(&compose);
    assert!(mounts.len() >= 5, "{mounts:?}");
    for (service, source, _) in &mounts {
        assert!(
            root().join("deploy").join(source).exists(),
            "{service} mounts {source}, which does not exist"
        );
    }
    // firehose reads the stack's config.
    assert_eq!(
        host_path(&mounts, "firehose", "/etc/firehose/firehose.toml"),
        root().join("deploy/./firehose.toml")
    );
    // Prometheus: its rule_files glob, seen through the mounts, finds exactly the rule files,
    // it scrapes firehose's port, and promtool accepts the config with the rules.
    let prom_config_path = host_path(&mounts, "prometheus", "/etc/prometheus/prometheus.yml");
    let prom: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(&prom_config_path).expect("prometheus.yml"),
    )
    .expect("prometheus.yml is YAML");
    let globs: Vec<&str> = prom["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(globs.len(), 1);
    let (dir, pattern) = globs[0].rsplit_once('/').expect("a folder and a pattern");
    let ext = pattern.strip_prefix('*').expect("a `*.ext` pattern");
    let host_dir = host_path(&mounts, "prometheus", dir);
    let mut found: Vec<String> = std::fs::read_dir(&host_dir)
        .expect("the rules folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(ext))
        .collect();
    found.sort();
    let mut expected: Vec<String> = files_in("deploy/prometheus/rules", ".yml")
        .into_iter()
        .map(|f| f.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    expected.sort();
    assert_eq!(found, expected, "rule_files finds every rule file");
    let job = prom["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "firehose")
        .expect("a firehose job (the rules match job=\"firehose\")");
    assert_eq!(
        job["static_configs"][0]["targets"][0].as_str(),
        Some("firehose:8080")
    );
    let promtool = tool("promtool", "prometheus");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut local = prom.clone();
    local["rule_files"] =
        Yaml::Sequence(vec![Yaml::String(format!("{}/*{ext}", host_dir.display()))]);
    let local_path = tmp.path().join("prometheus.yml");
    std::fs::write(
        &local_path,
        serde_norway::to_string(&local).expect("serialises"),
    )
    .expect("written");
    let out = run(Command::new(&promtool)
        .arg("check")
        .arg("config")
        .arg(&local_path));
    assert!(
        out.contains(&format!("{} rule files found", expected.len())),
        "{out}"
    );
    // Grafana: the datasource points at the stack's Prometheus and the dashboard provider at
    // the folder the dashboards are mounted in.
    let ds_dir = host_path(&mounts, "grafana", "/etc/grafana/provisioning/datasources");
    let ds: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(ds_dir.join("prometheus.yml")).expect("datasource file"),
    )
    .expect("YAML");
    assert_eq!(
        ds["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    assert_eq!(ds["datasources"][0]["type"].as_str(), Some("prometheus"));
    let dash_dir = host_path(&mounts, "grafana", "/etc/grafana/provisioning/dashboards");
    let provider: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(dash_dir.join("firehose.yml")).expect("dashboard provider"),
    )
    .expect("YAML");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert!(
        host_path(&mounts, "grafana", path)
            .join("firehose.json")
            .is_file(),
        "the provider's folder holds the dashboard"
    );
}
