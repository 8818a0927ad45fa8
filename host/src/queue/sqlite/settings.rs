//! Module settings on SQLite (`wasmq_module_settings`, migration 0004): as on PostgreSQL,
//! JSON as TEXT; writes on the writer connection, durable.

use std::collections::BTreeMap;

use super::SqliteDriver;
use super::rows::{db_err, json_text};
use crate::queue::driver::SettingsRows;
use crate::queue::{ModuleSettings, StoreError};

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("a stored module setting is not JSON: {e}")))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[async_trait::async_trait]
impl SettingsRows for SqliteDriver {
    async fn module_settings(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ModuleSettings, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT allowed_hosts, config_values, config_secrets FROM wasmq_module_settings \
             WHERE tenant = ?1 AND name = ?2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        let Some((hosts, values, secrets)) = row else {
            return Ok(ModuleSettings::default());
        };
        Ok(ModuleSettings {
            allowed_hosts: parse(&hosts)?,
            values: parse(&values)?,
            secrets: parse(&secrets)?,
        })
    }

    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, allowed_hosts FROM wasmq_module_settings \
             WHERE tenant = ?1 AND allowed_hosts <> '[]'",
        )
        .bind(tenant)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(name, hosts)| Ok((name, parse(&hosts)?)))
            .collect()
    }

    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        self.upsert(
            tenant,
            name,
            "INSERT INTO wasmq_module_settings (tenant, name, updated_at, allowed_hosts) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant, name) DO UPDATE \
             SET allowed_hosts = excluded.allowed_hosts, updated_at = excluded.updated_at",
            &[json_text(&hosts)],
        )
        .await
    }

    async fn set_module_config(
        &self,
        tenant: &str,
        name: &str,
        values: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.upsert(
            tenant,
            name,
            "INSERT INTO wasmq_module_settings \
             (tenant, name, updated_at, config_values, config_secrets) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, name) DO UPDATE \
             SET config_values = excluded.config_values, \
                 config_secrets = excluded.config_secrets, updated_at = excluded.updated_at",
            &[json_text(values), json_text(secrets)],
        )
        .await
    }

    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM wasmq_module_settings WHERE tenant = ?1 AND name = ?2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}

impl SqliteDriver {
    /// One durable upsert: `?1` tenant, `?2` name, `?3` now, then `values`.
    async fn upsert(
        &self,
        tenant: &str,
        name: &str,
        sql: &'static str,
        values: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut query = sqlx::query(sql).bind(tenant).bind(name).bind(now_us());
        for v in values {
            query = query.bind(v);
        }
        query.execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}
