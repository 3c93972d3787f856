//! A channel's page: its rules (commands, keywords, timers, filters, nuke settings) to list,
//! add, edit, delete and switch to shadow mode; the "try it" box; the audit log of edits.
//!
//! Every change goes through the admin API's checked edit ([`crate::http::rules::change_item`]):
//! the same validation (a bad pattern is refused with the regex error and its position, shown
//! next to the field it came from), the same conflict check (a moderator's `!addcom` in
//! between: refused, nothing lost), the same audit entry (who: the session's user). Items are
//! edited as TOML, the rules files' own format; quick forms add a command or a keyword.
//!
//! "Try it" replays pasted chat (or a file read by the page's script into the box) through the
//! channel's current rules in a copy of a fresh engine state ([`crate::app::replay`]): nothing
//! is sent, counted or stored. A line is either a raw Twitch IRC line or `user: text`, with an
//! optional role, `user [mod]: text` (mod, vip, sub, broadcaster).

use std::io::Cursor;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Serialize;
use serde_json::{json, Value};

use super::pages::{csrf_field, field_error, layout, respond};
use super::session::Session;
use super::{channel_of, read_form, Console, SignedIn, St};
use crate::app::audit::AuditEntry;
use crate::channel::ChannelKey;
use crate::config::is_login;
use crate::engine::rules::NukeSettings;
use crate::engine::ChannelRules;
use crate::http::rules::{apply, change_item, item_json, ApiError, Editor, KINDS};

/// Largest rules edit form: an item (at most the API's body limit) URL-encoded (up to three
/// bytes a byte) with the other fields.
const EDIT_FORM_BYTES: usize = 3 * crate::http::rules::MAX_BODY_BYTES + 4096;

/// Largest "try it" form: `console.try_max_bytes` URL-encoded.
fn try_form_bytes(console: &Console) -> usize {
    3 * console.core.config.console.try_max_bytes + 4096
}

/// Audit entries shown on the page.
const AUDIT_SHOWN: usize = 50;
/// Actions shown from one "try it" run.
const TRY_SHOWN: usize = 1_000;

/// Every field any form of the page posts (each form fills its own).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    /// command | keyword | item | delete | shadow | nuke
    #[serde(default)]
    op: String,
    /// Which form it came from (to show an error next to its field).
    #[serde(default)]
    form: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    /// An item (or the nuke settings) as TOML.
    #[serde(default)]
    item: String,
    #[serde(default)]
    response: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    user_cooldown_s: String,
    #[serde(default)]
    regex: String,
}

/// A refused change, shown next to the field it is about, with what was typed.
#[derive(Debug, Clone, Default)]
struct Feedback {
    form: String,
    field: &'static str,
    error: String,
    values: EditForm,
}

impl Feedback {
    fn error_for(&self, form: &str, field: &str) -> Option<&str> {
        (self.form == form && self.field == field).then_some(self.error.as_str())
    }

    fn value<'a>(&'a self, form: &str, pick: impl Fn(&'a EditForm) -> &'a str) -> &'a str {
        if self.form == form {
            pick(&self.values)
        } else {
            ""
        }
    }
}

/// One "try it" run.
#[derive(Debug, Clone, Default)]
struct Tried {
    input: String,
    error: Option<String>,
    records: Vec<Value>,
    lines: u64,
    malformed: u64,
    more: bool,
}

/// `GET /ui/channels/{platform}/{channel}`.
pub async fn page(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
) -> Response {
    let (signed, key) = match console.page_channel(&headers, &platform, &channel) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    render(&console, &signed.session, &key, None, None, StatusCode::OK).await
}

