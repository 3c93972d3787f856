//! One contract for every `StateStore` backend: the same assertions run against the embedded
//! store (redb in a temporary file) and the CQL store (a real Cassandra or ScyllaDB node from
//! `FIREHOSE_SCYLLA_URI`, a keyspace per test).

mod common;

use std::sync::Arc;
use std::time::Duration;

use firehose::store::model::{
    rules_to_rows, ChannelWrite, ForgottenRows, ModerationEntry, UserRow, WarningRow,
};
use firehose::store::{migrations, LeaseOutcome, StateStore};

use common::{embedded_store_config, scylla_store_config, wait_until_async};

/// Runs `$contract` against both backends as two tests.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn embedded() {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = firehose::store::open(&super::embedded_store_config(dir.path()))
                    .await
                    .expect("open embedded");
                super::$name(store).await;
            }

            #[tokio::test]
            async fn scylla() {
                let config = super::scylla_store_config(stringify!($name));
                let store = firehose::store::open(&config).await.expect("open scylla");
                super::$name(store).await;
            }
        }
    };
}

contract!(migrations_apply_once_in_order);
contract!(writes_read_back_and_are_idempotent);
contract!(rules_items_upsert_and_delete);
contract!(user_stats_span_buckets);
contract!(warnings_and_log_expire);
contract!(leases_exclude_other_owners);
contract!(platform_state_round_trips);
contract!(user_stats_expire_after_their_ttl);
contract!(forgetting_a_user_removes_their_rows_only);

async fn migrated(store: &Arc<dyn StateStore>) {
    store.migrate().await.expect("migrate");
}

fn now_ms() -> i64 {
    i64::try_from(firehose::engine::millis(std::time::SystemTime::now())).expect("ms")
}

async fn migrations_apply_once_in_order(store: Arc<dyn StateStore>) {
    assert_eq!(store.schema_version().await.expect("version"), 0);
    let applied = store.migrate().await.expect("migrate");
    let all: Vec<u32> = (1..=migrations::latest()).collect();
    assert_eq!(applied, all);
    assert_eq!(store.migrate().await.expect("again"), Vec::<u32>::new());
    assert_eq!(
        store.schema_version().await.expect("version"),
        migrations::latest()
    );
}

fn sample_write(channel: &str) -> ChannelWrite {
    let now = now_ms();
    let mut write = ChannelWrite::new(channel, 3_600);
    write.counters = vec![("messages".into(), 42), ("count:deaths".into(), 7)];
    write.users = vec![UserRow {
        user_id: "1001".into(),
        login: "alice".into(),
        messages: 40,
        last_seen_ms: now,
        warnings: 1,
    }];
    write.warnings = vec![WarningRow {
        filter: "caps".into(),
        user_id: "1001".into(),
        expires_ms: now + 600_000,
    }];
    write.moderation = (0..3)
        .map(|i| ModerationEntry {
            id: format!("m{i}"),
            at_ms: now - 1_000 + i,
            action: "timeout".into(),
            user_id: "1001".into(),
            rule: "caps".into(),
            reason: "caps".into(),
            duration_s: 10,
        })
        .collect();
    write
}

async fn writes_read_back_and_are_idempotent(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let write = sample_write("twitch:chan");
    assert_eq!(store.write(&write).await.expect("write"), 7);
    let first = store.load_channel("twitch:chan").await.expect("load");
    // Written again (a retry): the same state, nothing counted twice.
    store.write(&write).await.expect("rewrite");
    let second = store.load_channel("twitch:chan").await.expect("load");
    assert_eq!(first, second);
    assert_eq!(second.counters["messages"], 42);
    assert_eq!(second.counters["count:deaths"], 7);
    assert_eq!(second.warnings, write.warnings);
    let log = store.moderation_log("twitch:chan", 2).await.expect("log");
    let ids: Vec<&str> = log.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, vec!["m2", "m1"], "newest first, limited");
    assert_eq!(
        store
            .moderation_log("twitch:chan", 10)
            .await
            .expect("log")
            .len(),
        3
    );
    let users = store
        .load_users("twitch:chan", &["1001".to_string(), "nobody".to_string()])
        .await
        .expect("users");
    assert_eq!(users, write.users);
    // Another channel sees none of it.
    let other = store.load_channel("twitch:other").await.expect("load");
    assert!(other.counters.is_empty() && other.warnings.is_empty() && other.rules.is_empty());
}

