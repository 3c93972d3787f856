//! `firehose replay` over recorded chat: every action as one JSON object per line.

use std::process::Command;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/xqcow-chat-2019.txt"
);
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/channels/example.toml"
);

fn setup(rules: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("xqcow.toml"), rules).expect("rules");
    let config = dir.path().join("firehose.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nrules_dir = {:?}\n",
            rules_dir.display().to_string()
        ),
    )
    .expect("config");
    (dir, config)
}

fn replay(
    config: &std::path::Path,
    input: &std::path::Path,
    channel: Option<&str>,
) -> (Vec<serde_json::Value>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firehose"));
    command
        .arg("replay")
        .arg("--config")
        .arg(config)
        .arg("--input")
        .arg(input);
    if let Some(channel) = channel {
        command.args(["--channel", channel]);
    }
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (records, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn crafted_lines_give_exactly_the_expected_actions() {
    let rules = r#"
[[commands]]
name = "!discord"
response = "discord.gg/x"

[[filters]]
name = "no-scam"
kind = "banned_phrases"
action = { timeout = 600 }
phrases = [{ pattern = "free bitcoin" }]
"#;
    let (dir, config) = setup(rules);
    let line = |id: &str, user: &str, ts: u64, text: &str| {
        format!("@badge-info=;badges=;color=;display-name={user};emotes=;flags=;id={id};mod=0;room-id=71092938;subscriber=0;tmi-sent-ts={ts};turbo=0;user-id=1{ts};user-type= :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #xqcow :{text}")
    };
    let input = dir.path().join("chat.txt");
    std::fs::write(
        &input,
        [
            line("a1", "alice", 1_568_505_600_000, "hello chat"),
            line("a2", "bob", 1_568_505_601_000, "!discord"),
            line("a3", "mallory", 1_568_505_602_000, "get FREE BITCOIN now"),
            "@bad-tags-without-a-command".to_string(),
            ":tmi.twitch.tv PRIVMSG".to_string(),
            // Within the default 5 s cooldown of a command: not answered.
            line("a5", "dave", 1_568_505_603_000, "!discord"),
            line("a4", "carol", 1_568_505_606_500, "!discord"),
        ]
        .join("\n"),
    )
    .expect("input");
    let (records, stderr) = replay(&config, &input, None);
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[0]["action"], "say");
    assert_eq!(records[0]["msg_id"], "a2");
    assert_eq!(records[0]["user"], "bob");
    assert_eq!(records[0]["text"], "discord.gg/x");
    assert_eq!(records[1]["action"], "timeout");
    assert_eq!(records[1]["msg_id"], "a3");
    assert_eq!(records[1]["user"], "mallory");
    assert_eq!(records[1]["duration_s"], 600);
    assert_eq!(records[1]["rule"], "no-scam");
    assert_eq!(records[2]["msg_id"], "a4");
    assert!(stderr.contains("2 malformed"), "{stderr}");
}

#[test]
fn the_real_corpus_through_the_example_rules() {
    let rules = std::fs::read_to_string(EXAMPLE).expect("example rules");
    let (dir, config) = setup(&rules);
    let (records, stderr) = replay(&config, std::path::Path::new(CORPUS), Some("xqcow"));
    assert!(stderr.contains("replayed 4000 lines"), "{stderr}");
    assert!(
        records.len() > 100,
        "the example rules act on real spam ({} actions)",
        records.len()
    );
    let kinds = [
        "say", "reply", "delete", "timeout", "ban", "unban", "withheld",
    ];
    for record in &records {
        assert_eq!(record["channel"], "xqcow");
        assert!(
            kinds.contains(&record["action"].as_str().unwrap_or("")),
            "{record}"
        );
        for field in ["msg_id", "user", "duration_s", "text", "rule"] {
            assert!(record.get(field).is_some(), "{field} missing in {record}");
        }
        if record["action"] == "timeout" {
            assert!(
                record["duration_s"].as_u64().is_some_and(|d| d > 0),
                "{record}"
            );
            assert!(record["rule"].is_string(), "{record}");
        }
    }
    assert!(records.iter().any(|r| r["action"] == "timeout"));
    // Another channel filter gives nothing.
    let (none, _) = replay(&config, std::path::Path::new(CORPUS), Some("forsen"));
    assert!(none.is_empty());
    drop(dir);
}

const REAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/twitch-irc-real.txt"
);

/// `firehose replay --rules <example> --input <recording> <extra>`: stdout and stderr.
fn replay_with_example(recording: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firehose"))
        .args(["replay", "--rules", EXAMPLE, "--input", recording])
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The shipped example rules fit real chat: over every recording of the shared corpus they act
/// on at most 3 % of the chat messages (the top channel's own moderators removed about 1.4 %)
/// and catch part of what the moderators removed. `--compare`'s figures agree with the plain
/// replay's action lines.
#[test]
fn the_example_rules_act_on_at_most_three_percent_of_real_chat() {
    for recording in [CORPUS, REAL] {
        let (json, summary) = replay_with_example(recording, &["--compare"]);
        let c: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        let text = std::fs::read_to_string(recording).expect("corpus");
        let privmsgs = text.lines().filter(|l| l.contains(" PRIVMSG #")).count() as u64;
        assert!(
            c["messages"]
                .as_u64()
                .is_some_and(|n| n > 0 && n <= privmsgs),
            "{recording}: {c}"
        );
        let ratio = c["acted_on_ratio"].as_f64().expect("ratio");
        assert!(
            ratio <= 0.03,
            "{recording}: the example rules act on {ratio}: {summary}"
        );
        assert!(
            summary.contains("chat messages; the rules act on"),
            "{summary}"
        );

        // The plain replay: one action per line; the messages they name are the ones acted on.
        let (lines, _) = replay_with_example(recording, &[]);
        let mut ids = std::collections::BTreeSet::new();
        for line in lines.lines() {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            if let Some(id) = record["msg_id"].as_str() {
                ids.insert(id.to_string());
            }
        }
        assert_eq!(
            c["acted_on"].as_u64(),
            Some(ids.len() as u64),
            "{recording}"
        );
    }
    let (json, _) = replay_with_example(CORPUS, &["--compare", "--window-s", "60"]);
    let c: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(c["messages"].as_u64(), Some(3945));
    // The recording's moderators timed out 25 users and banned one (each line recorded twice).
    assert_eq!(c["moderator_actions"]["timeouts"].as_u64(), Some(25));
    assert_eq!(c["moderator_actions"]["bans"].as_u64(), Some(1));
    assert!(c["both"].as_u64().is_some_and(|n| n > 0), "{c}");
    let ours = c["moderated_by_rules"].as_u64().unwrap_or(0);
    let theirs = c["moderated_by_moderators"].as_u64().unwrap_or(0);
    assert!(
        ours <= 2 * theirs,
        "the rules moderate {ours}, the moderators {theirs}"
    );
    assert!(
        c["rules"]["repetition"]["messages"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{c}"
    );
}

#[test]
fn replay_needs_rules_from_somewhere() {
    let out = Command::new(env!("CARGO_BIN_EXE_firehose"))
        .args(["replay", "--input", CORPUS])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
