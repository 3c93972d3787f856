//! The state store under database trouble, with chat flowing the whole time:
//!
//! - `scylla-proxy` between the driver and the node delays frames, drops request frames,
//!   drops responses of writes that did land, drops connections and forges write timeouts
//!   and overloaded errors; afterwards every handled chat message is counted exactly once.
//! - the Cassandra process is killed (SIGKILL) mid-run: the service stays up (`/readyz` says
//!   degraded, chat is still handled), and once the node is back it catches up, nothing lost.
//!
//! The kill test runs a Cassandra node of its own (the suite's shared node stays up for the
//! other tests): started, killed and restarted on the same data with `scripts/test-db.sh`.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::StoreConfig;
use firehose::store::scylla::ScyllaStore;
use firehose::store::StateStore;
use firehose_sim::SimHandle;
use scylla_proxy::{
    Condition, Node, Proxy, Reaction, RequestOpcode, RequestReaction, RequestRule, ResponseOpcode,
    ResponseReaction, ResponseRule, ShardAwareness,
};
use tokio::sync::mpsc;

use common::*;

fn resolve(uri: &str) -> SocketAddr {
    uri.split(',')
        .next()
        .and_then(|first| first.trim().to_socket_addrs().ok()?.next())
        .unwrap_or_else(|| panic!("cannot resolve {uri}"))
}

/// A service on `store` with simulated chat in `channels` channels at `rate` msgs/s.
async fn chatty_service(
    channels: usize,
    store_config: &StoreConfig,
    store: Option<Arc<dyn StateStore>>,
) -> (SimHandle, Server, Vec<String>) {
    // Chat messages only (no USERNOTICE/CLEARCHAT events): handled = messages counted.
    let sim = sim(channels, |c| c.event_fraction = 0.0).await;
    let names = sim_channels(channels);
    let mut config = config_for(sim.local_addr(), &names);
    config.store = store_config.clone();
    config.store.flush_interval_ms = 100;
    config.store.user_stats_flush_interval_ms = 200;
    config.store.retry_backoff_ms = 50;
    config.store.retry_backoff_max_ms = 500;
    config.store.max_lag_ms = 1_000;
    let options = ServiceOptions {
        store,
        ..ServiceOptions::default()
    };
    let service = service(config, options).await;
    (sim, service, names)
}

fn total_processed(service: &Server, channels: &[String]) -> u64 {
    channels.iter().map(|c| processed(service, c)).sum()
}

/// Stops the traffic, waits until every sent message was handled, writes everything, and
/// checks the database: each channel's message counter and the sum of its users' message
/// counts equal the messages the channel handled.
async fn assert_counted_once(
    sim: &SimHandle,
    service: &Server,
    channels: &[String],
    db: &StoreConfig,
) {
    sim.set_rate(0.0);
    wait_until(
        "every sent message arrived and was handled or shed",
        Duration::from_secs(30),
        || {
            let stats = sim.stats();
            let sent = stats.privmsgs_sent + stats.events_sent;
            let arrived: u64 = channels.iter().map(|c| received(service, c)).sum();
            let done: u64 = channels
                .iter()
                .map(|c| processed(service, c) + shed(service, c))
                .sum();
            sent > 0 && arrived >= sent && done == arrived
        },
    )
    .await;
    let store = service.core().store.clone();
    wait_until_async("the writer caught up", Duration::from_secs(60), || {
        let store = store.clone();
        async move { store.flush().await.is_ok() }
    })
    .await;
    // Read back with sessions of their own, straight to the node.
    let direct = ScyllaStore::connect(db).await.expect("direct session");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(db.contact_points())
        .build()
        .await
        .expect("session");
    for channel in channels {
        let id = format!("twitch:{channel}");
        let handled = processed(service, channel) as i64;
        let stored = direct.load_channel(&id).await.expect("load");
        let messages = stored.counters.get("messages").copied().unwrap_or(0);
        assert_eq!(messages, handled, "{channel}: stored message count");
        let sum = users_messages(&session, &db.keyspace, &id).await;
        assert_eq!(sum, handled, "{channel}: sum of users' message counts");
    }
}

/// The sum of the message counts of every user of `channel` (all buckets).
async fn users_messages(
    session: &scylla::client::session::Session,
    keyspace: &str,
    channel: &str,
) -> i64 {
    let mut sum = 0;
    for bucket in 0..firehose::store::model::USER_BUCKETS as i32 {
        let rows = session
            .query_unpaged(
                format!(
                    "SELECT messages FROM {keyspace}.user_stats WHERE channel = ? AND bucket = ?"
                ),
                (channel, bucket),
            )
            .await
            .expect("select")
            .into_rows_result()
            .expect("rows");
        for row in rows.rows::<(i64,)>().expect("typed") {
            sum += row.expect("row").0;
        }
    }
    sum
}

