//! Commands: custom commands from the rules, and the chat-management commands moderators use
//! to edit them (`!addcom`, `!editcom`, `!delcom`), grant link permits (`!permit`), switch
//! filters (`!filters on|off <name>`) and nuke (`!nuke`, `!nukeundo`).
//!
//! Custom commands check the user's level, the global and per-user cooldowns (a command on
//! cooldown is silently ignored), count their uses and render their template. Edits are
//! copy-on-write: the rules are cloned, changed, validated and compiled, then swapped in.

use super::nuke;
use super::roles::Level;
use super::rules::{validate_command_name, CommandRule, ResponseKind};
use super::template::{truncate_chars, RenderContext, Template, MAX_OUTPUT_CHARS};
use super::{Action, ChannelState, ChatMessage, Incoming, StateChange, PERMIT_S};

/// Splits a message into its lower-cased first word and the remaining words.
fn split(text: &str) -> (String, Vec<&str>) {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("").to_lowercase();
    (first, words.collect())
}

/// Builds the chat action for a rendered response.
pub fn respond(kind: ResponseKind, message: &ChatMessage, text: String) -> Action {
    let mut text = neutralise(text);
    match kind {
        ResponseKind::Say => Action::Say { text },
        ResponseKind::Reply => Action::Reply {
            parent_id: message.id.clone(),
            text,
        },
        ResponseKind::Mention => {
            text = format!("@{} {text}", message.user.display_name);
            truncate_chars(&mut text, MAX_OUTPUT_CHARS);
            Action::Say { text }
        }
    }
}

/// Strips leading `/` and `.` so user-supplied text can never become a chat command.
fn neutralise(text: String) -> String {
    if text.starts_with(['/', '.']) {
        text.trim_start_matches(['/', '.', ' ']).to_string()
    } else {
        text
    }
}

/// Checks and starts the cooldowns of `key`; false when one is still running.
pub fn cooldown_ok(
    state: &mut ChannelState,
    key: &str,
    user_id: &str,
    global_s: u64,
    user_s: u64,
    now_ms: u64,
) -> bool {
    let global = (key.to_string(), String::new());
    let user = (key.to_string(), user_id.to_string());
    let cooldowns = &mut state.runtime.cooldowns;
    if cooldowns.contains(&global, now_ms) || cooldowns.contains(&user, now_ms) {
        return false;
    }
    if global_s > 0 {
        cooldowns.insert(global, (), now_ms.saturating_add(global_s * 1000), now_ms);
    }
    if user_s > 0 {
        cooldowns.insert(user, (), now_ms.saturating_add(user_s * 1000), now_ms);
    }
    true
}

/// Renders `template` for `message`; shadow renderings do not touch the live counters.
pub fn render(
    state: &mut ChannelState,
    template: &Template,
    message: &ChatMessage,
    args: &[&str],
    count: u64,
    shadow: bool,
    now_ms: u64,
) -> String {
    let ctx = RenderContext {
        user: &message.user.display_name,
        channel: &state.channel,
        args,
        count,
        now_ms,
        stream_started_ms: state.runtime.stream_started_ms,
    };
    let runtime = &mut state.runtime;
    if shadow {
        let mut scratch = runtime.counters.clone();
        template.render(&ctx, &mut scratch, &mut runtime.rng)
    } else {
        template.render(&ctx, &mut runtime.counters, &mut runtime.rng)
    }
}

/// Runs a custom command; `None` when the message is not one.
pub fn run_custom(state: &mut ChannelState, incoming: Incoming<'_>) -> Option<Vec<Action>> {
    let Incoming {
        message,
        level,
        now_ms,
        ..
    } = incoming;
    let (name, args) = split(&message.text);
    let compiled = state.compiled().clone();
    let index = *compiled.commands.get(&name)?;
    let rules = state.rules.clone();
    let command = &rules.commands[index];
    if !command.enabled || level < command.level {
        return Some(Vec::new());
    }
    let key = format!("cmd:{}", command.name);
    let (global, user) = (command.global_cooldown_s, command.user_cooldown_s);
    if !cooldown_ok(state, &key, &message.user.id, global, user, now_ms) {
        return Some(Vec::new());
    }
    let uses = state
        .runtime
        .command_uses
        .entry(command.name.clone())
        .or_insert(0);
    *uses += 1;
    let count = *uses;
    state.runtime.journal.push(StateChange::CommandUsed {
        name: command.name.clone(),
    });
    let template = &compiled.command_templates[index];
    let text = render(
        state,
        template,
        message,
        &args,
        count,
        command.shadow,
        now_ms,
    );
    let action = respond(command.response_type, message, text);
    Some(vec![action.shadowed(&command.name, command.shadow)])
}