async fn rules_items_upsert_and_delete(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let rules: firehose::engine::ChannelRules = toml::from_str(
        r#"
        regulars = ["bob"]
        [[commands]]
        name = "!discord"
        response = "discord.gg/x"
        [[keywords]]
        name = "hello"
        groups = [["hello"]]
        response = "hi $(user)"
        "#,
    )
    .expect("rules");
    let mut write = ChannelWrite::new("twitch:chan", 60);
    write.rules_upsert = rules_to_rows(&rules).expect("rows");
    store.write(&write).await.expect("write");
    let stored = store.load_channel("twitch:chan").await.expect("load");
    assert_eq!(stored.rules.len(), 3);
    assert_eq!(stored.channel_rules().expect("valid"), Some(rules));
    let mut delete = ChannelWrite::new("twitch:chan", 60);
    delete.rules_delete = vec![("keyword".into(), "hello".into())];
    store.write(&delete).await.expect("delete");
    let stored = store.load_channel("twitch:chan").await.expect("load");
    let kinds: Vec<&str> = stored.rules.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, vec!["command", "settings"]);
}

async fn user_stats_span_buckets(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let mut write = ChannelWrite::new("twitch:big", 60);
    let ids: Vec<String> = (0..300).map(|i| format!("user{i}")).collect();
    write.users = ids
        .iter()
        .enumerate()
        .map(|(i, id)| UserRow {
            user_id: id.clone(),
            login: id.clone(),
            messages: i as i64,
            last_seen_ms: 1,
            warnings: 0,
        })
        .collect();
    let buckets: std::collections::BTreeSet<i32> = ids
        .iter()
        .map(|id| firehose::store::user_bucket(id))
        .collect();
    assert_eq!(buckets.len(), firehose::store::model::USER_BUCKETS as usize);
    store.write(&write).await.expect("write");
    let mut users = store.load_users("twitch:big", &ids).await.expect("users");
    users.sort_by_key(|u| u.messages);
    assert_eq!(users, write.users);
}

async fn warnings_and_log_expire(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let now = now_ms();
    let mut write = ChannelWrite::new("twitch:chan", 1);
    write.warnings = vec![
        WarningRow {
            filter: "links".into(),
            user_id: "1".into(),
            expires_ms: now + 1_500,
        },
        WarningRow {
            filter: "links".into(),
            user_id: "2".into(),
            expires_ms: now + 600_000,
        },
    ];
    write.moderation = vec![ModerationEntry {
        id: "short".into(),
        at_ms: now,
        action: "delete".into(),
        user_id: "1".into(),
        rule: "links".into(),
        reason: String::new(),
        duration_s: 0,
    }];
    store.write(&write).await.expect("write");
    assert_eq!(
        store
            .load_channel("twitch:chan")
            .await
            .expect("load")
            .warnings
            .len(),
        2
    );
    wait_until_async(
        "the short warning and log entry expire",
        Duration::from_secs(10),
        || {
            let store = Arc::clone(&store);
            async move {
                let warnings = store
                    .load_channel("twitch:chan")
                    .await
                    .expect("load")
                    .warnings;
                let log = store.moderation_log("twitch:chan", 10).await.expect("log");
                warnings.len() == 1 && warnings[0].user_id == "2" && log.is_empty()
            }
        },
    )
    .await;
}

