//! The channel actor: one per joined channel, the only owner of that channel's engine state.
//!
//! It takes [`Delivery`]s from its mailbox in order, runs the engine on each and hands the
//! resulting actions to the [`ActionSink`]. Before each message it first handles any orphans
//! older than it (messages its failed predecessor never got to), so order within a channel holds
//! across restarts. A panic in the engine fails the actor; its supervisor restarts it.
//!
//! Lasting state goes through the state store: the actor loads it when it starts (what the
//! database has plus what the writer still holds, so a restart loses nothing; if the store
//! does not answer in time the channel runs without it and loads it again later), and after
//! every event hands the writer what changed (the engine's journal, the message count and the
//! author's stats, rules edits, the moderation log). That hand-off waits while the writer's
//! queue is full: backpressure reaches this mailbox, then admission. An operator deleting a
//! user's data reaches the engine's copies through [`ChannelMsg::ForgetUser`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::Ordering;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::delivery::Delivery;
use super::lifecycle::{ChannelError, ChannelStatus};
use super::registry::ChannelShared;
use super::rules_book::RulesBook;
use super::{ActionSink, ProcessedTap};
use crate::engine::{
    millis, ChannelRules, ChannelState, ChatEvent, ChatHandler, Drops, EventKind, ForgottenUser,
};
use crate::store::journal::rules_edit;
use crate::store::{Journal, StoreError, StoreHandle, StoredChannel};

pub use crate::store::RulesEdit;

/// First delay before loading stored state again after a failed load (doubles up to 30 s).
const RELOAD_FIRST: Duration = Duration::from_secs(1);
const RELOAD_MAX: Duration = Duration::from_secs(30);

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
    /// A timer tick (sent only to channels with timers, at most one pending).
    Tick,
    /// The stream went live (since unix ms) or offline.
    StreamStatus(Option<u64>),
    /// A platform's report on the channel's own output (its moderation calls are behind the
    /// budget, a chat-mode change was refused): handled like a tick, never counted as chat.
    Feedback(EventKind),
    /// Replace the channel's rules (admin API) if they are still `base` (the version the edit
    /// was made on); replies with the refusal, if any.
    SetRules(RulesEdit, RpcReplyPort<Result<(), RulesRefused>>),
    /// Load the stored state again (after it could not be loaded at start).
    Reload,
    /// Forget what the engine holds about a user (an operator deleting their data); replies
    /// with what went.
    ForgetUser(String, RpcReplyPort<ForgottenUser>),
}

/// Why an edit was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesRefused {
    /// The rules do not validate.
    #[error("invalid rules: {0}")]
    Invalid(String),
    /// The rules changed since the edit read them (e.g. a moderator's `!addcom`).
    #[error("the rules changed since the edit read them")]
    Conflict,
}