/// Runs a moderator command; `None` when the message is not one (or the user may not).
pub fn manage(state: &mut ChannelState, incoming: Incoming<'_>) -> Option<Vec<Action>> {
    let Incoming {
        message,
        level,
        now_ms,
        ..
    } = incoming;
    let (name, args) = split(&message.text);
    if level < Level::Moderator {
        return None;
    }
    let text = match name.as_str() {
        "!addcom" => edit_command(state, &args, Edit::Add),
        "!editcom" => edit_command(state, &args, Edit::Change),
        "!delcom" => edit_command(state, &args, Edit::Delete),
        "!permit" => permit(state, &args, now_ms),
        "!filters" => switch_filter(state, &args),
        "!nuke" => return Some(nuke::run(state, &args, now_ms)),
        "!nukeundo" => return Some(nuke::undo(state)),
        _ => return None,
    };
    Some(vec![Action::Reply {
        parent_id: message.id.clone(),
        text,
    }])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Add,
    Change,
    Delete,
}

fn edit_command(state: &mut ChannelState, args: &[&str], edit: Edit) -> String {
    let Some((name, response)) = args.split_first() else {
        return "usage: !addcom|!editcom !name response, !delcom !name".into();
    };
    let name = name.to_lowercase();
    if let Err(e) = validate_command_name(&name) {
        return format!("{name}: {e}");
    }
    let response = response.join(" ");
    if edit != Edit::Delete {
        if let Err(e) = Template::parse(&response) {
            return format!("{name}: response template {e}");
        }
    }
    let existing = state.compiled().commands.get(&name).copied();
    let result = match (edit, existing) {
        (Edit::Add, Some(_)) => return format!("{name} already exists; use !editcom"),
        (Edit::Change | Edit::Delete, None) => return format!("{name} does not exist"),
        (Edit::Add, None) => state.edit_rules(|r| r.commands.push(new_command(&name, response))),
        (Edit::Change, Some(i)) => state.edit_rules(|r| r.commands[i].response = response),
        (Edit::Delete, Some(i)) => state.edit_rules(|r| {
            r.commands.remove(i);
        }),
    };
    match result {
        Ok(()) => format!("{name} {}", ["added", "edited", "deleted"][edit as usize]),
        Err(e) => e.to_string(),
    }
}

fn new_command(name: &str, response: String) -> CommandRule {
    CommandRule {
        name: name.to_string(),
        aliases: Vec::new(),
        response,
        response_type: ResponseKind::Say,
        level: Level::Everyone,
        global_cooldown_s: 5,
        user_cooldown_s: 0,
        enabled: true,
        shadow: false,
    }
}

fn permit(state: &mut ChannelState, args: &[&str], now_ms: u64) -> String {
    let Some(user) = args
        .first()
        .map(|u| u.trim_start_matches('@').to_lowercase())
    else {
        return "usage: !permit <user>".into();
    };
    if user.is_empty() {
        return "usage: !permit <user>".into();
    }
    let expires = now_ms.saturating_add(PERMIT_S * 1000);
    state
        .runtime
        .permits
        .insert(user.clone(), (), expires, now_ms);
    format!("{user} may post one link in the next {PERMIT_S} seconds")
}

fn switch_filter(state: &mut ChannelState, args: &[&str]) -> String {
    let (on, name) = match args {
        ["on", name] => (true, *name),
        ["off", name] => (false, *name),
        _ => return "usage: !filters on|off <name>".into(),
    };
    let Some(index) = state
        .rules
        .filters
        .iter()
        .position(|f| f.name.eq_ignore_ascii_case(name))
    else {
        return format!("no filter named {name}");
    };
    let result = state.edit_rules(|r| r.filters[index].enabled = on);
    match result {
        Ok(()) => format!("filter {name} {}", if on { "on" } else { "off" }),
        Err(e) => e.to_string(),
    }
}