async fn leases_exclude_other_owners(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.acquire_lease("twitch:c", "a", ttl).await.expect("a"),
        LeaseOutcome::Held
    );
    assert_eq!(
        store.acquire_lease("twitch:c", "b", ttl).await.expect("b"),
        LeaseOutcome::HeldBy("a".into())
    );
    assert_eq!(
        store
            .acquire_lease("twitch:c", "a", ttl)
            .await
            .expect("renew"),
        LeaseOutcome::Held
    );
    store.release_lease("twitch:c", "b").await.expect("not b's");
    assert_eq!(
        store.acquire_lease("twitch:c", "b", ttl).await.expect("b"),
        LeaseOutcome::HeldBy("a".into())
    );
    store.release_lease("twitch:c", "a").await.expect("release");
    assert_eq!(
        store.acquire_lease("twitch:c", "b", ttl).await.expect("b"),
        LeaseOutcome::Held
    );
    // A renewed lease outlives its first TTL (every cell is rewritten, the owner too).
    let first = std::time::Instant::now();
    assert_eq!(
        store
            .acquire_lease("twitch:e", "a", Duration::from_secs(2))
            .await
            .expect("a"),
        LeaseOutcome::Held
    );
    assert_eq!(
        store
            .acquire_lease("twitch:e", "a", ttl)
            .await
            .expect("renew"),
        LeaseOutcome::Held
    );
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(first.elapsed())).await;
    assert_eq!(
        store.acquire_lease("twitch:e", "b", ttl).await.expect("b"),
        LeaseOutcome::HeldBy("a".into()),
        "the renewed lease still holds after the first TTL"
    );
    // A lease runs out by itself.
    let short = Duration::from_secs(1);
    assert_eq!(
        store
            .acquire_lease("twitch:d", "a", short)
            .await
            .expect("a"),
        LeaseOutcome::Held
    );
    wait_until_async("a's lease runs out", Duration::from_secs(10), || {
        let store = Arc::clone(&store);
        async move { store.acquire_lease("twitch:d", "b", ttl).await.expect("b") == LeaseOutcome::Held }
    })
    .await;
}

