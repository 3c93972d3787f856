//! State shared by the listener, the connections, the generator and the handle.
//!
//! Everything lives behind one `Arc<Shared>`: immutable config, atomic counters, the channel
//! table (who joined what; bumping `membership_version` tells the generator to re-read it) and
//! the recorder (sent ids, bot messages, join times, pending `!ping`s, reply latencies). All
//! collections are capped; what did not fit is counted. Locks are std mutexes held briefly and
//! never across an `.await`.

use super::config::SimConfig;
use super::limits::AccountLimiter;
use super::{ReceivedMessage, SimStats};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Bot PRIVMSGs kept in the received ring.
pub const RECEIVED_CAP: usize = 100_000;
/// Accepted JOINs kept.
pub const JOIN_TIMES_CAP: usize = 100_000;
/// `!ping`s awaiting a reply, at most.
pub const PENDING_PINGS_CAP: usize = 100_000;
/// A `!ping` unanswered for this long is forgotten.
pub const PENDING_PING_TTL: Duration = Duration::from_secs(60);
/// Bot accounts whose send limits are tracked.
pub const ACCOUNTS_CAP: usize = 10_000;
/// Largest latency the histogram records (µs); larger values are clamped.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// The sending side of a connection's bounded outbound queue.
pub type Outbound = mpsc::Sender<Wire>;

/// One item of a connection's outbound queue.
#[derive(Debug, Clone)]
pub enum Wire {
    /// A protocol line, without its CRLF (the writer adds it).
    Line(String),
    /// Bytes written exactly as given, no CRLF added: for tests that need what a correct
    /// server never sends (invalid UTF-8, a line that does not end).
    Raw(Vec<u8>),
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Monotonic counters behind [`SimStats`].
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub joins: AtomicU64,
    pub join_violations: AtomicU64,
    pub parts: AtomicU64,
    pub privmsgs_sent: AtomicU64,
    pub events_sent: AtomicU64,
    pub pings_sent: AtomicU64,
    pub bot_messages: AtomicU64,
    pub bot_accepted: AtomicU64,
    pub ratelimited: AtomicU64,
    pub duplicates: AtomicU64,
    pub too_long: AtomicU64,
    pub replies_matched: AtomicU64,
    pub pongs_received: AtomicU64,
    pub malformed_lines: AtomicU64,
    pub backpressure_wait_us: AtomicU64,
    pub generator_skipped: AtomicU64,
    /// Messages not sent because their author was banned or timed out (spam or not).
    pub refused_sanctioned: AtomicU64,
    /// Legitimate messages not sent because a chat mode stopped their author.
    pub legit_silenced: AtomicU64,
    /// Spam not sent because a chat mode stopped its author (never visible).
    pub spam_blocked: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One connected client as the handle sees it.
#[derive(Debug, Clone)]
pub struct ClientEntry {
    pub outbound: Outbound,
    pub close: CancellationToken,
}

/// A channel the sim knows.
#[derive(Debug)]
pub struct ChannelEntry {
    pub name: String,
    pub room_id: u64,
    /// Generator weight (0 for channels created by a JOIN).
    pub weight: f64,
    /// PRIVMSGs sent to this channel.
    pub sent: Arc<AtomicU64>,
    /// Clients joined to it: (client id, outbound queue).
    pub members: Vec<(u64, Outbound)>,
}

/// Why a JOIN could not be added to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    TableFull,
}

/// All channels, configured ones first (their index is their Zipf rank).
#[derive(Debug, Default)]
pub struct ChannelTable {
    pub channels: Vec<ChannelEntry>,
    by_name: HashMap<String, usize>,
    cap: usize,
    /// Channels with at least one member.
    joined: usize,
}

impl ChannelTable {
    pub fn new(config: &SimConfig) -> Self {
        let mut table = Self {
            cap: config.max_channels.max(config.channels.len()),
            ..Self::default()
        };
        for (rank, name) in config.channels.iter().enumerate() {
            let weight = match &config.channel_weights {
                Some(weights) => weights.get(rank).copied().unwrap_or(0.0),
                None => super::content::zipf_weight(rank, config.zipf_exponent),
            };
            table.insert(name.trim_start_matches('#').to_lowercase(), weight);
        }
        table
    }

