//! Commands: custom commands from the rules, and the chat-management commands moderators use
//! to edit them (`!addcom`, `!editcom`, `!delcom`), grant link permits (`!permit`), switch
//! filters (`!filters on|off <name>`) and nuke (`!nuke`, `!nukeundo`).
//!
//! Custom commands check the user's level, the global and per-user cooldowns (a command on
//! cooldown is silently ignored), count their uses and render their template. Edits are
//! copy-on-write: the rules are cloned, changed, validated and compiled, then swapped in.
//! Every text posted goes through [`crate::engine::outgoing`]: replies that quote chat (a
//! command name, a login) start with a fixed word and are screened by the content filters.

use super::nuke;
use super::outgoing::{screened, strip_slash_lead};
use super::roles::Level;
use super::rules::{validate_command_name, CommandRule, ResponseKind};
use super::template::{RenderContext, Rendered, Template};
use super::{Action, ChannelState, ChatMessage, Incoming, StateChange, PERMIT_S};

/// Longest login `!permit` takes, in bytes (Twitch logins are at most 25 characters).
pub const MAX_PERMIT_LOGIN_BYTES: usize = 64;

/// Splits a message into its lower-cased first word and the remaining words.
fn split(text: &str) -> (String, Vec<&str>) {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("").to_lowercase();
    (first, words.collect())
}

/// Builds the chat action for a rendered response: a leading `/` or `.` dropped, the Mention
/// prefix added, and screened by the content filters ([`crate::engine::outgoing`]).
pub fn respond(
    state: &ChannelState,
    kind: ResponseKind,
    message: &ChatMessage,
    rendered: Rendered,
    now_ms: u64,
) -> Action {
    let mut rendered = neutralise(rendered);
    let action = match kind {
        ResponseKind::Say => Action::Say {
            text: rendered.text.clone(),
        },
        ResponseKind::Reply => Action::Reply {
            parent_id: message.id.clone(),
            text: rendered.text.clone(),
        },
        ResponseKind::Mention => {
            let mut mention = Rendered::new()
                .owner("@")
                .chat(&message.user.display_name)
                .owner(" ");
            mention.push_owner(&rendered.text);
            // The response's own chat pieces stay chat pieces for the screen.
            if !rendered.chat.is_empty() {
                mention.chat.push(' ');
                mention.chat.push_str(&rendered.chat);
            }
            mention.skeleton = format!("@  {}", rendered.skeleton);
            rendered = mention;
            Action::Say {
                text: rendered.text.clone(),
            }
        }
    };
    screened(state, &rendered, action, now_ms)
}

/// Drops a leading `/` or `.` so a response can never become a chat command.
fn neutralise(mut rendered: Rendered) -> Rendered {
    let stripped = strip_slash_lead(&rendered.text);
    if stripped.len() != rendered.text.len() {
        rendered.text = stripped.to_string();
    }
    rendered
}

/// A reply the engine writes itself, to `message`, screened like any text quoting chat.
pub fn reply(
    state: &ChannelState,
    message: &ChatMessage,
    rendered: Rendered,
    now_ms: u64,
) -> Action {
    let action = Action::Reply {
        parent_id: message.id.clone(),
        text: rendered.text.clone(),
    };
    screened(state, &rendered, action, now_ms)
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
    let runtime = &mut state.runtime;
    let global = key.to_string();
    if runtime.global_cooldowns.contains(&global, now_ms) {
        return false;
    }
    let user = (global, super::key_id(user_id));
    if runtime.user_cooldowns.contains(&user, now_ms) {
        return false;
    }
    let (global, _) = &user;
    if global_s > 0 {
        let until = now_ms.saturating_add(global_s.saturating_mul(1000));
        runtime
            .global_cooldowns
            .insert(global.clone(), (), until, now_ms);
    }
    if user_s > 0 {
        let until = now_ms.saturating_add(user_s.saturating_mul(1000));
        runtime.user_cooldowns.insert(user, (), until, now_ms);
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
) -> Rendered {
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
        template.render_tracked(&ctx, &mut scratch, &mut runtime.rng)
    } else {
        template.render_tracked(&ctx, &mut runtime.counters, &mut runtime.rng)
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
    state.runtime.note(StateChange::CommandUsed {
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
    let action = respond(state, command.response_type, message, text, now_ms);
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
    Some(vec![reply(state, message, text, now_ms)])
}

/// `command <name><rest>`: a reply about a command, which never starts with its name.
fn about(name: &str, rest: &str) -> Rendered {
    Rendered::new().owner("command ").chat(name).owner(rest)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Add,
    Change,
    Delete,
}

fn edit_command(state: &mut ChannelState, args: &[&str], edit: Edit) -> Rendered {
    let Some((name, response)) = args.split_first() else {
        return Rendered::new().owner("usage: !addcom|!editcom !name response, !delcom !name");
    };
    let name = name.to_lowercase();
    if let Err(e) = validate_command_name(&name) {
        return about(&name, &format!(": {e}"));
    }
    let response = response.join(" ");
    if edit != Edit::Delete {
        if let Err(e) = Template::parse(&response) {
            return about(&name, &format!(": response template {e}"));
        }
    }
    let existing = state.compiled().commands.get(&name).copied();
    let result = match (edit, existing) {
        (Edit::Add, Some(_)) => return about(&name, " already exists; use !editcom"),
        (Edit::Change | Edit::Delete, None) => return about(&name, " does not exist"),
        (Edit::Add, None) => state.edit_rules(|r| r.commands.push(new_command(&name, response))),
        (Edit::Change, Some(i)) => state.edit_rules(|r| r.commands[i].response = response),
        (Edit::Delete, Some(i)) => state.edit_rules(|r| {
            r.commands.remove(i);
        }),
    };
    match result {
        Ok(()) => about(&name, [" added", " edited", " deleted"][edit as usize]),
        // The error names the item (the command, from chat): all of it is screened.
        Err(e) => Rendered::new().owner("rules: ").chat(&e.to_string()),
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

fn permit(state: &mut ChannelState, args: &[&str], now_ms: u64) -> Rendered {
    let usage = || Rendered::new().owner("usage: !permit <user>");
    let Some(user) = args
        .first()
        .map(|u| u.trim_start_matches('@').to_lowercase())
    else {
        return usage();
    };
    if user.is_empty() || user.len() > MAX_PERMIT_LOGIN_BYTES {
        return usage();
    }
    let expires = now_ms.saturating_add(PERMIT_S * 1000);
    state
        .runtime
        .permits
        .insert(user.clone(), (), expires, now_ms);
    Rendered::new().owner("@").chat(&user).owner(&format!(
        " may post one link in the next {PERMIT_S} seconds"
    ))
}

fn switch_filter(state: &mut ChannelState, args: &[&str]) -> Rendered {
    let (on, name) = match args {
        ["on", name] => (true, *name),
        ["off", name] => (false, *name),
        _ => return Rendered::new().owner("usage: !filters on|off <name>"),
    };
    let Some(index) = state
        .rules
        .filters
        .iter()
        .position(|f| f.name.eq_ignore_ascii_case(name))
    else {
        return Rendered::new().owner("no filter named ").chat(name);
    };
    let result = state.edit_rules(|r| r.filters[index].enabled = on);
    let filter = state.rules.filters[index].name.clone();
    match result {
        Ok(()) => Rendered::new()
            .owner("filter ")
            .owner(&filter)
            .owner(if on { " on" } else { " off" }),
        Err(e) => Rendered::new().owner("rules: ").owner(&e.to_string()),
    }
}
