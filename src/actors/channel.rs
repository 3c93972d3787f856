//! The channel actor: one per joined channel, the only owner of that channel's engine state.
//!
//! It takes [`Delivery`]s from its mailbox in order, runs the engine on each and hands the
//! resulting actions to the [`ActionSink`]. Before each message it first handles any orphans
//! older than it (messages its failed predecessor never got to), so order within a channel holds
//! across restarts. A panic in the engine fails the actor; its supervisor restarts it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::delivery::Delivery;
use super::registry::{ChannelShared, ChannelStatus};
use super::{ActionSink, ProcessedTap};
use crate::engine::{ChannelState, ChatHandler};

/// Handling that took at least this long is followed by a yield to the scheduler.
const SLOW_HANDLING: Duration = Duration::from_micros(500);

/// Messages a channel actor accepts.
// `Wake` is rare and ractor boxes every message into its mailbox anyway, so boxing `Deliver`
// would only add a second allocation per chat message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChannelMsg {
    /// Handle one admitted chat event.
    Deliver(Delivery),
    /// Handle any orphans waiting for this actor.
    Wake,
}

/// What every channel actor of a service shares: the engine and where its output goes.
#[derive(Clone)]
pub struct ChannelContext {
    pub handler: Arc<dyn ChatHandler>,
    pub sink: Arc<dyn ActionSink>,
    pub tap: Option<Arc<dyn ProcessedTap>>,
}

impl std::fmt::Debug for ChannelContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelContext")
    }
}

pub struct ChannelActor;

pub struct ChannelArgs {
    pub shared: Arc<ChannelShared>,
    pub context: ChannelContext,
}

pub struct ChannelActorState {
    engine: ChannelState,
    shared: Arc<ChannelShared>,
    context: ChannelContext,
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelActorState;
    type Arguments = ChannelArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ChannelArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ChannelActorState {
            engine: ChannelState::new(args.shared.key.name.as_ref()),
            shared: args.shared,
            context: args.context,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(
            state.shared.status(),
            ChannelStatus::Starting | ChannelStatus::Restarting
        ) {
            state.shared.set_status(ChannelStatus::Running);
        }
        handle_orphans_before(state, u64::MAX);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ChannelMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChannelMsg::Deliver(delivery) => {
                let started = Instant::now();
                handle_orphans_before(state, delivery.seq());
                handle_delivery(state, delivery);
                // A handler that took long must not hog its worker thread for a whole mailbox:
                // let the tasks queued behind it (other channels, the router) run first.
                if started.elapsed() >= SLOW_HANDLING {
                    tokio::task::yield_now().await;
                }
            }
            ChannelMsg::Wake => handle_orphans_before(state, u64::MAX),
        }
        Ok(())
    }
}

fn handle_orphans_before(state: &mut ChannelActorState, seq: u64) {
    for orphan in state.shared.take_orphans_before(seq) {
        handle_delivery(state, orphan);
    }
}

fn handle_delivery(state: &mut ChannelActorState, mut delivery: Delivery) {
    let seq = delivery.seq();
    let received_at = delivery.received_at();
    let Some(event) = delivery.begin() else {
        return;
    };
    let actions = state
        .context
        .handler
        .handle(&mut state.engine, event, SystemTime::now());
    for action in actions {
        state.context.sink.submit(event, action, received_at);
    }
    if let Some(tap) = &state.context.tap {
        tap.processed(event, seq);
    }
    state
        .shared
        .counters
        .processed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    delivery.finish();
}
