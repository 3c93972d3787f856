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
//!
//! With `--compare` it prints instead one JSON object lining the rules' actions up with the
//! moderators' own in the same recording (`CLEARCHAT`, `CLEARMSG`; see
//! [`crate::app::replay::compare`]) and a readable summary on stderr: how an operator tunes
//! rules on a copy of production chat before switching them on.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::app::replay::compare::{self, Collector};
use crate::app::replay::{run, run_into, Limits, ReplaySummary};
use std::sync::Arc;

use crate::channel::rules_book::load_file;
use crate::channel::ChannelKey;
use crate::config::Config;
use crate::engine::ChannelRules;

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (its engine.rules_dir gives the channels' rules).
    #[arg(long, required_unless_present = "rules")]
    pub config: Option<PathBuf>,
    /// One rules file for every channel of the recording (instead of the config's rules_dir).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// File of raw IRC lines.
    #[arg(long)]
    pub input: PathBuf,
    /// Only this channel.
    #[arg(long)]
    pub channel: Option<String>,
    /// Print how the rules' actions line up with the moderators' own in the recording (JSON on
    /// stdout, a readable summary on stderr) instead of the actions.
    #[arg(long)]
    pub compare: bool,
    /// With --compare: a moderator's timeout or ban counts against the user's messages of
    /// this many seconds before it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub window_s: u64,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let rules = channel_rules(&args)?;
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let input = std::io::BufReader::new(input);
    let rules = |channel: &str| rules(channel);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let summary = if args.compare {
        let options = compare::Options {
            window_ms: args.window_s * 1000,
            ..compare::Options::default()
        };
        let mut collector = Collector::new(options);
        let summary = run_into(
            input,
            &rules,
            args.channel.as_deref(),
            &mut collector,
            Limits::NONE,
        )?;
        let comparison = collector.finish();
        serde_json::to_writer_pretty(&mut out, &comparison)?;
        out.write_all(b"\n")?;
        eprint!("{}", compare::summary(&comparison));
        summary
    } else {
        run(input, &rules, args.channel.as_deref(), &mut out)?
    };
    out.flush()?;
    report(&summary);
    Ok(())
}

/// A channel's rules by its name.
type RulesOf = Box<dyn Fn(&str) -> Arc<ChannelRules>>;

/// The rules of a channel: the `--rules` file for all, or the config's rules files.
fn channel_rules(args: &ReplayArgs) -> anyhow::Result<RulesOf> {
    if let Some(path) = &args.rules {
        let rules = Arc::new(load_file(path)?);
        return Ok(Box::new(move |_: &str| Arc::clone(&rules)));
    }
    let path = args
        .config
        .as_ref()
        .context("--config or --rules is needed")?;
    let book = crate::app::load_rules(&Config::load(path)?.engine)?;
    Ok(Box::new(move |channel: &str| {
        book.get(&ChannelKey::twitch(channel))
    }))
}

fn report(summary: &ReplaySummary) {
    eprintln!(
        "replayed {} lines: {} chat events, {} actions, {} malformed lines skipped",
        summary.lines, summary.events, summary.actions, summary.malformed
    );
}
