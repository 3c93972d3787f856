//! Reads the service's own counters from its Prometheus `/metrics` endpoint (the same way in
//! process and with `--separate-process`): messages received, processed and shed, and the
//! store's `firehose_store_rows_written_total` when the service exports it.

use std::net::SocketAddr;
use std::time::Duration;

/// Totals read from one scrape.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ServiceCounts {
    pub received: u64,
    pub processed: u64,
    pub shed: u64,
    /// `None` when the metric is absent.
    pub store_rows_written: Option<u64>,
    /// Replies or moderation the service did not send (`outbound_dropped` + `helix_dropped`),
    /// apart from the coalesced ones.
    pub actions_dropped: u64,
    /// Moderation actions a harsher one stood for (`helix_dropped{reason="merged"|
    /// "superseded"}`): their messages were removed by it, nothing was lost.
    pub actions_coalesced: u64,
    /// Helix calls that finished `failed`.
    pub helix_failed: u64,
}

/// The sum of every sample of `name` (all label sets); `None` if no sample has that name.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = true;
            sum += value;
        }
    }
    found.then_some(sum)
}

/// Parses the counters out of a `/metrics` text.
pub fn parse(text: &str) -> ServiceCounts {
    let count = |name: &str| metric_sum(text, name).unwrap_or(0.0) as u64;
    ServiceCounts {
        received: count("firehose_messages_received_total"),
        processed: count("firehose_messages_processed_total"),
        shed: count("firehose_messages_shed_total"),
        store_rows_written: metric_sum(text, "firehose_store_rows_written_total").map(|v| v as u64),
        actions_dropped: (count("firehose_outbound_dropped_total")
            + count("firehose_helix_dropped_total"))
        .saturating_sub(coalesced(text)),
        actions_coalesced: coalesced(text),
        helix_failed: text
            .lines()
            .filter(|l| {
                l.starts_with("firehose_helix_requests_total{") && l.contains("outcome=\"failed\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    }
}

/// Helix actions dropped because a harsher one stood for them.
fn coalesced(text: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.starts_with("firehose_helix_dropped_total{")
                && (l.contains("reason=\"merged\"") || l.contains("reason=\"superseded\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A client for one service's `/metrics`.
#[derive(Clone)]
pub struct Scraper {
    client: reqwest::Client,
    url: String,
}

impl Scraper {
    pub fn new(http: SocketAddr) -> anyhow::Result<Scraper> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()?;
        Ok(Scraper {
            client,
            url: format!("http://{http}/metrics"),
        })
    }

    pub async fn scrape(&self) -> anyhow::Result<ServiceCounts> {
        let text = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_label_sets_and_absent_ones_are_none() {
        let text = "# HELP firehose_messages_processed Chat\n\
            firehose_messages_processed_total{platform=\"twitch\",channel=\"a\"} 3\n\
            firehose_messages_processed_total{platform=\"twitch\",channel=\"b\"} 4\n\
            firehose_messages_shed_total{channel=\"a\",reason=\"full\"} 2\n\
            firehose_messages_received_total 9\n";
        let c = parse(text);
        assert_eq!((c.received, c.processed, c.shed), (9, 7, 2));
        assert_eq!(c.store_rows_written, None);
        let with_store = format!("{text}firehose_store_rows_written_total 14\n");
        assert_eq!(parse(&with_store).store_rows_written, Some(14));
        let drops = "firehose_outbound_dropped_total{reason=\"expired\"} 2\n\
            firehose_helix_dropped_total{reason=\"queue_full\"} 1\n\
            firehose_helix_dropped_total{reason=\"superseded\"} 4\n\
            firehose_helix_dropped_total{reason=\"merged\"} 6\n\
            firehose_helix_requests_total{action=\"ban\",outcome=\"failed\"} 5\n\
            firehose_helix_requests_total{action=\"ban\",outcome=\"ok\"} 9\n";
        let c = parse(drops);
        assert_eq!((c.actions_dropped, c.helix_failed), (3, 5));
        assert_eq!(c.actions_coalesced, 10);
    }
}