/// The page, with a refused change's feedback or a "try it" run when there is one.
async fn render(
    console: &Console,
    session: &Session,
    key: &ChannelKey,
    feedback: Option<Feedback>,
    tried: Option<Tried>,
    status: StatusCode,
) -> Response {
    let rules = console.core.current_rules(key).await;
    let audit = console.core.audit_log(key, AUDIT_SHOWN).await;
    let feedback = feedback.unwrap_or_default();
    let base = format!("/ui/channels/{}/{}", key.platform.as_str(), key.name);
    let title = format!("{} ({})", key.name, key.platform.as_str());
    let body = html! {
        h1 { (title) }
        p { a href=(format!("{base}/moderation")) { "Moderation log" } }
        nav aria-label="Sections" class="sections" {
            a href="#commands" { "Commands" } " · "
            a href="#keywords" { "Keywords" } " · "
            a href="#timers" { "Timers" } " · "
            a href="#filters" { "Filters" } " · "
            a href="#nuke" { "Nuke" } " · "
            a href="#try" { "Try it" } " · "
            a href="#audit" { "Audit log" }
        }
        (quick_forms(session, &base, &feedback))
        @for kind in KINDS {
            (item_section(session, &base, &rules, kind, &feedback))
        }
        (new_item_form(session, &base, &feedback))
        (nuke_form(session, &base, &rules.nuke, &feedback))
        (try_section(session, &base, tried.as_ref(), console.core.config.console.try_max_bytes))
        (audit_section(&audit))
    };
    respond(status, layout(&title, Some(session), body))
}

fn level_options(selected: &str) -> Markup {
    let selected = if selected.is_empty() {
        "everyone"
    } else {
        selected
    };
    html! {
        @for level in ["everyone", "subscriber", "regular", "vip", "moderator", "broadcaster"] {
            option value=(level) selected[level == selected] { (level) }
        }
    }
}

/// An input with its label and, when refused, its error next to it.
fn field(
    form: &str,
    name: &'static str,
    label: &str,
    value: &str,
    feedback: &Feedback,
    required: bool,
) -> Markup {
    let id = format!("{form}-{name}");
    let error_id = format!("{id}-error");
    let error = feedback.error_for(form, name);
    html! {
        div class="field" {
            label for=(id) { (label) }
            input id=(id) name=(name) value=(value) required[required]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| error_id.as_str())];
            (field_error(&error_id, error))
        }
    }
}

fn quick_forms(session: &Session, base: &str, feedback: &Feedback) -> Markup {
    let c = "new-command";
    let k = "new-keyword";
    html! {
        section class="grid" {
            form method="post" action=(format!("{base}/rules")) class="card" id=(c) {
                h2 { "Add a command" }
                (csrf_field(session))
                input type="hidden" name="op" value="command";
                input type="hidden" name="form" value=(c);
                (field(c, "name", "Name (with its prefix, e.g. !discord)", feedback.value(c, |v| &v.name), feedback, true))
                (field(c, "response", "Response", feedback.value(c, |v| &v.response), feedback, true))
                div class="field" {
                    label for="new-command-level" { "Who may use it" }
                    select id="new-command-level" name="level" { (level_options(feedback.value(c, |v| &v.level))) }
                }
                (field(c, "user_cooldown_s", "Per-user cooldown (seconds)", feedback.value(c, |v| &v.user_cooldown_s), feedback, false))
                (field_error("new-command-error", feedback.error_for(c, "")))
                button type="submit" { "Add command" }
            }
            form method="post" action=(format!("{base}/rules")) class="card" id=(k) {
                h2 { "Add a keyword" }
                (csrf_field(session))
                input type="hidden" name="op" value="keyword";
                input type="hidden" name="form" value=(k);
                (field(k, "name", "Name", feedback.value(k, |v| &v.name), feedback, true))
                (field(k, "regex", "Pattern (regex)", feedback.value(k, |v| &v.regex), feedback, true))
                (field(k, "response", "Response", feedback.value(k, |v| &v.response), feedback, true))
                (field_error("new-keyword-error", feedback.error_for(k, "")))
                button type="submit" { "Add keyword" }
            }
        }
    }
}

