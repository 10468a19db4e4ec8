//! The database, for the commands that read or change it.

use psg_config::{Config, redact_url};
use psg_store::Store;

use crate::error::CliError;

/// Connects to the configured database for `what` (a command, named in
/// the error when no database is configured).
pub(crate) async fn open(cfg: &Config, what: &str) -> Result<Store, CliError> {
    let url = cfg.database.url.as_ref().ok_or_else(|| {
        CliError::Config(format!("{what} needs the database: pass --database-url or set DATABASE_URL"))
    })?;
    Store::connect(url.expose(), 2)
        .await
        .map_err(|e| CliError::Runtime(format!("database {}: {e}", redact_url(url.expose()))))
}