/// What every channel actor of a service shares: the engine and where its output goes.
#[derive(Clone)]
pub struct ChannelContext {
    pub handler: Arc<dyn ChatHandler>,
    pub sink: Arc<dyn ActionSink>,
    pub tap: Option<Arc<dyn ProcessedTap>>,
    pub rules: Arc<RulesBook>,
    /// Where lasting state goes (the write-behind writer).
    pub store: StoreHandle,
    /// How long a starting actor waits for its stored state.
    pub load_timeout: Duration,
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
    /// The channel's name in the store (`twitch:login`).
    store_id: Arc<str>,
    /// Whether the stored state is in the engine; if not, when to try again.
    loaded: bool,
    reload_delay: Duration,
    /// What each event changed, as store changes.
    journal: Journal,
    /// The engine's drop counts as last added to the channel's counters.
    drops: Drops,
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
        let key = &args.shared.key;
        let name = key.name.to_string();
        let store_id: Arc<str> = Arc::from(key.to_string());
        // Stored state is loaded in `post_start`, so that spawning (in the supervisor) never
        // waits for the database; messages wait in the mailbox until it is in.
        let rules = args.context.rules.get(key);
        // Rules in the book were compiled when they went in; should they still fail to compile,
        // the channel runs the built-ins and says why rather than not running at all.
        // `$(random)` is seeded from the OS at every start, so chat cannot predict it.
        let seed: u64 = rand::random();
        // Channels running the same rules share their compiled form (compiled once).
        let compiled = args.context.rules.compiled(&rules);
        let engine = match compiled {
            Ok(compiled) => ChannelState::with_compiled(name.clone(), rules, compiled, seed),
            Err(e) => {
                args.shared
                    .lifecycle
                    .set_error(ChannelError::RulesRefused(e.to_string()));
                ChannelState::new(name, seed)
            }
        };
        // The book holds the very `Arc` the engine runs (the built-ins' empty rules after a
        // refusal), so an edit can tell whether it is based on what runs, and no refused
        // version stays in the book for every later edit to conflict with.
        args.context.rules.set(key, Arc::clone(&engine.rules));
        let state = ChannelActorState {
            engine,
            shared: args.shared,
            context: args.context,
            store_id,
            loaded: false,
            reload_delay: RELOAD_FIRST,
            journal: Journal::new(),
            drops: Drops::default(),
        };
        state.note_rules();
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.load(&myself).await;
        if matches!(
            state.shared.status(),
            ChannelStatus::Starting | ChannelStatus::Restarting
        ) {
            state.shared.lifecycle.set_status(ChannelStatus::Running);
        }
        // A tick that died in a failed predecessor's mailbox must not block ticks for good.
        state.shared.mailbox.tick_handled();
        if let Some(since) = state.shared.stream.live_since() {
            handle_stream_status(state, Some(since)).await;
        }
        handle_orphans_before(state, u64::MAX).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: ChannelMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChannelMsg::Deliver(delivery) => {
                let started = Instant::now();
                handle_orphans_before(state, delivery.seq()).await;
                handle_delivery(state, delivery).await;
                // A handler that took long must not hog its worker thread for a whole mailbox:
                // let the tasks queued behind it (other channels, the reader) run first.
                if started.elapsed() >= SLOW_HANDLING {
                    tokio::task::yield_now().await;
                }
            }
            ChannelMsg::Wake => handle_orphans_before(state, u64::MAX).await,
            ChannelMsg::Tick => handle_tick(state).await,
            ChannelMsg::StreamStatus(since) => handle_stream_status(state, since).await,
            ChannelMsg::Feedback(kind) => handle_internal(state, kind).await,
            ChannelMsg::Reload => {
                if !state.loaded {
                    state.load(&myself).await;
                }
            }
            ChannelMsg::ForgetUser(user_id, reply) => {
                let _ = reply.send(state.engine.forget_user(&user_id));
            }
            ChannelMsg::SetRules(edit, reply) => {
                let result = if Arc::ptr_eq(&state.engine.rules, &edit.base) {
                    state
                        .engine
                        .set_rules((*edit.rules).clone())
                        .map_err(|e| RulesRefused::Invalid(e.to_string()))
                } else {
                    Err(RulesRefused::Conflict)
                };
                if result.is_ok() {
                    state
                        .context
                        .rules
                        .set(&state.shared.key, Arc::clone(&state.engine.rules));
                    state.note_rules();
                    let edit = RulesEdit {
                        base: edit.base,
                        rules: Arc::clone(&state.engine.rules),
                    };
                    let changes = rules_edit(edit);
                    state.context.store.submit(&state.store_id, changes).await;
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

impl ChannelActorState {
    /// Adds what the engine's bounded state dropped since the last event to the channel's
    /// counters (`firehose_engine_state_dropped_total`).
    fn count_drops(&mut self) {
        let now = self.engine.runtime.drops();
        if now != self.drops {
            self.shared.counters.add_engine_dropped(&self.drops, &now);
            self.drops = now;
        }
    }

    /// Publishes what the scheduler needs to know about the current rules: ticks for timers,
    /// and for the raid defence (its revert after calm runs on the tick).
    fn note_rules(&self) {
        let rules = &self.engine.rules;
        let defence = rules.defence.enabled || self.engine.runtime.defence.holds_steps();
        self.shared
            .mailbox
            .set_wants_ticks(!rules.timers.is_empty() || defence);
    }

    /// Moderators edit rules from chat (`!addcom`...): keep the book current, so a restarted
    /// actor and the admin API see the edit; the edit, to be stored.
    fn write_back_rules(&self, before: &Arc<ChannelRules>) -> Option<RulesEdit> {
        if Arc::ptr_eq(before, &self.engine.rules) {
            return None;
        }
        self.context
            .rules
            .set(&self.shared.key, Arc::clone(&self.engine.rules));
        self.note_rules();
        Some(RulesEdit {
            base: Arc::clone(before),
            rules: Arc::clone(&self.engine.rules),
        })
    }

    /// Loads the stored state into the engine, or runs without it for now and tries again.
    async fn load(&mut self, myself: &ActorRef<ChannelMsg>) {
        let loaded = load_stored(&self.context, &self.store_id).await;
        let restored = loaded.and_then(|stored| self.restore(&stored));
        if let Err(e) = restored {
            if matches!(e, LoadError::Rules(_)) {
                // The store answered, so the writer did not count this one.
                self.context
                    .store
                    .status
                    .load_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.schedule_reload(myself, &e);
        }
    }

    /// Puts the stored state into the engine: the stored rules, if the channel has any (they
    /// hold every edit made so far, chat and admin, since edits reach the writer before a load
    /// does), then counters, command uses and live warnings. Stored rules that do not compile
    /// fail the load (nothing is restored, the channel says why and tries again): never read
    /// as "no rules".
    fn restore(&mut self, stored: &StoredChannel) -> Result<(), LoadError> {
        if !stored.rules.is_empty() {
            let rules = stored
                .channel_rules()
                .map_err(|e| LoadError::Rules(e.to_string()))?
                .unwrap_or_default();
            let compiled = self
                .context
                .rules
                .compiled(&rules)
                .map_err(|e| LoadError::Rules(e.to_string()))?;
            self.engine.set_compiled(Arc::new(rules), compiled);
            self.context
                .rules
                .set(&self.shared.key, Arc::clone(&self.engine.rules));
            self.note_rules();
        }
        self.engine
            .restore(&stored.saved_state(), millis(SystemTime::now()));
        // Restored raid defence steps need the tick that reverts them.
        self.note_rules();
        self.loaded = true;
        self.shared
            .lifecycle
            .clear_error_if(|e| matches!(e, ChannelError::StateNotLoaded(_)));
        Ok(())
    }

    /// Runs without stored state for now and tries again later.
    fn schedule_reload(&mut self, myself: &ActorRef<ChannelMsg>, error: &LoadError) {
        self.shared
            .lifecycle
            .set_error(ChannelError::StateNotLoaded(error.to_string()));
        let delay = self.reload_delay;
        self.reload_delay = (self.reload_delay * 2).min(RELOAD_MAX);
        // The timer task ends by itself; nothing waits for it.
        drop(myself.send_after(delay, || ChannelMsg::Reload));
    }
}

/// Why the stored state could not be loaded (the channel runs without it and tries again).
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The store answered with rules this build cannot run.
    #[error("stored rules refused: {0}")]
    Rules(String),
}

/// Asks the writer for the channel's stored state, within the load timeout.
async fn load_stored(context: &ChannelContext, id: &Arc<str>) -> Result<StoredChannel, LoadError> {
    match tokio::time::timeout(context.load_timeout, context.store.load(id)).await {
        Ok(loaded) => Ok(loaded?),
        Err(_) => {
            context
                .store
                .status
                .load_failures
                .fetch_add(1, Ordering::Relaxed);
            Err(LoadError::Timeout(context.load_timeout))
        }
    }
}

async fn handle_tick(state: &mut ChannelActorState) {
    state.shared.mailbox.tick_handled();
    handle_internal(state, EventKind::Tick).await;
}

async fn handle_stream_status(state: &mut ChannelActorState, since: Option<u64>) {
    handle_internal(
        state,
        EventKind::StreamStatus {
            online: since.is_some(),
            started_at_ms: since,
        },
    )
    .await;
}

/// Runs the engine on an event the service made (not chat): ticks, stream status, feedback.
async fn handle_internal(state: &mut ChannelActorState, kind: EventKind) {
    let event = ChatEvent {
        platform: state.shared.key.platform,
        channel: Arc::clone(&state.shared.key.name),
        kind,
    };
    let actions = state
        .context
        .handler
        .handle(&mut state.engine, &event, SystemTime::now());
    let changes = state
        .journal
        .changes(&event, &actions, state.engine.take_changes(), None);
    state.count_drops();
    for action in actions {
        state.context.sink.submit(&event, action, None);
    }
    state.context.store.submit(&state.store_id, changes).await;
}

async fn handle_orphans_before(state: &mut ChannelActorState, seq: u64) {
    for orphan in state.shared.lifecycle.take_orphans_before(seq) {
        handle_delivery(state, orphan).await;
    }
}

async fn handle_delivery(state: &mut ChannelActorState, mut delivery: Delivery) {
    let seq = delivery.seq();
    let received_at = delivery.received_at();
    let Some(event) = delivery.begin() else {
        return;
    };
    let rules_before = Arc::clone(&state.engine.rules);
    let actions = state
        .context
        .handler
        .handle(&mut state.engine, event, SystemTime::now());
    let edited = state.write_back_rules(&rules_before);
    let changes = state
        .journal
        .changes(event, &actions, state.engine.take_changes(), edited);
    state.count_drops();
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
    state.context.store.submit(&state.store_id, changes).await;
}