/// Applies `rule` until it has fired `times` times (the proxy reports each), or panics.
async fn fire(
    proxy: &mut scylla_proxy::RunningProxy,
    what: &str,
    times: usize,
    request: Option<(Condition, RequestReaction)>,
    response: Option<(Condition, ResponseReaction)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (rtx, mut rrx) = mpsc::unbounded_channel();
    let node = &mut proxy.running_nodes[0];
    if let Some((condition, reaction)) = request {
        let reaction = reaction.with_feedback_when_performed(tx);
        node.change_request_rules(Some(vec![RequestRule(condition, reaction)]));
    }
    if let Some((condition, reaction)) = response {
        let reaction = reaction.with_feedback_when_performed(rtx);
        node.change_response_rules(Some(vec![ResponseRule(condition, reaction)]));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut fired = 0;
    while fired < times {
        let next = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                Some(_) = rx.recv() => {}
                Some(_) = rrx.recv() => {}
            }
        })
        .await;
        assert!(
            next.is_ok(),
            "{what}: fired {fired} of {times} times in 30 s"
        );
        fired += 1;
    }
    proxy.turn_off_rules();
}

/// Data requests only (not the control connection, which registers for events).
fn data(opcode: RequestOpcode) -> Condition {
    Condition::RequestOpcode(opcode).and(Condition::not(Condition::ConnectionRegisteredAnyEvent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_counted_once_through_database_faults() {
    let mut db = scylla_store_config("faults");
    let real = resolve(&db.scylla_uri);
    // A loopback address of its own (127.x.y.z), so no other test can take the proxy's port.
    let proxy_addr = SocketAddr::new(scylla_proxy::get_exclusive_local_address(), real.port());
    let proxy = Proxy::builder()
        .with_node(
            Node::builder()
                .real_address(real)
                .proxy_address(proxy_addr)
                .shard_awareness(ShardAwareness::Unaware)
                .build(),
        )
        .build();
    // Nodes the driver learns from `system.peers` go through the proxy too; the node it
    // reached first (the proxy's address) stays as it is.
    let mut translation = proxy.translation_map();
    translation.insert(proxy_addr, proxy_addr);
    let mut proxy = proxy.run().await.expect("proxy runs");
    // The schema first, straight to the node; then the service talks through the proxy.
    let direct = ScyllaStore::connect(&db).await.expect("direct");
    direct.migrate().await.expect("migrate");
    let mut via_proxy = db.clone();
    via_proxy.scylla_uri = proxy_addr.to_string();
    via_proxy.request_timeout_ms = 1_000;
    let store = ScyllaStore::connect_with(&via_proxy, Some(translation))
        .await
        .expect("session through the proxy");
    let (sim, service, channels) = chatty_service(3, &via_proxy, Some(Arc::new(store))).await;
    sim.set_rate(300.0);
    let status = Arc::clone(&service.core().store.status);
    wait_until("flushes happen", Duration::from_secs(20), || {
        status.flushes_ok.load(Ordering::Relaxed) >= 3
    })
    .await;

    // Slow database: every data request waits 300 ms.
    fire(
        &mut proxy,
        "delay",
        5,
        Some((
            data(RequestOpcode::Batch),
            RequestReaction::delay(Duration::from_millis(300)),
        )),
        None,
    )
    .await;
    // Write timeouts and overloaded errors forged by the "node".
    fire(
        &mut proxy,
        "write timeout",
        3,
        Some((
            data(RequestOpcode::Batch),
            RequestReaction::forge().write_timeout(),
        )),
        None,
    )
    .await;
    fire(
        &mut proxy,
        "overloaded",
        // More than the driver's own retries absorb: some flushes fail and the writer retries.
        20,
        Some((
            data(RequestOpcode::Batch),
            RequestReaction::forge().overloaded(),
        )),
        None,
    )
    .await;
    // Request frames lost on the way: the driver times out.
    fire(
        &mut proxy,
        "dropped request",
        2,
        Some((data(RequestOpcode::Batch), RequestReaction::drop_frame())),
        None,
    )
    .await;
    // Writes that landed but whose answers were lost: the retry must not count them twice.
    let answers = Condition::ResponseOpcode(ResponseOpcode::Result)
        .and(Condition::not(Condition::ConnectionRegisteredAnyEvent));
    fire(
        &mut proxy,
        "dropped answer",
        3,
        None,
        Some((answers, ResponseReaction::drop_frame())),
    )
    .await;
    // A connection dropped mid-request.
    fire(
        &mut proxy,
        "dropped connection",
        1,
        Some((
            data(RequestOpcode::Batch),
            RequestReaction::drop_connection(),
        )),
        None,
    )
    .await;

    let failed = status.flushes_failed.load(Ordering::Relaxed);
    assert!(
        failed >= 1,
        "some flushes failed and were retried by the writer ({failed})"
    );
    assert!(total_processed(&service, &channels) > 0);
    db.request_timeout_ms = 5_000;
    assert_counted_once(&sim, &service, &channels, &db).await;
    assert_eq!(status.changes_refused.load(Ordering::Relaxed), 0);
    service.shutdown().await;
    // Not `proxy.finish()`: scylla-proxy 0.0.8 can panic there ("Worker await logic bug");
    // dropping it stops its workers with the runtime.
    drop(proxy);
}

/// A Cassandra node of this test's own, driven by `scripts/test-db.sh`.
struct OwnNode {
    dir: tempfile::TempDir,
}

impl OwnNode {
    fn script(&self, command: &str, keep: bool) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-db.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(command)
            .env_remove("FIREHOSE_SCYLLA_URI")
            .env("CASSANDRA_RUN_DIR", self.dir.path().join("run"))
            .env("CASSANDRA_NATIVE_PORT", "19042")
            .env("CASSANDRA_KEEP_DATA", if keep { "1" } else { "0" })
            .env("CASSANDRA_HEAP", "512m")
            .env("CASSANDRA_HEAP_MIN", "256m")
            .output()
            .expect("scripts/test-db.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "test-db.sh {command} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn start() -> (OwnNode, String) {
        let node = OwnNode {
            dir: tempfile::tempdir().expect("dir"),
        };
        let out = node.script("start", false);
        let uri = out
            .lines()
            .filter_map(|l| l.strip_prefix("FIREHOSE_SCYLLA_URI="))
            .next_back()
            .expect("the script prints the URI")
            .to_string();
        (node, uri)
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script("stop", false));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_rides_out_a_killed_database_and_catches_up() {
    // The suite's database must exist too (this test is part of the database tests).
    let _ = scylla_uri();
    let (node, uri) = tokio::task::spawn_blocking(OwnNode::start)
        .await
        .expect("start");
    let mut db = scylla_store_config("kill");
    db.scylla_uri = uri;
    db.request_timeout_ms = 1_000;
    let (sim, service, channels) = chatty_service(2, &db, None).await;
    sim.set_rate(100.0);
    let status = Arc::clone(&service.core().store.status);
    wait_until("flushes happen", Duration::from_secs(20), || {
        status.flushes_ok.load(Ordering::Relaxed) >= 2
    })
    .await;

    let node = tokio::task::spawn_blocking(move || {
        node.script("kill", true);
        node
    })
    .await
    .expect("kill");
    wait_until(
        "readyz says the store is degraded",
        Duration::from_secs(20),
        || {
            let readiness = service.core().readiness();
            readiness.ready && !readiness.degraded.is_empty()
        },
    )
    .await;
    let url = format!("http://{}/readyz", service.http_addr());
    let body: serde_json::Value = reqwest::get(&url)
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(body["ready"], true, "chat still runs: {body}");
    assert!(
        body["degraded"][0]
            .as_str()
            .unwrap_or_default()
            .contains("store"),
        "{body}"
    );
    // Chat is still handled while the database is down.
    let before = total_processed(&service, &channels);
    wait_until("chat is still handled", Duration::from_secs(10), || {
        total_processed(&service, &channels) >= before + 100
    })
    .await;
    assert!(status.pending_keys.load(Ordering::Relaxed) > 0);

    let node = tokio::task::spawn_blocking(move || {
        node.script("start", true);
        node
    })
    .await
    .expect("restart");
    wait_until(
        "the store caught up and readyz is clean again",
        Duration::from_secs(60),
        || {
            let readiness = service.core().readiness();
            !status.failing.load(Ordering::Relaxed) && readiness.degraded.is_empty()
        },
    )
    .await;
    db.request_timeout_ms = 5_000;
    assert_counted_once(&sim, &service, &channels, &db).await;
    service.shutdown().await;
    drop(node);
}