    fn insert(&mut self, name: String, weight: f64) -> usize {
        if let Some(index) = self.by_name.get(&name) {
            return *index;
        }
        let index = self.channels.len();
        self.channels.push(ChannelEntry {
            room_id: 100_000 + index as u64,
            name: name.clone(),
            weight,
            sent: Arc::new(AtomicU64::new(0)),
            members: Vec::new(),
        });
        self.by_name.insert(name, index);
        index
    }

    /// Adds a client to a channel (creating it with weight 0 if unknown); returns its room id.
    pub fn join(
        &mut self,
        name: &str,
        client: u64,
        outbound: &Outbound,
    ) -> Result<u64, JoinRefusal> {
        let index = match self.by_name.get(name) {
            Some(index) => *index,
            None if self.channels.len() >= self.cap => return Err(JoinRefusal::TableFull),
            None => self.insert(name.to_string(), 0.0),
        };
        let channel = &mut self.channels[index];
        if !channel.members.iter().any(|(id, _)| *id == client) {
            if channel.members.is_empty() {
                self.joined += 1;
            }
            channel.members.push((client, outbound.clone()));
        }
        Ok(channel.room_id)
    }

    /// Sets a known channel's generator weight; false if it is unknown.
    pub fn set_weight(&mut self, name: &str, weight: f64) -> bool {
        match self.by_name.get(name) {
            Some(index) => {
                self.channels[*index].weight = weight.max(0.0);
                true
            }
            None => false,
        }
    }

    /// Removes a client from a channel; true if it was joined.
    pub fn part(&mut self, name: &str, client: u64) -> bool {
        let Some(index) = self.by_name.get(name) else {
            return false;
        };
        let members = &mut self.channels[*index].members;
        let before = members.len();
        members.retain(|(id, _)| *id != client);
        if before > 0 && members.is_empty() {
            self.joined -= 1;
        }
        members.len() != before
    }

    /// Removes a client from every channel.
    pub fn part_all(&mut self, client: u64) {
        for channel in &mut self.channels {
            let before = channel.members.len();
            channel.members.retain(|(id, _)| *id != client);
            if before > 0 && channel.members.is_empty() {
                self.joined -= 1;
            }
        }
    }

    /// The room id of `name`, creating the channel (weight 0) if it is new and the table has
    /// room; None when the table is full.
    pub fn ensure(&mut self, name: &str) -> Option<u64> {
        if let Some(index) = self.by_name.get(name) {
            return Some(self.channels[*index].room_id);
        }
        if self.channels.len() >= self.cap {
            return None;
        }
        let index = self.insert(name.to_string(), 0.0);
        Some(self.channels[index].room_id)
    }

    /// The login of a room id.
    pub fn login_of(&self, room_id: u64) -> Option<String> {
        let index = usize::try_from(room_id.checked_sub(100_000)?).ok()?;
        self.channels.get(index).map(|c| c.name.clone())
    }

    pub fn room_id(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|i| self.channels[*i].room_id)
    }

    /// Channels with at least one client joined (kept as a count: a JOIN of the 100,000th
    /// channel must not walk the other 99,999).
    pub fn joined_count(&self) -> usize {
        self.joined
    }
}

/// Everything recorded for later inspection.
#[derive(Debug)]
pub struct Recorder {
    pub sent_ids: HashMap<String, Vec<String>>,
    pub sent_ids_total: usize,
    pub sent_ids_dropped: u64,
    pub received: VecDeque<ReceivedMessage>,
    pub received_dropped: u64,
    pub join_times: VecDeque<(String, Instant)>,
    pending_pings: HashMap<String, Instant>,
    ping_order: VecDeque<(String, Instant)>,
    pub pending_pings_dropped: u64,
    pub latencies: Histogram<u64>,
    /// Accepted bot replies per parent message id (at most `REPLIES_CAP` ids).
    pub replies_by_parent: HashMap<String, u32>,
    pub replies_by_parent_dropped: u64,
}

/// Parent ids whose reply counts are kept.
pub const REPLIES_CAP: usize = 1_000_000;

