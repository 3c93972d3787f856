//! The moderation log: every action with its outcome, kept in a bounded in-memory ring and,
//! when configured, appended to a JSON-lines file.
//!
//! The file is written by its own task fed through a bounded channel, so recording an entry
//! never blocks or does file I/O on the caller; an entry that does not fit is counted in
//! `helix_log_file_errors_total` (it is still in the in-memory ring).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::HelixMetrics;

/// Entries waiting for the file writer.
const FILE_QUEUE: usize = 4_096;

/// One moderation action and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModerationLogEntry {
    /// Unix time of the outcome, in milliseconds.
    pub at_ms: u64,
    pub channel: String,
    /// `delete`, `timeout`, `ban` or `unban`.
    pub action: String,
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    pub duration_s: Option<u64>,
    pub reason: Option<String>,
    pub rule: String,
    /// `ok`, `failed: <why>` or `dropped: <why>`.
    pub outcome: String,
    /// HTTP calls made (0 when dropped before sending).
    pub attempts: u32,
    /// From the chat message's arrival (or the submission) to the outcome.
    pub latency_ms: Option<u64>,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The in-memory ring plus the sender to the file writer.
#[derive(Debug)]
pub struct ModerationLog {
    ring: Mutex<VecDeque<ModerationLogEntry>>,
    capacity: usize,
    file: Option<mpsc::Sender<ModerationLogEntry>>,
    metrics: HelixMetrics,
}

impl ModerationLog {
    /// A log without a file; see [`ModerationLog::with_file`].
    pub fn new(capacity: usize, metrics: HelixMetrics) -> ModerationLog {
        ModerationLog {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1_024))),
            capacity: capacity.max(1),
            file: None,
            metrics,
        }
    }

    /// A log that also appends to `path`; the returned writer must be run by the caller.
    pub fn with_file(
        capacity: usize,
        metrics: HelixMetrics,
        path: &Path,
    ) -> (ModerationLog, FileWriter) {
        let (tx, rx) = mpsc::channel(FILE_QUEUE);
        let mut log = ModerationLog::new(capacity, metrics.clone());
        log.file = Some(tx);
        let writer = FileWriter {
            path: path.to_path_buf(),
            rx,
            metrics,
        };
        (log, writer)
    }

    pub fn record(&self, entry: ModerationLogEntry) {
        tracing::info!(
            channel = %entry.channel,
            action = %entry.action,
            user_id = ?entry.user_id,
            message_id = ?entry.message_id,
            rule = %entry.rule,
            outcome = %entry.outcome,
            attempts = entry.attempts,
            "moderation"
        );
        if let Some(file) = &self.file {
            if file.try_send(entry.clone()).is_err() {
                self.metrics.log_file_errors.inc();
            }
        }
        if let Ok(mut ring) = self.ring.lock() {
            if ring.len() >= self.capacity {
                ring.pop_front();
            }
            ring.push_back(entry);
        }
    }

    /// Everything kept, newest last.
    pub fn entries(&self) -> Vec<ModerationLogEntry> {
        self.ring
            .lock()
            .map(|ring| ring.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Appends entries to the JSON-lines file until stopped, then writes what is left and flushes.
#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    rx: mpsc::Receiver<ModerationLogEntry>,
    metrics: HelixMetrics,
}

impl FileWriter {
    pub async fn run(mut self, stop: CancellationToken) {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await;
        let mut file = match file {
            Ok(f) => tokio::io::BufWriter::new(f),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot open the moderation log file");
                self.discard(stop).await;
                return;
            }
        };
        loop {
            tokio::select! {
                biased;
                entry = self.rx.recv() => match entry {
                    Some(entry) => self.write(&mut file, &entry).await,
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
            if self.rx.is_empty() {
                self.flush(&mut file).await;
            }
        }
        while let Ok(entry) = self.rx.try_recv() {
            self.write(&mut file, &entry).await;
        }
        self.flush(&mut file).await;
    }

    async fn write(
        &self,
        file: &mut tokio::io::BufWriter<tokio::fs::File>,
        entry: &ModerationLogEntry,
    ) {
        let mut line = match serde_json::to_vec(entry) {
            Ok(line) => line,
            Err(_) => {
                self.metrics.log_file_errors.inc();
                return;
            }
        };
        line.push(b'\n');
        if file.write_all(&line).await.is_err() {
            self.metrics.log_file_errors.inc();
        }
    }

    async fn flush(&self, file: &mut tokio::io::BufWriter<tokio::fs::File>) {
        if let Err(e) = file.flush().await {
            self.metrics.log_file_errors.inc();
            tracing::warn!(path = %self.path.display(), error = %e, "moderation log flush failed");
        }
    }

    /// Without a file, entries are counted as not written until the writer is stopped.
    async fn discard(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                entry = self.rx.recv() => match entry {
                    Some(_) => {
                        self.metrics.log_file_errors.inc();
                    }
                    None => return,
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> ModerationLogEntry {
        ModerationLogEntry {
            at_ms: n,
            channel: "c".into(),
            action: "ban".into(),
            user_id: Some(n.to_string()),
            message_id: None,
            duration_s: None,
            reason: None,
            rule: "r".into(),
            outcome: "ok".into(),
            attempts: 1,
            latency_ms: Some(1),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_entries_last() {
        let metrics = HelixMetrics::register(&mut prometheus_client::registry::Registry::default());
        let log = ModerationLog::new(3, metrics);
        for n in 0..5 {
            log.record(entry(n));
        }
        let kept: Vec<u64> = log.entries().iter().map(|e| e.at_ms).collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }
}
