//! The declared SLO file (`deploy/slo.yaml`): its shape, loading and validation.
//!
//! Everything that states an SLO number takes it from here: the generator (`generate.rs`)
//! renders the Prometheus rules and the runbook's numbers from a [`SloFile`], and the checks in
//! `tests/deploy.rs` compare the bench scenarios and the stack's config with it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    pub version: u32,
    pub runbook_url: String,
    pub window: String,
    pub burn_rates: Vec<BurnRate>,
    pub slos: Slos,
    pub alerts: BTreeMap<String, AlertParams>,
    pub bench: BTreeMap<String, Vec<BenchObjective>>,
}

/// One pair of windows of multi-window, multi-burn-rate alerting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRate {
    pub name: String,
    pub long: String,
    pub short: String,
    pub factor: f64,
    #[serde(rename = "for")]
    pub for_: String,
    pub severity: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slos {
    pub availability: Objective,
    pub reply_latency: Objective,
    pub moderation_latency: Objective,
    pub store_lag: Objective,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub objective: f64,
    #[serde(default)]
    pub threshold_seconds: Option<f64>,
}

impl Objective {
    /// The error budget: the share of events (or time) allowed to miss.
    pub fn budget(&self) -> f64 {
        round(1.0 - self.objective)
    }

    pub fn threshold(&self, name: &str) -> f64 {
        match self.threshold_seconds {
            Some(t) => t,
            None => panic!("deploy/slo.yaml: slos.{name} needs threshold_seconds"),
        }
    }
}

/// Parameters of an alert that is not a budget burn.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    #[serde(rename = "for")]
    pub for_: String,
    pub severity: String,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub window: Option<String>,
}

impl AlertParams {
    pub fn threshold(&self, name: &str) -> f64 {
        match self.threshold {
            Some(t) => t,
            None => panic!("deploy/slo.yaml: alerts.{name} needs a threshold"),
        }
    }

    pub fn window(&self, name: &str) -> &str {
        match &self.window {
            Some(w) => w,
            None => panic!("deploy/slo.yaml: alerts.{name} needs a window"),
        }
    }
}

/// One `[[slo]]` of a bench scenario: a number, or the name of the SLO whose threshold it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchObjective {
    pub metric: String,
    #[serde(default)]
    pub max: Option<BenchValue>,
    #[serde(default)]
    pub min: Option<BenchValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BenchValue {
    Number(f64),
    Slo(String),
}

impl SloFile {
    pub fn load(path: &Path) -> SloFile {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let file: SloFile = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a valid SLO file: {e}", path.display()));
        file.validate();
        file
    }

    fn validate(&self) {
        assert_eq!(self.version, 1, "deploy/slo.yaml: version must be 1");
        seconds(&self.window);
        for b in &self.burn_rates {
            assert!(b.factor > 0.0, "burn rate {}: factor must be > 0", b.name);
            assert!(
                seconds(&b.short) < seconds(&b.long),
                "burn rate {}: the short window must be shorter than the long one",
                b.name
            );
            seconds(&b.for_);
            severity(&b.severity);
        }
        for (name, slo) in self.slo_list() {
            assert!(
                slo.objective > 0.0 && slo.objective < 1.0,
                "slos.{name}.objective must be between 0 and 1"
            );
        }
        for alert in self.alerts.values() {
            seconds(&alert.for_);
            severity(&alert.severity);
            if let Some(w) = &alert.window {
                seconds(w);
            }
        }
    }

    pub fn slo_list(&self) -> [(&'static str, &Objective); 4] {
        [
            ("availability", &self.slos.availability),
            ("reply_latency", &self.slos.reply_latency),
            ("moderation_latency", &self.slos.moderation_latency),
            ("store_lag", &self.slos.store_lag),
        ]
    }

    pub fn slo(&self, name: &str) -> &Objective {
        match self.slo_list().into_iter().find(|(n, _)| *n == name) {
            Some((_, slo)) => slo,
            None => panic!("deploy/slo.yaml: no SLO named `{name}`"),
        }
    }

    pub fn alert(&self, name: &str) -> &AlertParams {
        self.alerts
            .get(name)
            .unwrap_or_else(|| panic!("deploy/slo.yaml: alerts.{name} is missing"))
    }

    /// Every window a burn-rate alert uses, shortest first.
    pub fn windows(&self) -> Vec<String> {
        let mut windows: Vec<String> = self
            .burn_rates
            .iter()
            .flat_map(|b| [b.long.clone(), b.short.clone()])
            .collect();
        windows.sort_by_key(|w| seconds(w));
        windows.dedup();
        windows
    }
}

/// A Prometheus duration (`5m`, `1h`, `3d`; one unit) in seconds.
pub fn seconds(duration: &str) -> u64 {
    let split = duration
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or_else(|| panic!("duration `{duration}` has no unit"));
    let (n, unit) = duration.split_at(split);
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("duration `{duration}`: bad number"));
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => panic!("duration `{duration}`: unit must be s, m, h, d or w"),
    };
    n * unit
}

fn severity(s: &str) {
    assert!(
        ["page", "ticket"].contains(&s),
        "severity `{s}` must be page or ticket"
    );
}

/// Rounds away binary noise (1 - 0.999 = 0.0010000000000000009).
pub fn round(x: f64) -> f64 {
    let scale = 1e12;
    (x * scale).round() / scale
}

/// A number as a human writes it: `0.001`, `14.4`, `30`.
pub fn num(x: f64) -> String {
    let x = round(x);
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A share as a percentage: `99.9 %`.
pub fn pct(x: f64) -> String {
    format!("{} %", num(x * 100.0))
}
