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
