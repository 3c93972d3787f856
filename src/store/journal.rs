//! From one handled event to the store's changes: the only place that knows how what the
//! engine and the channel did maps onto rows (counter names, the moderation log's entries,
//! the clamps of columns that are `bigint` in the schema).
//!
//! A channel actor keeps one [`Journal`] and, after each event, hands [`Journal::changes`]
//! what happened: the event, the actions taken, the engine's own journal
//! (`ChannelState::take_changes`) and the rules edit if the event made one. What comes back
//! goes to the writer in one bounded-queue send. Edits that are not chat events (the admin
//! API) map through [`rules_edit`].

use std::time::SystemTime;

use super::model::{counter, ModerationEntry, WarningRow};
use super::writer::RulesEdit;
use super::writer::{message_change, Change};
use crate::engine::{millis, Action, ChatEvent, EventKind, StateChange};

/// One channel's mapping state: the sequence that makes moderation log ids unique.
#[derive(Debug, Default)]
pub struct Journal {
    /// Moderation log entries made so far.
    log_seq: u64,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    /// The store changes of one handled event, in this order: a chat message's count and its
    /// author's stats, the rules when the event edited them, the engine's journal (counters,
    /// command uses, warnings), then the moderation log entries of the actions taken.
    pub fn changes(
        &mut self,
        event: &ChatEvent,
        actions: &[Action],
        engine: Vec<StateChange>,
        edited_rules: Option<RulesEdit>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if let EventKind::Message(message) = &event.kind {
            let at = i64::try_from(message.sent_at_ms).unwrap_or(i64::MAX);
            changes.push(message_change(&message.user.id, &message.user.login, at));
        }
        if let Some(edit) = edited_rules {
            changes.extend(rules_edit(edit));
        }
        for change in engine {
            engine_change(change, &mut changes);
        }
        // Most events take no moderation action: the clock is read only for those that do.
        let logged = |a: &Action| {
            a.is_moderation()
                || matches!(a, Action::Unban { .. } | Action::ChatMode { .. })
                || chat_mode_shadow(a).is_some()
        };
        if actions.iter().any(logged) {
            let now = i64::try_from(millis(SystemTime::now())).unwrap_or(i64::MAX);
            for action in actions {
                if let Some(entry) = self.log_entry(event, action, now) {
                    changes.push(Change::Moderation(entry));
                }
            }
        }
        changes
    }

    /// The moderation log entry of an action, if it is a moderation action.
    fn log_entry(
        &mut self,
        event: &ChatEvent,
        action: &Action,
        now: i64,
    ) -> Option<ModerationEntry> {
        let author = match &event.kind {
            EventKind::Message(m) => Some(m),
            _ => None,
        };
        let (kind, user_id, reason, duration_s, rule) = match action {
            Action::Delete { rule, .. } => (
                "delete",
                author.map(|m| m.user.id.clone()).unwrap_or_default(),
                String::new(),
                0,
                rule,
            ),
            Action::Timeout {
                user_id,
                duration_s,
                reason,
                rule,
            } => (
                "timeout",
                user_id.clone(),
                reason.clone(),
                *duration_s,
                rule,
            ),
            Action::Ban {
                user_id,
                reason,
                rule,
            } => ("ban", user_id.clone(), reason.clone(), 0, rule),
            Action::Unban { user_id, rule } => ("unban", user_id.clone(), String::new(), 0, rule),
            // The raid defence's decisions, shadow ones included ("would have engaged").
            Action::ChatMode { change, rule } => {
                ("chat_mode", String::new(), change.describe(), 0, rule)
            }
            Action::Shadow { rule, .. } => match chat_mode_shadow(action) {
                Some(change) => ("would_chat_mode", String::new(), change.describe(), 0, rule),
                None => return None,
            },
            _ => return None,
        };
        self.log_seq += 1;
        let origin = author.map_or_else(|| now.to_string(), |m| m.id.clone());
        Some(ModerationEntry {
            id: format!("{origin}:{kind}:{}", self.log_seq),
            at_ms: now,
            action: kind.to_string(),
            user_id,
            rule: rule.clone(),
            reason,
            duration_s: i64::try_from(duration_s).unwrap_or(i64::MAX),
        })
    }
}

/// The store changes of a rules edit: the edit itself (stored item by item, see
/// [`Change::Rules`]) and, for every custom command it removed, the deletion of that command's
/// use count (`uses:<name>`), so a removed command leaves no row behind.
///
/// (The engine's own `StateChange::CommandDeleted`, once it exists, maps to the same
/// [`Change::CounterDeleted`]; a deletion noted twice deletes one row.)
pub fn rules_edit(edit: RulesEdit) -> Vec<Change> {
    let RulesEdit { base, rules } = edit;
    let kept: std::collections::BTreeSet<&str> =
        rules.commands.iter().map(|c| c.name.as_str()).collect();
    let mut changes: Vec<Change> = base
        .commands
        .iter()
        .filter(|c| !kept.contains(c.name.as_str()))
        .map(|c| Change::CounterDeleted {
            name: format!("{}{}", counter::USES, c.name),
        })
        .collect();
    changes.insert(0, Change::Rules { base, rules });
    changes
}

