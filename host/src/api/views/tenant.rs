//! A tenant as the API shows it: its quotas and what it uses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::queue::{Quotas, TenantRow, TenantUsage};

/// Quotas of a tenant, each `null` where none applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuotasView {
    /// Jobs not finished (scheduled, available, retryable, running) at once.
    pub max_unfinished_jobs: Option<u64>,
    /// Bytes of stored module versions (each distinct module once).
    pub max_module_bytes: Option<u64>,
    /// Jobs enqueued per second, per API node.
    pub enqueue_rate: Option<f64>,
    /// Jobs enqueued at once after a quiet spell (the rate's bucket).
    pub enqueue_burst: Option<u64>,
    /// Jobs running at once over every node (no claim starts one past it).
    pub max_running: Option<u64>,
    /// Schedules.
    pub max_schedules: Option<u64>,
}

impl From<Quotas> for QuotasView {
    fn from(q: Quotas) -> Self {
        QuotasView {
            max_unfinished_jobs: q.max_unfinished_jobs,
            max_module_bytes: q.max_module_bytes,
            enqueue_rate: q.enqueue_rate,
            enqueue_burst: q.enqueue_burst,
            max_running: q.max_running,
            max_schedules: q.max_schedules,
        }
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Jobs not finished.
    pub unfinished_jobs: u64,
    /// Jobs running.
    pub running: u64,
    /// Bytes of stored module versions (each distinct module once).
    pub module_bytes: u64,
    /// Schedules.
    pub schedules: u64,
}

impl From<TenantUsage> for UsageView {
    fn from(u: TenantUsage) -> Self {
        UsageView {
            unfinished_jobs: u.unfinished_jobs,
            running: u.running_jobs,
            module_bytes: u.module_bytes,
            schedules: u.schedules,
        }
    }
}

/// A tenant: the quotas that apply to it, which of them are its own, and its use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    /// The tenant's name.
    pub tenant: String,
    /// The quotas that apply: its own, else the server's defaults; `null`: not limited.
    pub quotas: QuotasView,
    /// The quotas set on the tenant itself; `null`: the server's default applies.
    pub overrides: QuotasView,
    /// When an operator last changed its quotas; `null`: never.
    pub updated_at: Option<DateTime<Utc>>,
    /// What it uses now.
    pub usage: UsageView,
}

impl TenantView {
    /// The view of `tenant` with its stored `row` over `defaults`, using `usage`.
    pub fn new(
        tenant: &str,
        row: Option<TenantRow>,
        defaults: &Quotas,
        usage: TenantUsage,
    ) -> TenantView {
        let (own, updated_at) = match row {
            Some(row) => (row.quotas, Some(row.updated_at)),
            None => (Quotas::default(), None),
        };
        let effective = own.over(defaults);
        let mut quotas = QuotasView::from(effective);
        // A rate without a burst has the bucket's own size: show what applies.
        quotas.enqueue_burst = effective.bucket().map(|(_, burst)| burst as u64);
        TenantView {
            tenant: tenant.to_owned(),
            quotas,
            overrides: own.into(),
            updated_at,
            usage: usage.into(),
        }
    }
}