impl Recorder {
    pub fn new() -> std::io::Result<Self> {
        let latencies = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            sent_ids: HashMap::new(),
            sent_ids_total: 0,
            sent_ids_dropped: 0,
            received: VecDeque::new(),
            received_dropped: 0,
            join_times: VecDeque::new(),
            pending_pings: HashMap::new(),
            ping_order: VecDeque::new(),
            pending_pings_dropped: 0,
            latencies,
            replies_by_parent: HashMap::new(),
            replies_by_parent_dropped: 0,
        })
    }

    /// Appends a sent PRIVMSG id to its channel's list, within `cap` ids in total.
    pub fn record_sent_id(&mut self, channel: &str, id: &str, cap: usize) {
        if self.sent_ids_total >= cap {
            self.sent_ids_dropped += 1;
            return;
        }
        self.sent_ids_total += 1;
        match self.sent_ids.get_mut(channel) {
            Some(ids) => ids.push(id.to_string()),
            None => {
                self.sent_ids
                    .insert(channel.to_string(), vec![id.to_string()]);
            }
        }
    }

    /// Takes back the last id recorded for `channel` (its delivery failed).
    pub fn unrecord_last_sent_id(&mut self, channel: &str, id: &str) {
        if let Some(ids) = self.sent_ids.get_mut(channel) {
            if ids.last().map(String::as_str) == Some(id) {
                ids.pop();
                self.sent_ids_total -= 1;
            }
        }
    }

    /// Counts an accepted reply to `parent`.
    pub fn count_reply(&mut self, parent: &str) {
        if let Some(n) = self.replies_by_parent.get_mut(parent) {
            *n += 1;
        } else if self.replies_by_parent.len() < REPLIES_CAP {
            self.replies_by_parent.insert(parent.to_string(), 1);
        } else {
            self.replies_by_parent_dropped += 1;
        }
    }

    pub fn record_received(&mut self, message: ReceivedMessage) {
        if self.received.len() >= RECEIVED_CAP {
            self.received.pop_front();
            self.received_dropped += 1;
        }
        self.received.push_back(message);
    }

    pub fn record_join(&mut self, channel: &str, at: Instant) {
        if self.join_times.len() >= JOIN_TIMES_CAP {
            self.join_times.pop_front();
        }
        self.join_times.push_back((channel.to_string(), at));
    }

    /// Remembers a `!ping` so its reply can be matched; forgets expired ones first.
    pub fn add_pending_ping(&mut self, id: &str, sent_at: Instant) {
        self.expire_pending_pings(sent_at);
        if self.pending_pings.len() >= PENDING_PINGS_CAP {
            self.pending_pings_dropped += 1;
            return;
        }
        self.pending_pings.insert(id.to_string(), sent_at);
        self.ping_order.push_back((id.to_string(), sent_at));
    }

    pub fn forget_pending_ping(&mut self, id: &str) {
        self.pending_pings.remove(id);
    }

    fn expire_pending_pings(&mut self, now: Instant) {
        while let Some((id, at)) = self.ping_order.front() {
            let expired = now.saturating_duration_since(*at) > PENDING_PING_TTL;
            let answered = !self.pending_pings.contains_key(id);
            if !(expired || answered || self.ping_order.len() >= PENDING_PINGS_CAP) {
                break;
            }
            // Whatever leaves the order queue leaves the map too, so neither outgrows the cap.
            self.pending_pings.remove(id);
            self.ping_order.pop_front();
        }
    }

    /// Matches a reply to a pending `!ping`; records and returns the latency in µs.
    pub fn match_reply(&mut self, parent_id: &str, arrived: Instant) -> Option<u64> {
        let sent_at = self.pending_pings.remove(parent_id)?;
        let micros = u64::try_from(arrived.saturating_duration_since(sent_at).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latencies.saturating_record(micros);
        Some(micros)
    }

    pub fn pending_ping_count(&self) -> usize {
        self.pending_pings.len()
    }
}

