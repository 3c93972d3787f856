//! The configuration's tests: the shipped file loads and documents every key, bad values and
//! overrides name their key, secrets come from env or files and never print.

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml_with_env(text, "test.toml", &env)
}

#[test]
fn the_shipped_config_file_is_valid() {
    let text = include_str!("../../config/firehose.toml");
    let config = load(text, &[]).expect("config/firehose.toml must load");
    assert_eq!(config.admission.overflow, OverflowPolicy::Shed);
}

#[test]
fn every_default_key_is_documented_in_the_shipped_file() {
    let text = include_str!("../../config/firehose.toml");
    let shipped: toml::Table = toml::from_str(text).expect("toml");
    let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Config::default()) else {
        panic!("defaults serialize to a table");
    };
    fn check(defaults: &toml::Table, shipped: &toml::Table, path: &str) {
        for (key, value) in defaults {
            let here = format!("{path}{key}");
            let Some(found) = shipped.get(key) else {
                panic!("config/firehose.toml lacks `{here}`");
            };
            if let (toml::Value::Table(d), toml::Value::Table(s)) = (value, found) {
                check(d, s, &format!("{here}."));
            }
        }
    }
    check(&defaults, &shipped, "");
}

#[test]
fn an_unknown_key_is_named() {
    let err = load("[admission]\ncapacityy = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("capacityy"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let err = load("[admission]\ncapacity = \"lots\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("capacity"), "{err}");
}

#[test]
fn out_of_range_values_name_the_key_and_the_reason() {
    let cases = [
        ("[admission]\ncapacity = 0\n", "admission.capacity"),
        ("[twitch]\nserver = \"nohost\"\n", "twitch.server"),
        ("[twitch]\nchannels = [\"#Bad\"]\n", "twitch.channels[0]"),
        (
            "[twitch.send]\nmax_message_chars = 501\n",
            "twitch.send.max_message_chars",
        ),
        (
            "[supervisor]\nrestart_backoff_ms = 10\nrestart_backoff_max_ms = 5\n",
            "supervisor.restart_backoff_max_ms",
        ),
        ("[admission]\noverflow = \"drop\"\n", "overflow"),
    ];
    for (text, key) in cases {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(
            err.contains(key),
            "`{text}` gave `{err}`, which does not name {key}"
        );
    }
}

#[test]
fn env_overrides_are_typed_like_their_key() {
    let config = load(
        "",
        &[
            ("FIREHOSE_ADMISSION_CAPACITY", "7"),
            ("FIREHOSE_TWITCH_TLS", "false"),
            ("FIREHOSE_TWITCH_CHANNELS", "a, b,c"),
            ("FIREHOSE_ADMISSION_OVERFLOW", "block"),
            ("FIREHOSE_TWITCH_SEND_ACCOUNT_LIMIT_MOD", "150"),
        ],
    )
    .expect("valid");
    assert_eq!(config.admission.capacity, 7);
    assert!(!config.twitch.tls);
    assert_eq!(config.twitch.channels, ["a", "b", "c"]);
    assert_eq!(config.admission.overflow, OverflowPolicy::Block);
    assert_eq!(config.twitch.send.account_limit_mod, 150);
}

#[test]
fn a_bad_env_override_names_the_variable() {
    let err = load("", &[("FIREHOSE_ADMISSION_CAPACITY", "many")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("FIREHOSE_ADMISSION_CAPACITY"), "{err}");
    assert!(err.contains("admission.capacity"), "{err}");
}

#[test]
fn secrets_come_from_env_or_file_and_never_print() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin");
    std::fs::write(&file, "  file-token\n").expect("write");
    let text = format!(
        "[http]\nadmin_token_file = {:?}\n",
        file.display().to_string()
    );
    let config = load(&text, &[("FIREHOSE_TWITCH_TOKEN", "oauth:env-token")]).expect("valid");
    let admin = config.secrets.admin_token.as_ref().expect("admin token");
    assert_eq!(admin.expose(), "file-token");
    let twitch = config.secrets.twitch_token.as_ref().expect("twitch token");
    assert_eq!(twitch.expose(), "oauth:env-token");
    let dump = format!("{config:?}");
    assert!(
        !dump.contains("file-token") && !dump.contains("env-token"),
        "{dump}"
    );
}

#[test]
fn a_missing_secret_file_is_an_error_naming_the_key() {
    let err = load("[twitch]\ntoken_file = \"/nonexistent/token\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("twitch.token_file"), "{err}");
}

#[test]
fn helix_needs_a_token_once_enabled() {
    let err = load("[helix]\nclient_id = \"abc\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("helix.token_file"), "{err}");
    let config = load(
        "[helix]\nclient_id = \"abc\"\n",
        &[("FIREHOSE_HELIX_TOKEN", "tok")],
    )
    .expect("valid");
    assert!(config.helix_enabled());
    assert_eq!(
        config.secrets.helix_token.as_ref().map(|t| t.expose()),
        Some("tok")
    );
    let err = load(
        "[helix]\nclient_id = \"abc\"\npoints_per_minute = 0\n",
        &[("FIREHOSE_HELIX_TOKEN", "tok")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("helix.points_per_minute"), "{err}");
}

#[test]
fn optional_keys_have_overrides_and_misspelt_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin");
    std::fs::write(&file, "from-file").expect("write");
    let path = file.display().to_string();
    let config = load("", &[("FIREHOSE_HTTP_ADMIN_TOKEN_FILE", path.as_str())]).expect("valid");
    assert_eq!(
        config.secrets.admin_token.as_ref().map(|t| t.expose()),
        Some("from-file")
    );
    let err = load("", &[("FIREHOSE_ADMISION_CAPACITY", "7")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("FIREHOSE_ADMISION_CAPACITY"), "{err}");
}

#[test]
fn discord_needs_a_token_once_enabled_and_its_keys_are_overridable() {
    let err = load("[discord]\nenabled = true\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("discord.token_file"), "{err}");
    let config = load(
        "[discord]\nenabled = true\n[discord.channels]\n\"123\" = { name = \"general\", guild = \"45\" }\n[discord.guild_roles.45]\n\"6\" = \"moderator\"\n",
        &[
            ("FIREHOSE_DISCORD_TOKEN", "discord-secret"),
            ("FIREHOSE_DISCORD_SHARDS", "2"),
            ("FIREHOSE_DISCORD_GATEWAY_URL", "ws://127.0.0.1:9"),
        ],
    )
    .expect("valid");
    assert_eq!(config.discord.shards, 2);
    assert_eq!(config.discord.gateway_url, "ws://127.0.0.1:9");
    assert_eq!(config.discord.guild_of("123"), Some("45"));
    assert_eq!(config.discord.role_of("45", ["6"]), GrantedRole::Moderator);
    assert_eq!(
        config.secrets.discord_token.as_ref().map(|t| t.expose()),
        Some("discord-secret")
    );
    assert!(!format!("{config:?}").contains("discord-secret"));
    let err = load("[discord]\nshards = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("discord.shards"), "{err}");
    let err = load("", &[("FIREHOSE_DISCORD_SHARDZ", "2")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("FIREHOSE_DISCORD_SHARDZ"), "{err}");
}

/// A config file, its environment, and the key its error must name.
type MissingCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn eventsub_and_helix_sending_name_what_they_miss() {
    let cases: [MissingCase; 6] = [
        ("[twitch]\ningest = \"eventsub\"\n", &[], "helix.client_id"),
        (
            "[twitch]\ningest = \"eventsub\"\n[helix]\nclient_id = \"c\"\n",
            &[],
            "twitch.auth.client_secret_file",
        ),
        (
            "[twitch]\ningest = \"eventsub\"\n[twitch.eventsub]\ntransport = \"webhook\"\n[helix]\nclient_id = \"c\"\n",
            &[("FIREHOSE_TWITCH_CLIENT_SECRET", "s")],
            "twitch.eventsub.webhook_secret_file",
        ),
        (
            "[twitch]\ningest = \"eventsub\"\n[twitch.eventsub]\ntransport = \"websocket\"\n[helix]\nclient_id = \"c\"\n",
            &[],
            "twitch.auth.refresh_token_file",
        ),
        (
            "[twitch]\nsend_via = \"helix\"\n[helix]\nclient_id = \"c\"\n",
            &[("FIREHOSE_TWITCH_REFRESH_TOKEN", "r")],
            "twitch.auth.client_secret_file",
        ),
        (
            "[helix]\nclient_id = \"c\"\n",
            &[("FIREHOSE_HELIX_TOKEN", "t"), ("FIREHOSE_EVENTSUB_WEBHOOK_SECRET", "short")],
            "twitch.eventsub.webhook_secret_file",
        ),
    ];
    for (text, env, key) in cases {
        let err = load(text, env).unwrap_err().to_string();
        assert!(err.contains(key), "`{text}` gave `{err}`, not naming {key}");
    }
}

#[test]
fn eventsub_ranges_name_the_key() {
    let cases = [
        ("[twitch.eventsub]\nshards = 0\n", "twitch.eventsub.shards"),
        (
            "[twitch.eventsub]\nkeepalive_timeout_s = 5\n",
            "twitch.eventsub.keepalive_timeout_s",
        ),
        (
            "[twitch.eventsub]\nwebsocket_url = \"http://x\"\n",
            "twitch.eventsub.websocket_url",
        ),
        (
            "[twitch.auth]\nvalidate_interval_ms = 7200000\n",
            "twitch.auth.validate_interval_ms",
        ),
        (
            "[twitch.auth]\noauth_url = \"id.twitch.tv\"\n",
            "twitch.auth.oauth_url",
        ),
        ("[twitch]\ningest = \"pubsub\"\n", "ingest"),
    ];
    for (text, key) in cases {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains(key), "`{text}` gave `{err}`, not naming {key}");
    }
}

#[test]
fn the_eventsub_secrets_come_from_env_and_never_print() {
    let text = "[twitch]\ningest = \"eventsub\"\n[helix]\nclient_id = \"c\"\n";
    let env = [
        ("FIREHOSE_TWITCH_CLIENT_SECRET", "client-secret-value"),
        ("FIREHOSE_TWITCH_REFRESH_TOKEN", "refresh-token-value"),
        ("FIREHOSE_EVENTSUB_WEBHOOK_SECRET", "webhook-secret-value"),
        ("FIREHOSE_TWITCH_EVENTSUB_SHARDS", "4"),
    ];
    let config = load(text, &env).expect("valid");
    assert_eq!(config.twitch.eventsub.shards, 4);
    assert!(config.manages_tokens());
    let shown = format!("{config:?}");
    for secret in [
        "client-secret-value",
        "refresh-token-value",
        "webhook-secret-value",
    ] {
        assert!(!shown.contains(secret), "{secret} printed");
    }
    let secrets = &config.secrets;
    assert_eq!(
        secrets.webhook_secret.as_ref().map(Secret::expose),
        Some("webhook-secret-value")
    );
}

#[test]
fn the_http_limits_admin_address_and_ignored_users_are_checked_and_overridable() {
    let config = load(
        "",
        &[
            ("FIREHOSE_HTTP_ADMIN_LISTEN", "127.0.0.1:9090"),
            ("FIREHOSE_HTTP_HEADER_READ_TIMEOUT_MS", "5000"),
            ("FIREHOSE_HTTP_MAX_CONNECTIONS", "64"),
            (
                "FIREHOSE_ENGINE_IGNORE_USERS",
                "nightbot, StreamElements,12345",
            ),
        ],
    )
    .expect("valid");
    assert_eq!(
        config.http.admin_listen,
        Some("127.0.0.1:9090".parse().expect("addr"))
    );
    assert_eq!(config.http.header_read_timeout_ms, 5_000);
    assert_eq!(config.http.max_connections, 64);
    assert_eq!(
        config.engine.ignore_users,
        ["nightbot", "StreamElements", "12345"]
    );
    let defaults = load("", &[]).expect("valid");
    assert_eq!(
        defaults.http.admin_listen, None,
        "everything on http.listen"
    );
    assert_eq!(defaults.http.header_read_timeout_ms, 30_000);
    assert_eq!(defaults.http.body_read_timeout_ms, 30_000);
    assert!(defaults.engine.ignore_users.is_empty());
    let cases = [
        (
            "[http]\nheader_read_timeout_ms = 0\n",
            "http.header_read_timeout_ms",
        ),
        (
            "[http]\nheader_read_timeout_ms = 30001\n",
            "http.header_read_timeout_ms",
        ),
        ("[http]\nmax_connections = 0\n", "http.max_connections"),
        (
            "[http]\nmetrics_top_channels = 10001\n",
            "http.metrics_top_channels",
        ),
        (
            "[http]\nbody_read_timeout_ms = 0\n",
            "http.body_read_timeout_ms",
        ),
        (
            "[http]\nbody_read_timeout_ms = 60001\n",
            "http.body_read_timeout_ms",
        ),
        (
            "[http]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"\n",
            "http.admin_listen",
        ),
        ("[engine]\nignore_users = [\"\"]\n", "engine.ignore_users"),
        (
            "[engine]\nignore_users = [\"two words\"]\n",
            "engine.ignore_users",
        ),
        (
            "[engine]\nignore_users = [\"#channel\"]\n",
            "engine.ignore_users",
        ),
        (
            "[engine]\nignore_users = [\"a\\u001fb\"]\n",
            "engine.ignore_users",
        ),
    ];
    for (text, key) in cases {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(
            err.contains(key),
            "`{text}` gave `{err}`, which does not name {key}"
        );
    }
}

#[test]
fn the_cql_password_comes_from_env_or_file_reaches_the_store_and_never_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cql");
    std::fs::write(&file, "file-cql-password\n").expect("write");
    let text = format!(
        "[store]\nscylla_uri = \"db:9042\"\nscylla_username = \"firehose\"\nscylla_password_file = {:?}\n",
        file.display().to_string()
    );
    let from_file = load(&text, &[]).expect("valid");
    assert_eq!(
        from_file.store.scylla_password.as_ref().map(Secret::expose),
        Some("file-cql-password")
    );
    let from_env = load(&text, &[("FIREHOSE_SCYLLA_PASSWORD", "env-cql-password")]).expect("valid");
    assert_eq!(
        from_env
            .secrets
            .scylla_password
            .as_ref()
            .map(Secret::expose),
        Some("env-cql-password"),
        "the environment wins"
    );
    assert_eq!(
        from_env.store.scylla_password.as_ref().map(Secret::expose),
        Some("env-cql-password")
    );
    for config in [&from_file, &from_env] {
        let dump = format!("{config:?} {:?}", config.store);
        assert!(
            !dump.contains("file-cql-password") && !dump.contains("env-cql-password"),
            "{dump}"
        );
        assert_eq!(
            format!("{:?}", config.secrets),
            format!("{:?}", config.secrets.masked()),
            "masked covers the CQL password"
        );
        // Written out, the config holds no password (and reads back).
        let written = toml::to_string(config).expect("toml");
        assert!(
            !written.contains("file-cql-password") && !written.contains("env-cql-password"),
            "{written}"
        );
    }
}

#[test]
fn cql_login_and_tls_settings_are_checked_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "pem").expect("write");
    let ca = format!("{:?}", ca.display().to_string());
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "[store]\nscylla_username = \"firehose\"\n".into(),
            vec![],
            "store.scylla_password_file",
        ),
        (
            "[store]\n".into(),
            vec![("FIREHOSE_SCYLLA_PASSWORD", "pw")],
            "store.scylla_username",
        ),
        (
            "[store]\nscylla_username = \" padded\"\n".into(),
            vec![("FIREHOSE_SCYLLA_PASSWORD", "pw")],
            "store.scylla_username",
        ),
        (
            format!("[store]\nscylla_ca_file = {ca}\n"),
            vec![],
            "store.scylla_ca_file",
        ),
        (
            "[store]\nscylla_tls = true\nscylla_ca_file = \"/nonexistent/ca.pem\"\n".into(),
            vec![],
            "store.scylla_ca_file",
        ),
        (
            "[store]\nscylla_tls = true\nscylla_tls_server_name = \"not a name\"\n".into(),
            vec![],
            "store.scylla_tls_server_name",
        ),
        (
            format!("[store]\nscylla_tls = true\nscylla_client_cert_file = {ca}\n"),
            vec![],
            "store.scylla_client_key_file",
        ),
    ];
    for (text, env, key) in cases {
        let err = load(&text, &env).expect_err(&text).to_string();
        assert!(err.contains(key), "`{text}` gave `{err}`, not naming {key}");
    }
    let ok = format!(
        "[store]\nscylla_tls = true\nscylla_ca_file = {ca}\nscylla_tls_server_name = \"db.example\"\nuser_stats_ttl_s = 0\n"
    );
    let config = load(&ok, &[]).expect("valid");
    assert!(config.store.scylla_tls);
    assert_eq!(config.store.user_stats_ttl_s, 0);
    // Every key has its override, the file keys too.
    let config = load(
        "",
        &[
            ("FIREHOSE_STORE_SCYLLA_TLS", "true"),
            ("FIREHOSE_STORE_USER_STATS_TTL_S", "60"),
        ],
    )
    .expect("valid");
    assert!(config.store.scylla_tls);
    assert_eq!(config.store.user_stats_ttl_s, 60);
}

#[test]
fn a_cql_password_in_the_file_or_a_key_override_is_refused() {
    let err = load("[store]\nscylla_password = \"in-the-file\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("scylla_password"), "{err}");
    assert!(!err.contains("in-the-file"), "{err}");
    let err = load("", &[("FIREHOSE_STORE_SCYLLA_PASSWORD", "pw")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("FIREHOSE_STORE_SCYLLA_PASSWORD"), "{err}");
}
