//! The moderation log: every action with its outcome, kept in a bounded in-memory ring and,
//! when configured, appended to a JSON-lines file.
//!
//! The file is written by its own task fed through a bounded channel, so recording an entry
//! never blocks or does file I/O on the caller; an entry that does not fit is counted in
//! `helix_log_file_errors_total` (it is still in the in-memory ring).
//!
//! [`ModerationLog::forget_user`] removes one user's entries from both (an operator deleting
//! their data): the ring at once, the file by its writer task, which rewrites it without them
//! (into a temporary file renamed over it) between two entries.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
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

/// What the file writer is asked to do.
#[derive(Debug)]
enum FileJob {
    Entry(ModerationLogEntry),
    /// Rewrite the file without this user's entries; reply with how many went.
    Forget {
        user_id: String,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// What [`ModerationLog::forget_user`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ForgottenLog {
    /// Entries of the in-memory ring.
    pub in_memory: u64,
    /// Lines of the log file (`None`: no file configured).
    pub file: Option<u64>,
    /// Why the file could not be rewritten, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_error: Option<String>,
}

/// The in-memory ring plus the sender to the file writer.
#[derive(Debug)]
pub struct ModerationLog {
    ring: Mutex<VecDeque<ModerationLogEntry>>,
    capacity: usize,
    file: Option<mpsc::Sender<FileJob>>,
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
            if file.try_send(FileJob::Entry(entry.clone())).is_err() {
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

    /// Removes `user_id`'s entries from the ring and, when there is one, the file.
    pub async fn forget_user(&self, user_id: &str) -> ForgottenLog {
        let mut forgotten = ForgottenLog::default();
        if let Ok(mut ring) = self.ring.lock() {
            let before = ring.len();
            ring.retain(|e| e.user_id.as_deref() != Some(user_id));
            forgotten.in_memory = (before - ring.len()) as u64;
        }
        let Some(file) = &self.file else {
            return forgotten;
        };
        let (reply, answer) = oneshot::channel();
        let job = FileJob::Forget {
            user_id: user_id.to_string(),
            reply,
        };
        let result = match file.send(job).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err("the log file writer stopped".to_string())),
            Err(_) => Err("the log file writer stopped".to_string()),
        };
        match result {
            Ok(n) => forgotten.file = Some(n),
            Err(e) => forgotten.file_error = Some(e),
        }
        forgotten
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
    rx: mpsc::Receiver<FileJob>,
    metrics: HelixMetrics,
}

impl FileWriter {
    async fn open(&self) -> std::io::Result<tokio::fs::File> {
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
    }

    pub async fn run(mut self, stop: CancellationToken) {
        let file = self.open().await;
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
                job = self.rx.recv() => match job {
                    Some(FileJob::Entry(entry)) => self.write(&mut file, &entry).await,
                    Some(FileJob::Forget { user_id, reply }) => {
                        self.flush(&mut file).await;
                        let result = self.rewrite_without(&user_id).await;
                        // Appending goes on to the file now at the path (the rewritten one).
                        match self.open().await {
                            Ok(reopened) => file = tokio::io::BufWriter::new(reopened),
                            Err(e) => {
                                self.metrics.log_file_errors.inc();
                                tracing::error!(path = %self.path.display(), error = %e, "cannot reopen the moderation log file");
                            }
                        }
                        let _ = reply.send(result.map_err(|e| {
                            format!("rewriting {}: {e}", self.path.display())
                        }));
                    }
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
            if self.rx.is_empty() {
                self.flush(&mut file).await;
            }
        }
        while let Ok(job) = self.rx.try_recv() {
            match job {
                FileJob::Entry(entry) => self.write(&mut file, &entry).await,
                FileJob::Forget { reply, .. } => {
                    let _ = reply.send(Err("the log file writer is stopping".to_string()));
                }
            }
        }
        self.flush(&mut file).await;
    }

    /// Writes the file again without `user_id`'s lines (a temporary file renamed over it);
    /// returns how many went. Lines that are not entries are kept as they are.
    async fn rewrite_without(&self, user_id: &str) -> std::io::Result<u64> {
        use tokio::io::AsyncBufReadExt;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".rewrite");
        let tmp = PathBuf::from(tmp);
        let input = tokio::fs::File::open(&self.path).await?;
        let mut lines = tokio::io::BufReader::new(input).lines();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&tmp).await?);
        let mut removed = 0;
        while let Some(line) = lines.next_line().await? {
            let theirs = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .is_some_and(|v| v.get("user_id").and_then(|u| u.as_str()) == Some(user_id));
            if theirs {
                removed += 1;
                continue;
            }
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
        out.get_ref().sync_all().await?;
        tokio::fs::rename(&tmp, &self.path).await?;
        Ok(removed)
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
                job = self.rx.recv() => match job {
                    Some(FileJob::Entry(_)) => {
                        self.metrics.log_file_errors.inc();
                    }
                    Some(FileJob::Forget { reply, .. }) => {
                        let _ = reply.send(Err("the log file could not be opened".to_string()));
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

    /// Deleting a user's data: their entries leave the ring and the file; later entries are
    /// appended to the rewritten file.
    #[tokio::test]
    async fn a_forgotten_user_leaves_the_ring_and_the_file() {
        let metrics = HelixMetrics::register(&mut prometheus_client::registry::Registry::default());
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("moderation.jsonl");
        let (log, writer) = ModerationLog::with_file(10, metrics, &path);
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer.run(stop.clone()));
        let with_user = |at: u64, user: &str| ModerationLogEntry {
            user_id: Some(user.to_string()),
            ..entry(at)
        };
        for (at, user) in [(1, "7"), (2, "8"), (3, "7")] {
            log.record(with_user(at, user));
        }
        let forgotten = log.forget_user("7").await;
        assert_eq!(
            forgotten,
            ForgottenLog {
                in_memory: 2,
                file: Some(2),
                file_error: None
            }
        );
        let users: Vec<Option<String>> = log.entries().into_iter().map(|e| e.user_id).collect();
        assert_eq!(users, vec![Some("8".to_string())]);
        log.record(with_user(4, "9"));
        stop.cancel();
        task.await.expect("writer");
        let text = std::fs::read_to_string(&path).expect("file");
        let ats: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["at_ms"]
                    .as_u64()
                    .expect("at")
            })
            .collect();
        assert_eq!(ats, vec![2, 4], "{text}");
        assert!(!text.contains("\"user_id\":\"7\""));
    }
}