/// The items of one kind, as they are now (JSON, for the summary and the shadow flag).
fn items_of(rules: &ChannelRules, kind: &str) -> Vec<(String, Value, String)> {
    fn each<T: Serialize>(items: &[T]) -> Vec<(String, Value, String)> {
        items
            .iter()
            .map(|item| {
                let value = serde_json::to_value(item).unwrap_or(Value::Null);
                let name = value["name"].as_str().unwrap_or_default().to_string();
                let text = toml::to_string(item)
                    .unwrap_or_else(|e| format!("# cannot be shown as TOML: {e}\n"));
                (name, value, text)
            })
            .collect()
    }
    match kind {
        "commands" => each(&rules.commands),
        "keywords" => each(&rules.keywords),
        "timers" => each(&rules.timers),
        _ => each(&rules.filters),
    }
}

fn summary(kind: &str, item: &Value) -> String {
    let text = |k: &str| item[k].as_str().unwrap_or_default().to_string();
    match kind {
        "commands" => text("response"),
        "keywords" => {
            let regex = text("regex");
            if regex.is_empty() {
                format!("words: {}", item["groups"])
            } else {
                format!("/{regex}/ → {}", text("response"))
            }
        }
        "timers" => format!("every {} s: {}", item["interval_s"], text("message")),
        _ => format!("{} → {}", text("kind"), item["action"]),
    }
}

