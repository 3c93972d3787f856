//! Unit tests of the write-behind writer against the embedded store (in memory), wrapped in
//! a store that fails on demand: before writing, or *after* writing (the write landed but
//! the caller saw an error, the case that double-counts with non-idempotent writes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::embedded::EmbeddedStore;
use super::model::{counter, ChannelWrite, LeaseOutcome, ModerationEntry, StoredChannel};
use super::model::{ForgottenRows, UserRow, WarningRow};
use super::writer::{message_change, Change, StoreHandle, WriterConfig};
use super::{StateStore, StoreError, StoreResult};
use crate::config::StoreConfig;
use crate::engine::ChannelRules;

/// The embedded store with switches.
struct Flaky {
    inner: EmbeddedStore,
    fail_before_write: AtomicBool,
    fail_after_write: AtomicBool,
    fail_loads: AtomicBool,
    /// The write lands, then the store panics (a driver bug, say).
    panic_after_write: AtomicBool,
    /// Each write waits this long (ms) before it lands.
    write_delay_ms: AtomicU64,
    writes: AtomicU64,
    /// Writes begun (landed or not).
    writes_started: AtomicU64,
}

impl Flaky {
    fn new() -> Arc<Flaky> {
        let inner = EmbeddedStore::open(&StoreConfig::default()).expect("in-memory store");
        Arc::new(Flaky {
            inner,
            fail_before_write: AtomicBool::new(false),
            fail_after_write: AtomicBool::new(false),
            fail_loads: AtomicBool::new(false),
            panic_after_write: AtomicBool::new(false),
            write_delay_ms: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            writes_started: AtomicU64::new(0),
        })
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("switched off by the test".into())
}

impl StateStore for Flaky {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    fn migrate(&self) -> BoxFuture<'_, StoreResult<Vec<u32>>> {
        self.inner.migrate()
    }
    fn schema_version(&self) -> BoxFuture<'_, StoreResult<u32>> {
        self.inner.schema_version()
    }
    fn load_channel<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, StoreResult<StoredChannel>> {
        Box::pin(async move {
            if self.fail_loads.load(Ordering::SeqCst) {
                return Err(down());
            }
            self.inner.load_channel(channel).await
        })
    }
    fn load_users<'a>(
        &'a self,
        channel: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<UserRow>>> {
        Box::pin(async move {
            if self.fail_loads.load(Ordering::SeqCst) {
                return Err(down());
            }
            self.inner.load_users(channel, user_ids).await
        })
    }
    fn write<'a>(&'a self, write: &'a ChannelWrite) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.writes_started.fetch_add(1, Ordering::SeqCst);
            if self.fail_before_write.load(Ordering::SeqCst) {
                return Err(down());
            }
            let delay = self.write_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let rows = self.inner.write(write).await?;
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.panic_after_write.load(Ordering::SeqCst) {
                panic!("the store panicked after writing (test)");
            }
            if self.fail_after_write.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("timed out (but landed)".into()));
            }
            Ok(rows)
        })
    }
    fn moderation_log<'a>(
        &'a self,
        channel: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<ModerationEntry>>> {
        self.inner.moderation_log(channel, limit)
    }
    fn acquire_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<LeaseOutcome>> {
        self.inner.acquire_lease(channel, owner, ttl)
    }
    fn release_lease<'a>(
        &'a self,
        channel: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.inner.release_lease(channel, owner)
    }
    fn get_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<String>>> {
        self.inner.get_state(scope, key)
    }
    fn put_state<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.inner.put_state(scope, key, value)
    }
    fn delete_state<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.inner.delete_state(scope, key)
    }
    fn list_state<'a>(
        &'a self,
        scope: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, String)>>> {
        self.inner.list_state(scope)
    }
    fn forget_user<'a>(
        &'a self,
        platform: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ForgottenRows>> {
        self.inner.forget_user(platform, user_id)
    }
}

fn config() -> WriterConfig {
    let mut c = WriterConfig::from_config(&StoreConfig::default());
    c.flush_interval = Duration::from_secs(3600); // flushes only when a test asks
    c.retry_backoff = Duration::from_millis(5);
    c.retry_backoff_max = Duration::from_millis(20);
    c
}

