//! Tenants and their quotas: the stored overrides, the server's defaults under them, and
//! what a tenant uses. The store keeps rows and counts ([`TenantStore`]); the API enforces
//! (`api/tenants.rs`, `api/quota.rs`).
//!
//! A quota left unset on a tenant falls back to the server default; unset on both, it does
//! not limit. Only an `operator` key sets quotas (a tenant's own `admin` cannot raise its
//! own).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The quotas of a tenant; `None`: not limited (or, for a tenant's own row, the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quotas {
    /// Jobs not finished (scheduled, available, retryable, running) at once.
    pub max_unfinished_jobs: Option<u64>,
    /// Bytes of the tenant's stored module versions (each distinct digest once).
    pub max_module_bytes: Option<u64>,
    /// Jobs enqueued per second, per API node (a token bucket).
    pub enqueue_rate: Option<f64>,
    /// The bucket's size: jobs enqueued at once after a quiet spell.
    pub enqueue_burst: Option<u64>,
    /// Jobs running at once over all nodes, enforced by the claim.
    pub max_running: Option<u64>,
    /// Schedules.
    pub max_schedules: Option<u64>,
}

impl Quotas {
    /// Each quota set here, else the one of `defaults`.
    pub fn over(&self, defaults: &Quotas) -> Quotas {
        Quotas {
            max_unfinished_jobs: self.max_unfinished_jobs.or(defaults.max_unfinished_jobs),
            max_module_bytes: self.max_module_bytes.or(defaults.max_module_bytes),
            enqueue_rate: self.enqueue_rate.or(defaults.enqueue_rate),
            enqueue_burst: self.enqueue_burst.or(defaults.enqueue_burst),
            max_running: self.max_running.or(defaults.max_running),
            max_schedules: self.max_schedules.or(defaults.max_schedules),
        }
    }

    /// The token bucket of an enqueue rate: `(jobs per second, size)`. Without a burst the
    /// bucket holds one second of the rate (at least one job).
    pub fn bucket(&self) -> Option<(f64, f64)> {
        let rate = self.enqueue_rate?;
        let burst = match self.enqueue_burst {
            Some(b) => b as f64,
            None => rate.ceil().max(1.0),
        };
        Some((rate, burst))
    }

    /// Refuses what no quota may be: a rate that is not a positive finite number, a burst
    /// of 0, a count past what the stores keep (`i64::MAX`).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(rate) = self.enqueue_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(StoreError::Invalid(format!(
                "`enqueue_rate` is {rate}; give a positive number of jobs per second (to stop a \
                 tenant's enqueues, set `max_unfinished_jobs` to 0)"
            )));
        }
        if self.enqueue_burst == Some(0) {
            return Err(StoreError::Invalid(
                "`enqueue_burst` is 0; give at least 1".into(),
            ));
        }
        let counts = [
            (Quota::MaxUnfinishedJobs, self.max_unfinished_jobs),
            (Quota::MaxModuleBytes, self.max_module_bytes),
            (Quota::EnqueueBurst, self.enqueue_burst),
            (Quota::MaxRunning, self.max_running),
            (Quota::MaxSchedules, self.max_schedules),
        ];
        for (quota, value) in counts {
            if value.is_some_and(|v| i64::try_from(v).is_err()) {
                return Err(StoreError::Invalid(format!(
                    "`{quota}` is above {}; leave it unset for no limit",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }
}

/// The name of one quota, as the API, the CLI and the problems spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `max_unfinished_jobs`.
    MaxUnfinishedJobs,
    /// `max_module_bytes`.
    MaxModuleBytes,
    /// `enqueue_rate`.
    EnqueueRate,
    /// `enqueue_burst`.
    EnqueueBurst,
    /// `max_running`.
    MaxRunning,
    /// `max_schedules`.
    MaxSchedules,
}

impl Quota {
    /// The field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::MaxUnfinishedJobs => "max_unfinished_jobs",
            Quota::MaxModuleBytes => "max_module_bytes",
            Quota::EnqueueRate => "enqueue_rate",
            Quota::EnqueueBurst => "enqueue_burst",
            Quota::MaxRunning => "max_running",
            Quota::MaxSchedules => "max_schedules",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's stored row: its own quotas (unset ones fall back to the server's).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    /// The tenant.
    pub name: String,
    /// What is set on the tenant itself.
    pub quotas: Quotas,
    /// When an operator last changed it.
    pub updated_at: DateTime<Utc>,
}

/// A change of a tenant's quotas, field by field: `None` leaves a quota as it is,
/// `Some(None)` takes it back to the server default, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuotaChange {
    /// See [`Quotas::max_unfinished_jobs`].
    pub max_unfinished_jobs: Option<Option<u64>>,
    /// See [`Quotas::max_module_bytes`].
    pub max_module_bytes: Option<Option<u64>>,
    /// See [`Quotas::enqueue_rate`].
    pub enqueue_rate: Option<Option<f64>>,
    /// See [`Quotas::enqueue_burst`].
    pub enqueue_burst: Option<Option<u64>>,
    /// See [`Quotas::max_running`].
    pub max_running: Option<Option<u64>>,
    /// See [`Quotas::max_schedules`].
    pub max_schedules: Option<Option<u64>>,
}

