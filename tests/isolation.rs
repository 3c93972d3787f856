//! One noisy channel never hurts another: a channel whose handler is slow sheds (policy
//! `shed`) or waits then sheds (policy `block`) while its neighbour loses nothing, and what the
//! slow channel did handle, it handled in order. shed = sent - processed, exactly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use firehose::channel::ShedReason;
use firehose::config::OverflowPolicy;

async fn slow_neighbour_case(policy: OverflowPolicy) {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let (slow, fast) = (channels[0].clone(), channels[1].clone());
    let mut config = config_for(sim.local_addr(), &channels);
    // Enough room that scheduling hiccups on a busy 2-core CI box never fill the neighbour.
    config.admission.capacity = 128;
    config.admission.overflow = policy;
    config.admission.block_timeout_ms = 200;
    config.admission.wait_capacity = 64;
    let engine = FaultyEngine {
        slow: vec![slow.clone()],
        slow_per_message: Duration::from_millis(10),
        ..FaultyEngine::default()
    };
    let tap = Arc::new(RecordingTap::default());
    let service = service(config, options_with(engine, Some(Arc::clone(&tap)))).await;
    let per_channel = 400;
    // About 1,000 msgs/s per channel: ten times what the slow channel can handle (10 ms per
    // message), easy for its neighbour. A late tick is not made up with a burst.
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..per_channel {
        if i % 10 == 0 {
            pace.tick().await;
        }
        sim.send_privmsg(&slow, "viewer", &format!("slow {i}"))
            .await
            .expect("joined");
        sim.send_privmsg(&fast, "viewer", &format!("fast {i}"))
            .await
            .expect("joined");
    }
    let sent_slow = sim.sent_ids(&slow).len() as u64;
    wait_until(
        "the slow channel accounted for every message",
        Duration::from_secs(30),
        || {
            received(&service, &slow) == sent_slow
                && processed(&service, &slow) + shed(&service, &slow) == sent_slow
        },
    )
    .await;
    assert!(
        shed(&service, &slow) > 0,
        "the slow channel must shed under {policy:?}"
    );
    assert_eq!(
        shed(&service, &slow),
        sent_slow - processed(&service, &slow),
        "shed = sent - processed"
    );
    let slow_channel = channel(&service, &slow);
    match policy {
        OverflowPolicy::Shed => assert_eq!(
            slow_channel.counters.shed(ShedReason::Full),
            shed(&service, &slow)
        ),
        OverflowPolicy::Block => assert!(
            slow_channel.counters.shed(ShedReason::Deadline)
                + slow_channel.counters.shed(ShedReason::WaitFull)
                == shed(&service, &slow)
        ),
    }
    // What the slow channel did handle, it handled in order.
    let handled = tap.ids(&slow);
    let sent = sim.sent_ids(&slow);
    let mut cursor = sent.iter();
    for id in &handled {
        assert!(
            cursor.any(|s| s == id),
            "slow channel handled {id} out of order"
        );
    }
    // The neighbour lost nothing.
    wait_until(
        "the fast neighbour handled everything",
        Duration::from_secs(10),
        || tap.ids(&fast).len() == per_channel,
    )
    .await;
    assert_eq!(shed(&service, &fast), 0);
    assert_eq!(tap.ids(&fast), sim.sent_ids(&fast));
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_channel_sheds_while_its_neighbour_loses_nothing() {
    slow_neighbour_case(OverflowPolicy::Shed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_channel_under_block_waits_then_sheds_without_holding_up_its_neighbour() {
    slow_neighbour_case(OverflowPolicy::Block).await;
}