async fn started(config: WriterConfig) -> (Arc<Flaky>, StoreHandle) {
    let store = Flaky::new();
    store.migrate().await.expect("migrate");
    let (handle, _task) = StoreHandle::start(Arc::clone(&store) as Arc<dyn StateStore>, config);
    (store, handle)
}

fn channel() -> Arc<str> {
    Arc::from("twitch:chan")
}

/// A rules edit from `base` to `rules`.
fn edit(base: &ChannelRules, rules: ChannelRules) -> Change {
    Change::Rules {
        base: Arc::new(base.clone()),
        rules: Arc::new(rules),
    }
}

fn message(user: &str) -> Vec<Change> {
    vec![message_change(user, user, 1_000)]
}

async fn stored(store: &Flaky) -> StoredChannel {
    store.inner.load_channel("twitch:chan").await.expect("load")
}

#[tokio::test]
async fn coalesces_many_changes_into_few_rows() {
    let (store, handle) = started(config()).await;
    for i in 0..1_000 {
        handle
            .submit(&channel(), message(&format!("u{}", i % 10)))
            .await;
    }
    handle.flush().await.expect("flush");
    // 1 channel counter + 10 users, however many messages.
    assert_eq!(handle.status.rows_written.load(Ordering::Relaxed), 11);
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 1_000);
    let users = store
        .inner
        .load_users("twitch:chan", &["u3".to_string()])
        .await
        .expect("users");
    assert_eq!(users[0].messages, 100);
}

#[tokio::test]
async fn a_write_that_landed_but_failed_is_not_counted_twice() {
    let (store, handle) = started(config()).await;
    for _ in 0..5 {
        handle.submit(&channel(), message("alice")).await;
    }
    store.fail_after_write.store(true, Ordering::SeqCst);
    assert!(handle.flush().await.is_err(), "the flush saw an error");
    assert!(handle.status.failing.load(Ordering::Relaxed));
    store.fail_after_write.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        handle.submit(&channel(), message("alice")).await;
    }
    handle.flush().await.expect("retry");
    assert!(store.writes.load(Ordering::SeqCst) >= 2, "written twice");
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 7);
    let users = store
        .inner
        .load_users("twitch:chan", &["alice".to_string()])
        .await
        .expect("users");
    assert_eq!(users[0].messages, 7);
    assert!(!handle.status.failing.load(Ordering::Relaxed));
}

