//! `firehose replay`: runs the engine over recorded chat and prints every action it would take.
//!
//! Moderators use it to try rule changes against yesterday's chat before going live. Input is a
//! file of raw Twitch IRC lines (as recorded, e.g. `../shared/corpus/xqcow-chat-2019.txt`); the
//! channels' rules come from the config's `engine.rules_dir`, exactly as the service loads them.
//! Time is the recording's own (`tmi-sent-ts`), and timers get one tick per recorded second, so
//! a replay is deterministic. Output: one JSON object per action on stdout:
//! `{"channel","msg_id","user","action","duration_s","text","rule"}` where `action` is
//! say | reply | delete | timeout | ban | unban, and shadow-mode rules print `"shadow": true`.
//! A summary goes to stderr.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::app::replay::run;
use crate::channel::ChannelKey;
use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (its engine.rules_dir gives the channels' rules).
    #[arg(long)]
    pub config: PathBuf,
    /// File of raw IRC lines.
    #[arg(long)]
    pub input: PathBuf,
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let rules = crate::app::load_rules(&config.engine)?;
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let summary = run(
        std::io::BufReader::new(input),
        &|channel: &str| rules.get(&ChannelKey::twitch(channel)),
        args.channel.as_deref(),
        &mut out,
    )?;
    out.flush()?;
    eprintln!(
        "replayed {} lines: {} chat events, {} actions, {} malformed lines skipped",
        summary.lines, summary.events, summary.actions, summary.malformed
    );
    Ok(())
}