/// Platform records (the newest refresh token, login -> id, authorisations): written,
/// replaced, listed per scope in key order, deleted; scopes do not see each other.
async fn platform_state_round_trips(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    assert_eq!(
        store.get_state("twitch_tokens", "user").await.expect("get"),
        None
    );
    store
        .put_state("twitch_tokens", "user", "refresh-1")
        .await
        .expect("put");
    store
        .put_state("twitch_tokens", "user", "refresh-2")
        .await
        .expect("replace");
    assert_eq!(
        store.get_state("twitch_tokens", "user").await.expect("get"),
        Some("refresh-2".to_string())
    );
    for (login, id) in [("zed", "3"), ("abc", "1"), ("mid", "2")] {
        store
            .put_state("twitch_user_ids", login, id)
            .await
            .expect("put id");
    }
    let ids = store.list_state("twitch_user_ids").await.expect("list");
    let expected: Vec<(String, String)> = [("abc", "1"), ("mid", "2"), ("zed", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(
        store.list_state("twitch_tokens").await.expect("list").len(),
        1,
        "scopes are separate"
    );
    store
        .delete_state("twitch_user_ids", "mid")
        .await
        .expect("delete");
    store
        .delete_state("twitch_user_ids", "never-there")
        .await
        .expect("deleting nothing is fine");
    assert_eq!(
        store
            .list_state("twitch_user_ids")
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        store
            .get_state("twitch_user_ids", "mid")
            .await
            .expect("get"),
        None
    );
}

fn user(id: &str, messages: i64) -> UserRow {
    UserRow {
        user_id: id.into(),
        login: format!("login{id}"),
        messages,
        last_seen_ms: now_ms(),
        warnings: 1,
    }
}

/// `store.user_stats_ttl_s`: rows written with a TTL are gone once it has passed (read as
/// absent, whatever the backend has physically removed yet); rows without one stay.
async fn user_stats_expire_after_their_ttl(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let mut short = ChannelWrite::new("twitch:chan", 60);
    short.user_ttl_s = 1;
    short.users = vec![user("1", 3)];
    store.write(&short).await.expect("write short");
    let mut kept = ChannelWrite::new("twitch:chan", 60);
    kept.users = vec![user("2", 4)];
    store.write(&kept).await.expect("write kept");
    let ids = vec!["1".to_string(), "2".to_string()];
    assert_eq!(
        store
            .load_users("twitch:chan", &ids)
            .await
            .expect("users")
            .len(),
        2
    );
    wait_until_async(
        "the short-lived row expires",
        Duration::from_secs(10),
        || {
            let (store, ids) = (Arc::clone(&store), ids.clone());
            async move {
                let users = store.load_users("twitch:chan", &ids).await.expect("users");
                users.len() == 1 && users[0].user_id == "2"
            }
        },
    )
    .await;
    // A write renews the row (and its TTL): the expired values do not come back.
    let mut again = ChannelWrite::new("twitch:chan", 60);
    again.users = vec![user("1", 1)];
    store.write(&again).await.expect("write again");
    let users = store
        .load_users("twitch:chan", &["1".to_string()])
        .await
        .expect("users");
    assert_eq!(users[0].messages, 1);
}

/// Deleting one user's data on one platform: their stats, warnings and log entries in every
/// channel of that platform go; another user's, the same id on the other platform, and the
/// channel-wide rows stay; a second delete removes nothing.
async fn forgetting_a_user_removes_their_rows_only(store: Arc<dyn StateStore>) {
    migrated(&store).await;
    let now = now_ms();
    let entry = |id: &str, user: &str| ModerationEntry {
        id: id.into(),
        at_ms: now - 10,
        action: "delete".into(),
        user_id: user.into(),
        rule: "caps".into(),
        reason: String::new(),
        duration_s: 0,
    };
    let warning = |filter: &str, user: &str| WarningRow {
        filter: filter.into(),
        user_id: user.into(),
        expires_ms: now + 600_000,
    };
    for channel in ["twitch:a", "twitch:b", "discord:1"] {
        let mut write = ChannelWrite::new(channel, 3_600);
        write.counters = vec![("messages".into(), 10)];
        write.users = vec![user("1001", 5), user("2002", 5)];
        write.warnings = vec![
            warning("caps", "1001"),
            warning("links", "1001"),
            warning("caps", "2002"),
        ];
        write.moderation = vec![
            entry(&format!("{channel}-x"), "1001"),
            entry(&format!("{channel}-y"), "1001"),
            entry(&format!("{channel}-z"), "2002"),
        ];
        store.write(&write).await.expect("write");
    }
    // A channel where the user never was.
    let mut quiet = ChannelWrite::new("twitch:quiet", 3_600);
    quiet.users = vec![user("2002", 1)];
    store.write(&quiet).await.expect("write");

    let forgotten = store.forget_user("twitch", "1001").await.expect("forget");
    let expected = ForgottenRows {
        user_stats: 2,
        warnings: 4,
        moderation_log: 4,
        channels: ["twitch:a", "twitch:b"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
    };
    assert_eq!(forgotten, expected);

    let ids = vec!["1001".to_string(), "2002".to_string()];
    for channel in ["twitch:a", "twitch:b"] {
        let users = store.load_users(channel, &ids).await.expect("users");
        assert_eq!(users.len(), 1, "{channel}: {users:?}");
        assert_eq!(users[0].user_id, "2002");
        let stored = store.load_channel(channel).await.expect("load");
        assert_eq!(stored.warnings, vec![warning("caps", "2002")], "{channel}");
        assert_eq!(stored.counters["messages"], 10, "channel-wide rows stay");
        let log = store.moderation_log(channel, 10).await.expect("log");
        assert_eq!(log.len(), 1, "{channel}: {log:?}");
        assert_eq!(log[0].user_id, "2002");
    }
    // The same id on Discord is another person.
    let discord = store.load_users("discord:1", &ids).await.expect("users");
    assert_eq!(discord.len(), 2);
    assert_eq!(
        store
            .load_channel("discord:1")
            .await
            .expect("load")
            .warnings
            .len(),
        3
    );
    assert_eq!(
        store
            .moderation_log("discord:1", 10)
            .await
            .expect("log")
            .len(),
        3
    );

    let again = store.forget_user("twitch", "1001").await.expect("again");
    assert_eq!(again, ForgottenRows::default(), "nothing left to remove");
}