#[tokio::test]
async fn failed_flushes_keep_changes_and_retry_until_written() {
    let (store, handle) = started(config()).await;
    store.fail_before_write.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        handle.submit(&channel(), message("bob")).await;
    }
    assert!(handle.flush().await.is_err());
    assert!(handle.status.degraded_reason().is_some());
    handle.submit(&channel(), message("bob")).await;
    store.fail_before_write.store(false, Ordering::SeqCst);
    handle.flush().await.expect("flush after recovery");
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 4);
    assert!(handle.status.flushes_failed.load(Ordering::Relaxed) >= 1);
    assert_eq!(handle.status.pending_keys.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_load_sees_the_store_plus_what_is_pending() {
    let (store, handle) = started(config()).await;
    handle
        .submit(
            &channel(),
            vec![Change::Counter {
                name: "count:deaths".into(),
                delta: 2,
            }],
        )
        .await;
    handle.flush().await.expect("flush");
    store.fail_before_write.store(true, Ordering::SeqCst);
    handle
        .submit(
            &channel(),
            vec![
                Change::Counter {
                    name: "count:deaths".into(),
                    delta: 3,
                },
                Change::Warning(WarningRow {
                    filter: "caps".into(),
                    user_id: "u1".into(),
                    expires_ms: i64::MAX,
                }),
            ],
        )
        .await;
    let loaded = handle.load(&channel()).await.expect("load");
    assert_eq!(loaded.counters["count:deaths"], 5, "2 stored + 3 pending");
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(stored(&store).await.counters["count:deaths"], 2);
}

#[tokio::test]
async fn a_full_writer_makes_submitters_wait_and_loses_nothing() {
    let mut c = config();
    c.flush_max_keys = 4;
    c.max_pending_keys = 4;
    c.queue_capacity = 2;
    let (store, handle) = started(c).await;
    store.fail_before_write.store(true, Ordering::SeqCst);
    let submitter = {
        let handle = handle.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                handle.submit(&channel(), message(&format!("u{i}"))).await;
            }
        })
    };
    // The writer holds at most its bound; the submitter is stuck waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.status.submit_waits.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!submitter.is_finished());
    assert!(handle.status.full.load(Ordering::Relaxed));
    store.fail_before_write.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), submitter)
        .await
        .expect("submitter finishes once the store is back")
        .expect("no panic");
    handle.flush().await.expect("flush");
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 50);
    assert_eq!(handle.status.changes_refused.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn shutdown_writes_everything_pending() {
    let (store, handle) = started(config()).await;
    handle.submit(&channel(), message("carol")).await;
    let rules = ChannelRules::default();
    handle
        .submit(&channel(), vec![edit(&ChannelRules::default(), rules)])
        .await;
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
    let s = stored(&store).await;
    assert_eq!(s.counters[counter::MESSAGES], 1);
    assert_eq!(s.rules.len(), 1, "the settings row of empty rules");
    // After shutdown nothing is taken silently: it is counted as refused.
    handle.submit(&channel(), message("late")).await;
    assert_eq!(handle.status.changes_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_rules_edit_deletes_removed_items() {
    let (store, handle) = started(config()).await;
    let with_two: ChannelRules = toml::from_str(
        r#"
        [[commands]]
        name = "!a"
        response = "a"
        [[commands]]
        name = "!b"
        response = "b"
        "#,
    )
    .expect("rules");
    handle
        .submit(
            &channel(),
            vec![edit(&ChannelRules::default(), with_two.clone())],
        )
        .await;
    handle.flush().await.expect("flush");
    assert_eq!(stored(&store).await.rules.len(), 3);
    let mut with_one = with_two.clone();
    with_one.commands.retain(|c| c.name == "!a");
    handle
        .submit(&channel(), vec![edit(&with_two, with_one)])
        .await;
    handle.flush().await.expect("flush");
    let s = stored(&store).await;
    let names: Vec<&str> = s.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["!a", "channel"]);
    let rules = s.channel_rules().expect("valid").expect("some");
    assert_eq!(rules.commands.len(), 1);
}

#[tokio::test]
async fn a_failed_load_is_an_error_not_empty_state() {
    let (store, handle) = started(config()).await;
    store.fail_loads.store(true, Ordering::SeqCst);
    assert!(handle.load(&channel()).await.is_err());
    assert_eq!(handle.status.load_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn chat_stats_wait_for_their_own_interval() {
    // Per-user stats and the channel's message count wait for the user stats interval; a
    // named counter changed alongside goes on the short one.
    let mut c = config();
    c.flush_interval = Duration::from_millis(20);
    c.user_flush_interval = Duration::from_secs(3600);
    let (store, handle) = started(c).await;
    for _ in 0..3 {
        handle.submit(&channel(), message("dave")).await;
    }
    handle
        .submit(&channel(), vec![counter_change("deaths", 1)])
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored(&store).await.counters.get("deaths") != Some(&1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counters never flushed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dave = ["dave".to_string()];
    let users = || store.inner.load_users("twitch:chan", &dave);
    assert!(users().await.expect("users").is_empty(), "user stats wait");
    assert!(
        !stored(&store)
            .await
            .counters
            .contains_key(counter::MESSAGES),
        "the message count waits with them"
    );
    // Once the writer has taken the flush's result, only the chat stats are pending: the
    // user's row and the message count.
    while handle.status.pending_keys.load(Ordering::Relaxed) != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending keys never settled at 2"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        users().await.expect("users").is_empty(),
        "user stats still wait"
    );
    // A load still sees nothing lost; an explicit flush (or SIGTERM) writes them.
    assert_eq!(
        handle.load(&channel()).await.expect("load").counters[counter::MESSAGES],
        3
    );
    handle.flush().await.expect("flush");
    assert_eq!(users().await.expect("users")[0].messages, 3);
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 3);
}

fn counter_change(name: &str, delta: i64) -> Change {
    Change::Counter {
        name: name.into(),
        delta,
    }
}

async fn users(store: &Flaky, id: &str) -> Vec<UserRow> {
    store
        .inner
        .load_users("twitch:chan", &[id.to_string()])
        .await
        .expect("users")
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_load_never_waits_behind_a_flush_with_nothing_to_write() {
    // Flushes are due every millisecond, chat stats only hourly: with nothing but a user's
    // stats and the message count pending, every due flush is empty. Loads must still be answered at once.
    let mut c = config();
    c.flush_interval = Duration::from_millis(1);
    c.user_flush_interval = Duration::from_secs(3600);
    let (store, handle) = started(c).await;
    handle.submit(&channel(), message("erin")).await;
    handle
        .submit(&channel(), vec![counter_change("deaths", 1)])
        .await;
    eventually("the counters flushed", || {
        handle.status.flushes_ok.load(Ordering::Relaxed) >= 1
            && handle.status.pending_keys.load(Ordering::Relaxed) == 2
    })
    .await;
    for attempt in 0..50 {
        let loaded = tokio::time::timeout(Duration::from_secs(2), handle.load(&channel()))
            .await
            .unwrap_or_else(|_| panic!("load {attempt} waited behind an empty flush"))
            .expect("load");
        assert_eq!(loaded.counters[counter::MESSAGES], 1);
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    assert!(
        users(&store, "erin").await.is_empty(),
        "user stats still wait"
    );
}

#[tokio::test]
async fn an_edit_made_on_rules_that_were_never_loaded_keeps_the_stored_items() {
    let (store, handle) = started(config()).await;
    let stored_rules: ChannelRules = toml::from_str(
        r#"
        [[commands]]
        name = "!a"
        response = "a"
        [[commands]]
        name = "!b"
        response = "b"
        "#,
    )
    .expect("rules");
    handle
        .submit(
            &channel(),
            vec![edit(&ChannelRules::default(), stored_rules)],
        )
        .await;
    handle.flush().await.expect("flush");
    // A later process (a fresh writer) edits the rules file's version, which never saw !a, !b:
    // the channel could not load its stored state in time.
    let (handle2, _task) = StoreHandle::start(Arc::clone(&store) as Arc<dyn StateStore>, config());
    let file: ChannelRules =
        toml::from_str("[[commands]]\nname = \"!c\"\nresponse = \"c\"").expect("rules");
    let mut edited = file.clone();
    edited.commands.push(
        toml::from_str::<ChannelRules>("[[commands]]\nname = \"!d\"\nresponse = \"d\"")
            .expect("rules")
            .commands
            .remove(0),
    );
    handle2.submit(&channel(), vec![edit(&file, edited)]).await;
    let loaded = handle2.load(&channel()).await.expect("load");
    let names = |rules: &ChannelRules| -> Vec<String> {
        let mut names: Vec<String> = rules.commands.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names
    };
    let view = loaded.channel_rules().expect("valid").expect("some");
    assert_eq!(names(&view), ["!a", "!b", "!d"], "the load's view");
    handle2.flush().await.expect("flush");
    let kept = stored(&store)
        .await
        .channel_rules()
        .expect("valid")
        .expect("some");
    assert_eq!(
        names(&kept),
        ["!a", "!b", "!d"],
        "stored items the edit never saw stay"
    );
}

#[tokio::test]
async fn the_first_stored_rules_are_written_whole() {
    let (store, handle) = started(config()).await;
    let file: ChannelRules =
        toml::from_str("[[commands]]\nname = \"!c\"\nresponse = \"c\"").expect("rules");
    let mut edited = file.clone();
    edited.regulars.push("bob".into());
    handle
        .submit(&channel(), vec![edit(&file, edited.clone())])
        .await;
    handle.flush().await.expect("flush");
    let kept = stored(&store).await.channel_rules().expect("valid");
    assert_eq!(
        kept,
        Some(edited),
        "the file's items are stored with the edit"
    );
}

#[tokio::test]
async fn a_panic_after_a_write_landed_does_not_count_twice() {
    let (store, handle) = started(config()).await;
    for _ in 0..5 {
        handle.submit(&channel(), message("frank")).await;
    }
    handle
        .submit(&channel(), vec![counter_change("count:deaths", 3)])
        .await;
    // First-time keys: no base known yet. The write lands, then the store panics.
    store.panic_after_write.store(true, Ordering::SeqCst);
    assert!(handle.flush().await.is_err(), "the flush saw the panic");
    assert_eq!(store.writes.load(Ordering::SeqCst), 1, "it landed");
    store.panic_after_write.store(false, Ordering::SeqCst);
    handle.submit(&channel(), message("frank")).await;
    handle.flush().await.expect("retry");
    let s = stored(&store).await;
    assert_eq!(s.counters[counter::MESSAGES], 6);
    assert_eq!(s.counters["count:deaths"], 3);
    assert_eq!(users(&store, "frank").await[0].messages, 6);
    // The writer lives on.
    handle.submit(&channel(), message("frank")).await;
    handle.flush().await.expect("later flush");
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 7);
}

#[tokio::test]
async fn a_flush_asked_for_during_the_last_flush_is_answered() {
    let mut c = config();
    c.flush_interval = Duration::from_millis(5);
    c.user_flush_interval = Duration::from_millis(5);
    let (store, handle) = started(c).await;
    store.write_delay_ms.store(300, Ordering::SeqCst);
    handle.submit(&channel(), message("gina")).await;
    // The periodic flush takes everything and is slow; a flush request arrives meanwhile, and
    // then no change ever comes again.
    eventually("a flush is in flight", || {
        handle.status.pending_keys.load(Ordering::Relaxed) > 0
            && store.writes.load(Ordering::SeqCst) == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let flushed = tokio::time::timeout(Duration::from_secs(5), handle.flush()).await;
    assert!(
        matches!(flushed, Ok(Ok(()))),
        "the flush request was answered: {flushed:?}"
    );
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 1);
}

#[tokio::test]
async fn a_removed_command_takes_its_use_count_along() {
    let (store, handle) = started(config()).await;
    let with: ChannelRules =
        toml::from_str("[[commands]]\nname = \"!hug\"\nresponse = \"hugs\"").expect("rules");
    handle
        .submit(
            &channel(),
            vec![edit(&ChannelRules::default(), with.clone())],
        )
        .await;
    handle
        .submit(&channel(), vec![counter_change("uses:!hug", 4)])
        .await;
    handle.flush().await.expect("flush");
    assert_eq!(stored(&store).await.counters["uses:!hug"], 4);
    // Removed (and used once more in the same coalescing window before the removal).
    let mut changes = vec![counter_change("uses:!hug", 1)];
    changes.extend(super::journal::rules_edit(super::RulesEdit {
        base: Arc::new(with.clone()),
        rules: Arc::new(ChannelRules::default()),
    }));
    handle.submit(&channel(), changes).await;
    let loaded = handle.load(&channel()).await.expect("load");
    assert!(
        !loaded.counters.contains_key("uses:!hug"),
        "the load's view"
    );
    handle.flush().await.expect("flush");
    assert!(!stored(&store).await.counters.contains_key("uses:!hug"));
    // Added again: it counts from zero, not from the old row.
    handle
        .submit(&channel(), vec![edit(&ChannelRules::default(), with)])
        .await;
    handle
        .submit(&channel(), vec![counter_change("uses:!hug", 1)])
        .await;
    handle.flush().await.expect("flush");
    assert_eq!(stored(&store).await.counters["uses:!hug"], 1);
}

#[tokio::test]
async fn stored_rules_that_do_not_decode_fail_the_load_and_are_counted() {
    let (store, handle) = started(config()).await;
    let mut write = ChannelWrite::new("twitch:chan", 60);
    write.rules_upsert = vec![super::model::RuleRow {
        kind: "command".into(),
        name: "!x".into(),
        body: "not json".into(),
    }];
    store.inner.write(&write).await.expect("write");
    let error = handle.load(&channel()).await.expect_err("unreadable rules");
    assert!(
        error.to_string().contains("stored rules unreadable"),
        "{error}"
    );
    assert_eq!(handle.status.load_failures.load(Ordering::Relaxed), 1);
}

fn warning_change(user: &str) -> Change {
    Change::Warning(WarningRow {
        filter: "caps".into(),
        user_id: user.into(),
        expires_ms: i64::MAX,
    })
}

/// Deleting a user while a flush holding their changes is in flight: the delete waits for the
/// flush, then removes what it wrote; later flushes never write the user back.
#[tokio::test]
async fn a_user_deleted_while_a_flush_is_in_flight_stays_deleted() {
    let (store, handle) = started(config()).await;
    for _ in 0..3 {
        handle.submit(&channel(), message("u1")).await;
        handle.submit(&channel(), message("u2")).await;
    }
    handle.submit(&channel(), vec![warning_change("u1")]).await;
    store.write_delay_ms.store(300, Ordering::SeqCst);
    let flushing = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.flush().await })
    };
    eventually("the flush is writing", || {
        store.writes_started.load(Ordering::SeqCst) >= 1
    })
    .await;
    let ((), report) = handle.forget_user("twitch", "u1", async {}).await;
    let report = report.expect("forgotten");
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        1,
        "the delete ran after the in-flight write"
    );
    assert_eq!(report.stored.user_stats, 1, "{report:?}");
    assert_eq!(report.stored.warnings, 1, "{report:?}");
    assert_eq!(
        report.pending.total(),
        0,
        "all of it was in flight: {report:?}"
    );
    flushing.await.expect("no panic").expect("flush");
    store.write_delay_ms.store(0, Ordering::SeqCst);
    handle.submit(&channel(), message("u2")).await;
    handle.flush().await.expect("flush");
    assert!(users(&store, "u1").await.is_empty());
    assert_eq!(users(&store, "u2").await[0].messages, 4);
    assert!(stored(&store).await.warnings.is_empty());
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 7);
}

