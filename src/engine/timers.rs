//! Timers: messages posted every `interval_s` seconds, but only if at least `min_lines` chat
//! lines passed since the timer last fired (no talking to an empty room), and optionally only
//! while the stream is live. Driven by [`crate::engine::EventKind::Tick`]; at most one timer
//! fires per tick. A timer's clock starts the first tick it is seen, so a restart or a new
//! timer does not post at once.

use super::commands::render;
use super::{Action, ChannelState, ChatMessage};

/// Fires the first due timer, if any.
pub fn on_tick(state: &mut ChannelState, now_ms: u64) -> Vec<Action> {
    let rules = state.rules.clone();
    let compiled = state.compiled().clone();
    let lines = state.runtime.lines;
    state
        .runtime
        .timers
        .retain(|name, _| rules.timers.iter().any(|t| &t.name == name));
    for (timer, template) in rules.timers.iter().zip(&compiled.timer_templates) {
        let Some(&(last_ms, last_lines)) = state.runtime.timers.get(&timer.name) else {
            state
                .runtime
                .timers
                .insert(timer.name.clone(), (now_ms, lines));
            continue;
        };
        let due = now_ms.saturating_sub(last_ms) >= timer.interval_s * 1000
            && lines.saturating_sub(last_lines) >= timer.min_lines
            && (!timer.online_only || state.online());
        if !timer.enabled || !due {
            continue;
        }
        state
            .runtime
            .timers
            .insert(timer.name.clone(), (now_ms, lines));
        let text = render(
            state,
            template,
            &ChatMessage::default(),
            &[],
            0,
            timer.shadow,
            now_ms,
        )
        .text;
        return vec![Action::Say { text }.shadowed(&timer.name, timer.shadow)];
    }
    Vec::new()
}
