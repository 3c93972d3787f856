//! `[http]`: where the health, metrics and admin endpoints listen, and the admin token file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the health, metrics and admin endpoints.
    pub listen: SocketAddr,
    /// File holding the admin bearer token (used when FIREHOSE_ADMIN_TOKEN is not set).
    pub admin_token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token_file: None,
        }
    }
}