/// The race that would resurrect the data: the in-flight write lands but reports failure, so
/// its changes are put back as pending; the delete drops them before they are written again.
#[tokio::test]
async fn a_failed_in_flight_flush_does_not_put_a_deleted_users_changes_back() {
    let (store, handle) = started(config()).await;
    for _ in 0..3 {
        handle.submit(&channel(), message("u1")).await;
        handle.submit(&channel(), message("u2")).await;
    }
    store.write_delay_ms.store(300, Ordering::SeqCst);
    store.fail_after_write.store(true, Ordering::SeqCst);
    let flushing = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.flush().await })
    };
    eventually("the flush is writing", || {
        store.writes_started.load(Ordering::SeqCst) >= 1
    })
    .await;
    let ((), report) = handle.forget_user("twitch", "u1", async {}).await;
    let report = report.expect("forgotten");
    assert!(
        flushing.await.expect("no panic").is_err(),
        "the flush failed"
    );
    assert_eq!(report.stored.user_stats, 1, "the landed row: {report:?}");
    assert_eq!(
        report.pending.user_stats, 1,
        "the put-back delta: {report:?}"
    );
    store.fail_after_write.store(false, Ordering::SeqCst);
    store.write_delay_ms.store(0, Ordering::SeqCst);
    handle.flush().await.expect("retry");
    assert!(users(&store, "u1").await.is_empty(), "not written back");
    assert_eq!(users(&store, "u2").await[0].messages, 3, "counted once");
}

