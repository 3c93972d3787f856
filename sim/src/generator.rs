//! The traffic generator: one task that produces every chat line the sim sends.
//!
//! It paces generated PRIVMSGs at the configured total rate (a few milliseconds per tick, all
//! messages due in a tick sent as a batch), picks each message's channel by Zipf weight among
//! channels a client has joined and its chatter from a Zipf population, mixes in `!ping`,
//! `!echo`, replies and USERNOTICE/CLEARCHAT/CLEARMSG events, and also serves
//! [`SimHandle::send_privmsg`](super::SimHandle::send_privmsg) requests. Being the only writer
//! of PRIVMSGs makes the recorded per-channel id order the delivery order. A full client queue
//! makes it wait (TCP backpressure); the wait is counted, and a backlog beyond one second is
//! skipped and counted rather than burst out later.

use super::chatlines::{self, Privmsg, ReplyParent};
use super::content::{Chatter, ContentPool, ZipfTable};
use super::mix::{ContentMix, Expect};
use super::raid::{RaidPlan, MAX_ACCOUNTS};
use super::state::{bump, lock, Outbound, Shared, Wire};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Pacing tick.
const TICK: Duration = Duration::from_millis(2);
/// Most generated messages per tick, so requests, rate changes and shutdown are seen between
/// batches (4,096 per 2 ms tick allows ~2M msgs/s).
const MAX_BATCH: u64 = 4_096;
/// Generated messages more than this far behind schedule are skipped.
const MAX_BACKLOG: Duration = Duration::from_secs(1);
/// Chatters per channel (Zipf population).
const CHATTERS_PER_CHANNEL: usize = 5_000;
/// Share of chat messages that reply to the previous message in the channel.
const REPLY_FRACTION: f64 = 0.03;
/// Largest share of generated lines that may be events.
const MAX_EVENT_FRACTION: f64 = 0.9;

/// A `send_privmsg` call waiting to be served.
#[derive(Debug)]
pub struct ManualPrivmsg {
    pub channel: String,
    pub user_login: String,
    pub text: String,
    pub reply: oneshot::Sender<Option<String>>,
}

/// The last message sent in a channel (reply parent / CLEARMSG target).
#[derive(Debug, Clone)]
struct Recent {
    parent: ReplyParent,
}

/// A channel some client has joined, as the generator sees it.
#[derive(Debug)]
struct Target {
    name: String,
    room_id: u64,
    sent: Arc<AtomicU64>,
    members: Vec<Outbound>,
    recent: Option<Recent>,
}

/// The generator's copy of the joined channels, rebuilt when membership changes.
#[derive(Debug)]
struct Snapshot {
    version: u64,
    targets: Vec<Target>,
    by_name: HashMap<String, usize>,
    weights: ZipfTable,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            version: u64::MAX,
            targets: Vec::new(),
            by_name: HashMap::new(),
            weights: ZipfTable::from_weights([]),
        }
    }
}

/// Turns elapsed time and the current rate into "messages due now".
#[derive(Debug)]
struct Pacer {
    rate: f64,
    epoch: Instant,
    emitted: u64,
}

impl Pacer {
    fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            epoch: now,
            emitted: 0,
        }
    }

    fn restart(&mut self, rate: f64, now: Instant) {
        *self = Self::new(rate, now);
    }

    /// Messages due at `now`, and how many of those are so late they should be skipped.
    fn due(&self, now: Instant) -> (u64, u64) {
        let elapsed = now.saturating_duration_since(self.epoch).as_secs_f64();
        let scheduled = (elapsed * self.rate).floor() as u64;
        let due = scheduled.saturating_sub(self.emitted);
        let allowed = (MAX_BACKLOG.as_secs_f64() * self.rate).ceil() as u64 + 1;
        (due, due.saturating_sub(allowed))
    }
}

/// The generator task's state.
pub struct Generator {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<ManualPrivmsg>,
    rng: SmallRng,
    content: ContentPool,
    chatter_ranks: ZipfTable,
    snapshot: Snapshot,
    event_fraction: f64,
    /// The content mix in force (bench) and the `mix_version` it was read at.
    mix: Option<Arc<ContentMix>>,
    mix_version: u64,
    /// The raid being sent, and the `raid_version` it was read at.
    raid: Option<RaidRun>,
    raid_version: u64,
}

