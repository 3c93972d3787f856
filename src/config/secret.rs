//! Secrets: values that must never reach a log line, a debug dump or an error message.

use std::path::Path;

use super::ConfigError;

/// A secret string. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (a PASS line, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Reads a secret from the environment variable `var`, else from `file` (key `file_key`).
/// Surrounding white space is trimmed; an empty value counts as absent.
pub(super) fn from_env_or_file(
    env: &[(String, String)],
    var: &str,
    file_key: &str,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some((_, value)) = env.iter().find(|(k, _)| k == var) {
        let value = value.trim();
        if !value.is_empty() {
            return Ok(Some(Secret::new(value)));
        }
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = read_bounded(path).map_err(|reason| ConfigError::Invalid {
        key: file_key.to_string(),
        reason: format!("cannot read {}: {reason}", path.display()),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::Invalid {
            key: file_key.to_string(),
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(Some(Secret::new(value)))
}

/// Longest secret file read (a token or password is far shorter).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a secret file could not be read.
#[derive(Debug, thiserror::Error)]
enum SecretFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("longer than {MAX_SECRET_FILE_BYTES} bytes")]
    TooLong,
    #[error("not UTF-8")]
    NotUtf8,
}

/// Reads a secret file: a regular file (a FIFO or device such as `/dev/stdin` would block or
/// never end), at most [`MAX_SECRET_FILE_BYTES`], UTF-8.
fn read_bounded(path: &Path) -> Result<String, SecretFileError> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(SecretFileError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLong);
    }
    String::from_utf8(bytes).map_err(|_| SecretFileError::NotUtf8)
}
