//! The channels page: every channel the user may see with its state, whether it is joined,
//! messages per second, shed, restarts and last error, kept live by server-sent events
//! (`GET /ui/channels/events`, one `channels` event a second while the session lasts); join a
//! Twitch channel and part one (operators), revive a failed channel (anyone who manages it).
//! With many channels the table shows the busiest [`MAX_ROWS`], and a search by name finds
//! the others.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Serialize;

use super::pages::{csrf_field, layout, refused, respond};
use super::session::{Session, Who};
use super::{channel_of, read_form, Console, SignedIn, St};
use crate::channel::{ChannelShared, ChannelStatus, JoinOutcome};
use crate::engine::Platform;

/// How often the live table is refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// Event streams one session may hold open at once (a few tabs).
pub const MAX_STREAMS_PER_SESSION: usize = 4;

/// One row of the table (also the events' JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `<platform>:<channel>`.
    pub id: String,
    pub platform: &'static str,
    pub channel: String,
    pub state: &'static str,
    pub joined: bool,
    /// Messages handled per second since the last refresh (None on the first).
    pub rate: Option<f64>,
    pub processed: u64,
    pub shed: u64,
    pub restarts: u64,
    pub last_error: String,
}

fn state_name(status: ChannelStatus) -> &'static str {
    match status {
        ChannelStatus::Idle => "idle",
        ChannelStatus::Starting => "starting",
        ChannelStatus::Running => "running",
        ChannelStatus::Restarting => "restarting",
        ChannelStatus::Failed => "failed",
        ChannelStatus::Parting => "parting",
    }
}

/// Rows shown at most (a service may run 100,000 channels: the busiest are shown, a search
/// finds the others).
pub const MAX_ROWS: usize = 500;

/// What the table shows: channels whose name holds `q` (all when empty).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Filter {
    #[serde(default)]
    q: String,
}

/// The channels `who` may see that match `filter`, the busiest first (then by name), at most
/// [`MAX_ROWS`]; and how many matched in all.
fn visible(console: &Console, who: &Who, filter: &Filter) -> (Vec<Arc<ChannelShared>>, usize) {
    let q = filter.q.trim().to_ascii_lowercase();
    let mut channels: Vec<_> = console
        .core
        .registry
        .all()
        .into_iter()
        .filter(|c| who.may_manage(&c.key) && (q.is_empty() || c.key.name.contains(q.as_str())))
        .map(|c| (c.counters.processed.load(Ordering::Relaxed), c))
        .collect();
    let matched = channels.len();
    channels.sort_by(|(a_n, a), (b_n, b)| {
        b_n.cmp(a_n).then_with(|| {
            (a.key.platform.as_str(), &*a.key.name).cmp(&(b.key.platform.as_str(), &*b.key.name))
        })
    });
    channels.truncate(MAX_ROWS);
    (channels.into_iter().map(|(_, c)| c).collect(), matched)
}

fn row(console: &Console, channel: &ChannelShared, rate: Option<f64>) -> Row {
    let key = &channel.key;
    let joined = match key.platform {
        Platform::Twitch => console.core.twitch.status().is_joined(&key.name),
        Platform::Discord => console
            .core
            .discord
            .as_ref()
            .is_some_and(|d| d.is_connected()),
    };
    Row {
        id: format!("{}:{}", key.platform.as_str(), key.name),
        platform: key.platform.as_str(),
        channel: key.name.to_string(),
        state: state_name(channel.status()),
        joined,
        rate,
        processed: channel.counters.processed.load(Ordering::Relaxed),
        shed: channel.counters.shed_total(),
        restarts: channel.counters.restarts.load(Ordering::Relaxed),
        last_error: channel.last_error().unwrap_or_default(),
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_string(), |r| format!("{r:.1}"))
}

