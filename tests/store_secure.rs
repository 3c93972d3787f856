//! The CQL store against a node that requires a login and TLS with a client certificate
//! (`store.scylla_username`, the password from env or file, `store.scylla_tls` and its files).
//!
//! The node is this test's own: `scripts/test-db.sh` with `CASSANDRA_SECURE=1` starts it in a
//! temporary directory (the JDK's keytool makes a CA and the node's keystore, openssl a client
//! certificate; see the script) and stops it when the test ends. With
//! `FIREHOSE_SCYLLA_SECURE_URI` and `FIREHOSE_SCYLLA_SECURE_DIR` set, that node is used instead
//! (superuser `cassandra`/`cassandra`, `ca.pem`, `client.pem`, `client.key` in the dir).
//!
//! One test, so that one node serves every check, run in turn: a login over TLS migrates, writes
//! and reads (also checking a configured server name, and a whole config loaded from TOML
//! with the password in a file); a wrong password, no login, an untrusted CA, a wrong server
//! name and a missing client certificate each fail with an error naming what is wrong, well
//! before the connect timeout; and the password never shows in a `Debug` dump, an error or a
//! log line (every log line of the run is captured at TRACE, the driver's too).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use firehose::config::{Config, Secret, StoreConfig};
use firehose::store::model::{ChannelWrite, UserRow};
use firehose::store::{StateStore, StoreError};

/// The role the service logs in as, and its password (distinctive, to be looked for in logs).
const APP_USER: &str = "firehose_app";
const APP_PASSWORD: &str = "fh-Pw-8d3f1c9e7b2a-never-printed";

/// Every log line of this test binary, TRACE and up.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secure node: this test's own (stopped on drop), or the one the environment names.
struct SecureNode {
    uri: String,
    tls: PathBuf,
    own: Option<tempfile::TempDir>,
}

impl SecureNode {
    fn script(run: &std::path::Path, command: &str) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-db.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(command)
            .env_remove("FIREHOSE_SCYLLA_SECURE_URI")
            .env("CASSANDRA_SECURE", "1")
            .env("CASSANDRA_RUN_DIR", run)
            .env("CASSANDRA_NATIVE_PORT", "19242")
            .env("CASSANDRA_HEAP", "512m")
            .env("CASSANDRA_HEAP_MIN", "256m")
            .output()
            .expect("scripts/test-db.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "test-db.sh {command} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn start() -> SecureNode {
        if let (Ok(uri), Ok(dir)) = (
            std::env::var("FIREHOSE_SCYLLA_SECURE_URI"),
            std::env::var("FIREHOSE_SCYLLA_SECURE_DIR"),
        ) {
            return SecureNode {
                uri,
                tls: PathBuf::from(dir),
                own: None,
            };
        }
        let dir = tempfile::tempdir().expect("dir");
        let out = Self::script(&dir.path().join("run"), "start");
        let value = |key: &str| {
            out.lines()
                .filter_map(|l| l.strip_prefix(key))
                .next_back()
                .unwrap_or_else(|| panic!("the script prints {key}: {out}"))
                .to_string()
        };
        SecureNode {
            uri: value("FIREHOSE_SCYLLA_SECURE_URI="),
            tls: PathBuf::from(value("FIREHOSE_SCYLLA_SECURE_DIR=")),
            own: Some(dir),
        }
    }

    /// A store config on this node: TLS with the test CA and client certificate, logged in as
    /// `user`, a keyspace of its own.
    fn config(&self, user: &str, password: &str, keyspace: &str) -> StoreConfig {
        StoreConfig {
            scylla_uri: self.uri.clone(),
            keyspace: keyspace.to_string(),
            scylla_username: user.to_string(),
            scylla_password: (!password.is_empty()).then(|| Secret::new(password)),
            scylla_tls: true,
            scylla_ca_file: Some(self.tls.join("ca.pem")),
            scylla_client_cert_file: Some(self.tls.join("client.pem")),
            scylla_client_key_file: Some(self.tls.join("client.key")),
            request_timeout_ms: 5_000,
            ..StoreConfig::default()
        }
    }
}

impl Drop for SecureNode {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let run = dir.path().join("run");
            let _ = std::panic::catch_unwind(|| Self::script(&run, "stop"));
        }
    }
}