/// The state every task of one simulator shares.
#[derive(Debug)]
pub struct Shared {
    pub config: SimConfig,
    pub counters: Counters,
    rate_bits: AtomicU64,
    pub channels: Mutex<ChannelTable>,
    /// Bumped on every membership change.
    pub membership_version: AtomicU64,
    /// Number of channels with a client joined.
    pub joined: watch::Sender<usize>,
    pub clients: Mutex<HashMap<u64, ClientEntry>>,
    pub next_client_id: AtomicU64,
    pub accounts: Mutex<HashMap<String, AccountLimiter>>,
    pub recorder: Mutex<Recorder>,
    /// Messages expecting a reply or moderation, and matched latencies (bench).
    pub tracker: Mutex<super::track::Tracker>,
    /// Bans, timeouts and chat modes in force; `police_active` is false while none is.
    pub police: Mutex<super::police::ChatPolice>,
    pub police_active: std::sync::atomic::AtomicBool,
    /// The raid to run and when it started; `raid_version` is bumped when it changes.
    pub raid: Mutex<Option<(super::raid::RaidPlan, Instant)>>,
    pub raid_version: AtomicU64,
    /// The content mix now in force; `mix_version` is bumped when it changes.
    pub mix: Mutex<Option<Arc<super::mix::ContentMix>>>,
    pub mix_version: AtomicU64,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// Whether `chatter` may speak in `room_id` now (see [`super::police`]); a refusal is
    /// counted here by whether the message was spam.
    pub fn may_speak(
        &self,
        room_id: u64,
        chatter: &super::content::Chatter,
        emotes_only: bool,
        spam: bool,
    ) -> bool {
        if !self.police_active.load(Ordering::Acquire) {
            return true;
        }
        let verdict = lock(&self.police).may_speak(room_id, chatter, emotes_only, Instant::now());
        match verdict {
            Ok(()) => true,
            Err(super::police::Refusal::Banned | super::police::Refusal::TimedOut) => {
                bump(&self.counters.refused_sanctioned);
                false
            }
            Err(_) if spam => {
                bump(&self.counters.spam_blocked);
                false
            }
            Err(_) => {
                bump(&self.counters.legit_silenced);
                false
            }
        }
    }

