//! Opening the configured store: PostgreSQL when a URL is given, else the embedded
//! SQLite file under the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::queue::Store;
use crate::queue::postgres::PgStore;
use crate::queue::sqlite::SqliteStore;

/// Which store to open.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// A PostgreSQL URL.
    Postgres(String),
    /// The embedded store's file.
    Sqlite(PathBuf),
}

impl StoreChoice {
    /// PostgreSQL if `url` is set, else `<data_dir>/wasmq.db`.
    pub fn from_args(url: Option<&str>, data_dir: &Path) -> Self {
        match url {
            Some(u) if !u.is_empty() => StoreChoice::Postgres(u.to_owned()),
            _ => StoreChoice::Sqlite(data_dir.join("wasmq.db")),
        }
    }

    /// Connects (running migrations) and returns the store.
    pub async fn open(&self, connections: u32) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            StoreChoice::Postgres(url) => Arc::new(
                PgStore::connect(url, connections)
                    .await
                    .context("connecting to PostgreSQL")?,
            ),
            StoreChoice::Sqlite(path) => Arc::new(
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("opening the embedded store at {}", path.display()))?,
            ),
        })
    }

    /// A description for logs, without credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Postgres(url) => {
                let host = url.rsplit('@').next().unwrap_or(url);
                format!("PostgreSQL at {host}")
            }
            StoreChoice::Sqlite(p) => format!("embedded SQLite store at {}", p.display()),
        }
    }
}