/// Opens a store within a deadline far above what a refusal takes (a hang fails the test).
async fn open(config: &StoreConfig) -> Result<Arc<dyn StateStore>, StoreError> {
    tokio::time::timeout(Duration::from_secs(90), firehose::store::open(config))
        .await
        .expect("connecting answered (no hang)")
}

/// The service's role, made by the superuser (if it is not there yet).
async fn create_app_role(node: &SecureNode) {
    let admin = node.config("cassandra", "cassandra", "unused");
    let builder = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&node.uri)
        .user("cassandra", "cassandra")
        .tls_context(Some(
            firehose::store::cql_tls::client_config(&admin).expect("TLS config"),
        ));
    let session = tokio::time::timeout(Duration::from_secs(60), builder.build())
        .await
        .expect("superuser connect answered")
        .expect("the superuser logs in");
    // (Cassandra refuses to change a password twice within 5 s: created once, never altered.)
    let cql = format!(
        "CREATE ROLE IF NOT EXISTS {APP_USER} WITH PASSWORD = '{APP_PASSWORD}' AND LOGIN = true"
    );
    session
        .query_unpaged(cql.as_str(), ())
        .await
        .expect("role statement");
}

/// Opens a store that must be refused. A connection the busy node drops during its setup is
/// not the answer being tested (it says nothing about the configuration): tried again, up to
/// five times, 2 s apart (a full run under load saw three in a row).
async fn refused(
    config: &firehose::config::StoreConfig,
) -> Result<Arc<dyn StateStore>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match open(config).await {
            Err(StoreError::Unavailable(why)) if attempt < 6 && why.contains("broken") => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

fn assert_config_error(result: Result<Arc<dyn StateStore>, StoreError>, needles: &[&str]) {
    let error = match result {
        Ok(_) => panic!("connecting should have failed ({needles:?})"),
        Err(e) => e,
    };
    assert!(
        matches!(error, StoreError::Config(_)),
        "a configuration error, not a retryable one: {error}"
    );
    let text = error.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} in: {text}");
    }
    assert!(!text.contains(APP_PASSWORD), "password in: {text}");
    assert!(!format!("{error:?}").contains(APP_PASSWORD));
}

async fn login_over_tls_migrates_writes_and_reads_back(node: &SecureNode) {
    let config = node.config(APP_USER, APP_PASSWORD, "fh_secure_rw");
    let store = open(&config).await.expect("logs in over TLS");
    store.migrate().await.expect("migrations over TLS");
    let mut write = ChannelWrite::new("twitch:secure", 3_600);
    write.counters = vec![("messages".into(), 5)];
    write.users = vec![UserRow {
        user_id: "42".into(),
        login: "alice".into(),
        messages: 5,
        last_seen_ms: 1,
        warnings: 0,
    }];
    store.write(&write).await.expect("write");
    let stored = store.load_channel("twitch:secure").await.expect("load");
    assert_eq!(stored.counters["messages"], 5);
    let users = store
        .load_users("twitch:secure", &["42".to_string()])
        .await
        .expect("users");
    assert_eq!(users, write.users);

    // The certificate checked against a configured name instead of the address.
    let mut named = config.clone();
    named.scylla_tls_server_name = "firehose-test-db".into();
    let store = open(&named)
        .await
        .expect("the certificate names firehose-test-db");
    assert_eq!(
        store.schema_version().await.expect("version"),
        firehose::store::migrations::latest()
    );
}