/// One entry of the engine's journal as store changes.
fn engine_change(change: StateChange, out: &mut Vec<Change>) {
    match change {
        StateChange::CounterAdded { name, delta } => out.push(Change::Counter {
            name: format!("{}{name}", counter::NAMED),
            delta,
        }),
        StateChange::CommandUsed { name } => out.push(Change::Counter {
            name: format!("{}{name}", counter::USES),
            delta: 1,
        }),
        StateChange::DefenceSteps { delta } => out.push(Change::Counter {
            name: counter::DEFENCE_STEPS.to_string(),
            delta,
        }),
        StateChange::Warned {
            filter,
            user_id,
            expires_ms,
        } => {
            out.push(Change::UserWarned {
                user_id: user_id.clone(),
            });
            out.push(Change::Warning(WarningRow {
                filter,
                user_id,
                expires_ms: i64::try_from(expires_ms).unwrap_or(i64::MAX),
            }));
        }
    }
}

/// The chat-mode change a shadow record stands for, if it is one.
fn chat_mode_shadow(action: &Action) -> Option<crate::engine::action::ChatModeChange> {
    match action {
        Action::Shadow { would, .. } => match **would {
            Action::ChatMode { change, .. } => Some(change),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::engine::{ChannelRules, ChatMessage, ChatUser, Platform};

    fn message(id: &str, sent_at_ms: u64) -> ChatEvent {
        ChatEvent {
            platform: Platform::Twitch,
            channel: Arc::from("chan"),
            kind: EventKind::Message(ChatMessage {
                id: id.into(),
                user: ChatUser {
                    id: "u1".into(),
                    login: "viewer".into(),
                    ..ChatUser::default()
                },
                text: "hi".into(),
                sent_at_ms,
                ..ChatMessage::default()
            }),
        }
    }

    #[test]
    fn a_message_maps_to_its_count_the_rules_the_engine_journal_and_the_log_in_order() {
        let mut journal = Journal::new();
        let engine = vec![
            StateChange::CounterAdded {
                name: "deaths".into(),
                delta: 2,
            },
            StateChange::CommandUsed {
                name: "!hug".into(),
            },
            StateChange::Warned {
                filter: "caps".into(),
                user_id: "u1".into(),
                expires_ms: u64::MAX,
            },
        ];
        let actions = [
            Action::Say { text: "x".into() },
            Action::Timeout {
                user_id: "u1".into(),
                duration_s: u64::MAX,
                reason: "caps".into(),
                rule: "caps".into(),
            },
        ];
        let rules = Arc::new(ChannelRules::default());
        // The edit removed a command: its use count goes with it.
        let base: ChannelRules =
            toml::from_str("[[commands]]\nname = \"!old\"\nresponse = \"x\"").expect("rules");
        let edit = RulesEdit {
            base: Arc::new(base),
            rules: Arc::clone(&rules),
        };
        let changes = journal.changes(&message("m1", u64::MAX), &actions, engine, Some(edit));
        let shapes: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::UserMessage { user_id, at_ms, .. } => format!("message {user_id} {at_ms}"),
                Change::Rules { rules: r, .. } => format!("rules {}", Arc::ptr_eq(r, &rules)),
                Change::Counter { name, delta } => format!("counter {name} {delta}"),
                Change::CounterDeleted { name } => format!("deleted {name}"),
                Change::UserWarned { user_id } => format!("warned {user_id}"),
                Change::Warning(w) => {
                    format!("warning {} {} {}", w.filter, w.user_id, w.expires_ms)
                }
                Change::Moderation(m) => {
                    format!("log {} {} {} {}", m.id, m.action, m.user_id, m.duration_s)
                }
            })
            .collect();
        // Columns are bigint: values past i64 are clamped, never wrapped.
        assert_eq!(
            shapes,
            [
                format!("message u1 {}", i64::MAX),
                "rules true".to_string(),
                "deleted uses:!old".to_string(),
                "counter count:deaths 2".to_string(),
                "counter uses:!hug 1".to_string(),
                "warned u1".to_string(),
                format!("warning caps u1 {}", i64::MAX),
                format!("log m1:timeout:1 timeout u1 {}", i64::MAX),
            ]
        );
    }

    #[test]
    fn events_that_are_not_chat_have_no_message_change_and_log_ids_stay_unique() {
        let mut journal = Journal::new();
        let tick = ChatEvent {
            platform: Platform::Twitch,
            channel: Arc::from("chan"),
            kind: EventKind::Tick,
        };
        assert!(journal.changes(&tick, &[], Vec::new(), None).is_empty());
        let ban = Action::Ban {
            user_id: "u2".into(),
            reason: String::new(),
            rule: "nuke".into(),
        };
        let ids: Vec<String> = (0..2)
            .flat_map(|_| {
                journal.changes(
                    &message("m2", 1),
                    std::slice::from_ref(&ban),
                    Vec::new(),
                    None,
                )
            })
            .filter_map(|c| match c {
                Change::Moderation(m) => Some(m.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["m2:ban:1", "m2:ban:2"]);
    }
}