/// What channel actors send about the user while the delete runs (between its two steps) is
/// dropped and counted; after the delete, the user's new activity is stored afresh.
#[tokio::test]
async fn changes_about_a_user_arriving_during_the_delete_are_dropped_and_counted() {
    let (store, handle) = started(config()).await;
    handle.submit(&channel(), message("u1")).await;
    handle.flush().await.expect("flush");
    let late = {
        let handle = handle.clone();
        async move {
            handle.submit(&channel(), message("u1")).await;
            handle.submit(&channel(), vec![warning_change("u1")]).await;
            handle.submit(&channel(), message("u2")).await;
        }
    };
    let ((), report) = handle.forget_user("twitch", "u1", late).await;
    let report = report.expect("forgotten");
    assert_eq!(report.stored.user_stats, 1, "{report:?}");
    assert_eq!(report.pending.user_stats, 1, "{report:?}");
    assert_eq!(report.pending.warnings, 1, "{report:?}");
    assert_eq!(
        report.pending.channels.iter().collect::<Vec<_>>(),
        ["twitch:chan"]
    );
    assert!(handle.status.changes_forgotten.load(Ordering::Relaxed) >= 2);
    handle.flush().await.expect("flush");
    assert!(users(&store, "u1").await.is_empty());
    assert!(stored(&store).await.warnings.is_empty());
    // The channel's message count keeps every message; only the personal rows went.
    assert_eq!(stored(&store).await.counters[counter::MESSAGES], 3);
    handle.submit(&channel(), message("u1")).await;
    handle.flush().await.expect("flush");
    assert_eq!(users(&store, "u1").await[0].messages, 1, "a fresh row");
    // Another platform's user of the same id is someone else.
    let discord: Arc<str> = Arc::from("discord:1");
    handle.submit(&discord, message("u1")).await;
    handle.flush().await.expect("flush");
    let ((), report) = handle.forget_user("twitch", "u1", async {}).await;
    assert_eq!(report.expect("forgotten").stored.user_stats, 1);
    let on_discord = store
        .inner
        .load_users("discord:1", &["u1".to_string()])
        .await
        .expect("users");
    assert_eq!(on_discord.len(), 1);
}