/// The wiring of a real config file: password in a file, TLS files by path.
async fn a_config_file_with_the_password_in_a_file_connects(node: &SecureNode) {
    let dir = tempfile::tempdir().expect("dir");
    let password_file = dir.path().join("cql-password");
    std::fs::write(&password_file, format!("{APP_PASSWORD}\n")).expect("password file");
    let text = format!(
        r#"
        [store]
        scylla_uri = "{uri}"
        keyspace = "fh_secure_file"
        scylla_username = "{APP_USER}"
        scylla_password_file = "{password}"
        scylla_tls = true
        scylla_ca_file = "{tls}/ca.pem"
        scylla_client_cert_file = "{tls}/client.pem"
        scylla_client_key_file = "{tls}/client.key"
        "#,
        uri = node.uri,
        password = password_file.display(),
        tls = node.tls.display(),
    );
    let config = Config::from_toml_with_env(&text, "test", &[]).expect("valid config");
    assert!(
        !format!("{config:?}").contains(APP_PASSWORD),
        "Debug of Config"
    );
    let store = open(&config.store).await.expect("connects");
    store.migrate().await.expect("migrate");

    // The environment wins over the file: a wrong password there is refused.
    let env = vec![(
        "FIREHOSE_SCYLLA_PASSWORD".to_string(),
        "not-the-password".to_string(),
    )];
    let config = Config::from_toml_with_env(&text, "test", &env).expect("valid config");
    assert_config_error(refused(&config.store).await, &["authentication", APP_USER]);
}

async fn refusals_name_what_is_wrong(node: &SecureNode) {
    let good = node.config(APP_USER, APP_PASSWORD, "fh_secure_bad");

    let mut wrong = good.clone();
    wrong.scylla_password = Some(Secret::new("wrong-password"));
    assert_config_error(
        refused(&wrong).await,
        &["authentication failed", APP_USER, "store.scylla_username"],
    );

    let mut anonymous = good.clone();
    anonymous.scylla_username = String::new();
    anonymous.scylla_password = None;
    assert_config_error(refused(&anonymous).await, &["authentication", "no login"]);

    // A CA the node's certificate does not chain to (the client's self-signed certificate).
    let mut untrusted = good.clone();
    untrusted.scylla_ca_file = Some(node.tls.join("client.pem"));
    assert_config_error(refused(&untrusted).await, &["TLS", "store.scylla_ca_file"]);

    // A CA file that is not there: refused before any connection.
    let mut missing = good.clone();
    missing.scylla_ca_file = Some(node.tls.join("no-such-ca.pem"));
    assert_config_error(
        refused(&missing).await,
        &["store.scylla_ca_file", "no-such-ca.pem"],
    );

    let mut misnamed = good.clone();
    misnamed.scylla_tls_server_name = "not-the-db.example".into();
    assert_config_error(
        refused(&misnamed).await,
        &["TLS", "store.scylla_tls_server_name"],
    );

    // The node requires a client certificate.
    let mut no_client_cert = good.clone();
    no_client_cert.scylla_client_cert_file = None;
    no_client_cert.scylla_client_key_file = None;
    assert_config_error(
        refused(&no_client_cert).await,
        &["TLS", "store.scylla_client_cert_file"],
    );
}

fn the_password_never_shows(config: &StoreConfig) {
    let full = Config {
        store: config.clone(),
        ..Config::default()
    };
    for dump in [format!("{config:?}"), format!("{full:?}")] {
        assert!(!dump.contains(APP_PASSWORD), "Debug: {dump}");
        assert!(dump.contains("***"), "a set password shows as ***: {dump}");
    }
    let log = captured().lock().expect("log").clone();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.len() > 1_000,
        "the driver's connections were logged ({} bytes)",
        log.len()
    );
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(APP_PASSWORD)).collect();
    assert!(
        leaks.is_empty(),
        "the password is in the log output: {leaks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_login_and_tls_against_a_secure_node() {
    let node = tokio::task::spawn_blocking(SecureNode::start)
        .await
        .expect("secure node");
    // The one statement that holds the password on purpose, before the log capture starts.
    create_app_role(&node).await;
    captured();
    login_over_tls_migrates_writes_and_reads_back(&node).await;
    a_config_file_with_the_password_in_a_file_connects(&node).await;
    refusals_name_what_is_wrong(&node).await;
    the_password_never_shows(&node.config(APP_USER, APP_PASSWORD, "fh_secure_rw"));
    drop(node);
}
