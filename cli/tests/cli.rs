//! The binary: `check-config` answers, `migrate` brings either store's schema up to date
//! once, `run` refuses an unmigrated store when told not to migrate, and `run` shuts down
//! cleanly on SIGTERM.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn firehose() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firehose"))
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/firehose.toml");
    let out = firehose()
        .args(["check-config", path])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn check_config_names_the_bad_key_and_why() {
    let cases = [
        ("[admission]\ncapacity = 0\n", "admission.capacity"),
        ("[twitch]\nchanels = []\n", "chanels"),
        ("[http]\nlisten = \"not an address\"\n", "listen"),
        ("[admission]\noverflow = \"sometimes\"\n", "overflow"),
        ("this is not toml", "invalid config"),
        ("[store]\nscylla_uri = \"no-port\"\n", "store.scylla_uri"),
        ("[store]\nkeyspace = \"Bad-Name\"\n", "store.keyspace"),
        ("[store]\nmax_pending_keys = 1\n", "store.max_pending_keys"),
    ];
    for (text, key) in cases {
        let mut file = tempfile::NamedTempFile::new().expect("temp");
        file.write_all(text.as_bytes()).expect("write");
        let out = firehose()
            .arg("check-config")
            .arg(file.path())
            .output()
            .expect("runs");
        assert!(!out.status.success(), "`{text}` was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key),
            "`{text}`: stderr does not name {key}: {stderr}"
        );
    }
    let out = firehose()
        .args(["check-config", "/nonexistent/firehose.toml"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The rules files are part of the configuration: a bad one fails `check-config`, naming
/// `engine.rules_dir`, the file and the fault; good ones pass. (Configuration itself does
/// not load them: `check-config` and start-up do.)
#[test]
fn check_config_loads_the_rules_files() {
    let dir = tempfile::tempdir().expect("dir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/channels/example.toml"
    );
    std::fs::copy(example, rules.join("good.toml")).expect("copy");
    let config = dir.path().join("firehose.toml");
    std::fs::write(
        &config,
        format!("[engine]\nrules_dir = {:?}\n", rules.display().to_string()),
    )
    .expect("config");
    let out = firehose()
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        rules.join("bad.toml"),
        "[[commands]]\nname = \"!x\"\nresponse = \"$(unclosed\"\n",
    )
    .expect("bad rules");
    let out = firehose()
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a bad rules file was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("engine.rules_dir") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn an_env_override_with_a_bad_value_is_named() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/firehose.toml");
    let out = firehose()
        .args(["check-config", path])
        .env("FIREHOSE_ADMISSION_CAPACITY", "plenty")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIREHOSE_ADMISSION_CAPACITY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_then_exits_0_on_sigterm_without_leaking_the_token() {
    let sim = sim(2, |_| {}).await;
    let channels = sim_channels(2);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("firehose.toml");
    std::fs::write(
        &config,
        format!(
            "[twitch]\nserver = \"{}\"\ntls = false\nlogin = \"firehosebot\"\nchannels = [{}]\nverified_bot = true\n[twitch.join]\nlimit = 1000\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            sim.local_addr(),
            channels.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
        ),
    )
    .expect("write config");
    let secret = "oauth:very-secret-token-value";
    let child = firehose()
        .args(["run", "--config"])
        .arg(&config)
        .env("FIREHOSE_TWITCH_TOKEN", secret)
        .env("FIREHOSE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    wait_until_async("the service is ready", Duration::from_secs(20), || async {
        reqwest::get(&ready_url)
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let id = sim
        .send_privmsg(&channels[0], "viewer", "!ping")
        .await
        .expect("joined");
    wait_until("the ping is answered", Duration::from_secs(5), || {
        sim.received()
            .iter()
            .any(|m| m.reply_parent.as_deref() == Some(id.as_str()))
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("waits");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(
        !logs.contains("very-secret-token-value"),
        "the token leaked into the logs"
    );
    sim.shutdown().await;
}

fn migrate(config: &std::path::Path) -> String {
    let out = firehose()
        .args(["migrate", "--config"])
        .arg(config)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn migrate_twice(store_section: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("firehose.toml");
    std::fs::write(&config, store_section).expect("write");
    let latest = firehose::store::migrations::latest();
    let first = migrate(&config);
    assert!(
        first.contains(&format!("schema version 0 -> {latest}")),
        "{first}"
    );
    let second = migrate(&config);
    assert!(
        second.contains(&format!("schema version {latest}, up to date")),
        "{second}"
    );
}

#[test]
fn migrate_applies_the_embedded_schema_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("state.redb");
    migrate_twice(&format!(
        "[store]\nembedded_path = \"{}\"\n",
        path.display()
    ));
    assert!(path.exists());
}

#[test]
fn migrate_applies_the_cql_schema_once() {
    let store = scylla_store_config("cli");
    migrate_twice(&format!(
        "[store]\nscylla_uri = \"{}\"\nkeyspace = \"{}\"\n",
        store.scylla_uri, store.keyspace
    ));
}

#[test]
fn run_refuses_an_unmigrated_store_when_told_not_to_migrate() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("firehose.toml");
    let path = dir.path().join("state.redb");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[store]\nembedded_path = \"{}\"\nmigrate_on_start = false\n",
            path.display()
        ),
    )
    .expect("write");
    let out = firehose()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("firehose migrate"), "{stderr}");
}
