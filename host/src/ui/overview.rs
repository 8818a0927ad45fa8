//! The overview: each queue's unfinished jobs by state and whether it is paused, the
//! running jobs with their progress, recent failures, and this node's last hour.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::auth::{Nav, Viewer};
use super::error::{UiError, html};
use super::format;
use super::jobs::JobRow;
use crate::api::AppState;
use crate::queue::{JobFilter, JobState, QueueInfo, Scope};

/// Running jobs and failures the overview lists (the jobs page has the rest).
const SHOWN: u32 = 20;

/// A queue as the overview's table shows it.
pub struct QueueRow {
    pub name: String,
    pub paused: bool,
    pub waiting: String,
    pub scheduled: String,
    pub available: String,
    pub retryable: String,
    pub running: String,
}

impl From<QueueInfo> for QueueRow {
    fn from(q: QueueInfo) -> Self {
        QueueRow {
            name: q.name,
            paused: q.paused,
            waiting: format::count(q.waiting),
            scheduled: format::count(q.scheduled),
            available: format::count(q.available),
            retryable: format::count(q.retryable),
            running: format::count(q.running),
        }
    }
}

/// One minute's bar of the chart, in the SVG's units (100 high).
pub struct Bar {
    pub x: usize,
    pub completed_y: u64,
    pub completed_h: u64,
    pub failed_y: u64,
    pub failed_h: u64,
    pub label: String,
}

/// Jobs finished per minute over the last hour, stacked: completed under failed.
pub struct Chart {
    pub bars: Vec<Bar>,
    pub completed: String,
    pub failed: String,
    pub peak: String,
}

impl Chart {
    fn of(minutes: &[(u64, u64)]) -> Chart {
        let peak = minutes.iter().map(|(c, f)| c + f).max().unwrap_or(0).max(1);
        let n = minutes.len();
        let bars = minutes
            .iter()
            .enumerate()
            .map(|(i, &(c, f))| {
                // Scaled to 100 and rounded up, so one job among thousands still shows.
                let scale = |v: u64| (v * 100).div_ceil(peak);
                let (ch, fh) = (scale(c), scale(f));
                Bar {
                    x: i * 10,
                    completed_y: 100 - ch,
                    completed_h: ch,
                    failed_y: 100 - ch - fh.min(100 - ch),
                    failed_h: fh.min(100 - ch),
                    label: format!("{} min ago: {c} completed, {f} failed", n - 1 - i),
                }
            })
            .collect();
        Chart {
            bars,
            completed: format::count(minutes.iter().map(|m| m.0).sum()),
            failed: format::count(minutes.iter().map(|m| m.1).sum()),
            peak: format::count(peak),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/overview_live.html")]
struct OverviewLive {
    queues: Vec<QueueRow>,
    running: Vec<JobRow>,
    failed: Vec<JobRow>,
    chart: Chart,
    can_pause: bool,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    nav: Nav,
    live: OverviewLive,
}

async fn gather(state: &AppState, viewer: &Viewer) -> Result<OverviewLive, UiError> {
    viewer.require(Scope::JobsRead)?;
    let tenant = viewer.tenant();
    let newest = |state: JobState| JobFilter {
        state: Some(state),
        limit: SHOWN,
        ..JobFilter::default()
    };
    // The per-queue counts of unfinished jobs and two short keyset pages: nothing here
    // reads every job.
    let (running, failed) = (newest(JobState::Running), newest(JobState::Failed));
    let (queues, running, failed) = tokio::try_join!(
        state.store.queues(tenant),
        state.store.list_summaries(tenant, &running),
        state.store.list_summaries(tenant, &failed),
    )?;
    Ok(OverviewLive {
        queues: queues.into_iter().map(QueueRow::from).collect(),
        running: running.jobs.iter().map(JobRow::from).collect(),
        failed: failed.jobs.iter().map(JobRow::from).collect(),
        chart: Chart::of(&crate::metrics::last_hour(tenant)),
        can_pause: viewer.can(Scope::JobsWrite),
    })
}

/// The overview page.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    let live = gather(&state, &viewer).await?;
    Ok(html(&OverviewPage {
        nav: viewer.nav("overview"),
        live,
    }))
}

/// The overview's changing part, polled by the page.
pub async fn live(State(state): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    Ok(html(&gather(&state, &viewer).await?))
}

#[cfg(test)]
mod tests {
    use super::Chart;

    #[test]
    fn the_chart_scales_to_its_peak_and_stacks_failures() {
        let chart = Chart::of(&[(0, 0), (50, 50), (1, 0)]);
        assert_eq!(chart.peak, "100");
        assert_eq!(chart.completed, "51");
        assert_eq!(chart.failed, "50");
        let bar = &chart.bars[1];
        assert_eq!((bar.completed_y, bar.completed_h), (50, 50));
        assert_eq!((bar.failed_y, bar.failed_h), (0, 50));
        assert_eq!(chart.bars[2].completed_h, 1, "one job still shows");
        assert_eq!(chart.bars[0].completed_h + chart.bars[0].failed_h, 0);
    }
}