impl QuotaChange {
    /// The values this change writes (`None` where it writes none or resets).
    pub fn values(&self) -> Quotas {
        Quotas {
            max_unfinished_jobs: self.max_unfinished_jobs.flatten(),
            max_module_bytes: self.max_module_bytes.flatten(),
            enqueue_rate: self.enqueue_rate.flatten(),
            enqueue_burst: self.enqueue_burst.flatten(),
            max_running: self.max_running.flatten(),
            max_schedules: self.max_schedules.flatten(),
        }
    }

    /// Which quotas this change writes, in [`Quotas`] field order.
    pub fn touched(&self) -> [bool; 6] {
        [
            self.max_unfinished_jobs.is_some(),
            self.max_module_bytes.is_some(),
            self.enqueue_rate.is_some(),
            self.enqueue_burst.is_some(),
            self.max_running.is_some(),
            self.max_schedules.is_some(),
        ]
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Jobs not finished (scheduled, available, retryable, running).
    pub unfinished_jobs: u64,
    /// Jobs running.
    pub running_jobs: u64,
    /// Bytes of its stored module versions, each distinct digest once.
    pub module_bytes: u64,
    /// Schedules.
    pub schedules: u64,
}

/// Tenant rows and the counts quotas are checked against. Every [`super::Store`] is one.
#[async_trait::async_trait]
pub trait TenantStore: Send + Sync {
    /// The stored row of `tenant`, if an operator ever set a quota on it.
    async fn tenant(&self, tenant: &str) -> Result<Option<TenantRow>, StoreError>;

    /// Applies `change` to `tenant`'s row (made if missing) in one statement, after
    /// checking its values ([`Quotas::check`]) and the name; the row after it.
    async fn set_tenant_quotas(
        &self,
        tenant: &str,
        change: &QuotaChange,
    ) -> Result<TenantRow, StoreError>;

    /// Sets the server's default `max_running`, which this process's claims apply to
    /// tenants whose row sets none (`None`: such tenants are not capped). Every node
    /// claiming from one database should be given the same.
    fn set_default_max_running(&self, max_running: Option<u64>);

    /// What `tenant` uses now (exact counts).
    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError>;

    /// How many jobs of `tenant` are not finished, counting at most `up_to` of them.
    async fn unfinished_jobs(&self, tenant: &str, up_to: u64) -> Result<u64, StoreError>;

    /// How many of `idempotency_keys` name a stored job of `tenant`, plus how many of
    /// `coalesce_keys` name a job of it that has not started: keys whose enqueue makes no
    /// new job (each list without repeats).
    async fn keys_with_jobs(
        &self,
        tenant: &str,
        idempotency_keys: &[String],
        coalesce_keys: &[String],
    ) -> Result<u64, StoreError>;

    /// The bytes of `tenant`'s stored module versions (each digest once), and whether
    /// one of them has `digest` (then storing those bytes again costs nothing).
    async fn module_bytes_used(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<(u64, bool), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_quota_wins_over_the_default() {
        let defaults = Quotas {
            max_unfinished_jobs: Some(10),
            enqueue_rate: Some(2.5),
            ..Quotas::default()
        };
        let own = Quotas {
            max_unfinished_jobs: Some(3),
            max_schedules: Some(1),
            ..Quotas::default()
        };
        let effective = own.over(&defaults);
        assert_eq!(effective.max_unfinished_jobs, Some(3));
        assert_eq!(effective.enqueue_rate, Some(2.5));
        assert_eq!(effective.max_schedules, Some(1));
        assert_eq!(effective.max_module_bytes, None);
        // No burst: one second of the rate, rounded up.
        assert_eq!(effective.bucket(), Some((2.5, 3.0)));
    }

    #[test]
    fn impossible_quotas_are_refused() {
        for bad in [
            Quotas {
                enqueue_rate: Some(0.0),
                ..Quotas::default()
            },
            Quotas {
                enqueue_rate: Some(f64::NAN),
                ..Quotas::default()
            },
            Quotas {
                enqueue_burst: Some(0),
                ..Quotas::default()
            },
            Quotas {
                max_module_bytes: Some(u64::MAX),
                ..Quotas::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(
            Quotas {
                max_unfinished_jobs: Some(0),
                ..Quotas::default()
            }
            .check()
            .is_ok()
        );
    }
}
