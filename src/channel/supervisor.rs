//! The supervisor: owns every channel actor, restarts failed ones, stops parted ones.
//!
//! ractor has no built-in restart strategies, so this actor implements one-for-one restarts
//! itself: when a channel actor fails (panic or error) it waits a backoff (doubling per failure
//! within the window, capped) and spawns a fresh actor on the same [`ChannelShared`], which picks
//! up the orphaned messages. More than `max_restarts` failures within `restart_window` marks the
//! channel `failed`: its messages are shed and counted, other channels carry on. The backoff is
//! a timer task that messages the supervisor back, so the supervisor never sleeps in a handler.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::actor::{ChannelActor, ChannelArgs, ChannelContext, ChannelMsg, RulesEdit};
use super::admission::Router;
use super::key::ChannelKey;
use super::lifecycle::{ChannelError, ChannelStatus};
use super::mailbox::ActorStarter;
use super::registry::{ChannelRegistry, ChannelShared};
use crate::config::SupervisorConfig;
use crate::store::journal::rules_edit;

/// What a join request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinOutcome {
    Joined,
    AlreadyJoined,
    /// The channel was marked failed and has been given a fresh actor.
    Revived,
}

/// Why a channel did not get an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("{0} is not supervised")]
    NotSupervised(ChannelKey),
    /// ractor refused to spawn it; the channel is marked failed.
    #[error("spawning the channel actor failed: {0}")]
    Spawn(String),
}

pub enum SupervisorMsg {
    Join(ChannelKey, RpcReplyPort<Result<JoinOutcome, SpawnError>>),
    /// Stops the channel's actor after its mailbox drains; replies whether it existed.
    Part(ChannelKey, RpcReplyPort<bool>),
    /// A backoff elapsed: restart the channel if it is still waiting for it.
    Restart(ChannelKey, u64),
    /// An idle channel's first message arrived (the channel is now starting): spawn its actor.
    Start(ChannelKey),
    /// Shutdown: drain every channel within the deadline; replies how many finished in time.
    DrainAll(Duration, RpcReplyPort<DrainReport>),
    /// An admin rules edit: handed back with the channel's actor when it has one (the actor
    /// applies it); otherwise applied here, to the rules book and the store, in turn with
    /// joins and restarts so that an actor starting next starts from it.
    EditRules(ChannelKey, RulesEdit, RpcReplyPort<RulesTarget>),
}