/// A raid in progress.
#[derive(Debug)]
struct RaidRun {
    plan: RaidPlan,
    started: Instant,
    emitted: u64,
    announced: bool,
    /// Whether each account has posted (its first message carries `first-msg=1`).
    spoke: Vec<bool>,
}

impl Generator {
    pub fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<ManualPrivmsg>,
    ) -> std::io::Result<Self> {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let content = match &shared.config.corpus {
            Some(path) => ContentPool::from_corpus(path, &mut rng)?,
            None => ContentPool::builtin(&mut rng),
        };
        let event_fraction = shared.config.event_fraction.clamp(0.0, MAX_EVENT_FRACTION);
        let largest_population = shared
            .config
            .channel_chatters
            .as_ref()
            .and_then(|c| c.iter().copied().max())
            .unwrap_or(CHATTERS_PER_CHANNEL)
            .max(1);
        let mix = lock(&shared.mix).clone();
        Ok(Self {
            chatter_ranks: ZipfTable::new(largest_population, 1.0),
            mix,
            mix_version: 0,
            raid: None,
            raid_version: 0,
            snapshot: Snapshot::empty(),
            shared,
            requests,
            rng,
            content,
            event_fraction,
        })
    }

    /// Runs until the sim shuts down.
    pub async fn run(mut self) {
        let shutdown = self.shared.shutdown.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pacer = Pacer::new(self.shared.rate(), Instant::now());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                request = self.requests.recv() => match request {
                    Some(request) => self.serve_manual(request).await,
                    None => break,
                },
                _ = tick.tick() => self.generate_due(&mut pacer).await,
            }
        }
    }

    /// Re-reads the channel table if membership changed since the last snapshot.
    fn refresh_snapshot(&mut self) {
        let version = self.shared.membership_version.load(Ordering::Acquire);
        if version == self.snapshot.version {
            return;
        }
        let mut old: HashMap<String, Option<Recent>> = self
            .snapshot
            .targets
            .drain(..)
            .map(|t| (t.name, t.recent))
            .collect();
        let table = lock(&self.shared.channels);
        let mut targets = Vec::new();
        let mut weights = Vec::new();
        for channel in table.channels.iter().filter(|c| !c.members.is_empty()) {
            weights.push(channel.weight);
            targets.push(Target {
                name: channel.name.clone(),
                room_id: channel.room_id,
                sent: channel.sent.clone(),
                members: channel.members.iter().map(|(_, tx)| tx.clone()).collect(),
                recent: old.remove(&channel.name).flatten(),
            });
        }
        drop(table);
        self.snapshot = Snapshot {
            version,
            by_name: targets
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect(),
            targets,
            weights: ZipfTable::from_weights(weights),
        };
    }

    fn generation_finished(&self) -> bool {
        self.shared
            .config
            .max_messages
            .is_some_and(|max| self.shared.counters.privmsgs_sent.load(Ordering::Relaxed) >= max)
    }

    /// Sends every generated message due by now.
    async fn generate_due(&mut self, pacer: &mut Pacer) {
        let now = Instant::now();
        let rate = self.shared.rate();
        if rate <= 0.0 {
            // Paused: no need to follow membership changes (a 100,000-channel join would
            // otherwise rebuild the snapshot on every tick).
            pacer.restart(rate, now);
            return;
        }
        self.refresh_snapshot();
        self.refresh_mix();
        if rate != pacer.rate || self.snapshot.weights.total() <= 0.0 || self.generation_finished()
        {
            pacer.restart(rate, now);
            return;
        }
        let (due, skipped) = pacer.due(now);
        if skipped > 0 {
            pacer.emitted += skipped;
            self.shared
                .counters
                .generator_skipped
                .fetch_add(skipped, Ordering::Relaxed);
        }
        let mut remaining = (due - skipped).min(MAX_BATCH);
        while remaining > 0 && !self.shared.shutdown.is_cancelled() {
            if self.generation_finished() {
                return;
            }
            if self.rng.random_bool(self.event_fraction) {
                self.generate_event().await;
                continue;
            }
            self.generate_chat_message().await;
            pacer.emitted += 1;
            remaining -= 1;
        }
        self.generate_raid_due(now).await;
    }

    /// Takes up a raid started (or replaced) since the last look.
    fn refresh_raid(&mut self) {
        let version = self.shared.raid_version.load(Ordering::Acquire);
        if version == self.raid_version {
            return;
        }
        self.raid_version = version;
        self.raid = lock(&self.shared.raid)
            .clone()
            .map(|(plan, started)| RaidRun {
                spoke: vec![false; plan.accounts.min(MAX_ACCOUNTS)],
                plan,
                started,
                emitted: 0,
                announced: false,
            });
    }

    /// Sends the raid messages due by `now` (raiders a ban, timeout or chat mode stops are
    /// counted and skipped, as Twitch refuses their messages).
    async fn generate_raid_due(&mut self, now: Instant) {
        self.refresh_raid();
        let Some(mut run) = self.raid.take() else {
            return;
        };
        let elapsed = now.saturating_duration_since(run.started);
        if elapsed >= run.plan.duration || run.spoke.is_empty() {
            return;
        }
        let Some(&index) = self.snapshot.by_name.get(&run.plan.channel) else {
            self.raid = Some(run);
            return;
        };
        let room_id = self.snapshot.targets[index].room_id;
        if run.plan.announce && !run.announced {
            run.announced = true;
            let leader = Chatter::raider(room_id, run.spoke.len());
            let viewers = u32::try_from(run.plan.accounts).unwrap_or(u32::MAX);
            let line = chatlines::raid_line(
                &mut self.rng,
                &self.snapshot.targets[index].name,
                room_id,
                &leader,
                viewers,
            );
            if deliver(&self.shared, &self.snapshot.targets[index].members, line).await > 0 {
                bump(&self.shared.counters.events_sent);
            }
        }
        let due = run
            .plan
            .due(elapsed)
            .saturating_sub(run.emitted)
            .min(MAX_BATCH);
        let active = run.plan.active(elapsed).clamp(1, run.spoke.len());
        for _ in 0..due {
            let k = (run.emitted % active as u64) as usize;
            run.emitted += 1;
            let first = !run.spoke[k];
            run.spoke[k] = true;
            let chatter = Chatter::raider(room_id, k);
            let kind = run.plan.mix.pick_kind(&mut self.rng);
            let text = run.plan.mix.text(kind, &self.content, &mut self.rng);
            let expect = kind.expect();
            let spam = expect == Expect::Moderation;
            if !self.shared.may_speak(
                room_id,
                &chatter,
                emotes_only(&text.body, &text.emotes),
                spam,
            ) {
                continue;
            }
            self.emit_privmsg(
                index,
                &chatter,
                &text.body,
                &text.emotes,
                None,
                first,
                false,
                expect,
            )
            .await;
        }
        self.raid = Some(run);
    }

    fn pick_target(&mut self) -> Option<usize> {
        self.snapshot.weights.sample(&mut self.rng)
    }

    fn pick_chatter(&mut self, room_id: u64) -> Chatter {
        // Configured channels have room ids 100_000 + their index (see `ChannelTable`).
        let population = self
            .shared
            .config
            .channel_chatters
            .as_ref()
            .and_then(|c| c.get(room_id.checked_sub(100_000)? as usize).copied())
            .unwrap_or(CHATTERS_PER_CHANNEL);
        let rank = self
            .chatter_ranks
            .sample_within(population, &mut self.rng)
            .unwrap_or(0);
        Chatter::derive(room_id, rank)
    }

    /// Re-reads the content mix if it changed.
    fn refresh_mix(&mut self) {
        let version = self.shared.mix_version.load(Ordering::Acquire);
        if version != self.mix_version {
            self.mix = lock(&self.shared.mix).clone();
            self.mix_version = version;
        }
    }

    async fn generate_event(&mut self) {
        let Some(index) = self.pick_target() else {
            return;
        };
        let room_id = self.snapshot.targets[index].room_id;
        let (chatter, other) = (self.pick_chatter(room_id), self.pick_chatter(room_id));
        let target = &self.snapshot.targets[index];
        let recent = target
            .recent
            .as_ref()
            .map(|r| (r.parent.msg_id.clone(), r.parent.body.clone()));
        let line = chatlines::event_line(
            &mut self.rng,
            &target.name,
            room_id,
            &chatter,
            &other,
            recent.as_ref(),
        );
        if deliver(&self.shared, &target.members, line).await > 0 {
            bump(&self.shared.counters.events_sent);
        }
    }

    /// Chooses what a generated chat message says: `!ping`, `!echo ...` or corpus/built-in text.
    fn pick_text(&mut self) -> (String, String) {
        let roll: f64 = self.rng.random();
        let ping_fraction = self.shared.config.ping_fraction;
        if roll < ping_fraction {
            return ("!ping".to_string(), String::new());
        }
        let text = self.content.pick(&mut self.rng).clone();
        if roll < ping_fraction + self.shared.config.echo_fraction {
            let body = text.body.trim_start_matches('\u{1}').replace('\u{1}', "");
            return (format!("!echo {body}"), String::new());
        }
        (text.body, text.emotes)
    }

    async fn generate_chat_message(&mut self) {
        let Some(index) = self.pick_target() else {
            return;
        };
        let room_id = self.snapshot.targets[index].room_id;
        let mut chatter = self.pick_chatter(room_id);
        let (mut text, mut emotes, expect) = match self.mix.clone() {
            Some(mix) => {
                let kind = mix.pick_kind(&mut self.rng);
                if kind.from_plain_viewer() {
                    // Spam comes from viewers without badges, whom no filter exempts.
                    chatter.is_mod = false;
                    chatter.is_vip = false;
                    chatter.is_broadcaster = false;
                    chatter.sub_months = 0;
                }
                let text = mix.text(kind, &self.content, &mut self.rng);
                (text.body, text.emotes, kind.expect())
            }
            None => {
                let (text, emotes) = self.pick_text();
                (text, emotes, Expect::Nothing)
            }
        };
        let reply = match &self.snapshot.targets[index].recent {
            Some(recent)
                if expect == Expect::Nothing
                    && self.rng.random_bool(REPLY_FRACTION)
                    && !text.starts_with('!') =>
            {
                let prefix = format!("@{} ", recent.parent.user_login);
                emotes = super::content::shift_emotes(&emotes, prefix.chars().count());
                text = format!("{prefix}{text}");
                Some(recent.parent.clone())
            }
            _ => None,
        };
        let spam = expect == Expect::Moderation;
        if !self
            .shared
            .may_speak(room_id, &chatter, emotes_only(&text, &emotes), spam)
        {
            return;
        }
        let first_msg = self.rng.random_bool(0.01);
        let returning = !first_msg && self.rng.random_bool(0.05);
        self.emit_privmsg(
            index,
            &chatter,
            &text,
            &emotes,
            reply.as_ref(),
            first_msg,
            returning,
            expect,
        )
        .await;
    }

    /// Builds, records and delivers one PRIVMSG; returns its id if a client got it.
    #[allow(clippy::too_many_arguments)]
    async fn emit_privmsg(
        &mut self,
        index: usize,
        chatter: &Chatter,
        text: &str,
        emotes: &str,
        reply: Option<&ReplyParent>,
        first_msg: bool,
        returning_chatter: bool,
        expect: Expect,
    ) -> Option<String> {
        let id = chatlines::new_message_id(&mut self.rng);
        let target = &self.snapshot.targets[index];
        let line = chatlines::privmsg_line(&Privmsg {
            channel: &target.name,
            room_id: target.room_id,
            chatter,
            text,
            emotes,
            id: &id,
            first_msg,
            returning_chatter,
            reply,
        });
        let is_ping = is_ping_command(text);
        self.record_before_delivery(&target.name, &id, is_ping);
        if expect != Expect::Nothing {
            lock(&self.shared.tracker).expect(
                &id,
                expect,
                target.room_id,
                &chatter.user_id,
                Instant::now(),
            );
        }
        let delivered = deliver(&self.shared, &target.members, line).await > 0;
        let target = &mut self.snapshot.targets[index];
        if !delivered {
            if expect != Expect::Nothing {
                lock(&self.shared.tracker).forget(&id);
            }
            let mut recorder = lock(&self.shared.recorder);
            recorder.forget_pending_ping(&id);
            recorder.unrecord_last_sent_id(&target.name, &id);
            return None;
        }
        let counters = &self.shared.counters;
        bump(&counters.privmsgs_sent);
        bump(&target.sent);
        if is_ping {
            bump(&counters.pings_sent);
        }
        target.recent = Some(Recent {
            parent: ReplyParent {
                msg_id: id.clone(),
                user_id: chatter.user_id.clone(),
                user_login: chatter.login.clone(),
                display_name: chatter.display_name.clone(),
                body: text.to_string(),
            },
        });
        Some(id)
    }

    /// Records the id (and pending `!ping`) before the line is handed over, so a reply that
    /// arrives at once still finds it.
    fn record_before_delivery(&self, channel: &str, id: &str, is_ping: bool) {
        let config = &self.shared.config;
        if !is_ping && !config.record_sent {
            return;
        }
        let mut recorder = lock(&self.shared.recorder);
        if is_ping {
            recorder.add_pending_ping(id, Instant::now());
        }
        if config.record_sent {
            recorder.record_sent_id(channel, id, config.record_cap);
        }
    }

    async fn serve_manual(&mut self, request: ManualPrivmsg) {
        self.refresh_snapshot();
        let channel = request.channel.trim_start_matches('#').to_lowercase();
        let id = match self.snapshot.by_name.get(&channel).copied() {
            Some(index) => {
                let chatter = Chatter::for_login(&request.user_login.to_lowercase());
                self.emit_privmsg(
                    index,
                    &chatter,
                    &request.text,
                    "",
                    None,
                    false,
                    false,
                    Expect::Nothing,
                )
                .await
            }
            None => None,
        };
        let _ = request.reply.send(id);
    }
}

