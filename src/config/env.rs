//! `FIREHOSE_*` overrides: every key of the defaults is overridable, typed like its default.

use super::{Config, ConfigError};

/// Variables that are not key overrides (secrets and other settings read elsewhere).
const NOT_KEYS: &[&str] = &[
    "FIREHOSE_TWITCH_TOKEN",
    "FIREHOSE_ADMIN_TOKEN",
    "FIREHOSE_HELIX_TOKEN",
    "FIREHOSE_DISCORD_TOKEN",
    "FIREHOSE_TWITCH_CLIENT_SECRET",
    "FIREHOSE_TWITCH_REFRESH_TOKEN",
    "FIREHOSE_EVENTSUB_WEBHOOK_SECRET",
    "FIREHOSE_LOG",
    // The test database of the storage work (scripts/test-db.sh), not a service key.
    "FIREHOSE_SCYLLA_URI",
];

/// Optional keys (absent by default), overridable like the others.
const OPTIONAL_KEYS: &[&[&str]] = &[
    &["twitch", "token_file"],
    &["http", "admin_token_file"],
    &["http", "admin_listen"],
    &["helix", "token_file"],
    &["helix", "moderation_log"],
    &["discord", "token_file"],
    &["discord", "root_ca_file"],
    &["twitch", "auth", "client_secret_file"],
    &["twitch", "auth", "refresh_token_file"],
    &["twitch", "eventsub", "webhook_secret_file"],
];

pub(super) fn apply(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let defaults = match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => return Ok(()),
    };
    let mut leaves = Vec::new();
    collect_leaves(&defaults, &mut Vec::new(), &mut leaves);
    // Keys whose default is "absent" do not serialize; they are file paths (strings).
    for path in OPTIONAL_KEYS {
        let path = path.iter().map(|p| p.to_string()).collect();
        leaves.push((path, toml::Value::String(String::new())));
    }
    for (var, raw) in env {
        if !var.starts_with("FIREHOSE_") || NOT_KEYS.contains(&var.as_str()) {
            continue;
        }
        let Some((path, default)) = leaves.iter().find(|(path, _)| env_name(path) == *var) else {
            // A misspelt override must not be silently ignored.
            return Err(ConfigError::Env {
                var: var.clone(),
                key: "(none)".to_string(),
                reason: "no configuration key has this name; see config/firehose.toml".to_string(),
            });
        };
        let key = path.join(".");
        let value = parse_like(default, raw).map_err(|bad| ConfigError::Env {
            var: var.clone(),
            key: key.clone(),
            reason: bad.to_string(),
        })?;
        set_path(table, path, value);
    }
    Ok(())
}

fn collect_leaves(
    table: &toml::Table,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, toml::Value)>,
) {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            toml::Value::Table(inner) => collect_leaves(inner, prefix, out),
            leaf => out.push((prefix.clone(), leaf.clone())),
        }
        prefix.pop();
    }
}

/// Keys that default to None are absent from the serialized defaults; they are strings.
fn env_name(path: &[String]) -> String {
    format!("FIREHOSE_{}", path.join("_").to_ascii_uppercase())
}

/// An override whose text is not of its key's type.
#[derive(Debug, thiserror::Error)]
enum BadValue {
    #[error("`{0}` is not an integer")]
    NotInteger(String),
    #[error("`{0}` is not true/false")]
    NotBool(String),
}

fn parse_like(default: &toml::Value, raw: &str) -> Result<toml::Value, BadValue> {
    match default {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| BadValue::NotInteger(raw.to_string())),
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(BadValue::NotBool(raw.to_string())),
        },
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        current = inner;
    }
    current.insert(last.clone(), value);
}