    pub fn new(config: SimConfig) -> std::io::Result<Self> {
        Ok(Self {
            counters: Counters::default(),
            rate_bits: AtomicU64::new(config.rate.max(0.0).to_bits()),
            channels: Mutex::new(ChannelTable::new(&config)),
            membership_version: AtomicU64::new(0),
            joined: watch::Sender::new(0),
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            accounts: Mutex::new(HashMap::new()),
            recorder: Mutex::new(Recorder::new()?),
            tracker: Mutex::new(super::track::Tracker::new()?),
            police: Mutex::new(super::police::ChatPolice::default()),
            police_active: std::sync::atomic::AtomicBool::new(false),
            raid: Mutex::new(None),
            raid_version: AtomicU64::new(0),
            mix: Mutex::new(config.mix.clone().map(Arc::new)),
            mix_version: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            config,
        })
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    pub fn set_rate(&self, rate: f64) {
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Runs `change` on the channel table, then tells the generator and `wait_joined` about it.
    pub fn change_membership<R>(&self, change: impl FnOnce(&mut ChannelTable) -> R) -> R {
        let (result, joined) = {
            let mut table = lock(&self.channels);
            let result = change(&mut table);
            (result, table.joined_count())
        };
        self.membership_version.fetch_add(1, Ordering::Release);
        self.joined.send_replace(joined);
        result
    }

    /// Snapshot of all connected clients.
    pub fn client_entries(&self) -> Vec<ClientEntry> {
        lock(&self.clients).values().cloned().collect()
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.counters;
        let sent_per_channel: BTreeMap<String, u64> = lock(&self.channels)
            .channels
            .iter()
            .filter_map(|ch| {
                let sent = ch.sent.load(Ordering::Relaxed);
                (sent > 0).then(|| (ch.name.clone(), sent))
            })
            .collect();
        let (received_dropped, sent_ids_dropped) = {
            let rec = lock(&self.recorder);
            (rec.received_dropped, rec.sent_ids_dropped)
        };
        SimStats {
            connections: read(&c.connections),
            active_connections: read(&c.active_connections),
            refused_connections: read(&c.refused_connections),
            joins: read(&c.joins),
            join_violations: read(&c.join_violations),
            parts: read(&c.parts),
            privmsgs_sent: read(&c.privmsgs_sent),
            events_sent: read(&c.events_sent),
            pings_sent: read(&c.pings_sent),
            bot_messages: read(&c.bot_messages),
            bot_accepted: read(&c.bot_accepted),
            ratelimited: read(&c.ratelimited),
            duplicates: read(&c.duplicates),
            too_long: read(&c.too_long),
            replies_matched: read(&c.replies_matched),
            pongs_received: read(&c.pongs_received),
            malformed_lines: read(&c.malformed_lines),
            backpressure_wait_us: read(&c.backpressure_wait_us),
            generator_skipped: read(&c.generator_skipped),
            refused_sanctioned: read(&c.refused_sanctioned),
            legit_silenced: read(&c.legit_silenced),
            spam_blocked: read(&c.spam_blocked),
            received_dropped,
            sent_ids_dropped,
            sent_per_channel,
        }
    }
}

/// Judges one bot message of `account` to `channel` under the send limits (IRC and Helix
/// share the account's limiter, as on Twitch).
pub fn judge(
    shared: &Shared,
    account: &str,
    channel: &str,
    text: &str,
    is_mod: bool,
    now: Instant,
) -> super::limits::Verdict {
    let limits = &shared.config.limits;
    let mut accounts = lock(&shared.accounts);
    if accounts.len() >= ACCOUNTS_CAP && !accounts.contains_key(account) {
        accounts.clear();
    }
    accounts
        .entry(account.to_string())
        .or_default()
        .check(limits, channel, text, is_mod, now)
}

/// Records one bot message (IRC PRIVMSG or Helix send): matches a reply to its `!ping`,
/// counts replies per parent, keeps it in `received()`. `rejected` overrides the verdict's
/// reason (a Helix drop code).
pub fn record_bot_message(
    shared: &Shared,
    channel: &str,
    text: &str,
    reply_parent: Option<String>,
    verdict: super::limits::Verdict,
    rejected: Option<String>,
    at: Instant,
) {
    let accepted = verdict == super::limits::Verdict::Accepted && rejected.is_none();
    lock(&shared.tracker).bot_message(reply_parent.as_deref(), at);
    let mut recorder = lock(&shared.recorder);
    if let Some(parent) = &reply_parent {
        if recorder.match_reply(parent, at).is_some() {
            bump(&shared.counters.replies_matched);
        }
        if accepted {
            recorder.count_reply(parent);
        }
    }
    recorder.record_received(ReceivedMessage {
        channel: channel.to_string(),
        text: text.to_string(),
        reply_parent,
        at,
        accepted,
        rejected_reason: rejected.or_else(|| verdict.rejected_reason().map(str::to_string)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_match_once_and_expired_pings_are_forgotten() {
        let mut rec = Recorder::new().expect("histogram");
        let t0 = Instant::now();
        rec.add_pending_ping("a", t0);
        assert!(rec
            .match_reply("a", t0 + Duration::from_millis(2))
            .is_some());
        assert!(rec
            .match_reply("a", t0 + Duration::from_millis(3))
            .is_none());
        assert_eq!(rec.latencies.len(), 1);

        rec.add_pending_ping("old", t0);
        rec.add_pending_ping("new", t0 + PENDING_PING_TTL + Duration::from_secs(1));
        assert_eq!(rec.pending_ping_count(), 1);
        assert!(rec.match_reply("old", t0 + PENDING_PING_TTL).is_none());
    }

    #[test]
    fn the_joined_count_follows_joins_and_parts() {
        let mut config = SimConfig::with_channels(3);
        config.max_channels = 4;
        let mut table = ChannelTable::new(&config);
        let (tx, _rx) = mpsc::channel(1);
        table.join("sim0000", 1, &tx).expect("join");
        table.join("sim0000", 2, &tx).expect("join");
        table.join("sim0001", 1, &tx).expect("join");
        table.join("extra", 1, &tx).expect("join creates");
        assert_eq!(table.joined_count(), 3);
        assert_eq!(table.join("another", 1, &tx), Err(JoinRefusal::TableFull));
        assert!(table.part("sim0000", 1));
        assert_eq!(table.joined_count(), 3);
        table.part_all(1);
        assert_eq!(table.joined_count(), 1);
        table.part_all(2);
        assert_eq!(table.joined_count(), 0);
        let counted = table
            .channels
            .iter()
            .filter(|c| !c.members.is_empty())
            .count();
        assert_eq!(counted, 0);
    }

    #[test]
    fn sent_ids_stop_at_the_cap_and_count_the_rest() {
        let mut rec = Recorder::new().expect("histogram");
        for i in 0..5 {
            rec.record_sent_id("c", &i.to_string(), 3);
        }
        assert_eq!(rec.sent_ids["c"], vec!["0", "1", "2"]);
        assert_eq!(rec.sent_ids_dropped, 2);
    }
}