/// True for `!ping` and `!ping <anything>` (what the bot's built-in command answers).
pub fn is_ping_command(text: &str) -> bool {
    text.split_whitespace().next() == Some("!ping")
}

/// Hands `line` to every member's queue, waiting (and counting the wait) while one is full.
/// Returns how many queues took it.
async fn deliver(shared: &Shared, members: &[Outbound], line: String) -> usize {
    let mut delivered = 0;
    for member in members {
        match member.try_send(Wire::Line(line.clone())) {
            Ok(()) => delivered += 1,
            Err(mpsc::error::TrySendError::Full(line)) => {
                let started = Instant::now();
                tokio::select! {
                    _ = shared.shutdown.cancelled() => {}
                    sent = member.send(line) => delivered += usize::from(sent.is_ok()),
                }
                let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                shared
                    .counters
                    .backpressure_wait_us
                    .fetch_add(waited, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    delivered
}

/// Whether `text` is made of emotes only (every word covered by one of the `emotes` tag's
/// ranges): what emote-only chat lets through.
fn emotes_only(text: &str, emotes: &str) -> bool {
    let ranges = emotes
        .split('/')
        .filter_map(|e| e.split_once(':'))
        .map(|(_, r)| r.split(',').count())
        .sum::<usize>();
    ranges > 0 && ranges >= text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emote_only_text_is_recognised_from_its_emote_ranges() {
        assert!(emotes_only("Kappa Kappa", "25:0-4,6-10"));
        assert!(emotes_only("Kappa PogChamp", "25:0-4/88:6-13"));
        assert!(!emotes_only("Kappa hello", "25:0-4"));
        assert!(!emotes_only("hello", ""));
    }

    #[test]
    fn ping_commands_are_recognised_exactly() {
        assert!(is_ping_command("!ping") && is_ping_command("  !ping now"));
        assert!(!is_ping_command("!pingx") && !is_ping_command("say !ping"));
    }

    #[test]
    fn pacer_spreads_messages_over_time_and_skips_a_large_backlog() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(1_000.0, t0);
        assert_eq!(pacer.due(t0 + Duration::from_millis(10)), (10, 0));
        pacer.emitted = 10;
        assert_eq!(pacer.due(t0 + Duration::from_millis(12)), (2, 0));
        let (due, skipped) = pacer.due(t0 + Duration::from_secs(5));
        assert_eq!(due, 4_990);
        assert_eq!(due - skipped, 1_001);
    }
}
