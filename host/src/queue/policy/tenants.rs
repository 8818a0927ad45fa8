//! Tenant rows through the core: names and values checked before a driver stores them.

use super::Queue;
use crate::queue::driver::Driver;
use crate::queue::keys::validate_tenant;
use crate::queue::{QuotaChange, StoreError, TenantRow, TenantStore, TenantUsage};

#[async_trait::async_trait]
impl<D: Driver> TenantStore for Queue<D> {
    async fn tenant(&self, tenant: &str) -> Result<Option<TenantRow>, StoreError> {
        self.inner.driver.tenant_row(tenant).await
    }

    async fn set_tenant_quotas(
        &self,
        tenant: &str,
        change: &QuotaChange,
    ) -> Result<TenantRow, StoreError> {
        validate_tenant(tenant)?;
        change.values().check()?;
        let row = self.inner.driver.put_tenant_row(tenant, change).await;
        // Even after an error: the statement may have committed.
        self.inner.held.changed();
        row
    }

    fn set_default_max_running(&self, max_running: Option<u64>) {
        let stored = max_running.map_or(0, |n| n.saturating_add(1));
        self.inner
            .default_max_running
            .store(stored, std::sync::atomic::Ordering::Release);
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError> {
        self.inner.driver.count_tenant_usage(tenant).await
    }

    async fn unfinished_jobs(&self, tenant: &str, up_to: u64) -> Result<u64, StoreError> {
        if up_to == 0 {
            return Ok(0);
        }
        self.inner
            .driver
            .count_unfinished_up_to(tenant, up_to)
            .await
    }

    async fn keys_with_jobs(
        &self,
        tenant: &str,
        idempotency_keys: &[String],
        coalesce_keys: &[String],
    ) -> Result<u64, StoreError> {
        if idempotency_keys.is_empty() && coalesce_keys.is_empty() {
            return Ok(0);
        }
        self.inner
            .driver
            .count_keys_with_jobs(tenant, idempotency_keys, coalesce_keys)
            .await
    }

    async fn module_bytes_used(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<(u64, bool), StoreError> {
        self.inner.driver.sum_module_bytes(tenant, digest).await
    }
}