/// `GET /ui/channels`.
pub async fn page(
    State(console): St,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let signed = match console.page_session(&headers) {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    let session = &signed.session;
    let (shown, matched) = visible(&console, &session.who, &filter);
    let rows: Vec<Row> = shown.iter().map(|c| row(&console, c, None)).collect();
    let events = format!(
        "/ui/channels/events?{}",
        serde_urlencoded::to_string(&filter).unwrap_or_default()
    );
    let body = html! {
        h1 { "Channels" }
        @if session.who.is_admin() {
            form method="post" action="/ui/channels" class="card inline-form" {
                (csrf_field(session))
                label for="join-login" { "Join a Twitch channel" }
                input id="join-login" name="login" required maxlength="25"
                    pattern="[a-z0-9_]{1,25}" placeholder="login" autocomplete="off";
                button type="submit" { "Join" }
            }
        }
        form method="get" action="/ui/channels" class="inline-form" role="search" {
            label for="channel-search" { "Find a channel" }
            input id="channel-search" name="q" value=(filter.q) autocomplete="off" maxlength="64";
            button type="submit" { "Find" }
        }
        @if matched > rows.len() {
            p { (matched) " channels match; the " (rows.len()) " busiest are shown: find the others by name." }
        }
        div class="table-wrap" {
            table id="channels" data-events=(events) {
                caption { "Live: refreshed every second" }
                thead {
                    tr {
                        th scope="col" { "Channel" }
                        th scope="col" { "Platform" }
                        th scope="col" { "State" }
                        th scope="col" { "Joined" }
                        th scope="col" { "Msgs/s" }
                        th scope="col" { "Handled" }
                        th scope="col" { "Shed" }
                        th scope="col" { "Restarts" }
                        th scope="col" { "Last error" }
                        th scope="col" { "Actions" }
                    }
                }
                tbody {
                    @for r in &rows {
                        (table_row(session, r))
                    }
                }
            }
        }
        @if rows.is_empty() {
            p { "No channel to show." }
        }
    };
    respond(StatusCode::OK, layout("Channels", Some(session), body))
}

fn table_row(session: &Session, r: &Row) -> Markup {
    let base = format!("/ui/channels/{}/{}", r.platform, r.channel);
    html! {
        tr data-channel=(r.id) {
            th scope="row" { a href=(base) { (r.channel) } }
            td { (r.platform) }
            td data-field="state" class=(format!("state-{}", r.state)) { (r.state) }
            td data-field="joined" { @if r.joined { "yes" } @else { "no" } }
            td data-field="rate" { (rate_text(r.rate)) }
            td data-field="processed" { (r.processed) }
            td data-field="shed" { (r.shed) }
            td data-field="restarts" { (r.restarts) }
            td data-field="last_error" { (r.last_error) }
            td class="actions" {
                a href=(format!("{base}/moderation")) { "Moderation log" }
                form method="post" action=(format!("{base}/revive")) class="inline" {
                    (csrf_field(session))
                    button type="submit" aria-label=(format!("Revive {}", r.channel)) { "Revive" }
                }
                @if session.who.is_admin() && r.platform == "twitch" {
                    form method="post" action=(format!("{base}/part")) class="inline" {
                        (csrf_field(session))
                        button type="submit" class="danger" aria-label=(format!("Part {}", r.channel)) { "Part" }
                    }
                }
            }
        }
    }
}

/// `GET /ui/channels/events`: a `channels` event a second with every visible row, while the
/// session lasts (a logout ends the stream at its next tick).
pub async fn events(
    State(console): St,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let signed = match console.change_session(&headers) {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    let Some(slot) = StreamSlot::take(&console, &signed.session) else {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many live views",
            "Close a console tab (each holds a live view), then reload.",
        );
    };
    let start = Tick {
        session_key: super::session::Sessions::key_of(&signed.id),
        console,
        who: signed.session.who,
        filter,
        last: HashMap::new(),
        first: true,
        _slot: slot,
    };
    let stream = futures::stream::unfold(start, |mut tick| async move {
        if !tick.first {
            tokio::time::sleep(REFRESH).await;
        }
        tick.first = false;
        if tick.console.sessions.get_by_key(tick.session_key).is_none()
            || tick.console.core.is_shutting_down()
        {
            return None;
        }
        let rows = tick.rows();
        let data = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
        let event: Result<Event, Infallible> = Ok(Event::default().event("channels").data(data));
        Some((event, tick))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The state of one event stream: the previous counts, for the rates.
struct Tick {
    console: Arc<Console>,
    /// The session's key (its cookie value's hash), to end with it.
    session_key: [u8; 32],
    who: Who,
    filter: Filter,
    last: HashMap<String, (u64, Instant)>,
    first: bool,
    _slot: StreamSlot,
}

/// One open event stream, counted per session and process-wide (a quarter of
/// `http.max_connections`, so live views never starve the listener); given back on drop.
struct StreamSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    session: Arc<std::sync::atomic::AtomicUsize>,
}

impl StreamSlot {
    fn take(console: &Console, session: &Session) -> Option<StreamSlot> {
        let permit = Arc::clone(&console.streams).try_acquire_owned().ok()?;
        let open = &session.streams;
        let before = open.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_STREAMS_PER_SESSION {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot {
            _permit: permit,
            session: Arc::clone(open),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.session.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Tick {
    fn rows(&mut self) -> Vec<Row> {
        let now = Instant::now();
        let (channels, _) = visible(&self.console, &self.who, &self.filter);
        let mut rows = Vec::with_capacity(channels.len());
        let mut next = HashMap::with_capacity(channels.len());
        for channel in &channels {
            let mut r = row(&self.console, channel, None);
            if let Some((before, at)) = self.last.get(&r.id) {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 {
                    r.rate = Some(r.processed.saturating_sub(*before) as f64 / secs);
                }
            }
            next.insert(r.id.clone(), (r.processed, now));
            rows.push(r);
        }
        self.last = next;
        rows
    }
}

#[derive(serde::Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/channels`: join a Twitch channel (operators).
pub async fn join(State(console): St, headers: HeaderMap, body: Body) -> Response {
    let signed = match console.change_session(&headers) {
        Ok(signed) => signed,
        Err(refusal) => return *refusal,
    };
    let form: JoinForm = match read_form(body, 8 * 1024).await {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = console.check_change(&headers, &signed.session, &form.csrf) {
        return *refusal;
    }
    if !signed.session.who.is_admin() {
        return refused(
            StatusCode::FORBIDDEN,
            "Operators only",
            "Joining and parting channels needs the admin token.",
        );
    }
    let login = form.login.trim().to_ascii_lowercase();
    let message = match console.core.join(&login).await {
        Ok(JoinOutcome::Joined) => format!("Joined {login}."),
        Ok(JoinOutcome::AlreadyJoined) => format!("{login} was already joined."),
        Ok(JoinOutcome::Revived) => format!("{login} was failed and has been revived."),
        Err(e) => format!("Could not join: {e}"),
    };
    signed.session.set_flash(message);
    Redirect::to("/ui/channels").into_response()
}

/// Checks a change on one channel: session, CSRF, the right to the channel.
async fn channel_change(
    console: &Console,
    headers: &HeaderMap,
    body: Body,
    platform: &str,
    channel: &str,
) -> Result<(SignedIn, crate::channel::ChannelKey), super::Refusal> {
    let signed = console.change_session(headers)?;
    let form: CsrfForm = read_form(body, 8 * 1024).await?;
    console.check_change(headers, &signed.session, &form.csrf)?;
    let key = channel_of(console, &signed, platform, channel)?;
    Ok((signed, key))
}

/// `POST /ui/channels/{platform}/{channel}/part` (operators, Twitch channels).
pub async fn part(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (signed, key) = match channel_change(&console, &headers, body, &platform, &channel).await {
        Ok(ok) => ok,
        Err(refusal) => return *refusal,
    };
    if !signed.session.who.is_admin() || key.platform != Platform::Twitch {
        return refused(
            StatusCode::FORBIDDEN,
            "Operators only",
            "Parting a Twitch channel needs the admin token.",
        );
    }
    let message = match console.core.part(&key.name).await {
        Ok(true) => format!("Parted {}.", key.name),
        Ok(false) => format!("{} was not joined.", key.name),
        Err(e) => format!("Could not part: {e}"),
    };
    signed.session.set_flash(message);
    Redirect::to("/ui/channels").into_response()
}

/// `POST /ui/channels/{platform}/{channel}/revive`: a fresh actor for a failed channel.
pub async fn revive(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (signed, key) = match channel_change(&console, &headers, body, &platform, &channel).await {
        Ok(ok) => ok,
        Err(refusal) => return *refusal,
    };
    let failed = console
        .core
        .registry
        .get(&key)
        .is_some_and(|c| c.status() == ChannelStatus::Failed);
    if !failed {
        signed
            .session
            .set_flash(format!("{} has not failed; nothing to revive.", key.name));
        return Redirect::to("/ui/channels").into_response();
    }
    let outcome = match key.platform {
        Platform::Twitch => console.core.join(&key.name).await,
        Platform::Discord => console.core.join_discord(&key.name).await,
    };
    let message = match outcome {
        Ok(JoinOutcome::Revived) => format!("{} has been revived.", key.name),
        Ok(_) => format!("{} is running; nothing to revive.", key.name),
        Err(e) => format!("Could not revive: {e}"),
    };
    signed.session.set_flash(message);
    Redirect::to("/ui/channels").into_response()
}
