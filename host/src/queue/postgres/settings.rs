//! Module settings on PostgreSQL (`wasmq_module_settings`, migration 0006): one row per
//! tenant and module name, upserted column by column so the allow-list and the config
//! are changed independently.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::types::Json;

use super::PgDriver;
use super::rows::db_err;
use crate::queue::driver::SettingsRows;
use crate::queue::{ModuleSettings, StoreError};

#[async_trait::async_trait]
impl SettingsRows for PgDriver {
    async fn module_settings(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ModuleSettings, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(
            "SELECT allowed_hosts, config_values, config_secrets FROM wasmq_module_settings \
             WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        let Some(row) = row else {
            return Ok(ModuleSettings::default());
        };
        let Json(allowed_hosts): Json<Vec<String>> = row.try_get(0).map_err(db_err)?;
        let Json(values): Json<BTreeMap<String, String>> = row.try_get(1).map_err(db_err)?;
        let Json(secrets): Json<BTreeMap<String, String>> = row.try_get(2).map_err(db_err)?;
        Ok(ModuleSettings {
            allowed_hosts,
            values,
            secrets,
        })
    }

    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows: Vec<(String, Json<Vec<String>>)> = sqlx::query_as(
            "SELECT name, allowed_hosts FROM wasmq_module_settings \
             WHERE tenant = $1 AND allowed_hosts <> '[]'::jsonb",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        Ok(rows.into_iter().map(|(name, Json(h))| (name, h)).collect())
    }

    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        self.upsert(
            "INSERT INTO wasmq_module_settings (tenant, name, allowed_hosts) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, name) DO UPDATE \
             SET allowed_hosts = EXCLUDED.allowed_hosts, updated_at = now()",
            tenant,
            name,
            Json(hosts),
            None::<Json<()>>,
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
            "INSERT INTO wasmq_module_settings (tenant, name, config_values, config_secrets) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, name) DO UPDATE \
             SET config_values = EXCLUDED.config_values, \
                 config_secrets = EXCLUDED.config_secrets, updated_at = now()",
            tenant,
            name,
            Json(values),
            Some(Json(secrets)),
        )
        .await
    }

    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        sqlx::query("DELETE FROM wasmq_module_settings WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(())
    }
}

impl PgDriver {
    async fn upsert<A, B>(
        &self,
        sql: &'static str,
        tenant: &str,
        name: &str,
        first: Json<A>,
        second: Option<Json<B>>,
    ) -> Result<(), StoreError>
    where
        A: serde::Serialize + Send + Sync,
        B: serde::Serialize + Send + Sync,
    {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut query = sqlx::query(sql).bind(tenant).bind(name).bind(first);
        if let Some(second) = second {
            query = query.bind(second);
        }
        query.execute(&mut *conn).await.map_err(db_err)?;
        conn.keep();
        Ok(())
    }
}