/// A channel (re)starting while the delete runs must not get the user's warnings back.
#[tokio::test]
async fn a_load_during_a_delete_leaves_the_users_warnings_out() {
    let (_store, handle) = started(config()).await;
    handle
        .submit(&channel(), vec![warning_change("u1"), warning_change("u2")])
        .await;
    handle.flush().await.expect("flush");
    let load = {
        let handle = handle.clone();
        async move { handle.load(&channel()).await.expect("load") }
    };
    let (loaded, report) = handle.forget_user("twitch", "u1", load).await;
    assert_eq!(report.expect("forgotten").stored.warnings, 1);
    let users: Vec<&str> = loaded.warnings.iter().map(|w| w.user_id.as_str()).collect();
    assert_eq!(users, ["u2"]);
}

/// `store.user_stats_ttl_s`: once a user's row expired in the store, the writer's cached copy
/// of it must not bring the old counts back with the user's next message.
#[tokio::test]
async fn an_expired_user_row_does_not_come_back_through_the_cached_base() {
    let mut c = config();
    c.user_ttl_s = 1;
    let (store, handle) = started(c).await;
    handle.submit(&channel(), message("u1")).await;
    handle.submit(&channel(), message("u1")).await;
    handle.flush().await.expect("flush");
    assert_eq!(users(&store, "u1").await[0].messages, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !users(&store, "u1").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the row never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.submit(&channel(), message("u1")).await;
    handle.flush().await.expect("flush");
    assert_eq!(users(&store, "u1").await[0].messages, 1);
}

/// A deletion whose caller goes away between its two steps still completes: the user's
/// rows go, and their later activity is stored again (not dropped for good).
#[tokio::test]
async fn a_deletion_dropped_half_way_still_completes() {
    let (store, handle) = started(config()).await;
    handle.submit(&channel(), message("u1")).await;
    handle.flush().await.expect("flush");
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        handle.forget_user("twitch", "u1", futures::future::pending::<()>()),
    )
    .await;
    assert!(cancelled.is_err(), "dropped while the caller's part ran");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !users(&store, "u1").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deletion never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Until the writer has taken the end of the deletion in, the user's changes are dropped;
    // then they count again, from a fresh row.
    loop {
        handle.submit(&channel(), message("u1")).await;
        handle.flush().await.expect("flush");
        if let Some(row) = users(&store, "u1").await.first() {
            assert_eq!(row.messages, 1, "a fresh row");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "changes dropped for good"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