/// Where an admin rules edit went.
#[derive(Debug)]
pub enum RulesTarget {
    /// The channel runs: the edit is for its actor.
    Actor(ActorRef<ChannelMsg>, RulesEdit),
    /// The channel has no actor: the edit is in the rules book and on its way to the store.
    Applied,
    /// The channel's rules changed since the edit read them.
    Conflict,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DrainReport {
    pub channels: usize,
    pub drained: usize,
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub registry: Arc<ChannelRegistry>,
    pub context: ChannelContext,
    pub router: Arc<Router>,
    pub config: SupervisorConfig,
}

struct Supervised {
    shared: Arc<ChannelShared>,
    failures: VecDeque<Instant>,
    /// Bumped on each failure, so a stale restart timer is ignored.
    generation: u64,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    channels: HashMap<ChannelKey, Supervised>,
    by_actor: HashMap<ActorId, ChannelKey>,
    /// How an idle channel asks for its actor: one for all channels.
    starter: Arc<dyn ActorStarter>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            args,
            channels: HashMap::new(),
            by_actor: HashMap::new(),
            starter: Arc::new(StartBySupervisor(myself)),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Join(key, reply) => {
                let outcome = join(&myself, state, key).await;
                let _ = reply.send(outcome);
            }
            SupervisorMsg::Part(key, reply) => {
                let _ = reply.send(part(state, &key));
            }
            SupervisorMsg::Restart(key, generation) => {
                restart(&myself, state, key, generation).await
            }
            SupervisorMsg::Start(key) => start_idle(&myself, state, key).await,
            SupervisorMsg::DrainAll(deadline, reply) => {
                let _ = reply.send(drain_all(state, deadline).await);
            }
            SupervisorMsg::EditRules(key, edit, reply) => {
                // An idle channel's stored rules are not in the book until its actor loads
                // them: start it, so the actor applies the edit (or refuses it as a conflict)
                // against the rules it really runs, timers then tick, and nothing is merged
                // with stored items the editor never saw.
                let idle = state
                    .channels
                    .get(&key)
                    .is_some_and(|entry| entry.shared.lifecycle.claim_start());
                if idle {
                    start_idle(&myself, state, key.clone()).await;
                }
                let _ = reply.send(edit_rules(state, &key, edit).await);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                on_actor_failed(&myself, state, &cell, error.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.by_actor.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

async fn join(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    key: ChannelKey,
) -> Result<JoinOutcome, SpawnError> {
    let outcome = match state.channels.get_mut(&key) {
        Some(entry) if entry.shared.status() == ChannelStatus::Failed => {
            entry.failures.clear();
            entry.generation += 1;
            entry.shared.lifecycle.set_status(ChannelStatus::Restarting);
            JoinOutcome::Revived
        }
        Some(_) => return Ok(JoinOutcome::AlreadyJoined),
        None => {
            let shared = ChannelShared::new(key.clone(), state.args.router.capacity());
            shared.mailbox.set_starter(Arc::clone(&state.starter));
            let idle = state.args.config.lazy_start
                && state.args.context.rules.get(&key).timers.is_empty();
            if idle {
                shared.lifecycle.set_status(ChannelStatus::Idle);
            }
            state.args.router.prepare(&shared);
            state.args.registry.insert(Arc::clone(&shared));
            state.channels.insert(
                key.clone(),
                Supervised {
                    shared,
                    failures: VecDeque::new(),
                    generation: 0,
                },
            );
            if idle {
                // Its actor starts on its first message (`start_idle`).
                return Ok(JoinOutcome::Joined);
            }
            JoinOutcome::Joined
        }
    };
    spawn_channel(myself, state, &key).await?;
    Ok(outcome)
}

/// Asks the supervisor for an idle channel's actor (`supervisor.lazy_start`).
struct StartBySupervisor(ActorRef<SupervisorMsg>);

impl ActorStarter for StartBySupervisor {
    fn start(&self, key: &ChannelKey) {
        if let Err(error) = self.0.cast(SupervisorMsg::Start(key.clone())) {
            tracing::error!(channel = %key, %error, "the supervisor is gone: cannot start the channel");
        }
    }
}

/// Spawns the actor of a channel that was idle until its first message, if that channel is
/// still supervised, still starting and has no actor.
async fn start_idle(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    key: ChannelKey,
) {
    let due = state.channels.get(&key).is_some_and(|entry| {
        entry.shared.status() == ChannelStatus::Starting && entry.shared.mailbox.actor().is_none()
    });
    if due {
        if let Err(error) = spawn_channel(myself, state, &key).await {
            tracing::error!(channel = %key, %error, "starting an idle channel failed");
        }
    }
}

async fn spawn_channel(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    key: &ChannelKey,
) -> Result<(), SpawnError> {
    let Some(entry) = state.channels.get(key) else {
        return Err(SpawnError::NotSupervised(key.clone()));
    };
    let shared = Arc::clone(&entry.shared);
    let args = ChannelArgs {
        shared: Arc::clone(&shared),
        context: state.args.context.clone(),
    };
    match Actor::spawn_linked(None, ChannelActor, args, myself.get_cell()).await {
        Ok((actor, _)) => {
            state.by_actor.insert(actor.get_id(), key.clone());
            shared.mailbox.set_actor(Some(actor.clone()));
            // Messages that failed to reach the previous actor while this one was starting.
            let _ = actor.send_message(ChannelMsg::Wake);
            Ok(())
        }
        Err(e) => {
            shared
                .lifecycle
                .set_error(ChannelError::SpawnFailed(e.to_string()));
            shared.lifecycle.set_status(ChannelStatus::Failed);
            shared.lifecycle.shed_orphans();
            Err(SpawnError::Spawn(e.to_string()))
        }
    }
}

fn part(state: &mut SupervisorState, key: &ChannelKey) -> bool {
    let Some(entry) = state.channels.remove(key) else {
        return false;
    };
    let shared = entry.shared;
    shared.lifecycle.set_status(ChannelStatus::Parting);
    // The draining actor is no longer this key's: should it fail, a re-joined channel of the
    // same name must not be touched.
    state.by_actor.retain(|_, k| k != key);
    state.args.registry.remove(key);
    state.args.router.forget(&shared);
    if let Some(actor) = shared.mailbox.actor() {
        // Handles what is already in its mailbox, then stops.
        let _ = actor.drain();
    }
    shared.mailbox.set_actor(None);
    shared.lifecycle.shed_orphans();
    true
}

fn on_actor_failed(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    cell: &ActorCell,
    error: String,
) {
    let Some(key) = state.by_actor.remove(&cell.get_id()) else {
        return;
    };
    let config = &state.args.config;
    let Some(entry) = state.channels.get_mut(&key) else {
        return;
    };
    let shared = Arc::clone(&entry.shared);
    shared.mailbox.set_actor(None);
    if shared.status() == ChannelStatus::Parting {
        // Shutting down or parting: no restart; what it left is shed and counted.
        shared.lifecycle.set_error(ChannelError::ActorFailed(error));
        shared.lifecycle.shed_orphans();
        return;
    }
    shared
        .counters
        .restarts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared
        .lifecycle
        .set_error(ChannelError::ActorFailed(error.clone()));
    let now = Instant::now();
    let window = Duration::from_millis(config.restart_window_ms);
    entry.failures.push_back(now);
    while entry
        .failures
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        entry.failures.pop_front();
    }
    entry.generation += 1;
    let failures = entry.failures.len() as u32;
    if failures > config.max_restarts {
        tracing::error!(channel = %key, failures, "channel failed too often; marking it failed");
        shared.lifecycle.set_status(ChannelStatus::Failed);
        shared.lifecycle.shed_orphans();
        return;
    }
    shared.lifecycle.set_status(ChannelStatus::Restarting);
    let backoff = backoff(config, failures);
    tracing::warn!(channel = %key, %error, ?backoff, "channel actor failed; restarting");
    let generation = entry.generation;
    let supervisor = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(backoff).await;
        let _ = supervisor.send_message(SupervisorMsg::Restart(key, generation));
    });
}

/// `restart_backoff_ms * 2^(failures-1)`, capped at `restart_backoff_max_ms`.
fn backoff(config: &SupervisorConfig, failures: u32) -> Duration {
    let factor = 1u64 << failures.saturating_sub(1).min(20);
    Duration::from_millis(
        config
            .restart_backoff_ms
            .saturating_mul(factor)
            .min(config.restart_backoff_max_ms),
    )
}

async fn restart(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    key: ChannelKey,
    generation: u64,
) {
    let due = state.channels.get(&key).is_some_and(|entry| {
        entry.generation == generation && entry.shared.status() == ChannelStatus::Restarting
    });
    if due {
        if let Err(error) = spawn_channel(myself, state, &key).await {
            tracing::error!(channel = %key, %error, "restart failed");
        }
    }
}

/// Hands an edit to the channel's actor, or applies it to a channel without one: the book (if
/// it still holds the edit's base) and the store, like a chat edit, so that the next actor
/// start, which restores stored rules over the book, keeps it.
async fn edit_rules(state: &SupervisorState, key: &ChannelKey, edit: RulesEdit) -> RulesTarget {
    if let Some(actor) = state
        .channels
        .get(key)
        .and_then(|entry| entry.shared.mailbox.actor())
    {
        return RulesTarget::Actor(actor, edit);
    }
    let context = &state.args.context;
    if !context
        .rules
        .replace_if(key, &edit.base, Arc::clone(&edit.rules))
    {
        return RulesTarget::Conflict;
    }
    let store_id: Arc<str> = Arc::from(key.to_string());
    context.store.submit(&store_id, rules_edit(edit)).await;
    RulesTarget::Applied
}

async fn drain_all(state: &mut SupervisorState, deadline: Duration) -> DrainReport {
    let actors: Vec<_> = state
        .channels
        .values()
        .filter_map(|entry| entry.shared.mailbox.actor())
        .collect();
    let channels = state.channels.len();
    // An idle channel (no actor yet, nothing admitted) has nothing to drain.
    let idle = state
        .channels
        .values()
        .filter(|entry| entry.shared.status() == ChannelStatus::Idle)
        .count();
    let drains = actors
        .iter()
        .map(|actor| actor.drain_and_wait(Some(deadline)));
    let drained = idle
        + futures::future::join_all(drains)
            .await
            .into_iter()
            .filter(|r| r.is_ok())
            .count();
    for entry in state.channels.values() {
        entry.shared.lifecycle.set_status(ChannelStatus::Parting);
        entry.shared.mailbox.set_actor(None);
        entry.shared.lifecycle.shed_orphans();
    }
    DrainReport { channels, drained }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let config = SupervisorConfig {
            restart_backoff_ms: 100,
            restart_backoff_max_ms: 1_000,
            ..SupervisorConfig::default()
        };
        let got: Vec<u64> = (1..=6)
            .map(|n| backoff(&config, n).as_millis() as u64)
            .collect();
        assert_eq!(got, [100, 200, 400, 800, 1_000, 1_000]);
    }
}
