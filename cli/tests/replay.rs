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
            line("a4", "carol", 1_568_505_603_000, "!discord"),
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
