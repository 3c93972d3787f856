//! `firehose demo` end to end, in process: the simulator, the fake Discord and the service.

/// `firehose demo --discord-channels 2`: a simulated guild runs beside the Twitch simulator in
/// one service, and every Discord `!ping` it sent was answered through the fake's REST side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_a_simulated_guild_beside_twitch() {
    let args = firehose_bench::DemoArgs {
        channels: 2,
        rate: 50.0,
        duration: 1,
        http: "127.0.0.1:0".parse().expect("addr"),
        ping_fraction: 0.3,
        capacity: None,
        corpus: None,
        discord_channels: 2,
        discord_rate: 40.0,
        scylla_uri: None,
        store_flush_ms: None,
        ingest: firehose_bench::demo::IngestArg::Irc,
        send_via: firehose_bench::demo::SendViaArg::Irc,
    };
    let summary = firehose_bench::run_demo(args).await.expect("the demo runs");
    // The messages reached the embedded store.
    assert_eq!(summary.store_backend, "embedded", "{summary:?}");
    assert!(summary.store_rows_written > 0, "{summary:?}");
    assert!(summary.discord_sent >= 10, "{summary:?}");
    assert_eq!(
        summary.discord_pings_answered, summary.discord_pings_sent,
        "{summary:?}"
    );
    assert!(
        summary.processed >= summary.discord_sent,
        "Discord messages are processed by the same service: {summary:?}"
    );
}

/// `firehose demo --ingest eventsub --send-via helix`: chat through the simulator's EventSub
/// (a conduit with two shards), replies through its Helix Chat API, the same summary, every
/// `!ping` answered (the share kept within Helix's points budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_eventsub_and_helix() {
    let args = firehose_bench::DemoArgs {
        channels: 10,
        rate: 200.0,
        duration: 2,
        http: "127.0.0.1:0".parse().expect("addr"),
        ping_fraction: 0.03, // ~12 pings of ~400 lines: never none (at 0.01, 0.99^400 = 1.8 %)
        capacity: None,
        corpus: None,
        discord_channels: 0,
        discord_rate: 0.0,
        scylla_uri: None,
        store_flush_ms: None,
        ingest: firehose_bench::demo::IngestArg::Eventsub,
        send_via: firehose_bench::demo::SendViaArg::Helix,
    };
    let summary = firehose_bench::run_demo(args).await.expect("the demo runs");
    assert!(summary.sent > 100, "{summary:?}");
    assert_eq!(
        summary.processed + summary.shed,
        summary.sent,
        "{summary:?}"
    );
    assert!(summary.pings_sent > 0, "{summary:?}");
    assert_eq!(summary.pings_answered, summary.pings_sent, "{summary:?}");
}