fn item_section(
    session: &Session,
    base: &str,
    rules: &ChannelRules,
    kind: &str,
    feedback: &Feedback,
) -> Markup {
    let items = items_of(rules, kind);
    html! {
        section id=(kind) {
            h2 { (capitalised(kind)) " (" (items.len()) ")" }
            @if items.is_empty() {
                p { "None." }
            }
            ul class="items" {
                @for (name, value, text) in &items {
                    @let form_id = format!("item:{kind}:{name}");
                    @let shadow = value["shadow"].as_bool().unwrap_or(false);
                    @let enabled = value["enabled"].as_bool().unwrap_or(true);
                    @let error = feedback.error_for(&form_id, "item");
                    @let area_id = format!("edit-{kind}-{}", slug(name));
                    li class="item" data-kind=(kind) data-name=(name) {
                        div class="item-head" {
                            strong { (name) }
                            @if shadow { span class="badge" { "shadow" } }
                            @if !enabled { span class="badge" { "disabled" } }
                            span class="summary" { (summary(kind, value)) }
                        }
                        div class="item-actions" {
                            form method="post" action=(format!("{base}/rules")) class="inline" {
                                (csrf_field(session))
                                input type="hidden" name="op" value="shadow";
                                input type="hidden" name="kind" value=(kind);
                                input type="hidden" name="name" value=(name);
                                button type="submit" aria-label=(format!("Shadow mode {} for {name}", if shadow { "off" } else { "on" })) {
                                    @if shadow { "Shadow off" } @else { "Shadow on" }
                                }
                            }
                            form method="post" action=(format!("{base}/rules")) class="inline" {
                                (csrf_field(session))
                                input type="hidden" name="op" value="delete";
                                input type="hidden" name="kind" value=(kind);
                                input type="hidden" name="name" value=(name);
                                button type="submit" class="danger" aria-label=(format!("Delete {name}")) { "Delete" }
                            }
                        }
                        details open[error.is_some()] {
                            summary { "Edit " (name) }
                            form method="post" action=(format!("{base}/rules")) {
                                (csrf_field(session))
                                input type="hidden" name="op" value="item";
                                input type="hidden" name="form" value=(form_id);
                                input type="hidden" name="kind" value=(kind);
                                input type="hidden" name="name" value=(name);
                                label for=(area_id) { "TOML of " (name) }
                                textarea id=(area_id) name="item" rows="8" spellcheck="false"
                                    aria-invalid=[error.map(|_| "true")]
                                    aria-describedby=[error.map(|_| format!("{area_id}-error"))] {
                                    @if error.is_some() { (feedback.values.item) } @else { (text) }
                                }
                                (field_error(&format!("{area_id}-error"), error))
                                button type="submit" { "Save " (name) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn new_item_form(session: &Session, base: &str, feedback: &Feedback) -> Markup {
    let f = "new-item";
    let chosen = feedback.value(f, |v| &v.kind);
    html! {
        section {
            form method="post" action=(format!("{base}/rules")) class="card" id=(f) {
                h2 { "Add or replace any item (TOML)" }
                (csrf_field(session))
                input type="hidden" name="op" value="item";
                input type="hidden" name="form" value=(f);
                div class="field" {
                    label for="new-item-kind" { "Kind" }
                    select id="new-item-kind" name="kind" {
                        @for kind in KINDS {
                            option value=(kind) selected[kind == chosen] { (kind) }
                        }
                    }
                }
                (field(f, "name", "Name", feedback.value(f, |v| &v.name), feedback, true))
                @let error = feedback.error_for(f, "item");
                div class="field" {
                    label for="new-item-item" { "Item (TOML, as in a rules file, without the [[kind]] header)" }
                    textarea id="new-item-item" name="item" rows="6" spellcheck="false"
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "new-item-item-error")] {
                        (feedback.value(f, |v| &v.item))
                    }
                    (field_error("new-item-item-error", error))
                }
                button type="submit" { "Save item" }
            }
        }
    }
}

fn nuke_form(session: &Session, base: &str, nuke: &NukeSettings, feedback: &Feedback) -> Markup {
    let error = feedback.error_for("nuke", "item");
    let text = toml::to_string(nuke).unwrap_or_default();
    html! {
        section id="nuke" {
            form method="post" action=(format!("{base}/rules")) class="card" {
                h2 { "Nuke settings" }
                (csrf_field(session))
                input type="hidden" name="op" value="nuke";
                input type="hidden" name="form" value="nuke";
                label for="nuke-item" { "Nuke settings (TOML)" }
                textarea id="nuke-item" name="item" rows="6" spellcheck="false"
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "nuke-item-error")] {
                    @if error.is_some() { (feedback.values.item) } @else { (text) }
                }
                (field_error("nuke-item-error", error))
                button type="submit" { "Save nuke settings" }
            }
        }
    }
}

fn try_section(session: &Session, base: &str, tried: Option<&Tried>, max_bytes: usize) -> Markup {
    let input = tried.map(|t| t.input.as_str()).unwrap_or_default();
    html! {
        section id="try" {
            form method="post" action=(format!("{base}/try")) class="card" {
                h2 { "Try it" }
                (csrf_field(session))
                p class="hint" {
                    "One chat line per line: " code { "user: text" } ", " code { "user [mod]: text" }
                    " (mod, vip, sub, broadcaster), or raw Twitch IRC lines. Nothing is sent."
                }
                label for="try-lines" { "Chat lines" }
                textarea id="try-lines" name="lines" rows="5" spellcheck="false" { (input) }
                label for="try-file" { "Or a recorded file (raw IRC lines)" }
                input id="try-file" type="file" accept=".txt,.log,text/plain" data-fills="try-lines"
                    data-max-bytes=(max_bytes);
                button type="submit" { "Run the rules" }
            }
            @if let Some(tried) = tried {
                div id="try-result" {
                    @if let Some(error) = &tried.error {
                        p class="field-error" role="alert" { (error) }
                    } @else {
                        p { (tried.lines) " lines, " (tried.malformed) " not readable, "
                            (tried.records.len()) " actions" @if tried.more { " (stopped at a bound: the first " (tried.records.len()) " shown)" } "." }
                        @if !tried.records.is_empty() {
                            div class="table-wrap" {
                                table id="try-actions" {
                                    caption { "What the rules would do" }
                                    thead { tr {
                                        th scope="col" { "Message" } th scope="col" { "User" }
                                        th scope="col" { "Action" } th scope="col" { "Rule" }
                                        th scope="col" { "Text" } th scope="col" { "Shadow" }
                                    } }
                                    tbody {
                                        @for r in &tried.records {
                                            tr {
                                                td { (r["msg_id"].as_str().unwrap_or("timer")) }
                                                td { (r["user"].as_str().unwrap_or("")) }
                                                td data-field="action" { (r["action"].as_str().unwrap_or("")) }
                                                td { (r["rule"].as_str().unwrap_or("")) }
                                                td data-field="text" { (r["text"].as_str().unwrap_or("")) }
                                                td { @if r["shadow"].as_bool().unwrap_or(false) { "yes" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn audit_section(audit: &Result<Vec<AuditEntry>, String>) -> Markup {
    html! {
        section id="audit" {
            h2 { "Audit log" }
            @match audit {
                Err(error) => p class="field-error" role="alert" { "The audit log cannot be read now: " (error) },
                Ok(entries) if entries.is_empty() => p { "No rule edits yet." },
                Ok(entries) => div class="table-wrap" {
                    table id="audit-log" {
                        caption { "Rule edits, newest first" }
                        thead { tr {
                            th scope="col" { "When (UTC)" } th scope="col" { "Who" } th scope="col" { "Via" }
                            th scope="col" { "Item" } th scope="col" { "Before" } th scope="col" { "After" }
                        } }
                        tbody {
                            @for e in entries {
                                tr {
                                    td { (when(e.at_ms)) }
                                    td data-field="who" { (e.who) }
                                    td { (e.via) }
                                    td data-field="item" { (e.kind) " " (e.name) }
                                    td { pre { (shown(&e.before)) } }
                                    td { pre { (shown(&e.after)) } }
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}

fn shown(value: &Option<Value>) -> String {
    match value {
        None => "(none)".into(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` of a time in ms since the epoch.
pub fn when(at_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(at_ms).unwrap_or(0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn capitalised(kind: &str) -> String {
    let mut chars = kind.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An id-safe form of an item name (ids must not hold spaces; names are hostile).
fn slug(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `POST /ui/channels/{platform}/{channel}/rules`: one change of the rules.
pub async fn edit(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (signed, key, form) = match checked::<EditForm>(
        &console,
        &headers,
        body,
        EDIT_FORM_BYTES,
        (&platform, &channel),
        |f| &f.csrf,
    )
    .await
    {
        Ok(ok) => ok,
        Err(refusal) => return *refusal,
    };
    let editor = Editor {
        who: signed.session.who.audit_name(),
        via: "console",
    };
    let result = apply_edit(&console, &key, &form, &editor).await;
    match result {
        Ok(done) => {
            signed.session.set_flash(done);
            let anchor = match form.op.as_str() {
                "command" => "commands",
                "keyword" => "keywords",
                "nuke" => "nuke",
                _ => KINDS
                    .iter()
                    .find(|k| **k == form.kind)
                    .copied()
                    .unwrap_or("main"),
            };
            let base = format!("/ui/channels/{}/{}", key.platform.as_str(), key.name);
            Redirect::to(&format!("{base}#{anchor}")).into_response()
        }
        Err((field, error)) => {
            let status = if error.0 == StatusCode::CONFLICT {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            let feedback = Feedback {
                form: form.form.clone(),
                field,
                error: error.1,
                values: form,
            };
            render(
                &console,
                &signed.session,
                &key,
                Some(feedback),
                None,
                status,
            )
            .await
        }
    }
}

/// Session, form, CSRF and the right to the channel of a change.
async fn checked<F: serde::de::DeserializeOwned>(
    console: &Console,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    (platform, channel): (&str, &str),
    csrf: impl Fn(&F) -> &str,
) -> Result<(SignedIn, ChannelKey, F), super::Refusal> {
    let signed = console.change_session(headers)?;
    let form: F = read_form(body, limit).await?;
    console.check_change(headers, &signed.session, csrf(&form))?;
    let key = channel_of(console, &signed, platform, channel)?;
    Ok((signed, key, form))
}

type EditRefusal = (&'static str, ApiError);

fn bad(field: &'static str, message: impl Into<String>) -> EditRefusal {
    (field, ApiError(StatusCode::BAD_REQUEST, message.into()))
}

/// Which field an error of the checked edit is about, by what it names.
fn field_of(error: &str, candidates: &[&'static str]) -> &'static str {
    let lower = error.to_ascii_lowercase();
    for field in candidates {
        let named = match *field {
            "regex" => lower.contains("regex") || lower.contains("pattern"),
            "name" => lower.contains("name"),
            "response" => lower.contains("response") || lower.contains("template"),
            "user_cooldown_s" => lower.contains("cooldown"),
            _ => false,
        };
        if named {
            return field;
        }
    }
    ""
}

async fn apply_edit(
    console: &Console,
    key: &ChannelKey,
    form: &EditForm,
    editor: &Editor,
) -> Result<String, EditRefusal> {
    let core = &console.core;
    // The quick forms' names are typed (spaces around them are a slip); the others come from
    // the page's hidden fields and name an item exactly as it is.
    let name = match form.op.as_str() {
        "command" | "keyword" => form.name.trim(),
        _ => form.name.as_str(),
    };
    match form.op.as_str() {
        "command" => {
            let cooldown = match form.user_cooldown_s.trim() {
                "" => 0,
                text => text.parse::<u64>().map_err(|_| {
                    bad(
                        "user_cooldown_s",
                        "the cooldown must be a whole number of seconds",
                    )
                })?,
            };
            let level = if form.level.is_empty() {
                "everyone"
            } else {
                form.level.as_str()
            };
            let body = json!({"name": name, "response": form.response, "level": level, "user_cooldown_s": cooldown});
            let fields = ["name", "response", "user_cooldown_s"];
            change(core, key, "commands", name, Some(&body), editor, &fields).await?;
            Ok(format!("Command {name} saved."))
        }
        "keyword" => {
            let body = json!({"name": name, "regex": form.regex, "response": form.response});
            let fields = ["regex", "name", "response"];
            change(core, key, "keywords", name, Some(&body), editor, &fields).await?;
            Ok(format!("Keyword {name} saved."))
        }
        "item" => {
            let body = toml_item(&form.item).map_err(|e| bad("item", e))?;
            change(core, key, &form.kind, name, Some(&body), editor, &[]).await?;
            Ok(format!("{} {name} saved.", form.kind))
        }
        "delete" => {
            change(core, key, &form.kind, name, None, editor, &[]).await?;
            Ok(format!("{} {name} deleted.", form.kind))
        }
        "shadow" => {
            let current =
                item_json(&*core.current_rules(key).await, &form.kind, name).ok_or_else(|| {
                    (
                        "",
                        ApiError(
                            StatusCode::NOT_FOUND,
                            format!("no {} item named `{name}`", form.kind),
                        ),
                    )
                })?;
            let mut flipped = current;
            let on = !flipped["shadow"].as_bool().unwrap_or(false);
            flipped["shadow"] = Value::Bool(on);
            change(core, key, &form.kind, name, Some(&flipped), editor, &[]).await?;
            Ok(format!(
                "Shadow mode {} for {name}.",
                if on { "on" } else { "off" }
            ))
        }
        "nuke" => {
            set_nuke(console, key, &form.item, editor).await?;
            Ok("Nuke settings saved.".into())
        }
        other => Err(bad("", format!("unknown change `{other}`"))),
    }
}

/// One checked item change; a refusal names the field it is about (`item` for TOML forms).
async fn change(
    core: &crate::app::Core,
    key: &ChannelKey,
    kind: &str,
    name: &str,
    body: Option<&Value>,
    editor: &Editor,
    fields: &[&'static str],
) -> Result<(), EditRefusal> {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
    change_item(core, key, kind, name, bytes.as_deref(), editor)
        .await
        .map(|_| ())
        .map_err(|e| {
            let field = if fields.is_empty() {
                "item"
            } else {
                field_of(&e.1, fields)
            };
            (field, e)
        })
}

/// A TOML item as the JSON body the checked edit takes.
fn toml_item(text: &str) -> Result<Value, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    serde_json::to_value(table).map_err(|e| format!("not an item: {e}"))
}

/// Replaces the nuke settings (checked as the channel compiles them; audited).
async fn set_nuke(
    console: &Console,
    key: &ChannelKey,
    text: &str,
    editor: &Editor,
) -> Result<(), EditRefusal> {
    let core = &console.core;
    let nuke: NukeSettings =
        toml::from_str(text).map_err(|e| bad("item", format!("invalid nuke settings: {e}")))?;
    let base = core.current_rules(key).await;
    let before = serde_json::to_value(&base.nuke).ok();
    let after = serde_json::to_value(&nuke).ok();
    let mut rules = (*base).clone();
    rules.nuke = nuke;
    crate::channel::rules_book::compile(&rules)
        .map_err(|e| bad("item", format!("invalid rule: {e}")))?;
    apply(core, key, base, rules)
        .await
        .map_err(|e| ("item", e))?;
    core.record_audit(
        key,
        AuditEntry {
            at_ms: crate::app::audit::now_ms(),
            who: editor.who.clone(),
            via: editor.via.to_string(),
            kind: "nuke".into(),
            name: "nuke".into(),
            before,
            after,
        },
    )
    .await;
    Ok(())
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lines: String,
}

/// `POST /ui/channels/{platform}/{channel}/try`: the "try it" box.
pub async fn try_it(
    State(console): St,
    headers: HeaderMap,
    Path((platform, channel)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (signed, key, form) = match checked::<TryForm>(
        &console,
        &headers,
        body,
        try_form_bytes(&console),
        (&platform, &channel),
        |f| &f.csrf,
    )
    .await
    {
        Ok(ok) => ok,
        Err(refusal) => return *refusal,
    };
    let max = console.core.config.console.try_max_bytes;
    let tried = if form.lines.len() > max {
        Tried {
            error: Some(format!(
                "The input is over {max} bytes; try a shorter stretch of chat."
            )),
            ..Tried::default()
        }
    } else {
        run_try(&console, &key, form.lines.clone()).await
    };
    let shown_input = if form.lines.len() > 64 * 1024 {
        String::new()
    } else {
        form.lines
    };
    let tried = Tried {
        input: shown_input,
        ..tried
    };
    let status = if tried.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(&console, &signed.session, &key, None, Some(tried), status).await
}

/// Engine ticks one "try it" run may take (an hour of recorded time).
const TRY_MAX_TICKS: u64 = 3_600;
/// Wall-clock budget of one run.
const TRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// Output bytes one run may write (the records shown fit well within it).
const TRY_MAX_OUTPUT: usize = 2 * 1024 * 1024;

/// A buffer that refuses writes beyond its capacity (the replay stops there).
struct CappedBuf {
    bytes: Vec<u8>,
    cap: usize,
}

impl std::io::Write for CappedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > self.cap {
            return Err(std::io::Error::other("the output is full"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn run_try(console: &Console, key: &ChannelKey, input: String) -> Tried {
    // One run at a time in the process: it is CPU work on a blocking thread.
    let Ok(_permit) = console.try_runs.try_acquire() else {
        return Tried {
            error: Some("Another \"try it\" run is going on; try again in a moment.".into()),
            ..Tried::default()
        };
    };
    let rules = console.core.current_rules(key).await;
    let channel = key.name.to_string();
    let work = tokio::task::spawn_blocking(move || {
        let lines = match to_irc_lines(&channel, &input) {
            Ok(lines) => lines,
            Err(error) => {
                return Tried {
                    error: Some(error),
                    ..Tried::default()
                }
            }
        };
        let mut out = CappedBuf {
            bytes: Vec::new(),
            cap: TRY_MAX_OUTPUT,
        };
        let rules_of = |_: &str| std::sync::Arc::clone(&rules);
        let limits = crate::app::replay::Limits {
            max_actions: TRY_SHOWN as u64,
            max_ticks: TRY_MAX_TICKS,
            deadline: Some(std::time::Instant::now() + TRY_DEADLINE),
        };
        let result = crate::app::replay::run_limited(
            Cursor::new(lines),
            &rules_of,
            Some(&channel),
            &mut out,
            limits,
        );
        let records: Vec<Value> = out
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .take(TRY_SHOWN)
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        match result {
            Ok(summary) => Tried {
                records,
                lines: summary.lines,
                malformed: summary.malformed,
                more: summary.stopped.is_some(),
                ..Tried::default()
            },
            Err(_) => Tried {
                records,
                more: true,
                ..Tried::default()
            },
        }
    });
    work.await.unwrap_or_else(|e| Tried {
        error: Some(format!("The replay failed: {e}")),
        ..Tried::default()
    })
}

/// The "try it" input as raw IRC lines: raw lines pass, `user: text` lines become PRIVMSGs in
/// `channel` (a second apart, ids `try-<line>`). A line that is neither is refused by number.
pub fn to_irc_lines(channel: &str, input: &str) -> Result<String, String> {
    let start_ms = crate::app::audit::now_ms();
    let mut out = String::with_capacity(input.len() * 2);
    let mut messages: u64 = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        messages += 1;
        if line.starts_with('@') || line.starts_with(':') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let (who, text) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: write `user: text` (or a raw IRC line)", n + 1))?;
        let (login, role) = match who.trim().split_once('[') {
            Some((login, role)) => (login.trim(), role.trim_end_matches(']').trim()),
            None => (who.trim(), ""),
        };
        let login = login.to_ascii_lowercase();
        if !is_login(&login) {
            return Err(format!(
                "line {}: `{}` is not a Twitch login",
                n + 1,
                login.chars().take(40).collect::<String>()
            ));
        }
        let badges = match role {
            "" => "",
            "mod" => "moderator/1",
            "vip" => "vip/1",
            "sub" => "subscriber/12",
            "broadcaster" => "broadcaster/1",
            other => {
                return Err(format!(
                    "line {}: unknown role `{}` (mod, vip, sub, broadcaster)",
                    n + 1,
                    other.chars().take(20).collect::<String>()
                ))
            }
        };
        let text: String = text.trim_start().chars().filter(|c| *c != '\0').collect();
        let user_id = 1_000 + crate::engine::rng::name_seed(&login) % 1_000_000_000;
        let at = start_ms + messages * 1_000;
        out.push_str(&format!(
            "@badge-info=;badges={badges};color=;display-name={login};emotes=;first-msg=0;id=try-{line_no};mod={m};room-id=1;subscriber={s};tmi-sent-ts={at};turbo=0;user-id={user_id};user-type= :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}\n",
            line_no = n + 1,
            m = u8::from(role == "mod"),
            s = u8::from(role == "sub"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lines_become_privmsgs_and_hostile_lines_are_refused_by_number() {
        let lines = to_irc_lines("chan", "alice: hello\n\nbob [mod]: !ping\n").expect("lines");
        let parsed: Vec<_> = lines.lines().collect();
        assert_eq!(parsed.len(), 2);
        assert!(parsed[0].contains("PRIVMSG #chan :hello") && parsed[0].contains("id=try-1"));
        assert!(parsed[1].contains("badges=moderator/1") && parsed[1].contains("mod=1"));
        assert!(to_irc_lines("chan", "no colon here")
            .unwrap_err()
            .starts_with("line 1"));
        let err = to_irc_lines("chan", "ok: fine\nBad Login!: x").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        assert!(to_irc_lines("chan", "a [admin]: x")
            .unwrap_err()
            .contains("unknown role"));
    }

    #[test]
    fn a_tag_or_line_break_cannot_be_smuggled_into_a_synthesised_line() {
        let lines = to_irc_lines("chan", "eve: hi\r\n@evil=1 :x PRIVMSG #other :y").expect("lines");
        // The raw line stays a line of its own (replayed for its own channel only).
        assert_eq!(lines.lines().count(), 2);
        assert!(lines.lines().next().is_some_and(|l| l.ends_with(":hi")));
    }

    #[test]
    fn errors_go_next_to_the_field_they_name() {
        assert_eq!(
            field_of(
                "invalid rule: keyword x: invalid regex: unclosed group",
                &["regex", "name"]
            ),
            "regex"
        );
        assert_eq!(
            field_of(
                "item name \"a\\u{1}\" holds a control character",
                &["regex", "name"]
            ),
            "name"
        );
        assert_eq!(field_of("something else", &["regex", "name"]), "");
    }
}
